/*
 * wire_test.c: the msgpack codec: the three payload shapes, every drop reason,
 * timestamps, and writer/reader round trips.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "connectors/wire.h"
#include "tests/unit/harness.h"

typedef struct got {
    int n;                      /* samples */
    char s[16][64];             /* ids */
    double t[16], v[16];        /* times, values */
    unsigned flags[16];         /* MP_F_* */
    int why[MP_R__COUNT];       /* drops by reason */
} got;

static void on_s(void *ctx, const mp_sample *m) {
    got *g = ctx;
    if (g->n < 16) {
        snprintf(g->s[g->n], sizeof g->s[0], "%.*s", (int)m->s_len, m->s);
        g->t[g->n] = m->t;
        g->v[g->n] = m->v;
        g->flags[g->n] = m->flags;
    }
    g->n++;
}

static void on_e(void *ctx, mp_reason why, const char *s, uint32_t n) {
    (void)s;
    (void)n;
    ((got *)ctx)->why[why]++;
}

static got decode(const mp_wr *w) {
    got g;
    memset(&g, 0, sizeof g);
    mp_decode_samples(w->buf, w->len, 99.0, on_s, on_e, &g);
    return g;
}

static int drops(const got *g) {
    int n = 0;
    for (int i = 0; i < MP_R__COUNT; i++) n += g->why[i];
    return n;
}

TEST(single_sample) {
    uint8_t b[256];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3);
    mp_w_kv_str(&w, "s", "temp.1");
    mp_w_kv_f64(&w, "t", 1700000000.5);
    mp_w_cstr(&w, "v");
    mp_w_int(&w, -7);
    got g = decode(&w);
    ASSERT_EQ(g.n, 1);
    ASSERT_STREQ(g.s[0], "temp.1");
    ASSERT_NEAR(g.t[0], 1700000000.5, 1e-9);
    ASSERT_NEAR(g.v[0], -7, 0);
    ASSERT_EQ(drops(&g), 0);
}

TEST(missing_t_uses_now_and_nan_is_missing) {
    uint8_t b[256];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3);
    mp_w_kv_str(&w, "s", "a");
    mp_w_kv_f64(&w, "v", NAN);
    mp_w_kv_int(&w, "x", 5); /* unknown keys are ignored */
    got g = decode(&w);
    ASSERT_EQ(g.n, 1);
    ASSERT_NEAR(g.t[0], 99.0, 0);
    ASSERT(isnan(g.v[0]));
}

TEST(batch_with_one_bad_element) {
    uint8_t b[512];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_arr(&w, 4);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "a"); mp_w_kv_int(&w, "t", 10); mp_w_kv_f64(&w, "v", 1.5);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "b"); mp_w_kv_int(&w, "t", 11); mp_w_kv_str(&w, "v", "x");
    mp_w_int(&w, 3);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "c"); mp_w_kv_int(&w, "t", 12); mp_w_kv_f64(&w, "v", 2.5);
    got g = decode(&w);
    ASSERT_EQ(g.n, 2);
    ASSERT_STREQ(g.s[1], "c");
    ASSERT_EQ(g.why[MP_R_TYPE], 2);
}

TEST(columnar) {
    uint8_t b[512];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3);
    mp_w_kv_str(&w, "s", "col");
    mp_w_cstr(&w, "t"); mp_w_arr(&w, 3); mp_w_int(&w, 1); mp_w_int(&w, 2); mp_w_f64(&w, 3.5);
    mp_w_cstr(&w, "v"); mp_w_arr(&w, 3); mp_w_f64(&w, 1); mp_w_f64(&w, INFINITY); mp_w_uint(&w, 300);
    got g = decode(&w);
    ASSERT_EQ(g.n, 2);
    ASSERT_NEAR(g.t[1], 3.5, 0);
    ASSERT_NEAR(g.v[1], 300, 0);
    ASSERT_EQ(g.why[MP_R_INF], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3);
    mp_w_kv_str(&w, "s", "col");
    mp_w_cstr(&w, "t"); mp_w_arr(&w, 1); mp_w_int(&w, 1);
    mp_w_cstr(&w, "v"); mp_w_arr(&w, 2); mp_w_f64(&w, 1); mp_w_f64(&w, 2);
    g = decode(&w);
    ASSERT_EQ(g.n, 0);
    ASSERT_EQ(g.why[MP_R_LENGTH], 1);
}

