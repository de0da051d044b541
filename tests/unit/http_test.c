/*
 * http_test.c: the HTTP endpoint's pure parts (daemon/http.h): routing and
 * percent-decoding of series ids, msgpack to JSON, Prometheus label
 * escaping and the sample-value formatter. The server itself is tested end
 * to end (tests/e2e/test_ops.py).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/wire.h"
#include "daemon/http.h"
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

TT_MAIN(TEST_ENTRY(routes), TEST_ENTRY(json), TEST_ENTRY(label_values), TEST_ENTRY(values))
