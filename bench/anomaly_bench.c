/*
 * anomaly_bench.c: the anomaly benchmark. Scores rwkvcast's anomaly score
 * (the daemon's engine, daemon/engine.h, with the default model) and two simple
 * baselines implemented here, in the same run and with the same NAB-style
 * scorer (bench/nab.h), on
 *   (a) SKAB (Katser & Kozitsin 2020): every sensor channel of a file is its
 *       own series; the per-timestamp score of a file is the max over its
 *       channels (scores are comparable across channels by construction:
 *       rwkvcast's is a tail probability, the baselines' are z-scores);
 *   (b) a generated, seeded set of series with one labelled injected anomaly
 *       each, of every common kind, on several sampling periods and noise
 *       levels.
 * Baselines: rolling z-score (|v - mean| / sd over the previous W = 100
 * samples) and seasonal-naive residual z-score (r = v - v[t-m], then the
 * same z-score of r; m = the true season on the generated set, m = 1 on
 * SKAB, which has no seasonality).
 * Thresholds are optimized per detector, data set and NAB profile over the
 * files scored (one threshold for all of them, as NAB does).
 * Honest evaluation: every data set is split in two fixed halves, a tuning
 * half (SKAB files with an even number in their folder, generated seed 0)
 * on which settings are chosen, and a held-out half (odd numbers, seed 1)
 * that only confirms. Every table is printed for the tuning half, the
 * held-out half and the whole set; the held-out half is also scored at the
 * thresholds optimized on the tuning half (nothing fitted on it at all).
 * The engine runs once per set; its one-step quantile forecasts are kept,
 * and rwkvcast's score is recomputed from them with an_update (the very
 * call the engine makes), so `--try` can compare anomaly settings without
 * re-running the model. The first pass checks that both agree.
 *
 * Usage: anomaly_bench [--skab DIR] [--no-skab] [--no-gen] [--combine-sum] [-m MODEL]
 *                      [--an KEY=VALUE ...] [--try "KEY=VALUE,KEY=VALUE" ...]
 * (options by getopt_long, values and SKAB's CSVs by common/textin.h)
 * Output: markdown tables on stdout; with --try, one summary line per
 * setting (NAB standard, rwkvcast, per set and half) instead.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/nab.h"
#include "common/base.h"
#include "common/textin.h"
#include "daemon/anomaly.h"
#include "daemon/engine.h"
#include "model/rwkv.h"
#include "tools/rp.h"

#define MAX_CH 16
#define MAX_WIN 8
#define N_DET 3
#define N_KIND 8
#define N_HALF 3 /* 0 tuning, 1 held-out, 2 whole */
#define ZWIN 100

/* How a multichannel file's per-timestamp score is formed from its
 * channels' scores, the same rule for every detector: 0 max, 1 sum. */
static int g_combine = 0;

static void combine(float *acc, float v) {
    if (g_combine) *acc += v;
    else if (v > *acc) *acc = v;
}

static const char *DET_NAME[N_DET] = {"rwkvcast", "rolling z-score",
                                      "seasonal-naive z-score (true period)"};
static const char *KIND_NAME[N_KIND] = {"spike", "dip", "level shift", "variance change",
                                        "trend change", "seasonality break", "stuck sensor",
                                        "dropout"};
static const char *SKAB_KIND[N_KIND] = {"valve1 (inlet valve closing)", "valve2 (outlet valve closing)",
                                        "other (leaks, imbalance, cavitation, ...)"};
static const char *HALF_NAME[N_HALF] = {"tuning half", "held-out half", "whole set"};

/* One labelled file (multichannel) and its detector scores. */
typedef struct bfile {
    char name[96];            /* for messages */
    long n;                   /* rows */
    int C;                    /* channels */
    int season;               /* samples, for the seasonal-naive baseline */
    double *t;                /* (n) seconds */
    float *x;                 /* (C, n) values */
    int nw;                   /* windows */
    nab_window w[MAX_WIN];    /* scoring windows */
    long onset[MAX_WIN];      /* labelled onset of each window */
    int kind[MAX_WIN];        /* generated kind, or SKAB folder (0 valve1, 1 valve2, 2 other) */
    int half;                 /* 0 tuning, 1 held-out */
    float *score[N_DET];      /* (n) combined score per detector */
    float *fq;                /* (C, n, Q) one-step forecast each value was judged against */
    unsigned char *fst;       /* (C, n) 0 sample rejected, 1 judged without forecast, 2 with, 3 with its path */
    float *fp;                /* (C, n, H) median forecast path (state 3) */
    double *fdt;              /* (C, n) the engine's sampling period estimate when it judged the row, seconds */
} bfile;

typedef struct bset {
    const char *name; /* data set name */
    const char **kinds; /* names of kind[] values */
    bfile *f;         /* files */
    int nf;           /* count */
    int cap;          /* allocated */
} bset;

