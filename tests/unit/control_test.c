/*
 * control_test.c: the control dispatcher (control.h) without sockets, on a
 * real daemon core (dm_core_open: random-weight model, engine, registry,
 * SQLite store in a temp dir). Every command of the table, unknown
 * commands, missing and mistyped arguments, requests that are not a map
 * or not msgpack, an oversized reply, and the deferred checkpoint reply.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/control.h"
#include "daemon/ingest.h"
#include "daemon/server.h"
#include "daemon/server_internal.h"
#include "daemon/snapshot.h"
#include "tests/unit/harness.h"

static dm *d;
static char dir[64];
static char path[128];

/* The reply of the last call; its buffer is as large as the daemon's. */
static uint8_t rbuf[512 * 1024];
static mp_wr w;
/* The request being built. */
static uint8_t qbuf[64 * 1024];
static mp_wr q;

/* history.series of the next open_daemon ("" = off), and its sizes. */
static const char *open_history = "";

static void open_daemon(uint32_t max_series, int policy) {
    /* No model file: the core runs on random weights, which is all the
     * commands need. Logging is off (above LG_WARNING). */
    setenv("RWKVCAST_MODEL", "/nonexistent/default.rwkv", 1);
    snprintf(dir, sizeof dir, "/tmp/ct_testXXXXXX");
    ASSERT(mkdtemp(dir));
    static cf_config cfg;
    cf_default(&cfg);
    cfg.log_level = LG_WARNING + 1;
    cfg.max_series = max_series;
    cfg.policy = policy;
    cfg.threads = 1;
    cfg.pipeline = 0;
    snprintf(cfg.history_series, sizeof cfg.history_series, "%s", open_history);
    cfg.history_max_series = 1;
    cfg.history_length = 3;
    snprintf(cfg.state_db, sizeof cfg.state_db, "%s/state.db", dir);
    d = rc_calloc(1, sizeof *d);
    ASSERT(d);
    ASSERT_EQ(dm_core_open(d, &cfg), RC_OK);
}

static void close_daemon(void) {
    dm_core_close(d);
    rc_free(d);
    const char *files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock", "rwkvcast.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- Requests ---- */

/* Starts the request {"cmd": cmd, ...} with `more` pairs still to write. */
static void req(const char *cmd, uint32_t more) {
    mp_wr_init(&q, qbuf, sizeof qbuf);
    mp_w_map(&q, 1 + more);
    mp_w_kv_str(&q, "cmd", cmd);
}

static ct_status call_bytes(const void *buf, size_t n) {
    mp_wr_init(&w, rbuf, sizeof rbuf);
    return ct_handle(d, buf, n, &w);
}

/* Sends the request built with req() and expects a reply now. */
static void call(void) {
    ASSERT(!q.overflow);
    ASSERT_EQ(call_bytes(q.buf, q.len), CT_REPLY);
}

/* Ingests one sample through the daemon's own payload path and steps it. */
static void ingest(const char *s, double t, double v) {
    uint8_t b[512];
    mp_wr p;
    mp_wr_init(&p, b, sizeof b);
    mp_w_map(&p, 3);
    mp_w_kv_str(&p, "s", s);
    mp_w_kv_f64(&p, "t", t);
    mp_w_kv_f64(&p, "v", v);
    ig_ingest_payload(d, p.buf, p.len);
    en_flush(d->en);
}

/* ---- Replies ---- */

/* Finds a dotted path ("checkpoint.count") in the map of `pairs` pairs at r. */
static int find_in(mp_rd *r, uint32_t pairs, const char *key, mp_obj *v) {
    size_t seg = strcspn(key, ".");
    for (uint32_t i = 0; i < pairs; i++) {
        mp_obj k;
        ASSERT_EQ(mp_next(r, &k), RC_OK);
        mp_rd at = *r;
        ASSERT_EQ(mp_next(r, v), RC_OK);
        if (k.type == MP_STR && k.len == seg && !memcmp(k.p, key, seg)) {
            if (!key[seg]) return 1;
            return v->type == MP_MAP && find_in(r, v->len, key + seg + 1, v);
        }
        *r = at;
        ASSERT_EQ(mp_skip(r), RC_OK);
    }
    return 0;
}

/* The reply is exactly one map (its counts match what follows). */
static uint32_t reply_pairs(void) {
    mp_rd r;
    mp_obj o;
    mp_rd_init(&r, w.buf, w.len);
    ASSERT_EQ(mp_skip(&r), RC_OK);
    ASSERT(r.p == r.end);
    mp_rd_init(&r, w.buf, w.len);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_MAP);
    return o.len;
}

