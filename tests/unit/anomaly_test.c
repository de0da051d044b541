/*
 * anomaly_test.c: unit tests of the anomaly score and alert levels (daemon/anomaly.c):
 * bounds under hostile inputs, single outliers vs sustained changes,
 * hysteresis, warm-up and the blob round trip.
 *
 * SPDX-License-Identifier: MIT
 */
#include <float.h>
#include <stdint.h>

#include "daemon/anomaly.h"
#include "tests/unit/harness.h"

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

/* The same forecaster with its whole path: flat at mu for PH horizons. */
#define PH 48
static float judge_path(an_state *s, const an_cfg *c, double v, double mu, int *lvl) {
    float path[PH * 3];
    for (int h = 0; h < PH; h++) {
        path[h * 3] = (float)(mu - 1.2816);
        path[h * 3 + 1] = (float)mu;
        path[h * 3 + 2] = (float)(mu + 1.2816);
    }
    return an_update_path(s, c, v, path, qlev, 3, path, PH, 0.0, lvl);
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
    /* Every channel at full weight, so all of them see the hostile input. */
    c.stuck_weight = 1.0f;
    c.anchor_len = 3.0f;
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
            /* A path of hostile forecasts too (the anchored channel). */
            float path[4 * 3];
            for (int h = 0; h < 4; h++)
                for (int k = 0; k < 3; k++) path[h * 3 + k] = qs[(i + h + rep) % nq][k];
            float sc = (i + rep) % 3 == 0 ? an_update(&s, &c, vals[i], q, qlev, 3, &lvl)
                                          : an_update_path(&s, &c, vals[i], q, qlev, 3, path, 4, 0.0, &lvl);
            ASSERT(sc >= 0.0f && sc <= 1.0f);
            ASSERT(lvl >= 0 && lvl <= 2);
            ASSERT(isfinite(s.mae) && isfinite(s.a_sgn[0]) && isfinite(s.a_sgn[1]));
            ASSERT(isfinite(s.m_short) && isfinite(s.mu_long) && isfinite(s.var_long) && isfinite(s.step));
            for (int ch = 0; ch < AN_NCH; ch++) ASSERT(s.ev_p[ch] > 0.0f && s.ev_p[ch] <= 1.0f && isfinite(s.ev_b[ch]));
            ASSERT(isfinite(s.a_ref[0]) && isfinite(s.a_ref[1]) && isfinite(s.a_acc[0]) &&
                   isfinite(s.a_acc[1]) && isfinite(s.a_bias) && isfinite(s.a_mae));
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
        if (lvl >= 1) first = i;
    }
    printf("  3-sigma shift: first level after %d samples\n", first);
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
    /* A 4-sigma shift the forecaster never follows (its interval never
     * widens); the learned tails and bias absorb it over time, so the
     * level rises, holds, then clears. */
    for (int i = 0; i < 4000; i++) {
        float sc = judge(&s, &c, 4.0 + gauss(), 0, &lvl);
        if (lvl >= 1 && prev == 0) {
            raised++;
            ASSERT(sc >= c.warn);
        }
        /* Between clear and warn a raised level stays where it is. */
        if (prev >= 1 && sc >= c.clear) ASSERT(lvl >= 1);
        if (prev >= 1 && lvl >= 1 && sc < c.warn) held++;
        if (prev > 0 && lvl == 0) {
            dropped++;
            ASSERT_LT(sc, c.clear);
        }
        /* A level never rises below its threshold. */
        if (lvl > prev) ASSERT(sc >= (lvl == 2 ? c.alert : c.warn));
        prev = lvl;
    }
    printf("  4-sigma shift never followed: raised %d, held below warn %d samples, dropped %d\n", raised, held, dropped);
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
    /* 301 samples: the anchored blocks are mid-way when saved. */
    for (int i = 0; i < 301; i++) judge_path(&s, &c, gauss() + (i > 280 ? 5 : 0), 0, &lvl);
    ASSERT(s.a_n > 8.0f && s.a_cnt[0] > 0.0f);
    uint8_t buf[AN_BLOB_SIZE];
    ASSERT_LE(AN_BLOB_SIZE, 128);
    an_save(&s, buf);
    an_init(&t);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_OK);
    /* The score is the engine header's to carry. */
    ASSERT(t.score == 0.0f);
    t.score = s.score;
    ASSERT_EQ(memcmp(&s, &t, sizeof s), 0);
    /* Both continue identically. */
    for (int i = 0; i < 50; i++) {
        double v = gauss();
        float a = judge_path(&s, &c, v, 0, &lvl), b = judge_path(&t, &c, v, 0, &lvl);
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
    /* A blob of the older layout (magic "ANS1", 92 bytes) is refused. */
    an_save(&s, buf);
    rc_put_u32(buf, 0x31534e41u);
    ASSERT_EQ(an_load(&t, buf, 92), RC_ERR_FORMAT);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_ERR_FORMAT);
    ASSERT_EQ(memcmp(&u, &t, sizeof t), 0);
}

