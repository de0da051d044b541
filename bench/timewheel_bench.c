/*
 * timewheel_bench.c: cost of the silence timers (daemon/timewheel.c) per
 * sample, at 1k, 100k and 1M series, on a simulated clock.
 *
 * Steady state: every series sends once per period P (in a random order,
 * as samples of many series interleave) and each sample re-arms its
 * series' deadline 5 P ahead (anomaly.silence's default), with the wheel
 * advanced every 1024 samples, as the daemon's 50 ms timer does. Then the
 * worst case: every series falls silent at once and all deadlines fire.
 * Prints ns per sample and per fired deadline; compare with the model's
 * time per sample (`build/bench/rwkv_bench`, B = 256 row) for the share of
 * a sample the timers cost. One thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "daemon/timewheel.h"

static uint64_t fired;
static void on_fire(void *ctx, uint32_t slot) {
    (void)ctx;
    fired += slot | 1;
}

int main(void) {
    enum { SAMPLES = 8000000 };
    const int64_t tick = 50000000; /* 50 ms, as AL_TICK_S */
    uint32_t *order = malloc(sizeof *order * SAMPLES);
    if (!order) return 1;
    printf("| series | ns per sample (re-arm + advance) | ns per fired deadline (all silent at once) |\n");
    printf("|---:|---:|---:|\n");
    for (uint32_t n = 1000; n <= 1000000; n *= 10) {
        if (n == 10000) continue;
        rc_err err;
        tw_wheel *w = tw_new(n, 4096, tick, 0, &err);
        if (!w) return 1;
        uint64_t x = 88172645463325252ULL;
        for (int i = 0; i < SAMPLES; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order[i] = (uint32_t)(x % n);
        }
        /* One period P = 1 s is shared by the n series. */
        const int64_t step = 1000000000LL / n;
        int64_t now = 0;
        int64_t t0 = lg_mono_ns();
        for (int i = 0; i < SAMPLES; i++) {
            now += step;
            tw_arm(w, order[i], now + 5000000000LL);
            if ((i & 1023) == 0) tw_advance(w, now, 4096, on_fire, NULL);
        }
        double per_sample = (double)(lg_mono_ns() - t0) / SAMPLES;
        uint32_t armed = tw_count(w);
        t0 = lg_mono_ns();
        now += 10000000000LL;
        while (tw_advance(w, now, 4096, on_fire, NULL)) {
        }
        double per_fire = armed ? (double)(lg_mono_ns() - t0) / armed : 0;
        printf("| %u | %.1f | %.1f |\n", n, per_sample, per_fire);
        tw_free(w);
    }
    free(order);
    return fired == 0; /* keeps the callback's work */
}