static mp_obj get(const char *key) {
    mp_rd r;
    mp_obj v;
    uint32_t n = reply_pairs();
    mp_rd_init(&r, w.buf, w.len);
    ASSERT_EQ(mp_next(&r, &v), RC_OK);
    if (!find_in(&r, n, key, &v)) TT_FAIL_("reply has no '%s'", key);
    return v;
}

static int has(const char *key) {
    mp_rd r;
    mp_obj v;
    uint32_t n = reply_pairs();
    mp_rd_init(&r, w.buf, w.len);
    ASSERT_EQ(mp_next(&r, &v), RC_OK);
    return find_in(&r, n, key, &v);
}

static int get_bool(const char *key) {
    mp_obj v = get(key);
    ASSERT_EQ(v.type, MP_BOOL);
    return v.b;
}

static long long get_int(const char *key) {
    mp_obj v = get(key);
    ASSERT(v.type == MP_UINT || v.type == MP_INT);
    return v.type == MP_UINT ? (long long)v.u : (long long)v.i;
}

static double get_f64(const char *key) {
    mp_obj v = get(key);
    double x;
    ASSERT(mp_as_double(&v, &x));
    return x;
}

static const char *get_str(const char *key) {
    static char s[1024];
    mp_obj v = get(key);
    ASSERT_EQ(v.type, MP_STR);
    snprintf(s, sizeof s, "%.*s", (int)v.len, (const char *)v.p);
    return s;
}

static void expect_error(const char *msg) {
    ASSERT_EQ(reply_pairs(), 2);
    ASSERT_EQ(get_bool("ok"), 0);
    ASSERT_STREQ(get_str("error"), msg);
}

static const char bad_request[] = "Bad request: expected a msgpack map with a 'cmd' string.";

/* ---- The table ---- */

/* Adding a command to the table fails here until this file tests it. */
TEST(table_has_every_command) {
    static const char *const tested[] = {"ping", "stats", "series", "get", "forget", "checkpoint", "reload",
                                         "history"};
    size_t n;
    const ct_command *c = ct_commands(&n);
    ASSERT_EQ(n, sizeof tested / sizeof tested[0]);
    for (size_t i = 0; i < n; i++) {
        ASSERT(c[i].run);
        ASSERT(strlen(c[i].name) < CT_CMD_MAX);
        ASSERT_STREQ(c[i].name, tested[i]);
    }
}

TEST(ping) {
    open_daemon(16, CF_POLICY_REFUSE);
    req("ping", 0);
    call();
    ASSERT_EQ(reply_pairs(), 4);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_bool("pong"), 1);
    ASSERT_STREQ(get_str("version"), DM_VERSION);
    ASSERT_EQ(get_int("pid"), getpid());
    /* Keys a command does not take are ignored, nested values included. */
    req("ping", 3);
    mp_w_kv_str(&q, "s", "x");
    mp_w_kv_int(&q, "limit", 5);
    mp_w_cstr(&q, "junk");
    mp_w_arr(&q, 2);
    mp_w_int(&q, 1);
    mp_w_map(&q, 1);
    mp_w_kv_str(&q, "a", "b");
    call();
    ASSERT_EQ(get_bool("pong"), 1);
    close_daemon();
}

