/*
 * anomaly_real.c: the anomaly benchmark on real backgrounds (issue 19).
 *
 * Every file of the live-metrics set (timestamp,value CSVs) and every
 * channel of SKAB's anomaly-free file is a background series. Into a copy
 * of each, labelled anomalies of seven kinds are injected at seeded random
 * places in the second half (one slot per anomaly, two of each kind per
 * series): spike, dip, level shift, variance change, trend change, stuck
 * value and silence (no samples for a while). Sizes are in units of the
 * series' own local variability at the onset (the standard deviation of
 * its values over the 100 samples before it, the rolling z-score's
 * window), so a
 * "4 SD spike" means the same on a CPU trace and on a pump sensor; spikes,
 * dips, shifts, variance and trend changes come at 4 SD once per series
 * and at 2 or 8 SD (seeded) once.
 *
 * Detectors, all causal and run in the same pass:
 *   rwkvcast: the daemon's engine (daemon/engine.h) with the default model,
 *     its anomaly score and alert level (an_update, the very call the
 *     engine makes, recomputed from the cached forecasts for --try);
 *   rolling z-score: |v - mean| / sd over the previous 100 samples;
 *   seasonal-naive z-score: the same z-score of v - v[t-m], with the period
 *     m ESTIMATED from the first half of each series (autocorrelation peak
 *     after the first zero crossing, above 0.2; m = 1 when there is none).
 * Silence: a series that sends nothing for SILENCE expected intervals is an
 * alert (the daemon's silence timer, anomaly.silence, default 5); the rule
 * is applied to every detector alike, so it moves no comparison.
 *
 * Scores: NAB (bench/nab.h, all three profiles) with windows of 10% of the
 * series split over its anomalies, each centred on its onset, and each
 * detector's threshold optimized per part; per kind: recall and median
 * detection delay (samples from onset to the first raised alert inside the
 * window) at the default alert level (rwkvcast: level >= 1, the level at
 * which the daemon publishes an alert event) or, for the baselines, at the
 * threshold their NAB standard score chose on the tuning half; false alerts
 * (rises of the level) per series per day over the second half of the
 * uninjected live-metrics files.
 * Halves: series alternate by sorted name between the tuning half (injected
 * with seed 0) and the held-out half (seed 1); settings are chosen on the
 * tuning half only. Never reads NAB or ETT data.
 *
 * Usage: anomaly_real [--live DIR] [--skab-free FILE] [-m MODEL]
 *                     [--an KEY=VALUE ...] [--try "KEY=VALUE,..." ...]
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

#define N_DET 3
#define N_KIND 7
#define PER_KIND 2
#define N_INJ (N_KIND * PER_KIND)
#define MAX_SERIES 32
#define ZWIN 100
#define SD_WIN ZWIN
#define SILENCE 5.0

enum { K_SPIKE, K_DIP, K_SHIFT, K_VAR, K_TREND, K_STUCK, K_SILENCE };
static const char *KIND_NAME[N_KIND] = {"spike", "dip", "level shift", "variance change",
                                        "trend change", "stuck value", "silence"};
static const char *DET_NAME[N_DET] = {"rwkvcast", "rolling z-score", "seasonal-naive z-score (estimated period)"};
static const char *HALF_NAME[2] = {"tuning half (seed 0)", "held-out half (seed 1)"};

/* One series (a background, clean or injected) and its detector outputs. */
typedef struct series {
    char name[80];              /* file or file:channel */
    int half;                   /* 0 tuning, 1 held-out */
    int injected;               /* 0 clean background, 1 with anomalies */
    int live;                   /* 1 live-metrics, 0 SKAB anomaly-free */
    long n;                     /* rows */
    double *t;                  /* (n) seconds */
    float *x;                   /* (n) values */
    unsigned char *sent;        /* (n) 0: silenced row (no sample) */
    double dt;                  /* median sampling period, seconds */
    int season;                 /* estimated period, samples (1 = none) */
    int nw;                     /* windows */
    nab_window w[N_INJ];        /* NAB windows, ascending */
    long onset[N_INJ];          /* onset row of each window's anomaly */
    int kind[N_INJ];            /* its kind */
    float size[N_INJ];          /* its size in local SDs (0: stuck, silence) */
    float *score[N_DET];        /* (n) per detector */
    signed char *level;         /* (n) rwkvcast's level, silence rule applied */
    float *fq;                  /* (n, Q) forecast row i was judged against */
    unsigned char *fst;         /* (n) 0 no sample/rejected, 1 judged without a forecast, 2 with, 3 with its path */
    float *fp;                  /* (n, H) median path of the forecast row i was judged against (state 3) */
    double *fdt;                /* (n) the engine's sampling period estimate when it judged row i, seconds */
} series;

static series g_s[MAX_SERIES * 2];
static int g_ns;

/* ---------------------------------------------------------------- data */

static uint64_t g_rng;
static double unif(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2.0 * log(unif())) * cos(2.0 * M_PI * unif()); }

