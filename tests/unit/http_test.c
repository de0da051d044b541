/*
 * http_test.c: the HTTP endpoint's pure parts (daemon/http.h): routing and
 * percent-decoding of series ids, msgpack to JSON, Prometheus label
 * escaping and the sample-value formatter, and the /metrics render job on
 * a real daemon core (sliced as finely as it goes, against one piece). The
 * server itself is tested end to end (tests/e2e/test_ops.py).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/wire.h"
#include "daemon/control.h"
#include "daemon/http.h"
#include "daemon/ingest.h"
#include "daemon/server_internal.h"
#include "tests/unit/harness.h"

static ht_route_kind route(const char *p, char *id, size_t *n) { return ht_route(p, strlen(p), id, MP_ID_MAX, n); }

TEST(routes) {
    char id[MP_ID_MAX];
    size_t n = 0;
    ASSERT_EQ(route("/", id, &n), HT_INDEX);
    ASSERT_EQ(route("/metrics", id, &n), HT_METRICS);
    ASSERT_EQ(route("/metrics?x=1", id, &n), HT_METRICS);
    ASSERT_EQ(route("/healthz", id, &n), HT_HEALTHZ);
    ASSERT_EQ(route("/metrics/", id, &n), HT_NOT_FOUND);
    ASSERT_EQ(route("/METRICS", id, &n), HT_NOT_FOUND);
    ASSERT_EQ(route("", id, &n), HT_NOT_FOUND);
    ASSERT_EQ(route("/series", id, &n), HT_NOT_FOUND);
    ASSERT_EQ(route("/series/", id, &n), HT_BAD_ID);
    ASSERT_EQ(route("/series/a%2Fb%00c", id, &n), HT_SERIES);
    ASSERT_EQ(n, 5);
    ASSERT(memcmp(id, "a/b\0c", 5) == 0);
    ASSERT_EQ(route("/series/%C3%A9?q", id, &n), HT_SERIES);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(route("/series/%", id, &n), HT_BAD_ID);
    ASSERT_EQ(route("/series/%4", id, &n), HT_BAD_ID);
    ASSERT_EQ(route("/series/%4g", id, &n), HT_BAD_ID);
    ASSERT_EQ(route("/series/%ff", id, &n), HT_BAD_ID); /* not UTF-8 */
    char big[8 + 3 * 256 + 1] = "/series/";
    for (int i = 0; i < 255; i++) strcat(big, "%41");
    ASSERT_EQ(route(big, id, &n), HT_SERIES);
    ASSERT_EQ(n, 255);
    strcat(big, "A");
    ASSERT_EQ(route(big, id, &n), HT_BAD_ID);
    /* The length given is the end, whatever follows. */
    ASSERT_EQ(ht_route("/metricsXYZ", 8, id, MP_ID_MAX, &n), HT_METRICS);
}

TEST(json) {
    uint8_t buf[512];
    mp_wr w;
    mp_wr_init(&w, buf, sizeof buf);
    mp_w_map(&w, 6);
    mp_w_kv_bool(&w, "ok", 1);
    mp_w_kv_str(&w, "s", "a\"b\\c\n\x01\xc3\xa9\xff");
    mp_w_kv_f64(&w, "x", 1.5);
    mp_w_cstr(&w, "arr");
    mp_w_arr(&w, 4);
    mp_w_f64(&w, NAN);
    mp_w_int(&w, -3);
    mp_w_arr(&w, 0);
    mp_w_map(&w, 0);
    mp_w_cstr(&w, "nil");
    mp_w_nil(&w);
    mp_w_int(&w, 7); /* an integer key */
    mp_w_uint(&w, 18446744073709551615ull);
    ASSERT(!w.overflow);
    ht_buf b;
    ht_buf_init(&b, 0);
    ASSERT_EQ(ht_json_from_mp(&b, w.buf, w.len), RC_OK);
    ASSERT_STREQ(b.p, "{\"ok\":true,\"s\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\ufffd\",\"x\":1.5,"
                      "\"arr\":[null,-3,[],{}],\"nil\":null,\"7\":18446744073709551615}");
    ht_buf_free(&b);
    /* Truncated, nested too deep, a container as a key: errors. */
    ht_buf_init(&b, 0);
    ASSERT_EQ(ht_json_from_mp(&b, w.buf, w.len - 1), RC_ERR_PROTO);
    ht_buf_free(&b);
    uint8_t deep[40];
    memset(deep, 0x91, sizeof deep); /* [[[[...]]]] */
    deep[39] = 0xc0;
    ht_buf_init(&b, 0);
    ASSERT_EQ(ht_json_from_mp(&b, deep, sizeof deep), RC_ERR_PROTO);
    ht_buf_free(&b);
    uint8_t mkey[] = {0x81, 0x90, 0x01};
    ht_buf_init(&b, 0);
    ASSERT_EQ(ht_json_from_mp(&b, mkey, sizeof mkey), RC_ERR_PROTO);
    ht_buf_free(&b);
    /* A limit that the page hits: failed, never overrun. */
    ht_buf_init(&b, 16);
    for (int i = 0; i < 100; i++) ht_buf_put(&b, "0123456789", 10);
    ASSERT(b.failed);
    ASSERT_LE(b.len, 16);
    ht_buf_free(&b);
}