/* A slow fault (a valve closing): the level ramps by 8 sigma over 16
 * samples and stays. A good forecaster follows it (its level moves
 * half-way to the true one per sample; flat path), so each one-step
 * residual is only about 1 sigma and the one-step channels do not alert,
 * but the mean of a block sits several sigma off the path forecast made
 * before the block: the anchored channel alerts. Returns the first sample
 * after the onset at level 2, or -1; counts level-2 samples before it. */
static int first_alert_after_followed_shift(const an_cfg *c, int *quiet_alerts) {
    an_state s;
    an_init(&s);
    rng = 12345;
    double m = 0.0;
    int lvl, first = -1;
    *quiet_alerts = 0;
    for (int i = 0; i < 2000; i++) {
        double level = i < 1500 ? 0.0 : i < 1516 ? 0.5 * (i - 1500 + 1) : 8.0, v = level + gauss();
        judge_path(&s, c, v, m, &lvl);
        if (i < 1500) *quiet_alerts += lvl == 2;
        if (i >= 1500 && lvl == 2 && first < 0) first = i - 1500;
        m += 0.5 * (level - m);
    }
    return first;
}

TEST(anchored_channel_catches_followed_shift) {
    an_cfg c;
    an_cfg_default(&c);
    ASSERT(c.anchor_len > 0.0f);
    int quiet;
    int first = first_alert_after_followed_shift(&c, &quiet);
    ASSERT(first >= 0);
    /* Two staggered blocks of 24: a verdict within ~1.5 blocks. */
    ASSERT_LE(first, 40);
    /* The same noise before the ramp: alerts well under 1%. */
    ASSERT_LT(quiet, 15);
    /* Without the anchored channel the same change goes unnoticed. */
    c.anchor_len = 0.0f;
    ASSERT_EQ(first_alert_after_followed_shift(&c, &quiet), -1);
}

TEST(anchored_channel_needs_the_path) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl;
    /* Without a path no block ever opens: an_update is the old score. */
    for (int i = 0; i < 300; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(s.a_n, 0.0f);
    ASSERT_EQ(s.a_cnt[0], 0.0f);
    /* With it, blocks of anchor_len complete, two per anchor_len samples. */
    for (int i = 0; i < 240; i++) judge_path(&s, &c, gauss(), 0, &lvl);
    ASSERT(s.a_n >= 18.0f && s.a_n <= 20.0f);
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

/* Every raised level names its kind; the kind survives the level's fall
 * (the clearing event names what cleared) and the blob round trip. */
TEST(kind_of_raised_levels) {
    ASSERT_EQ(strcmp(an_kind_name(AN_KIND_NONE), "none"), 0);
    ASSERT_EQ(strcmp(an_kind_name(AN_KIND_SILENCE), "silence"), 0);
    ASSERT_EQ(strcmp(an_kind_name(AN_KIND_COUNT), "none"), 0);
    ASSERT_EQ(strcmp(an_kind_name(-1), "none"), 0);
    an_cfg c;
    an_cfg_default(&c);
    an_state s, t;
    an_init(&s);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_NONE);
    int lvl;
    for (int i = 0; i < 500; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_NONE);
    for (int i = 0; i < 30; i++) judge(&s, &c, 0.1234, 0, &lvl);
    ASSERT_EQ(lvl, 2);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_STUCK);
    uint8_t buf[AN_BLOB_SIZE];
    an_save(&s, buf);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_OK);
    ASSERT_EQ(an_state_kind(&t), AN_KIND_STUCK);
    ASSERT_EQ(t.level, 2);
    for (int i = 0; i < 200; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_STUCK);
    /* A blob saved before the kind existed (level word 2) loads as NONE;
     * an unknown kind is refused. */
    rc_put_u32(buf + 8, 2);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_OK);
    ASSERT_EQ(an_state_kind(&t), AN_KIND_NONE);
    ASSERT_EQ(t.level, 2);
    rc_put_u32(buf + 8, 2u | (uint32_t)AN_KIND_COUNT << 8);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_ERR_FORMAT);
    rc_put_u32(buf + 8, 3);
    ASSERT_EQ(an_load(&t, buf, sizeof buf), RC_ERR_FORMAT);
}

