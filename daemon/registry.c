/*
 * registry.c: the series registry (registry.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/registry.h"

#include <string.h>

typedef struct rg_slot {
    uint64_t hash;           /* FNV-1a of the id */
    uint32_t prev, next;     /* LRU list neighbours (RG_NONE at the ends) */
    uint16_t len;            /* id bytes; 0 = free */
    char id[RG_ID_MAX + 1];  /* NUL-terminated */
} rg_slot;

struct rg_registry {
    uint32_t max;       /* slots */
    uint32_t count;     /* slots in use */
    uint32_t mask;      /* table size - 1 */
    uint32_t *table;    /* (mask+1) slot+1, 0 = empty bucket */
    rg_slot *slots;     /* (max) */
    uint32_t *free;     /* (max) stack of free slots */
    uint32_t n_free;    /* entries on the free stack */
    uint32_t head, tail;/* most and least recently used */
};

rg_registry *rg_new(uint32_t max_series, rc_err *err) {
    rg_registry *r = NULL;
    if (max_series == 0 || max_series > (1u << 30)) { *err = RC_ERR_CONFIG; return NULL; }
    *err = RC_ERR_NOMEM;
    r = rc_calloc(1, sizeof *r);
    if (!r) goto err;
    uint32_t size = 16;
    while (size < 2 * max_series) size <<= 1;
    r->max = max_series;
    r->mask = size - 1;
    r->table = rc_calloc(size, sizeof *r->table);
    r->slots = rc_calloc(max_series, sizeof *r->slots);
    r->free = rc_calloc(max_series, sizeof *r->free);
    if (!r->table || !r->slots || !r->free) goto err;
    /* Lowest slots first, so a fresh daemon fills 0, 1, 2, ... */
    for (uint32_t i = 0; i < max_series; i++) r->free[i] = max_series - 1 - i;
    r->n_free = max_series;
    r->head = r->tail = RG_NONE;
    *err = RC_OK;
    return r;
err:
    rg_free(r);
    return NULL;
}

void rg_free(rg_registry *r) {
    if (!r) return;
    rc_free(r->free);
    rc_free(r->slots);
    rc_free(r->table);
    rc_free(r);
}

uint64_t rg_hash(const char *id, size_t len) { return rc_hash64(RC_HASH_INIT, id, len); }

void rg_prefetch_bucket(const rg_registry *r, uint64_t hash) {
    __builtin_prefetch(&r->table[(uint32_t)hash & r->mask]);
}

void rg_prefetch_slot(const rg_registry *r, uint64_t hash) {
    uint32_t e = r->table[(uint32_t)hash & r->mask]; /* the first probe: almost always the one */
    if (e) __builtin_prefetch(&r->slots[e - 1]);
}

uint32_t rg_find(const rg_registry *r, const char *id, size_t len) {
    return rg_find_hashed(r, id, len, rg_hash(id, len));
}

uint32_t rg_find_hashed(const rg_registry *r, const char *id, size_t len, uint64_t h) {
    if (len == 0 || len > RG_ID_MAX) return RG_NONE;
    for (uint32_t i = (uint32_t)h & r->mask;; i = (i + 1) & r->mask) {
        uint32_t e = r->table[i];
        if (!e) return RG_NONE;
        const rg_slot *s = &r->slots[e - 1];
        if (s->hash == h && s->len == len && memcmp(s->id, id, len) == 0) return e - 1;
    }
}

static void lru_unlink(rg_registry *r, uint32_t slot) {
    rg_slot *s = &r->slots[slot];
    if (s->prev != RG_NONE) r->slots[s->prev].next = s->next; else r->head = s->next;
    if (s->next != RG_NONE) r->slots[s->next].prev = s->prev; else r->tail = s->prev;
    s->prev = s->next = RG_NONE;
}

static void lru_push_head(rg_registry *r, uint32_t slot) {
    rg_slot *s = &r->slots[slot];
    s->prev = RG_NONE;
    s->next = r->head;
    if (r->head != RG_NONE) r->slots[r->head].prev = slot; else r->tail = slot;
    r->head = slot;
}

rc_err rg_insert(rg_registry *r, const char *id, size_t len, uint32_t *slot) {
    if (len == 0 || len > RG_ID_MAX) return RC_ERR_PROTO;
    if (r->n_free == 0) return RC_ERR_LIMIT;
    uint32_t sl = r->free[--r->n_free];
    rg_slot *s = &r->slots[sl];
    s->hash = rg_hash(id, len);
    s->len = (uint16_t)len;
    memcpy(s->id, id, len);
    s->id[len] = 0;
    uint32_t i = (uint32_t)s->hash & r->mask;
    while (r->table[i]) i = (i + 1) & r->mask;
    r->table[i] = sl + 1;
    lru_push_head(r, sl);
    r->count++;
    *slot = sl;
    return RC_OK;
}

void rg_remove(rg_registry *r, uint32_t slot) {
    if (NEVER(slot >= r->max || r->slots[slot].len == 0)) return;
    rg_slot *s = &r->slots[slot];
    uint32_t i = (uint32_t)s->hash & r->mask;
    while (r->table[i] != slot + 1) i = (i + 1) & r->mask;
    /* Backward-shift deletion: pull later entries of the cluster into the
     * hole when their home bucket does not lie strictly between hole and them. */
    uint32_t j = i;
    for (;;) {
        r->table[i] = 0;
        for (;;) {
            j = (j + 1) & r->mask;
            if (!r->table[j]) goto done;
            uint32_t home = (uint32_t)r->slots[r->table[j] - 1].hash & r->mask;
            /* Keep entry j in place iff home is cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
            break;
        }
        r->table[i] = r->table[j];
        i = j;
    }
done:
    lru_unlink(r, slot);
    s->len = 0;
    s->id[0] = 0;
    r->free[r->n_free++] = slot;
    r->count--;
}

void rg_touch(rg_registry *r, uint32_t slot) {
    if (r->head == slot) return;
    lru_unlink(r, slot);
    lru_push_head(r, slot);
}

uint32_t rg_lru(const rg_registry *r) { return r->tail; }

const char *rg_id(const rg_registry *r, uint32_t slot, size_t *len) {
    if (slot >= r->max || r->slots[slot].len == 0) return NULL;
    if (len) *len = r->slots[slot].len;
    return r->slots[slot].id;
}

uint32_t rg_count(const rg_registry *r) { return r->count; }
uint32_t rg_capacity(const rg_registry *r) { return r->max; }

uint32_t rg_next(const rg_registry *r, uint32_t from) {
    for (uint32_t i = from; i < r->max; i++)
        if (r->slots[i].len) return i;
    return RG_NONE;
}