TEST(stats) {
    open_daemon(16, CF_POLICY_REFUSE);
    for (int k = 0; k < 3; k++) {
        char s[16];
        snprintf(s, sizeof s, "st%d", k);
        ingest(s, 1000, k);
        ingest(s, 1060, NAN);
    }
    ingest("st0", 1000, 1); /* not after the series' last time */
    static const uint8_t bad_v[] = {0x82, 0xa1, 's', 0xa1, 'x', 0xa1, 'v', 0xa1, 'y'}; /* v is a string */
    ig_ingest_payload(d, bad_v, sizeof bad_v);
    req("stats", 0);
    call();
    ASSERT_EQ(reply_pairs(), 35);
    ASSERT_EQ(get_int("history.series"), 0);
    ASSERT_EQ(get_int("history.bytes"), 0);
    ASSERT_EQ(get_bool("curve.enabled"), 0);
    ASSERT_EQ(get_int("curve.rejected"), 0);
    ASSERT_EQ(get_bool("ok"), 1);
    /* Two samples per series, under the default warm-up: nothing watched. */
    ASSERT_EQ(get_int("silence.watched"), 0);
    ASSERT_EQ(get_int("silence.raised"), 0);
    ASSERT_EQ(get_int("backfill.samples"), 0);
    ASSERT_STREQ(get_str("version"), DM_VERSION);
    ASSERT_EQ(strlen(get_str("model_hash")), 16);
    ASSERT_EQ(get_int("decoded"), 6);
    ASSERT_EQ(get_int("missing"), 3);
    ASSERT_EQ(get_int("steps"), 6);
    ASSERT_EQ(get_int("series"), 3);
    ASSERT_EQ(get_int("max_series"), 16);
    ASSERT_EQ(get_int("new_series"), 3);
    ASSERT_EQ(get_int("dropped_total"), 2);
    ASSERT_EQ(get_int("dropped.old_timestamp"), 1);
    ASSERT_EQ(get_int("dropped.type"), 1);
    ASSERT_EQ(get(("dropped")).len, IG_DROP__COUNT - 1);
    for (int i = 1; i < IG_DROP__COUNT; i++) {
        char key[64];
        snprintf(key, sizeof key, "dropped.%s", ig_drop_name(i));
        ASSERT(has(key));
    }
    ASSERT_EQ(get("checkpoint").len, 10);
    ASSERT_EQ(get_int("checkpoint.count"), 0);
    ASSERT_EQ(get_bool("checkpoint.busy"), 0);
    ASSERT_EQ(get_int("queues.engine"), 0);
    ASSERT_EQ(get_int("engine.threads"), 1);
    ASSERT_EQ(get("engine.shard_steps").len, 1);
    ASSERT_LT(0, get_int("heap_bytes"));
    ASSERT_LE(0, get_f64("loop_max_s"));
    close_daemon();
}

/* Pages through every id with `key` as the offset's name; returns pages. */
static int page_through(const char *key, uint64_t limit, int expect_total) {
    uint64_t at = 0;
    int pages = 0, seen = 0;
    for (;;) {
        req("series", 2);
        mp_w_cstr(&q, key);
        mp_w_uint(&q, at);
        mp_w_kv_int(&q, "limit", (int64_t)limit);
        call();
        ASSERT_EQ(get_int("total"), expect_total);
        seen += (int)get("series").len;
        pages++;
        mp_obj next = get("next");
        if (next.type == MP_NIL) break;
        ASSERT_EQ(next.type, MP_UINT);
        ASSERT_LT(at, next.u);
        at = next.u;
        ASSERT(pages < 100);
    }
    ASSERT_EQ(seen, expect_total);
    return pages;
}

