/*
 * features_test.c: featurizer tests: causality, NaN and gap handling, robustness
 * of the normalizer to outliers and level shifts, period estimate, the
 * seasonal baseline and denormalization, settings round trip and bit-exact save/load.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/features.h"

#include "tests/unit/harness.h"

static double sig(int i) { return 100 + 20 * sin(2 * 3.14159265358979 * i / 24.0) + (i % 7); }

TEST(causal_prefix) {
    ft_cfg c;
    ft_cfg_default(&c);
    enum { N = 300 };
    static float full[N][FT_NFEAT], pre[N][FT_NFEAT];
    ft_state s;
    ft_init(&s, &c);
    for (int i = 0; i < N; i++) ASSERT_EQ(ft_push(&s, &c, 1e9 + 3600.0 * i, sig(i), full[i]), RC_OK);
    /* The first 150 samples alone give the same features. */
    ft_init(&s, &c);
    for (int i = 0; i < 150; i++) ft_push(&s, &c, 1e9 + 3600.0 * i, sig(i), pre[i]);
    ASSERT(memcmp(full, pre, sizeof(float) * 150 * FT_NFEAT) == 0);
}

/* The phase features (time of day, day of week) are remembered for the last
 * timestamp: series that share a time, series that do not, and -0.0 after
 * 0.0 all get exactly the formula's values. */
TEST(phase_features_equal_formula_for_shared_and_interleaved_times) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state a, b;
    ft_init(&a, &c);
    ft_init(&b, &c);
    const double ts[][2] = {{-0.0, 0.0}, {7200, 7200}, {9000, 86400 * 3.5}, {86400 * 4.25, 86400 * 4.25},
                            {1.7e9, 1.7e9 + 1}, {1.7e9 + 3600, 1.7e9 + 3600}};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        for (int j = 0; j < 2; j++) {
            double t = ts[k][j];
            float f[FT_NFEAT];
            ASSERT_EQ(ft_push(j ? &b : &a, &c, t, 5.0 + (double)k, f), RC_OK);
            double tod = fmod(t, 86400.0) / 86400.0, dow = fmod(t + 3.0 * 86400.0, 604800.0) / 604800.0;
            const float want[4] = {(float)sin(2 * 3.14159265358979323846 * tod),
                                   (float)cos(2 * 3.14159265358979323846 * tod),
                                   (float)sin(2 * 3.14159265358979323846 * dow),
                                   (float)cos(2 * 3.14159265358979323846 * dow)};
            ASSERT(memcmp(f + 7, want, sizeof want) == 0);
        }
    }
}

TEST(nan_and_gaps_give_finite_features) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s;
    ft_init(&s, &c);
    float f[FT_NFEAT], out[6];
    const float in[6] = {0.5f, -1, 2, 0, 0, 0};
    double t = 1e9;
    /* Leading NaNs, NaN runs, big and small gaps, a constant stretch. */
    for (int i = 0; i < 500; i++) {
        double v = i < 3 || (i % 37) < 3 ? NAN : (i > 300 && i < 400 ? 5.0 : sig(i));
        t += (i % 53 == 0) ? 3600.0 * 10 : (i % 101 == 0 ? 86400.0 * 30 : 3600.0);
        ASSERT_EQ(ft_push(&s, &c, t, v, f), RC_OK);
        for (int k = 0; k < FT_NFEAT; k++) ASSERT(isfinite(f[k]));
        ft_denorm(&s, in, out, 6);
        for (int k = 0; k < 6; k++) ASSERT(isfinite(out[k]));
    }
    ASSERT_NEAR(ft_period(&s), 3600.0, 1.0);
    /* Time going backwards or Inf values are refused and change nothing. */
    ft_state keep = s;
    ASSERT_EQ(ft_push(&s, &c, t - 1, 1.0, f), RC_ERR_PROTO);
    ASSERT_EQ(ft_push(&s, &c, t + 1, INFINITY, f), RC_ERR_NUMERIC);
    ASSERT_EQ(ft_push(&s, &c, t + 1, 1e308, f), RC_ERR_NUMERIC);
    ASSERT_EQ(ft_push(&s, &c, t + 1, -3.5e38, f), RC_ERR_NUMERIC);
    ASSERT(memcmp(&keep, &s, sizeof s) == 0);
}

