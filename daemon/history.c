/*
 * history.c: per-series rings of recent samples (history.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/history.h"

#include <fnmatch.h>
#include <math.h>
#include <string.h>

#include "common/log.h"

typedef struct hs_ring {
    hs_entry *e;   /* (length) entries, rc_malloc'd when the series matched */
    uint32_t head; /* index of the next write */
    uint32_t n;    /* entries held, <= length */
} hs_ring;

struct hs_history {
    char pattern[256];   /* fnmatch(3) pattern of the ids kept */
    int match_all;       /* the pattern is "*": no fnmatch per new series */
    uint32_t max_series; /* rings */
    uint32_t length;     /* entries per ring */
    uint32_t slots;      /* engine slots */
    int Q;               /* quantiles per forecast */
    int32_t *ring_of;    /* (slots) ring index, or an hs_state */
    hs_ring *rings;      /* (max_series); e == NULL when free */
    uint32_t *free_ring; /* (max_series) stack of free ring indices */
    uint32_t n_free;     /* entries on it */
    uint64_t full;       /* see hs_stats */
    uint64_t recorded;
};

hs_history *hs_new(const char *pattern, uint32_t max_series, uint32_t length, uint32_t slots, int Q, rc_err *err) {
    *err = RC_ERR_CONFIG;
    if (!pattern[0] || strlen(pattern) >= sizeof ((hs_history *)0)->pattern || max_series == 0 || length < 2 ||
        slots == 0 || Q < 1)
        return NULL;
    *err = RC_ERR_NOMEM;
    hs_history *h = rc_calloc(1, sizeof *h);
    if (!h) return NULL;
    strcpy(h->pattern, pattern);
    h->match_all = strcmp(pattern, "*") == 0;
    h->max_series = max_series;
    h->length = length;
    h->slots = slots;
    h->Q = Q;
    h->ring_of = rc_malloc((size_t)slots * sizeof *h->ring_of);
    h->rings = rc_calloc(max_series, sizeof *h->rings);
    h->free_ring = rc_malloc((size_t)max_series * sizeof *h->free_ring);
    if (!h->ring_of || !h->rings || !h->free_ring) { hs_free(h); return NULL; }
    for (uint32_t s = 0; s < slots; s++) h->ring_of[s] = HS_UNCHECKED;
    /* Popped from the top: ring 0 is handed out first. */
    for (uint32_t i = 0; i < max_series; i++) h->free_ring[i] = max_series - 1 - i;
    h->n_free = max_series;
    *err = RC_OK;
    return h;
}

void hs_free(hs_history *h) {
    if (!h) return;
    if (h->rings)
        for (uint32_t i = 0; i < h->max_series; i++) rc_free(h->rings[i].e);
    rc_free(h->rings);
    rc_free(h->free_ring);
    rc_free(h->ring_of);
    rc_free(h);
}

static int matches(const hs_history *h, const char *id, size_t len) {
    if (h->match_all) return 1;
    char buf[256];
    /* Ids are 1..255 bytes (wire.h); one with a NUL in it matches as far as the NUL. */
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, id, len);
    buf[len] = 0;
    return fnmatch(h->pattern, buf, 0) == 0;
}

/* A ring for slot: its own, or a new one; -1 when none can be had. */
static int32_t ring_for(hs_history *h, uint32_t slot, const char *id, size_t len) {
    int32_t k = h->ring_of[slot];
    if (k >= 0) return k;
    if (k == HS_NO_MATCH) return -1;
    if (k == HS_UNCHECKED && !matches(h, id, len)) { h->ring_of[slot] = HS_NO_MATCH; return -1; }
    /* Matching (checked now, or earlier and found no room). */
    hs_entry *e = h->n_free ? rc_malloc((size_t)h->length * sizeof *e) : NULL;
    if (!e) {
        if (k == HS_UNCHECKED) h->full++;
        h->ring_of[slot] = HS_FULL;
        return -1;
    }
    uint32_t r = h->free_ring[--h->n_free];
    h->rings[r] = (hs_ring){e, 0, 0};
    h->ring_of[slot] = (int32_t)r;
    return (int32_t)r;
}

void hs_record(hs_history *h, const char *id, size_t len, const en_result *r) {
    if (r->slot >= h->slots) return;
    int32_t k = h->ring_of[r->slot];
    /* The common cases, decided without a call. */
    if (k == HS_NO_MATCH || (k == HS_FULL && h->n_free == 0)) return;
    if (k < 0 && (k = ring_for(h, r->slot, id, len)) < 0) return;
    hs_ring *g = &h->rings[k];
    hs_entry *e = &g->e[g->head];
    e->t = r->t;
    e->v = r->v;
    if (r->prev) {
        e->yhat = r->prev[h->Q / 2];
        e->lo = r->prev[0];
        e->hi = r->prev[h->Q - 1];
        e->h = (uint8_t)(r->prev_h > 255 ? 255 : r->prev_h);
    } else {
        e->yhat = e->lo = e->hi = NAN;
        e->h = 0;
    }
    e->score = r->score;
    e->level = (int8_t)r->level;
    g->head = g->head + 1 == h->length ? 0 : g->head + 1;
    if (g->n < h->length) g->n++;
    h->recorded++;
}

void hs_slot_gone(hs_history *h, uint32_t slot) {
    if (!h || slot >= h->slots) return;
    int32_t k = h->ring_of[slot];
    h->ring_of[slot] = HS_UNCHECKED;
    if (k < 0) return;
    rc_free(h->rings[k].e);
    h->rings[k] = (hs_ring){NULL, 0, 0};
    h->free_ring[h->n_free++] = (uint32_t)k;
}

int32_t hs_lookup(const hs_history *h, uint32_t slot) {
    return slot < h->slots ? h->ring_of[slot] : HS_UNCHECKED;
}

uint32_t hs_count(const hs_history *h, int32_t ring) {
    return ring >= 0 && (uint32_t)ring < h->max_series ? h->rings[ring].n : 0;
}

const hs_entry *hs_at(const hs_history *h, int32_t ring, uint32_t i) {
    const hs_ring *g = &h->rings[ring];
    /* The oldest entry is at head once the ring has wrapped, else at 0. */
    uint32_t first = g->n == h->length ? g->head : 0, j = first + i;
    return &g->e[j >= h->length ? j - h->length : j];
}

uint32_t hs_length(const hs_history *h) { return h->length; }
uint32_t hs_max_series(const hs_history *h) { return h->max_series; }
const char *hs_pattern(const hs_history *h) { return h->pattern; }

void hs_get_stats(const hs_history *h, hs_stats *s) {
    s->series = h->max_series - h->n_free;
    s->bytes = (uint64_t)s->series * (h->length * sizeof(hs_entry) + sizeof(hs_ring)) +
               (uint64_t)h->slots * sizeof *h->ring_of;
    s->full = h->full;
    s->recorded = h->recorded;
}
