/*
 * eval_live.c: `rwkvcast eval --live [DIR]` (tools/cmd_eval.c hands it
 * over): how the forecasts rwkvcastd publishes hold on real metrics. Every
 * `timestamp,value` CSV in DIR goes through daemon/engine.h's engine exactly
 * as `rwkvcast replay` feeds it (one slot, fresh for each file, one en_push
 * and en_flush per row, en_cfg_default with max_batch 1): the forecasts
 * the daemon would publish for that series. They are scored against three
 * reference methods on the same rows, per file and as geometric means
 * over files.
 *
 * Definitions (the --help text says the same). n = rows the engine took:
 * rows with an unparseable timestamp, or one not after the previous row's,
 * are dropped (en_push refuses the latter, so the daemon never sees them);
 * unparseable values are fed as missing, like empty ones.
 *  - Scored rows: rows i >= n/2 whose value is finite and that have a model
 *    forecast (en_result.prev, the forecast the daemon judged the row by).
 *  - naive: the last finite value before row i.
 *  - snaive (seasonal naive): the value of the row one day (86400 s)
 *    earlier. Only when the sampling is regular (at least 90 % of the steps
 *    equal the median step dt) and dt divides a day; that row is 86400/dt
 *    rows back where nothing is missing and is found by its time (within
 *    dt/2) otherwise. No such row, or a missing value there: no snaive
 *    forecast for that row. Irregular files: snaive is n/a.
 *  - ses: simple exponential smoothing, level l = a*y + (1-a)*l over the
 *    finite values, started at the first one; a in 0.01..1.00 (step 0.01)
 *    minimizes the one-step MAE over the first half (ties: the larger a),
 *    then runs causally over the whole file.
 *  - One-step MAE ratio = MAE(method)/MAE(naive) over the scored rows; the
 *    ratios against snaive, and snaive/naive, over the scored rows where
 *    snaive has a forecast (both MAEs on that subset).
 *  - 1..H steps (H = the model's horizon): origins o = n/2, n/2+24, ...
 *    (the forecast made after row o from rows <= o); targets o+h, h = 1..H,
 *    that exist, lie h*dt after o (within dt/2, so no pair spans a gap) and
 *    have a finite value. naive = the last finite value at or before o
 *    repeated; ses = the level after o repeated; snaive = the value one day
 *    before the target (k days when one day would be after o). MAE over all
 *    (o, h) pairs, ratios as for one step.
 *  - 80 % coverage: share of the targets inside [lo, hi] (the model's outer
 *    quantiles, 0.1/0.9). Pinball loss: mean over the three levels (lo,
 *    median, hi) of the model, reported as a ratio to naive's. The reference
 *    methods' lo/hi are their point forecast plus the empirical lo/hi
 *    quantiles of their own last EL_WIN errors at the same lead, all known
 *    when the forecast is made (one step: rows < i; h steps: pairs (j, j+h)
 *    h*dt apart with j+h <= o); their median is the point forecast itself,
 *    so every method's pinball loss at 0.5 is half its MAE.
 *  - Geometric means over files of every ratio, over the files where that
 *    ratio is finite and positive (the count is shown when some are not).
 *
 * Cost: the engine (~130k rows/s on one core) is most of it. Reference
 * intervals come from sorted windows of errors: one step, an insert and a
 * delete per row (O(EL_WIN) memmove); h steps, one window per lead and
 * method merged with the EL_STRIDE new pairs at each origin. Selecting the
 * quantiles from scratch at every (origin, lead, method), about 200,000
 * times on a 67,000-row file, took three times as long as the engine.
 *
 * SPDX-License-Identifier: MIT
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base.h"
#include "common/textin.h"
#include "daemon/engine.h"
#include "model/rwkv.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"
#include "tools/series_csv.h"
#include "tools/rp.h"

#define EL_DIR_DEFAULT "../shared/data/live-metrics"
#define EL_STRIDE 24          /* rows between multi-step origins */
#define EL_WIN 500            /* past errors behind a reference interval */
#define EL_MIN_ROWS 8         /* rows a file needs */
#define EL_DAY 86400.0        /* seconds */
#define EL_BAD_RATIO 1.05     /* model/naive above this is flagged */
#define EL_COV_LO 0.77        /* model coverage outside [LO, HI] is flagged */
#define EL_COV_HI 0.83
#define EL_COV_MIN_N 1000     /* ... for files with this many scored points */

enum { M_MODEL, M_NAIVE, M_SNAIVE, M_SES, M_N };
static const char *const el_mname[M_N] = {"model", "naive", "snaive", "ses"};

/* The ratios reported per block (one step; 1..H steps). */
enum { R_MODEL_NAIVE, R_SNAIVE_NAIVE, R_SES_NAIVE, R_MODEL_SNAIVE, R_SES_SNAIVE,
       R_PIN_MODEL, R_PIN_SNAIVE, R_PIN_SES, R_N };
static const char *const el_rname[R_N] = {
    "model/naive", "snaive/naive", "ses/naive", "model/snaive", "ses/snaive",
    "pinball model/naive", "pinball snaive/naive", "pinball ses/naive"};
static const char *const el_rcsv[R_N] = {"r_model_naive", "r_snaive_naive", "r_ses_naive",
                                         "r_model_snaive", "r_ses_snaive", "p_model_naive",
                                         "p_snaive_naive", "p_ses_naive"};

