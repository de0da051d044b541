/*
 * wire.c: msgpack reader/writer and the sample payload decoder (wire.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/wire.h"

#include <float.h>
#include <math.h>
#include <string.h>

const char *mp_reason_name(mp_reason why) {
    static const char *const names[MP_R__COUNT] = {
        "ok", "msgpack", "type", "missing_key", "bad_id", "inf", "length"};
    return (unsigned)why < MP_R__COUNT ? names[why] : "unknown";
}

/* ---- Reader ---- */

void mp_rd_init(mp_rd *r, const void *buf, size_t len) {
    r->p = buf;
    r->end = r->p + len;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Takes n bytes of header payload; NULL when truncated. */
static const uint8_t *take(mp_rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) return NULL;
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

/* Reads a length-prefixed body (str/bin/ext) of n bytes. */
static rc_err body(mp_rd *r, mp_obj *o, mp_type type, uint64_t n) {
    o->type = type;
    o->len = (uint32_t)n;
    o->p = take(r, (size_t)n);
    return o->p ? RC_OK : RC_ERR_PROTO;
}

rc_err mp_next(mp_rd *r, mp_obj *o) {
    const uint8_t *q = take(r, 1);
    if (!q) return RC_ERR_PROTO;
    uint8_t c = *q;
    memset(o, 0, sizeof *o);
    if (c <= 0x7f) { o->type = MP_UINT; o->u = c; return RC_OK; }
    if (c >= 0xe0) { o->type = MP_INT; o->i = (int8_t)c; return RC_OK; }
    if ((c & 0xf0) == 0x80) { o->type = MP_MAP; o->len = c & 0x0f; return RC_OK; }
    if ((c & 0xf0) == 0x90) { o->type = MP_ARR; o->len = c & 0x0f; return RC_OK; }
    if ((c & 0xe0) == 0xa0) return body(r, o, MP_STR, c & 0x1f);
    static const uint8_t hdr[0x20] = {
        /* c0..cf: nil,-,false,true,bin8,bin16,bin32,ext8,ext16,ext32,f32,f64,u8,u16,u32,u64 */
        0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8,
        /* d0..df: i8,i16,i32,i64,fixext1,2,4,8,16,str8,str16,str32,arr16,arr32,map16,map32 */
        1, 2, 4, 8, 1, 1, 1, 1, 1, 1, 2, 4, 2, 4, 2, 4};
    if (c == 0xc1) return RC_ERR_PROTO;
    int hn = hdr[c - 0xc0];
    const uint8_t *h = take(r, (size_t)hn);
    if (!h) return RC_ERR_PROTO;
    uint64_t x = be(h, hn);
    switch (c) {
    case 0xc0: o->type = MP_NIL; return RC_OK;
    case 0xc2: case 0xc3: o->type = MP_BOOL; o->b = c == 0xc3; return RC_OK;
    case 0xc4: case 0xc5: case 0xc6: return body(r, o, MP_BIN, x);
    case 0xc7: case 0xc8: case 0xc9: {
        const uint8_t *t = take(r, 1);
        if (!t) return RC_ERR_PROTO;
        o->ext = (int8_t)*t;
        return body(r, o, MP_EXT, x);
    }
    case 0xca: {
        uint32_t u = (uint32_t)x;
        float f;
        memcpy(&f, &u, 4);
        o->type = MP_FLOAT; o->f = f; return RC_OK;
    }
    case 0xcb: memcpy(&o->f, &x, 8); o->type = MP_FLOAT; return RC_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: o->type = MP_UINT; o->u = x; return RC_OK;
    case 0xd0: o->type = MP_INT; o->i = (int8_t)x; break;
    case 0xd1: o->type = MP_INT; o->i = (int16_t)x; break;
    case 0xd2: o->type = MP_INT; o->i = (int32_t)x; break;
    case 0xd3: o->type = MP_INT; o->i = (int64_t)x; break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        o->ext = (int8_t)x;
        return body(r, o, MP_EXT, 1u << (c - 0xd4));
    case 0xd9: case 0xda: case 0xdb: return body(r, o, MP_STR, x);
    case 0xdc: case 0xdd: o->type = MP_ARR; o->len = (uint32_t)x; return RC_OK;
    default: o->type = MP_MAP; o->len = (uint32_t)x; return RC_OK;
    }
    /* Non-negative signed ints are reported as MP_UINT so callers see one kind per value. */
    if (o->i >= 0) { o->type = MP_UINT; o->u = (uint64_t)o->i; }
    return RC_OK;
}

rc_err mp_skip(mp_rd *r) {
    /* Items still to read; every item takes at least one byte, so a count
     * above the bytes left is malformed and rejected before looping. */
    uint64_t todo = 1;
    mp_obj o;
    while (todo) {
        if (mp_next(r, &o) != RC_OK) return RC_ERR_PROTO;
        todo--;
        if (o.type == MP_ARR) todo += o.len;
        else if (o.type == MP_MAP) todo += 2ull * o.len;
        if (todo > (uint64_t)(r->end - r->p)) return RC_ERR_PROTO;
    }
    return RC_OK;
}

int mp_as_double(const mp_obj *o, double *out) {
    switch (o->type) {
    case MP_UINT: *out = (double)o->u; return 1;
    case MP_INT: *out = (double)o->i; return 1;
    case MP_FLOAT: *out = o->f; return 1;
    default: return 0;
    }
}

int mp_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < (size_t)k + 1) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

