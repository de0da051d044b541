/*
 * wide_csv.h: reader for M4-style wide CSVs (header row; first column the
 * series id, then its values in time order; trailing empty fields end a
 * shorter series). Used by `train` and `eval`. The CSV itself is read by
 * common/textin.h (RFC 4180 quotes, CRLF, BOM, blank lines skipped).
 *
 * Single-threaded. Errors print one "Error: ..." line naming FILE:LINE:COL.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WIDE_CSV_H
#define WIDE_CSV_H

typedef struct wide_csv {
    int n;        /* series */
    char **id;    /* (n) ids, owned */
    int *len;     /* (n) values per series (trailing empties dropped) */
    double **v;   /* (n) values, owned; NaN for an empty or missing (nan, null, NA) field inside a series */
    long *line;   /* (n) line of each series in the file, for messages */
} wide_csv;

/*
 * Reads path (comma-separated). Values must be numbers (common/textin.h's
 * ti_parse_double) or missing; ids must be unique. NULL on any error
 * (message printed). Free with wide_csv_free.
 */
wide_csv *wide_csv_read(const char *path);
void wide_csv_free(wide_csv *w);
/* Index of the series with this id, or -1. */
int wide_csv_find(const wide_csv *w, const char *id);

#endif