static void usage(FILE *f) {
    fprintf(f,
        "Usage: rwkvcast eval --live [DIR] [-m MODEL] [--csv FILE] [--raw-intervals] [--raw-median]\n\n"
        "Runs every timestamp,value CSV in DIR (default " EL_DIR_DEFAULT ")\n"
        "through the daemon's engine as `rwkvcast replay` does and scores its forecasts\n"
        "against naive, seasonal naive (snaive) and simple exponential smoothing (ses),\n"
        "per file and as geometric means over files. Files without a .csv suffix are\n"
        "ignored (and listed).\n\n"
        "  -m MODEL    weights file (default: the default model, see rwkvcastd(8))\n"
        "  --csv FILE  also write one row per file with every number below\n"
        "  --raw-intervals  publish the network's own quantiles, not the series'\n"
        "              online-calibrated intervals (for ablations; not the daemon)\n"
        "  --raw-median     keep the network's whole short-horizon correction of the\n"
        "              median instead of the share each series learned (ablations)\n"
        "  -h, --help  this text\n\n"
        "Definitions. n = rows fed to the engine (rows with a bad or non-increasing\n"
        "timestamp are dropped, as the daemon drops them; bad values count as missing).\n"
        "  Scored rows: i >= n/2 with a finite value and a model forecast.\n"
        "  naive: the last finite value before i. snaive: the value one day (86400 s)\n"
        "    earlier, if the sampling is regular (90%% of the steps equal the median\n"
        "    step dt) and dt divides a day, else n/a. ses: level a*y + (1-a)*level,\n"
        "    a in 0.01..1 fitted on the first half (min one-step MAE), run causally.\n"
        "  One step: MAE(method)/MAE(naive) over the scored rows; ratios involving\n"
        "    snaive over the scored rows where it has a forecast.\n"
        "  1..H steps (H = model horizon): origins o = n/2 + 24k (forecast made after\n"
        "    row o), targets o+h (h = 1..H) that exist h*dt after o with a finite\n"
        "    value; naive = value at o, ses = level at o, snaive = value one day before\n"
        "    the target; MAE over all (o, h) pairs.\n"
        "  cov80: share of targets inside [lo, hi] (model quantiles 0.1/0.9). pinball:\n"
        "    mean loss over 0.1/0.5/0.9, as a ratio to naive's. Reference intervals:\n"
        "    point + empirical 0.1/0.9 quantiles of the method's own last %d errors\n"
        "    at the same lead known at forecast time; their median is the point.\n"
        "  Summaries are geometric means over files of each ratio. Flags: '>1.05'\n"
        "    model/naive above 1.05; 'cov' model cov80 outside 0.77..0.83 with at\n"
        "    least 1000 scored points.\n",
        EL_WIN);
}

/* ---- The engine, as the daemon runs it ---- */

/* What the engine published for one file. */
typedef struct el_fc {
    float *lo, *mid, *hi;    /* (n) one-step forecast of row i from rows < i; NaN: none */
    float *olo, *omid, *ohi; /* (n_orig, H) forecast made after origin k's row */
    int n_orig;              /* origins: rows n/2 + EL_STRIDE*k <= n - 2 */
} el_fc;

/* Callback context: where the result of the row being pushed goes. */
typedef struct el_cb {
    int Q, H;  /* model quantiles, horizons */
    int row;   /* row being pushed */
    int orig;  /* its origin index, or -1 */
    el_fc *fc; /* output, borrowed */
} el_cb;

static void el_on_result(void *vctx, const en_result *r) {
    el_cb *c = vctx;
    el_fc *fc = c->fc;
    if (r->prev) {
        fc->lo[c->row] = r->prev[0];
        fc->mid[c->row] = r->prev[c->Q / 2];
        fc->hi[c->row] = r->prev[c->Q - 1];
    }
    if (c->orig >= 0 && r->yhat && r->lo && r->hi) {
        size_t off = (size_t)c->orig * (size_t)c->H, nb = sizeof(float) * (size_t)(r->H < c->H ? r->H : c->H);
        memcpy(fc->omid + off, r->yhat, nb);
        memcpy(fc->olo + off, r->lo, nb);
        memcpy(fc->ohi + off, r->hi, nb);
    }
}

/* Feeds rows 0..n-1 of r to slot 0 of e, made fresh first, one row per
 * en_push + en_flush; returns the rows the engine refused (0: r is ordered). */
static int el_run_engine(en_engine *e, el_cb *cb, const sc_rows *r) {
    int refused = 0, next = r->n / 2, k = 0;
    en_slot_reset(e, 0);
    for (int i = 0; i < r->n; i++) {
        cb->row = i;
        cb->orig = -1;
        if (i == next && k < cb->fc->n_orig) {
            cb->orig = k++;
            next += EL_STRIDE;
        }
        if (NEVER(en_push(e, 0, r->t[i], r->v[i]) != RC_OK)) {
            refused++;
            continue;
        }
        en_flush(e);
    }
    return refused;
}

/* ---- Reference methods ---- */

/* One series with what the reference methods need, per row. */
typedef struct el_ser {
    const double *t, *y; /* (n) times (s), values (NaN: missing); borrowed */
    int n;               /* rows */
    double dt;           /* median step, seconds */
    int m;               /* rows per day when snaive applies, else 0 */
    double *last;        /* (n) last finite value at or before row i; NaN before the first */
    double *lev;         /* (n) ses level after row i; NaN before the first finite value */
    double *sday;        /* (n) value one day before row i; NaN when none */
    double alpha;        /* ses smoothing constant */
} el_ser;

static int el_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of ascending x[0..n) with linear interpolation; 0 when n = 0. */
static double el_qsorted(const double *x, int n, double q) {
    if (n <= 0) return 0;
    double p = q * (n - 1);
    int i = (int)p;
    if (i >= n - 1) return x[n - 1];
    return x[i] + (p - i) * (x[i + 1] - x[i]);
}

/* The last EL_WIN one-step errors of a method, kept sorted as they come. */
typedef struct el_win {
    double *ring;   /* (EL_WIN) errors in arrival order, oldest at head */
    double *sorted; /* (EL_WIN) the same errors, ascending */
    int n, head;    /* errors held; index of the oldest */
} el_win;

