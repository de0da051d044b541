/*
 * timewheel_test.c: the timing wheel of the silence alerts (daemon/timewheel.c):
 * deadlines fire once, at their tick, never early; lazy re-arming, earlier
 * re-arming, disarm, deadlines beyond one rotation, the visit budget, and a
 * randomized comparison with a brute-force model. Time is simulated (no
 * clock is read), so nothing here depends on the machine's speed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>

#include "daemon/timewheel.h"
#include "tests/unit/harness.h"

#define TICK 1000 /* ns per tick in these tests */

static uint32_t fired[4096];
static int64_t fired_at[4096];
static int n_fired;
static int64_t now_ns;

static void on_fire(void *ctx, uint32_t slot) {
    (void)ctx;
    fired[n_fired % 4096] = slot;
    fired_at[n_fired % 4096] = now_ns;
    n_fired++;
}

/* Advances the simulated clock to t and runs the wheel with a large budget. */
static void run_to(tw_wheel *w, int64_t t) {
    now_ns = t;
    ASSERT_EQ(tw_advance(w, t, 1u << 30, on_fire, NULL), 0);
}

TEST(fires_once_at_its_tick) {
    rc_err err;
    n_fired = 0;
    tw_wheel *w = tw_new(8, 16, TICK, 0, &err);
    ASSERT(w);
    ASSERT_EQ(tw_new(8, 12, TICK, 0, &err), NULL); /* not a power of two */
    ASSERT_EQ(err, RC_ERR_CONFIG);
    tw_arm(w, 3, 5 * TICK + 1); /* rounded up to tick 6 */
    ASSERT(tw_armed(w, 3));
    ASSERT_EQ(tw_count(w), 1);
    for (int64_t t = 0; t < 6 * TICK; t += TICK / 2) run_to(w, t);
    ASSERT_EQ(n_fired, 0);
    run_to(w, 6 * TICK);
    ASSERT_EQ(n_fired, 1);
    ASSERT_EQ(fired[0], 3);
    ASSERT(!tw_armed(w, 3));
    ASSERT_EQ(tw_count(w), 0);
    run_to(w, 100 * TICK);
    ASSERT_EQ(n_fired, 1);
    /* Out-of-range slots are ignored. */
    tw_arm(w, 8, 0);
    tw_disarm(w, 9);
    ASSERT_EQ(tw_count(w), 0);
    tw_free(w);
}

TEST(lazy_rearm_and_earlier_rearm) {
    rc_err err;
    n_fired = 0;
    tw_wheel *w = tw_new(4, 8, TICK, 0, &err);
    /* A series that keeps sending: its deadline moves later every tick and
     * never fires while it does. */
    for (int64_t t = 0; t < 1000 * TICK; t += TICK) {
        tw_arm(w, 0, t + 5 * TICK);
        run_to(w, t);
    }
    ASSERT_EQ(n_fired, 0);
    run_to(w, 1000 * TICK + 3 * TICK);
    ASSERT_EQ(n_fired, 0);
    run_to(w, 1000 * TICK + 4 * TICK);
    ASSERT_EQ(n_fired, 1);
    /* A deadline moved earlier fires at the earlier time. */
    int64_t b = 2000 * TICK;
    run_to(w, b);
    tw_arm(w, 1, b + 50 * TICK);
    tw_arm(w, 1, b + 3 * TICK);
    run_to(w, b + 2 * TICK);
    ASSERT_EQ(n_fired, 1);
    run_to(w, b + 3 * TICK);
    ASSERT_EQ(n_fired, 2);
    ASSERT_EQ(fired[1], 1);
    /* Disarmed: never fires; a past deadline fires at the next tick. */
    tw_arm(w, 2, b + 10 * TICK);
    tw_disarm(w, 2);
    tw_arm(w, 3, 0);
    run_to(w, b + 4 * TICK);
    ASSERT_EQ(n_fired, 3);
    ASSERT_EQ(fired[2], 3);
    run_to(w, b + 100 * TICK);
    ASSERT_EQ(n_fired, 3);
    tw_free(w);
}

