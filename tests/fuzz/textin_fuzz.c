/*
 * textin_fuzz.c: libFuzzer target for common/textin.h: the CSV reader and,
 * on every field it returns, the timestamp and number parsers.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/textin_fuzz.c
 *        common/textin.c common/base.c -lm
 * Seeds: tests/fuzz/corpus/textin/. The first input byte picks the separator
 * (detected, ',', ';' or tab), the comment flag and a small or the default
 * record bound; the rest is the file.
 * Invariants: fields are NUL-terminated at len with positions inside the
 * record, every error message names the input, a parsed timestamp lies in
 * years 0000-9999 (give or take a zone and 24:00), a parsed number is finite
 * and equal to strtod's/strtol's reading of the same text, and no input
 * makes the reader loop: it ends after at most one record per input byte.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/textin.h"

static void check_values(const char *s) {
    double t, d;
    const char *why = NULL;
    if (ti_parse_time(s, &t, &why) == RC_OK) {
        /* 0000-01-01 minus a day of zone to 9999-12-31 24:00 plus a day of zone. */
        if (!(t >= -62167219200.0 - 86400.0 && t <= 253402300800.0 + 2 * 86400.0)) abort();
    } else if (!why || !*why) {
        abort();
    }
    if (ti_parse_double(s, &d) == RC_OK) {
        /* The grammar check must only ever narrow what strtod reads, never change its value. */
        char *end;
        double ref = strtod(s, &end);
        if (!isfinite(d) || ref != d) abort();
    }
    long l;
    if (ti_parse_long(s, -1000, 1000, &l) == RC_OK) {
        if (l < -1000 || l > 1000 || strtol(s, NULL, 10) != l) abort();
        if (ti_parse_double(s, &d) != RC_OK || d != (double)l) abort();
    }
    uint64_t u;
    if (ti_parse_u64(s, &u) == RC_OK && (unsigned long long)u != strtoull(s, NULL, 10)) abort();
    (void)ti_is_missing(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char seps[4] = {0, ',', ';', '\t'};
    uint8_t mode = data[0];
    rc_err err;
    ti_csv *c = ti_csv_open_mem(data + 1, size - 1, "fuzz.csv", seps[mode & 3], (mode & 4) ? TI_CSV_COMMENTS : 0,
                                &err);
    if (!c) return 0;
    if (mode & 8) ti_csv_set_max(c, 16 + (mode >> 4));
    ti_row r;
    size_t records = 0;
    long last_line = 0;
    for (;;) {
        rc_err e = ti_csv_next(c, &r);
        if (++records > size + 1) abort();
        if (e != RC_OK) {
            if (e != RC_ERR_FORMAT && e != RC_ERR_NOMEM) abort();
            if (strncmp(ti_csv_error(c), "fuzz.csv:", 9) != 0) abort();
            continue;
        }
        if (r.n == 0) break;
        if (r.line <= last_line) abort();
        last_line = r.line;
        for (int i = 0; i < r.n; i++) {
            const ti_field *f = &r.f[i];
            if (strlen(f->s) != f->len || f->line < r.line || f->col < 1) abort();
            if (i > 0 && f->line < r.f[i - 1].line) abort();
            last_line = f->line;
            check_values(f->s);
            const char *m = ti_csv_field_error(c, &r, i, "number", i ? "v" : NULL, i & 1 ? "why" : NULL);
            if (strncmp(m, "fuzz.csv:", 9) != 0) abort();
        }
    }
    /* The end stays the end. */
    if (ti_csv_next(c, &r) != RC_OK || r.n != 0) abort();
    ti_csv_close(c);
    return 0;
}
