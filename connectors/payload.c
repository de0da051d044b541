/*
 * payload.c: text payloads and topic mapping (payload.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/payload.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/wire.h"

/* Nesting deeper than this in a skipped JSON value is refused: no sample
 * needs it, and the bound keeps the skipper's counter meaningful. */
#define PL_MAX_DEPTH 64
/* Longest number token accepted, bytes ("-1.2345678901234567e+308" is 24). */
#define PL_NUM_MAX 63

static const char *const names[] = {"ok", "syntax", "type", "missing", "inf"};

const char *pl_reason_name(pl_reason why) {
    return (unsigned)why < sizeof names / sizeof names[0] ? names[why] : "?";
}

int pl_is_msgpack(const uint8_t *p, size_t n) {
    if (n == 0) return 0;
    uint8_t b = p[0];
    /* fixmap, fixarray, array 16/32, map 16/32 */
    return (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
}

static int is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_num_char(uint8_t c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Parses the number token p[0..n) completely; 0 when it is not one. */
static int number(const uint8_t *p, size_t n, double *out) {
    if (n == 0 || n > PL_NUM_MAX) return 0;
    char buf[PL_NUM_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        if (!is_num_char(p[i])) return 0;
        buf[i] = (char)p[i];
    }
    buf[n] = 0;
    char *end;
    *out = strtod(buf, &end);
    return end == buf + n;
}

/* Reads a missing-value word (nan, null); 1 when p[0..n) is one. */
static int missing_word(const uint8_t *p, size_t n) {
    return (n == 3 && !strncasecmp((const char *)p, "nan", 3)) ||
           (n == 4 && !strncasecmp((const char *)p, "null", 4));
}

/* ---- JSON ---- */

typedef struct js {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last */
} js;

static void ws(js *j) {
    while (j->p < j->end && is_ws(*j->p)) j->p++;
}

/* Skips a string whose opening quote is at j->p; the bytes between the
 * quotes go to *s and *n (escapes left as they are). 0 when unterminated or it
 * holds a raw control byte. */
static int string(js *j, const uint8_t **s, size_t *n) {
    j->p++;
    const uint8_t *start = j->p;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p < 0x20) return 0;
        if (*j->p == '\\') {
            if (j->end - j->p < 2) return 0;
            j->p++;
        }
        j->p++;
    }
    if (j->p >= j->end) return 0;
    *s = start;
    *n = (size_t)(j->p - start);
    j->p++;
    return 1;
}

/* A scalar that is not a string: number, true, false, null. Its token is
 * returned in *s and *n. */
static int bare(js *j, const uint8_t **s, size_t *n) {
    const uint8_t *start = j->p;
    while (j->p < j->end && (is_num_char(*j->p) || (*j->p >= 'a' && *j->p <= 'z'))) j->p++;
    *s = start;
    *n = (size_t)(j->p - start);
    if (*n == 0) return 0;
    if ((*n == 4 && !memcmp(start, "true", 4)) || (*n == 5 && !memcmp(start, "false", 5)) ||
        (*n == 4 && !memcmp(start, "null", 4)))
        return 1;
    double d;
    return number(start, *n, &d);
}

/* An object key and its colon. */
static int key(js *j) {
    const uint8_t *s;
    size_t n;
    ws(j);
    if (j->p >= j->end || *j->p != '"' || !string(j, &s, &n)) return 0;
    ws(j);
    if (j->p >= j->end || *j->p != ':') return 0;
    j->p++;
    return 1;
}

/*
 * Skips one complete value. Iterative: one bit per open bracket says
 * whether it is an object (whose items need a key) or an array, so the
 * depth is bounded by PL_MAX_DEPTH (64) and no recursion is needed.
 */
