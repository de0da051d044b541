/*
 * synth_test.c: the synthetic generator is deterministic per seed, differs
 * across seeds, and produces finite values (NaN only where missing).
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/synth.h"

#include "tests/unit/harness.h"

TEST(deterministic_per_seed) {
    static double t1[1000], v1[1000], t2[1000], v2[1000];
    for (int k = 0; k < SY_KIND_COUNT; k++) {
        sy_params p, q;
        sy_draw(&p, k, 42);
        sy_draw(&q, k, 42);
        sy_generate(&p, 1e9, 3600, 1000, t1, v1);
        sy_generate(&q, 1e9, 3600, 1000, t2, v2);
        ASSERT(memcmp(t1, t2, sizeof t1) == 0);
        ASSERT(memcmp(v1, v2, sizeof v1) == 0);
        sy_draw(&q, k, 43);
        sy_generate(&q, 1e9, 3600, 1000, t2, v2);
        ASSERT(memcmp(v1, v2, sizeof v1) != 0);
        int nan = 0;
        for (int i = 0; i < 1000; i++) {
            ASSERT(!isinf(v1[i]));
            nan += isnan(v1[i]);
            if (i) ASSERT(t1[i] > t1[i - 1]);
        }
        ASSERT_LT(nan, 100);
    }
}

TEST(names_round_trip) {
    for (int k = 0; k < SY_KIND_COUNT; k++) ASSERT_EQ(sy_kind_from_name(sy_kind_name(k)), k);
    ASSERT_EQ(sy_kind_from_name("nope"), -1);
}

TEST(base_is_daily_periodic) {
    sy_params p;
    sy_draw(&p, SY_DAILY, 5);
    ASSERT_NEAR(sy_base(&p, 1000.0), sy_base(&p, 1000.0 + 86400.0), 1e-6 * p.level);
}

TT_MAIN(TEST_ENTRY(deterministic_per_seed), TEST_ENTRY(names_round_trip),
        TEST_ENTRY(base_is_daily_periodic))