TEST(normalizer_robust_to_outlier_and_follows_shift) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s;
    ft_init(&s, &c);
    double t = 0;
    for (int i = 0; i < 400; i++) ft_push(&s, &c, t += 60, 50 + (i % 5), NULL);
    double lv = s.level, sc = s.scale;
    ft_push(&s, &c, t += 60, 1e6, NULL); /* one huge outlier */
    ASSERT_LT(fabs(s.level - lv), 0.2 * 5 * sc);
    ASSERT_LT(s.scale, 1.2 * sc);
    for (int i = 0; i < 600; i++) ft_push(&s, &c, t += 60, 500 + (i % 5), NULL); /* shift */
    ASSERT_NEAR(s.level, 502, 25); /* within 5% after ~6 half-lives */
}

/* One absurd but finite sample before the normalizer is warm, first or
 * second: the level, the scale and the seasonal memory are those of the
 * normal values one sample later (they were ~1e29 for thousands of
 * samples), and every baseline is finite and near them. */
TEST(normalizer_robust_to_one_absurd_early_sample) {
    for (int at = 0; at < 3; at++) {
        ft_cfg c;
        ft_cfg_default(&c);
        ft_state s;
        ft_init(&s, &c);
        double t = 0;
        for (int i = 0; i < 400; i++) {
            ASSERT_EQ(ft_push(&s, &c, t += 300, i == at ? 1e30 : 50 + (i % 5), NULL), RC_OK);
            if (i > at) {
                ASSERT_LT(fabs(s.level - 52), 5);
                ASSERT_LT(s.scale, 10);
            }
        }
        for (int h = 1; h <= 48; h++) ASSERT_LT(fabs(ft_baseline(&s, h) - 52), 10);
        for (int k = 0; k < FT_SBINS; k++) ASSERT_LT(fabs(s.slope[k]), 10);
    }
    /* Values near 0 and a jump by 1e3 units are not absurd: warm-up as before. */
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s;
    ft_init(&s, &c);
    ft_push(&s, &c, 60, 0.0, NULL);
    ft_push(&s, &c, 120, 900.0, NULL);
    ASSERT_NEAR(s.level, 450, 1e-9);
    /* A clock jump of 1e13 periods: the gap fill's count did not fit an
     * int (undefined behaviour, found by clicsv_fuzz under UBSan). */
    float f[FT_NFEAT];
    ASSERT_EQ(ft_push(&s, &c, 180, 1.0, f), RC_OK);
    ASSERT_EQ(ft_push(&s, &c, 6e14, 1.0, f), RC_OK);
    for (int i = 0; i < FT_NFEAT; i++) ASSERT(isfinite(f[i]));
}

TEST(period_estimate_ignores_gaps_follows_rate_change) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s;
    ft_init(&s, &c);
    double t = 0;
    for (int i = 0; i < 50; i++) ft_push(&s, &c, t += 60, 1, NULL);
    ft_push(&s, &c, t += 6000, 1, NULL);
    ASSERT_NEAR(ft_period(&s), 60, 1e-9);
    for (int i = 0; i < 10; i++) ft_push(&s, &c, t += 10, 1, NULL);
    ASSERT_NEAR(ft_period(&s), 10, 0.5);
}

/* Hourly points of a daily sine, joined by straight lines. */
static double hourly_sine(double t) {
    double hr = floor(t / 3600.0), f = t / 3600.0 - hr;
    double a = sin(2 * 3.14159265358979323846 * hr / 24), b = sin(2 * 3.14159265358979323846 * (hr + 1) / 24);
    return 100 + 30 * (a + f * (b - a));
}

/* On a daily pattern each bin of the seasonal memory learns the change per
 * sample of its hour, so baseline(h) = last + (1 - e^-h) (v(t+h) - v(t)):
 * seasonal naive at long horizons, the last value shrunk towards it at
 * short ones. Hourly (one sample per bin, exact) and every 10 s (360 per
 * bin; the sample on the hour is counted in the new hour, hence the
 * tolerance). */
