/*
 * calibration_test.c: the online interval calibration (daemon/calibration.c):
 * coverage goes to the nominal 80% from intervals far too narrow or too
 * wide, follows a change of the noise level, and is learned per side and
 * per horizon; the blob round-trips and bad blobs are refused.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/base.h"
#include "daemon/calibration.h"
#include "tests/unit/harness.h"

enum { H = 48, Q = 3 };

/* A model output that corrects nothing. */
static const float zero_out[H * Q];

/* Standard normal draws, deterministic (Box-Muller on a 64-bit LCG). */
static double gauss(uint64_t *r) {
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((double)(*r >> 11) + 0.5) / 9007199254740992.0;
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = ((double)(*r >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979323846 * u2);
}

/* Runs n samples of y = sigma(i) * N(0,1) against a raw forecast of
 * median 0 and quantiles -/+ width (every horizon); returns the fraction
 * of the last `tail` one-step values below lo and above hi. */
static void run(ca_state *s, const ca_table *t, int n, int tail, double width, double sigma1, double sigma2,
                double *below, double *above) {
    uint64_t r = 42;
    float fc[H * Q];
    int nb = 0, na = 0;
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < H; h++) {
            fc[h * Q] = (float)-width;
            fc[h * Q + 1] = 0;
            fc[h * Q + 2] = (float)width;
        }
        ca_apply(s, t, fc, zero_out, 1.0, Q, 1, 1);
        double y = (i < n / 2 ? sigma1 : sigma2) * gauss(&r);
        if (i >= n - tail) {
            nb += y < fc[0];
            na += y > fc[2];
        }
        ca_observe(s, t, y, fc[0], fc[2]);
    }
    *below = (double)nb / tail;
    *above = (double)na / tail;
}

TEST(coverage_converges_from_too_narrow_and_too_wide) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    static const double widths[3] = {0.05, 1.2816, 12.0};
    for (int k = 0; k < 3; k++) {
        ca_state s;
        ca_init(&s);
        double lo, hi;
        run(&s, &t, 20000, 10000, widths[k], 1, 1, &lo, &hi);
        ASSERT_NEAR(lo, 0.1, 0.02);
        ASSERT_NEAR(hi, 0.1, 0.02);
    }
    ca_table_free(&t);
}

TEST(coverage_follows_a_change_of_noise_level) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    ca_state s;
    ca_init(&s);
    double lo, hi;
    /* The noise quadruples halfway; the last 8000 of 20000 are judged. */
    run(&s, &t, 20000, 8000, 1.2816, 1, 4, &lo, &hi);
    ASSERT_NEAR(lo + hi, 0.2, 0.03);
    ca_table_free(&t);
}

/* Upper misses only, and only at long horizons: the upper factor of the
 * 24-step representative grows, the lower ones and the one-step factors
 * stay near 1. */
TEST(learned_per_side_and_per_horizon) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    ca_state s;
    ca_init(&s);
    uint64_t r = 7;
    float fc[H * Q];
    double lvl = 0;
    for (int i = 0; i < 30000; i++) {
        /* A level that jumps up now and then: one step ahead it is known,
         * 24 steps ahead it may have risen. */
        for (int h = 0; h < H; h++) {
            double sd = 1.2816;
            fc[h * Q] = (float)(lvl - sd);
            fc[h * Q + 1] = (float)lvl;
            fc[h * Q + 2] = (float)(lvl + sd);
        }
        ca_apply(&s, &t, fc, zero_out, 1.0, Q, 1, 1);
        if (i % 24 == 0 && gauss(&r) > 0) lvl += 3;
        double y = lvl + gauss(&r);
        ca_observe(&s, &t, y, fc[0], fc[2]);
    }
    ASSERT_LT(s.f[0][1], 1.5f);
    ASSERT_LT(1.5f, s.f[2][1]);
    ASSERT_LT(s.f[2][0], 1.5f);
    /* Horizons between representatives interpolate in log h. */
    for (int h = 0; h < H; h++) {
        fc[h * Q] = -1;
        fc[h * Q + 1] = 0;
        fc[h * Q + 2] = 1;
    }
    ca_apply(&s, &t, fc, zero_out, 1.0, Q, 1, 1);
    ASSERT_NEAR(fc[0 * Q + 2], s.f[0][1], 1e-6);
    ASSERT_NEAR(fc[23 * Q + 2], s.f[2][1], 1e-6);
    ASSERT_NEAR(fc[47 * Q + 2], s.f[2][1], 1e-6);
    ASSERT(fc[2 * Q + 2] > fc[0 * Q + 2] && fc[2 * Q + 2] < fc[5 * Q + 2]);
    ca_table_free(&t);
}

/* The one-step correction d = scale * out_mid is kept in the share that
 * explains y - b best: all of it when it is exact, none when it is noise,
 * half when it overshoots twofold; horizons past CA_SHRINK_H keep theirs. */
