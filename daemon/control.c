/*
 * control.c: the control API (control.h): request parsing, the command
 * table and its handlers, and the REP socket around them.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/control.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "connectors/mqtt.h"
#include "daemon/ingest.h"
#include "daemon/kgroup.h"
#include "daemon/server.h"
#include "daemon/server_internal.h"
#include "daemon/snapshot.h"

static void reply_error(mp_wr *w, const char *msg) {
    mp_w_map(w, 2);
    mp_w_kv_bool(w, "ok", 0);
    mp_w_kv_str(w, "error", msg);
}

/* Replaces a reply that did not fit its buffer by an error that does. */
static void fit_reply(mp_wr *w) {
    if (!w->overflow) return;
    mp_wr_init(w, w->buf, w->cap);
    reply_error(w, "Reply too large.");
}

/* ---- Commands ---- */

static ct_status cmd_ping(dm *d, const ct_args *a, mp_wr *w) {
    (void)d;
    (void)a;
    mp_w_map(w, 4);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_bool(w, "pong", 1);
    mp_w_kv_str(w, "version", DM_VERSION);
    mp_w_kv_int(w, "pid", getpid());
    return CT_REPLY;
}

/* The last four entries of the stats reply: checkpoint, heap_bytes,
 * queues, engine. */
/* "mqtt": connection state of the MQTT inputs and output (connectors/mqtt.h). */
static void write_mqtt_stats(dm *d, mp_wr *w) {
    mq_stats st;
    int64_t inputs = 0, connected = 0, subscribed = 0, connects = 0, disconnects = 0;
    for (int i = 0; i < CF_MAX_INPUTS; i++) {
        if (!d->mq_in[i]) continue;
        mq_get_stats(d->mq_in[i], &st);
        inputs++;
        connected += st.connected;
        subscribed += st.subscribed;
        connects += (int64_t)st.connects;
        disconnects += (int64_t)st.disconnects;
    }
    mp_w_cstr(w, "mqtt");
    mp_w_map(w, 8);
    mp_w_kv_int(w, "inputs", inputs);
    mp_w_kv_int(w, "connected", connected);
    mp_w_kv_int(w, "subscribed", subscribed);
    mp_w_kv_int(w, "connects", connects);
    mp_w_kv_int(w, "disconnects", disconnects);
    memset(&st, 0, sizeof st);
    if (d->mq_out) mq_get_stats(d->mq_out, &st);
    mp_w_kv_bool(w, "output", d->mq_out != NULL);
    mp_w_kv_bool(w, "output_connected", st.connected);
    mp_w_kv_int(w, "published", (int64_t)d->mq_published);
}

/* "history" (history.h): series with a ring, their memory, matching series
 * refused for lack of room, and the `history` requests. */
static void write_history_stats(dm *d, mp_wr *w) {
    hs_stats st = {0, 0, 0, 0};
    if (d->hs) hs_get_stats(d->hs, &st);
    mp_w_cstr(w, "history");
    mp_w_map(w, 8);
    mp_w_kv_int(w, "series", st.series);
    mp_w_kv_int(w, "max_series", d->hs ? hs_max_series(d->hs) : 0);
    mp_w_kv_int(w, "length", d->hs ? hs_length(d->hs) : 0);
    mp_w_kv_int(w, "bytes", (int64_t)st.bytes);
    mp_w_kv_int(w, "full", (int64_t)st.full);
    mp_w_kv_int(w, "recorded", (int64_t)st.recorded);
    mp_w_kv_int(w, "requests", (int64_t)d->hist_requests);
    mp_w_kv_int(w, "errors", (int64_t)d->hist_errors);
}