TEST(seasonal_memory_baseline_on_periodic_data) {
    static const double dts[2] = {3600.0, 10.0}, tol[2] = {1e-6, 0.05};
    for (int k = 0; k < 2; k++) {
        double dt = dts[k];
        int n = (int)(10 * 86400.0 / dt) + 7;
        ft_cfg c;
        ft_cfg_default(&c);
        ft_state s;
        ft_init(&s, &c);
        for (int i = 0; i < n; i++) ASSERT_EQ(ft_push(&s, &c, dt * i, hourly_sine(dt * i), NULL), RC_OK);
        ASSERT_EQ(s.sbins, 24u);
        double last = hourly_sine(dt * (n - 1)), b[48];
        ft_baselines(&s, 48, b);
        for (int h = 1; h <= 48; h++) {
            double v = hourly_sine(dt * (n - 1 + h));
            ASSERT_NEAR(b[h - 1], last + (1 - exp(-h)) * (v - last), tol[k]);
            ASSERT_EQ(ft_baseline(&s, h), b[h - 1]);
        }
    }
    /* Before anything is known, the last value. */
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s2;
    ft_init(&s2, &c);
    ft_push(&s2, &c, 0, 7.0, NULL);
    float in[3] = {-1, 0, 1}, out[3];
    ft_denorm(&s2, in, out, 3);
    ASSERT_EQ(out[1], 7.0f);
    /* A trend is a change per sample in every bin: it is carried forward. */
    ft_init(&s2, &c);
    for (int i = 0; i < 24 * 12; i++) ft_push(&s2, &c, 3600.0 * i, 0.5 * i, NULL);
    ASSERT_NEAR(ft_baseline(&s2, 48), 0.5 * (24 * 12 - 1) + (1 - exp(-48)) * 0.5 * 48, 1e-3);
}

/* ft_denorm for Q = 1, 3, 5, from the first sample (no seasonal memory yet)
 * over the first days, for 50 horizons, in place and not: ft_baseline(h) +
 * scale * in, bit for bit, and ft_baselines gives the same baselines. */
TEST(denorm_matches_baseline) {
    for (int Q = 1; Q <= 5; Q += 2) {
        ft_cfg c;
        ft_cfg_default(&c);
        c.n_quant = (uint32_t)Q;
        ft_state s;
        ft_init(&s, &c);
        for (int i = 0; i < 80; i++) {
            ft_push(&s, &c, 3600.0 * i, 100 + 30 * sin(i * 0.2617993878) + (i % 5), NULL);
            enum { H = 50 };
            float in[H * 5], out[H * 5], again[H * 5];
            double b[H];
            int n = H * Q;
            for (int k = 0; k < n; k++) in[k] = (float)((k * 7 + i) % 13) * 0.37f - 2.0f;
            ft_denorm(&s, in, out, n);
            ft_baselines(&s, H, b);
            for (int k = 0; k < n; k++) {
                ASSERT_EQ(out[k], (float)(ft_baseline(&s, k / Q + 1) + s.scale * (double)in[k]));
                ASSERT_EQ(b[k / Q], ft_baseline(&s, k / Q + 1));
            }
            memcpy(again, in, sizeof in);
            ft_denorm(&s, again, again, n);
            ASSERT(memcmp(again, out, (size_t)n * sizeof *out) == 0);
        }
    }
}

TEST(cfg_meta_round_trip) {
    ft_cfg c, d;
    ft_cfg_default(&c);
    c.norm_halflife = 33;
    rk_meta m;
    memset(&m, 0, sizeof m);
    ft_cfg_to_meta(&c, &m);
    ASSERT_EQ(ft_cfg_from_meta(&d, &m), RC_OK);
    ASSERT(d.norm_halflife == 33 && d.n_quant == c.n_quant && d.season_s == c.season_s);
    m.feat_kind = 99;
    ASSERT_EQ(ft_cfg_from_meta(&d, &m), RC_ERR_VERSION);
}

