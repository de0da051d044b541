/*
 * server.c: the daemon (server.h). Ingest -> registry -> engine -> PUB, the control
 * socket, checkpoints, signals, sd_notify and stats.
 *
 * Hot path per sample: rg_find (one hash probe, prefetched a few samples
 * ahead), rg_touch, en_push; results
 * are encoded into a preallocated buffer and handed to zmq_send. Nothing
 * here allocates per sample (libzmq itself copies messages above 33 bytes
 * into its own buffers; that is inside the library and bounded by HWMs).
 *
 * Checkpoints never stall ingest for long: the snapshot is copied in slices
 * of at most SNAP_SLICE_NS of loop time, one per loop iteration, into the
 * store's fixed chunks while the writer thread writes earlier chunks inside
 * the checkpoint's single transaction (checkpoint.h). A slot is copied at most once
 * per checkpoint, when the cursor passes it; a slot changed after that is
 * dirty again and goes into the next checkpoint. The engine's workers keep
 * stepping meanwhile: the cursor waits (across slices) only at a slot whose
 * own sample is in flight.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "connectors/wire.h"
#include "connectors/sockets.h"
#include "daemon/checkpoint.h"
#include "daemon/engine.h"
#include "daemon/eventloop.h"
#include "daemon/registry.h"
#include "model/features.h"
#include "model/rwkv.h"

/* Drop reasons: the decoder's (mp_reason 1..6) then the daemon's own. */
enum {
    DROP_OVERSIZE = MP_R__COUNT, /* frame above input.max_msg_size */
    DROP_FRAMES,                 /* more than two frames */
    DROP_OLD,                    /* timestamp not after the series' last */
    DROP_LIMIT,                  /* new series beyond series.max (or evict queue full) */
    DROP__COUNT
};
static const char *const drop_names[DROP__COUNT] = {
    "", "msgpack", "type", "missing_key", "bad_id", "inf", "length",
    "oversize", "frames", "old_timestamp", "limit"};

/* Samples between decoding one and looking its series up (on_sample). */
#define LOOKAHEAD 8

/* Loop time one snapshot slice may take: the ingest stall bound of a checkpoint. */
#define SNAP_SLICE_NS 2000000
/* How long the snapshot lets the cursor wait, slice after slice, for the
 * batch stepping its slot to be delivered before it waits in a slice. */
#define SNAP_WAIT_NS 20000000
/* Rows per snapshot chunk (the store keeps 4): about 1 MB each for the default model. */
#define SNAP_CHUNK_ROWS 256

typedef struct dm {
    cf_config cfg;          /* active settings */
    /* Core */
    rk_model *model;        /* owned */
    en_engine *en;          /* owned */
    rg_registry *rg;        /* owned */
    ck_store *ck;           /* owned */
    ev_loop *ev;            /* owned */
    size_t blob_size;       /* en_blob_size */
    uint8_t *fetch_buf;     /* (blob_size) staging for bringing a series back */
    /* Sockets */
    void *zctx;
    void *in[CF_MAX_INPUTS];/* ingest sockets */
    int in_h[CF_MAX_INPUTS];/* their ev handles */
    void *pub;              /* output */
    void *rep;              /* control */
    int rep_h;              /* its ev handle */
    int sigpipe[2];         /* self-pipe: signal handler -> loop */
    int engine_fd;          /* eventfd: a pipelined batch finished (-1 without a pipeline) */
    /* Buffers */
    uint8_t *pub_buf;       /* (pub_cap) one encoded forecast */
    size_t pub_cap;
    char topic[2 + MP_ID_MAX + 1]; /* "f.<series>" */
    uint8_t *ctl_buf;       /* (ctl_cap) one control reply */
    size_t ctl_cap;
    /* Counters */
    uint64_t frames, bytes, samples, missing, published, alerts, steps;
    /* Samples of the payload being decoded whose registry lookup is under
     * way (ring of LOOKAHEAD; see on_sample). Their ids point into the
     * frame, so the ring is emptied before the frame is closed. */
    mp_sample la[LOOKAHEAD];
    uint64_t la_hash[LOOKAHEAD];
    unsigned la_first, la_n;
    uint64_t dropped[DROP__COUNT];
    uint64_t new_series, evicted, brought_back, restored, model_reset, forgotten;
    uint64_t ckpt_count, ckpt_fail;
    ck_result ckpt_last;    /* last finished checkpoint */
    int ckpt_have_last;
    double started;         /* wall clock at start */
    double rate;            /* steps per second, last sampling window */
    uint64_t rate_steps;    /* steps at the last sample */
    int64_t rate_ns;        /* time of the last sample */
    lg_ratelimit rl[DROP__COUNT]; /* per drop reason */
    /* Control flow */
    int ckpt_timer;         /* ev timer ids */
    int stats_timer;
    int ckpt_want;          /* a checkpoint waits for the writer to be idle */
    int ckpt_full;          /* next checkpoint writes every series (after a failure) */
    int ckpt_reply;         /* a control client waits for checkpoint number reply_gen */
    uint64_t reply_gen;     /* the checkpoint that client waits for */
    uint64_t ckpt_gen;      /* checkpoints begun so far (the in-flight one's number) */
    int job_is_ckpt;        /* the job in flight carries a snapshot (else only evictions) */
    /* Snapshot in progress (between ck_begin and ck_seal) */
    int snap_active;        /* copying slices */
    uint32_t snap_cursor;   /* next slot to look at */
    int64_t snap_wait_ns;   /* when the cursor first stopped at an in-flight slot, 0 if it has not */
    uint32_t snap_rows;     /* rows copied so far */
    int64_t snap_ns;        /* loop time spent copying, this checkpoint */
    double last_snapshot_s; /* loop time the last finished snapshot took, seconds */
    int64_t snap_slice_max_ns;  /* longest slice of the current snapshot */
    double last_slice_max_s;    /* longest slice of the last finished one: its worst ingest stall */
    double restore_s;       /* reading the store at startup, seconds */
    double startup_s;       /* start to READY=1, seconds */
    int stopping;           /* SIGTERM/SIGINT seen */
    double wd_interval;     /* seconds between WATCHDOG=1, 0 = off */
} dm;

/* ---- sd_notify ---- */

static void notify(const char *msg) {
#ifdef HAVE_LIBSYSTEMD
    sd_notify(0, msg);
#else
    /* The notify protocol is one datagram to $NOTIFY_SOCKET ('@' = abstract). */
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path) return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
#endif
}

/* ---- Output ---- */

