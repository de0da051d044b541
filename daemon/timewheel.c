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

#define TW_NIL UINT32_MAX /* next of a slot that is in no list */
#define TW_MAX_AHEAD (1u << 30) /* ticks a deadline may lie ahead */

/* One node: a slot's links and ticks share a 16-byte cell, so re-arming
 * a series costs one cache miss at most (four with separate arrays; at 1M
 * series nearly every sample misses). Sentinels use next/prev only. */
typedef struct tw_node {
    uint32_t next;      /* next node in its list, TW_NIL when in none */
    uint32_t prev;      /* previous node */
    uint32_t due;       /* tick at which the slot fires */
    uint32_t link;      /* tick of the bucket the slot is linked in */
} tw_node;

struct tw_wheel {
    uint32_t n;         /* slots */
    uint32_t mask;      /* buckets - 1 */
    uint32_t proc;      /* sentinel of the list being processed: n + buckets */
    tw_node *nd;        /* (n + buckets + 1) */
    uint32_t cur;       /* next tick to process */
    uint32_t count;     /* armed slots */
    int busy;           /* inside tw_advance: tick `cur` is being processed */
    int64_t origin_ns;  /* monotonic time of tick 0 */
    int64_t tick_ns;    /* tick length */
};

/* a before b in serial-number order (ticks wrap at 2^32). */
static int before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static void list_init(tw_wheel *w, uint32_t s) { w->nd[s].next = w->nd[s].prev = s; }

static void unlink_node(tw_wheel *w, uint32_t x) {
    w->nd[w->nd[x].prev].next = w->nd[x].next;
    w->nd[w->nd[x].next].prev = w->nd[x].prev;
    w->nd[x].next = TW_NIL;
}

static void link_at(tw_wheel *w, uint32_t x, uint32_t tick) {
    uint32_t s = w->n + (tick & w->mask);
    w->nd[x].next = w->nd[s].next;
    w->nd[x].prev = s;
    w->nd[w->nd[s].next].prev = x;
    w->nd[s].next = x;
    w->nd[x].link = tick;
    w->nd[x].due = tick;
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
    if (!(w->nd = rc_calloc(nodes, sizeof *w->nd))) goto err;
    for (uint32_t i = 0; i < n_slots; i++) w->nd[i].next = TW_NIL;
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
    rc_free(w->nd);
    rc_free(w);
}

int64_t tw_tick_ns(const tw_wheel *w) { return w->tick_ns; }
uint32_t tw_count(const tw_wheel *w) { return w->count; }

int tw_armed(const tw_wheel *w, uint32_t slot) { return slot < w->n && w->nd[slot].next != TW_NIL; }

void tw_arm(tw_wheel *w, uint32_t slot, int64_t due_ns) {
    if (slot >= w->n) return;
    /* Rounded up: a slot never fires before its deadline. At least the
     * next tick to process, or the one after while a tick is being
     * processed (its bucket was already taken; a new entry would wait a
     * whole rotation), or when one stopped on the budget. */
    int64_t d = due_ns - w->origin_ns;
    uint32_t t = d <= 0 ? 0 : (uint32_t)((d + w->tick_ns - 1) / w->tick_ns);
    uint32_t first = w->cur + (uint32_t)(w->busy || w->nd[w->proc].next != w->proc);
    if (before(t, first)) t = first;
    if (before(w->cur + TW_MAX_AHEAD, t)) t = w->cur + TW_MAX_AHEAD;
    if (w->nd[slot].next == TW_NIL) {
        w->count++;
        link_at(w, slot, t);
    } else if (!before(t, w->nd[slot].link)) {
        w->nd[slot].due = t; /* later: moved when its bucket comes round */
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
        if (w->nd[P].next == P) {
            uint32_t s = w->n + (w->cur & w->mask);
            if (w->nd[s].next != s) {
                w->nd[P].next = w->nd[s].next;
                w->nd[P].prev = w->nd[s].prev;
                w->nd[w->nd[P].next].prev = P;
                w->nd[w->nd[P].prev].next = P;
                list_init(w, s);
            }
        }
        while (w->nd[P].next != P) {
            if (budget == 0) {
                w->busy = 0;
                return 1;
            }
            budget--;
            uint32_t x = w->nd[P].next;
            unlink_node(w, x);
            if (before(w->cur, w->nd[x].due)) {
                uint32_t t = w->nd[x].due;
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
