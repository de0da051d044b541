/*
 * series_csv.c: timestamp,value CSV files and directories of them, for
 * `rwkvcast eval --live` and `rwkvcast train --live` (series_csv.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "tools/series_csv.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base.h"
#include "common/textin.h"
#include "tools/cli_util.h"


void sc_rows_free(sc_rows *r) {
    rc_free(r->t);
    rc_free(r->v);
    rc_free(r->line);
    memset(r, 0, sizeof *r);
}

static int rows_grow(sc_rows *r) {
    int cap = r->cap ? r->cap * 2 : 4096;
    double *t = rc_realloc(r->t, (size_t)cap * sizeof *t);
    if (t) r->t = t;
    double *v = t ? rc_realloc(r->v, (size_t)cap * sizeof *v) : NULL;
    if (v) r->v = v;
    long *l = v ? rc_realloc(r->line, (size_t)cap * sizeof *l) : NULL;
    if (!l) return 0;
    r->line = l;
    r->cap = cap;
    return 1;
}

/*
 * Reads path, a CSV with a header naming a timestamp and a value column (the
 * names, separators, quoting and timestamp forms of `rwkvcast replay`, read
 * by the same common/textin.c), into r (zeroed by the caller; rows_free
 * frees it, also after a failure). Rows with a bad timestamp are dropped and
 * counted, bad values kept as missing and counted. Returns RC_OK, or
 * RC_ERR_IO (open/read), RC_ERR_FORMAT (empty, no such columns, a malformed
 * record), RC_ERR_LIMIT (more than SC_MAX_ROWS rows) or RC_ERR_NOMEM, with
 * the reason in msg.
 */
rc_err sc_read(const char *path, sc_rows *r, char *msg, size_t msglen) {
    rc_err rc = RC_OK;
    ti_csv *in = ti_csv_open(path, 0, 0, &rc, msg, msglen);
    if (!in) return rc;
    ti_row row;
    rc = ti_csv_next(in, &row);
    if (rc != RC_OK || row.n == 0) {
        snprintf(msg, msglen, "%s", rc != RC_OK ? ti_csv_error(in)
                                                : "The file is empty (expected a header with timestamp,value).");
        rc = rc != RC_OK ? rc : RC_ERR_FORMAT;
        goto done;
    }
    int ct = cli_find_col(in, &row, cli_time_names, "timestamp");
    int cv = ct == -2 ? -2 : cli_find_col(in, &row, cli_value_names, "value");
    if (ct < 0 || cv < 0) {
        snprintf(msg, msglen, "The header needs 'timestamp' and 'value' columns.");
        rc = RC_ERR_FORMAT;
        goto done;
    }
    while ((rc = ti_csv_next(in, &row)) == RC_OK && row.n > 0) {
        long ln = row.f[0].line;
        double t, v = NAN;
        if (ct >= row.n || ti_parse_time(row.f[ct].s, &t, NULL) != RC_OK) {
            if (!r->bad_time++) r->bad_time_line = ln;
            continue;
        }
        if (cv < row.n && !ti_is_missing(row.f[cv].s) && ti_parse_double(row.f[cv].s, &v) != RC_OK) {
            if (!r->bad_value++) r->bad_value_line = ln;
            v = NAN;
        }
        if (r->n == r->cap) {
            if (r->n >= SC_MAX_ROWS) {
                snprintf(msg, msglen, "More than %d rows.", SC_MAX_ROWS);
                rc = RC_ERR_LIMIT;
                goto done;
            }
            if (!rows_grow(r)) {
                snprintf(msg, msglen, "Out of memory.");
                rc = RC_ERR_NOMEM;
                goto done;
            }
        }
        r->t[r->n] = t;
        r->v[r->n] = v;
        r->line[r->n++] = ln;
    }
    if (rc != RC_OK) snprintf(msg, msglen, "%s", ti_csv_error(in));
done:
    ti_csv_close(in);
    return rc;
}

/*
 * Drops the rows whose time is not after the previous kept row's: en_push
 * refuses them (RC_ERR_PROTO), so the daemon never sees them either. Returns
 * how many; *first gets the line of the first.
 */
int sc_drop_unordered(sc_rows *r, long *first) {
    int k = 0, d = 0;
    for (int i = 0; i < r->n; i++) {
        if (k > 0 && !(r->t[i] > r->t[k - 1])) {
            if (!d++) *first = r->line[i];
            continue;
        }
        r->t[k] = r->t[i];
        r->v[k] = r->v[i];
        r->line[k++] = r->line[i];
    }
    r->n = k;
    return d;
}


static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int push_name(char ***v, int *n, int *cap, const char *s) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 32;
        char **nv = rc_realloc(*v, (size_t)nc * sizeof *nv);
        if (!nv) return 0;
        *v = nv;
        *cap = nc;
    }
    return ((*v)[*n] = rc_strdup(s)) ? (++*n, 1) : 0;
}

/*
 * The regular files of dir: names ending in ".csv" into *csv, the others
 * (and subdirectories) into *ign, each sorted and owned by the caller (free
 * every name and the array). Names starting with '.' are skipped. Returns 0,
 * or -1 with the error printed.
 */
int sc_list_dir(const char *dir, char ***csv, int *ncsv, char ***ign, int *nign) {
    int ccap = 0, icap = 0, rc = -1;
    *csv = *ign = NULL;
    *ncsv = *nign = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "Error: Cannot open the live-metrics directory '%s' (%s); pass --live DIR.\n",
                dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.') continue;
        size_t len = strlen(nm);
        struct stat st;
        int is_csv = len > 4 && strcmp(nm + len - 4, ".csv") == 0;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, nm) >= sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            is_csv = 0;
        if (is_csv && *ncsv >= SC_MAX_FILES) {
            fprintf(stderr, "Error: More than %d .csv files in '%s'.\n", SC_MAX_FILES, dir);
            goto err;
        }
        if (!(is_csv ? push_name(csv, ncsv, &ccap, nm) : push_name(ign, nign, &icap, nm))) {
            fprintf(stderr, "Error: Out of memory.\n");
            goto err;
        }
    }
    if (*csv) qsort(*csv, (size_t)*ncsv, sizeof **csv, cmp_str);
    if (*ign) qsort(*ign, (size_t)*nign, sizeof **ign, cmp_str);
    rc = 0;
err:
    closedir(d);
    return rc;
}

void sc_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) rc_free(names[i]);
    rc_free(names);
}