/* msgpack timestamp extension (type -1): 32, 64 or 96 bit forms. */
static int ts_ext(const mp_obj *o, double *out) {
    if (o->ext != -1) return 0;
    if (o->len == 4) { *out = (double)be(o->p, 4); return 1; }
    if (o->len == 8) {
        uint64_t x = be(o->p, 8);
        *out = (double)(x & 0x3ffffffffull) + (double)(x >> 34) * 1e-9;
        return 1;
    }
    if (o->len == 12) {
        uint32_t ns = (uint32_t)be(o->p, 4);
        int64_t sec = (int64_t)be(o->p + 4, 8);
        *out = (double)sec + ns * 1e-9;
        return 1;
    }
    return 0;
}

/* A scalar time: number or timestamp ext; nil means "receive time". */
static mp_reason scalar_t(const mp_obj *o, double now, double *t) {
    if (o->type == MP_NIL) { *t = now; return MP_OK; }
    if (!mp_as_double(o, t) && !(o->type == MP_EXT && ts_ext(o, t))) return MP_R_TYPE;
    return isfinite(*t) ? MP_OK : MP_R_INF;
}

/* A scalar value: number; nil is accepted as missing (NaN). */
static mp_reason scalar_v(const mp_obj *o, double *v) {
    if (o->type == MP_NIL) { *v = NAN; return MP_OK; }
    if (!mp_as_double(o, v)) return MP_R_TYPE;
    /* The model runs in float: a value beyond its range is infinite there
     * (one 1e308 made every later forecast of its series inf). */
    return isinf(*v) || fabs(*v) > FLT_MAX ? MP_R_INF : MP_OK;
}

typedef struct dec {
    double now;
    mp_sample_cb *on_sample;
    mp_error_cb *on_error;
    void *ctx;
    size_t n; /* samples delivered */
} dec;

static void drop(dec *d, mp_reason why, const mp_sample *s) {
    if (d->on_error) d->on_error(d->ctx, why, s ? s->s : NULL, s ? s->s_len : 0);
}

/* Decodes one map (single sample or columnar batch); r is positioned just
 * after the map header with npairs pairs to read. The frame was validated
 * by mp_skip already, so mp_next cannot fail here (checked anyway). */
