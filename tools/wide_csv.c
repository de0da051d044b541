/*
 * wide_csv.c: M4-style wide CSV reader (see wide_csv.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "tools/wide_csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"

void wide_csv_free(wide_csv *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        rc_free(w->id[i]);
        rc_free(w->v[i]);
    }
    rc_free(w->id);
    rc_free(w->len);
    rc_free(w->v);
    rc_free(w);
}

int wide_csv_find(const wide_csv *w, const char *id) {
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->id[i], id) == 0) return i;
    return -1;
}

/* Splits line in place into fields (quotes stripped); returns the count. */
static int split(char *line, char ***fields, int *cap) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == *cap) {
            int nc = *cap ? *cap * 2 : 1024;
            char **nf = rc_realloc(*fields, (size_t)nc * sizeof(char *));
            if (!nf) return -1;
            *fields = nf;
            *cap = nc;
        }
        char *start = p, *out = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else if (!*p) {
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (*p && *p != ',') p++;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') *out++ = *p++;
            while (*p && *p != ',') p++;
        }
        char c = *p;
        *out = 0;
        (*fields)[n++] = start;
        if (c != ',') break;
        p++;
    }
    return n;
}

wide_csv *wide_csv_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "Error: Cannot open '%s' (%s).\n", path, strerror(errno));
        return NULL;
    }
    wide_csv *w = rc_calloc(1, sizeof *w);
    char *line = NULL, **fields = NULL;
    size_t lcap = 0;
    int fcap = 0, cap = 0, lineno = 0;
    ssize_t got;
    if (!w) goto oom;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (lineno == 1) continue; /* header */
        if (got <= 1) continue;
        int nf = split(line, &fields, &fcap);
        if (nf < 0) goto oom;
        if (nf < 2 && fields[0][0] == 0) continue;
        if (w->n == cap) {
            int nc = cap ? cap * 2 : 512;
            char **ni = rc_realloc(w->id, (size_t)nc * sizeof(char *));
            if (!ni) goto oom;
            w->id = ni;
            int *nl = rc_realloc(w->len, (size_t)nc * sizeof(int));
            if (!nl) goto oom;
            w->len = nl;
            double **nv = rc_realloc(w->v, (size_t)nc * sizeof(double *));
            if (!nv) goto oom;
            w->v = nv;
            cap = nc;
        }
        int len = nf - 1;
        while (len > 0 && fields[len][0] == 0) len--;
        double *v = rc_malloc((size_t)(len ? len : 1) * sizeof(double));
        char *id = rc_strdup(fields[0]);
        if (!v || !id) {
            rc_free(v);
            rc_free(id);
            goto oom;
        }
        for (int i = 0; i < len; i++) {
            const char *s = fields[i + 1];
            char *end;
            double x = s[0] ? strtod(s, &end) : NAN;
            if (s[0] && (*end != 0 || !isfinite(x))) {
                fprintf(stderr, "Error: %s:%d: bad value in column %d ('%s').\n", path, lineno,
                        i + 2, s);
                rc_free(v);
                rc_free(id);
                goto fail;
            }
            v[i] = x;
        }
        w->id[w->n] = id;
        w->v[w->n] = v;
        w->len[w->n] = len;
        w->n++;
    }
    free(line);
    rc_free(fields);
    fclose(f);
    return w;
oom:
    fprintf(stderr, "Error: Out of memory reading '%s'.\n", path);
fail:
    free(line);
    rc_free(fields);
    fclose(f);
    wide_csv_free(w);
    return NULL;
}
