/*
 * eventloop.c: the event loop (eventloop.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/eventloop.h"

#include <errno.h>
#include <zmq.h>

#include "common/log.h"

typedef struct ev_io {
    ev_io_cb *cb;  /* handler */
    void *ctx;     /* its argument */
    int on;        /* polled when 1 */
    void *sock;    /* ZeroMQ socket or NULL */
    int fd;        /* fd when sock is NULL */
} ev_io;

typedef struct ev_timer {
    ev_timer_cb *cb; /* NULL = free */
    void *ctx;
    int64_t when_ns; /* monotonic due time */
} ev_timer;

struct ev_loop {
    int max_io, n_io;
    ev_io *io;               /* (max_io) */
    zmq_pollitem_t *items;   /* (max_io) rebuilt each round from enabled io */
    int *item_io;            /* (max_io) io index of each item */
    int max_timers;
    ev_timer *timers;        /* (max_timers) */
    ev_io_cb *before;        /* before-sleep hook */
    void *before_ctx;
    double max_wait;         /* seconds */
    int64_t max_busy_ns;     /* longest busy part of an iteration since the last reset */
    int stop;
};

ev_loop *ev_new(int max_io, int max_timers, rc_err *err) {
    ev_loop *l = rc_calloc(1, sizeof *l);
    *err = RC_ERR_NOMEM;
    if (!l) return NULL;
    l->max_io = max_io;
    l->max_timers = max_timers;
    l->io = rc_calloc((size_t)max_io, sizeof *l->io);
    l->items = rc_calloc((size_t)max_io, sizeof *l->items);
    l->item_io = rc_calloc((size_t)max_io, sizeof *l->item_io);
    l->timers = rc_calloc((size_t)max_timers, sizeof *l->timers);
    l->max_wait = 1.0;
    if (!l->io || !l->items || !l->item_io || !l->timers) {
        ev_free(l);
        return NULL;
    }
    *err = RC_OK;
    return l;
}

void ev_free(ev_loop *l) {
    if (!l) return;
    rc_free(l->timers);
    rc_free(l->item_io);
    rc_free(l->items);
    rc_free(l->io);
    rc_free(l);
}

int ev_add_io(ev_loop *l, void *sock, int fd, ev_io_cb *cb, void *ctx) {
    if (l->n_io == l->max_io) return -1;
    l->io[l->n_io] = (ev_io){cb, ctx, 1, sock, fd};
    return l->n_io++;
}

void ev_io_enable(ev_loop *l, int handle, int on) {
    if (handle >= 0 && handle < l->n_io) l->io[handle].on = on;
}

int ev_add_timer(ev_loop *l, double after, ev_timer_cb *cb, void *ctx) {
    for (int i = 0; i < l->max_timers; i++) {
        if (l->timers[i].cb) continue;
        l->timers[i] = (ev_timer){cb, ctx, lg_mono_ns() + (int64_t)(after * 1e9)};
        return i;
    }
    return -1;
}

void ev_timer_reset(ev_loop *l, int id, double after) {
    if (id >= 0 && id < l->max_timers && l->timers[id].cb)
        l->timers[id].when_ns = lg_mono_ns() + (int64_t)(after * 1e9);
}

void ev_set_before_sleep(ev_loop *l, ev_io_cb *cb, void *ctx) {
    l->before = cb;
    l->before_ctx = ctx;
}

void ev_set_max_wait(ev_loop *l, double seconds) { l->max_wait = seconds; }

void ev_stop(ev_loop *l) { l->stop = 1; }

double ev_max_busy(ev_loop *l, int reset) {
    double s = (double)l->max_busy_ns * 1e-9;
    if (reset) l->max_busy_ns = 0;
    return s;
}

static void run_timers(ev_loop *l) {
    int64_t now = lg_mono_ns();
    for (int i = 0; i < l->max_timers; i++) {
        ev_timer *t = &l->timers[i];
        if (!t->cb || t->when_ns > now) continue;
        double next = t->cb(l, t->ctx);
        if (next < 0) t->cb = NULL;
        else t->when_ns = lg_mono_ns() + (int64_t)(next * 1e9);
    }
}

rc_err ev_run(ev_loop *l) {
    l->stop = 0;
    /* Busy time runs from the poll's return to the end of the next
     * before-sleep hook (the engine flush and checkpoint slices live there). */
    int64_t woke = 0;
    while (!l->stop) {
        if (l->before) l->before(l, l->before_ctx);
        int64_t now = lg_mono_ns();
        if (woke && now - woke > l->max_busy_ns) l->max_busy_ns = now - woke;
        if (l->stop) break;
        int64_t wait = (int64_t)(l->max_wait * 1e9);
        for (int i = 0; i < l->max_timers; i++) {
            if (!l->timers[i].cb) continue;
            int64_t d = l->timers[i].when_ns - now;
            if (d < wait) wait = d < 0 ? 0 : d;
        }
        int n = 0;
        for (int i = 0; i < l->n_io; i++) {
            if (!l->io[i].on) continue;
            l->items[n] = (zmq_pollitem_t){l->io[i].sock, l->io[i].fd, ZMQ_POLLIN, 0};
            l->item_io[n++] = i;
        }
        int rc = zmq_poll(l->items, n, (long)(wait / 1000000));
        woke = lg_mono_ns();
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            LOG(LG_WARNING, "ev", "zmq_poll failed: %s.", zmq_strerror(zmq_errno()));
            return RC_ERR_IO;
        }
        for (int k = 0; k < n && rc > 0 && !l->stop; k++) {
            if (!(l->items[k].revents & ZMQ_POLLIN)) continue;
            ev_io *io = &l->io[l->item_io[k]];
            if (io->on) io->cb(l, io->ctx);
        }
        run_timers(l);
    }
    return RC_OK;
}