static void decode_map(dec *d, mp_rd *r, uint32_t npairs) {
    mp_obj k, o, ot = {0}, ov = {0};
    mp_rd rt = {0}, rv = {0};
    int has_s = 0, has_t = 0, has_v = 0;
    unsigned flags = 0;
    int b_bad = 0; /* the last "b" was malformed */
    mp_sample smp = {0};
    mp_reason bad = MP_OK;
    for (uint32_t i = 0; i < npairs; i++) {
        mp_rd ka = *r;
        if (mp_next(r, &k) != RC_OK) { drop(d, MP_R_MSGPACK, NULL); return; }
        if (k.type == MP_ARR || k.type == MP_MAP) {
            /* A container key: skip it whole, then its value. */
            *r = ka;
            (void)mp_skip(r);
            (void)mp_skip(r);
            if (!bad) bad = MP_R_TYPE;
            continue;
        }
        int key = 0;
        if (k.type == MP_STR && k.len == 1) key = k.p[0];
        else if (k.type != MP_STR && !bad) bad = MP_R_TYPE;
        mp_rd at = *r;
        if (mp_next(r, &o) != RC_OK) { drop(d, MP_R_MSGPACK, NULL); return; }
        if (o.type == MP_ARR || o.type == MP_MAP) {
            *r = at;
            (void)mp_skip(r);
        }
        if (key == 's') {
            has_s = 1;
            if (o.type != MP_STR) { if (!bad) bad = MP_R_TYPE; continue; }
            smp.s = (const char *)o.p;
            smp.s_len = o.len;
        } else if (key == 't') {
            has_t = 1;
            ot = o;
            rt = at;
        } else if (key == 'v') {
            has_v = 1;
            ov = o;
            rv = at;
        } else if (key == 'b') {
            /* Backfill flag: a bool (nil = false). One letter, so reserved
             * for the protocol: any other type is a malformed sample. */
            b_bad = o.type != MP_BOOL && o.type != MP_NIL;
            flags = o.type == MP_BOOL && o.b ? MP_F_BACKFILL : 0;
        }
    }
    /* Judged last, so that of a repeated "b" the last one counts. */
    if (b_bad && !bad) bad = MP_R_TYPE;
    smp.flags = flags;
    if (has_s && smp.s && (smp.s_len == 0 || smp.s_len > MP_ID_MAX ||
                           !mp_utf8_valid((const uint8_t *)smp.s, smp.s_len))) {
        drop(d, MP_R_ID, NULL);
        return;
    }
    if (bad) { drop(d, bad, smp.s ? &smp : NULL); return; }
    if (!has_s || !has_v) { drop(d, MP_R_MISSING, smp.s ? &smp : NULL); return; }

    if (ov.type != MP_ARR) {
        mp_reason why = MP_OK;
        if (ot.type == MP_ARR) why = MP_R_TYPE;
        if (!why) why = has_t ? scalar_t(&ot, d->now, &smp.t) : (smp.t = d->now, MP_OK);
        if (!why) why = scalar_v(&ov, &smp.v);
        if (why) { drop(d, why, &smp); return; }
        d->on_sample(d->ctx, &smp);
        d->n++;
        return;
    }
    /* Columnar: v is an array; t must be an array of the same length. */
    if (!has_t) { drop(d, MP_R_MISSING, &smp); return; }
    if (ot.type != MP_ARR) { drop(d, MP_R_TYPE, &smp); return; }
    if (ot.len != ov.len) { drop(d, MP_R_LENGTH, &smp); return; }
    mp_obj a, b;
    (void)mp_next(&rt, &a); /* the array headers again */
    (void)mp_next(&rv, &b);
    for (uint32_t i = 0; i < ov.len; i++) {
        mp_rd st = rt, sv = rv;
        if (mp_next(&rt, &a) != RC_OK || mp_next(&rv, &b) != RC_OK) { drop(d, MP_R_MSGPACK, &smp); return; }
        mp_reason why = MP_OK;
        if (a.type == MP_ARR || a.type == MP_MAP) { rt = st; (void)mp_skip(&rt); why = MP_R_TYPE; }
        if (b.type == MP_ARR || b.type == MP_MAP) { rv = sv; (void)mp_skip(&rv); why = MP_R_TYPE; }
        if (!why) why = scalar_t(&a, d->now, &smp.t);
        if (!why) why = scalar_v(&b, &smp.v);
        if (why) { drop(d, why, &smp); continue; }
        d->on_sample(d->ctx, &smp);
        d->n++;
    }
}

size_t mp_decode_samples(const void *buf, size_t len, double now,
                         mp_sample_cb *on_sample, mp_error_cb *on_error, void *ctx) {
    dec d = {now, on_sample, on_error, ctx, 0};
    mp_rd r;
    mp_rd_init(&r, buf, len);
    /* Validate the whole frame first so garbage never yields partial output. */
    if (len == 0 || mp_skip(&r) != RC_OK || r.p != r.end) {
        drop(&d, MP_R_MSGPACK, NULL);
        return 0;
    }
    mp_rd_init(&r, buf, len);
    mp_obj o;
    (void)mp_next(&r, &o);
    if (o.type == MP_MAP) {
        decode_map(&d, &r, o.len);
    } else if (o.type == MP_ARR) {
        for (uint32_t i = 0; i < o.len; i++) {
            mp_rd at = r;
            mp_obj e;
            (void)mp_next(&r, &e);
            if (e.type == MP_MAP) {
                decode_map(&d, &r, e.len);
            } else {
                r = at;
                (void)mp_skip(&r);
                drop(&d, MP_R_TYPE, NULL);
            }
        }
    } else {
        drop(&d, MP_R_TYPE, NULL);
    }
    return d.n;
}

/* ---- Writer ---- */

void mp_wr_init(mp_wr *w, void *buf, size_t cap) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