TEST(series) {
    open_daemon(1200, CF_POLICY_REFUSE);
    uint8_t *b = rc_malloc(64 * 1024);
    mp_wr p;
    mp_wr_init(&p, b, 64 * 1024);
    mp_w_arr(&p, 1100);
    for (int k = 0; k < 1100; k++) {
        char s[16];
        snprintf(s, sizeof s, "sr%04d", k);
        mp_w_map(&p, 3);
        mp_w_kv_str(&p, "s", s);
        mp_w_kv_int(&p, "t", 1000);
        mp_w_kv_f64(&p, "v", k);
    }
    ASSERT(!p.overflow);
    ig_ingest_payload(d, p.buf, p.len);
    rc_free(b);
    ASSERT_EQ(page_through("offset", 400, 1100), 3);
    ASSERT_EQ(page_through("cursor", 500, 1100), 3);
    /* No limit: 100; above 1000: 1000. */
    req("series", 0);
    call();
    ASSERT_EQ(reply_pairs(), 4);
    ASSERT_EQ(get("series").len, 100);
    ASSERT_EQ(get("next").type, MP_UINT);
    req("series", 1);
    mp_w_kv_int(&q, "limit", 5000);
    call();
    ASSERT_EQ(get("series").len, 1000);
    /* Mistyped arguments count as absent: from 0, 100 ids. */
    req("series", 2);
    mp_w_kv_str(&q, "limit", "ten");
    mp_w_kv_int(&q, "offset", -1);
    call();
    ASSERT_EQ(get("series").len, 100);
    /* Past the last slot, and beyond 32 bits: an empty last page. */
    req("series", 1);
    mp_w_kv_int(&q, "offset", 5000000000LL);
    call();
    ASSERT_EQ(get("series").len, 0);
    ASSERT_EQ(get("next").type, MP_NIL);
    close_daemon();
}

TEST(get) {
    open_daemon(4, CF_POLICY_EVICT);
    for (int k = 0; k < 5; k++) {
        char s[16];
        snprintf(s, sizeof s, "g%d", k);
        ingest(s, 1000 + k, k);
    }
    /* In memory. */
    req("get", 1);
    mp_w_kv_str(&q, "s", "g4");
    call();
    ASSERT_EQ(reply_pairs(), 9);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_STREQ(get_str("s"), "g4");
    ASSERT_STREQ(get_str("kind"), "none");
    ASSERT_EQ(get_bool("silent"), 0);
    ASSERT_EQ(get_f64("last_t"), 1004);
    ASSERT_EQ(get_bool("stored"), 0);
    ASSERT_EQ(get("forecast").type, MP_MAP);
    ASSERT_STREQ(get_str("forecast.s"), "g4");
    ASSERT_EQ(get_int("level"), 0);
    /* g0 was evicted to make room for g4: read from the store's queue. */
    req("get", 1);
    mp_w_kv_str(&q, "s", "g0");
    call();
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_bool("stored"), 1);
    ASSERT_EQ(get_f64("last_t"), 1000);
    ASSERT_STREQ(get_str("kind"), "none");
    ASSERT_EQ(get_bool("silent"), 0);
    ASSERT_STREQ(get_str("forecast.s"), "g0");
    /* Unknown, missing, mistyped. */
    req("get", 1);
    mp_w_kv_str(&q, "s", "nope");
    call();
    expect_error("Unknown series.");
    req("get", 0);
    call();
    expect_error("Unknown series.");
    req("get", 1);
    mp_w_kv_int(&q, "s", 4);
    call();
    expect_error("Unknown series.");
    req("get", 1);
    mp_w_cstr(&q, "s");
    mp_w_arr(&q, 1);
    mp_w_cstr(&q, "g4");
    call();
    expect_error("Unknown series.");
    close_daemon();
}