TEST(bad_inputs_by_reason) {
    static const uint8_t garbage[] = {0xc1, 0x00, 0xff};
    got g;
    memset(&g, 0, sizeof g);
    mp_decode_samples(garbage, sizeof garbage, 0, on_s, on_e, &g);
    ASSERT_EQ(g.why[MP_R_MSGPACK], 1);
    /* Truncated map and trailing bytes. */
    static const uint8_t trunc[] = {0x83, 0xa1, 's'};
    memset(&g, 0, sizeof g);
    mp_decode_samples(trunc, sizeof trunc, 0, on_s, on_e, &g);
    ASSERT_EQ(g.why[MP_R_MSGPACK], 1);
    static const uint8_t trail[] = {0x80, 0x00};
    memset(&g, 0, sizeof g);
    mp_decode_samples(trail, sizeof trail, 0, on_s, on_e, &g);
    ASSERT_EQ(g.why[MP_R_MSGPACK], 1);
    /* A huge declared array must be rejected without looping over it. */
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    memset(&g, 0, sizeof g);
    mp_decode_samples(huge, sizeof huge, 0, on_s, on_e, &g);
    ASSERT_EQ(g.why[MP_R_MSGPACK], 1);

    uint8_t b[1024];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 1); mp_w_kv_f64(&w, "v", 1); /* no s */
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_MISSING], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 1); mp_w_kv_str(&w, "s", "x"); /* no v */
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_MISSING], 1);

    char id[300];
    memset(id, 'k', sizeof id);
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 2); mp_w_cstr(&w, "s"); mp_w_str(&w, id, 300); mp_w_kv_f64(&w, "v", 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_ID], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 2); mp_w_cstr(&w, "s"); mp_w_str(&w, "\xff\xfe", 2); mp_w_kv_f64(&w, "v", 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_ID], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 2); mp_w_cstr(&w, "s"); mp_w_int(&w, 5); mp_w_kv_f64(&w, "v", 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_TYPE], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "x"); mp_w_kv_f64(&w, "t", NAN); mp_w_kv_f64(&w, "v", 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_INF], 1);

    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 2); mp_w_kv_str(&w, "s", "x"); mp_w_kv_f64(&w, "v", -INFINITY);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_INF], 1);

    /* Beyond float range is infinite to the model: dropped the same way;
     * the largest float itself is a value. */
    static const double beyond[3] = {1e308, -3.5e38, 3.4028236e38};
    for (int k = 0; k < 3; k++) {
        mp_wr_init(&w, b, sizeof b);
        mp_w_map(&w, 2); mp_w_kv_str(&w, "s", "x"); mp_w_kv_f64(&w, "v", beyond[k]);
        g = decode(&w);
        ASSERT_EQ(g.why[MP_R_INF], 1);
    }
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 2); mp_w_kv_str(&w, "s", "x"); mp_w_kv_f64(&w, "v", 3.4028234e38);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_INF], 0);

    mp_wr_init(&w, b, sizeof b);
    mp_w_kv_str(&w, "s", "x"); /* top-level string */
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_MSGPACK] + g.why[MP_R_TYPE], 1);
    ASSERT_EQ(g.n, 0);
}

TEST(timestamp_ext) {
    /* fixext8 type -1: nsec 500000000 in the top 30 bits, seconds 1700000000. */
    uint64_t x = (uint64_t)500000000 << 34 | 1700000000ull;
    uint8_t b[64] = {0x83, 0xa1, 's', 0xa1, 'a', 0xa1, 't', 0xd7, 0xff};
    for (int i = 0; i < 8; i++) b[9 + i] = (uint8_t)(x >> (56 - 8 * i));
    b[17] = 0xa1; b[18] = 'v'; b[19] = 0x01;
    got g;
    memset(&g, 0, sizeof g);
    mp_decode_samples(b, 20, 0, on_s, on_e, &g);
    ASSERT_EQ(g.n, 1);
    ASSERT_NEAR(g.t[0], 1700000000.5, 1e-6);
    /* 32-bit form. */
    uint8_t c[32] = {0x83, 0xa1, 's', 0xa1, 'a', 0xa1, 't', 0xd6, 0xff, 0, 0, 0, 42, 0xa1, 'v', 0x02};
    memset(&g, 0, sizeof g);
    mp_decode_samples(c, 16, 0, on_s, on_e, &g);
    ASSERT_EQ(g.n, 1);
    ASSERT_NEAR(g.t[0], 42, 0);
}