static void write_stats_tail(dm *d, mp_wr *w) {
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

/* Clients refused on the CURVE sockets (connectors/hsmon.h: every
 * handshake that failed, ZAP's refusals included, and connections closed
 * before one), in all, per endpoint and per reason; "unknown" counts ZAP
 * requests of no known domain. */
static void write_curve(dm *d, mp_wr *w) {
    uint64_t total = d->curve_rejected[DM_CURVE_LISTS], ok = 0, by[HM__COUNT] = {0};
    int n_ep = 0;
    for (int k = 0; k < DM_CURVE_LISTS; k++) {
        const hm_monitor *m = &d->hsmon[k];
        total += hm_failed_total(m);
        ok += m->succeeded;
        for (int r = 0; r < HM__COUNT; r++) by[r] += m->failed[r];
        n_ep += m->pair != NULL;
    }
    mp_w_map(w, 9);
    mp_w_kv_bool(w, "enabled", d->zap != NULL);
    mp_w_kv_int(w, "rejected", (int64_t)total);
    mp_w_cstr(w, "rejected_input");
    mp_w_arr(w, (uint32_t)d->cfg.n_inputs);
    for (int i = 0; i < d->cfg.n_inputs; i++) mp_w_int(w, (int64_t)hm_failed_total(&d->hsmon[i]));
    mp_w_kv_int(w, "rejected_output", (int64_t)hm_failed_total(&d->hsmon[DM_CURVE_OUT]));
    mp_w_kv_int(w, "rejected_control", (int64_t)hm_failed_total(&d->hsmon[DM_CURVE_CTL]));
    mp_w_kv_int(w, "rejected_unknown", (int64_t)d->curve_rejected[DM_CURVE_LISTS]);
    mp_w_kv_int(w, "accepted", (int64_t)ok);
    mp_w_cstr(w, "reasons");
    mp_w_map(w, HM__COUNT);
    for (int r = 0; r < HM__COUNT; r++) mp_w_kv_int(w, hm_reason_name(r), (int64_t)by[r]);
    /* One entry per CURVE socket: where, what, and its counts. */
    mp_w_cstr(w, "endpoints");
    mp_w_arr(w, (uint32_t)n_ep);
    for (int k = 0; k < DM_CURVE_LISTS; k++) {
        const hm_monitor *m = &d->hsmon[k];
        if (!m->pair) continue;
        const char *kind, *ep = dm_curve_socket(d, k, &kind);
        mp_w_map(w, 5);
        mp_w_kv_str(w, "socket", kind);
        mp_w_kv_str(w, "endpoint", ep);
        mp_w_kv_int(w, "accepted", (int64_t)m->succeeded);
        mp_w_kv_int(w, "rejected", (int64_t)hm_failed_total(m));
        mp_w_cstr(w, "reasons");
        mp_w_map(w, HM__COUNT);
        for (int r = 0; r < HM__COUNT; r++) mp_w_kv_int(w, hm_reason_name(r), (int64_t)m->failed[r]);
    }
}

static ct_status cmd_stats(dm *d, const ct_args *a, mp_wr *w) {
    (void)a;
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->model->hash);
    mp_w_map(w, 35);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_str(w, "version", DM_VERSION);
    mp_w_kv_f64(w, "uptime", lg_wall_s() - d->started);
    mp_w_kv_str(w, "model_hash", hash);
    mp_w_kv_int(w, "received", (int64_t)d->frames);
    mp_w_kv_int(w, "bytes", (int64_t)d->bytes);
    mp_w_kv_int(w, "decoded", (int64_t)d->samples);
    mp_w_kv_int(w, "missing", (int64_t)d->missing);
    mp_w_cstr(w, "dropped");
    mp_w_map(w, IG_DROP__COUNT - 1);
    for (int i = 1; i < IG_DROP__COUNT; i++) mp_w_kv_int(w, ig_drop_name(i), (int64_t)d->dropped[i]);
    mp_w_kv_int(w, "dropped_total", (int64_t)ig_dropped_total(d));
    mp_w_cstr(w, "curve");
    write_curve(d, w);
    mp_w_kv_int(w, "series", rg_count(d->rg));
    mp_w_kv_int(w, "max_series", rg_capacity(d->rg));
    mp_w_kv_int(w, "steps", (int64_t)d->steps);
    mp_w_kv_f64(w, "steps_per_s", d->rate);
    mp_w_kv_int(w, "published", (int64_t)d->published);
    mp_w_kv_int(w, "alerts", (int64_t)d->alerts);
    /* Silence alerts (alerts.h): series watched, silent now, raised and
     * cleared since start; backfill samples and the level changes of
     * theirs that were not published. */
    mp_w_cstr(w, "silence");
    mp_w_map(w, 4);
    mp_w_kv_int(w, "watched", tw_count(d->al.tw));
    mp_w_kv_int(w, "silent", d->al.silent);
    mp_w_kv_int(w, "raised", (int64_t)d->al.raised);
    mp_w_kv_int(w, "cleared", (int64_t)d->al.cleared);
    mp_w_cstr(w, "backfill");
    mp_w_map(w, 2);
    mp_w_kv_int(w, "samples", (int64_t)d->al.backfill);
    mp_w_kv_int(w, "held_back", (int64_t)d->al.held_back);
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
    write_history_stats(d, w);
    write_mqtt_stats(d, w);
    kg_write_stats(d, w);
    write_stats_tail(d, w);
    return CT_REPLY;
}

