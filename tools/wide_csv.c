/*
 * wide_csv.c: M4-style wide CSV reader (see wide_csv.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "tools/wide_csv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/textin.h"

void wide_csv_free(wide_csv *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        rc_free(w->id[i]);
        rc_free(w->v[i]);
    }
    rc_free(w->id);
    rc_free(w->len);
    rc_free(w->v);
    rc_free(w->line);
    rc_free(w);
}

int wide_csv_find(const wide_csv *w, const char *id) {
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->id[i], id) == 0) return i;
    return -1;
}

/* Makes room for one more series. 0, or -1 when out of memory. */
static int reserve(wide_csv *w, int *cap) {
    if (w->n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 512;
    char **ni = rc_realloc(w->id, (size_t)nc * sizeof(char *));
    if (ni) w->id = ni;
    int *nl = rc_realloc(w->len, (size_t)nc * sizeof(int));
    if (nl) w->len = nl;
    double **nv = rc_realloc(w->v, (size_t)nc * sizeof(double *));
    if (nv) w->v = nv;
    long *nn = rc_realloc(w->line, (size_t)nc * sizeof(long));
    if (nn) w->line = nn;
    if (!ni || !nl || !nv || !nn) return -1;
    *cap = nc;
    return 0;
}

/* Adds the series of data row r. 0, -1 out of memory, -2 bad value (printed). */
static int add_row(wide_csv *w, ti_csv *in, const ti_row *r) {
    int len = r->n - 1;
    while (len > 0 && r->f[len].len == 0) len--;
    double *v = rc_malloc((size_t)(len ? len : 1) * sizeof(double));
    char *id = rc_strdup(r->f[0].s);
    if (!v || !id) {
        rc_free(v);
        rc_free(id);
        return -1;
    }
    for (int i = 0; i < len; i++) {
        const char *s = r->f[i + 1].s;
        v[i] = NAN;
        if (!ti_is_missing(s) && ti_parse_double(s, &v[i]) != RC_OK) {
            fprintf(stderr, "Error: %s\n", ti_csv_field_error(in, r, i + 1, "number", NULL, NULL));
            rc_free(v);
            rc_free(id);
            return -2;
        }
    }
    w->id[w->n] = id;
    w->v[w->n] = v;
    w->len[w->n] = len;
    w->line[w->n] = r->line;
    w->n++;
    return 0;
}

typedef struct id_ix {
    const char *id; /* series id, borrowed */
    int ix;         /* its index in the file */
} id_ix;

static int cmp_id(const void *a, const void *b) {
    const id_ix *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->ix > y->ix) - (x->ix < y->ix);
}

/* 0 if every id is unique, else -1 after naming the first repeat. O(n log n). */
static int check_unique(const wide_csv *w, const char *label) {
    id_ix *s = rc_malloc((size_t)(w->n ? w->n : 1) * sizeof *s);
    if (!s) {
        fprintf(stderr, "Error: Out of memory reading '%s'.\n", label);
        return -1;
    }
    for (int i = 0; i < w->n; i++) s[i] = (id_ix){w->id[i], i};
    qsort(s, (size_t)w->n, sizeof *s, cmp_id);
    /* Of all repeats, name the one that comes first in the file. */
    int bad = -1, first = -1;
    for (int i = 1; i < w->n; i++)
        if (strcmp(s[i - 1].id, s[i].id) == 0 && (bad < 0 || s[i].ix < bad)) bad = s[i].ix, first = s[i - 1].ix;
    rc_free(s);
    if (bad < 0) return 0;
    fprintf(stderr, "Error: %s:%ld:1: Duplicate series id '%s' (first on line %ld).\n", label, w->line[bad],
            w->id[bad], w->line[first]);
    return -1;
}

wide_csv *wide_csv_read(const char *path) {
    char errbuf[512];
    rc_err e;
    ti_csv *in = ti_csv_open(path, ',', 0, &e, errbuf, sizeof errbuf);
    if (!in) {
        fprintf(stderr, "Error: %s\n", errbuf);
        return NULL;
    }
    wide_csv *w = rc_calloc(1, sizeof *w);
    int cap = 0, header = 1;
    ti_row r;
    if (!w) goto oom;
    while ((e = ti_csv_next(in, &r)) == RC_OK && r.n > 0) {
        /* The header names the columns V1, V2, ...: nothing to take from it. */
        if (header) {
            header = 0;
            continue;
        }
        if (r.n < 2 && r.f[0].len == 0) continue;
        if (reserve(w, &cap)) goto oom;
        int rc = add_row(w, in, &r);
        if (rc == -1) goto oom;
        if (rc < 0) goto fail;
    }
    if (e != RC_OK) {
        fprintf(stderr, "Error: %s\n", ti_csv_error(in));
        goto fail;
    }
    if (check_unique(w, path)) goto fail;
    ti_csv_close(in);
    return w;
oom:
    fprintf(stderr, "Error: Out of memory reading '%s'.\n", path);
fail:
    ti_csv_close(in);
    wide_csv_free(w);
    return NULL;
}