TEST(writer_round_trip_and_overflow) {
    uint8_t b[4096];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    int64_t ints[] = {0, 127, 128, 255, 256, 65535, 65536, 4294967295ll, 4294967296ll,
                      -1, -32, -33, -128, -129, -32768, -32769, -2147483648ll, -2147483649ll};
    int n = (int)(sizeof ints / sizeof ints[0]);
    mp_w_arr(&w, (uint32_t)n + 3);
    for (int i = 0; i < n; i++) mp_w_int(&w, ints[i]);
    mp_w_f32(&w, 1.25f);
    char big[300];
    memset(big, 'z', sizeof big);
    mp_w_str(&w, big, sizeof big);
    mp_w_bool(&w, 1);
    ASSERT(!w.overflow);
    mp_rd r;
    mp_rd_init(&r, b, w.len);
    mp_obj o;
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_ARR);
    for (int i = 0; i < n; i++) {
        double d;
        ASSERT_EQ(mp_next(&r, &o), RC_OK);
        ASSERT(mp_as_double(&o, &d));
        ASSERT_NEAR(d, (double)ints[i], 0);
    }
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_NEAR(o.f, 1.25, 0);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_STR);
    ASSERT_EQ(o.len, 300);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_BOOL);
    ASSERT_EQ(r.p, r.end);

    uint8_t small[8];
    mp_wr_init(&w, small, sizeof small);
    mp_w_cstr(&w, "0123456789");
    ASSERT(w.overflow);
}

TEST(forecast_encoding) {
    float yh[3] = {1, 2, 3}, lo[3] = {0, 1, 2}, hi[3] = {2, 3, 4};
    mp_forecast f = {"s1", 2, 10, 1.5, 60, 3, yh, lo, hi, 0.25f, 1, 0};
    uint8_t b[512];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_encode_forecast(&w, &f);
    ASSERT(!w.overflow);
    ASSERT_LE(w.len, 128 + 2 + 16 * 3);
    mp_rd r;
    mp_rd_init(&r, b, w.len);
    ASSERT_EQ(mp_skip(&r), RC_OK);
    ASSERT_EQ(r.p, r.end);
}

/* The fast path writes the same bytes as the general one for every header
 * size class of the id and the arrays, at an offset, with room to spare and
 * with barely enough. */
TEST(forecast_fast_path_same_bytes) {
    static float x[3][200];
    static uint8_t a[8192], b[8192];
    static char id[300];
    for (int i = 0; i < 200; i++) {
        x[0][i] = (float)i * 1.25f - 7;
        x[1][i] = -(float)i / 3;
        x[2][i] = i == 5 ? NAN : (float)i * 1e6f;
    }
    memset(id, 'q', sizeof id);
    const int Hs[] = {0, 1, 15, 16, 48, 127, 128, 200};
    const uint32_t Ls[] = {1, 31, 32, 255, 256};
    for (size_t hi = 0; hi < sizeof Hs / sizeof Hs[0]; hi++)
        for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
            for (int level = 0; level < 3; level++) {
                mp_forecast f = {id, Ls[li], 1.7e9 + 0.5, level ? NAN : 3.25, 60, Hs[hi], x[0], x[1], x[2],
                                 0.125f * (float)level, level, 0};
                mp_wr wa, wb;
                mp_wr_init(&wa, a, sizeof a);
                mp_wr_init(&wb, b, sizeof b);
                mp_w_nil(&wa); /* an offset */
                mp_w_nil(&wb);
                mp_encode_forecast(&wa, &f);
                mp_encode_forecast_general(&wb, &f);
                ASSERT(!wa.overflow && !wb.overflow);
                ASSERT_EQ(wa.len, wb.len);
                ASSERT(memcmp(a, b, wa.len) == 0);
                /* Exactly enough room (the general path) gives the same bytes;
                 * one byte less overflows. */
                mp_wr_init(&wa, a, wb.len);
                mp_w_nil(&wa);
                mp_encode_forecast(&wa, &f);
                ASSERT(!wa.overflow);
                ASSERT(memcmp(a, b, wb.len) == 0);
                mp_wr_init(&wa, a, wb.len - 1);
                mp_w_nil(&wa);
                mp_encode_forecast(&wa, &f);
                ASSERT(wa.overflow);
            }
}