static ct_status cmd_series(dm *d, const ct_args *a, mp_wr *w) {
    enum { MAX_PAGE = 1000 };
    uint32_t page[MAX_PAGE];
    uint64_t limit = a->limit;
    if (limit == 0 || limit > MAX_PAGE) limit = limit ? MAX_PAGE : 100;
    uint32_t n = 0, s = a->offset > UINT32_MAX ? RG_NONE : rg_next(d->rg, (uint32_t)a->offset);
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
    return CT_REPLY;
}

/* The `get` reply: r is the series' last result, NULL before its first sample. */
/* silent: -1 for a series not in memory (not watched), else 0 or 1. */
static void write_get_reply(mp_wr *w, const char *id, size_t len, double last_t, const en_result *r, int stored,
                            int silent) {
    mp_w_map(w, 9);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_cstr(w, "s");
    mp_w_str(w, id, len);
    mp_w_kv_f64(w, "last_t", last_t);
    mp_w_kv_f64(w, "score", r ? r->score : 0);
    mp_w_kv_int(w, "level", r ? r->level : 0);
    mp_w_kv_bool(w, "stored", stored);
    /* What raised the current level (or the last raised one), and whether
     * a silence alert is up (docs/PROTOCOL.md §2). */
    mp_w_kv_str(w, "kind", an_kind_name(r ? r->kind : AN_KIND_NONE));
    mp_w_kv_bool(w, "silent", silent > 0);
    mp_w_cstr(w, "forecast");
    if (r) ig_encode_result(r, id, len, w);
    else mp_w_nil(w);
}

/* A series not in memory (evicted, or not seen since a restart that could
 * not restore it) is read from the store without taking it back. */
static void get_stored(dm *d, mp_wr *w, const char *id, size_t len) {
    size_t n;
    uint64_t hash;
    int found = ck_peek(d->ck, id, len, d->fetch_buf, d->blob_size, &n, &hash);
    if (found < 0) { reply_error(w, "Cannot read the store (see the log)."); return; }
    if (found == 0) { reply_error(w, "Unknown series."); return; }
    rc_err rc = RC_ERR_MODEL;
    const en_result *r = hash == d->model->hash ? en_blob_last(d->en, d->fetch_buf, n, &rc) : NULL;
    if (!r && rc != RC_OK) {
        reply_error(w, rc == RC_ERR_MODEL ? "Series is stored under another model; it restarts on its next sample."
                                          : "Series' stored state is unreadable; it restarts on its next sample.");
        return;
    }
    write_get_reply(w, id, len, r ? r->t : 0, r, 1, -1);
}

static ct_status cmd_get(dm *d, const ct_args *a, mp_wr *w) {
    if (!a->s) { reply_error(w, "Unknown series."); return CT_REPLY; }
    uint32_t slot = rg_find(d->rg, a->s, a->s_len);
    if (slot == RG_NONE) { get_stored(d, w, a->s, a->s_len); return CT_REPLY; }
    en_flush(d->en);
    const en_result *r = en_slot_last(d->en, slot);
    double last_t = en_slot_last_t(d->en, slot);
    write_get_reply(w, a->s, a->s_len, isfinite(last_t) ? last_t : 0, r, 0, d->al.slot[slot].silent);
    return CT_REPLY;
}

