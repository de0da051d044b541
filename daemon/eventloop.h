/*
 * eventloop.h: the daemon's single-threaded event loop (redis ae.c style): ZeroMQ
 * sockets and plain fds in one zmq_poll, plus timers, plus a before-sleep
 * hook that runs after every round of events (the engine flush and the
 * checkpoint handoff live there).
 *
 * Timers are kept in a small unsorted array: O(n) per round, fine for the
 * handful the daemon uses (checkpoint, stats, watchdog, rate sampler).
 * A timer callback returns its next interval in seconds or EV_NOMORE.
 *
 * Threads: one thread runs and modifies a loop. ev_stop is also called from
 * that thread (signals reach it through a self-pipe registered as an fd).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EVENTLOOP_H
#define EVENTLOOP_H

#include "common/base.h"

#define EV_NOMORE (-1.0)

typedef struct ev_loop ev_loop;
typedef void ev_io_cb(ev_loop *l, void *ctx);
typedef double ev_timer_cb(ev_loop *l, void *ctx);

/* Capacity is fixed at creation. NULL with *err on failure. */
ev_loop *ev_new(int max_io, int max_timers, rc_err *err);
void ev_free(ev_loop *l);

/* Registers a ZeroMQ socket (sock != NULL) or an fd for readability.
 * Returns a handle >= 0, or -1 when full. */
int ev_add_io(ev_loop *l, void *sock, int fd, ev_io_cb *cb, void *ctx);
/* Pauses (0) or resumes (1) an io handle. */
void ev_io_enable(ev_loop *l, int handle, int on);
/* First run after `after` seconds. Returns a timer id >= 0 or -1 when full. */
int ev_add_timer(ev_loop *l, double after, ev_timer_cb *cb, void *ctx);
/* Moves timer id's next run to `after` seconds from now. */
void ev_timer_reset(ev_loop *l, int id, double after);
void ev_set_before_sleep(ev_loop *l, ev_io_cb *cb, void *ctx);
/* Upper bound for one poll wait, seconds (default 1). */
void ev_set_max_wait(ev_loop *l, double seconds);

/* Longest busy part of one loop iteration (handlers, timers and the
 * before-sleep hook, not the poll wait) in seconds since the last call with
 * reset = 1: how long an arriving message could wait for the loop. */
double ev_max_busy(ev_loop *l, int reset);

/* Runs until ev_stop; returns RC_OK, or RC_ERR_IO when zmq_poll fails. */
rc_err ev_run(ev_loop *l);
void ev_stop(ev_loop *l);

#endif