/* The backfill flag "b": a bool or nil, per map; anything else drops the
 * map as 'type' (a one-letter key is the protocol's). */
TEST(backfill_flag) {
    uint8_t b[512];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_w_arr(&w, 6);
    const int kinds[6] = {1, 0, 2, 3, 4, 5}; /* true, false, nil, str, int, array */
    for (int i = 0; i < 6; i++) {
        mp_w_map(&w, 4);
        mp_w_kv_str(&w, "s", "x");
        mp_w_kv_f64(&w, "t", 10 + i);
        mp_w_cstr(&w, "b");
        switch (kinds[i]) {
        case 0: mp_w_bool(&w, 0); break;
        case 1: mp_w_bool(&w, 1); break;
        case 2: mp_w_nil(&w); break;
        case 3: mp_w_cstr(&w, "yes"); break;
        case 4: mp_w_int(&w, 1); break;
        default: mp_w_arr(&w, 1); mp_w_bool(&w, 1); break;
        }
        mp_w_kv_f64(&w, "v", i);
    }
    got g = decode(&w);
    ASSERT_EQ(g.n, 3);
    ASSERT_EQ(g.flags[0], MP_F_BACKFILL);
    ASSERT_EQ(g.flags[1], 0);
    ASSERT_EQ(g.flags[2], 0);
    ASSERT_EQ(g.why[MP_R_TYPE], 3);
    /* Columnar: the flag covers every sample of the map. */
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 4);
    mp_w_kv_str(&w, "s", "c");
    mp_w_kv_bool(&w, "b", 1);
    mp_w_cstr(&w, "t");
    mp_w_arr(&w, 2);
    mp_w_int(&w, 1);
    mp_w_int(&w, 2);
    mp_w_cstr(&w, "v");
    mp_w_arr(&w, 2);
    mp_w_int(&w, 5);
    mp_w_int(&w, 6);
    g = decode(&w);
    ASSERT_EQ(g.n, 2);
    ASSERT_EQ(g.flags[0], MP_F_BACKFILL);
    ASSERT_EQ(g.flags[1], MP_F_BACKFILL);
    ASSERT_EQ(drops(&g), 0);
}

/* Finds key k in the msgpack map at buf (n bytes): 1 with its value in *v
 * (arrays and maps as headers only), 0 when absent. */
static int map_get(const uint8_t *buf, size_t n, const char *k, mp_obj *v) {
    mp_rd r;
    mp_obj o, key;
    mp_rd_init(&r, buf, n);
    if (mp_next(&r, &o) != RC_OK || o.type != MP_MAP) return 0;
    for (uint32_t i = 0; i < o.len; i++) {
        if (mp_next(&r, &key) != RC_OK) return 0;
        mp_rd at = r;
        if (mp_next(&r, v) != RC_OK) return 0;
        if (v->type == MP_ARR || v->type == MP_MAP) { r = at; (void)mp_skip(&r); }
        if (key.type == MP_STR && key.len == strlen(k) && !memcmp(key.p, k, key.len)) return 1;
    }
    return 0;
}