static void put(mp_wr *w, const void *p, size_t n) {
    if (w->overflow || w->cap - w->len < n) { w->overflow = 1; return; }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* Tag byte followed by an n-byte big-endian integer. */
static void put_be(mp_wr *w, uint8_t tag, uint64_t x, int n) {
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++) b[1 + i] = (uint8_t)(x >> (8 * (n - 1 - i)));
    put(w, b, (size_t)n + 1);
}

void mp_w_nil(mp_wr *w) { uint8_t c = 0xc0; put(w, &c, 1); }
void mp_w_bool(mp_wr *w, int b) { uint8_t c = b ? 0xc3 : 0xc2; put(w, &c, 1); }

void mp_w_uint(mp_wr *w, uint64_t v) {
    if (v <= 0x7f) { uint8_t c = (uint8_t)v; put(w, &c, 1); }
    else if (v <= 0xff) put_be(w, 0xcc, v, 1);
    else if (v <= 0xffff) put_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu) put_be(w, 0xce, v, 4);
    else put_be(w, 0xcf, v, 8);
}

void mp_w_int(mp_wr *w, int64_t v) {
    if (v >= 0) { mp_w_uint(w, (uint64_t)v); return; }
    if (v >= -32) { uint8_t c = (uint8_t)(int8_t)v; put(w, &c, 1); }
    else if (v >= INT8_MIN) put_be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN) put_be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN) put_be(w, 0xd2, (uint64_t)v, 4);
    else put_be(w, 0xd3, (uint64_t)v, 8);
}

void mp_w_f32(mp_wr *w, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_be(w, 0xca, u, 4);
}

void mp_w_f64(mp_wr *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_be(w, 0xcb, u, 8);
}

void mp_w_str(mp_wr *w, const char *s, size_t len) {
    if (len <= 31) { uint8_t c = (uint8_t)(0xa0 | len); put(w, &c, 1); }
    else if (len <= 0xff) put_be(w, 0xd9, len, 1);
    else if (len <= 0xffff) put_be(w, 0xda, len, 2);
    else put_be(w, 0xdb, len, 4);
    put(w, s, len);
}

void mp_w_cstr(mp_wr *w, const char *s) { mp_w_str(w, s, strlen(s)); }

void mp_w_arr(mp_wr *w, uint32_t n) {
    if (n <= 15) { uint8_t c = (uint8_t)(0x90 | n); put(w, &c, 1); }
    else if (n <= 0xffff) put_be(w, 0xdc, n, 2);
    else put_be(w, 0xdd, n, 4);
}

void mp_w_map(mp_wr *w, uint32_t n) {
    if (n <= 15) { uint8_t c = (uint8_t)(0x80 | n); put(w, &c, 1); }
    else if (n <= 0xffff) put_be(w, 0xde, n, 2);
    else put_be(w, 0xdf, n, 4);
}

void mp_w_kv_int(mp_wr *w, const char *k, int64_t v) { mp_w_cstr(w, k); mp_w_int(w, v); }
void mp_w_kv_f64(mp_wr *w, const char *k, double v) { mp_w_cstr(w, k); mp_w_f64(w, v); }
void mp_w_kv_str(mp_wr *w, const char *k, const char *v) { mp_w_cstr(w, k); mp_w_cstr(w, v); }
void mp_w_kv_bool(mp_wr *w, const char *k, int v) { mp_w_cstr(w, k); mp_w_bool(w, v); }

/* The general path, through the checked writers (overflow, any H); a
 * non-NULL a adds the alert keys. */
static void encode_general(mp_wr *w, const mp_forecast *f, const mp_alert *a) {
    mp_w_map(w, 10 + (f->backfill ? 1 : 0) + (a ? 5 : 0));
    mp_w_cstr(w, "s");
    mp_w_str(w, f->s, f->s_len);
    mp_w_kv_f64(w, "t", f->t);
    mp_w_kv_f64(w, "v", f->v);
    mp_w_kv_f64(w, "dt", f->dt);
    mp_w_cstr(w, "h");
    mp_w_arr(w, (uint32_t)f->H);
    for (int h = 1; h <= f->H; h++) mp_w_uint(w, (uint64_t)h);
    const float *arrs[3] = {f->yhat, f->lo, f->hi};
    const char *names[3] = {"yhat", "lo", "hi"};
    for (int a = 0; a < 3; a++) {
        mp_w_cstr(w, names[a]);
        mp_w_arr(w, (uint32_t)f->H);
        for (int h = 0; h < f->H; h++) mp_w_f32(w, arrs[a][h]);
    }
    mp_w_kv_f64(w, "score", f->score);
    mp_w_kv_int(w, "level", f->level);
    if (f->backfill) mp_w_kv_bool(w, "backfill", 1);
    if (!a) return;
    mp_w_kv_str(w, "kind", a->kind);
    mp_w_kv_f64(w, "since", a->since);
    mp_w_kv_f64(w, "expected", a->expected);
    mp_w_kv_f64(w, "expected_lo", a->lo);
    mp_w_kv_f64(w, "expected_hi", a->hi);
}