TEST(save_load_bit_identical) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state a, b;
    ft_init(&a, &c);
    for (int i = 0; i < 77; i++) ft_push(&a, &c, 3600.0 * i, i % 11 ? sig(i) : NAN, NULL);
    uint8_t buf[FT_BLOB_SIZE], buf2[FT_BLOB_SIZE];
    ft_save(&a, buf);
    ASSERT_EQ(ft_load(&b, buf, sizeof buf), RC_OK);
    ft_save(&b, buf2);
    ASSERT(memcmp(buf, buf2, sizeof buf) == 0);
    for (int i = 77; i < 200; i++) {
        float fa[FT_NFEAT], fb[FT_NFEAT];
        ft_push(&a, &c, 3600.0 * i, sig(i), fa);
        ft_push(&b, &c, 3600.0 * i, sig(i), fb);
        ASSERT(memcmp(fa, fb, sizeof fa) == 0);
    }
    ASSERT_EQ(ft_load(&b, buf, sizeof buf - 1), RC_ERR_FORMAT);
    buf[0] ^= 1;
    ASSERT_EQ(ft_load(&b, buf, sizeof buf), RC_ERR_FORMAT);
}

/* The medium slot of a sample is its time-of-day bin (read with the next
 * one, written with the seasonal memory's weight), at any sampling period:
 * hourly data has one sample per bin per day, 10 s data 360. Until the
 * period is known there is no slot, and 12 bins map onto 6 mediums. */
TEST(medium_slots_follow_time_of_day) {
    ft_cfg c;
    ft_cfg_default(&c);
    ft_state s;
    rk_mslot sl;
    ft_init(&s, &c);
    const double t0 = 1700006400.0; /* a UTC midnight */
    ASSERT_EQ(ft_push(&s, &c, t0, 1.0, NULL), RC_OK);
    ft_medium_slot(&s, 24, &sl);
    ASSERT(sl.rd0 == -1 && sl.rd1 == -1 && sl.wr == -1); /* period unknown */
    for (int i = 1; i < 24 * 10; i++) {
        ASSERT_EQ(ft_push(&s, &c, t0 + 3600.0 * i, sig(i), NULL), RC_OK);
        ft_medium_slot(&s, 24, &sl);
        if (i < 24) continue;
        ASSERT_EQ(sl.rd0, i % 24);
        ASSERT_EQ(sl.rd1, (i + 1) % 24);
        ASSERT_EQ(sl.wr, i % 24);
        /* An average while young (1/n), then EW over FT_SDAYS days. */
        ASSERT(sl.alpha >= 1.0f / FT_SDAYS - 1e-6f && sl.alpha <= 1.0f);
    }
    ASSERT_NEAR(sl.alpha, 1.0f / FT_SDAYS, 1e-6);
    ft_medium_slot(&s, 6, &sl); /* 24 bins onto 6 mediums: 4 hours each */
    ASSERT_EQ(sl.rd0, (239 % 24) / 4);
    ASSERT_EQ(sl.wr, (239 % 24) / 4);
    /* 10 s sampling: the floor of the weight is dt / (FT_SDAYS * 3600). */
    ft_init(&s, &c);
    for (int i = 0; i < 8640 * 5; i++) ASSERT_EQ(ft_push(&s, &c, t0 + 10.0 * i, sig(i / 360), NULL), RC_OK);
    ft_medium_slot(&s, 24, &sl);
    ASSERT_EQ(sl.wr, 23);
    ASSERT_EQ(sl.rd1, 0);
    ASSERT_NEAR(sl.alpha, 10.0 / (FT_SDAYS * 3600.0), 1e-7);
}

TT_MAIN(TEST_ENTRY(medium_slots_follow_time_of_day), TEST_ENTRY(causal_prefix), TEST_ENTRY(phase_features_equal_formula_for_shared_and_interleaved_times),
        TEST_ENTRY(nan_and_gaps_give_finite_features),
        TEST_ENTRY(normalizer_robust_to_outlier_and_follows_shift),
        TEST_ENTRY(normalizer_robust_to_one_absurd_early_sample),
        TEST_ENTRY(period_estimate_ignores_gaps_follows_rate_change),
        TEST_ENTRY(seasonal_memory_baseline_on_periodic_data),
        TEST_ENTRY(denorm_matches_baseline), TEST_ENTRY(cfg_meta_round_trip),
        TEST_ENTRY(save_load_bit_identical))