static series *add_series(const char *name, long n) {
    if (g_ns == MAX_SERIES * 2) return NULL;
    series *s = &g_s[g_ns++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n = n;
    s->t = rc_calloc((size_t)n, sizeof(double));
    s->x = rc_calloc((size_t)n, sizeof(float));
    s->sent = rc_malloc((size_t)n);
    s->level = rc_calloc((size_t)n, 1);
    s->fst = rc_calloc((size_t)n, 1);
    s->fdt = rc_calloc((size_t)n, sizeof(double));
    for (int d = 0; d < N_DET; d++) s->score[d] = rc_calloc((size_t)n, sizeof(float));
    if (!s->t || !s->x || !s->sent || !s->level || !s->fst || !s->fdt) return NULL;
    for (int d = 0; d < N_DET; d++)
        if (!s->score[d]) return NULL;
    memset(s->sent, 1, (size_t)n);
    return s;
}

static void free_all(void) {
    for (int i = 0; i < g_ns; i++) {
        series *s = &g_s[i];
        rc_free(s->t);
        rc_free(s->x);
        rc_free(s->sent);
        rc_free(s->level);
        rc_free(s->fst);
        rc_free(s->fdt);
        rc_free(s->fq);
        rc_free(s->fp);
        for (int d = 0; d < N_DET; d++) rc_free(s->score[d]);
    }
    g_ns = 0;
}

/*
 * Reads a CSV with a header: the time column `tcol` and value columns
 * (vcol, or every other column when vcol is NULL), each its own series
 * named "BASE" or "BASE:COLUMN". A bad row names FILE:LINE:COL and fails.
 */
static int load_csv(const char *path, const char *base, char sep, const char *tcol, const char *vcol) {
    char errbuf[512];
    rc_err e;
    ti_csv *in = ti_csv_open(path, sep, 0, &e, errbuf, sizeof errbuf);
    if (!in) {
        fprintf(stderr, "Error: %s\n", errbuf);
        return -1;
    }
    enum { MAXC = 16 };
    ti_row r;
    int ct = -1, col[MAXC], nc = 0, ret = -1;
    char cname[MAXC][48];
    long n = 0, cap = 4096;
    double *t = rc_malloc(sizeof(double) * (size_t)cap);
    float *x = rc_malloc(sizeof(float) * (size_t)cap * MAXC);
    if (!t || !x || ti_csv_next(in, &r) != RC_OK || r.n == 0) goto done;
    for (int i = 0; i < r.n; i++) {
        if (ti_row_find(&r, tcol, i) == i) ct = i;
        else if (nc < MAXC && (!vcol || ti_row_find(&r, vcol, i) == i)) {
            snprintf(cname[nc], sizeof cname[nc], "%s", r.f[i].s);
            col[nc++] = i;
        }
    }
    if (ct < 0 || nc == 0) {
        fprintf(stderr, "Error: %s:1:1: expected columns '%s' and %s.\n", path, tcol, vcol ? vcol : "values");
        goto done;
    }
    while ((e = ti_csv_next(in, &r)) == RC_OK && r.n > 0) {
        if (n == cap) {
            cap *= 2;
            double *t2 = rc_realloc(t, sizeof(double) * (size_t)cap);
            if (t2) t = t2;
            float *x2 = rc_realloc(x, sizeof(float) * (size_t)cap * MAXC);
            if (x2) x = x2;
            if (!t2 || !x2) goto done;
        }
        const char *why = NULL, *bad = NULL;
        double v;
        if (ct >= r.n || ti_parse_time(r.f[ct].s, &t[n], &why) != RC_OK)
            bad = ti_csv_field_error(in, &r, ct < r.n ? ct : 0, "timestamp", tcol, why);
        for (int k = 0; k < nc && !bad; k++) {
            if (col[k] >= r.n || ti_parse_double(r.f[col[k]].s, &v) != RC_OK || !isfinite(v))
                bad = ti_csv_field_error(in, &r, col[k] < r.n ? col[k] : 0, "number", cname[k], NULL);
            x[n * MAXC + k] = (float)v;
        }
        if (bad) {
            fprintf(stderr, "Error: %s\n", bad);
            goto done;
        }
        n++;
    }
    if (e != RC_OK) {
        fprintf(stderr, "Error: %s\n", ti_csv_error(in));
        goto done;
    }
    for (int k = 0; k < nc; k++) {
        char nm[80];
        if (vcol) snprintf(nm, sizeof nm, "%s", base);
        else snprintf(nm, sizeof nm, "%.30s:%.40s", base, cname[k]);
        series *s = add_series(nm, n);
        if (!s) goto done;
        s->live = vcol != NULL;
        for (long i = 0; i < n; i++) {
            s->t[i] = t[i];
            s->x[i] = x[i * MAXC + k];
        }
    }
    ret = 0;
done:
    rc_free(t);
    rc_free(x);
    ti_csv_close(in);
    return ret;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_live(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "Error: Cannot open the live-metrics directory '%s' (%s). It is the shared data set "
                        "(../shared/data/README.md, section 3); pass its place with --live DIR.\n",
                dir, strerror(errno));
        return -1;
    }
    char *names[MAX_SERIES];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < MAX_SERIES - 8) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".csv")) names[nn++] = rc_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    int ret = nn ? 0 : -1;
    if (!nn) fprintf(stderr, "Error: No .csv file in '%s'.\n", dir);
    for (int i = 0; i < nn; i++) {
        char p[1024], base[64];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        snprintf(base, sizeof base, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        if (!ret && load_csv(p, base, ',', "timestamp", "value")) ret = -1;
        rc_free(names[i]);
    }
    return ret;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n) {
    if (n <= 0) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Standard deviation of the values over the SD_WIN rows before o: the
 * spread an operator sees on the recent chart, and the rolling z-score's
 * own scale. */
static double local_sd(const series *s, long o) {
    double s1 = 0, s2 = 0;
    long k = 0;
    for (long i = o - SD_WIN; i < o; i++)
        if (i >= 0) {
            s1 += (double)s->x[i];
            s2 += (double)s->x[i] * (double)s->x[i];
            k++;
        }
    double var = k > 1 ? (s2 - s1 * s1 / (double)k) / (double)(k - 1) : 0.0;
    double sd = var > 0.0 ? sqrt(var) : 0.0;
    if (!(sd > 0.0)) sd = 1e-6 * (fabs((double)s->x[o]) + 1.0);
    return sd;
}

/* Period estimate from the first half: the highest autocorrelation peak
 * after the first zero crossing, if above 0.2 (linear trend removed); else
 * 1. Lags up to a third of the half; long series are read every k-th row
 * (the estimate is then in original rows). */
static int estimate_period(const series *s) {
    long h = s->n / 2, step = h > 12000 ? (h + 11999) / 12000 : 1, m = h / step;
    double *y = rc_malloc(sizeof(double) * (size_t)(m + 1));
    if (!y || m < 30) {
        rc_free(y);
        return 1;
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (long i = 0; i < m; i++) {
        y[i] = s->x[i * step];
        sx += i;
        sy += y[i];
        sxx += (double)i * i;
        sxy += (double)i * y[i];
    }
    double b = (m * sxy - sx * sy) / (m * sxx - sx * sx), a = (sy - b * sx) / m, v0 = 0;
    for (long i = 0; i < m; i++) {
        y[i] -= a + b * (double)i;
        v0 += y[i] * y[i];
    }
    long best = 1;
    double bestc = 0.2;
    int crossed = 0;
    double prev = 1.0, prev2 = 1.0;
    for (long k = 1; k <= m / 3 && v0 > 0; k++) {
        double c = 0;
        for (long i = 0; i + k < m; i++) c += y[i] * y[i + k];
        c /= v0;
        if (c < 0) crossed = 1;
        /* prev is a local maximum */
        if (crossed && k >= 3 && prev >= prev2 && prev > c && prev > bestc) {
            bestc = prev;
            best = (k - 1) * step;
        }
        prev2 = prev;
        prev = c;
    }
    rc_free(y);
    return (int)best;
}

/* A copy of background b with N_INJ anomalies, seeded by (name, seed). */
static int inject(const series *b, int seed) {
    char nm[96];
    snprintf(nm, sizeof nm, "%.70s+inj", b->name);
    series *s = add_series(nm, b->n);
    if (!s) return -1;
    s->half = b->half;
    s->injected = 1;
    s->live = b->live;
    s->dt = b->dt;
    s->season = b->season;
    memcpy(s->t, b->t, sizeof(double) * (size_t)b->n);
    memcpy(s->x, b->x, sizeof(float) * (size_t)b->n);
    uint64_t hsh = 1469598103934665603ULL;
    for (const char *p = b->name; *p; p++) hsh = (hsh ^ (unsigned char)*p) * 1099511628211ULL;
    g_rng = hsh ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(seed + 1));
    for (int i = 0; i < 10; i++) unif();
    int kinds[N_INJ];
    for (int i = 0; i < N_INJ; i++) kinds[i] = i % N_KIND;
    for (int i = N_INJ - 1; i > 0; i--) {
        int j = (int)(unif() * (i + 1));
        int tmp = kinds[i];
        kinds[i] = kinds[j];
        kinds[j] = tmp;
    }
    int seen[N_KIND] = {0};
    long h0 = s->n / 2, slot = (s->n - h0) / N_INJ;
    long wl = (long)(0.1 * (double)s->n / N_INJ), D = wl / 2 - 1;
    if (wl > slot) wl = slot;
    if (D < (long)SILENCE + 2) D = (long)SILENCE + 2;
    for (int k = 0; k < N_INJ; k++) {
        long o = h0 + k * slot + wl / 2 + (long)(unif() * (double)(slot - wl));
        int kd = kinds[k];
        double size = seen[kd]++ == 0 ? 4.0 : unif() < 0.5 ? 2.0 : 8.0;
        double sg = unif() < 0.5 ? -1.0 : 1.0, sd = local_sd(s, o);
        if (kd == K_STUCK || kd == K_SILENCE) size = 0.0;
        for (long i = o; i < o + D && i < s->n; i++) {
            double v = s->x[i];
            switch (kd) {
            case K_SPIKE: if (i == o) v += size * sd; break;
            case K_DIP: if (i == o) v -= size * sd; break;
            case K_SHIFT: v += sg * size * sd; break;
            case K_VAR: v += size * sd * gauss(); break;
            case K_TREND: v += sg * 2.0 * size * sd * (double)(i - o + 1) / (double)D; break;
            case K_STUCK: v = s->x[o - 1]; break;
            case K_SILENCE: s->sent[i] = 0; break;
            default: break;
            }
            s->x[i] = (float)v;
        }
        s->w[k].start = o - wl / 2;
        s->w[k].end = o - wl / 2 + wl - 1;
        s->onset[k] = o;
        s->kind[k] = kd;
        s->size[k] = (float)size;
    }
    s->nw = N_INJ;
    return 0;
}

/* ----------------------------------------------------------- detectors */

typedef struct eng_ctx {
    long row;    /* row being stepped */
    int Q;       /* quantiles */
    int H;       /* horizons */
    int *map;    /* (slots) series index */
    float *last_yhat; /* (slots, H) each slot's latest median path */
} eng_ctx;

static void eng_cb(void *vctx, const en_result *r) {
    eng_ctx *c = vctx;
    series *s = &g_s[c->map[r->slot]];
    long i = c->row;
    s->score[0][i] = r->score;
    s->level[i] = (signed char)r->level;
    s->fst[i] = r->prev ? 2 : 1;
    s->fdt[i] = r->dt;
    if (r->prev) memcpy(s->fq + (size_t)i * (size_t)c->Q, r->prev, sizeof(float) * (size_t)c->Q);
    float *ly = c->last_yhat + (size_t)r->slot * (size_t)c->H;
    /* The engine passes the whole path when v is the forecast's horizon 1. */
    if (r->prev && r->prev_h == 1) {
        s->fst[i] = 3;
        memcpy(s->fp + (size_t)i * (size_t)c->H, ly, sizeof(float) * (size_t)c->H);
    }
    memcpy(ly, r->yhat, sizeof(float) * (size_t)c->H);
}

/* Rows without a sample: the silence rule, else the previous row's outputs. */
static void fill_unsent(series *s, int det, float silent_score) {
    double last = -1e300;
    for (long i = 0; i < s->n; i++) {
        if (s->sent[i] && (det != 0 || s->fst[i])) {
            last = s->t[i];
            continue;
        }
        int silent = !s->sent[i] && s->t[i] - last >= SILENCE * s->dt - 1e-6;
        float prevs = i > 0 ? s->score[det][i - 1] : 0.0f;
        s->score[det][i] = silent ? silent_score : !s->sent[i] ? 0.0f : prevs;
        if (det == 0) s->level[i] = silent ? 2 : !s->sent[i] ? 0 : i > 0 ? s->level[i - 1] : 0;
    }
}

static int run_engine(const rk_model *m, const an_cfg *ac) {
    en_cfg cfg;
    en_cfg_default(&cfg);
    cfg.max_batch = g_ns;
    cfg.anomaly = *ac;
    int Q = (int)m->dims.n_quant, H = (int)m->dims.n_horizon, map[MAX_SERIES * 2];
    eng_ctx ctx = {.Q = Q, .H = H, .map = map};
    ctx.last_yhat = rc_calloc((size_t)g_ns * (size_t)H, sizeof(float));
    if (!ctx.last_yhat) return -1;
    rc_err err;
    long maxn = 0;
    for (int k = 0; k < g_ns; k++) {
        map[k] = k;
        g_s[k].fq = rc_calloc((size_t)g_s[k].n * (size_t)Q, sizeof(float));
        g_s[k].fp = rc_calloc((size_t)g_s[k].n * (size_t)H, sizeof(float));
        if (!g_s[k].fq || !g_s[k].fp) return -1;
        if (g_s[k].n > maxn) maxn = g_s[k].n;
    }
    en_engine *e = en_new(m, &cfg, (uint32_t)g_ns, eng_cb, &ctx, &err);
    if (!e) {
        fprintf(stderr, "Error: en_new failed (%s).\n", rc_strerror(err));
        return -1;
    }
    for (long i = 0; i < maxn; i++) {
        ctx.row = i;
        for (int k = 0; k < g_ns; k++)
            if (i < g_s[k].n && g_s[k].sent[i]) (void)en_push(e, (uint32_t)k, g_s[k].t[i], g_s[k].x[i]);
        en_flush(e);
    }
    en_free(e);
    rc_free(ctx.last_yhat);
    for (int k = 0; k < g_ns; k++) fill_unsent(&g_s[k], 0, 1.0f);
    return 0;
}

/* rwkvcast's score and level recomputed from the cached forecasts with
 * an_update, in the order the engine calls it. */
static void score_cached(series *s, const an_cfg *ac, const float *qlev, int Q, int H, float *path) {
    an_state st;
    an_init(&st);
    for (long i = 0; i < s->n; i++) {
        if (!s->fst[i]) continue;
        int lvl;
        int before = st.level;
        if (s->fst[i] == 3)
            for (int h = 0; h < H; h++)
                for (int q = 0; q < Q; q++) path[h * Q + q] = s->fp[(size_t)i * (size_t)H + (size_t)h];
        s->score[0][i] = an_update_path(&st, ac, s->x[i], s->fst[i] >= 2 ? s->fq + (size_t)i * (size_t)Q : NULL, qlev,
                                        Q, s->fst[i] == 3 ? path : NULL, H, s->fdt[i], &lvl);
        if (lvl > 0 && before == 0 && i >= s->n / 2 && !s->injected && getenv("ANR_KINDS"))
            fprintf(stderr, "rise %s %s\n", s->name, an_kind_name(st.kind));
        s->level[i] = (signed char)lvl;
    }
    fill_unsent(s, 0, 1.0f);
}

/* Causal z-score of y[i] against the previous ZWIN values with ok[i] set. */
static void zscore(const float *y, const unsigned char *ok, long n, float *out) {
    double ring[ZWIN], s1 = 0, s2 = 0;
    long cnt = 0, pos = 0;
    for (long i = 0; i < n; i++) {
        out[i] = 0.0f;
        if (!ok[i]) continue;
        double v = y[i];
        if (cnt >= 10) {
            double mu = s1 / (double)cnt, var = s2 / (double)cnt - mu * mu;
            double sd = sqrt(var > 0 ? var : 0) + 1e-9 * (fabs(mu) + 1.0);
            out[i] = (float)(fabs(v - mu) / sd);
        }
        if (cnt == ZWIN) {
            double old = ring[pos];
            s1 -= old;
            s2 -= old * old;
            cnt--;
        }
        ring[pos] = v;
        pos = (pos + 1) % ZWIN;
        s1 += v;
        s2 += v * v;
        cnt++;
    }
}

static int run_baselines(void) {
    for (int k = 0; k < g_ns; k++) {
        series *s = &g_s[k];
        float *d = rc_malloc(sizeof(float) * (size_t)s->n);
        unsigned char *ok = rc_malloc((size_t)s->n);
        if (!d || !ok) return -1;
        zscore(s->x, s->sent, s->n, s->score[1]);
        long m = s->season;
        for (long i = 0; i < s->n; i++) {
            ok[i] = i >= m && s->sent[i] && s->sent[i - m];
            d[i] = ok[i] ? s->x[i] - s->x[i - m] : 0.0f;
        }
        zscore(d, ok, s->n, s->score[2]);
        rc_free(d);
        rc_free(ok);
        fill_unsent(s, 1, 1e30f);
        fill_unsent(s, 2, 1e30f);
    }
    return 0;
}

/* ------------------------------------------------------------- scoring */

typedef struct eval {
    double norm; /* normalized NAB score */
    double thr;  /* threshold */
    int tp, fn;  /* windows */
    long fp;     /* detections outside windows */
} eval;

static int in_part(const series *s, int half) { return s->injected && s->half == half; }

static eval eval_at(int det, double thr, const nab_profile *p, int half, unsigned char *mask) {
    eval r = {.thr = thr};
    double S = 0, Sn = 0, Sp = 0;
    for (int k = 0; k < g_ns; k++) {
        const series *s = &g_s[k];
        if (!in_part(s, half)) continue;
        for (long i = 0; i < s->n; i++) mask[i] = s->score[det][i] >= thr;
        nab_result nr = nab_score_file(mask, s->n, s->w, s->nw, (long)(0.15 * s->n), p, NULL);
        S += nr.score;
        Sn += nab_null(s->nw, p);
        Sp += nab_perfect(s->w, s->nw, p);
        r.tp += nr.tp;
        r.fn += nr.fn;
        r.fp += nr.fp;
    }
    r.norm = nab_normalize(S, Sn, Sp);
    return r;
}

static long max_n(void) {
    long m = 1;
    for (int k = 0; k < g_ns; k++)
        if (g_s[k].n > m) m = g_s[k].n;
    return m;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Thresholds at geometrically spaced ranks from the top, as anomaly_bench. */
static eval best_threshold(int det, const nab_profile *p, int half) {
    long total = 0;
    for (int k = 0; k < g_ns; k++)
        if (in_part(&g_s[k], half)) total += g_s[k].n;
    float *all = rc_malloc(sizeof(float) * (size_t)(total + 1));
    unsigned char *mask = rc_malloc((size_t)max_n());
    eval best = {.norm = -1e300};
    if (!all || !mask || !total) goto out;
    long c = 0;
    for (int k = 0; k < g_ns; k++)
        if (in_part(&g_s[k], half))
            for (long i = (long)(0.15 * g_s[k].n); i < g_s[k].n; i++) all[c++] = g_s[k].score[det][i];
    qsort(all, (size_t)c, sizeof(float), cmp_float);
    double prev = NAN;
    for (double r = 1.0; r < (double)c; r *= 1.04) {
        double thr = all[c - (long)r];
        if (thr == prev) continue;
        prev = thr;
        if (!(thr > 0.0)) break;
        eval e = eval_at(det, thr, p, half, mask);
        if (e.norm > best.norm) best = e;
    }
    eval e = eval_at(det, (double)all[c - 1] + 1.0, p, half, mask);
    if (e.norm > best.norm) best = e;
out:
    rc_free(all);
    rc_free(mask);
    return best;
}

/* Raised at row i: rwkvcast's level, or the baseline's score at thr. */
static int raised(const series *s, int det, double thr, long i) {
    return det == 0 ? s->level[i] >= 1 : s->score[det][i] >= thr;
}

/* Per kind and size class (0: all, 1: 2 SD, 2: 4 SD, 3: 8 SD): windows,
 * detected, and delays of the detected ones (samples). */
typedef struct kstat {
    int tot[N_KIND][4], hit[N_KIND][4];
    double *delay[N_KIND]; /* (tot[.][0]) */
} kstat;

static int size_class(float sz) { return sz == 2.0f ? 1 : sz == 4.0f ? 2 : sz == 8.0f ? 3 : 0; }

static void kind_stats(int det, double thr, int half, kstat *ks) {
    memset(ks, 0, sizeof *ks);
    for (int kd = 0; kd < N_KIND; kd++) ks->delay[kd] = rc_calloc(MAX_SERIES * 2 * PER_KIND, sizeof(double));
    for (int k = 0; k < g_ns; k++) {
        const series *s = &g_s[k];
        if (!in_part(s, half)) continue;
        for (int w = 0; w < s->nw; w++) {
            int kd = s->kind[w], sc = size_class(s->size[w]);
            long first = -1;
            /* The first rise inside the window (a level raised before the
             * window and held through it is no detection of this anomaly). */
            for (long i = s->w[w].start; i <= s->w[w].end && first < 0; i++)
                if (raised(s, det, thr, i) && (i == 0 || !raised(s, det, thr, i - 1))) first = i;
            ks->tot[kd][0]++;
            if (sc) ks->tot[kd][sc]++;
            if (first < 0) continue;
            if (ks->delay[kd]) ks->delay[kd][ks->hit[kd][0]] = (double)(first - s->onset[w]);
            ks->hit[kd][0]++;
            if (sc) ks->hit[kd][sc]++;
        }
    }
}

static void kstat_free(kstat *ks) {
    for (int kd = 0; kd < N_KIND; kd++) rc_free(ks->delay[kd]);
}

/* Rises per series per day over the second half of the clean live-metrics
 * series of this half; *worst the largest single series' rate. */
static double false_per_day(int det, double thr, int half, double *worst) {
    double sum = 0;
    int cnt = 0;
    *worst = 0;
    for (int k = 0; k < g_ns; k++) {
        const series *s = &g_s[k];
        if (s->injected || !s->live || s->half != half) continue;
        long h0 = s->n / 2, rises = 0;
        for (long i = h0; i < s->n; i++) rises += raised(s, det, thr, i) && !raised(s, det, thr, i - 1);
        double days = (s->t[s->n - 1] - s->t[h0]) / 86400.0;
        double r = days > 0 ? (double)rises / days : 0;
        if (getenv("ANR_DEBUG") && det == 0) fprintf(stderr, "false alerts %s: %ld in %.1f days\n", s->name, rises, days);
        sum += r;
        cnt++;
        if (r > *worst) *worst = r;
    }
    return cnt ? sum / cnt : 0;
}

static double thr_tune[N_DET];

static void report(void) {
    for (int half = 0; half < 2; half++) {
        int nser = 0;
        for (int k = 0; k < g_ns; k++) nser += in_part(&g_s[k], half);
        printf("\n### Real backgrounds, %s: %d series, %d windows\n\n", HALF_NAME[half], nser, nser * N_INJ);
        printf("| detector | NAB standard | reward_low_FP | reward_low_FN | threshold (std) | windows detected | FP rows |%s\n",
               half ? " NAB standard at the tuning threshold |" : "");
        printf("|---|---|---|---|---|---|---|%s\n", half ? "---|" : "");
        for (int d = 0; d < N_DET; d++) {
            eval e[3];
            for (int p = 0; p < 3; p++) e[p] = best_threshold(d, &NAB_PROFILES[p], half);
            if (half == 0) thr_tune[d] = e[0].thr;
            printf("| %s | %.1f | %.1f | %.1f | %.4g | %d/%d | %ld |", DET_NAME[d], e[0].norm, e[1].norm, e[2].norm,
                   e[0].thr, e[0].tp, e[0].tp + e[0].fn, e[0].fp);
            if (half) {
                unsigned char *mask = rc_malloc((size_t)max_n());
                if (mask) printf(" %.1f |", eval_at(d, thr_tune[d], &NAB_PROFILES[0], 1, mask).norm);
                rc_free(mask);
            }
            printf("\n");
        }
        printf("\nPer kind (%s): recall (all sizes; at 2 / 4 / 8 local SDs) and median delay in samples from the onset. "
               "rwkvcast at its default levels (alert event at level >= 1), the baselines at their tuning-half NAB "
               "standard threshold.\n\n| kind |", HALF_NAME[half]);
        for (int d = 0; d < N_DET; d++) printf(" %s recall | 2/4/8 SD | delay |", DET_NAME[d]);
        printf("\n|---|");
        for (int d = 0; d < N_DET; d++) printf("---|---|---|");
        printf("\n");
        kstat ks[N_DET];
        for (int d = 0; d < N_DET; d++) kind_stats(d, thr_tune[d], half, &ks[d]);
        for (int kd = 0; kd < N_KIND; kd++) {
            printf("| %s |", KIND_NAME[kd]);
            for (int d = 0; d < N_DET; d++) {
                int T = ks[d].tot[kd][0], Hh = ks[d].hit[kd][0];
                printf(" %.2f (%d/%d) |", T ? (double)Hh / T : 0.0, Hh, T);
                for (int c = 1; c <= 3; c++) {
                    if (ks[d].tot[kd][c]) printf(" %.2f", (double)ks[d].hit[kd][c] / ks[d].tot[kd][c]);
                    else printf(" -");
                    printf(c < 3 ? " /" : " |");
                }
                if (Hh && ks[d].delay[kd]) printf(" %.0f |", median(ks[d].delay[kd], Hh));
                else printf(" - |");
            }
            printf("\n");
        }
        for (int d = 0; d < N_DET; d++) kstat_free(&ks[d]);
        printf("\nFalse alerts per series per day, second half of the uninjected live-metrics series (%s):", HALF_NAME[half]);
        for (int d = 0; d < N_DET; d++) {
            double worst, m = false_per_day(d, thr_tune[d], half, &worst);
            printf("%s %s %.2f (worst series %.2f)", d ? ";" : "", DET_NAME[d], m, worst);
        }
        printf("\n");
    }
}

/* One line per --try setting: rwkvcast's NAB standard per half, the 4 SD
 * spike/dip/shift recall and false alerts per day per half. */
static void try_line(const an_cfg *ac, const float *qlev, int Q, int H, float *path, const char *spec) {
    for (int k = 0; k < g_ns; k++) score_cached(&g_s[k], ac, qlev, Q, H, path);
    printf("| %s |", spec);
    for (int half = 0; half < 2; half++) {
        kstat ks;
        kind_stats(0, 0, half, &ks);
        double worst, fpd = false_per_day(0, 0, half, &worst);
        int t4 = ks.tot[K_SPIKE][2] + ks.tot[K_DIP][2] + ks.tot[K_SHIFT][2];
        int h4 = ks.hit[K_SPIKE][2] + ks.hit[K_DIP][2] + ks.hit[K_SHIFT][2], ta = 0, ha = 0;
        for (int kd = 0; kd < N_KIND; kd++) ta += ks.tot[kd][0], ha += ks.hit[kd][0];
        kstat_free(&ks);
        printf(" %.1f | %.2f | %.2f | %.2f |", best_threshold(0, &NAB_PROFILES[0], half).norm, t4 ? (double)h4 / t4 : 0,
               ta ? (double)ha / ta : 0, fpd);
    }
    printf("\n");
    fflush(stdout);
}

static void usage(FILE *f) {
    fprintf(f, "Usage: anomaly_real [--live DIR] [--skab-free FILE] [-m MODEL] [--an KEY=VALUE]...\n"
               "                    [--try KEY=VALUE,...]...\n"
               "Injects labelled anomalies into real series and scores rwkvcast's anomaly score\n"
               "against a rolling z-score and a seasonal-naive z-score; markdown on stdout.\n"
               "  --live DIR         live-metrics CSVs (default ../shared/data/live-metrics)\n"
               "  --skab-free FILE   SKAB's anomaly-free file (default\n"
               "                     ../shared/data/skab/anomaly-free/anomaly-free.csv; '' to skip)\n"
               "  -m, --model MODEL  weights file (default: the default model)\n"
               "  --an KEY=VALUE     an anomaly setting (anomaly.KEY of the config)\n"
               "  --try SPEC         rescore rwkvcast with these settings (up to 64), one line each\n"
               "  -h, --help         this text\n"
               "Environment: ANR_DUMP=DIR writes every series' rows and windows to DIR/<k>.csv\n"
               "(for bench/anomaly_oracle.py); ANR_DEBUG=1 and ANR_KINDS=1 print per-window and\n"
               "per-alert details on stderr.\n");
}

int main(int argc, char **argv) {
    const char *live = "../shared/data/live-metrics", *skab = "../shared/data/skab/anomaly-free/anomaly-free.csv";
    const char *model_path = NULL, *tries[64];
    int ntry = 0, rc = 1, c;
    float *path = NULL; /* (H, Q) a cached path as an_update_path reads it */
    an_cfg ac;
    an_cfg_default(&ac);
    ti_getopt g;
    if (ti_getopt_init(&g, "L/live= F/skab-free= m|model= a/an= t/try= h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'L': live = optarg; break;
        case 'F': skab = optarg; break;
        case 'm': model_path = optarg; break;
        case 'a':
            if (an_cfg_set(&ac, optarg) != RC_OK) {
                fprintf(stderr, "Error: Invalid '--an' value (%s): expected KEY=NUMBER with an anomaly KEY.\n", optarg);
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
    if (load_live(live)) goto out;
    if (*skab && load_csv(skab, "skab-free", ';', "datetime", NULL)) {
        fprintf(stderr, "Error: SKAB's anomaly-free file is needed (or --skab-free '').\n");
        goto out;
    }
    int nb = g_ns;
    for (int k = 0; k < nb; k++) {
        series *s = &g_s[k];
        s->half = k % 2;
        double *d = rc_malloc(sizeof(double) * (size_t)s->n);
        if (!d) goto out;
        for (long i = 1; i < s->n; i++) d[i - 1] = s->t[i] - s->t[i - 1];
        s->dt = median(d, s->n - 1);
        rc_free(d);
        s->season = estimate_period(s);
    }
    for (int k = 0; k < nb; k++)
        if (inject(&g_s[k], g_s[k].half)) goto out;
    printf("## anomaly_real: injected anomalies on real backgrounds\n\nmodel: %s%s\n",
           is_random ? "RANDOM INIT (seed 1), no model file at " : "", model_path ? model_path : en_default_model_path());
    char cfgline[512];
    an_cfg_describe(&ac, cfgline, sizeof cfgline);
    printf("anomaly settings: %s\n", cfgline);
    printf("series (half, sampling period s, estimated period in samples):");
    for (int k = 0; k < nb; k++)
        printf("%s %s (%c, %g, %d)", k ? "," : "", g_s[k].name, g_s[k].half ? 'H' : 'T', g_s[k].dt, g_s[k].season);
    printf("\n");
    if (run_engine(m, &ac) || run_baselines()) goto out;
    path = rc_malloc(sizeof(float) * (size_t)m->dims.n_horizon * (size_t)m->dims.n_quant);
    if (!path) goto out;
    /* The cache must reproduce the engine exactly, or --try would lie. */
    long bad = 0;
    for (int k = 0; k < g_ns && !bad; k++) {
        series *s = &g_s[k];
        float *keep = rc_malloc(sizeof(float) * (size_t)s->n);
        signed char *keepl = rc_malloc((size_t)s->n);
        if (!keep || !keepl) goto out;
        memcpy(keep, s->score[0], sizeof(float) * (size_t)s->n);
        memcpy(keepl, s->level, (size_t)s->n);
        score_cached(s, &ac, m->meta.quantiles, (int)m->dims.n_quant, (int)m->dims.n_horizon, path);
        for (long i = 0; i < s->n; i++) bad += keep[i] != s->score[0][i] || keepl[i] != s->level[i];
        memcpy(s->score[0], keep, sizeof(float) * (size_t)s->n);
        memcpy(s->level, keepl, (size_t)s->n);
        rc_free(keep);
        rc_free(keepl);
    }
    if (bad) {
        fprintf(stderr, "%s: Cached scores differ from the engine's on %ld rows%s.\n", ntry ? "Error" : "Warning", bad,
                ntry ? ": --try would not be the engine's" : "");
        if (ntry) goto out;
    }
    if (getenv("ANR_DEBUG")) {
        /* ANR_DEBUG=1: each injected window's onset sample, its forecast and
         * rwkvcast's largest score in the window, on stderr. */
        int Q = (int)m->dims.n_quant;
        for (int k = 0; k < g_ns; k++) {
            const series *s = &g_s[k];
            for (int w = 0; w < s->nw; w++) {
                long o = s->onset[w];
                float mx = 0;
                for (long i = s->w[w].start; i <= s->w[w].end; i++)
                    if (s->score[0][i] > mx) mx = s->score[0][i];
                const float *q = s->fq + (size_t)o * (size_t)Q;
                fprintf(stderr, "%s %c %-15s %g v %.5g q %.5g %.5g %.5g score %.3f max %.3f\n", s->name,
                        s->half ? 'H' : 'T', KIND_NAME[s->kind[w]], s->size[w], s->x[o], q[0], q[Q / 2], q[Q - 1],
                        s->score[0][o], mx);
            }
        }
    }
    if (getenv("ANR_DUMP")) {
        /* ANR_DUMP=DIR: per series, every row's value and detector scores,
         * and the injected windows, for offline analysis. */
        for (int k = 0; k < g_ns; k++) {
            const series *s = &g_s[k];
            char fn[512];
            snprintf(fn, sizeof fn, "%s/%d.csv", getenv("ANR_DUMP"), k);
            FILE *f = fopen(fn, "w");
            if (!f) continue;
            fprintf(f, "# %s|%d|%d|%d|%g\n", s->name, s->half, s->injected, s->live, s->dt);
            for (int w = 0; w < s->nw; w++)
                fprintf(f, "# w %ld %ld %ld %d %g\n", s->w[w].start, s->w[w].end, s->onset[w], s->kind[w], (double)s->size[w]);
            for (long i = 0; i < s->n; i++)
                fprintf(f, "%ld,%.17g,%.9g,%d,%.6g,%.6g,%.6g,%d\n", i, s->t[i], (double)s->x[i], s->sent[i], (double)s->score[0][i],
                        (double)s->score[1][i], (double)s->score[2][i], s->level[i]);
            fclose(f);
        }
    }
    if (!ntry) report();
    else {
        printf("\n| setting | T NAB std | T 4SD spike/dip/shift recall | T recall | T false/day | H NAB std | H 4SD | H recall | H false/day |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
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
            try_line(&tc, m->meta.quantiles, (int)m->dims.n_quant, (int)m->dims.n_horizon, path, tries[t]);
        }
    }
    rc = 0;
out:
    rc_free(path);
    free_all();
    rk_model_free(m);
    return rc;
}