TEST(forget) {
    open_daemon(16, CF_POLICY_REFUSE);
    ingest("f1", 1000, 1);
    ingest("f2", 1000, 2);
    req("forget", 0);
    call();
    expect_error("Missing 's'.");
    req("forget", 1);
    mp_w_kv_bool(&q, "s", 1);
    call();
    expect_error("Missing 's'.");
    req("forget", 1);
    mp_w_kv_str(&q, "s", "never-seen");
    call();
    ASSERT_EQ(reply_pairs(), 2);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_bool("was_loaded"), 0);
    req("forget", 1);
    mp_w_kv_str(&q, "s", "f1");
    call();
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_bool("was_loaded"), 1);
    ASSERT_EQ(rg_count(d->rg), 1);
    ASSERT_EQ(d->forgotten, 1);
    /* Gone from memory and, once the deletion is queued, from the store. */
    req("get", 1);
    mp_w_kv_str(&q, "s", "f1");
    call();
    expect_error("Unknown series.");
    close_daemon();
}

/* The n items of array `key` as doubles into x (at most 8). */
static uint32_t get_column(const char *key, double *x) {
    mp_rd r;
    mp_obj v;
    uint32_t n = reply_pairs();
    mp_rd_init(&r, w.buf, w.len);
    ASSERT_EQ(mp_next(&r, &v), RC_OK);
    ASSERT(find_in(&r, n, key, &v));
    ASSERT_EQ(v.type, MP_ARR);
    ASSERT(v.len <= 8);
    for (uint32_t i = 0; i < v.len; i++) {
        mp_obj e;
        ASSERT_EQ(mp_next(&r, &e), RC_OK);
        ASSERT(mp_as_double(&e, &x[i]));
    }
    return v.len;
}

static void history_req(const char *s, int64_t limit) {
    req("history", limit >= 0 ? 2 : 1);
    mp_w_kv_str(&q, "s", s);
    if (limit >= 0) mp_w_kv_int(&q, "limit", limit);
    call();
}

TEST(history) {
    open_history = "";
    open_daemon(16, CF_POLICY_REFUSE);
    ingest("h1", 1000, 1);
    history_req("h1", -1);
    expect_error("History is off: set 'history.series' (a pattern of series ids) in the configuration and restart.");
    ASSERT_EQ(d->hist_errors, 1);
    close_daemon();

    /* One ring of three samples, for ids h*. */
    open_history = "h*";
    open_daemon(16, CF_POLICY_REFUSE);
    for (int i = 0; i < 5; i++) ingest("h1", 1000 + i, i);
    ingest("h2", 1000, 1);
    ingest("x", 1000, 1);
    history_req("h1", -1);
    ASSERT_EQ(reply_pairs(), 13);
    ASSERT_EQ(get_int("held"), 3);
    ASSERT_EQ(get_int("length"), 3);
    double x[8];
    ASSERT_EQ(get_column("t", x), 3);
    ASSERT(x[0] == 1002 && x[1] == 1003 && x[2] == 1004);
    ASSERT_EQ(get_column("v", x), 3);
    ASSERT(x[0] == 2 && x[2] == 4);
    ASSERT_EQ(get_column("level", x), 3);
    history_req("h1", 1);
    ASSERT_EQ(get_column("t", x), 1);
    ASSERT(x[0] == 1004);
    history_req("h2", -1);
    expect_error("Series 'h2' has no history: 'history.max_series' (1) series already have one.");
    history_req("x", -1);
    expect_error("Series 'x' has no history: its id does not match 'history.series' (h*).");
    history_req("zz", -1);
    expect_error("Unknown series 'zz'.");
    req("history", 0);
    call();
    expect_error("Missing 's' (the series id).");
    ASSERT_EQ(d->hist_errors, 4);
    /* A reply buffer too small for every sample: the newest that fit. */
    history_req("h1", -1);
    mp_wr_init(&w, rbuf, 512 + 2 + 39 * 2);
    ASSERT_EQ(ct_handle(d, q.buf, q.len, &w), CT_REPLY);
    ASSERT(!w.overflow);
    ASSERT_EQ(get_int("held"), 3);
    ASSERT_EQ(get_column("t", x), 2);
    ASSERT(x[1] == 1004);
    /* forget frees the ring; h2's next sample takes it. */
    req("forget", 1);
    mp_w_kv_str(&q, "s", "h1");
    call();
    hs_stats st;
    hs_get_stats(d->hs, &st);
    ASSERT_EQ(st.series, 0);
    ASSERT_EQ(st.full, 1);
    ingest("h2", 1001, 2);
    history_req("h2", -1);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_column("t", x), 1);
    close_daemon();
    open_history = "";
}