TEST(deadlines_beyond_one_rotation) {
    rc_err err;
    n_fired = 0;
    tw_wheel *w = tw_new(4, 4, TICK, 0, &err);
    tw_arm(w, 0, 37 * TICK);
    tw_arm(w, 1, 4 * TICK); /* slot 0 passes its bucket 9 times before it fires */
    for (int64_t t = 0; t <= 36 * TICK; t += TICK) run_to(w, t);
    ASSERT_EQ(n_fired, 1);
    ASSERT_EQ(fired[0], 1);
    run_to(w, 37 * TICK);
    ASSERT_EQ(n_fired, 2);
    ASSERT_EQ(fired[1], 0);
    /* A stalled caller catches up in one call: every tick in between. */
    tw_arm(w, 2, 100 * TICK);
    tw_arm(w, 3, 90 * TICK);
    run_to(w, 500 * TICK);
    ASSERT_EQ(n_fired, 4);
    ASSERT_EQ(fired[2], 3); /* in deadline order */
    ASSERT_EQ(fired[3], 2);
    tw_free(w);
}

static tw_wheel *rearm_w;
static void fire_rearm(void *ctx, uint32_t slot) {
    on_fire(ctx, slot);
    tw_arm(rearm_w, slot, now_ns + 10 * TICK); /* a periodic deadline */
}

TEST(budget_bounds_each_call) {
    rc_err err;
    n_fired = 0;
    enum { N = 1000 };
    tw_wheel *w = tw_new(N, 64, TICK, 0, &err);
    for (uint32_t s = 0; s < N; s++) tw_arm(w, s, 7 * TICK);
    now_ns = 7 * TICK;
    int calls = 0;
    while (tw_advance(w, now_ns, 100, on_fire, NULL)) {
        calls++;
        ASSERT_LE(n_fired, 100 * calls);
        ASSERT(calls < 100);
    }
    ASSERT_EQ(n_fired, N);
    ASSERT_EQ(tw_count(w), 0);
    /* The callback may arm the slot it was called for. */
    rearm_w = w;
    n_fired = 0;
    tw_arm(w, 5, now_ns + TICK);
    for (int k = 1; k <= 41; k++) {
        now_ns = 7 * TICK + k * TICK;
        ASSERT_EQ(tw_advance(w, now_ns, 1u << 30, fire_rearm, NULL), 0);
    }
    ASSERT_EQ(n_fired, 5); /* at +1, +11, +21, +31, +41 ticks */
    tw_free(w);
}

/* Randomized against a brute-force model: every armed slot must fire at
 * the first advance whose tick reaches its deadline's, and only then. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

TEST(matches_brute_force) {
    enum { N = 64 };
    rc_err err;
    tw_wheel *w = tw_new(N, 16, TICK, 0, &err);
    int64_t due[N]; /* deadline tick, -1 = not armed */
    for (int i = 0; i < N; i++) due[i] = -1;
    int64_t tick = 0;
    for (int step = 0; step < 200000; step++) {
        uint32_t s = (uint32_t)(rnd() % N);
        int op = (int)(rnd() % 8);
        if (op < 4) {
            /* Arm 0..60 ticks ahead (up to ~4 rotations), at a random offset within a tick. */
            int64_t ahead = (int64_t)(rnd() % 61);
            int64_t when = (tick + ahead) * TICK - (int64_t)(rnd() % TICK);
            tw_arm(w, s, when);
            int64_t t = when <= 0 ? 0 : (when + TICK - 1) / TICK;
            if (t < tick + 1) t = tick + 1; /* the wheel's next tick to process */
            due[s] = t;
        } else if (op == 4) {
            tw_disarm(w, s);
            due[s] = -1;
        } else {
            tick += (int64_t)(rnd() % 3);
            n_fired = 0;
            now_ns = tick * TICK;
            ASSERT_EQ(tw_advance(w, now_ns, 1u << 30, on_fire, NULL), 0);
            int expect = 0;
            for (int i = 0; i < N; i++) expect += due[i] >= 0 && due[i] <= tick;
            ASSERT_EQ(n_fired, expect);
            for (int k = 0; k < n_fired; k++) {
                ASSERT(due[fired[k]] >= 0 && due[fired[k]] <= tick);
                due[fired[k]] = -1;
            }
        }
        uint32_t armed = 0;
        for (int i = 0; i < N; i++) armed += due[i] >= 0;
        ASSERT_EQ(tw_count(w), armed);
        ASSERT_EQ(tw_armed(w, s), due[s] >= 0);
    }
    tw_free(w);
}

TT_MAIN(TEST_ENTRY(fires_once_at_its_tick), TEST_ENTRY(lazy_rearm_and_earlier_rearm),
        TEST_ENTRY(deadlines_beyond_one_rotation), TEST_ENTRY(budget_bounds_each_call),
        TEST_ENTRY(matches_brute_force))
