/*
 * wire.h: the msgpack codec of wire protocol v1 (docs/PROTOCOL.md §1-2).
 *
 * Decoding is our own small pull reader over a borrowed buffer instead of
 * msgpack-c's unpacker: msgpack_unpack() allocates a zone per message, and
 * the per-sample path must not allocate. The reader never copies; strings
 * point into the frame, so a decoded sample is valid only during its
 * callback. Nesting is walked iteratively (a counter, not recursion), so a
 * hostile frame of nested arrays cannot overflow the stack.
 *
 * Encoding writes into a caller-owned fixed buffer (mp_wr); when it would
 * overflow, the writer sets `overflow` and drops the rest, never allocates.
 *
 * Threads: all functions are reentrant; a reader or writer belongs to one
 * thread at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

#define MP_ID_MAX 255 /* series id length limit, bytes */

/* Why a payload, or one sample of it, was dropped. */
typedef enum mp_reason {
    MP_OK = 0,
    MP_R_MSGPACK, /* not msgpack, truncated, or trailing bytes */
    MP_R_TYPE,    /* a value of the wrong type (payload, key, s, t or v) */
    MP_R_MISSING, /* a required key ('s' or 'v') is absent */
    MP_R_ID,      /* series id empty, longer than MP_ID_MAX or not UTF-8 */
    MP_R_INF,     /* v is +-Inf or beyond float range (|v| > FLT_MAX), or t is not finite */
    MP_R_LENGTH,  /* columnar 't' and 'v' arrays differ in length */
    MP_R__COUNT
} mp_reason;

/* Static snake_case name of a reason ("msgpack", "type", ...); never NULL. */
const char *mp_reason_name(mp_reason why);

/* ---- Reader ---- */

typedef enum mp_type {
    MP_NIL, MP_BOOL, MP_INT, MP_UINT, MP_FLOAT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_EXT
} mp_type;

typedef struct mp_obj {
    mp_type type;        /* which member below is set */
    int b;               /* MP_BOOL */
    int64_t i;           /* MP_INT (negative values only) */
    uint64_t u;          /* MP_UINT */
    double f;            /* MP_FLOAT (float32 widened) */
    const uint8_t *p;    /* MP_STR/MP_BIN/MP_EXT payload, borrowed from the buffer */
    uint32_t len;        /* MP_STR/MP_BIN/MP_EXT bytes; MP_ARR items; MP_MAP pairs */
    int8_t ext;          /* MP_EXT type */
} mp_obj;

typedef struct mp_rd {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
} mp_rd;

void mp_rd_init(mp_rd *r, const void *buf, size_t len);
/* Reads one header (and the scalar or the pointer to str/bin/ext bytes).
 * Arrays and maps only report their count; their items follow.
 * RC_ERR_PROTO on truncation or the reserved byte 0xc1. */
rc_err mp_next(mp_rd *r, mp_obj *o);
/* Skips one complete value including everything nested in it. RC_ERR_PROTO
 * when it is malformed. Iterative; cost linear in the bytes skipped. */
rc_err mp_skip(mp_rd *r);
/* Converts an MP_INT/MP_UINT/MP_FLOAT to double; 0 when o is not a number. */
int mp_as_double(const mp_obj *o, double *out);
/* 1 when the n bytes at s are valid UTF-8 (no overlongs or surrogates). */
int mp_utf8_valid(const uint8_t *s, size_t n);

/* ---- Sample payloads ---- */

typedef struct mp_sample {
    const char *s;  /* series id, NOT NUL-terminated, borrowed from the frame */
    uint32_t s_len; /* bytes, 1..MP_ID_MAX */
    double t;       /* seconds since the epoch, finite */
    double v;       /* value; NaN means missing; never +-Inf */
    unsigned flags; /* MP_F_* */
} mp_sample;

/* The map's "b": true (docs/PROTOCOL.md §1): history sent late; the daemon
 * scores and learns it but publishes no alert events for it. "b" must be a
 * bool or nil (false); anything else drops the map as MP_R_TYPE. */
#define MP_F_BACKFILL 1u