static int skip_value(js *j) {
    uint64_t is_obj = 0;
    int depth = 0;
    for (;;) {
        const uint8_t *s;
        size_t n;
        ws(j);
        if (j->p >= j->end) return 0;
        uint8_t c = *j->p;
        if (c == '{' || c == '[') {
            if (depth == PL_MAX_DEPTH) return 0;
            j->p++;
            if (c == '{') is_obj |= 1ull << depth;
            else is_obj &= ~(1ull << depth);
            depth++;
            ws(j);
            if (j->p < j->end && *j->p == (c == '{' ? '}' : ']')) {
                j->p++;
                depth--;
            } else {
                if (c == '{' && !key(j)) return 0;
                continue;
            }
        } else if (c == '"') {
            if (!string(j, &s, &n)) return 0;
        } else if (!bare(j, &s, &n)) {
            return 0;
        }
        /* After a complete item: closing brackets, or ',' and the next item. */
        for (;;) {
            if (depth == 0) return 1;
            ws(j);
            if (j->p >= j->end) return 0;
            int obj = (int)(is_obj >> (depth - 1) & 1);
            if (*j->p == (obj ? '}' : ']')) {
                j->p++;
                depth--;
                continue;
            }
            if (*j->p != ',') return 0;
            j->p++;
            if (obj && !key(j)) return 0;
            break;
        }
    }
}

static int key_is(const uint8_t *k, size_t n, const char *a) { return n == strlen(a) && !memcmp(k, a, n); }

static pl_reason json_object(js *j, double now, double *t, double *v) {
    int have_v = 0;
    *t = now;
    j->p++; /* '{' */
    ws(j);
    if (j->p < j->end && *j->p == '}') { j->p++; return PL_R_MISSING; }
    pl_reason late = PL_OK; /* a type/inf problem, reported once the whole object parsed */
    for (;;) {
        ws(j);
        const uint8_t *k, *s;
        size_t kn, sn;
        if (j->p >= j->end || *j->p != '"' || !string(j, &k, &kn)) return PL_R_SYNTAX;
        ws(j);
        if (j->p >= j->end || *j->p != ':') return PL_R_SYNTAX;
        j->p++;
        ws(j);
        int is_v = key_is(k, kn, "v") || key_is(k, kn, "value");
        int is_t = key_is(k, kn, "t") || key_is(k, kn, "time") || key_is(k, kn, "timestamp");
        if (is_v || is_t) {
            if (j->p >= j->end) return PL_R_SYNTAX;
            if (*j->p == '"' || *j->p == '{' || *j->p == '[') {
                if (!skip_value(j)) return PL_R_SYNTAX;
                if (!late) late = PL_R_TYPE;
            } else {
                if (!bare(j, &s, &sn)) return PL_R_SYNTAX;
                double d;
                if (number(s, sn, &d)) {
                    if (is_v) {
                        *v = d;
                        have_v = 1;
                        if (!(fabs(d) <= FLT_MAX) && !late) late = PL_R_INF;
                    } else {
                        *t = d;
                        if (!isfinite(d) && !late) late = PL_R_INF;
                    }
                } else if (is_v && sn == 4 && !memcmp(s, "null", 4)) {
                    *v = NAN;
                    have_v = 1;
                } else if (!late) {
                    late = PL_R_TYPE;
                }
            }
        } else if (!skip_value(j)) {
            return PL_R_SYNTAX;
        }
        ws(j);
        if (j->p >= j->end) return PL_R_SYNTAX;
        if (*j->p == '}') { j->p++; break; }
        if (*j->p != ',') return PL_R_SYNTAX;
        j->p++;
    }
    ws(j);
    if (j->p != j->end) return PL_R_SYNTAX; /* trailing bytes */
    if (late) return late;
    return have_v ? PL_OK : PL_R_MISSING;
}

pl_reason pl_parse(const uint8_t *p, size_t n, double now, double *t, double *v) {
    js j = {p, p + n};
    ws(&j);
    const uint8_t *end = p + n;
    while (end > j.p && is_ws(end[-1])) end--;
    if (j.p == end) return PL_R_SYNTAX;
    if (*j.p == '{') return json_object(&j, now, t, v);
    *t = now;
    size_t len = (size_t)(end - j.p);
    if (missing_word(j.p, len)) { *v = NAN; return PL_OK; }
    if (!number(j.p, len, v)) return PL_R_SYNTAX;
    return fabs(*v) <= FLT_MAX ? PL_OK : PL_R_INF;
}

