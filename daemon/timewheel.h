/*
 * timewheel.h: one deadline per series slot, checked without scanning all
 * series: a hashed timing wheel (Varghese and Lauck 1987) with lazy
 * re-arming. Used by the daemon's silence alerts (daemon/alerts.h): every
 * sample pushes its series' deadline later; a series whose deadline passes
 * fires once.
 *
 * Cost: tw_arm is O(1) and, in the common case of a deadline moving later,
 * only stores the new deadline (the slot stays linked where it is, and is
 * moved when its old bucket comes round). So a series that keeps sending is
 * visited about once per deadline span, not once per sample. tw_advance
 * visits only the slots linked in the buckets of the ticks that passed,
 * never every slot. Memory: 16 bytes per slot and per bucket, all
 * allocated by tw_new.
 *
 * Times are monotonic nanoseconds (lg_mono_ns); deadlines are rounded up
 * to whole ticks, so a slot fires in the first tw_advance at or after its
 * deadline's tick, at most one tick late. Ticks are 32-bit and compared by
 * serial-number arithmetic, so a deadline may lie at most 2^30 ticks ahead
 * (further ones are clamped there and re-armed on their next sample).
 *
 * Threads: one thread owns a wheel (the event loop's).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIMEWHEEL_H
#define TIMEWHEEL_H

#include <stdint.h>

#include "common/base.h"

typedef struct tw_wheel tw_wheel;

/* Called for a slot whose deadline passed; the slot is disarmed before the
 * call, so the callback may arm it again (or arm and disarm any slot). */
typedef void tw_fire_cb(void *ctx, uint32_t slot);

/*
 * A wheel for slots 0..n_slots-1 with n_buckets buckets (a power of two,
 * 2..2^24) of tick_ns each, whose tick 0 starts at now_ns. NULL with *err =
 * RC_ERR_CONFIG for bad sizes, RC_ERR_NOMEM when out of memory. Freed by
 * tw_free (NULL is fine).
 */
tw_wheel *tw_new(uint32_t n_slots, uint32_t n_buckets, int64_t tick_ns, int64_t now_ns, rc_err *err);
void tw_free(tw_wheel *w);

/* Sets slot's deadline to due_ns (a past one fires at the next tick),
 * replacing any earlier one. Out-of-range slots are ignored. */
void tw_arm(tw_wheel *w, uint32_t slot, int64_t due_ns);
/* Removes slot's deadline, if any. O(1). */
void tw_disarm(tw_wheel *w, uint32_t slot);
/* 1 when slot has a deadline. */
int tw_armed(const tw_wheel *w, uint32_t slot);
/* Slots with a deadline. */
uint32_t tw_count(const tw_wheel *w);

/*
 * Processes every tick up to now_ns: fires each slot whose deadline's
 * tick has come and moves the others on. Visits at most `budget` slots
 * (>= 1), so a burst of deadlines cannot stall the caller; returns 1 when
 * it stopped on the budget (call again soon), 0 when it caught up.
 */
int tw_advance(tw_wheel *w, int64_t now_ns, uint32_t budget, tw_fire_cb *fire, void *ctx);

/* The tick length, ns. */
int64_t tw_tick_ns(const tw_wheel *w);

#endif