static ct_status cmd_forget(dm *d, const ct_args *a, mp_wr *w) {
    if (!a->s) { reply_error(w, "Missing 's'."); return CT_REPLY; }
    uint32_t slot = rg_find(d->rg, a->s, a->s_len);
    if (ck_delete(d->ck, a->s, a->s_len) != RC_OK) { reply_error(w, "Store queue full; retry later."); return CT_REPLY; }
    if (slot != RG_NONE) {
        en_flush(d->en);
        rg_remove(d->rg, slot);
        en_slot_reset(d->en, slot);
        al_slot_gone(d, slot);
        hs_slot_gone(d->hs, slot);
        d->forgotten++;
    }
    mp_w_map(w, 2);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_bool(w, "was_loaded", slot != RG_NONE);
    return CT_REPLY;
}

/* `history`: the recent samples of one series (history.h), columnar,
 * oldest first; limit keeps the newest limit of them. A reply is cut to
 * what fits the reply buffer (returned < held says so). */
static ct_status history_error(dm *d, mp_wr *w, const char *msg) {
    reply_error(w, msg);
    d->hist_errors++;
    return CT_REPLY;
}

static ct_status cmd_history(dm *d, const ct_args *a, mp_wr *w) {
    if (!a->s) return history_error(d, w, "Missing 's' (the series id).");
    if (!d->hs)
        return history_error(d, w, "History is off: set 'history.series' (a pattern of series ids) in the "
                             "configuration and restart.");
    char esc[LG_ESCAPE_CAP(255)], msg[LG_ESCAPE_CAP(255) + 512];
    /* The id is the client's bytes: escaped before it goes into a message. */
    lg_escape(esc, sizeof esc, a->s, a->s_len);
    uint32_t slot = rg_find(d->rg, a->s, a->s_len);
    if (slot == RG_NONE) {
        size_t n;
        uint64_t hash;
        int stored = ck_peek(d->ck, a->s, a->s_len, d->fetch_buf, d->blob_size, &n, &hash) == 1;
        snprintf(msg, sizeof msg, stored ? "Series '%s' is not in memory (evicted or expired): its history left "
                                           "with it."
                                         : "Unknown series '%s'.", esc);
        return history_error(d, w, msg);
    }
    /* Results of samples still in the engine belong in the reply. */
    en_flush(d->en);
    int32_t ring = hs_lookup(d->hs, slot);
    if (ring == HS_NO_MATCH) {
        snprintf(msg, sizeof msg, "Series '%s' has no history: its id does not match 'history.series' (%s).", esc,
                 hs_pattern(d->hs));
        return history_error(d, w, msg);
    }
    if (ring == HS_FULL) {
        snprintf(msg, sizeof msg, "Series '%s' has no history: 'history.max_series' (%u) series already have one.",
                 esc, hs_max_series(d->hs));
        return history_error(d, w, msg);
    }
    uint32_t held = ring >= 0 ? hs_count(d->hs, ring) : 0, n = held;
    if (a->limit && a->limit < n) n = (uint32_t)a->limit;
    /* 39 bytes of msgpack per sample (two f64, four f32, a level); the
     * header and the id take well under 512. */
    size_t room = w->cap > w->len + 512 + a->s_len ? (w->cap - w->len - 512 - a->s_len) / 39 : 0;
    if (n > room) n = (uint32_t)room;
    uint32_t first = held - n;
    mp_w_map(w, 13);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_cstr(w, "s");
    mp_w_str(w, a->s, a->s_len);
    mp_w_kv_int(w, "held", held);
    mp_w_kv_int(w, "length", hs_length(d->hs));
    /* The thresholds the levels were set by, for the score panel. */
    mp_w_kv_f64(w, "warn", d->cfg.anomaly.warn);
    mp_w_kv_f64(w, "alert", d->cfg.anomaly.alert);
    static const char *const cols[] = {"t", "v", "yhat", "lo", "hi", "score", "level"};
    for (int c = 0; c < 7; c++) {
        mp_w_cstr(w, cols[c]);
        mp_w_arr(w, n);
        for (uint32_t i = first; i < held; i++) {
            const hs_entry *e = hs_at(d->hs, ring, i);
            switch (c) {
            case 0: mp_w_f64(w, e->t); break;
            case 1: mp_w_f64(w, e->v); break;
            case 2: mp_w_f32(w, e->yhat); break;
            case 3: mp_w_f32(w, e->lo); break;
            case 4: mp_w_f32(w, e->hi); break;
            case 5: mp_w_f32(w, e->score); break;
            default: mp_w_int(w, e->level); break;
            }
        }
    }
    if (!w->overflow) d->hist_requests++;
    return CT_REPLY;
}