static bfile *set_add(bset *s) {
    if (s->nf == s->cap) {
        int nc = s->cap ? 2 * s->cap : 64;
        bfile *nf = rc_realloc(s->f, sizeof(bfile) * (size_t)nc);
        if (!nf) return NULL;
        s->f = nf;
        s->cap = nc;
    }
    bfile *f = &s->f[s->nf++];
    memset(f, 0, sizeof *f);
    for (int k = 0; k < MAX_WIN; k++) f->kind[k] = -1;
    return f;
}

static int file_alloc(bfile *f, long n, int C) {
    f->n = n;
    f->C = C;
    f->t = rc_calloc((size_t)n, sizeof(double));
    f->x = rc_calloc((size_t)n * (size_t)C, sizeof(float));
    for (int d = 0; d < N_DET; d++) f->score[d] = rc_calloc((size_t)n, sizeof(float));
    if (!f->t || !f->x) return -1;
    for (int d = 0; d < N_DET; d++)
        if (!f->score[d]) return -1;
    return 0;
}

static void set_free(bset *s) {
    for (int i = 0; i < s->nf; i++) {
        rc_free(s->f[i].t);
        rc_free(s->f[i].x);
        for (int d = 0; d < N_DET; d++) rc_free(s->f[i].score[d]);
        rc_free(s->f[i].fq);
        rc_free(s->f[i].fst);
        rc_free(s->f[i].fdt);
        rc_free(s->f[i].fp);
    }
    rc_free(s->f);
}

/* ---------------------------------------------------------------- SKAB */

typedef struct skab_opts {
    int skab_windows; /* 0: NAB windows centred on anomaly onsets; 1: SKAB's 60 s after change points */
} skab_opts;

static int is_col(const ti_row *r, int i, const char *name) { return ti_row_find(r, name, i) == i; }

/*
 * Reads one SKAB file (';'-separated: datetime, sensor channels, anomaly,
 * changepoint) into both sets. Every row must parse: a bad field names
 * FILE:LINE:COL on stderr and the file is skipped (-1).
 */