static void publish(dm *d, const char *prefix, const char *id, size_t len, const uint8_t *payload, size_t n) {
    memcpy(d->topic, prefix, 2);
    memcpy(d->topic + 2, id, len);
    if (zmq_send(d->pub, d->topic, 2 + len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
    if (zmq_send(d->pub, payload, n, ZMQ_DONTWAIT) >= 0) d->published++;
}

static void encode_result(const en_result *r, const char *id, size_t len, mp_wr *w) {
    mp_forecast f = {id, (uint32_t)len, r->t, r->v, r->dt, r->H, r->yhat, r->lo, r->hi, r->score, r->level};
    mp_encode_forecast(w, &f);
}

/* Engine callback: one stepped sample -> "f.<id>" (and "a.<id>" on a level change). */
static void on_result(void *ctx, const en_result *r) {
    dm *d = ctx;
    size_t len;
    const char *id = rg_id(d->rg, r->slot, &len);
    d->steps++;
    if (NEVER(!id)) return;
    mp_wr w;
    mp_wr_init(&w, d->pub_buf, d->pub_cap);
    encode_result(r, id, len, &w);
    if (NEVER(w.overflow)) return;
    publish(d, "f.", id, len, w.buf, w.len);
    if (r->level_changed) {
        publish(d, "a.", id, len, w.buf, w.len);
        d->alerts++;
    }
}

/* ---- Ingest ---- */

static void drop(dm *d, int why, const char *id, size_t len) {
    d->dropped[why]++;
    if (!lg_rl_allow(&d->rl[why])) return;
    uint64_t sup = d->rl[why].suppressed;
    d->rl[why].suppressed = 0;
    if (id)
        LOG(LG_WARNING, "ingest", "Dropped input of series '%.*s' (%s)%s%llu similar suppressed.", (int)len, id,
            drop_names[why], sup ? "; " : "", (unsigned long long)sup);
    else
        LOG(LG_WARNING, "ingest", "Dropped input (%s)%s%llu similar suppressed.", drop_names[why],
            sup ? "; " : "", (unsigned long long)sup);
}

static void on_decode_error(void *ctx, mp_reason why, const char *s, uint32_t n) {
    drop(ctx, (int)why, s, n);
}

/* Loads a stored blob into slot, or resets it; counts model mismatches. */
static void load_slot(dm *d, uint32_t slot, const char *id, size_t len, uint64_t hash, const uint8_t *b, size_t n) {
    rc_err rc = hash == d->model->hash ? en_slot_load(d->en, slot, b, n) : RC_ERR_MODEL;
    if (rc == RC_OK) return;
    en_slot_reset(d->en, slot);
    /* The next checkpoint replaces the unusable row with the fresh state,
     * so it is reset and counted once, not again on every restart. */
    en_slot_mark_dirty(d->en, slot);
    d->model_reset++;
    LOG(LG_NOTICE, "store", "State of series '%.*s' was %s (%s); starting it afresh.", (int)len, id,
        rc == RC_ERR_MODEL ? "saved under another model" : "unreadable", rc_strerror(rc));
}

/* Frees the least recently seen slot by queueing its state for the store. */
static int evict_one(dm *d) {
    uint32_t victim = rg_lru(d->rg);
    size_t len;
    const char *id = rg_id(d->rg, victim, &len);
    if (NEVER(!id)) return 0;
    /* A queued sample of the victim must be stepped before its state is saved. */
    if (en_slot_busy(d->en, victim)) en_flush(d->en);
    uint8_t *b = ck_evict_add(d->ck, id, len, d->model->hash);
    if (!b) return 0;
    en_slot_save(d->en, victim, b);
    rg_remove(d->rg, victim);
    en_slot_reset(d->en, victim);
    d->evicted++;
    return 1;
}

static uint32_t slot_for(dm *d, const char *id, size_t len, uint64_t id_hash) {
    uint32_t slot = rg_find_hashed(d->rg, id, len, id_hash);
    if (slot != RG_NONE) return slot;
    if (rg_count(d->rg) == rg_capacity(d->rg) &&
        (d->cfg.policy != CF_POLICY_EVICT || !evict_one(d)))
        return RG_NONE;
    if (rg_insert(d->rg, id, len, &slot) != RC_OK) return RG_NONE;
    size_t n;
    uint64_t hash;
    int found = ck_fetch(d->ck, id, len, d->fetch_buf, d->blob_size, &n, &hash);
    if (found == 1) {
        load_slot(d, slot, id, len, hash, d->fetch_buf, n);
        d->brought_back++;
    } else {
        en_slot_reset(d->en, slot);
        d->new_series++;
    }
    /* ck_fetch took any pending row of id back: snapshots write it from now on. */
    en_slot_mark_dirty(d->en, slot);
    return slot;
}

static void ingest_sample(dm *d, const mp_sample *m, uint64_t hash) {
    uint32_t slot = slot_for(d, m->s, m->s_len, hash);
    if (slot == RG_NONE) { drop(d, DROP_LIMIT, m->s, m->s_len); return; }
    rg_touch(d->rg, slot);
    rc_err rc = en_push(d->en, slot, m->t, m->v);
    if (rc == RC_ERR_PROTO) { drop(d, DROP_OLD, m->s, m->s_len); return; }
    if (rc != RC_OK) { drop(d, MP_R_INF, m->s, m->s_len); return; }
    d->samples++;
    if (isnan(m->v)) d->missing++;
}

/*
 * Decoded samples are ingested LOOKAHEAD samples late, in order: with many
 * series each registry lookup is two cache misses (the hash bucket, then
 * the slot with the id), so the bucket is fetched when a sample is decoded,
 * its slot halfway through the ring, and the lookup itself finds both in
 * cache (at 1M series rg_find was 4.7 % of the daemon's CPU, 0.9 % at 1k).
 */
static void ingest_oldest(dm *d) {
    unsigned i = d->la_first;
    d->la_first = (i + 1) % LOOKAHEAD;
    d->la_n--;
    ingest_sample(d, &d->la[i], d->la_hash[i]);
}

static void on_sample(void *ctx, const mp_sample *m) {
    dm *d = ctx;
    if (d->la_n == LOOKAHEAD) ingest_oldest(d);
    unsigned j = (d->la_first + d->la_n) % LOOKAHEAD;
    d->la[j] = *m;
    d->la_hash[j] = rg_hash(m->s, m->s_len);
    rg_prefetch_bucket(d->rg, d->la_hash[j]);
    d->la_n++;
    if (d->la_n > LOOKAHEAD / 2) rg_prefetch_slot(d->rg, d->la_hash[(j + LOOKAHEAD - LOOKAHEAD / 2) % LOOKAHEAD]);
}

/* Ingests the samples still in the look-ahead ring (end of a payload). */
static void drain_samples(dm *d) {
    while (d->la_n > 0) ingest_oldest(d);
}

/* Reads a burst of messages from one ingest socket. The burst is bounded
 * in time (10 ms) and count, so a flooded socket cannot starve the other
 * sockets, the control socket and the timers (the checkpoint among them).
 * The clock is read after every message (a vDSO call, ~20 ns): one message
 * may carry thousands of samples, so checking every 16th let a burst run
 * for ~1 s on a slow (sanitized) build. */
static void on_input(ev_loop *l, void *ctx) {
    (void)l;
    void **sp = ctx;
    dm *d = (dm *)sp[0];
    void *sock = sp[1];
    int64_t until = lg_mono_ns() + 10000000;
    for (int burst = 0; burst < 1024 && !d->stopping; burst++) {
        if (burst > 0 && lg_mono_ns() > until) break;
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, sock, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&a); break; }
        d->frames++;
        zmq_msg_t *payload = &a;
        int nframes = 1;
        zmq_msg_init(&b);
        if (zmq_msg_more(&a)) {
            /* Two frames: topic, then payload. More than two: drop them all. */
            zmq_msg_recv(&b, sock, 0);
            payload = &b;
            nframes = 2;
            while (zmq_msg_more(&b)) {
                zmq_msg_close(&b);
                zmq_msg_init(&b);
                zmq_msg_recv(&b, sock, 0);
                nframes++;
            }
        }
        size_t n = zmq_msg_size(payload);
        d->bytes += n;
        if (nframes > 2) drop(d, DROP_FRAMES, NULL, 0);
        else if ((long)n > d->cfg.max_msg_size) drop(d, DROP_OVERSIZE, NULL, 0);
        else {
            mp_decode_samples(zmq_msg_data(payload), n, lg_wall_s(), on_sample, on_decode_error, d);
            drain_samples(d);
        }
        zmq_msg_close(&b);
        zmq_msg_close(&a);
    }
}

