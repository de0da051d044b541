/*
 * timewheel.c: hashed timing wheel with lazy re-arming (timewheel.h).
 *
 * Layout: node indices 0..n-1 are the slots, n..n+B-1 the sentinels of
 * the B bucket lists and n+B the sentinel of the list being processed;
 * every list is circular and doubly linked through prev/next, so a slot
 * leaves any list in O(1) without knowing which one it is in. A slot is
 * linked into the bucket of tick `link` and fires at tick `due >= link`:
 * when its bucket comes round and `due` is later, it is moved to the
 * bucket of `due` then. Only a deadline that moves earlier than `link`
 * (the series' period shrank, a reload lowered the silence count) moves
 * the slot at once.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/timewheel.h"

#define TW_NIL UINT32_MAX /* next[] of a slot that is in no list */
#define TW_MAX_AHEAD (1u << 30) /* ticks a deadline may lie ahead */

struct tw_wheel {
    uint32_t n;         /* slots */
    uint32_t mask;      /* buckets - 1 */
    uint32_t proc;      /* sentinel of the list being processed: n + buckets */
    uint32_t *next;     /* (n + buckets + 1) */
    uint32_t *prev;     /* (n + buckets + 1) */
    uint32_t *due;      /* (n) tick at which the slot fires */
    uint32_t *link;     /* (n) tick of the bucket the slot is linked in */
    uint32_t cur;       /* next tick to process */
    uint32_t count;     /* armed slots */
    int busy;           /* inside tw_advance: tick `cur` is being processed */
    int64_t origin_ns;  /* monotonic time of tick 0 */
    int64_t tick_ns;    /* tick length */
};

/* a before b in serial-number order (ticks wrap at 2^32). */
static int before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static void list_init(tw_wheel *w, uint32_t s) { w->next[s] = w->prev[s] = s; }

static void unlink_node(tw_wheel *w, uint32_t x) {
    w->next[w->prev[x]] = w->next[x];
    w->prev[w->next[x]] = w->prev[x];
    w->next[x] = TW_NIL;
}

static void link_at(tw_wheel *w, uint32_t x, uint32_t tick) {
    uint32_t s = w->n + (tick & w->mask);
    w->next[x] = w->next[s];
    w->prev[x] = s;
    w->prev[w->next[s]] = x;
    w->next[s] = x;
    w->link[x] = tick;
    w->due[x] = tick;
}

tw_wheel *tw_new(uint32_t n_slots, uint32_t n_buckets, int64_t tick_ns, int64_t now_ns, rc_err *err) {
    tw_wheel *w = NULL;
    rc_err rc = RC_ERR_CONFIG;
    if (n_slots < 1 || n_slots > UINT32_MAX - (1u << 25) || n_buckets < 2 || n_buckets > (1u << 24) ||
        (n_buckets & (n_buckets - 1)) || tick_ns < 1)
        goto err;
    rc = RC_ERR_NOMEM;
    if (!(w = rc_calloc(1, sizeof *w))) goto err;
    size_t nodes = (size_t)n_slots + n_buckets + 1;
    w->n = n_slots;
    w->mask = n_buckets - 1;
    w->proc = n_slots + n_buckets;
    w->next = rc_malloc(nodes * sizeof *w->next);
    w->prev = rc_malloc(nodes * sizeof *w->prev);
    w->due = rc_calloc(n_slots, sizeof *w->due);
    w->link = rc_calloc(n_slots, sizeof *w->link);
    if (!w->next || !w->prev || !w->due || !w->link) goto err;
    for (uint32_t i = 0; i < n_slots; i++) w->next[i] = TW_NIL;
    for (uint32_t b = 0; b <= n_buckets; b++) list_init(w, n_slots + b);
    w->origin_ns = now_ns;
    w->tick_ns = tick_ns;
    *err = RC_OK;
    return w;
err:
    tw_free(w);
    *err = rc;
    return NULL;
}

void tw_free(tw_wheel *w) {
    if (!w) return;
    rc_free(w->link);
    rc_free(w->due);
    rc_free(w->prev);
    rc_free(w->next);
    rc_free(w);
}

int64_t tw_tick_ns(const tw_wheel *w) { return w->tick_ns; }
uint32_t tw_count(const tw_wheel *w) { return w->count; }

int tw_armed(const tw_wheel *w, uint32_t slot) { return slot < w->n && w->next[slot] != TW_NIL; }

void tw_arm(tw_wheel *w, uint32_t slot, int64_t due_ns) {
    if (slot >= w->n) return;
    /* Rounded up: a slot never fires before its deadline. At least the
     * next tick to process, or the one after while a tick is being
     * processed (its bucket was already taken; a new entry would wait a
     * whole rotation), or when one stopped on the budget. */
    int64_t d = due_ns - w->origin_ns;
    uint32_t t = d <= 0 ? 0 : (uint32_t)((d + w->tick_ns - 1) / w->tick_ns);
    uint32_t first = w->cur + (uint32_t)(w->busy || w->next[w->proc] != w->proc);
    if (before(t, first)) t = first;
    if (before(w->cur + TW_MAX_AHEAD, t)) t = w->cur + TW_MAX_AHEAD;
    if (w->next[slot] == TW_NIL) {
        w->count++;
        link_at(w, slot, t);
    } else if (!before(t, w->link[slot])) {
        w->due[slot] = t; /* later: moved when its bucket comes round */
    } else {
        unlink_node(w, slot);
        link_at(w, slot, t);
    }
}

void tw_disarm(tw_wheel *w, uint32_t slot) {
    if (!tw_armed(w, slot)) return;
    unlink_node(w, slot);
    w->count--;
}

int tw_advance(tw_wheel *w, int64_t now_ns, uint32_t budget, tw_fire_cb *fire, void *ctx) {
    int64_t d = now_ns - w->origin_ns;
    if (d < 0) return 0;
    uint32_t now = (uint32_t)(d / w->tick_ns);
    uint32_t P = w->proc;
    w->busy = 1;
    while (!before(now, w->cur)) {
        /* The tick's bucket becomes the processing list (O(1) splice), so
         * slots moved on into the same bucket wait for its next round. */
        if (w->next[P] == P) {
            uint32_t s = w->n + (w->cur & w->mask);
            if (w->next[s] != s) {
                w->next[P] = w->next[s];
                w->prev[P] = w->prev[s];
                w->prev[w->next[P]] = P;
                w->next[w->prev[P]] = P;
                list_init(w, s);
            }
        }
        while (w->next[P] != P) {
            if (budget == 0) {
                w->busy = 0;
                return 1;
            }
            budget--;
            uint32_t x = w->next[P];
            unlink_node(w, x);
            if (before(w->cur, w->due[x])) {
                uint32_t t = w->due[x];
                link_at(w, x, t);
            } else {
                w->count--;
                fire(ctx, x);
            }
        }
        w->cur++;
    }
    w->busy = 0;
    return 0;
}