static int load_skab_file(bset *s, bset *s2, const char *path, int folder, int half) {
    char errbuf[512];
    rc_err e;
    ti_csv *in = ti_csv_open(path, ';', 0, &e, errbuf, sizeof errbuf);
    if (!in) {
        fprintf(stderr, "Warning: %s\n", errbuf);
        return -1;
    }
    ti_row r;
    long n = 0, ncap = 2048;
    int C = 0, ca = -1, cc = -1, cdt = -1, chan[MAX_CH], ncol = 0;
    char cname[MAX_CH][64];
    double *t = rc_malloc(sizeof(double) * (size_t)ncap);
    float *x = rc_malloc(sizeof(float) * (size_t)ncap * MAX_CH);
    unsigned char *an = rc_malloc((size_t)ncap), *cp = rc_malloc((size_t)ncap);
    int ok = -1;
    if (!t || !x || !an || !cp || ti_csv_next(in, &r) != RC_OK || r.n == 0) goto done;
    ncol = r.n;
    for (int i = 0; i < r.n; i++) {
        if (is_col(&r, i, "datetime")) cdt = i;
        else if (is_col(&r, i, "anomaly")) ca = i;
        else if (is_col(&r, i, "changepoint")) cc = i;
        else if (C < MAX_CH) snprintf(cname[C], sizeof cname[C], "%s", r.f[i].s), chan[C++] = i;
    }
    if (cdt < 0 || ca < 0 || cc < 0 || C == 0) goto done;
    while ((e = ti_csv_next(in, &r)) == RC_OK && r.n > 0) {
        if (n == ncap) {
            ncap *= 2;
            double *t2 = rc_realloc(t, sizeof(double) * (size_t)ncap);
            if (t2) t = t2;
            float *x2 = rc_realloc(x, sizeof(float) * (size_t)ncap * MAX_CH);
            if (x2) x = x2;
            unsigned char *a2 = rc_realloc(an, (size_t)ncap);
            if (a2) an = a2;
            unsigned char *c2 = rc_realloc(cp, (size_t)ncap);
            if (c2) cp = c2;
            if (!t2 || !x2 || !a2 || !c2) goto done;
        }
        if (r.n != ncol) {
            fprintf(stderr, "Warning: %s:%ld:1: %d fields, expected %d.\n", path, r.line, r.n, ncol);
            goto done;
        }
        const char *why = NULL, *bad = NULL;
        double v, a, c;
        if (ti_parse_time(r.f[cdt].s, &t[n], &why) != RC_OK)
            bad = ti_csv_field_error(in, &r, cdt, "timestamp", "datetime", why);
        for (int k = 0; k < C && !bad; k++) {
            if (ti_parse_double(r.f[chan[k]].s, &v) != RC_OK)
                bad = ti_csv_field_error(in, &r, chan[k], "number", cname[k], NULL);
            x[n * MAX_CH + k] = (float)v;
        }
        if (!bad && ti_parse_double(r.f[ca].s, &a) != RC_OK)
            bad = ti_csv_field_error(in, &r, ca, "number", "anomaly", NULL);
        if (!bad && ti_parse_double(r.f[cc].s, &c) != RC_OK)
            bad = ti_csv_field_error(in, &r, cc, "number", "changepoint", NULL);
        if (bad) {
            fprintf(stderr, "Warning: %s\n", bad);
            goto done;
        }
        an[n] = a > 0.5;
        cp[n] = c > 0.5;
        n++;
    }
    if (e != RC_OK) {
        fprintf(stderr, "Warning: %s\n", ti_csv_error(in));
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        bset *dst = pass == 0 ? s : s2;
        bfile *f = set_add(dst);
        if (!f || file_alloc(f, n, C)) goto done;
        size_t pl = strlen(path);
        snprintf(f->name, sizeof f->name, "%.90s", pl > 90 ? path + pl - 90 : path);
        f->season = 1;
        f->half = half;
        for (long i = 0; i < n; i++) {
            f->t[i] = t[i];
            for (int c = 0; c < C; c++) f->x[(size_t)c * (size_t)n + (size_t)i] = x[i * MAX_CH + c];
        }
        if (pass == 0) {
            /* NAB windows centred on each anomaly onset (0 -> 1 transition). */
            long lab[MAX_WIN];
            int nl = 0;
            for (long i = 0; i < n && nl < MAX_WIN; i++)
                if (an[i] && (i == 0 || !an[i - 1])) lab[nl++] = i;
            f->nw = nab_windows_centered(lab, nl, n, f->w);
            for (int k = 0; k < f->nw; k++) {
                f->onset[k] = lab[k] > f->w[k].start ? lab[k] : f->w[k].start;
                f->kind[k] = folder;
            }
        } else {
            /* SKAB leaderboard windows: [change point, change point + 60 s]. */
            for (long i = 0; i < n && f->nw < MAX_WIN; i++) {
                if (!cp[i]) continue;
                long e = i;
                while (e + 1 < n && f->t[e + 1] <= f->t[i] + 60.0) e++;
                if (f->nw > 0 && i <= f->w[f->nw - 1].end + 1) {
                    if (e > f->w[f->nw - 1].end) f->w[f->nw - 1].end = e;
                    continue;
                }
                f->w[f->nw].start = i;
                f->w[f->nw].end = e;
                f->onset[f->nw] = i;
                f->kind[f->nw] = folder;
                f->nw++;
            }
        }
    }
    ok = 0;
done:
    rc_free(t);
    rc_free(x);
    rc_free(an);
    rc_free(cp);
    ti_csv_close(in);
    return ok;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_skab(bset *s, bset *s2, const char *dir) {
    static const char *sub[] = {"valve1", "valve2", "other"};
    for (size_t k = 0; k < sizeof sub / sizeof sub[0]; k++) {
        char dpath[512];
        snprintf(dpath, sizeof dpath, "%s/%s", dir, sub[k]);
        DIR *d = opendir(dpath);
        if (!d) {
            fprintf(stderr, "Error: Cannot open '%s' (%s).\n", dpath, strerror(errno));
            return -1;
        }
        char *names[64];
        int nn = 0;
        struct dirent *de;
        while ((de = readdir(d)) && nn < 64) {
            size_t l = strlen(de->d_name);
            if (l > 4 && !strcmp(de->d_name + l - 4, ".csv")) names[nn++] = rc_strdup(de->d_name);
        }
        closedir(d);
        qsort(names, (size_t)nn, sizeof names[0], cmp_str);
        for (int i = 0; i < nn; i++) {
            char p[800];
            snprintf(p, sizeof p, "%s/%s", dpath, names[i]);
            /* Halves by the file's number ("12.csv"): even -> tuning, odd -> held-out. */
            int half = (int)(strtol(names[i], NULL, 10) % 2);
            if (load_skab_file(s, s2, p, (int)k, half)) fprintf(stderr, "Warning: Skipped '%s'.\n", p);
            rc_free(names[i]);
        }
    }
    return 0;
}

/* ------------------------------------------------------- generated set */

static uint64_t g_rng;
static double unif(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif()); }

/*
 * One series: level 10, a seasonal shape (two harmonics, amplitude ~1) of
 * period P samples, a slow random-walk drift, AR(1) noise of sd `noise`,
 * then one anomaly of `kind` at onset o in [0.45 n, 0.8 n).
 */
