/*
 * eventloop_test.c: the event loop: timers (order, re-arm, EV_NOMORE, reset), fd
 * readiness, io pause, the before-sleep hook, ev_stop and the busy-time
 * maximum.
 *
 * SPDX-License-Identifier: MIT
 */
#include <unistd.h>

#include "common/log.h"
#include "daemon/eventloop.h"
#include "tests/unit/harness.h"

static int order[16], n_order;
static int fires_b, hooks;

static double t_a(ev_loop *l, void *ctx) { (void)l; (void)ctx; order[n_order++] = 1; return EV_NOMORE; }
static double t_b(ev_loop *l, void *ctx) {
    (void)ctx;
    order[n_order++] = 2;
    if (++fires_b == 3) ev_stop(l);
    return 0.01;
}
static void hook(ev_loop *l, void *ctx) { (void)l; (void)ctx; hooks++; }

TEST(timers_and_hook) {
    rc_err err;
    ev_loop *l = ev_new(4, 4, &err);
    ASSERT(l);
    ASSERT(ev_add_timer(l, 0.02, t_b, NULL) >= 0);
    ASSERT(ev_add_timer(l, 0.001, t_a, NULL) >= 0);
    ev_set_before_sleep(l, hook, NULL);
    int64_t t0 = lg_mono_ns();
    ASSERT_EQ(ev_run(l), RC_OK);
    double took = (double)(lg_mono_ns() - t0) * 1e-9;
    ASSERT_EQ(n_order, 4);
    ASSERT_EQ(order[0], 1); /* the earlier timer first, once */
    ASSERT_EQ(order[1], 2);
    ASSERT_EQ(order[3], 2);
    ASSERT_LE(0.035, took); /* 20 ms + 2 x 10 ms */
    ASSERT_LT(took, 2.0);
    ASSERT(hooks >= 3);
    ev_free(l);
}

static int reads;
static void on_fd(ev_loop *l, void *ctx) {
    int *fds = ctx;
    char c;
    ASSERT_EQ(read(fds[0], &c, 1), 1);
    reads++;
    ev_stop(l);
}
static double never(ev_loop *l, void *ctx) { (void)l; (void)ctx; TT_FAIL_("timer should not fire"); }

TEST(fd_readiness_and_pause) {
    rc_err err;
    ev_loop *l = ev_new(2, 2, &err);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    int h = ev_add_io(l, NULL, fds[0], on_fd, fds);
    ASSERT(h >= 0);
    int t = ev_add_timer(l, 0.001, never, NULL);
    ev_timer_reset(l, t, 30); /* pushed far out: must not fire */
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    ASSERT_EQ(ev_run(l), RC_OK);
    ASSERT_EQ(reads, 1);
    /* Paused: a readable fd is not dispatched; a timer ends the run instead. */
    ev_io_enable(l, h, 0);
    ASSERT_EQ(write(fds[1], "y", 1), 1);
    ASSERT(ev_add_timer(l, 0.02, t_b, NULL) >= 0);
    fires_b = 2; /* the next t_b call stops the loop */
    ASSERT_EQ(ev_run(l), RC_OK);
    ASSERT_EQ(reads, 1);
    ASSERT(ev_add_io(l, NULL, 0, on_fd, NULL) >= 0);
    ASSERT_EQ(ev_add_io(l, NULL, 0, on_fd, NULL), -1); /* full */
    ev_free(l);
}

static int slow_runs;
static double t_slow(ev_loop *l, void *ctx) {
    (void)ctx;
    usleep(30000); /* a 30 ms handler: the iteration's busy time */
    if (++slow_runs == 2) ev_stop(l);
    return 0.005;
}

TEST(max_busy) {
    rc_err err;
    ev_loop *l = ev_new(1, 1, &err);
    ASSERT(l);
    ASSERT_EQ(ev_max_busy(l, 1), 0.0);
    ASSERT(ev_add_timer(l, 0.001, t_slow, NULL) >= 0);
    ASSERT_EQ(ev_run(l), RC_OK);
    double b = ev_max_busy(l, 1);
    ASSERT_LE(0.029, b); /* the poll wait (5 ms) is not busy time */
    ASSERT_LT(b, 1.0);
    ASSERT_EQ(ev_max_busy(l, 0), 0.0); /* reset by the read */
    ev_free(l);
}

TT_MAIN(TEST_ENTRY(timers_and_hook), TEST_ENTRY(fd_readiness_and_pause), TEST_ENTRY(max_busy))