/* ---- Checkpoints ---- */

/* Opens a checkpoint job; the snapshot is then copied slice by slice from
 * before_sleep. While a job is in flight the request waits (ckpt_want). */
static void start_checkpoint(dm *d) {
    if (ck_busy(d->ck)) { d->ckpt_want = 1; return; }
    d->ckpt_want = 0;
    if (ck_begin(d->ck) != RC_OK) { d->ckpt_want = 1; return; }
    d->ckpt_gen++;
    d->job_is_ckpt = 1;
    d->snap_active = 1;
    d->snap_cursor = 0;
    d->snap_wait_ns = 0;
    d->snap_rows = 0;
    d->snap_ns = 0;
    d->snap_slice_max_ns = 0;
}

/* Copies dirty slots from the cursor on for at most budget_ns of loop time,
 * or until every chunk is with the writer; seals the job at the end.
 * Returns 1 when it made progress (or finished), 0 when blocked on the
 * writer or on a slot in flight. The time is read every 32 slots: one
 * en_slot_save is a few us. The engine keeps stepping meanwhile: a slot
 * whose sample is in flight stops the slice (the loop comes back when the
 * batch is delivered) rather than waiting in it, unless the cursor has
 * already waited SNAP_WAIT_NS there (a series in every batch). A slot with
 * a sample only queued is saved as it is; that sample goes into the next
 * checkpoint. */
static int snapshot_slice(dm *d, int64_t budget_ns) {
    int64_t t0 = lg_mono_ns();
    uint32_t done = 0, s = d->snap_cursor;
    int progress = 0;
    for (s = rg_next(d->rg, s); s != RG_NONE; s = rg_next(d->rg, s + 1)) {
        if ((++done & 31) == 0 && lg_mono_ns() - t0 > budget_ns) break;
        if (en_slot_in_flight(d->en, s)) {
            int64_t now = lg_mono_ns();
            if (!d->snap_wait_ns) d->snap_wait_ns = now;
            if (now - d->snap_wait_ns < SNAP_WAIT_NS) break;
        }
        d->snap_wait_ns = 0;
        if (!d->ckpt_full && !en_slot_dirty(d->en, s)) continue;
        size_t len;
        const char *id = rg_id(d->rg, s, &len);
        uint8_t *b = ck_snap_add(d->ck, id, len, d->model->hash);
        if (!b) break; /* every chunk is with the writer: resume here later */
        en_slot_save(d->en, s, b);
        en_slot_clear_dirty(d->en, s);
        d->snap_rows++;
        progress = 1;
    }
    if (s == RG_NONE) {
        ck_seal(d->ck);
        d->snap_active = 0;
        d->ckpt_full = 0;
        progress = 1;
        LOG(LG_DEBUG, "store", "Checkpoint snapshot of %u series handed to the writer.", d->snap_rows);
    } else {
        progress |= s != d->snap_cursor;
        d->snap_cursor = s;
    }
    int64_t took = lg_mono_ns() - t0;
    d->snap_ns += took;
    if (took > d->snap_slice_max_ns) d->snap_slice_max_ns = took;
    if (!d->snap_active) {
        d->last_snapshot_s = (double)d->snap_ns * 1e-9;
        d->last_slice_max_s = (double)d->snap_slice_max_ns * 1e-9;
    }
    return progress;
}

static void send_reply(dm *d, mp_wr *w);

/* Sends evicted states and deletions to the store without a snapshot, so
 * eviction churn does not turn into back-to-back full checkpoints. */
static void flush_evictions(dm *d) {
    if (ck_submit(d->ck) == RC_OK) d->job_is_ckpt = 0;
}

static void checkpoint_done(dm *d, const ck_result *r) {
    if (!d->job_is_ckpt) {
        if (r->rc != RC_OK) {
            d->ckpt_fail++;
            LOG(LG_WARNING, "store", "Writing evicted series failed (%s); their states are lost.", r->error);
        }
        return;
    }
    d->ckpt_last = *r;
    d->ckpt_have_last = 1;
    if (r->rc == RC_OK) {
        d->ckpt_count++;
        LOG(LG_VERBOSE, "store", "Checkpoint: %u rows in %.3f s.", r->rows, r->duration);
    } else {
        d->ckpt_fail++;
        d->ckpt_full = 1;
        LOG(LG_WARNING, "store", "Checkpoint failed (%s); the next one rewrites every series.", r->error);
    }
    if (d->ckpt_reply && d->ckpt_gen >= d->reply_gen) {
        mp_wr w;
        mp_wr_init(&w, d->ctl_buf, d->ctl_cap);
        if (r->rc == RC_OK) {
            mp_w_map(&w, 4);
            mp_w_kv_bool(&w, "ok", 1);
            mp_w_kv_int(&w, "rows", r->rows);
            mp_w_kv_f64(&w, "duration", r->duration);
            mp_w_kv_f64(&w, "time", r->started);
        } else {
            mp_w_map(&w, 2);
            mp_w_kv_bool(&w, "ok", 0);
            mp_w_kv_str(&w, "error", r->error);
        }
        send_reply(d, &w);
        d->ckpt_reply = 0;
        ev_io_enable(d->ev, d->rep_h, 1);
    }
}