static int gen_series(bset *s, int kind, double dt, int P, double noise, int rep) {
    const long n = 1500;
    bfile *f = set_add(s);
    if (!f || file_alloc(f, n, 1)) return -1;
    g_rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)kind * 1000003u + (uint64_t)P * 7919u +
                                     (uint64_t)(noise * 1000) * 31u + (uint64_t)rep * 104729u);
    for (int i = 0; i < 10; i++) unif();
    snprintf(f->name, sizeof f->name, "%.20s dt=%g P=%d noise=%g rep=%d", KIND_NAME[kind], dt, P,
             noise, rep);
    f->season = P;
    f->half = rep; /* seed 0 -> tuning, seed 1 -> held-out */
    long o = (long)(n * (0.45 + 0.35 * unif()));
    double phase = 2 * M_PI * unif(), drift = 0.0, ar = 0.0, t0 = 1.7e9;
    double a2 = 0.3 * unif();
    for (long i = 0; i < n; i++) {
        double ph = 2 * M_PI * (double)i / P + phase;
        if (kind == 5 && i >= o) ph += M_PI; /* seasonality break: half-period phase jump */
        double seas = sin(ph) + a2 * sin(2 * ph + 1.0);
        drift += 0.01 * noise * gauss();
        double sd = noise * ((kind == 3 && i >= o) ? 4.0 : 1.0);
        ar = 0.3 * ar + sqrt(1 - 0.09) * sd * gauss();
        double v = 10.0 + seas + drift + ar;
        switch (kind) {
        case 0: if (i == o) v += 3.0; break;
        case 1: if (i == o) v -= 3.0; break;
        case 2: if (i >= o) v += 1.5; break;
        case 4: if (i >= o) v += 3.0 * (double)(i - o) / (0.2 * n); break;
        default: break;
        }
        f->t[i] = t0 + dt * (double)i;
        f->x[i] = (float)v;
    }
    if (kind == 6) /* stuck sensor: repeats its last reading */
        for (long i = o + 1; i < n && i < o + n / 10; i++) f->x[i] = f->x[o];
    if (kind == 7) /* dropout: the sensor reads 0 for 30 samples */
        for (long i = o; i < n && i < o + 30; i++) f->x[i] = 0.0f;
    f->nw = nab_windows_centered(&o, 1, n, f->w);
    f->onset[0] = o;
    f->kind[0] = kind;
    return 0;
}

static int gen_set(bset *s) {
    static const double dts[3] = {60, 300, 3600};
    static const int Ps[3] = {60, 288, 24};
    static const double noises[2] = {0.1, 0.3};
    for (int kind = 0; kind < N_KIND; kind++)
        for (int p = 0; p < 3; p++)
            for (int z = 0; z < 2; z++)
                for (int rep = 0; rep < 2; rep++)
                    if (gen_series(s, kind, dts[p], Ps[p], noises[z], rep)) return -1;
    return 0;
}

/* ----------------------------------------------------------- detectors */

typedef struct eng_ctx {
    float *buf;  /* (C, n) per-channel scores */
    bfile *f;    /* file being stepped (forecast cache) */
    int Q;       /* quantiles */
    int H;       /* horizons */
    long n;      /* rows */
    long row;    /* row being stepped */
    float *last_yhat;      /* (MAX_CH, H) each slot's latest median path */
} eng_ctx;

static void eng_cb(void *vctx, const en_result *r) {
    eng_ctx *c = vctx;
    size_t at = (size_t)r->slot * (size_t)c->n + (size_t)c->row;
    c->buf[at] = r->score;
    c->f->fst[at] = r->prev ? 2 : 1;
    c->f->fdt[at] = r->dt;
    if (r->prev) {
        memcpy(c->f->fq + at * (size_t)c->Q, r->prev, sizeof(float) * (size_t)c->Q);
        /* The engine passes the whole path when v is the forecast's horizon 1. */
        if (r->prev_h == 1) {
            c->f->fst[at] = 3;
            memcpy(c->f->fp + at * (size_t)c->H, c->last_yhat + (size_t)r->slot * (size_t)c->H,
                   sizeof(float) * (size_t)c->H);
        }
    }
    memcpy(c->last_yhat + (size_t)r->slot * (size_t)c->H, r->yhat, sizeof(float) * (size_t)c->H);
}

/* rwkvcast's combined score from the cached forecasts: the same an_update
 * calls, in the same order, as the engine makes. */
static void score_cached(bfile *f, const an_cfg *ac, const float *qlev, int Q, int H, float *out) {
    an_state st[MAX_CH];
    float *path = rc_malloc(sizeof(float) * (size_t)H * (size_t)Q);
    if (!path) {
        for (long i = 0; i < f->n; i++) out[i] = NAN; /* fails the engine check loudly */
        return;
    }
    for (int c = 0; c < f->C; c++) an_init(&st[c]);
    float last[MAX_CH] = {0};
    /* ANB_TRACE=substring: per-sample trace of matching files near their first window. */
    const char *tr = getenv("ANB_TRACE");
    int trace = tr && strstr(f->name, tr) && f->nw > 0;
    for (long i = 0; i < f->n; i++) {
        float mx = 0.0f;
        for (int c = 0; c < f->C; c++) {
            size_t at = (size_t)c * (size_t)f->n + (size_t)i;
            if (f->fst[at]) {
                int lvl;
                if (f->fst[at] == 3)
                    for (int h = 0; h < H; h++)
                        for (int k = 0; k < Q; k++) path[h * Q + k] = f->fp[at * (size_t)H + (size_t)h];
                last[c] = an_update_path(&st[c], ac, f->x[at], f->fst[at] >= 2 ? f->fq + at * (size_t)Q : NULL,
                                         qlev, Q, f->fst[at] == 3 ? path : NULL, H, f->fdt[at], &lvl);
                if (trace && c == 0 && i >= f->w[0].start - 10 && i <= f->w[0].end)
                    fprintf(stderr, "%s %ld%s v %.3f q %.3f %.3f %.3f score %.3f\n", f->name, i,
                            i == f->onset[0] ? "*" : " ", f->x[at], f->fq[at * (size_t)Q],
                            f->fq[at * (size_t)Q + (size_t)Q / 2], f->fq[at * (size_t)Q + (size_t)Q - 1],
                            last[c]);
            }
            combine(&mx, last[c]);
        }
        out[i] = mx;
    }
    rc_free(path);
}

