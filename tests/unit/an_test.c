/*
 * an_test.c: unit tests of the anomaly score and alert levels (daemon/an.c):
 * bounds under hostile inputs, single outliers vs sustained changes,
 * hysteresis, warm-up and the blob round trip.
 *
 * SPDX-License-Identifier: MIT
 */
#include <float.h>
#include <stdint.h>

#include "daemon/an.h"
#include "tests/unit/tt.h"

static const float qlev[3] = {0.1f, 0.5f, 0.9f};

/* Deterministic N(0,1) noise (xorshift + Box-Muller) so tests never flake. */
static uint64_t rng = 88172645463325252ULL;
static double unif(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) {
    return sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif());
}

/* A calibrated forecaster for N(mu, 1): median mu, 10/90% at -+1.2816. */
static float judge(an_state *s, const an_cfg *c, double v, double mu, int *lvl) {
    float q[3] = {(float)(mu - 1.2816), (float)mu, (float)(mu + 1.2816)};
    return an_update(s, c, v, q, qlev, 3, lvl);
}

TEST(cfg_default_is_valid) {
    an_cfg c;
    an_cfg_default(&c);
    ASSERT_EQ(an_cfg_check(&c), RC_OK);
    c.clear = 0.9f;
    ASSERT_EQ(an_cfg_check(&c), RC_ERR_CONFIG);
    an_cfg_default(&c);
    c.alert = 1.5f;
    ASSERT_EQ(an_cfg_check(&c), RC_ERR_CONFIG);
    an_cfg_default(&c);
    c.short_rate = 0.0f;
    ASSERT_EQ(an_cfg_check(&c), RC_ERR_CONFIG);
}

TEST(score_in_range_on_hostile_input) {
    an_cfg c;
    an_cfg_default(&c);
    c.warmup = 5;
    /* Every optional channel on, so all of them see the hostile input. */
    c.guard = 1.0f;
    c.drift_rate = 0.05f;
    c.regime_rate = 0.01f;
    c.regime_weight = 1.0f;
    c.calm_weight = 0.5f;
    c.point_weight = 1.0f;
    c.stuck_weight = 1.0f;
    c.clear = 0.0f;
    ASSERT_EQ(an_cfg_check(&c), RC_OK);
    an_state s;
    an_init(&s);
    const double vals[] = {0, 1, -1, NAN, INFINITY, -INFINITY, 1e300, -1e300, 1e-300,
                           DBL_MAX, -DBL_MAX, 3e38, 0, 0, 0, 5, NAN, 1e20, -1e20, 0};
    const float qs[][3] = {{-1, 0, 1}, {0, 0, 0}, {1, 1, 1}, {-3e38f, 0, 3e38f},
                           {NAN, 0, 1}, {0, INFINITY, 1}, {1e-30f, 1e-30f, 2e-30f},
                           {-1e30f, 1e30f, 1e30f}};
    int nq = (int)(sizeof qs / sizeof qs[0]);
    for (int rep = 0; rep < 200; rep++) {
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            int lvl = -1;
            const float *q = (i + rep) % 7 == 0 ? NULL : qs[(i * 3 + rep) % nq];
            float sc = an_update(&s, &c, vals[i], q, qlev, 3, &lvl);
            ASSERT(sc >= 0.0f && sc <= 1.0f);
            ASSERT(lvl >= 0 && lvl <= 2);
            ASSERT(isfinite(s.bias) && isfinite(s.mae) && isfinite(s.ratio));
            ASSERT(isfinite(s.m_short) && isfinite(s.mu_long) && isfinite(s.var_long));
            ASSERT(isfinite(s.d_short) && isfinite(s.d_var) && isfinite(s.f_slow) &&
                   isfinite(s.f_dev) && isfinite(s.nmae) && isfinite(s.step));
        }
    }
    /* Q = 1 (median only) still works. */
    float q1 = 0.0f;
    int lvl;
    for (int i = 0; i < 100; i++) {
        float sc = an_update(&s, &c, gauss(), &q1, qlev + 1, 1, &lvl);
        ASSERT(sc >= 0.0f && sc <= 1.0f);
    }
}

TEST(nan_is_missing) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl;
    for (int i = 0; i < 100; i++) judge(&s, &c, gauss(), 0, &lvl);
    an_state before = s;
    float sc = judge(&s, &c, NAN, 0, &lvl);
    ASSERT_EQ(memcmp(&before, &s, sizeof s), 0);
    ASSERT_EQ(sc, before.score);
    /* No forecast yet: nothing judged either. */
    sc = an_update(&s, &c, 5.0, NULL, qlev, 3, &lvl);
    ASSERT_EQ(memcmp(&before, &s, sizeof s), 0);
}

TEST(one_outlier_does_not_alert) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, maxlvl = 0;
    for (int i = 0; i < 1000; i++) judge(&s, &c, gauss(), 0, &lvl);
    /* A 4-sigma noisy sample, then normal noise again. */
    for (int i = 0; i < 50; i++) {
        judge(&s, &c, i == 0 ? 4.0 : gauss(), 0, &lvl);
        if (lvl > maxlvl) maxlvl = lvl;
    }
    ASSERT_LT(maxlvl, 2);
}