static double ckpt_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    start_checkpoint(d);
    return d->cfg.checkpoint_interval;
}

/* ---- Timers ---- */

static uint64_t dropped_total(const dm *d);

static double rate_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    int64_t now = lg_mono_ns();
    double dt = (double)(now - d->rate_ns) * 1e-9;
    if (dt > 0) d->rate = (double)(d->steps - d->rate_steps) / dt;
    d->rate_steps = d->steps;
    d->rate_ns = now;
    /* `systemctl status` shows this line; every 5 s is plenty. */
    static int tick;
    if (++tick % 5 == 0 && getenv("NOTIFY_SOCKET")) {
        char msg[160];
        snprintf(msg, sizeof msg, "STATUS=%u series, %.0f steps/s, %llu dropped, %llu checkpoints",
                 rg_count(d->rg), d->rate, (unsigned long long)dropped_total(d), (unsigned long long)d->ckpt_count);
        notify(msg);
    }
    return 1.0;
}

static uint64_t dropped_total(const dm *d) {
    uint64_t n = 0;
    for (int i = 1; i < DROP__COUNT; i++) n += d->dropped[i];
    return n;
}

static double stats_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    if (d->cfg.stats_interval <= 0) return 60; /* re-checked after a reload */
    LOG(LG_NOTICE, "stats", "series %u, received %llu, decoded %llu, dropped %llu, steps/s %.0f, "
        "published %llu, checkpoints %llu (%llu failed)", rg_count(d->rg), (unsigned long long)d->frames,
        (unsigned long long)d->samples, (unsigned long long)dropped_total(d), d->rate,
        (unsigned long long)d->published, (unsigned long long)d->ckpt_count, (unsigned long long)d->ckpt_fail);
    return d->cfg.stats_interval;
}

static double watchdog_tick(ev_loop *l, void *ctx) {
    (void)l;
    notify("WATCHDOG=1");
    return ((dm *)ctx)->wd_interval;
}

/* ---- Reload ---- */

static rc_err reload(dm *d, char *err, size_t errlen) {
    cf_config *nc = rc_malloc(sizeof *nc);
    if (!nc) { snprintf(err, errlen, "Out of memory."); return RC_ERR_NOMEM; }
    rc_err rc = RC_OK;
    if (d->cfg.path[0]) rc = cf_load(nc, d->cfg.path, err, errlen);
    else cf_default(nc);
    if (rc != RC_OK) {
        LOG(LG_WARNING, "config", "Reload failed, keeping the running configuration:");
        LOG(LG_WARNING, "config", "%s", err);
        rc_free(nc);
        return rc;
    }
    const cf_config *o = &d->cfg;
    int restart = o->n_inputs != nc->n_inputs ||
                  memcmp(o->inputs, nc->inputs, sizeof o->inputs) != 0 ||
                  o->max_msg_size != nc->max_msg_size || o->zmq_max_msg_size != nc->zmq_max_msg_size ||
                  o->rcvhwm != nc->rcvhwm || strcmp(o->out_endpoint, nc->out_endpoint) ||
                  o->out_bind != nc->out_bind || o->sndhwm != nc->sndhwm ||
                  strcmp(o->control_endpoint, nc->control_endpoint) || o->max_series != nc->max_series ||
                  o->policy != nc->policy || o->evict_queue != nc->evict_queue ||
                  o->max_batch != nc->max_batch || o->threads != nc->threads || o->pipeline != nc->pipeline ||
                  strcmp(o->model, nc->model) || strcmp(o->state_db, nc->state_db);
    if (restart)
        LOG(LG_WARNING, "config", "Reload: sockets, series, engine, model or state_db settings changed; "
            "they take effect after a restart.");
    d->cfg.log_level = nc->log_level;
    lg_verbosity = nc->log_level;
    if (d->cfg.checkpoint_interval != nc->checkpoint_interval)
        ev_timer_reset(d->ev, d->ckpt_timer, nc->checkpoint_interval);
    d->cfg.checkpoint_interval = nc->checkpoint_interval;
    d->cfg.stats_interval = nc->stats_interval;
    d->cfg.shutdown_timeout = nc->shutdown_timeout;
    d->cfg.anomaly = nc->anomaly;
    en_set_anomaly_cfg(d->en, &nc->anomaly);
    LOG(LG_NOTICE, "config", "Configuration reloaded%s%s.", d->cfg.path[0] ? " from " : " (defaults)",
        d->cfg.path);
    rc_free(nc);
    return RC_OK;
}

/* ---- Control socket ---- */

static void send_reply(dm *d, mp_wr *w) {
    if (w->overflow) {
        mp_wr_init(w, d->ctl_buf, d->ctl_cap);
        mp_w_map(w, 2);
        mp_w_kv_bool(w, "ok", 0);
        mp_w_kv_str(w, "error", "Reply too large.");
    }
    zmq_send(d->rep, w->buf, w->len, ZMQ_DONTWAIT);
}

static void reply_error(dm *d, mp_wr *w, const char *msg) {
    (void)d;
    mp_w_map(w, 2);
    mp_w_kv_bool(w, "ok", 0);
    mp_w_kv_str(w, "error", msg);
}