TEST(alert_and_backfill_encoding) {
    float yh[3] = {1, 2, 3}, lo[3] = {0, 1, 2}, hi[3] = {2, 3, 4};
    mp_forecast f = {"s1", 2, 10, 1.5, 60, 3, yh, lo, hi, 0.25f, 2, 0};
    mp_alert a = {"spike", 5.5, 1.25, 0.5, 2.0};
    uint8_t b[512];
    mp_wr w;
    mp_wr_init(&w, b, sizeof b);
    mp_encode_alert(&w, &f, &a);
    ASSERT(!w.overflow);
    ASSERT_LE(w.len, 128 + 2 + 16 * 3 + 96);
    mp_obj o;
    mp_rd r;
    mp_rd_init(&r, b, w.len);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.len, 15);
    ASSERT(map_get(b, w.len, "kind", &o) && o.type == MP_STR && o.len == 5 && !memcmp(o.p, "spike", 5));
    ASSERT(map_get(b, w.len, "since", &o) && o.f == 5.5);
    ASSERT(map_get(b, w.len, "expected", &o) && o.f == 1.25);
    ASSERT(map_get(b, w.len, "expected_lo", &o) && o.f == 0.5);
    ASSERT(map_get(b, w.len, "expected_hi", &o) && o.f == 2.0);
    ASSERT(map_get(b, w.len, "level", &o) && o.u == 2);
    ASSERT(!map_get(b, w.len, "backfill", &o));
    /* A backfill forecast: the general path, one more key. */
    f.backfill = 1;
    mp_wr_init(&w, b, sizeof b);
    mp_encode_forecast(&w, &f);
    ASSERT(!w.overflow);
    mp_rd_init(&r, b, w.len);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.len, 11);
    ASSERT(map_get(b, w.len, "backfill", &o) && o.type == MP_BOOL && o.b == 1);
    /* Too small a buffer overflows, never writes past it. */
    mp_wr_init(&w, b, 40);
    mp_encode_alert(&w, &f, &a);
    ASSERT(w.overflow);
}

TEST(utf8) {
    ASSERT(mp_utf8_valid((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 16));
    ASSERT(!mp_utf8_valid((const uint8_t *)"\xc0\xaf", 2));     /* overlong */
    ASSERT(!mp_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
    ASSERT(!mp_utf8_valid((const uint8_t *)"\xe2\x82", 2));     /* truncated */
}

/* Every header form of the reader, from raw bytes. */
TEST(reader_all_forms) {
    static const uint8_t b[] = {
        0xc0,                               /* nil */
        0xc4, 1, 'x', 0xc5, 0, 1, 'y', 0xc6, 0, 0, 0, 1, 'z', /* bin 8/16/32 */
        0xc7, 1, 5, 'a', 0xc8, 0, 1, 6, 'b', 0xc9, 0, 0, 0, 1, 7, 'c', /* ext 8/16/32 */
        0xdb, 0, 0, 0, 2, 'h', 'i',         /* str32 */
        0xdd, 0, 0, 0, 1, 0x01,             /* arr32 [1] */
        0xde, 0, 1, 0xa1, 'k', 0x02,        /* map16 {k: 2} */
        0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x03,  /* map32 {k: 3} */
        0xd0, 0x80, 0xd1, 0xff, 0x00,       /* int8 -128, int16 -256 */
        0xd0, 0x05,                         /* int8 5 -> reported as uint */
        0xd4, 1, 9,                         /* fixext1 */
    };
    mp_rd r;
    mp_rd_init(&r, b, sizeof b);
    mp_obj o;
    mp_type want[] = {MP_NIL, MP_BIN, MP_BIN, MP_BIN, MP_EXT, MP_EXT, MP_EXT, MP_STR};
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(mp_next(&r, &o), RC_OK);
        ASSERT_EQ(o.type, want[i]);
        if (o.type == MP_EXT) ASSERT_EQ(o.ext, 5 + (i - 4));
    }
    ASSERT_EQ(o.len, 2);
    for (int i = 0; i < 3; i++) ASSERT_EQ(mp_skip(&r), RC_OK);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.i, -128);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.i, -256);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_UINT);
    ASSERT_EQ(o.u, 5);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_EXT);
    ASSERT_EQ(r.p, r.end);
    ASSERT_EQ(mp_next(&r, &o), RC_ERR_PROTO);
    /* Truncated ext type byte and truncated body. */
    static const uint8_t t1[] = {0xc7, 5};
    mp_rd_init(&r, t1, sizeof t1);
    ASSERT_EQ(mp_next(&r, &o), RC_ERR_PROTO);
    static const uint8_t t2[] = {0xc4, 5, 'a'};
    mp_rd_init(&r, t2, sizeof t2);
    ASSERT_EQ(mp_next(&r, &o), RC_ERR_PROTO);
    double dd;
    o.type = MP_STR;
    ASSERT(!mp_as_double(&o, &dd));
    ASSERT_STREQ(mp_reason_name(MP_R_ID), "bad_id");
    ASSERT_STREQ(mp_reason_name((mp_reason)99), "unknown");
}