TEST(quiet_noise_rarely_warns) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, alerts = 0;
    for (int i = 0; i < 20000; i++) {
        judge(&s, &c, gauss(), 0, &lvl);
        alerts += lvl == 2;
    }
    /* Gaussian noise under a calibrated forecast: alerts well under 1%. */
    ASSERT_LT(alerts, 200);
}

TEST(sustained_shift_alerts) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, first = -1;
    for (int i = 0; i < 500; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
    /* The series jumps by 3 sigma and the forecaster has not noticed. */
    for (int i = 0; i < 30 && first < 0; i++) {
        judge(&s, &c, 3.0 + gauss(), 0, &lvl);
        if (lvl == 2) first = i;
    }
    ASSERT(first >= 0);
    ASSERT_LT(first, 15);
}

TEST(hysteresis_and_clear) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, prev = 0, raised = 0, held = 0, dropped = 0;
    for (int i = 0; i < 500; i++) judge(&s, &c, gauss(), 0, &lvl);
    /* A 4-sigma shift the forecaster never follows; the calibration
     * absorbs it over time, so the level rises, holds, then clears. */
    for (int i = 0; i < 400; i++) {
        float sc = judge(&s, &c, 4.0 + gauss(), 0, &lvl);
        if (lvl == 2 && prev < 2) {
            raised++;
            ASSERT(sc >= c.alert);
        }
        /* Between clear and alert a raised level stays where it is. */
        if (prev == 2 && sc >= c.clear) ASSERT_EQ(lvl, 2);
        if (prev == 2 && lvl == 2 && sc < c.alert) held++;
        if (prev > 0 && lvl == 0) {
            dropped++;
            ASSERT_LT(sc, c.clear);
        }
        /* A level never rises below its threshold. */
        if (lvl > prev) ASSERT(sc >= (lvl == 2 ? c.alert : c.warn));
        prev = lvl;
    }
    ASSERT(raised >= 1);
    ASSERT(held >= 1);
    ASSERT(dropped >= 1);
    ASSERT_EQ(lvl, 0);
}

TEST(warmup_suppresses_levels) {
    an_cfg c;
    an_cfg_default(&c);
    c.warmup = 100;
    an_state s;
    an_init(&s);
    int lvl;
    for (int i = 0; i < 100; i++) {
        /* Wild data during warm-up: no score, no level. */
        float sc = judge(&s, &c, (i % 2 ? 50.0 : -50.0) * (i > 50), 0, &lvl);
        ASSERT_EQ(lvl, 0);
        ASSERT_EQ(sc, 0.0f);
    }
    ASSERT_EQ(s.n, 100);
}

TEST(save_load_round_trip) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s, t, u;
    an_init(&s);
    int lvl;
    for (int i = 0; i < 300; i++) judge(&s, &c, gauss() + (i > 280 ? 5 : 0), 0, &lvl);
    uint8_t buf[AN_BLOB_SIZE];
    ASSERT_LE(AN_BLOB_SIZE, 128);
    an_save(&s, buf);
    an_init(&t);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_OK);
    ASSERT_EQ(memcmp(&s, &t, sizeof s), 0);
    /* Both continue identically. */
    for (int i = 0; i < 50; i++) {
        double v = gauss();
        float a = judge(&s, &c, v, 0, &lvl), b = judge(&t, &c, v, 0, &lvl);
        ASSERT_EQ(memcmp(&a, &b, sizeof a), 0);
    }
    /* Damaged blobs are refused and leave the target untouched. */
    u = t;
    ASSERT_EQ(an_load(&t, buf, sizeof buf - 1), RC_ERR_FORMAT);
    buf[0] ^= 1;
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_ERR_FORMAT);
    buf[0] ^= 1;
    rc_put_f32(buf + 20, NAN);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_ERR_NUMERIC);
    ASSERT_EQ(memcmp(&u, &t, sizeof t), 0);
}

TEST(stuck_sensor_channel) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl;
    for (int i = 0; i < 500; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
    /* The sensor freezes. A continuous series never repeats a value, so
     * p and c sit at their 1% floor: a run of k has -log10 P = 2k, times
     * the default weight 0.5 = k; alert (0.75) needs 12, so k = 12 repeats,
     * judged one sample late (the run is scored before it is extended) and
     * a little later still since the first repeats nudge p and c up. */
    int first = -1, held = 0;
    for (int i = 0; i < 60; i++) {
        float sc = judge(&s, &c, 0.1234, 0, &lvl);
        if (lvl == 2 && first < 0) first = i;
        if (first >= 0 && i > first + 1) {
            /* No new evidence: the score holds between clear and warn, the level stays. */
            ASSERT(sc >= c.clear && sc < c.warn);
            ASSERT_EQ(lvl, 2);
            held++;
        }
    }
    ASSERT(first >= 12 && first <= 16);
    ASSERT(held > 40);
    /* The sensor comes back: the level clears once the scores drop. */
    for (int i = 0; i < 200; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
}

TT_MAIN(TEST_ENTRY(stuck_sensor_channel), TEST_ENTRY(cfg_default_is_valid), TEST_ENTRY(score_in_range_on_hostile_input),
        TEST_ENTRY(nan_is_missing), TEST_ENTRY(one_outlier_does_not_alert),
        TEST_ENTRY(quiet_noise_rarely_warns), TEST_ENTRY(sustained_shift_alerts),
        TEST_ENTRY(hysteresis_and_clear), TEST_ENTRY(warmup_suppresses_levels),
        TEST_ENTRY(save_load_round_trip))