static void ctl_stats(dm *d, mp_wr *w) {
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->model->hash);
    mp_w_map(w, 29);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_str(w, "version", DM_VERSION);
    mp_w_kv_f64(w, "uptime", lg_wall_s() - d->started);
    mp_w_kv_str(w, "model_hash", hash);
    mp_w_kv_int(w, "received", (int64_t)d->frames);
    mp_w_kv_int(w, "bytes", (int64_t)d->bytes);
    mp_w_kv_int(w, "decoded", (int64_t)d->samples);
    mp_w_kv_int(w, "missing", (int64_t)d->missing);
    mp_w_cstr(w, "dropped");
    mp_w_map(w, DROP__COUNT - 1);
    for (int i = 1; i < DROP__COUNT; i++) mp_w_kv_int(w, drop_names[i], (int64_t)d->dropped[i]);
    mp_w_kv_int(w, "dropped_total", (int64_t)dropped_total(d));
    mp_w_kv_int(w, "series", rg_count(d->rg));
    mp_w_kv_int(w, "max_series", rg_capacity(d->rg));
    mp_w_kv_int(w, "steps", (int64_t)d->steps);
    mp_w_kv_f64(w, "steps_per_s", d->rate);
    mp_w_kv_int(w, "published", (int64_t)d->published);
    mp_w_kv_int(w, "alerts", (int64_t)d->alerts);
    mp_w_kv_int(w, "new_series", (int64_t)d->new_series);
    mp_w_kv_int(w, "evicted", (int64_t)d->evicted);
    mp_w_kv_int(w, "brought_back", (int64_t)d->brought_back);
    mp_w_kv_int(w, "restored", (int64_t)d->restored);
    mp_w_kv_int(w, "model_reset", (int64_t)d->model_reset);
    mp_w_kv_int(w, "forgotten", (int64_t)d->forgotten);
    mp_w_kv_f64(w, "restore_s", d->restore_s);
    mp_w_kv_f64(w, "startup_s", d->startup_s);
    /* Since the previous stats request: the worst wait a message could see. */
    mp_w_kv_f64(w, "loop_max_s", ev_max_busy(d->ev, 1));
    mp_w_cstr(w, "checkpoint");
    mp_w_map(w, 10);
    mp_w_kv_int(w, "count", (int64_t)d->ckpt_count);
    mp_w_kv_int(w, "failures", (int64_t)d->ckpt_fail);
    mp_w_kv_f64(w, "interval", d->cfg.checkpoint_interval);
    mp_w_kv_f64(w, "last_time", d->ckpt_have_last ? d->ckpt_last.started : 0);
    mp_w_kv_f64(w, "last_duration", d->ckpt_have_last ? d->ckpt_last.duration : 0);
    mp_w_kv_int(w, "last_rows", d->ckpt_have_last ? d->ckpt_last.rows : 0);
    mp_w_kv_bool(w, "busy", ck_busy(d->ck));
    mp_w_kv_f64(w, "last_snapshot_s", d->last_snapshot_s);
    mp_w_kv_f64(w, "last_slice_max_s", d->last_slice_max_s);
    mp_w_kv_bool(w, "snapshotting", d->snap_active);
    /* Our own heap (rc_malloc); flat after startup since nothing per sample allocates. */
    mp_w_kv_int(w, "heap_bytes", (int64_t)rc_mem_used());
    mp_w_cstr(w, "queues");
    mp_w_map(w, 2);
    mp_w_kv_int(w, "engine", en_pending(d->en));
    mp_w_kv_int(w, "store", ck_pending(d->ck));
    /* Per engine shard (thread): samples stepped and busy seconds since start. */
    int K = en_threads(d->en);
    uint64_t rows[EN_MAX_THREADS], ns[EN_MAX_THREADS];
    for (int k = 0; k < K; k++) en_shard_stats(d->en, k, &rows[k], &ns[k]);
    mp_w_cstr(w, "engine");
    mp_w_map(w, 4);
    mp_w_kv_int(w, "threads", K);
    mp_w_kv_bool(w, "pipeline", d->cfg.pipeline);
    mp_w_cstr(w, "shard_steps");
    mp_w_arr(w, (uint32_t)K);
    for (int k = 0; k < K; k++) mp_w_int(w, (int64_t)rows[k]);
    mp_w_cstr(w, "shard_busy_s");
    mp_w_arr(w, (uint32_t)K);
    for (int k = 0; k < K; k++) mp_w_f64(w, (double)ns[k] * 1e-9);
}

static void ctl_series(dm *d, mp_wr *w, uint64_t cursor, uint64_t limit) {
    enum { MAX_PAGE = 1000 };
    uint32_t page[MAX_PAGE];
    if (limit == 0 || limit > MAX_PAGE) limit = limit ? MAX_PAGE : 100;
    uint32_t n = 0, s = cursor > UINT32_MAX ? RG_NONE : rg_next(d->rg, (uint32_t)cursor);
    for (; s != RG_NONE && n < limit; s = rg_next(d->rg, s + 1)) page[n++] = s;
    mp_w_map(w, 4);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_int(w, "total", rg_count(d->rg));
    mp_w_cstr(w, "series");
    mp_w_arr(w, n);
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *id = rg_id(d->rg, page[i], &len);
        mp_w_str(w, id, len);
    }
    mp_w_cstr(w, "next");
    if (s == RG_NONE) mp_w_nil(w);
    else mp_w_uint(w, s);
}

/* The `get` reply: r is the series' last result, NULL before its first sample. */
static void write_get_reply(mp_wr *w, const char *id, size_t len, double last_t, const en_result *r, int stored) {
    mp_w_map(w, 7);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_cstr(w, "s");
    mp_w_str(w, id, len);
    mp_w_kv_f64(w, "last_t", last_t);
    mp_w_kv_f64(w, "score", r ? r->score : 0);
    mp_w_kv_int(w, "level", r ? r->level : 0);
    mp_w_kv_bool(w, "stored", stored);
    mp_w_cstr(w, "forecast");
    if (r) encode_result(r, id, len, w);
    else mp_w_nil(w);
}

/* A series not in memory (evicted, or not seen since a restart that could
 * not restore it) is read from the store without taking it back. */
static void ctl_get_stored(dm *d, mp_wr *w, const char *id, size_t len) {
    size_t n;
    uint64_t hash;
    int found = ck_peek(d->ck, id, len, d->fetch_buf, d->blob_size, &n, &hash);
    if (found < 0) { reply_error(d, w, "Cannot read the store (see the log)."); return; }
    if (found == 0) { reply_error(d, w, "Unknown series."); return; }
    rc_err rc = RC_ERR_MODEL;
    const en_result *r = hash == d->model->hash ? en_blob_last(d->en, d->fetch_buf, n, &rc) : NULL;
    if (!r && rc != RC_OK) {
        reply_error(d, w, rc == RC_ERR_MODEL ? "Series is stored under another model; it restarts on its next sample."
                                             : "Series' stored state is unreadable; it restarts on its next sample.");
        return;
    }
    write_get_reply(w, id, len, r ? r->t : 0, r, 1);
}

static void ctl_get(dm *d, mp_wr *w, const char *id, size_t len) {
    if (!id) { reply_error(d, w, "Unknown series."); return; }
    uint32_t slot = rg_find(d->rg, id, len);
    if (slot == RG_NONE) { ctl_get_stored(d, w, id, len); return; }
    en_flush(d->en);
    const en_result *r = en_slot_last(d->en, slot);
    double last_t = en_slot_last_t(d->en, slot);
    write_get_reply(w, id, len, isfinite(last_t) ? last_t : 0, r, 0);
}