TEST(label_values) {
    ht_buf b;
    ht_buf_init(&b, 0);
    ht_label_value(&b, "a\"b\\c\nd\xc3\xa9", 9);
    ASSERT_STREQ(b.p, "a\\\"b\\\\c\\nd\xc3\xa9");
    ht_buf_free(&b);
}

/* Every value written reads back within float32 precision (7 digits). */
TEST(values) {
    ht_buf b;
    ht_buf_init(&b, 0);
    ht_put_value(&b, 0);
    ht_put_value(&b, NAN);
    ht_put_value(&b, INFINITY);
    ht_put_value(&b, -INFINITY);
    ht_put_value(&b, 2);
    ht_put_value(&b, -0.5);
    ht_put_value(&b, 1234567.0);
    ht_put_value(&b, 9999999.6);
    ht_put_value(&b, 0.00012);
    ht_put_value(&b, 120000000);
    ASSERT_STREQ(b.p, " 0\n NaN\n +Inf\n -Inf\n 2\n -0.5\n 1234567\n 10000000\n 0.00012\n 120000000\n");
    ht_buf_free(&b);
    unsigned seed = 12345;
    for (int i = 0; i < 200000; i++) {
        seed = seed * 1103515245u + 12345u;
        double m = (double)(seed >> 8) / (1 << 24);
        seed = seed * 1103515245u + 12345u;
        int e = (int)(seed >> 16) % 48 - 24;
        double v = (seed & 1 ? -1 : 1) * m * pow(10, e);
        v = (float)v;
        ht_buf_init(&b, 0);
        ht_put_value(&b, v);
        ASSERT(b.p[0] == ' ' && b.p[b.len - 1] == '\n');
        char *end;
        double r = strtod(b.p + 1, &end);
        ASSERT(*end == '\n');
        if (fabs(r - v) > 5.1e-7 * fabs(v)) {
            fprintf(stderr, "value %.17g written as '%s'\n", v, b.p);
            ASSERT(0);
        }
        ht_buf_free(&b);
    }
}

/* The page without the lines that differ between two renders of the same
 * state: the render's own figures, the clock, the heap (the job's buffers). */
static void strip_render_lines(ht_buf *b) {
    char *o = b->p, *p = b->p, *end = b->p + b->len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (!memmem(p, n, "metrics_render_", 15) && !memmem(p, n, "age_seconds", 11) &&
            !memmem(p, n, "heap_bytes", 10)) {
            memmove(o, p, n);
            o += n;
        }
        p += n;
    }
    b->len = (size_t)(o - b->p);
}

static size_t count(const ht_buf *b, const char *needle) {
    size_t n = 0, k = strlen(needle);
    for (const char *p = b->p; (p = memmem(p, (size_t)(b->p + b->len - p), needle, k)); p += k) n++;
    return n;
}