static int el_lower(const double *x, int n, double v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (x[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void el_win_push(el_win *w, double e) {
    if (w->n == EL_WIN) {
        int i = el_lower(w->sorted, w->n, w->ring[w->head]);
        memmove(w->sorted + i, w->sorted + i + 1, sizeof(double) * (size_t)(w->n - i - 1));
        w->n--;
        w->ring[w->head] = e;
        w->head = (w->head + 1) % EL_WIN;
    } else {
        w->ring[(w->head + w->n) % EL_WIN] = e;
    }
    int i = el_lower(w->sorted, w->n, e);
    memmove(w->sorted + i + 1, w->sorted + i, sizeof(double) * (size_t)(w->n - i));
    w->sorted[i] = e;
    w->n++;
}

/* Row whose time is within dt/2 of T (hint first, then a binary search), or -1. */
static int el_find(const el_ser *s, double T, int hint) {
    double tol = 0.5 * s->dt;
    if (hint >= 0 && hint < s->n && fabs(s->t[hint] - T) <= tol) return hint;
    int lo = el_lower(s->t, s->n, T - tol);
    return lo < s->n && s->t[lo] <= T + tol ? lo : -1;
}

/* Whether row r lies h steps of dt after row j (within dt/2). */
static int el_aligned(const el_ser *s, int j, int r, int h) {
    return fabs(s->t[r] - s->t[j] - h * s->dt) <= 0.5 * s->dt;
}

/* snaive's forecast of target row r made after row o < r: the value k days
 * before r, k the smallest that is not after o. NaN when there is none. */
static double el_snaive(const el_ser *s, int r, int o) {
    if (!s->m) return NAN;
    int k = 1;
    while (s->t[r] - k * EL_DAY > s->t[o] + 0.5 * s->dt)
        if (++k > 1000) return NAN;
    if (k == 1) return s->sday[r];
    int j = el_find(s, s->t[r] - k * EL_DAY, r - k * s->m);
    return j >= 0 ? s->y[j] : NAN;
}

/* ses's a: the one minimizing the one-step MAE over rows < n/2; scanned
 * from 1.00 down so that ties keep the larger a (1 is naive). */
static double el_ses_fit(const double *y, int n) {
    double best = 1.0, best_mae = INFINITY;
    for (int k = 100; k >= 1; k--) {
        double a = k / 100.0, l = NAN, sum = 0;
        long c = 0;
        for (int i = 0; i < n / 2; i++) {
            if (!isfinite(y[i])) continue;
            if (isnan(l)) {
                l = y[i];
                continue;
            }
            sum += fabs(y[i] - l);
            c++;
            /* Not l + a*(y - l): at a = 1 this is exactly y, so ses is naive. */
            l = a * y[i] + (1 - a) * l;
        }
        if (c > 0 && sum / (double)c < best_mae) {
            best_mae = sum / (double)c;
            best = a;
        }
    }
    return best;
}

/* Fills dt, m, alpha, last, lev and sday (allocated by the caller). */
static void el_prepare(el_ser *s, double *tmp) {
    int n = s->n, steps = n - 1;
    for (int i = 0; i < steps; i++) tmp[i] = s->t[i + 1] - s->t[i];
    qsort(tmp, (size_t)steps, sizeof *tmp, el_cmp_d);
    s->dt = tmp[steps / 2];
    int same = 0;
    for (int i = 0; i < steps; i++) same += fabs(s->t[i + 1] - s->t[i] - s->dt) <= 1e-3 * s->dt;
    double per_day = EL_DAY / s->dt;
    s->m = 0;
    if (same >= 0.9 * steps && per_day >= 1 && fabs(per_day - floor(per_day + 0.5)) < 1e-6)
        s->m = (int)floor(per_day + 0.5);
    s->alpha = el_ses_fit(s->y, n);
    double last = NAN, lev = NAN;
    for (int i = 0; i < n; i++) {
        if (isfinite(s->y[i])) {
            lev = isnan(lev) ? s->y[i] : s->alpha * s->y[i] + (1 - s->alpha) * lev;
            last = s->y[i];
        }
        s->last[i] = last;
        s->lev[i] = lev;
        int j = s->m ? el_find(s, s->t[i] - EL_DAY, i - s->m) : -1;
        s->sday[i] = j >= 0 && j < i ? s->y[j] : NAN;
    }
}

/* ---- Scoring ---- */

/* Sums over the scored points of one block (one step, or 1..H steps). */
typedef struct el_acc {
    long n, ns;               /* scored points; those where snaive has a forecast */
    double ae[M_N], aes[M_N]; /* sum |y - point|: over all points; over the snaive subset */
    double pl[M_N], pls[M_N]; /* sum of the pinball loss (mean over 3 levels), likewise */
    double cin[M_N], cn[M_N]; /* points inside [lo, hi]; points (snaive: its subset) */
} el_acc;

static double el_pinball(double y, double f, double tau) {
    double d = y - f;
    return d >= 0 ? tau * d : (tau - 1) * d;
}

/* f[m] = {lo, median, hi} of method m; snaive's are NaN when it has none. */
static void el_acc_add(el_acc *a, double f[M_N][3], double y, const double tau[3]) {
    int has_s = isfinite(f[M_SNAIVE][1]);
    a->n++;
    a->ns += has_s;
    for (int m = 0; m < M_N; m++) {
        if (m == M_SNAIVE && !has_s) continue;
        double e = fabs(y - f[m][1]);
        double p = (el_pinball(y, f[m][0], tau[0]) + el_pinball(y, f[m][1], tau[1]) +
                    el_pinball(y, f[m][2], tau[2])) / 3;
        if (m != M_SNAIVE) {
            a->ae[m] += e;
            a->pl[m] += p;
        }
        if (has_s) {
            a->aes[m] += e;
            a->pls[m] += p;
        }
        a->cin[m] += y >= f[m][0] && y <= f[m][2];
        a->cn[m]++;
    }
}

static double el_div(double a, double b) { return b > 0 && isfinite(a) ? a / b : NAN; }

static double el_ratio(const el_acc *a, int k) {
    switch (k) {
    case R_MODEL_NAIVE: return el_div(a->ae[M_MODEL], a->ae[M_NAIVE]);
    case R_SNAIVE_NAIVE: return el_div(a->aes[M_SNAIVE], a->aes[M_NAIVE]);
    case R_SES_NAIVE: return el_div(a->ae[M_SES], a->ae[M_NAIVE]);
    case R_MODEL_SNAIVE: return el_div(a->aes[M_MODEL], a->aes[M_SNAIVE]);
    case R_SES_SNAIVE: return el_div(a->aes[M_SES], a->aes[M_SNAIVE]);
    case R_PIN_MODEL: return el_div(a->pl[M_MODEL], a->pl[M_NAIVE]);
    case R_PIN_SNAIVE: return el_div(a->pls[M_SNAIVE], a->pls[M_NAIVE]);
    case R_PIN_SES: return el_div(a->pl[M_SES], a->pl[M_NAIVE]);
    }
    return NAN;
}

static double el_cov(const el_acc *a, int m) { return a->cn[m] > 0 ? a->cin[m] / a->cn[m] : NAN; }

/* One step: every row from 1 on feeds the error windows; rows >= n/2 are scored. */
static void el_score_one(el_acc *a, const el_ser *s, const el_fc *fc, el_win w[M_N],
                         const double tau[3]) {
    for (int m = 0; m < M_N; m++) w[m].n = w[m].head = 0;
    for (int i = 1; i < s->n; i++) {
        double y = s->y[i];
        double pt[M_N] = {fc->mid[i], s->last[i - 1], s->sday[i], s->lev[i - 1]};
        if (i >= s->n / 2 && isfinite(y) && isfinite(pt[M_MODEL]) && isfinite(pt[M_NAIVE])) {
            double f[M_N][3] = {{fc->lo[i], pt[M_MODEL], fc->hi[i]}};
            for (int m = M_NAIVE; m < M_N; m++) {
                f[m][0] = pt[m] + el_qsorted(w[m].sorted, w[m].n, tau[0]);
                f[m][1] = pt[m];
                f[m][2] = pt[m] + el_qsorted(w[m].sorted, w[m].n, tau[2]);
            }
            el_acc_add(a, f, y, tau);
        }
        if (isfinite(y))
            for (int m = M_NAIVE; m < M_N; m++)
                if (isfinite(pt[m])) el_win_push(&w[m], y - pt[m]);
    }
}

/* Method m's error on the pair (j, j+h): y[j+h] minus its h-step forecast
 * made after row j; NaN unless the rows lie h*dt apart and both exist. */
static double el_pair_err(const el_ser *s, int m, int j, int h) {
    double y = s->y[j + h];
    if (!isfinite(y) || !el_aligned(s, j, j + h, h)) return NAN;
    double f = m == M_NAIVE ? s->last[j] : m == M_SES ? s->lev[j] : el_snaive(s, j + h, j);
    return y - f;
}

static void el_isort(double *x, int n) {
    for (int i = 1; i < n; i++) {
        double v = x[i];
        int j = i;
        for (; j > 0 && x[j - 1] > v; j--) x[j] = x[j - 1];
        x[j] = v;
    }
}

/*
 * Adds add[0..na) (arrival order, na <= EL_STRIDE) to w, the oldest errors
 * beyond EL_WIN leaving it, in one merge pass over the sorted array: O(EL_WIN)
 * per origin instead of a selection from scratch, which cost three times the
 * engine. tmp: 2*EL_STRIDE + EL_WIN + na doubles.
 */
static void el_win_add(el_win *w, const double *add, int na, double *tmp) {
    double *as = tmp, *del = tmp + EL_STRIDE, *out = tmp + 2 * EL_STRIDE;
    int nd = 0, cnt = w->n, o = 0, p = 0, q = 0;
    for (int k = 0; k < na; k++) {
        as[k] = add[k];
        if (w->n < EL_WIN) {
            w->ring[(w->head + w->n++) % EL_WIN] = add[k];
        } else {
            del[nd++] = w->ring[w->head];
            w->ring[w->head] = add[k];
            w->head = (w->head + 1) % EL_WIN;
        }
    }
    el_isort(as, na);
    el_isort(del, nd);
    /* del is a sub-multiset of sorted: both ascending, so each deleted value
     * meets its first equal before anything larger. */
    for (int i = 0; i < cnt; i++) {
        double v = w->sorted[i];
        if (p < nd && v == del[p]) {
            p++;
            continue;
        }
        while (q < na && as[q] < v) out[o++] = as[q++];
        out[o++] = v;
    }
    while (q < na) out[o++] = as[q++];
    assert(o == w->n && p == nd);
    memcpy(w->sorted, out, sizeof(double) * (size_t)o);
}

/*
 * Brings w, method m's window of h-step errors, to origin o: its last
 * EL_WIN pairs (j, j+h) with j+h <= o. At the first origin (first != 0)
 * from a scan back from o; after that from the EL_STRIDE rows since the
 * previous origin. tmp: EL_WIN + 2*EL_STRIDE + EL_WIN doubles.
 */
static void el_hwin_update(el_win *w, const el_ser *s, int m, int h, int o, int first, double *tmp) {
    if (first) {
        int c = 0;
        for (int j = o - h; j >= 0 && c < EL_WIN; j--) {
            double e = el_pair_err(s, m, j, h);
            if (isfinite(e)) tmp[c++] = e;
        }
        w->head = 0;
        w->n = c;
        for (int i = 0; i < c; i++) w->ring[i] = tmp[c - 1 - i];
        memcpy(w->sorted, tmp, sizeof(double) * (size_t)c);
        qsort(w->sorted, (size_t)c, sizeof(double), el_cmp_d);
        return;
    }
    int na = 0;
    for (int r = o - EL_STRIDE + 1; r <= o; r++) {
        double e = r - h >= 0 ? el_pair_err(s, m, r - h, h) : NAN;
        if (isfinite(e)) tmp[na++] = e;
    }
    el_win_add(w, tmp, na, tmp + EL_STRIDE);
}

/* 1..H steps from the origins; hw: (H, M_N) windows (the model's unused). */
static void el_score_multi(el_acc *a, const el_ser *s, const el_fc *fc, int H, const double tau[3],
                           el_win *hw, double *tmp) {
    for (int k = 0; k < fc->n_orig; k++) {
        int o = s->n / 2 + k * EL_STRIDE;
        for (int h = 1; h <= H; h++)
            for (int m = M_NAIVE; m < M_N; m++)
                el_hwin_update(&hw[(h - 1) * M_N + m], s, m, h, o, k == 0, tmp);
        if (!isfinite(s->last[o])) continue;
        for (int h = 1; h <= H && o + h < s->n; h++) {
            int r = o + h;
            size_t off = (size_t)k * (size_t)H + (size_t)(h - 1);
            double y = s->y[r];
            if (!isfinite(y) || !isfinite(fc->omid[off]) || !el_aligned(s, o, r, h)) continue;
            double f[M_N][3] = {{fc->olo[off], fc->omid[off], fc->ohi[off]}};
            double pt[M_N] = {0, s->last[o], el_snaive(s, r, o), s->lev[o]};
            for (int m = M_NAIVE; m < M_N; m++) {
                const el_win *w = &hw[(h - 1) * M_N + m];
                f[m][0] = pt[m] + el_qsorted(w->sorted, w->n, tau[0]);
                f[m][1] = pt[m];
                f[m][2] = pt[m] + el_qsorted(w->sorted, w->n, tau[2]);
            }
            el_acc_add(a, f, y, tau);
        }
    }
}

/* ---- One file ---- */

typedef struct el_file {
    char *name;        /* file name without DIR, owned */
    int ok;            /* evaluated */
    int n;             /* rows fed to the engine */
    int dropped;       /* rows it never saw (bad or non-increasing timestamps) */
    int bad_values;    /* values that were not numbers, fed as missing */
    double dt;         /* median step, seconds */
    int m;             /* snaive lag in rows (one day), 0 when n/a */
    double alpha;      /* ses constant */
    int n_orig;        /* multi-step origins */
    el_acc one, multi; /* one step; 1..H steps */
} el_file;

/* Shared per-run state. */
typedef struct el_run {
    en_engine *e;   /* engine with one slot */
    el_cb cb;       /* its callback context */
    double tau[3];  /* model quantile levels lo, median, hi */
    double eng_s;   /* seconds spent in the engine */
} el_run;

static double el_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * Reads path into r (zeroed by the caller; rows_free frees it) and drops the
 * rows the engine would refuse, with a warning on stderr per kind of bad
 * row. Returns 0, or -1 with the error printed.
 */
static int el_load(const char *path, sc_rows *r, int *unordered) {
    char msg[256] = "";
    if (sc_read(path, r, msg, sizeof msg) != RC_OK) {
        fprintf(stderr, "Error: '%s': %s\n", path, msg);
        return -1;
    }
    long line = 0;
    int k = *unordered = sc_drop_unordered(r, &line);
    if (r->bad_time)
        fprintf(stderr, "Warning: '%s': %d row%s with an unparseable timestamp skipped (first: line"
                " %ld).\n", path, r->bad_time, r->bad_time > 1 ? "s" : "", r->bad_time_line);
    if (k)
        fprintf(stderr, "Warning: '%s': %d row%s whose timestamp is not after the previous row's"
                " skipped, as the daemon refuses them (first: line %ld).\n", path, k,
                k > 1 ? "s" : "", line);
    if (r->bad_value)
        fprintf(stderr, "Warning: '%s': %d unparseable value%s taken as missing (first: line %ld).\n",
                path, r->bad_value, r->bad_value > 1 ? "s" : "", r->bad_value_line);
    if (r->n < EL_MIN_ROWS) {
        fprintf(stderr, "Error: '%s': Too few rows with a valid timestamp (%d; at least %d needed).\n",
                path, r->n, EL_MIN_ROWS);
        return -1;
    }
    return 0;
}

/* Reads, runs and scores path into res (zeroed by the caller but for its
 * name); 0 on success, -1 with the error printed on stderr. */
static int el_eval_file(el_run *run, const char *path, el_file *res) {
    sc_rows r;
    memset(&r, 0, sizeof r);
    el_fc fc;
    memset(&fc, 0, sizeof fc);
    el_ser s;
    memset(&s, 0, sizeof s);
    el_win *hw = NULL;
    double *tmp = NULL, *win = NULL;
    float *fbuf = NULL;
    int rc = -1, H = run->cb.H, unord = 0;
    if (el_load(path, &r, &unord) != 0) goto err;
    int n = r.n;
    fc.n_orig = (n - 2 - n / 2) / EL_STRIDE + 1;
    size_t nf = 3 * (size_t)n + 3 * (size_t)fc.n_orig * (size_t)H;
    fbuf = rc_malloc(nf * sizeof *fbuf);
    /* tmp: scratch of max(n, 3*EL_WIN), then last, lev and sday (n each). */
    size_t scratch = (size_t)(n > 3 * EL_WIN ? n : 3 * EL_WIN);
    tmp = rc_malloc((scratch + 3 * (size_t)n) * sizeof *tmp);
    /* win: M_N one-step windows, then (H, M_N) h-step ones; 2*EL_WIN each. */
    size_t nw = (size_t)M_N * (1 + (size_t)H);
    win = rc_malloc(nw * 2 * EL_WIN * sizeof *win);
    hw = rc_malloc(nw * sizeof *hw);
    if (!fbuf || !tmp || !win || !hw) {
        fprintf(stderr, "Error: '%s': Out of memory.\n", path);
        goto err;
    }
    for (size_t i = 0; i < nf; i++) fbuf[i] = NAN;
    fc.lo = fbuf;
    fc.mid = fc.lo + n;
    fc.hi = fc.mid + n;
    fc.olo = fc.hi + n;
    fc.omid = fc.olo + (size_t)fc.n_orig * H;
    fc.ohi = fc.omid + (size_t)fc.n_orig * H;
    run->cb.fc = &fc;
    double t0 = el_now();
    int refused = el_run_engine(run->e, &run->cb, &r);
    run->eng_s += el_now() - t0;

    s.t = r.t;
    s.y = r.v;
    s.n = n;
    s.last = tmp + scratch;
    s.lev = s.last + n;
    s.sday = s.lev + n;
    el_prepare(&s, tmp);
    for (size_t i = 0; i < nw; i++) {
        hw[i].ring = win + i * 2 * EL_WIN;
        hw[i].sorted = hw[i].ring + EL_WIN;
        hw[i].n = hw[i].head = 0;
    }
    el_score_one(&res->one, &s, &fc, hw, run->tau);
    el_score_multi(&res->multi, &s, &fc, H, run->tau, hw + M_N, tmp);
    res->ok = 1;
    res->n = n - refused;
    res->dropped = r.bad_time + unord + refused;
    res->bad_values = r.bad_value;
    res->dt = s.dt;
    res->m = s.m;
    res->alpha = s.alpha;
    res->n_orig = fc.n_orig;
    rc = 0;
err:
    rc_free(hw);
    rc_free(win);
    rc_free(tmp);
    rc_free(fbuf);
    sc_rows_free(&r);
    return rc;
}

/* ---- Output ---- */

static void el_num(FILE *f, double v, int w, int prec) {
    if (isfinite(v))
        fprintf(f, " %*.*f", w, prec, v);
    else
        fprintf(f, " %*s", w, "n/a");
}

/* File name shown in the tables: without the .csv suffix. */
static int el_shown_len(const char *name) {
    size_t len = strlen(name);
    return (int)(len > 4 ? len - 4 : len);
}

/* Flags of the model on one file and block: bit 0 (">1.05") model/naive above
 * EL_BAD_RATIO; bit 1 ("cov") cov80 outside [EL_COV_LO, EL_COV_HI] with at
 * least EL_COV_MIN_N points. */
static int el_model_flags(const el_acc *a, char *buf, size_t len) {
    double r = el_ratio(a, R_MODEL_NAIVE), c = el_cov(a, M_MODEL);
    int worse = isfinite(r) && r > EL_BAD_RATIO;
    int cov = a->n >= EL_COV_MIN_N && isfinite(c) && (c < EL_COV_LO || c > EL_COV_HI);
    snprintf(buf, len, "%s%s%s", worse ? ">1.05" : "", worse && cov ? " " : "", cov ? "cov" : "");
    return worse | cov << 1;
}

static void el_print_files(const el_file *fs, int nf, int W, int H) {
    printf("\nFiles (dt: median step; snaive lag: rows per day, n/a when the sampling is irregular;\n"
           "alpha: ses constant fitted on the first half)\n");
    printf("%-*s %8s %7s %7s %7s %6s %8s %8s %8s\n", W, "file", "rows", "dropped", "dt_s", "lag",
           "alpha", "scored", "origins", "pairs");
    for (int i = 0; i < nf; i++) {
        const el_file *f = &fs[i];
        if (!f->ok) continue;
        printf("%-*.*s %8d %7d %7g", W, el_shown_len(f->name), f->name, f->n, f->dropped, f->dt);
        if (f->m)
            printf(" %7d", f->m);
        else
            printf(" %7s", "n/a");
        printf(" %6.2f %8ld %8d %8ld\n", f->alpha, f->one.n, f->n_orig, f->multi.n);
    }
    printf("(pairs: scored (origin, h) pairs, h = 1..%d)\n", H);
}

static void el_print_block(const el_file *fs, int nf, int W, int blk, int H) {
    if (blk == 0)
        printf("\nOne step ahead (rows i >= n/2; naive = previous finite value)\n");
    else
        printf("\n1..%d steps ahead (origins every %d rows from n/2; naive = value at the origin)\n",
               H, EL_STRIDE);
    printf("%-*s %8s | %-23s | %-15s | %-27s | %-23s |\n", W, "", "", "MAE ratio vs naive",
           "vs snaive", "80% coverage", "pinball vs naive's");
    printf("%-*s %8s | %7s %7s %7s | %7s %7s | %6s %6s %6s %6s | %7s %7s %7s | flags\n", W, "file",
           "scored", "model", "snaive", "ses", "model", "ses", "model", "naive", "snaive", "ses",
           "model", "snaive", "ses");
    for (int i = 0; i < nf; i++) {
        const el_file *f = &fs[i];
        if (!f->ok) continue;
        const el_acc *a = blk ? &f->multi : &f->one;
        char flags[32];
        el_model_flags(a, flags, sizeof flags);
        printf("%-*.*s %8ld |", W, el_shown_len(f->name), f->name, a->n);
        el_num(stdout, el_ratio(a, R_MODEL_NAIVE), 7, 3);
        el_num(stdout, el_ratio(a, R_SNAIVE_NAIVE), 7, 3);
        el_num(stdout, el_ratio(a, R_SES_NAIVE), 7, 3);
        printf(" |");
        el_num(stdout, el_ratio(a, R_MODEL_SNAIVE), 7, 3);
        el_num(stdout, el_ratio(a, R_SES_SNAIVE), 7, 3);
        printf(" |");
        for (int m = 0; m < M_N; m++) el_num(stdout, el_cov(a, m), 6, 3);
        printf(" |");
        el_num(stdout, el_ratio(a, R_PIN_MODEL), 7, 3);
        el_num(stdout, el_ratio(a, R_PIN_SNAIVE), 7, 3);
        el_num(stdout, el_ratio(a, R_PIN_SES), 7, 3);
        printf(" | %s\n", flags);
    }
}

/* Groups of the summary: all files, google_* (never read by training), the rest. */
static int el_in_group(const el_file *f, int g) {
    int goog = strncmp(f->name, "google_", 7) == 0;
    return g == 0 || (g == 1) == goog;
}

static double el_geomean(const el_file *fs, int nf, int blk, int k, int g, int *used, int *members) {
    double s = 0;
    *used = *members = 0;
    for (int i = 0; i < nf; i++) {
        if (!fs[i].ok || !el_in_group(&fs[i], g)) continue;
        (*members)++;
        double r = el_ratio(blk ? &fs[i].multi : &fs[i].one, k);
        if (isfinite(r) && r > 0) {
            s += log(r);
            (*used)++;
        }
    }
    return *used ? exp(s / *used) : NAN;
}

static void el_print_flagged(const el_file *fs, int nf, int blk, int bit, const char *what) {
    int k = 0, members = 0;
    for (int i = 0; i < nf; i++) {
        if (!fs[i].ok) continue;
        members++;
        char b[32];
        k += (el_model_flags(blk ? &fs[i].multi : &fs[i].one, b, sizeof b) & bit) != 0;
    }
    printf("  %s: %d of %d files", what, k, members);
    const char *sep = ": ";
    for (int i = 0; i < nf && k; i++) {
        char b[32];
        if (!fs[i].ok || !(el_model_flags(blk ? &fs[i].multi : &fs[i].one, b, sizeof b) & bit))
            continue;
        printf("%s%.*s", sep, el_shown_len(fs[i].name), fs[i].name);
        sep = ", ";
    }
    printf("\n");
}

static void el_print_summary(const el_file *fs, int nf, int H) {
    int members[3], used;
    for (int g = 0; g < 3; g++) el_geomean(fs, nf, 0, 0, g, &used, &members[g]);
    printf("\nSummary: geometric means over files of each ratio ([k]: only k files had a finite"
           " ratio)\n");
    char hb[3][24];
    snprintf(hb[0], sizeof hb[0], "all (%d)", members[0]);
    snprintf(hb[1], sizeof hb[1], "google_* (%d)", members[1]);
    snprintf(hb[2], sizeof hb[2], "others (%d)", members[2]);
    printf("%-12s %-21s %13s      %13s      %13s\n", "", "", hb[0], hb[1], hb[2]);
    for (int blk = 0; blk < 2; blk++) {
        char lead[16];
        snprintf(lead, sizeof lead, blk ? "1..%d steps" : "one step", H);
        for (int k = 0; k < R_N; k++) {
            printf("%-12s %-21s", k ? "" : lead, el_rname[k]);
            for (int g = 0; g < 3; g++) {
                int mem;
                double v = el_geomean(fs, nf, blk, k, g, &used, &mem);
                el_num(stdout, v, 13, 3);
                if (used < mem)
                    printf(" [%2d]", used);
                else if (g < 2)
                    printf("     ");
            }
            printf("\n");
        }
    }
    printf("\n80%% coverage (mean over files; pooled over all scored points)\n");
    printf("%-12s %-8s %15s %15s %15s %15s\n", "", "", "model", "naive", "snaive", "ses");
    for (int blk = 0; blk < 2; blk++) {
        char lead[16];
        snprintf(lead, sizeof lead, blk ? "1..%d steps" : "one step", H);
        printf("%-12s %-8s", lead, "");
        for (int m = 0; m < M_N; m++) {
            double mean = 0, in = 0, cnt = 0;
            int k = 0;
            for (int i = 0; i < nf; i++) {
                const el_acc *a = blk ? &fs[i].multi : &fs[i].one;
                if (!fs[i].ok || !(a->cn[m] > 0)) continue;
                mean += el_cov(a, m);
                k++;
                in += a->cin[m];
                cnt += a->cn[m];
            }
            printf("   %5.3f (%5.3f)", k ? mean / k : NAN, cnt > 0 ? in / cnt : NAN);
        }
        printf("\n");
    }
    printf("\nFlags\n");
    el_print_flagged(fs, nf, 0, 1, "one-step model/naive above 1.05");
    el_print_flagged(fs, nf, 1, 1, "1..H model/naive above 1.05");
    el_print_flagged(fs, nf, 0, 2, "one-step model cov80 outside 0.77..0.83 (>= 1000 scored)");
    el_print_flagged(fs, nf, 1, 2, "1..H model cov80 outside 0.77..0.83 (>= 1000 pairs)");
}

static void el_csv_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, ",%.15g", v);
    else
        fputs(",", f);
}

/* One row per evaluated file; returns 0, or -1 with the error printed. */
static int el_write_csv(const char *path, const el_file *fs, int nf) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "Error: Cannot write '%s' (%s).\n", path, strerror(errno));
        return -1;
    }
    fputs("file,rows,dropped,bad_values,dt,snaive_lag,alpha,origins", f);
    static const char *const pre[2] = {"one_", "multi_"};
    for (int b = 0; b < 2; b++) {
        fprintf(f, ",%sn,%sn_snaive", pre[b], pre[b]);
        for (int m = 0; m < M_N; m++)
            if (m != M_SNAIVE) fprintf(f, ",%smae_%s", pre[b], el_mname[m]);
        for (int m = 0; m < M_N; m++) fprintf(f, ",%smae_%s_s", pre[b], el_mname[m]);
        for (int k = 0; k < R_N; k++) fprintf(f, ",%s%s", pre[b], el_rcsv[k]);
        for (int m = 0; m < M_N; m++) fprintf(f, ",%scov_%s", pre[b], el_mname[m]);
        for (int m = 0; m < M_N; m++) fprintf(f, ",%spinball_%s", pre[b], el_mname[m]);
    }
    fputs("\n", f);
    for (int i = 0; i < nf; i++) {
        const el_file *x = &fs[i];
        if (!x->ok) continue;
        fprintf(f, "%s,%d,%d,%d,%.15g,%d,%.2f,%d", x->name, x->n, x->dropped, x->bad_values, x->dt,
                x->m, x->alpha, x->n_orig);
        for (int b = 0; b < 2; b++) {
            const el_acc *a = b ? &x->multi : &x->one;
            double n = (double)a->n, ns = (double)a->ns;
            fprintf(f, ",%ld,%ld", a->n, a->ns);
            for (int m = 0; m < M_N; m++)
                if (m != M_SNAIVE) el_csv_num(f, n > 0 ? a->ae[m] / n : NAN);
            for (int m = 0; m < M_N; m++) el_csv_num(f, ns > 0 ? a->aes[m] / ns : NAN);
            for (int k = 0; k < R_N; k++) el_csv_num(f, el_ratio(a, k));
            for (int m = 0; m < M_N; m++) el_csv_num(f, el_cov(a, m));
            for (int m = 0; m < M_N; m++)
                el_csv_num(f, m == M_SNAIVE ? (ns > 0 ? a->pls[m] / ns : NAN)
                                            : (n > 0 ? a->pl[m] / n : NAN));
        }
        fputs("\n", f);
    }
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "Error: Writing '%s' failed (%s).\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- The command ---- */