TEST(odd_keys_and_shapes) {
    uint8_t b[256];
    mp_wr w;
    /* An integer key and a container key make the sample a type error. */
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "a"); mp_w_kv_f64(&w, "v", 1); mp_w_int(&w, 7); mp_w_nil(&w);
    got g = decode(&w);
    ASSERT_EQ(g.n, 0);
    ASSERT_EQ(g.why[MP_R_TYPE], 1);
    mp_wr_init(&w, b, sizeof b);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "a"); mp_w_kv_f64(&w, "v", 1);
    mp_w_arr(&w, 1); mp_w_int(&w, 1); mp_w_map(&w, 1); mp_w_kv_int(&w, "x", 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_TYPE], 1);
    /* Top-level scalar. */
    mp_wr_init(&w, b, sizeof b);
    mp_w_bool(&w, 1);
    g = decode(&w);
    ASSERT_EQ(g.why[MP_R_TYPE], 1);
    /* nil v is missing; nil t is the receive time; 96-bit timestamp ext. */
    mp_wr_init(&w, b, sizeof b);
    mp_w_arr(&w, 2);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "a"); mp_w_cstr(&w, "t"); mp_w_nil(&w); mp_w_cstr(&w, "v"); mp_w_nil(&w);
    mp_w_map(&w, 3); mp_w_kv_str(&w, "s", "b"); mp_w_cstr(&w, "t");
    static const uint8_t ts96[] = {0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
    memcpy(w.buf + w.len, ts96, sizeof ts96);
    w.len += sizeof ts96;
    mp_w_kv_int(&w, "v", 1);
    g = decode(&w);
    ASSERT_EQ(g.n, 2);
    ASSERT_NEAR(g.t[0], 99, 0);
    ASSERT(isnan(g.v[0]));
    ASSERT_NEAR(g.t[1], 7, 0);
    /* A timestamp ext of a bad size, and an ext of another type. */
    static const uint8_t bad_ts[] = {0x83, 0xa1, 's', 0xa1, 'a', 0xa1, 't', 0xd5, 0xff, 0, 0, 0xa1, 'v', 1};
    memset(&g, 0, sizeof g);
    mp_decode_samples(bad_ts, sizeof bad_ts, 0, on_s, on_e, &g);
    ASSERT_EQ(g.why[MP_R_TYPE], 1);
    /* Wide writer forms. */
    static char big[70000];
    memset(big, 'q', sizeof big);
    static uint8_t wb[80000];
    mp_wr_init(&w, wb, sizeof wb);
    mp_w_str(&w, big, sizeof big);
    mp_w_arr(&w, 70000);
    mp_w_map(&w, 20);
    mp_w_map(&w, 70000);
    mp_w_nil(&w);
    mp_w_kv_bool(&w, "b", 0);
    ASSERT(!w.overflow);
    ASSERT_EQ(wb[0], 0xdb);
    mp_rd r;
    mp_rd_init(&r, wb, w.len);
    mp_obj o;
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.len, 70000);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_ARR);
    ASSERT_EQ(o.len, 70000);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.type, MP_MAP);
    ASSERT_EQ(o.len, 20);
    ASSERT_EQ(mp_next(&r, &o), RC_OK);
    ASSERT_EQ(o.len, 70000);
}

TT_MAIN(TEST_ENTRY(backfill_flag), TEST_ENTRY(alert_and_backfill_encoding), TEST_ENTRY(single_sample), TEST_ENTRY(reader_all_forms), TEST_ENTRY(odd_keys_and_shapes), TEST_ENTRY(missing_t_uses_now_and_nan_is_missing),
        TEST_ENTRY(batch_with_one_bad_element), TEST_ENTRY(columnar),
        TEST_ENTRY(bad_inputs_by_reason), TEST_ENTRY(timestamp_ext),
        TEST_ENTRY(writer_round_trip_and_overflow), TEST_ENTRY(forecast_encoding), TEST_ENTRY(forecast_fast_path_same_bytes),
        TEST_ENTRY(utf8))