static void ctl_forget(dm *d, mp_wr *w, const char *id, size_t len) {
    if (!id) { reply_error(d, w, "Missing 's'."); return; }
    uint32_t slot = rg_find(d->rg, id, len);
    if (ck_delete(d->ck, id, len) != RC_OK) { reply_error(d, w, "Store queue full; retry later."); return; }
    if (slot != RG_NONE) {
        en_flush(d->en);
        rg_remove(d->rg, slot);
        en_slot_reset(d->en, slot);
        d->forgotten++;
    }
    mp_w_map(w, 2);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_bool(w, "was_loaded", slot != RG_NONE);
}

static void on_control(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, d->rep, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); return; }
    /* Multi-frame requests: only the first frame counts; drain the rest. */
    while (zmq_msg_more(&m)) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, d->rep, 0);
        zmq_msg_close(&x);
    }
    mp_wr w;
    mp_wr_init(&w, d->ctl_buf, d->ctl_cap);
    mp_rd r;
    mp_rd_init(&r, zmq_msg_data(&m), zmq_msg_size(&m));
    mp_obj o, k, v;
    char cmd[32] = "";
    const char *sid = NULL;
    size_t slen = 0;
    uint64_t cursor = 0, limit = 0;
    int wait = 0;
    int ok = mp_next(&r, &o) == RC_OK && o.type == MP_MAP;
    for (uint32_t i = 0; ok && i < o.len; i++) {
        mp_rd at;
        if (mp_next(&r, &k) != RC_OK || k.type != MP_STR) { ok = 0; break; }
        at = r;
        if (mp_next(&r, &v) != RC_OK) { ok = 0; break; }
        if (v.type == MP_ARR || v.type == MP_MAP) { r = at; if (mp_skip(&r)) ok = 0; continue; }
        if (k.len == 3 && !memcmp(k.p, "cmd", 3) && v.type == MP_STR && v.len < sizeof cmd) {
            memcpy(cmd, v.p, v.len);
            cmd[v.len] = 0;
        } else if (k.len == 1 && k.p[0] == 's' && v.type == MP_STR) {
            sid = (const char *)v.p;
            slen = v.len;
        } else if (((k.len == 6 && !memcmp(k.p, "cursor", 6)) || (k.len == 6 && !memcmp(k.p, "offset", 6))) &&
                   v.type == MP_UINT) {
            cursor = v.u;
        } else if (k.len == 5 && !memcmp(k.p, "limit", 5) && v.type == MP_UINT) {
            limit = v.u;
        } else if (k.len == 4 && !memcmp(k.p, "wait", 4) && v.type == MP_BOOL) {
            wait = v.b;
        }
    }
    if (!ok || !cmd[0]) {
        reply_error(d, &w, "Bad request: expected a msgpack map with a 'cmd' string.");
    } else if (!strcmp(cmd, "ping")) {
        mp_w_map(&w, 4);
        mp_w_kv_bool(&w, "ok", 1);
        mp_w_kv_bool(&w, "pong", 1);
        mp_w_kv_str(&w, "version", DM_VERSION);
        mp_w_kv_int(&w, "pid", getpid());
    } else if (!strcmp(cmd, "stats")) {
        ctl_stats(d, &w);
    } else if (!strcmp(cmd, "series")) {
        ctl_series(d, &w, cursor, limit);
    } else if (!strcmp(cmd, "get")) {
        ctl_get(d, &w, sid, slen);
    } else if (!strcmp(cmd, "forget")) {
        ctl_forget(d, &w, sid, slen);
    } else if (!strcmp(cmd, "checkpoint")) {
        /* A job in flight may have passed slots that changed since: the
         * request is for the next checkpoint to begin. */
        int queued = ck_busy(d->ck);
        start_checkpoint(d);
        if (wait) {
            /* Replied when that checkpoint commits; the REP socket is paused
             * meanwhile (REP must answer before it may read the next request). */
            d->reply_gen = d->ckpt_gen + (uint64_t)queued;
            d->ckpt_reply = 1;
            ev_io_enable(d->ev, d->rep_h, 0);
            zmq_msg_close(&m);
            return;
        }
        mp_w_map(&w, 3);
        mp_w_kv_bool(&w, "ok", 1);
        mp_w_kv_bool(&w, "started", 1);
        mp_w_kv_bool(&w, "queued", queued);
    } else if (!strcmp(cmd, "reload")) {
        char err[1024];
        if (reload(d, err, sizeof err) == RC_OK) {
            mp_w_map(&w, 1);
            mp_w_kv_bool(&w, "ok", 1);
        } else {
            reply_error(d, &w, err);
        }
    } else {
        char msg[96];
        snprintf(msg, sizeof msg, "Unknown command '%s'.", cmd);
        reply_error(d, &w, msg);
    }
    zmq_msg_close(&m);
    send_reply(d, &w);
}

/* ---- Signals ---- */

static int sig_fd = -1;

static void on_signal(int sig) {
    int saved = errno;
    char c = sig == SIGHUP ? 'H' : 'T';
    if (sig_fd >= 0) (void)!write(sig_fd, &c, 1);
    errno = saved;
}

/* A batch the engine stepped while the loop slept: deliver (publish) its
 * results and hand over what has queued since. */
static void on_engine(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    uint64_t n;
    ssize_t r = read(d->engine_fd, &n, sizeof n);
    (void)r; /* EAGAIN: already drained */
    en_poll(d->en);
}

static void on_sigpipe(ev_loop *l, void *ctx) {
    dm *d = ctx;
    char buf[64];
    ssize_t n = read(d->sigpipe[0], buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'H') {
            char err[1024];
            LOG(LG_NOTICE, "daemon", "SIGHUP: reloading the configuration.");
            notify("RELOADING=1");
            reload(d, err, sizeof err);
            notify("READY=1");
        } else if (!d->stopping) {
            LOG(LG_NOTICE, "daemon", "Stop signal: stopping intake, writing the final checkpoint.");
            d->stopping = 1;
            ev_stop(l);
        }
    }
}

