/*
 * alerts.h: alert events ("a.<series>", docs/PROTOCOL.md §2): which to
 * publish after a stepped sample, the silence alerts of series that stop
 * sending, and what every event says (kind, expected value and band,
 * since when). Prefix: al_.
 *
 * Per series slot the daemon keeps the level it last published, when that
 * level rose, how many samples it has seen and whether it is silent. An
 * event is published when a live sample's level differs from the level
 * last published; backfill samples (sent with "b": true) are scored and
 * learned by the engine but change nothing here, so the first live sample
 * after a backfill is compared with what subscribers were last told.
 *
 * Silence: after every live sample of a series that has seen at least
 * anomaly.warmup samples and has a sampling period dt, its deadline
 * becomes now + anomaly.silence x dt on a timing wheel (timewheel.h; O(1)
 * per sample, no scan of the series). A deadline that passes publishes one
 * alert event of kind "silence" (level 2, v NaN, since = the time of the
 * series' last sample); the next live sample publishes one of kind
 * "silence" with its own map, which clears it. Deadlines use the daemon's
 * monotonic clock at delivery of the sample, not the samples' timestamps.
 * A series that is forgotten or evicted is no longer watched; one restored
 * at startup or brought back from the store is watched as if it had just
 * sent a sample.
 *
 * Threads: the event-loop thread only (ig_on_result, the timer, the
 * control commands), like the rest of struct dm.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef ALERTS_H
#define ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "daemon/engine.h"
#include "daemon/eventloop.h"
#include "daemon/timewheel.h"

typedef struct dm dm;

typedef struct al_slot {
    double since;        /* time (sample t, epoch s) the published level rose from 0 */
    double silent_since; /* time of the last sample before the silence, epoch s */
    uint32_t seen;       /* samples delivered (live and backfill), saturating */
    int8_t level;        /* level last published in an alert event (or restored) */
    uint8_t silent;      /* a silence alert is raised and not cleared yet */
    uint8_t pad_[2];
} al_slot;

typedef struct al_alerts {
    al_slot *slot;        /* (max_series) */
    tw_wheel *tw;         /* silence deadlines, one per slot */
    uint32_t silent;      /* series silent now */
    uint64_t raised;      /* silence alerts raised */
    uint64_t cleared;     /* silence alerts cleared by a sample */
    uint64_t backfill;    /* samples stepped with the backfill flag */
    uint64_t held_back;   /* level changes of backfill samples not published */
} al_alerts;

/* Wheel resolution: a silence alert comes at most this late (plus the
 * loop's own latency), and the timer runs this often. */
#define AL_TICK_S 0.05

/* Allocates the per-slot state and the wheel (tick 0 = now). RC_OK or
 * RC_ERR_NOMEM; al_close frees whatever was made (a zeroed al is fine). */
rc_err al_open(al_alerts *al, uint32_t max_series);
void al_close(al_alerts *al);

/* A slot given to a new series: nothing published yet, not watched. */
void al_slot_new(dm *d, uint32_t slot);
/* A slot filled from the store (restore, brought back): its level as
 * stored counts as published (since = its last sample's time), it counts
 * as past warm-up, and it is watched from now on if its period is known. */
void al_slot_loaded(dm *d, uint32_t slot);
/* A slot whose series leaves memory (forget, evict): no longer watched. */
void al_slot_gone(dm *d, uint32_t slot);

/* After the "f." message of r (id/len its series id): publishes the
 * alert events r calls for and re-arms the series' silence deadline. */
void al_on_result(dm *d, const en_result *r, const char *id, size_t len);

/* ev timer callback (ctx is the dm): fires the silence deadlines that
 * passed, a bounded number per call; returns the next interval. */
double al_tick(ev_loop *l, void *ctx);

#endif