/* Drives the store like the loop does until a waiting client's reply is
 * written into w; fails after 30 s. */
static void run_until_reply(void) {
    mp_wr_init(&w, rbuf, sizeof rbuf);
    int64_t until = lg_mono_ns() + 30000000000LL;
    while (lg_mono_ns() < until) {
        ck_result r;
        if (ck_poll(d->ck, &r) && sn_done(d, &r) && ct_checkpoint_reply(d, &r, &w)) return;
        sn_advance(d);
        usleep(1000);
    }
    TT_FAIL_("no checkpoint reply within 30 s");
}

TEST(checkpoint) {
    open_daemon(16, CF_POLICY_REFUSE);
    for (int k = 0; k < 5; k++) {
        char s[16];
        snprintf(s, sizeof s, "c%d", k);
        ingest(s, 1000, k);
    }
    /* wait: true: no reply now, the REP socket would be paused. */
    req("checkpoint", 1);
    mp_w_kv_bool(&q, "wait", 1);
    mp_wr_init(&w, rbuf, sizeof rbuf);
    ASSERT_EQ(call_bytes(q.buf, q.len), CT_DEFERRED);
    ASSERT_EQ(w.len, 0);
    ASSERT_EQ(d->ckpt_reply, 1);
    run_until_reply();
    ASSERT_EQ(reply_pairs(), 4);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_int("rows"), 5);
    ASSERT_LE(0, get_f64("duration"));
    ASSERT_LT(0, get_f64("time"));
    ASSERT_EQ(d->ckpt_reply, 0);
    /* Without wait: replies at once; a second request while the first
     * job is in flight is queued behind it. A mistyped wait is no wait. */
    ingest("c0", 1060, 1);
    req("checkpoint", 1);
    mp_w_kv_str(&q, "wait", "yes");
    call();
    ASSERT_EQ(reply_pairs(), 3);
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_bool("started"), 1);
    ASSERT_EQ(get_bool("queued"), 0);
    req("checkpoint", 0);
    call();
    ASSERT_EQ(get_bool("queued"), 1);
    /* A client waiting now waits for the queued one, not the one in flight. */
    req("checkpoint", 1);
    mp_w_kv_bool(&q, "wait", 1);
    ASSERT_EQ(call_bytes(q.buf, q.len), CT_DEFERRED);
    run_until_reply();
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(get_int("rows"), 0);
    ASSERT_EQ(d->ckpt_count, 3);
    /* Nobody waits: no reply. */
    ck_result none = {0};
    ASSERT_EQ(ct_checkpoint_reply(d, &none, &w), 0);
    close_daemon();
}

static void write_file(const char *text) {
    snprintf(path, sizeof path, "%s/rwkvcast.yaml", dir);
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
    snprintf(d->cfg.path, sizeof d->cfg.path, "%s", path);
}

TEST(reload) {
    open_daemon(16, CF_POLICY_REFUSE);
    /* No file: the defaults. */
    req("reload", 0);
    call();
    ASSERT_EQ(reply_pairs(), 1);
    ASSERT_EQ(get_bool("ok"), 1);
    write_file("stats_interval: 7\nlog_level: warning\n");
    call();
    ASSERT_EQ(get_bool("ok"), 1);
    ASSERT_EQ(d->cfg.stats_interval, 7);
    /* A bad file is refused with the loader's message; the settings stay. */
    write_file("stats_interval: 9\nbogus_key: 1\n");
    call();
    ASSERT_EQ(get_bool("ok"), 0);
    ASSERT(strstr(get_str("error"), "rwkvcast.yaml:"));
    ASSERT(strstr(get_str("error"), "Unknown key 'bogus_key'"));
    ASSERT_EQ(d->cfg.stats_interval, 7);
    close_daemon();
}

