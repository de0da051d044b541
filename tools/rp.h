/*
 * rp.h: helpers shared by `rwkvcast replay` (tools/cmd_replay.c) and the
 * anomaly benchmark (bench/anomaly_bench.c): timestamp parsing, CSV field
 * splitting and opening the model (with the documented random fallback).
 * Header-only because bench programs do not link the tools' objects.
 * tools/cli_util.c uses rp_days_from_civil too, so the tools have one copy
 * of the date arithmetic (the two time parsers accept different formats).
 *
 * Threads: every function is reentrant. Errors: see each function.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RP_H
#define RP_H

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "daemon/engine.h"
#include "model/features.h"
#include "model/rwkv.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so parsing never depends on the TZ environment. */
static inline long rp_days_from_civil(long y, long m, long d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static inline int rp_digits(const char **p, int n, long *out) {
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

/*
 * Parses "YYYY-MM-DD HH:MM:SS[.frac]", ISO-8601 "YYYY-MM-DDTHH:MM:SS[.frac]
 * [Z|+HH:MM|-HH:MM]" (no zone = UTC), "YYYY-MM-DD", or epoch seconds (a
 * plain number). Leading/trailing blanks and double quotes are ignored.
 * Returns 1 and stores seconds since the epoch, or 0 when s is none of those.
 */
static inline int rp_parse_time(const char *s, double *t) {
    while (*s == ' ' || *s == '"') s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '"')) len--;
    if (len == 0 || len > 64) return 0;
    char buf[72];
    memcpy(buf, s, len);
    buf[len] = 0;
    const char *p = buf;
    long y, mo, d, h = 0, mi = 0, se = 0;
    if (len >= 10 && p[4] == '-' && p[7] == '-') {
        if (!rp_digits(&p, 4, &y) || *p++ != '-' || !rp_digits(&p, 2, &mo) || *p++ != '-' ||
            !rp_digits(&p, 2, &d))
            return 0;
        if (mo < 1 || mo > 12 || d < 1 || d > 31) return 0;
        double frac = 0.0, off = 0.0;
        if (*p == ' ' || *p == 'T' || *p == 't') {
            p++;
            if (!rp_digits(&p, 2, &h) || *p++ != ':' || !rp_digits(&p, 2, &mi)) return 0;
            if (*p == ':') {
                p++;
                if (!rp_digits(&p, 2, &se)) return 0;
                if (*p == '.' || *p == ',') {
                    double scale = 0.1;
                    p++;
                    if (!isdigit((unsigned char)*p)) return 0;
                    while (isdigit((unsigned char)*p)) {
                        frac += scale * (*p - '0');
                        scale *= 0.1;
                        p++;
                    }
                }
            }
            if (h > 24 || mi > 59 || se > 60) return 0;
            if (*p == 'Z' || *p == 'z') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                long oh, om = 0;
                p++;
                if (!rp_digits(&p, 2, &oh)) return 0;
                if (*p == ':') p++;
                if (isdigit((unsigned char)*p) && !rp_digits(&p, 2, &om)) return 0;
                off = sign * (double)(oh * 3600 + om * 60);
            }
        }
        if (*p != 0) return 0;
        *t = (double)rp_days_from_civil(y, mo, d) * 86400.0 + (double)(h * 3600 + mi * 60 + se) +
             frac - off;
        return 1;
    }
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end != 0 || !isfinite(v)) return 0;
    *t = v;
    return 1;
}

/*
 * Parses a value field: a finite number -> 1; empty, "nan", "NaN", "null",
 * "NA" -> 2 (missing, *v = NAN); anything else (text, +-inf) -> 0.
 */
static inline int rp_parse_value(const char *s, double *v) {
    while (*s == ' ' || *s == '"') s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '"')) len--;
    char buf[72];
    if (len > 64) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (len == 0 || !strcasecmp(buf, "nan") || !strcasecmp(buf, "null") || !strcasecmp(buf, "na")) {
        *v = NAN;
        return 2;
    }
    char *end;
    double x = strtod(buf, &end);
    if (end == buf || *end != 0 || !isfinite(x)) return 0;
    *v = x;
    return 1;
}

/* Splits line in place at sep (no quoting beyond stripping "); strips the
 * line end. Returns the number of fields (at most max). */
static inline int rp_split(char *line, char sep, char **f, int max) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    int k = 0;
    char *p = line;
    while (k < max) {
        f[k++] = p;
        char *q = strchr(p, sep);
        if (!q) break;
        *q = 0;
        p = q + 1;
    }
    return k;
}

/*
 * Opens the model for replay/bench: path, or en_default_model_path() when
 * path is NULL. When path is NULL and the default file does not exist, builds
 * rk_dims_default(FT_NFEAT) with rk_model_init_random(seed 1) instead and sets
 * *is_random = 1 (callers say so in their output). NULL on failure with a
 * message in errbuf. Free with rk_model_free.
 */
static inline rk_model *rp_open_model(const char *path, int *is_random, char *errbuf, size_t errlen) {
    rc_err err = RC_OK;
    *is_random = 0;
    const char *p = path ? path : en_default_model_path();
    if (path || access(p, F_OK) == 0) return rk_model_load(p, &err, errbuf, errlen);
    rk_dims d = rk_dims_default(FT_NFEAT);
    rk_model *m = rk_model_new(&d, &err);
    if (!m) {
        snprintf(errbuf, errlen, "Cannot create a model (%s).", rc_strerror(err));
        return NULL;
    }
    ft_cfg fc;
    ft_cfg_default(&fc);
    fc.n_quant = d.n_quant;
    ft_cfg_to_meta(&fc, &m->meta);
    rk_model_init_random(m, 1);
    *is_random = 1;
    return m;
}

#endif