/* Called once per good sample, in payload order. */
typedef void mp_sample_cb(void *ctx, const mp_sample *smp);
/* Called once per dropped sample (or once for a whole undecodable payload).
 * s/s_len name the series when known, else s is NULL. */
typedef void mp_error_cb(void *ctx, mp_reason why, const char *s, uint32_t s_len);

/*
 * Decodes one payload of any of the three shapes of docs/PROTOCOL.md §1:
 *   {"s","t","v"}  [ {...}, ... ]  {"s", "t": [...], "v": [...]}
 * `now` is used for samples without 't'. A malformed frame is rejected as a
 * whole before any sample is delivered; a bad element of a batch only drops
 * that element. Unknown keys are ignored (forward compatible). Returns the
 * number of samples delivered.
 */
size_t mp_decode_samples(const void *buf, size_t len, double now,
                         mp_sample_cb *on_sample, mp_error_cb *on_error, void *ctx);

/* ---- Writer ---- */

typedef struct mp_wr {
    uint8_t *buf; /* (cap) bytes, borrowed */
    size_t cap;   /* capacity, bytes */
    size_t len;   /* bytes written */
    int overflow; /* set when a write did not fit; later writes are no-ops */
} mp_wr;

void mp_wr_init(mp_wr *w, void *buf, size_t cap);
void mp_w_nil(mp_wr *w);
void mp_w_bool(mp_wr *w, int b);
void mp_w_int(mp_wr *w, int64_t v);
void mp_w_uint(mp_wr *w, uint64_t v);
void mp_w_f32(mp_wr *w, float v);
void mp_w_f64(mp_wr *w, double v);
void mp_w_str(mp_wr *w, const char *s, size_t len);
void mp_w_cstr(mp_wr *w, const char *s);
void mp_w_arr(mp_wr *w, uint32_t n);
void mp_w_map(mp_wr *w, uint32_t n);
/* Key-value helpers for maps with C-string keys. */
void mp_w_kv_int(mp_wr *w, const char *k, int64_t v);
void mp_w_kv_f64(mp_wr *w, const char *k, double v);
void mp_w_kv_str(mp_wr *w, const char *k, const char *v);
void mp_w_kv_bool(mp_wr *w, const char *k, int v);

/* A forecast as published on "f.<series>" / "a.<series>". */
typedef struct mp_forecast {
    const char *s;     /* series id, borrowed */
    uint32_t s_len;    /* bytes */
    double t, v, dt;   /* sample time (s), value (NaN = missing), period (s) */
    int H;             /* horizons */
    const float *yhat; /* (H) median */
    const float *lo;   /* (H) lowest quantile */
    const float *hi;   /* (H) highest quantile */
    float score;       /* anomaly score, [0,1] */
    int level;         /* 0 ok, 1 warn, 2 alert */
    int backfill;      /* 1: adds "backfill": true (the sample was sent with "b": true) */
} mp_forecast;

/* What an alert event ("a.<series>") adds to the forecast map. */
typedef struct mp_alert {
    const char *kind;  /* "spike", ..., "silence" (an_kind_name), borrowed */
    double since;      /* when the level rose (or the silence began), seconds since the epoch */
    double expected;   /* median of the forecast v was judged against; NaN: none */
    double lo, hi;     /* its lowest and highest quantile; NaN: none */
} mp_alert;

/* Writes the map {"s","t","v","dt","h","yhat","lo","hi","score","level"}.
 * Size needed: at most 128 + s_len + 16*H bytes. */
void mp_encode_forecast(mp_wr *w, const mp_forecast *f);
/* The same map through the checked mp_w_* writers, a field at a time: any H
 * and s_len, sets w->overflow when it does not fit. mp_encode_forecast takes
 * this path whenever its single-check fast path does not apply; it is public
 * so wire_test can compare the two byte for byte. Several times slower. */
void mp_encode_forecast_general(mp_wr *w, const mp_forecast *f);
/* The forecast map of f plus "kind", "since", "expected", "expected_lo",
 * "expected_hi" (an alert event, docs/PROTOCOL.md §2). Checked writers;
 * at most 128 + s_len + 16*H + 96 bytes. */
void mp_encode_alert(mp_wr *w, const mp_forecast *f, const mp_alert *a);

#endif