/* ---- Bad requests ---- */

TEST(unknown_command) {
    open_daemon(16, CF_POLICY_REFUSE);
    req("nope", 0);
    call();
    expect_error("Unknown command 'nope'.");
    req("PING", 0);
    call();
    expect_error("Unknown command 'PING'.");
    /* The longest name that is still read as one. */
    char name[CT_CMD_MAX];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = 0;
    req(name, 0);
    call();
    char msg[96];
    snprintf(msg, sizeof msg, "Unknown command '%s'.", name);
    expect_error(msg);
    close_daemon();
}

/* A byte string literal and its length without the terminating NUL. */
#define B(lit) lit, sizeof(lit) - 1

TEST(bad_requests) {
    open_daemon(16, CF_POLICY_REFUSE);
    static const struct {
        const char *what;
        const char *bytes;
        size_t n;
    } bad[] = {
        {"empty", B("")},
        {"reserved byte", B("\xc1")},
        {"array", B("\x91\xa4ping")},
        {"string", B("\xa4ping")},
        {"integer", B("\x05")},
        {"nil", B("\xc0")},
        {"empty map", B("\x80")},
        {"no cmd", B("\x81\xa1s\xa1x")},
        {"cmd not a string", B("\x81\xa3""cmd\x01")},
        {"cmd empty", B("\x81\xa3""cmd\xa0")},
        {"cmd too long", B("\x81\xa3""cmd\xd9\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")},
        {"key not a string", B("\x81\x01\xa4ping")},
        {"truncated value", B("\x81\xa3""cmd\xa4pin")},
        {"missing pair", B("\x82\xa3""cmd\xa4ping")},
        {"truncated nested", B("\x82\xa3""cmd\xa4ping\xa1x\x93\x01\x02")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_request r;
        if (ct_parse(&r, bad[i].bytes, bad[i].n) != RC_ERR_PROTO) TT_FAIL_("'%s' was parsed", bad[i].what);
        ASSERT_EQ(call_bytes(bad[i].bytes, bad[i].n), CT_REPLY);
        expect_error(bad_request);
    }
    /* Accepted: the last good 'cmd' wins, and bytes after the map are ignored. */
    static const char twice[] = "\x83\xa3""cmd\xa4nope\xa3""cmd\x07\xa3""cmd\xa4ping";
    ASSERT_EQ(call_bytes(twice, sizeof twice - 1), CT_REPLY);
    ASSERT_EQ(get_bool("pong"), 1);
    static const char trailing[] = "\x81\xa3""cmd\xa4ping\xc1\xc1";
    ASSERT_EQ(call_bytes(trailing, sizeof trailing - 1), CT_REPLY);
    ASSERT_EQ(get_bool("pong"), 1);
    close_daemon();
}

TEST(reply_too_large) {
    open_daemon(16, CF_POLICY_REFUSE);
    uint8_t small[64];
    mp_wr_init(&w, small, sizeof small);
    req("stats", 0);
    ASSERT_EQ(ct_handle(d, q.buf, q.len, &w), CT_REPLY);
    ASSERT(!w.overflow);
    expect_error("Reply too large.");
    close_daemon();
}

TT_MAIN(TEST_ENTRY(table_has_every_command), TEST_ENTRY(ping), TEST_ENTRY(stats), TEST_ENTRY(series),
        TEST_ENTRY(get), TEST_ENTRY(forget), TEST_ENTRY(checkpoint), TEST_ENTRY(reload),
        TEST_ENTRY(unknown_command), TEST_ENTRY(bad_requests), TEST_ENTRY(reply_too_large), TEST_ENTRY(history))
