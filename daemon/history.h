/*
 * history.h: opt-in recent history of chosen series, so `rwkvcast plot -e`
 * can draw a running daemon's series (docs/PROTOCOL.md §3, `history`).
 * Prefix: hs_.
 *
 * The daemon keeps no history by default. With history.series set (an
 * fnmatch(3) pattern), each series in memory whose id matches gets a ring
 * of the last history.length samples, up to history.max_series series:
 * per sample its time and value, the one-step forecast it was judged
 * against (median and the interval's ends: what the daemon published one
 * sample earlier, as `rwkvcast replay` reports it), its anomaly score and
 * level. A series is matched once, at its first stepped sample after it
 * came into memory; the answer is kept with its slot. A matching series
 * finding every ring taken is counted (hs_stats.full) and tried again on
 * later samples until a ring is free.
 *
 * Memory: a ring is allocated when its series is first matched and freed
 * when the series leaves memory (evict, idle expiry, forget, Kafka revoke:
 * hs_slot_gone), never per sample. A ring costs history.length x
 * sizeof(hs_entry) (40 B) plus 16 B; every engine slot costs 4 B for its
 * ring index while history is on. Recording a sample is a bounds check
 * and a 40-byte store.
 *
 * Threads: the event-loop thread only (results arrive there).
 * Ownership: hs_new allocates everything, hs_free frees it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef HISTORY_H
#define HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "daemon/engine.h"

/* One sample of a series' history. */
typedef struct hs_entry {
    double t;           /* sample time, seconds since the epoch */
    double v;           /* observed value, NaN when missing */
    float yhat, lo, hi; /* the one-step forecast v was judged against; NaN before the first */
    float score;        /* anomaly score of v, 0..1 */
    int8_t level;       /* 0 ok, 1 warn, 2 alert */
    uint8_t h;          /* horizon of that forecast (1, or k after a gap of k periods); 0 none */
} hs_entry;

typedef struct hs_history hs_history;

/* What hs_lookup says of a slot. */
typedef enum hs_state {
    HS_UNCHECKED = -1, /* no stepped sample since the series came into memory */
    HS_NO_MATCH = -2,  /* its id does not match history.series */
    HS_FULL = -3       /* it matches, but history.max_series series already have a ring */
} hs_state;

typedef struct hs_stats {
    uint32_t series;    /* rings in use */
    uint64_t bytes;     /* their memory plus the per-slot index, bytes */
    uint64_t full;      /* matching series that found every ring taken (counted once per stay in memory) */
    uint64_t recorded;  /* samples written into rings */
} hs_stats;

/*
 * A history for `slots` engine slots: ids matching pattern (fnmatch(3),
 * NUL-terminated, not empty), at most max_series rings of length entries
 * (length >= 2), forecasts of Q quantiles (the median is Q / 2, the
 * interval the first and the last). NULL with *err (RC_ERR_NOMEM,
 * RC_ERR_CONFIG for a zero size).
 */
hs_history *hs_new(const char *pattern, uint32_t max_series, uint32_t length, uint32_t slots, int Q, rc_err *err);
void hs_free(hs_history *h);

/* Records result r of the series id (len bytes) in r->slot; matches the
 * id first when the slot is unchecked. Never allocates except the ring of
 * a newly matched series. */
void hs_record(hs_history *h, const char *id, size_t len, const en_result *r);
/* The series in slot left memory: its ring (if any) is freed and the slot
 * is unchecked again. */
void hs_slot_gone(hs_history *h, uint32_t slot);

/* Ring index (>= 0) of slot, or an hs_state. */
int32_t hs_lookup(const hs_history *h, uint32_t slot);
/* Entries held by ring (hs_lookup >= 0), and entry i of them, oldest first
 * (i < hs_count). */
uint32_t hs_count(const hs_history *h, int32_t ring);
const hs_entry *hs_at(const hs_history *h, int32_t ring, uint32_t i);

uint32_t hs_length(const hs_history *h);
uint32_t hs_max_series(const hs_history *h);
const char *hs_pattern(const hs_history *h);
void hs_get_stats(const hs_history *h, hs_stats *s);

#endif