static ct_status cmd_checkpoint(dm *d, const ct_args *a, mp_wr *w) {
    /* A job in flight may have passed slots that changed since: the
     * request is for the next checkpoint to begin. */
    int queued = ck_busy(d->ck);
    sn_start(d);
    if (a->wait) {
        /* Replied when that checkpoint commits; the REP socket is paused
         * meanwhile (REP must answer before it may read the next request). */
        d->reply_gen = d->ckpt_gen + (uint64_t)queued;
        d->ckpt_reply = 1;
        ev_io_enable(d->ev, d->rep_h, 0);
        return CT_DEFERRED;
    }
    mp_w_map(w, 3);
    mp_w_kv_bool(w, "ok", 1);
    mp_w_kv_bool(w, "started", 1);
    mp_w_kv_bool(w, "queued", queued);
    return CT_REPLY;
}

static ct_status cmd_reload(dm *d, const ct_args *a, mp_wr *w) {
    (void)a;
    char err[1024];
    if (dm_reload(d, err, sizeof err) != RC_OK) { reply_error(w, err); return CT_REPLY; }
    mp_w_map(w, 1);
    mp_w_kv_bool(w, "ok", 1);
    return CT_REPLY;
}

static const ct_command commands[] = {
    /* name         argument keys                  handler */
    {"ping",        0,                             cmd_ping},
    {"stats",       0,                             cmd_stats},
    {"series",      CT_ARG_OFFSET | CT_ARG_LIMIT,  cmd_series},
    {"get",         CT_ARG_S,                      cmd_get},
    {"forget",      CT_ARG_S,                      cmd_forget},
    {"checkpoint",  CT_ARG_WAIT,                   cmd_checkpoint},
    {"reload",      0,                             cmd_reload},
    {"history",     CT_ARG_S | CT_ARG_LIMIT,       cmd_history},
};

const ct_command *ct_commands(size_t *n) {
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

/* ---- Requests ---- */

/* Each argument key: the ct_args field it fills and the type it must have. */
static const struct {
    const char *key;
    unsigned arg;  /* CT_ARG_* */
    mp_type type;  /* a value of another type is ignored */
} arg_keys[] = {
    {"s", CT_ARG_S, MP_STR},
    {"offset", CT_ARG_OFFSET, MP_UINT},
    {"cursor", CT_ARG_OFFSET, MP_UINT},
    {"limit", CT_ARG_LIMIT, MP_UINT},
    {"wait", CT_ARG_WAIT, MP_BOOL},
};

static int key_is(const mp_obj *k, const char *name) {
    size_t n = strlen(name);
    return k->len == n && !memcmp(k->p, name, n);
}

/* Reads the next key-value pair of a map; an array or map value is skipped
 * whole (v holds only its header). 0 when the bytes are malformed or the
 * key is not a string. */
static int next_pair(mp_rd *r, mp_obj *k, mp_obj *v) {
    if (mp_next(r, k) != RC_OK || k->type != MP_STR) return 0;
    mp_rd at = *r;
    if (mp_next(r, v) != RC_OK) return 0;
    if (v->type == MP_ARR || v->type == MP_MAP) {
        *r = at;
        return mp_skip(r) == RC_OK;
    }
    return 1;
}

rc_err ct_parse(ct_request *q, const void *buf, size_t len) {
    mp_obj o, k, v;
    q->cmd[0] = 0;
    mp_rd_init(&q->pairs, buf, len);
    if (mp_next(&q->pairs, &o) != RC_OK || o.type != MP_MAP) return RC_ERR_PROTO;
    q->n_pairs = o.len;
    /* The whole map is checked here, so later passes over it cannot fail. */
    mp_rd r = q->pairs;
    for (uint32_t i = 0; i < o.len; i++) {
        if (!next_pair(&r, &k, &v)) return RC_ERR_PROTO;
        if (key_is(&k, "cmd") && v.type == MP_STR && v.len < sizeof q->cmd) {
            memcpy(q->cmd, v.p, v.len);
            q->cmd[v.len] = 0;
        }
    }
    return q->cmd[0] ? RC_OK : RC_ERR_PROTO;
}

/* Fills a with the keys in `wanted` (CT_ARG_* bits); the last good value
 * of a key repeated in the map wins. */
static void parse_args(const ct_request *q, unsigned wanted, ct_args *a) {
    memset(a, 0, sizeof *a);
    mp_rd r = q->pairs;
    mp_obj k, v;
    for (uint32_t i = 0; i < q->n_pairs && next_pair(&r, &k, &v); i++) {
        for (size_t j = 0; j < sizeof arg_keys / sizeof arg_keys[0]; j++) {
            if (!(wanted & arg_keys[j].arg) || v.type != arg_keys[j].type || !key_is(&k, arg_keys[j].key))
                continue;
            switch (arg_keys[j].arg) {
            case CT_ARG_S: a->s = (const char *)v.p; a->s_len = v.len; break;
            case CT_ARG_OFFSET: a->offset = v.u; break;
            case CT_ARG_LIMIT: a->limit = v.u; break;
            case CT_ARG_WAIT: a->wait = v.b; break;
            }
        }
    }
}

ct_status ct_dispatch(dm *d, const ct_request *q, mp_wr *w) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(q->cmd, commands[i].name)) continue;
        ct_args a;
        parse_args(q, commands[i].args, &a);
        return commands[i].run(d, &a, w);
    }
    char msg[96];
    snprintf(msg, sizeof msg, "Unknown command '%s'.", q->cmd);
    reply_error(w, msg);
    return CT_REPLY;
}