int pl_topic_to_id(const char *topic, size_t tlen, const char *strip_prefix, char sep,
                   char *out, size_t cap, size_t *len) {
    size_t k = strlen(strip_prefix);
    if (tlen < k || memcmp(topic, strip_prefix, k) != 0) return 0;
    size_t n = tlen - k;
    if (n == 0 || n > cap) return 0;
    for (size_t i = 0; i < n; i++) out[i] = topic[k + i] == '/' ? sep : topic[k + i];
    if (!mp_utf8_valid((const uint8_t *)out, n)) return 0;
    *len = n;
    return 1;
}

/* ---- JSON out ---- */

typedef struct jw {
    char *buf;
    size_t cap, len;
    int overflow;
} jw;

static void jw_raw(jw *w, const char *s, size_t n) {
    if (w->overflow || w->cap - w->len < n) { w->overflow = 1; return; }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/* digits: 17 round-trips a double (times), 9 a float (forecasts). */
static void jw_num(jw *w, double x, int digits) {
    char t[40];
    if (isnan(x) || isinf(x)) { jw_raw(w, "null", 4); return; }
    int n = snprintf(t, sizeof t, "%.*g", digits, x);
    jw_raw(w, t, (size_t)n);
}

static void jw_str(jw *w, const char *s, size_t n) {
    jw_raw(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jw_raw(w, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            jw_raw(w, e, 6);
        } else {
            jw_raw(w, (const char *)&s[i], 1);
        }
    }
    jw_raw(w, "\"", 1);
}

static void jw_farr(jw *w, const char *key, const float *a, int n) {
    jw_raw(w, key, strlen(key));
    jw_raw(w, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i) jw_raw(w, ",", 1);
        jw_num(w, (double)a[i], 9);
    }
    jw_raw(w, "]", 1);
}

/* The forecast map's keys, without its closing brace. */
static void json_forecast_keys(jw *w, const mp_forecast *f) {
    char t[64];
    jw_raw(w, "{\"s\":", 5);
    jw_str(w, f->s, f->s_len);
    jw_raw(w, ",\"t\":", 5);
    jw_num(w, f->t, 17);
    jw_raw(w, ",\"v\":", 5);
    jw_num(w, f->v, 17);
    jw_raw(w, ",\"dt\":", 6);
    jw_num(w, f->dt, 17);
    jw_raw(w, ",\"h\":[", 6);
    for (int i = 0; i < f->H; i++) {
        int n = snprintf(t, sizeof t, "%s%d", i ? "," : "", i + 1);
        jw_raw(w, t, (size_t)n);
    }
    jw_raw(w, "]", 1);
    jw_farr(w, ",\"yhat\":", f->yhat, f->H);
    jw_farr(w, ",\"lo\":", f->lo, f->H);
    jw_farr(w, ",\"hi\":", f->hi, f->H);
    jw_raw(w, ",\"score\":", 9);
    jw_num(w, (double)f->score, 9);
    int n = snprintf(t, sizeof t, ",\"level\":%d", f->level);
    jw_raw(w, t, (size_t)n);
}

size_t pl_json_forecast(char *buf, size_t cap, const mp_forecast *f) {
    jw w = {buf, cap, 0, 0};
    json_forecast_keys(&w, f);
    jw_raw(&w, "}", 1);
    return w.overflow ? 0 : w.len;
}

size_t pl_json_alert(char *buf, size_t cap, const mp_forecast *f, const mp_alert *a) {
    jw w = {buf, cap, 0, 0};
    json_forecast_keys(&w, f);
    jw_raw(&w, ",\"kind\":", 8);
    jw_str(&w, a->kind, strlen(a->kind));
    jw_raw(&w, ",\"since\":", 9);
    jw_num(&w, a->since, 17);
    jw_raw(&w, ",\"expected\":", 12);
    jw_num(&w, a->expected, 17);
    jw_raw(&w, ",\"expected_lo\":", 15);
    jw_num(&w, a->lo, 17);
    jw_raw(&w, ",\"expected_hi\":", 15);
    jw_num(&w, a->hi, 17);
    jw_raw(&w, "}", 1);
    return w.overflow ? 0 : w.len;
}
