/*
 * registry.h: the series registry: series id -> dense engine slot, and back.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), sized at creation to a power of two >= 2 * max_series, so
 * probes stay short and nothing is allocated after rg_new. An intrusive
 * doubly linked list orders slots by last use for the evict-LRU policy:
 * rg_touch is O(1), rg_lru is O(1).
 *
 * Threads: not thread-safe; the event-loop thread owns the registry.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

#define RG_ID_MAX 255 /* bytes */
#define RG_NONE UINT32_MAX

typedef struct rg_registry rg_registry;

/* NULL with *err (RC_ERR_NOMEM, or RC_ERR_CONFIG when max_series is 0). */
rg_registry *rg_new(uint32_t max_series, rc_err *err);
void rg_free(rg_registry *r);

/* Slot of id (len bytes, 1..RG_ID_MAX), or RG_NONE. */
uint32_t rg_find(const rg_registry *r, const char *id, size_t len);
/*
 * The same lookup in steps, for a caller that sees ids ahead of using them:
 * rg_hash once per id, rg_prefetch_bucket soon after, rg_prefetch_slot once
 * the bucket has had time to arrive, rg_find_hashed last. With many series
 * both the bucket and the slot are cache misses; fetched early, the lookup
 * finds them in cache. The prefetches only read, so any rg_insert or
 * rg_remove in between is harmless.
 */
uint64_t rg_hash(const char *id, size_t len);
void rg_prefetch_bucket(const rg_registry *r, uint64_t hash);
void rg_prefetch_slot(const rg_registry *r, uint64_t hash);
uint32_t rg_find_hashed(const rg_registry *r, const char *id, size_t len, uint64_t hash);
/* Registers a new id (must not be present) in a free slot, most recently
 * used. RC_ERR_LIMIT when every slot is taken. */
rc_err rg_insert(rg_registry *r, const char *id, size_t len, uint32_t *slot);
/* Removes slot (in use) from the map; the slot becomes free. */
void rg_remove(rg_registry *r, uint32_t slot);
/* Marks slot most recently used. */
void rg_touch(rg_registry *r, uint32_t slot);
/* Least recently used slot in use, or RG_NONE when empty. */
uint32_t rg_lru(const rg_registry *r);

/* Id of a slot in use (NUL-terminated, borrowed until removal), or NULL. */
const char *rg_id(const rg_registry *r, uint32_t slot, size_t *len);
uint32_t rg_count(const rg_registry *r);
uint32_t rg_capacity(const rg_registry *r);
/* Next slot in use at or after `from`, in slot order, or RG_NONE. */
uint32_t rg_next(const rg_registry *r, uint32_t from);

#endif