ct_status ct_handle(dm *d, const void *buf, size_t len, mp_wr *w) {
    ct_request q;
    ct_status st = CT_REPLY;
    if (ct_parse(&q, buf, len) != RC_OK) reply_error(w, "Bad request: expected a msgpack map with a 'cmd' string.");
    else st = ct_dispatch(d, &q, w);
    if (st == CT_REPLY) fit_reply(w);
    return st;
}

/* ---- Socket ---- */

static void send_reply(dm *d, const mp_wr *w) {
    zmq_send(d->rep, w->buf, w->len, ZMQ_DONTWAIT);
}

/* Receives the frames after `first` of a multipart message; returns how
 * many there were. ZeroMQ delivers a multipart message whole, so these
 * receives find their frame at once. */
static int drain_frames(void *sock, const zmq_msg_t *first) {
    int n = 0, more = zmq_msg_more(first);
    while (more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, 0) < 0) {
            zmq_msg_close(&x);
            if (zmq_errno() == EINTR) continue;
            break;
        }
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        n++;
    }
    return n;
}

void ct_on_socket(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, d->rep, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); return; }
    /* REP replies to the whole multipart message, so every frame is read
     * first; such a request is refused rather than half understood. */
    int frames = 1 + drain_frames(d->rep, &m);
    mp_wr w;
    mp_wr_init(&w, d->ctl_buf, d->ctl_cap);
    ct_status st = CT_REPLY;
    if (frames > 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "Bad request: multi-frame requests are not accepted (%d frames).", frames);
        reply_error(&w, msg);
    } else {
        st = ct_handle(d, zmq_msg_data(&m), zmq_msg_size(&m), &w);
    }
    zmq_msg_close(&m);
    if (st == CT_REPLY) send_reply(d, &w);
}

int ct_checkpoint_reply(dm *d, const ck_result *r, mp_wr *w) {
    if (!d->ckpt_reply || d->ckpt_gen < d->reply_gen) return 0;
    if (r->rc == RC_OK) {
        mp_w_map(w, 4);
        mp_w_kv_bool(w, "ok", 1);
        mp_w_kv_int(w, "rows", r->rows);
        mp_w_kv_f64(w, "duration", r->duration);
        mp_w_kv_f64(w, "time", r->started);
    } else {
        reply_error(w, r->error);
    }
    fit_reply(w);
    d->ckpt_reply = 0;
    ev_io_enable(d->ev, d->rep_h, 1);
    return 1;
}

void ct_checkpoint_done(dm *d, const ck_result *r) {
    mp_wr w;
    mp_wr_init(&w, d->ctl_buf, d->ctl_cap);
    if (ct_checkpoint_reply(d, r, &w)) send_reply(d, &w);
}