static int run_rwkv(bset *s, const rk_model *m, const an_cfg *ac) {
    en_cfg cfg;
    en_cfg_default(&cfg);
    cfg.max_batch = MAX_CH;
    cfg.anomaly = *ac;
    eng_ctx ctx = {0};
    int Q = (int)m->dims.n_quant, H = (int)m->dims.n_horizon;
    ctx.Q = Q;
    ctx.H = H;
    int ret = -1;
    en_engine *e = NULL;
    ctx.last_yhat = rc_calloc((size_t)MAX_CH * (size_t)H, sizeof(float));
    if (!ctx.last_yhat) goto out;
    rc_err err;
    e = en_new(m, &cfg, MAX_CH, eng_cb, &ctx, &err);
    if (!e) {
        fprintf(stderr, "Error: en_new failed (%s).\n", rc_strerror(err));
        goto out;
    }
    for (int fi = 0; fi < s->nf; fi++) {
        bfile *f = &s->f[fi];
        float *buf = rc_malloc(sizeof(float) * (size_t)f->n * (size_t)f->C);
        f->fq = rc_calloc((size_t)f->n * (size_t)f->C * (size_t)Q, sizeof(float));
        f->fst = rc_calloc((size_t)f->n * (size_t)f->C, 1);
        f->fp = rc_calloc((size_t)f->n * (size_t)f->C * (size_t)H, sizeof(float));
        f->fdt = rc_calloc((size_t)f->n * (size_t)f->C, sizeof(double));
        if (!buf || !f->fq || !f->fst || !f->fp || !f->fdt) {
            rc_free(buf);
            goto out;
        }
        for (long i = 0; i < f->n * f->C; i++) buf[i] = -1.0f;
        ctx.buf = buf;
        ctx.f = f;
        ctx.n = f->n;
        for (int c = 0; c < f->C; c++) en_slot_reset(e, (uint32_t)c);
        for (long i = 0; i < f->n; i++) {
            ctx.row = i;
            for (int c = 0; c < f->C; c++)
                (void)en_push(e, (uint32_t)c, f->t[i], f->x[(size_t)c * (size_t)f->n + (size_t)i]);
            en_flush(e);
            float mx = 0.0f;
            for (int c = 0; c < f->C; c++) {
                float *p = &buf[(size_t)c * (size_t)f->n + (size_t)i];
                /* A rejected sample (duplicate time) keeps the previous score. */
                if (*p < 0.0f) *p = i > 0 ? p[-1] : 0.0f;
                combine(&mx, *p);
            }
            f->score[0][i] = mx;
        }
        rc_free(buf);
        /* The cache must reproduce the engine exactly, or --try would lie. */
        float *chk = rc_malloc(sizeof(float) * (size_t)f->n);
        if (!chk) goto out;
        score_cached(f, ac, m->meta.quantiles, Q, H, chk);
        long bad = 0;
        for (long i = 0; i < f->n; i++) bad += chk[i] != f->score[0][i];
        rc_free(chk);
        if (bad) {
            fprintf(stderr, "Error: Cached scores differ from the engine's on %ld rows of '%s'.\n", bad, f->name);
            goto out;
        }
    }
    ret = 0;
out:
    rc_free(ctx.last_yhat);
    en_free(e);
    return ret;
}

/* z-score of x[i] against the previous ZWIN values of series y (y = x or
 * the seasonal differences). Running sums over a ring: O(1) per sample. */
static void zscore_series(const float *y, long n, long start, float *out) {
    double s1 = 0, s2 = 0;
    long cnt = 0;
    for (long i = 0; i < n; i++) {
        float z = 0.0f;
        if (i >= start) {
            double v = y[i];
            if (cnt >= 10) {
                double mu = s1 / cnt, var = s2 / cnt - mu * mu;
                double sd = sqrt(var > 0 ? var : 0) + 1e-9 * (fabs(mu) + 1.0);
                z = (float)(fabs(v - mu) / sd);
            }
            s1 += v;
            s2 += v * v;
            cnt++;
            if (cnt > ZWIN) {
                double old = y[i - ZWIN];
                s1 -= old;
                s2 -= old * old;
                cnt--;
            }
        }
        out[i] = z;
    }
}