TEST(render_in_slices) {
    setenv("RWKVCAST_MODEL", "/nonexistent/default.rwkv", 1);
    char dir[64] = "/tmp/ht_testXXXXXX", path[128];
    ASSERT(mkdtemp(dir));
    static cf_config cfg;
    cf_default(&cfg);
    cfg.log_level = LG_WARNING + 1;
    cfg.max_series = 300;
    cfg.threads = 1;
    cfg.pipeline = 0;
    cfg.http_listen[0] = 0;
    snprintf(cfg.http_series, sizeof cfg.http_series, "s-*");
    cfg.http_series_max = 250;
    cfg.http_n_horizons = 2;
    cfg.http_horizons[0] = 1;
    cfg.http_horizons[1] = 3;
    snprintf(cfg.state_db, sizeof cfg.state_db, "%s/state.db", dir);
    dm *d = rc_calloc(1, sizeof *d);
    ASSERT(d);
    ASSERT_EQ(dm_core_open(d, &cfg), RC_OK);
    for (int i = 0; i < 280; i++) {
        uint8_t b[64];
        mp_wr p;
        mp_wr_init(&p, b, sizeof b);
        mp_w_map(&p, 3);
        char id[16];
        snprintf(id, sizeof id, i < 270 ? "s-%d" : "x-%d", i);
        mp_w_kv_str(&p, "s", id);
        mp_w_kv_f64(&p, "t", 1000);
        mp_w_kv_f64(&p, "v", i);
        ig_ingest_payload(d, p.buf, p.len);
    }
    en_flush(d->en);
    ht_buf one, sliced;
    ht_buf_init(&one, 0);
    ht_buf_init(&sliced, 0);
    ht_render_metrics(d, &one);
    /* until_ns 0: one chunk of series per step. */
    ht_render *r = ht_render_new();
    ASSERT(r);
    ht_render_begin(r, d, &sliced);
    int steps = 1;
    while (!ht_render_step(r, d, &sliced, 0)) steps++;
    ASSERT(steps > 5);
    ASSERT(!ht_render_busy(r));
    ASSERT(!one.failed && !sliced.failed);
    strip_render_lines(&one);
    strip_render_lines(&sliced);
    ASSERT_EQ(one.len, sliced.len);
    ASSERT(memcmp(one.p, sliced.p, one.len) == 0);
    ASSERT(strstr(one.p, "rwkvcast_series_exported 250\n"));
    ASSERT(strstr(one.p, "rwkvcast_series_matched 270\n"));
    ASSERT_EQ(count(&one, "rwkvcast_series_forecast{"), 500);
    ASSERT_EQ(count(&one, "rwkvcast_series_alert_level{"), 250);
    /* A series forgotten between two steps is left out, and a series that
     * takes its slot meanwhile is not shown under its id. */
    sliced.len = 0;
    ht_render_begin(r, d, &sliced);
    ASSERT_EQ(ht_render_step(r, d, &sliced, 0), 0);
    const char *victim = NULL;
    size_t vlen = 0;
    for (uint32_t s = rg_next(d->rg, 0); s != RG_NONE; s = rg_next(d->rg, s + 1)) {
        victim = rg_id(d->rg, s, &vlen);
        if (victim && vlen > 2 && !memcmp(victim, "s-", 2)) break;
    }
    char gone[16];
    snprintf(gone, sizeof gone, "%.*s", (int)vlen, victim);
    uint8_t q[64], rep[256];
    mp_wr w, out;
    mp_wr_init(&w, q, sizeof q);
    mp_w_map(&w, 2);
    mp_w_kv_str(&w, "cmd", "forget");
    mp_w_kv_str(&w, "s", gone);
    mp_wr_init(&out, rep, sizeof rep);
    ct_handle(d, w.buf, w.len, &out);
    {
        uint8_t b[64];
        mp_wr p;
        mp_wr_init(&p, b, sizeof b);
        mp_w_map(&p, 3);
        mp_w_kv_str(&p, "s", "newcomer");
        mp_w_kv_f64(&p, "t", 1000);
        mp_w_kv_f64(&p, "v", 1);
        ig_ingest_payload(d, p.buf, p.len);
        en_flush(d->en);
    }
    while (!ht_render_step(r, d, &sliced, 0)) {}
    char label[40];
    snprintf(label, sizeof label, "{series=\"%s\"", gone);
    ASSERT_EQ(count(&sliced, label), 0);
    ASSERT_EQ(count(&sliced, "newcomer"), 0);
    ASSERT_EQ(count(&sliced, "rwkvcast_series_alert_level{"), 249);
    ht_render_free(r);
    ht_buf_free(&one);
    ht_buf_free(&sliced);
    dm_core_close(d);
    rc_free(d);
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

TT_MAIN(TEST_ENTRY(routes), TEST_ENTRY(json), TEST_ENTRY(label_values), TEST_ENTRY(values), TEST_ENTRY(render_in_slices))