/* The benches' KEY=VALUE settings: every key, bad keys and values refused. */
TEST(cfg_set_and_describe) {
    an_cfg c;
    an_cfg_default(&c);
    ASSERT_EQ(an_cfg_set(&c, "warn=0.6"), RC_OK);
    ASSERT_EQ(c.warn, 0.6f);
    ASSERT_EQ(an_cfg_set(&c, "warmup=7"), RC_OK);
    ASSERT_EQ(c.warmup, 7u);
    ASSERT_EQ(an_cfg_set(&c, "anchor_len=12"), RC_OK);
    ASSERT_EQ(c.anchor_len, 12.0f);
    ASSERT_EQ(an_cfg_set(&c, "nokey=1"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warn"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warn="), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warn=0.5x"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warn=nan"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warmup=1.5"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warmup=-1"), RC_ERR_CONFIG);
    ASSERT_EQ(an_cfg_set(&c, "warnx=1"), RC_ERR_CONFIG);
    char buf[512];
    an_cfg_describe(&c, buf, sizeof buf);
    ASSERT(strstr(buf, "warmup 7") && strstr(buf, "warn 0.6") && strstr(buf, "anchor_rate 0.1"));
    char small[8];
    an_cfg_describe(&c, small, sizeof small);
    ASSERT_EQ(strlen(small), 7u);
}

/* A single far sample raises a spike; a slow ramp that the forecaster
 * follows with a lag raises a trend (CUSUM built up over many samples). */
TEST(kind_spike_and_trend) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl;
    for (int i = 0; i < 2000; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
    judge(&s, &c, 12.0, 0, &lvl);
    ASSERT(lvl >= 1);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_SPIKE);
    for (int i = 0; i < 300; i++) judge(&s, &c, gauss(), 0, &lvl);
    ASSERT_EQ(lvl, 0);
    /* A forecaster that follows the level (the last value) but lags a
     * ramp: one-step residuals mostly of one sign, blocks ever further
     * from the path made before them: a trend. */
    an_init(&s);
    double prev = 0.0;
    for (int i = 0; i < 2000; i++) {
        double v = gauss();
        judge_path(&s, &c, v, prev, &lvl);
        prev = v;
    }
    ASSERT_EQ(lvl, 0);
    int raised = 0;
    for (int i = 0; i < 400 && !raised; i++) {
        double v = 0.3 * gauss() + 1.0 * (i + 1);
        judge_path(&s, &c, v, prev, &lvl);
        prev = v;
        raised = lvl >= 1;
    }
    ASSERT(raised);
    ASSERT_EQ(an_state_kind(&s), AN_KIND_TREND);
}

/* A calibrated N(0,1) forecaster judged at a known sampling period dt. */
static float judge_dt(an_state *s, const an_cfg *c, double v, double dt, int *lvl) {
    float q[3] = {-1.2816f, 0.0f, 1.2816f};
    return an_update_path(s, c, v, q, qlev, 3, NULL, 0, dt, lvl);
}

/* Laplace noise of unit variance: heavier tails than the forecaster's
 * Gaussian law, as real metrics have. */
static double laplace(void) {
    double u = unif() - 0.5;
    return (u < 0 ? 1.0 : -1.0) * log(1.0 - 2.0 * fabs(u)) / M_SQRT2;
}

/* Rises of the level over n samples of heavy-tailed noise at period dt,
 * after a learning period of the same length. */
static int budget_rises(float budget, double dt, int n) {
    an_cfg c;
    an_cfg_default(&c);
    c.alarm_budget = budget;
    an_state s;
    an_init(&s);
    int lvl, prev = 0, rises = 0;
    for (int i = 0; i < 2 * n; i++) {
        judge_dt(&s, &c, laplace(), dt, &lvl);
        if (i >= n) rises += lvl > 0 && prev == 0;
        prev = lvl;
    }
    return rises;
}