static rc_err setup_signals(dm *d) {
    if (pipe(d->sigpipe) != 0) return RC_ERR_IO;
    for (int i = 0; i < 2; i++) {
        fcntl(d->sigpipe[i], F_SETFL, fcntl(d->sigpipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(d->sigpipe[i], F_SETFD, FD_CLOEXEC);
    }
    sig_fd = d->sigpipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return RC_OK;
}

/* ---- Loop hook ---- */

static void before_sleep(ev_loop *l, void *ctx) {
    dm *d = ctx;
    /* Hands the queued samples over; with the pipeline, without waiting for
     * them: the engine steps while the loop sleeps, and on_engine publishes. */
    en_poll(d->en);
    ck_result r;
    if (ck_poll(d->ck, &r)) checkpoint_done(d, &r);
    /* Evictions waiting while no checkpoint is due still go out promptly. */
    if (!ck_busy(d->ck) && d->ckpt_want) start_checkpoint(d);
    else if (!ck_busy(d->ck) && ck_pending(d->ck)) flush_evictions(d);
    /* One bounded slice per iteration; come back at once while it moves,
     * soon when it waits for the writer to free a chunk or for a batch in
     * flight (whose end also wakes the loop: en_poll above armed the fd).
     * Poll more often while the writer works, to collect its result soon. */
    if (d->snap_active) ev_set_max_wait(l, snapshot_slice(d, SNAP_SLICE_NS) && d->snap_active ? 0 : 0.002);
    else ev_set_max_wait(l, ck_busy(d->ck) ? 0.02 : 1.0);
}

/* ---- Startup ---- */

static rk_model *load_model(const cf_config *c) {
    const char *path = c->model[0] ? c->model : en_default_model_path();
    rc_err err;
    char msg[512] = "";
    if (!c->model[0] && access(path, F_OK) != 0) {
        LOG(LG_WARNING, "model", "Default model '%s' not found; running on RANDOM weights (seed 1). "
            "Forecasts are meaningless until a trained model is installed.", path);
        rk_dims dims = rk_dims_default(FT_NFEAT);
        rk_model *m = rk_model_new(&dims, &err);
        if (!m) return NULL;
        rk_model_init_random(m, 1);
        return m;
    }
    rk_model *m = rk_model_load(path, &err, msg, sizeof msg);
    if (!m) LOG(LG_WARNING, "model", "Cannot load model '%s': %s (%s).", path, msg, rc_strerror(err));
    else LOG(LG_NOTICE, "model", "Model '%s' loaded (hash %016llx).", path, (unsigned long long)m->hash);
    return m;
}

static void restore_row(void *ctx, const char *id, size_t len, uint64_t hash, const uint8_t *b, size_t n) {
    dm *d = ctx;
    uint32_t slot;
    /* No rg_find first: ids are the table's primary key, so each comes once
     * (the probe was 5% of a 1M-series restore). */
    if (rg_insert(d->rg, id, len, &slot) != RC_OK) return; /* full: the rest stays in the store */
    load_slot(d, slot, id, len, hash, b, n);
    d->restored++;
}

static int open_sockets(dm *d) {
    char err[512];
    d->zctx = zmq_ctx_new();
    if (!d->zctx) { LOG(LG_WARNING, "zmq", "Cannot create a ZeroMQ context."); return 0; }
    for (int i = 0; i < d->cfg.n_inputs; i++) {
        d->in[i] = zq_open_input(d->zctx, &d->cfg.inputs[i], d->cfg.rcvhwm, d->cfg.zmq_max_msg_size, err, sizeof err);
        if (!d->in[i]) { LOG(LG_WARNING, "zmq", "%s", err); return 0; }
        LOG(LG_NOTICE, "zmq", "Ingest %s %s '%s'.", d->cfg.inputs[i].type == CF_SUB ? "SUB" : "PULL",
            d->cfg.inputs[i].bind ? "bound on" : "connected to", d->cfg.inputs[i].endpoint);
    }
    d->pub = zq_open_pub(d->zctx, d->cfg.out_endpoint, d->cfg.out_bind, d->cfg.sndhwm, err, sizeof err);
    if (!d->pub) { LOG(LG_WARNING, "zmq", "%s", err); return 0; }
    LOG(LG_NOTICE, "zmq", "Output PUB %s '%s'.", d->cfg.out_bind ? "bound on" : "connected to", d->cfg.out_endpoint);
    d->rep = zq_open_rep(d->zctx, d->cfg.control_endpoint, err, sizeof err);
    if (!d->rep) { LOG(LG_WARNING, "zmq", "%s", err); return 0; }
    LOG(LG_NOTICE, "zmq", "Control REP bound on '%s'.", d->cfg.control_endpoint);
    return 1;
}

static void close_sockets(dm *d) {
    for (int i = 0; i < CF_MAX_INPUTS; i++)
        if (d->in[i]) zmq_close(d->in[i]);
    if (d->pub) zmq_close(d->pub);
    if (d->rep) zmq_close(d->rep);
    if (d->zctx) zmq_ctx_term(d->zctx);
    if (!strncmp(d->cfg.control_endpoint, "ipc://", 6) && d->cfg.control_endpoint[6] != '@')
        unlink(d->cfg.control_endpoint + 6);
}

/* Final checkpoint; returns 1 when it was written. */
static int shutdown_checkpoint(dm *d) {
    ck_result r;
    double tmo = d->cfg.shutdown_timeout;
    if (ck_busy(d->ck)) {
        /* A snapshot in progress is finished first (it is one transaction). */
        int64_t until = lg_mono_ns() + (int64_t)(tmo * 1e9);
        while (d->snap_active && lg_mono_ns() < until)
            if (!snapshot_slice(d, INT64_MAX / 2)) usleep(500);
        if (!d->snap_active && ck_wait(d->ck, tmo, &r)) checkpoint_done(d, &r);
        else return 0;
    }
    d->ckpt_full = d->ckpt_full || d->ckpt_fail > 0;
    start_checkpoint(d);
    /* Intake is stopped: copy the rest without slicing, waiting on the writer for chunks. */
    int64_t until = lg_mono_ns() + (int64_t)(tmo * 1e9);
    while (d->snap_active && lg_mono_ns() < until)
        if (!snapshot_slice(d, INT64_MAX / 2)) usleep(500);
    if (d->snap_active || !ck_wait(d->ck, tmo, &r)) return 0;
    checkpoint_done(d, &r);
    if (r.rc != RC_OK) return 0;
    LOG(LG_NOTICE, "store", "Final checkpoint: %u rows in %.3f s.", r.rows, r.duration);
    return 1;
}

int dm_run(const cf_config *cfg) {
    int code = 1;
    rc_err err;
    char msg[1024];
    dm *d = rc_calloc(1, sizeof *d);
    if (!d) return 1;
    d->cfg = *cfg;
    d->sigpipe[0] = d->sigpipe[1] = -1;
    d->engine_fd = -1;
    d->started = lg_wall_s();
    int64_t t_start = lg_mono_ns();
    lg_verbosity = cfg->log_level;
    for (int i = 0; i < DROP__COUNT; i++) lg_rl_init(&d->rl[i], 1.0, 10.0);
    /* Signals first: a SIGTERM during a long restore is then queued on the
     * self-pipe and handled (with the final checkpoint) once the loop runs. */
    if (setup_signals(d) != RC_OK) goto err;

    if (!(d->model = load_model(cfg))) goto err;
    en_cfg ec;
    en_cfg_default(&ec);
    ec.max_batch = cfg->max_batch;
    ec.threads = cfg->threads;
    ec.pipeline = cfg->pipeline;
    ec.anomaly = cfg->anomaly;
    ec.caller_inits_slots = 1; /* slot_for and restore_row reset or load every slot they hand out */
    if (!(d->en = en_new(d->model, &ec, cfg->max_series, on_result, d, &err))) {
        LOG(LG_WARNING, "engine", "Cannot create the engine: %s.", rc_strerror(err));
        goto err;
    }
    if (!(d->rg = rg_new(cfg->max_series, &err))) goto err;
    d->blob_size = en_blob_size(d->en);
    d->fetch_buf = rc_malloc(d->blob_size);
    int H = (int)d->model->dims.n_horizon;
    d->pub_cap = 128 + MP_ID_MAX + 16 * (size_t)H;
    d->pub_buf = rc_malloc(d->pub_cap);
    d->ctl_cap = 512 * 1024;
    d->ctl_buf = rc_malloc(d->ctl_cap);
    if (!d->fetch_buf || !d->pub_buf || !d->ctl_buf) goto err;

    uint32_t chunk = cfg->max_series < SNAP_CHUNK_ROWS ? (uint32_t)cfg->max_series : SNAP_CHUNK_ROWS;
    d->ck = ck_open(cfg->state_db, d->blob_size, chunk, cfg->evict_queue, &err, msg, sizeof msg);
    if (!d->ck) { LOG(LG_WARNING, "store", "%s", msg); goto err; }
    int64_t t_restore = lg_mono_ns();
    long rows = ck_restore(d->ck, restore_row, d);
    d->restore_s = (double)(lg_mono_ns() - t_restore) * 1e-9;
    LOG(LG_NOTICE, "store", "Restored %llu of %ld stored series from '%s' in %.3f s (%llu reset: other model "
        "or damaged).", (unsigned long long)d->restored, rows, cfg->state_db, d->restore_s,
        (unsigned long long)d->model_reset);

    if (!open_sockets(d)) goto err;
    if (!(d->ev = ev_new(CF_MAX_INPUTS + 3, 8, &err))) goto err;
    static void *in_ctx[CF_MAX_INPUTS][2];
    for (int i = 0; i < cfg->n_inputs; i++) {
        in_ctx[i][0] = d;
        in_ctx[i][1] = d->in[i];
        d->in_h[i] = ev_add_io(d->ev, d->in[i], -1, on_input, in_ctx[i]);
    }
    d->rep_h = ev_add_io(d->ev, d->rep, -1, on_control, d);
    ev_add_io(d->ev, NULL, d->sigpipe[0], on_sigpipe, d);
    if (cfg->pipeline) {
        /* The loop does not wait for a batch before it sleeps: the engine
         * wakes it when the batch is done (en_poll in before_sleep). */
        if ((d->engine_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
            ev_add_io(d->ev, NULL, d->engine_fd, on_engine, d) < 0) {
            LOG(LG_WARNING, "daemon", "Cannot create the engine's eventfd: %s.", strerror(errno));
            goto err;
        }
        en_set_notify_fd(d->en, d->engine_fd);
    }
    d->ckpt_timer = ev_add_timer(d->ev, cfg->checkpoint_interval, ckpt_tick, d);
    d->stats_timer = ev_add_timer(d->ev, cfg->stats_interval > 0 ? cfg->stats_interval : 60, stats_tick, d);
    d->rate_ns = lg_mono_ns();
    ev_add_timer(d->ev, 1.0, rate_tick, d);
    /* systemd's WatchdogSec: ping at half the period from the loop thread,
     * so a stuck loop (not just a live process) trips the watchdog. */
    const char *wd = getenv("WATCHDOG_USEC");
    d->wd_interval = wd ? atof(wd) * 1e-6 / 2 : 0;
    if (d->wd_interval > 0) ev_add_timer(d->ev, d->wd_interval, watchdog_tick, d);
    ev_set_before_sleep(d->ev, before_sleep, d);

    d->startup_s = (double)(lg_mono_ns() - t_start) * 1e-9;
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=Serving %u series\nMAINPID=%d", rg_count(d->rg), (int)getpid());
    notify(msg);
    LOG(LG_NOTICE, "daemon", "rwkvcastd %s ready (pid %d, %u series, config %s).", DM_VERSION, (int)getpid(),
        rg_count(d->rg), cfg->path[0] ? cfg->path : "(defaults)");

    if (ev_run(d->ev) != RC_OK) LOG(LG_WARNING, "daemon", "Event loop failed; stopping.");

    /* Shutdown: no more intake, then the final checkpoint. */
    for (int i = 0; i < cfg->n_inputs; i++) ev_io_enable(d->ev, d->in_h[i], 0);
    notify("STOPPING=1");
    /* Every accepted sample is stepped before the last snapshot (a slice
     * saves a slot whose sample is only queued without it). */
    en_flush(d->en);
    code = shutdown_checkpoint(d) ? 0 : 1;
    if (code) LOG(LG_WARNING, "store", "Final checkpoint not written within %.1f s.", cfg->shutdown_timeout);
err:
    if (d->ck && ck_busy(d->ck) && code) {
        /* The writer is stuck (disk?); do not hang on join. SQLite keeps the file consistent. */
        LOG(LG_WARNING, "daemon", "Exiting with the checkpoint writer still busy.");
        _exit(code);
    }
    ck_close(d->ck);
    close_sockets(d);
    ev_free(d->ev);
    en_free(d->en);
    if (d->engine_fd >= 0) close(d->engine_fd);
    rg_free(d->rg);
    rk_model_free(d->model);
    rc_free(d->ctl_buf);
    rc_free(d->pub_buf);
    rc_free(d->fetch_buf);
    sig_fd = -1;
    if (d->sigpipe[0] >= 0) close(d->sigpipe[0]);
    if (d->sigpipe[1] >= 0) close(d->sigpipe[1]);
    rc_free(d);
    if (code == 0) LOG(LG_NOTICE, "daemon", "Stopped.");
    return code;
}
