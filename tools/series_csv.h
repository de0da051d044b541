/*
 * series_csv.h: one series per file, as `timestamp,value` CSV, and
 * directories of such files: what `rwkvcast eval --live` scores and
 * `rwkvcast train --live` learns from. The text goes through
 * common/textin.c, so these files are read exactly like `replay`'s input
 * (header names, separators, quoting, timestamp forms).
 *
 * Threads: reentrant. Errors: see each function. Heap: rc_malloc; the
 * caller frees what it is given (sc_rows_free, sc_names_free).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SERIES_CSV_H
#define SERIES_CSV_H

#include <stddef.h>

#include "common/base.h"

#define SC_MAX_FILES 4096     /* .csv files taken from a directory */
#define SC_MAX_ROWS (1 << 26) /* rows per file */

/* Rows of one file as read. */
typedef struct sc_rows {
    double *t;           /* (n) seconds since the epoch */
    double *v;           /* (n) value; NaN when missing or unparseable */
    long *line;          /* (n) 1-based line number in the file */
    int n, cap;          /* rows; rows allocated */
    int bad_time;        /* rows dropped: unparseable timestamp */
    long bad_time_line;  /* the first of them */
    int bad_value;       /* rows whose value was not a number (kept as missing) */
    long bad_value_line; /* the first of them */
} sc_rows;

/*
 * Reads path, a CSV with a header naming a timestamp and a value column,
 * into r (zeroed by the caller; sc_rows_free frees it, also after a
 * failure). Rows with a bad timestamp are dropped and counted, bad values
 * kept as missing (NaN) and counted. Returns RC_OK, or RC_ERR_IO
 * (open/read), RC_ERR_FORMAT (empty, no such columns, a malformed record),
 * RC_ERR_LIMIT (more than SC_MAX_ROWS rows) or RC_ERR_NOMEM, with the
 * reason in msg (msglen bytes).
 */
rc_err sc_read(const char *path, sc_rows *r, char *msg, size_t msglen);
void sc_rows_free(sc_rows *r);

/*
 * Drops the rows whose time is not after the previous kept row's: the
 * engine refuses them (RC_ERR_PROTO), so the daemon never sees them either.
 * Returns how many; *first gets the line of the first.
 */
int sc_drop_unordered(sc_rows *r, long *first);

/*
 * The regular files of dir: names ending in ".csv" into *csv, the others
 * (and subdirectories) into *ign, each sorted (so a run does not depend on
 * readdir's order). Names starting with '.' are skipped. Free both with
 * sc_names_free. Returns 0, or -1 with the error printed.
 */
int sc_list_dir(const char *dir, char ***csv, int *ncsv, char ***ign, int *nign);
void sc_names_free(char **names, int n);

#endif