static int run_baselines(bset *s) {
    for (int fi = 0; fi < s->nf; fi++) {
        bfile *f = &s->f[fi];
        float *tmp = rc_malloc(sizeof(float) * (size_t)f->n), *d = rc_malloc(sizeof(float) * (size_t)f->n);
        if (!tmp || !d) return -1;
        for (long i = 0; i < f->n; i++) f->score[1][i] = f->score[2][i] = 0.0f;
        for (int c = 0; c < f->C; c++) {
            const float *x = f->x + (size_t)c * (size_t)f->n;
            zscore_series(x, f->n, 0, tmp);
            for (long i = 0; i < f->n; i++) combine(&f->score[1][i], tmp[i]);
            long m = f->season;
            for (long i = 0; i < f->n; i++) d[i] = i >= m ? x[i] - x[i - m] : 0.0f;
            zscore_series(d, f->n, m, tmp);
            for (long i = 0; i < f->n; i++) combine(&f->score[2][i], tmp[i]);
        }
        rc_free(tmp);
        rc_free(d);
    }
    return 0;
}

/* ------------------------------------------------------------- scoring */

typedef struct eval {
    double norm;   /* normalized NAB score */
    double thr;    /* threshold */
    int tp, fn;    /* windows */
    long fp;       /* false detections */
    long scored;   /* samples after probation */
} eval;

/* File fi takes part in `half` (0 tuning, 1 held-out, 2 whole). */
static int in_half(const bfile *f, int half) { return half == 2 || f->half == half; }

static eval eval_at(const bset *s, int det, double thr, const nab_profile *p, unsigned char *mask, int half) {
    eval r = {0};
    double S = 0, Sn = 0, Sp = 0;
    for (int fi = 0; fi < s->nf; fi++) {
        const bfile *f = &s->f[fi];
        if (!in_half(f, half)) continue;
        long prob = (long)(0.15 * f->n);
        for (long i = 0; i < f->n; i++) mask[i] = f->score[det][i] >= thr;
        nab_result nr = nab_score_file(mask, f->n, f->w, f->nw, prob, p, NULL);
        S += nr.score;
        Sn += nab_null(f->nw, p);
        Sp += nab_perfect(f->w, f->nw, p);
        r.tp += nr.tp;
        r.fn += nr.fn;
        r.fp += nr.fp;
        r.scored += f->n - prob;
    }
    r.norm = nab_normalize(S, Sn, Sp);
    r.thr = thr;
    return r;
}

static long max_rows(const bset *s) {
    long maxn = 0;
    for (int fi = 0; fi < s->nf; fi++)
        if (s->f[fi].n > maxn) maxn = s->f[fi].n;
    return maxn;
}