/* Everything on stdout but the time: header, tables, summary. */
static void el_report(const char *dir, const char *modelp, const el_run *run, const el_file *fs,
                      int ncsv, char **ign, int nign, int nfail) {
    printf("eval --live: %d .csv file%s in %s, model %s (H %d, quantiles %g/%g/%g)\n", ncsv,
           ncsv > 1 ? "s" : "", dir, modelp, run->cb.H, run->tau[0], run->tau[1], run->tau[2]);
    if (nign) {
        printf("ignored (not a regular .csv file):");
        for (int i = 0; i < nign; i++) printf(" %s", ign[i]);
        printf("\n");
    }
    if (nfail) printf("not evaluated (see the errors): %d file%s\n", nfail, nfail > 1 ? "s" : "");
    printf("Scored: the second half of each file. Ratios are MAE(method)/MAE(reference) on the"
           " same rows,\nbelow 1 beats the reference; see --help for the definitions.\n");
    if (nfail == ncsv) return;
    int W = 4;
    for (int i = 0; i < ncsv; i++)
        if (fs[i].ok && el_shown_len(fs[i].name) > W) W = el_shown_len(fs[i].name);
    el_print_files(fs, ncsv, W, run->cb.H);
    el_print_block(fs, ncsv, W, 0, run->cb.H);
    el_print_block(fs, ncsv, W, 1, run->cb.H);
    el_print_summary(fs, ncsv, run->cb.H);
}

