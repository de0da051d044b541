/*
 * csvfile_fuzz.c: libFuzzer target for the CLI's file readers beyond
 * common/textin.c: tools/series_csv.c (sc_read and sc_drop_unordered, the
 * timestamp,value files of `eval --live` and `train --live`) and
 * tools/wide_csv.c (wide_csv_read, the M4-style wide files of `eval` and
 * `train`). Both take a path, so each input is written to one scratch file
 * first. The first byte picks the reader; the rest is the file.
 * Invariants: sc_read returns RC_OK with 0 <= n <= cap, finite times,
 * increasing line numbers and counters that add up, or an error with a
 * message; after sc_drop_unordered the times strictly
 * increase. wide_csv_read returns NULL or series with ids of 1..255 bytes,
 * lengths >= 0 and each id found again by wide_csv_find. Leaks are
 * LeakSanitizer's to find.
 * Seeds: tests/fuzz/corpus/csvfile/ (byte 0 even: series_csv; odd: wide_csv).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/series_csv.h"
#include "tools/wide_csv.h"

static char path[64];

/* Writes the input to the scratch file; 0 on failure (skipped). */
static int put_file(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/dev/shm/csvfile_fuzz_%d.csv", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static void series_csv(void) {
    sc_rows r;
    memset(&r, 0, sizeof r);
    char msg[512] = "";
    rc_err e = sc_read(path, &r, msg, sizeof msg);
    if (e != RC_OK) {
        if (!msg[0]) abort(); /* every failure says why (callers add the path) */
        sc_rows_free(&r);
        return;
    }
    if (r.n < 0 || r.n > r.cap || r.bad_time < 0 || r.bad_value < 0 || r.bad_value > r.n) abort();
    for (int i = 0; i < r.n; i++) {
        if (!isfinite(r.t[i])) abort();
        if (i && r.line[i] <= r.line[i - 1]) abort();
    }
    long first = 0;
    int dropped = sc_drop_unordered(&r, &first);
    if (dropped < 0) abort();
    for (int i = 1; i < r.n; i++)
        if (!(r.t[i] > r.t[i - 1])) abort();
    sc_rows_free(&r);
}

static void wide(void) {
    /* wide_csv_read reports its errors on stderr and returns NULL. */
    wide_csv *w = wide_csv_read(path);
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        /* Ids are unique (the reader refuses repeats), values finite or missing. */
        if (w->len[i] < 0 || wide_csv_find(w, w->id[i]) != i) abort();
        for (int k = 0; k < w->len[i]; k++)
            if (isinf(w->v[i][k])) abort();
    }
    wide_csv_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || !put_file(data + 1, size - 1)) return 0;
    if (data[0] & 1) wide();
    else series_csv();
    return 0;
}