static eval eval_thr(const bset *s, int det, double thr, const nab_profile *p, int half) {
    unsigned char *mask = rc_malloc((size_t)max_rows(s));
    eval r = {.norm = NAN, .thr = thr};
    if (mask) r = eval_at(s, det, thr, p, mask, half);
    rc_free(mask);
    return r;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Sweeps thresholds: distinct score values at ranks spaced geometrically
 * from the top (the interesting thresholds are rare exceedances). */
static eval best_threshold(const bset *s, int det, const nab_profile *p, int half) {
    long total = 0;
    for (int fi = 0; fi < s->nf; fi++)
        if (in_half(&s->f[fi], half)) total += s->f[fi].n;
    float *all = rc_malloc(sizeof(float) * (size_t)(total + 1));
    unsigned char *mask = rc_malloc((size_t)max_rows(s));
    eval best = {.norm = -1e300};
    if (!all || !mask || total == 0) goto out;
    long k = 0;
    for (int fi = 0; fi < s->nf; fi++)
        if (in_half(&s->f[fi], half))
            for (long i = (long)(0.15 * s->f[fi].n); i < s->f[fi].n; i++) all[k++] = s->f[fi].score[det][i];
    qsort(all, (size_t)k, sizeof(float), cmp_float);
    double prev = NAN;
    for (double r = 1.0; r < (double)k; r *= 1.04) {
        double thr = all[k - (long)r];
        if (thr == prev) continue;
        prev = thr;
        if (!(thr > 0.0)) break;
        eval e = eval_at(s, det, thr, p, mask, half);
        if (e.norm > best.norm) best = e;
    }
    /* Above the maximum: the null detector. */
    eval e = eval_at(s, det, (double)all[k - 1] + 1.0, p, mask, half);
    if (e.norm > best.norm) best = e;
out:
    rc_free(all);
    rc_free(mask);
    return best;
}

static void per_kind(const bset *s, int det, double thr, int half, int *hit, int *tot, double *delay_sum,
                     int *delay_n) {
    unsigned char *mask = rc_malloc((size_t)max_rows(s));
    if (!mask) return;
    for (int fi = 0; fi < s->nf; fi++) {
        const bfile *f = &s->f[fi];
        if (!in_half(f, half)) continue;
        long prob = (long)(0.15 * f->n);
        long first[MAX_WIN];
        for (long i = 0; i < f->n; i++) mask[i] = f->score[det][i] >= thr;
        nab_score_file(mask, f->n, f->w, f->nw, prob, &NAB_PROFILES[0], first);
        for (int w = 0; w < f->nw; w++) {
            int kd = f->kind[w] >= 0 ? f->kind[w] : 0;
            tot[kd]++;
            if (first[w] >= 0) {
                hit[kd]++;
                delay_sum[kd] += (double)(first[w] - f->onset[w]);
                delay_n[kd]++;
            }
        }
    }
    rc_free(mask);
}

static void debug_maxes(const bset *s) {
    for (int fi = 0; fi < s->nf; fi++) {
        const bfile *f = &s->f[fi];
        long prob = (long)(0.15 * f->n);
        fprintf(stderr, "%-40s", f->name + (strlen(f->name) > 40 ? strlen(f->name) - 40 : 0));
        for (int d = 0; d < N_DET; d++) {
            float in = 0, before = 0, after = 0;
            for (long i = prob; i < f->n; i++) {
                float v = f->score[d][i];
                if (f->nw && i >= f->w[0].start && i <= f->w[f->nw - 1].end) { if (v > in) in = v; }
                else if (f->nw && i < f->w[0].start) { if (v > before) before = v; }
                else if (v > after) after = v;
            }
            fprintf(stderr, " | %6.3f %6.3f %6.3f", before, in, after);
        }
        fprintf(stderr, "\n");
    }
}

static void kind_table(const bset *s, const eval *bstd, int half) {
    printf("\nPer kind (%s) at each detector's standard-profile threshold for this part: detected windows, mean delay in samples from onset (negative: fired inside the window before the onset).\n\n",
           HALF_NAME[half]);
    printf("| kind |");
    for (int d = 0; d < N_DET; d++) printf(" %s |", DET_NAME[d]);
    printf("\n|---|");
    for (int d = 0; d < N_DET; d++) printf("---|");
    printf("\n");
    int hit[N_DET][N_KIND] = {{0}}, tot[N_DET][N_KIND] = {{0}}, dn[N_DET][N_KIND] = {{0}};
    double ds[N_DET][N_KIND] = {{0}};
    for (int d = 0; d < N_DET; d++) per_kind(s, d, bstd[d].thr, half, hit[d], tot[d], ds[d], dn[d]);
    for (int k = 0; k < N_KIND; k++) {
        if (!s->kinds[k] || tot[0][k] == 0) continue;
        printf("| %s |", s->kinds[k]);
        for (int d = 0; d < N_DET; d++) {
            if (dn[d][k]) printf(" %d/%d, %+.0f |", hit[d][k], tot[d][k], ds[d][k] / dn[d][k]);
            else printf(" %d/%d, - |", hit[d][k], tot[d][k]);
        }
        printf("\n");
    }
}

static void report(const bset *s) {
    if (getenv("ANB_DEBUG")) debug_maxes(s);
    eval tune_thr[N_DET];
    for (int half = 0; half < N_HALF; half++) {
        int nwin = 0, nf = 0;
        for (int fi = 0; fi < s->nf; fi++)
            if (in_half(&s->f[fi], half)) {
                nwin += s->f[fi].nw;
                nf++;
            }
        printf("\n### %s: %s (%d files, %d windows)\n\n", s->name, HALF_NAME[half], nf, nwin);
        printf("| detector | NAB standard | reward_low_FP | reward_low_FN | threshold (std) | windows detected | FP detections / 1000 samples |%s\n",
               half == 1 ? " NAB standard at the tuning half's threshold |" : "");
        printf("|---|---|---|---|---|---|---|%s\n", half == 1 ? "---|" : "");
        eval bstd[N_DET];
        for (int d = 0; d < N_DET; d++) {
            eval e[3];
            for (int p = 0; p < 3; p++) e[p] = best_threshold(s, d, &NAB_PROFILES[p], half);
            bstd[d] = e[0];
            if (half == 0) tune_thr[d] = e[0];
            printf("| %s | %.1f | %.1f | %.1f | %.4g | %d/%d | %.2f |", DET_NAME[d], e[0].norm, e[1].norm,
                   e[2].norm, e[0].thr, e[0].tp, e[0].tp + e[0].fn,
                   e[0].scored ? 1000.0 * (double)e[0].fp / (double)e[0].scored : 0.0);
            if (half == 1) printf(" %.1f |", eval_thr(s, d, tune_thr[d].thr, &NAB_PROFILES[0], 1).norm);
            printf("\n");
        }
        if (half > 0) kind_table(s, bstd, half);
    }
}

/* One line per --try setting: rwkvcast's NAB standard score per set and
 * half (thresholds optimized per part, as in the tables). */
static void try_line(bset **sets, int ns, const an_cfg *ac, const float *qlev, int Q, int H, const char *spec) {
    printf("| %s |", spec);
    for (int k = 0; k < ns; k++) {
        bset *s = sets[k];
        if (s->nf == 0) continue;
        for (int fi = 0; fi < s->nf; fi++) score_cached(&s->f[fi], ac, qlev, Q, H, s->f[fi].score[0]);
        for (int half = 0; half < N_HALF; half++)
            printf(" %.1f |", best_threshold(s, 0, &NAB_PROFILES[0], half).norm);
    }
    printf("\n");
    fflush(stdout);
}

static void usage(FILE *f) {
    fprintf(f, "Usage: anomaly_bench [--skab DIR] [--no-skab] [--no-gen] [--combine-sum] [-m MODEL]\n"
               "                     [--an KEY=VALUE]... [--try KEY=VALUE,...]...\n"
               "Scores rwkvcast's anomaly score and two baselines (NAB-style) on SKAB and a\n"
               "generated set; markdown tables on stdout.\n"
               "  --skab DIR       SKAB data (default ../shared/data/skab); ';'-separated CSVs,\n"
               "                   'datetime' as YYYY-MM-DD HH:MM:SS (any rwkvcast timestamp form)\n"
               "  --no-skab        skip SKAB\n"
               "  --no-gen         skip the generated set\n"
               "  --combine-sum    combine channels by their sum instead of the max\n"
               "  -m, --model MODEL  weights file (default: the default model)\n"
               "  --an KEY=VALUE   an anomaly setting (daemon/anomaly.h an_cfg field)\n"
               "  --try SPEC       score rwkvcast with these settings (up to 64), one line each\n"
               "  -h, --help       this text\n");
}

int main(int argc, char **argv) {
    const char *skab_dir = "../shared/data/skab", *model_path = NULL;
    int do_skab = 1, do_gen = 1, rc = 1, ntry = 0, c;
    const char *tries[64];
    an_cfg ac;
    an_cfg_default(&ac);
    ti_getopt g;
    if (ti_getopt_init(&g, "K/skab= k/no-skab g/no-gen S/combine-sum m|model= a/an= t/try= h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'K': skab_dir = optarg; break;
        case 'k': do_skab = 0; break;
        case 'g': do_gen = 0; break;
        case 'S': g_combine = 1; break;
        case 'm': model_path = optarg; break;
        case 'a':
            if (an_cfg_set(&ac, optarg) != RC_OK) {
                fprintf(stderr, "Error: Invalid '--an' value (%s): expected KEY=NUMBER with an an_cfg KEY.\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (ntry == 64) {
                fprintf(stderr, "Error: More than 64 '--try' settings.\n");
                return 2;
            }
            tries[ntry++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 0)) return 2;
    if (an_cfg_check(&ac) != RC_OK) {
        fprintf(stderr, "Error: Invalid anomaly settings.\n");
        return 2;
    }
    char errbuf[256] = "";
    int is_random = 0;
    rk_model *m = rp_open_model(model_path, &is_random, errbuf, sizeof errbuf);
    if (!m) {
        fprintf(stderr, "Error: %s\n", errbuf);
        return 1;
    }
    printf("## anomaly_bench\n\nmodel: %s%s\n", is_random ? "RANDOM INIT (seed 1), no model file at " : "",
           model_path ? model_path : en_default_model_path());
    printf("channels combined per timestamp by: %s (same rule for every detector)\n",
           g_combine ? "sum" : "max");
    char cfgline[512];
    an_cfg_describe(&ac, cfgline, sizeof cfgline);
    printf("anomaly settings: %s\n", cfgline);
    printf("halves: tuning = SKAB files with an even number in each folder + generated seed 0; held-out = odd numbers + seed 1\n");
    bset skab = {.name = "SKAB, NAB windows centred on anomaly onsets", .kinds = SKAB_KIND};
    bset skab2 = {.name = "SKAB, leaderboard windows (60 s after each change point)", .kinds = SKAB_KIND};
    bset gen = {.name = "Generated set (8 kinds x 3 periods x 2 noise levels x 2 seeds)", .kinds = KIND_NAME};
    if (do_skab && load_skab(&skab, &skab2, skab_dir)) goto out;
    if (do_gen && gen_set(&gen)) goto out;
    bset *sets[3] = {&skab, &skab2, &gen};
    for (int k = 0; k < 3; k++) {
        if (sets[k]->nf == 0) continue;
        if (run_rwkv(sets[k], m, &ac) || run_baselines(sets[k])) goto out;
        if (ntry) continue;
        report(sets[k]);
        fflush(stdout);
    }
    if (ntry) {
        printf("\nrwkvcast, NAB standard: SKAB NAB windows tune / held / whole | SKAB leaderboard windows tune / held / whole | generated tune / held / whole\n\n");
        printf("| setting | SKAB-NAB T | H | W | SKAB-LB T | H | W | gen T | H | W |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for (int t = 0; t < ntry; t++) {
            an_cfg tc = ac;
            char buf[512];
            snprintf(buf, sizeof buf, "%s", tries[t]);
            int ok = 1;
            for (char *kv = strtok(buf, ","); kv; kv = strtok(NULL, ","))
                if (an_cfg_set(&tc, kv) != RC_OK) ok = 0;
            if (!ok || an_cfg_check(&tc) != RC_OK) {
                printf("| %s | invalid |\n", tries[t]);
                continue;
            }
            try_line(sets, 3, &tc, m->meta.quantiles, (int)m->dims.n_quant, (int)m->dims.n_horizon, tries[t]);
        }
    }
    rc = 0;
out:
    set_free(&skab);
    set_free(&skab2);
    set_free(&gen);
    rk_model_free(m);
    return rc;
}