int cmd_eval_live(int argc, char **argv) {
    const char *dir = EL_DIR_DEFAULT, *modelp = NULL, *csvp = NULL;
    int raw_intervals = 0, raw_median = 0;
    ti_getopt g;
    int c;
    if (ti_getopt_init(&g, "L/live m|model= C/csv= I/raw-intervals M/raw-median h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'L': break;
        case 'm': modelp = optarg; break;
        case 'C': csvp = optarg; break;
        case 'I': raw_intervals = 1; break;
        case 'M': raw_median = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    /* `eval --live DIR`: the directory is the one operand. */
    if (ti_opt_operands(argc, argv, 1)) return 2;
    if (optind < argc) dir = argv[optind];
    double t_start = el_now();
    int rc = 1, ncsv = 0, nign = 0, nfail = 0;
    char **csv = NULL, **ign = NULL, errbuf[512] = "", path[4096];
    el_file *fs = NULL;
    rk_model *m = NULL;
    el_run run;
    memset(&run, 0, sizeof run);
    if (sc_list_dir(dir, &csv, &ncsv, &ign, &nign) != 0) goto err;
    if (ncsv == 0) {
        fprintf(stderr, "Error: No .csv file in '%s'.\n", dir);
        goto err;
    }
    if (!modelp) modelp = en_default_model_path();
    rc_err e = RC_OK;
    m = rk_model_load(modelp, &e, errbuf, sizeof errbuf);
    if (!m) {
        fprintf(stderr, "Error: Cannot load model '%s': %s\n", modelp, errbuf[0] ? errbuf : rc_strerror(e));
        goto err;
    }
    int Q = (int)m->dims.n_quant;
    run.cb.Q = Q;
    run.cb.H = (int)m->dims.n_horizon;
    run.tau[0] = m->meta.quantiles[0];
    run.tau[1] = m->meta.quantiles[Q / 2];
    run.tau[2] = m->meta.quantiles[Q - 1];
    en_cfg cfg;
    en_cfg_default(&cfg);
    cfg.max_batch = 1;
    cfg.calibrate_intervals = !raw_intervals;
    cfg.shrink_median = !raw_median;
    run.e = en_new(m, &cfg, 1, el_on_result, &run.cb, &e);
    fs = rc_calloc((size_t)ncsv, sizeof *fs);
    if (!run.e || !fs) {
        fprintf(stderr, "Error: Cannot create the engine (%s).\n", rc_strerror(run.e ? RC_ERR_NOMEM : e));
        goto err;
    }
    for (int i = 0; i < ncsv; i++) {
        fs[i].name = csv[i];
        csv[i] = NULL;
        snprintf(path, sizeof path, "%s/%s", dir, fs[i].name);
        if (el_eval_file(&run, path, &fs[i]) != 0) nfail++;
    }
    el_report(dir, modelp, &run, fs, ncsv, ign, nign, nfail);
    printf("\ntime: %.1f s (engine %.1f s)\n", el_now() - t_start, run.eng_s);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "Error: Writing the output failed (%s).\n", strerror(errno));
        goto err;
    }
    if (csvp && nfail < ncsv && el_write_csv(csvp, fs, ncsv) != 0) goto err;
    if (nfail) {
        fprintf(stderr, "Error: %d of %d files in '%s' could not be evaluated.\n", nfail, ncsv, dir);
        goto err;
    }
    rc = 0;
err:
    for (int i = 0; fs && i < ncsv; i++) rc_free(fs[i].name);
    sc_names_free(csv, ncsv);
    sc_names_free(ign, nign);
    rc_free(fs);
    if (run.e) en_free(run.e);
    if (m) rk_model_free(m);
    return rc;
}