/* The alarm budget is per day: heavy-tailed noise sampled every 10 s and
 * every 5 min raises alerts at about the same rate per day (so 30 times
 * more per sample at 5 min), in the budget's order of magnitude. */
TEST(alarm_budget_is_per_day) {
    const int n = 60000;
    int r10 = budget_rises(5.0f, 10.0, n), r300 = budget_rises(5.0f, 300.0, n), r0 = budget_rises(0.0f, 300.0, n);
    double d10 = n * 10.0 / 86400.0, d300 = n * 300.0 / 86400.0;
    printf("  Laplace noise, budget 5/day: %.2f alerts/day at 10 s, %.2f at 5 min; without a budget %.2f at 5 min\n",
           r10 / d10, r300 / d300, r0 / d300);
    /* Within the budget's order of magnitude, at both periods... */
    ASSERT(r10 / d10 > 0.5 && r10 / d10 < 10.0);
    ASSERT(r300 / d300 > 0.5 && r300 / d300 < 10.0);
    /* ...and about the same per day (so 30 times more per sample at 5 min). */
    double ratio = (r300 / d300) / (r10 / d10);
    ASSERT(ratio > 0.5 && ratio < 2.0);
    ASSERT(r300 > 10 * r10);
}

/* A series whose 15-sigma spikes recur every 100 samples learns them: the
 * first ones alert, then the learned tail makes them its usual bursts. */
TEST(recurring_spikes_are_learned) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, prev = 0, early = 0, late = 0;
    for (int i = 0; i < 20000; i++) {
        judge_dt(&s, &c, i >= 1000 && i % 100 == 0 ? 15.0 : gauss(), 60.0, &lvl);
        int rise = lvl > 0 && prev == 0;
        if (i < 3000) early += rise;
        if (i >= 10000) late += rise;
        prev = lvl;
    }
    printf("  recurring 15-sigma spikes every 100 samples: %d alerts in the first 20, %d in the last 100\n", early, late);
    ASSERT(early >= 1);
    ASSERT_LE(late, 5);
}

/* A forecaster that follows the last value follows a spike too: the path
 * it makes right after the spike forecasts its echo. A block measured
 * against that path would report a shift when the series simply goes on;
 * one spike raises one alert event, not two. */
TEST(spike_raises_one_alert_not_an_echo) {
    an_cfg c;
    an_cfg_default(&c);
    an_state s;
    an_init(&s);
    int lvl, prev_lvl = 0, rises = 0;
    double prev = 0.0;
    for (int i = 0; i < 1300; i++) {
        double v = 0.2 * gauss() + (i == 1000 ? 30.0 : 0.0);
        judge_path(&s, &c, v, prev, &lvl);
        prev = v;
        if (i >= 1000 && lvl > 0 && prev_lvl == 0) {
            rises++;
            printf("  rise at %d: %s\n", i, an_kind_name(an_state_kind(&s)));
        }
        prev_lvl = lvl;
    }
    ASSERT_EQ(rises, 1);
}

TT_MAIN(TEST_ENTRY(spike_raises_one_alert_not_an_echo), TEST_ENTRY(alarm_budget_is_per_day), TEST_ENTRY(recurring_spikes_are_learned), TEST_ENTRY(cfg_set_and_describe), TEST_ENTRY(kind_spike_and_trend), TEST_ENTRY(kind_of_raised_levels), TEST_ENTRY(stuck_sensor_channel), TEST_ENTRY(cfg_default_is_valid), TEST_ENTRY(score_in_range_on_hostile_input),
        TEST_ENTRY(nan_is_missing), TEST_ENTRY(one_outlier_does_not_alert),
        TEST_ENTRY(quiet_noise_rarely_warns), TEST_ENTRY(sustained_shift_alerts),
        TEST_ENTRY(hysteresis_and_clear), TEST_ENTRY(warmup_suppresses_levels),
        TEST_ENTRY(save_load_round_trip), TEST_ENTRY(anchored_channel_catches_followed_shift),
        TEST_ENTRY(anchored_channel_needs_the_path))