void mp_encode_forecast_general(mp_wr *w, const mp_forecast *f) { encode_general(w, f, NULL); }

void mp_encode_alert(mp_wr *w, const mp_forecast *f, const mp_alert *a) { encode_general(w, f, a); }

/* msgpack is big-endian; these build the bytes with one byte swap and one
 * store per value (x86 and ARM64 have a single instruction for each). */
static inline uint32_t be32(uint32_t u) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap32(u);
#else
    return u;
#endif
}
static inline uint64_t be64(uint64_t u) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(u);
#else
    return u;
#endif
}

static uint8_t *fast_f64(uint8_t *p, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    u = be64(u);
    *p = 0xcb;
    memcpy(p + 1, &u, 8);
    return p + 9;
}

/* Array header (H <= 0xffff) then H float32s, big-endian. */
static uint8_t *fast_f32s(uint8_t *p, const float *x, int H) {
    if (H <= 15) *p++ = (uint8_t)(0x90 | H);
    else { *p++ = 0xdc; *p++ = (uint8_t)(H >> 8); *p++ = (uint8_t)H; }
    for (int h = 0; h < H; h++, p += 5) {
        uint32_t u;
        memcpy(&u, &x[h], 4);
        u = be32(u);
        p[0] = 0xca;
        memcpy(p + 1, &u, 4);
    }
    return p;
}

/* "h": [1..H] for H <= 127: the header and positive fixints, as bytes. */
static const uint8_t h_ints[128] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60,
    61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114,
    115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127};

/* Published once per stepped sample, so it is on the hot path: a profile
 * put it at ~11% of daemon time through the checked writers (a bounds
 * check and a byte loop per float). When the worst case fits, write the
 * same bytes with one check: constant keys as literals, "h" from a table,
 * floats as 5-byte stores. Anything unusual takes the general path, so
 * the encoding is identical by construction (wire_test compares them). */
void mp_encode_forecast(mp_wr *w, const mp_forecast *f) {
    size_t need = 128 + (size_t)f->s_len + 16 * (size_t)(f->H > 0 ? f->H : 0);
    if (w->overflow || f->H < 0 || f->H > 127 || f->s_len > 0xff || f->level < 0 || f->level > 127 ||
        f->backfill || w->cap - w->len < need) {
        mp_encode_forecast_general(w, f);
        return;
    }
    uint8_t *p = w->buf + w->len;
    int H = f->H;
    *p++ = 0x8a; /* map of 10 */
    *p++ = 0xa1;
    *p++ = 's';
    if (f->s_len <= 31) *p++ = (uint8_t)(0xa0 | f->s_len);
    else { *p++ = 0xd9; *p++ = (uint8_t)f->s_len; }
    memcpy(p, f->s, f->s_len);
    p += f->s_len;
    memcpy(p, "\xa1t", 2);
    p = fast_f64(p + 2, f->t);
    memcpy(p, "\xa1v", 2);
    p = fast_f64(p + 2, f->v);
    memcpy(p, "\xa2" "dt", 3);
    p = fast_f64(p + 3, f->dt);
    memcpy(p, "\xa1h", 2);
    p += 2;
    if (H <= 15) *p++ = (uint8_t)(0x90 | H);
    else { *p++ = 0xdc; *p++ = 0; *p++ = (uint8_t)H; }
    memcpy(p, h_ints + 1, (size_t)H);
    p += H;
    memcpy(p, "\xa4yhat", 5);
    p = fast_f32s(p + 5, f->yhat, H);
    memcpy(p, "\xa2lo", 3);
    p = fast_f32s(p + 3, f->lo, H);
    memcpy(p, "\xa2hi", 3);
    p = fast_f32s(p + 3, f->hi, H);
    memcpy(p, "\xa5score", 6);
    p = fast_f64(p + 6, f->score);
    memcpy(p, "\xa5level", 6);
    p += 6;
    *p++ = (uint8_t)f->level;
    w->len = (size_t)(p - w->buf);
}