TEST(median_correction_shrunk_to_what_it_explains) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    static const double mode_lambda[3] = {1.0, 0.0, 0.5};
    for (int mode = 0; mode < 3; mode++) {
        ca_state s;
        ca_init(&s);
        ASSERT_EQ(ca_lambda(&s), 1.0f);
        uint64_t r = 99;
        float fc[H * Q], out[H * Q];
        double base = 10, scale = 2;
        for (int i = 0; i < 5000; i++) {
            double step = gauss(&r); /* what the baseline misses next */
            double d = mode == 0 ? step : mode == 1 ? gauss(&r) : 2 * step;
            for (int h = 0; h < H; h++) {
                out[h * Q + 1] = (float)(d / scale);
                out[h * Q] = out[h * Q + 1] - 1;
                out[h * Q + 2] = out[h * Q + 1] + 1;
                for (int q = 0; q < Q; q++) fc[h * Q + q] = (float)(base + scale * out[h * Q + q]);
            }
            double lam = ca_lambda(&s);
            ca_apply(&s, &t, fc, out, scale, Q, 1, 1);
            if (i == 4999) {
                ASSERT_NEAR(fc[1], base + lam * d, 1e-4);
                ASSERT_NEAR(fc[1 * Q + 1], base + (1 - (1 - lam) * exp(-1.0)) * d, 1e-4);
                ASSERT_NEAR(fc[CA_SHRINK_H * Q + 1], base + d, 1e-4);
                ASSERT_NEAR(lam, mode_lambda[mode], 0.1);
            }
            ca_observe(&s, &t, base + step, fc[0], fc[2]);
        }
    }
    ca_table_free(&t);
}

TEST(forgotten_intervals_teach_nothing) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    ca_state s;
    ca_init(&s);
    float fc[H * Q] = {0};
    ca_apply(&s, &t, fc, zero_out, 1.0, Q, 1, 1);
    ca_forget_issued(&s);
    ca_observe(&s, &t, 100.0, NAN, NAN);
    for (int r = 0; r < CA_NREP; r++) ASSERT(s.f[r][0] == 1.0f && s.f[r][1] == 1.0f);
    ca_apply(&s, &t, fc, zero_out, 1.0, Q, 1, 1);
    ca_observe(&s, &t, 100.0, fc[0], fc[2]);
    ASSERT_LT(1.0f, s.f[0][1]);
    ca_table_free(&t);
}

TEST(blob_round_trip_and_refusals) {
    ca_table t;
    ASSERT_EQ(ca_table_init(&t, H, 0.1f, 0.1f), RC_OK);
    ca_state a, b;
    ca_init(&a);
    double lo, hi;
    run(&a, &t, 500, 100, 0.3, 1, 1, &lo, &hi);
    uint8_t buf[CA_BLOB_SIZE], buf2[CA_BLOB_SIZE];
    ca_save(&a, buf);
    ASSERT_EQ(ca_load(&b, buf, sizeof buf), RC_OK);
    ca_save(&b, buf2);
    ASSERT(memcmp(buf, buf2, sizeof buf) == 0);
    ASSERT_EQ(ca_load(&b, buf, sizeof buf - 1), RC_ERR_FORMAT);
    memcpy(buf2, buf, sizeof buf);
    buf2[0] ^= 1;
    ASSERT_EQ(ca_load(&b, buf2, sizeof buf2), RC_ERR_FORMAT);
    memcpy(buf2, buf, sizeof buf);
    rc_put_u32(buf2 + 4, 99);
    ASSERT_EQ(ca_load(&b, buf2, sizeof buf2), RC_ERR_VERSION);
    memcpy(buf2, buf, sizeof buf);
    rc_put_f32(buf2 + 8 + 28, 1e9f); /* a factor beyond CA_FMAX */
    ASSERT_EQ(ca_load(&b, buf2, sizeof buf2), RC_ERR_FORMAT);
    memcpy(buf2, buf, sizeof buf);
    rc_put_f32(buf2 + 8 + 28 + 4 * 2 * CA_NREP, INFINITY); /* an issued bound */
    ASSERT_EQ(ca_load(&b, buf2, sizeof buf2), RC_ERR_FORMAT);
    memcpy(buf2, buf, sizeof buf);
    rc_put_f32(buf2 + 12, -1.0f); /* a negative mean error */
    ASSERT_EQ(ca_load(&b, buf2, sizeof buf2), RC_ERR_FORMAT);
    ca_table_free(&t);
}

TT_MAIN(TEST_ENTRY(coverage_converges_from_too_narrow_and_too_wide),
        TEST_ENTRY(coverage_follows_a_change_of_noise_level), TEST_ENTRY(learned_per_side_and_per_horizon),
        TEST_ENTRY(median_correction_shrunk_to_what_it_explains), TEST_ENTRY(forgotten_intervals_teach_nothing), TEST_ENTRY(blob_round_trip_and_refusals))
