/*
 * cmd_eval.c: `rwkvcast eval` (docs/PROTOCOL.md §5): for every series, warm a fresh
 * state on its training part (all series stepped together with
 * rk_step_batch), forecast the H test steps from the state after the last
 * training sample only, and score the model, seasonal naive and Naive2 with
 * the M4 metrics: sMAPE, MASE (in-sample seasonal-naive scale), OWA against
 * Naive2's published M4 Hourly scores, and the coverage of the 80% interval.
 *
 * --synthetic KIND scores generated series of one kind instead of CSVs
 * (hourly, train part 700..1400 samples, test part H): that is how a kind
 * held out of training is checked.
 *
 * Intervals of the baselines: empirical 10%/90% quantiles of their own
 * in-sample errors at the same lead (seasonal naive: x_t - x_{t-24k};
 * Naive2: errors of the seasonally adjusted naive, reseasonalized).
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/textin.h"
#include "daemon/engine.h"
#include "model/features.h"
#include "model/rwkv.h"
#include "model/synth.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"
#include "tools/wide_csv.h"

#define EV_TRAIN_DEFAULT "../shared/data/m4-hourly/Hourly-train.csv"
#define EV_TEST_DEFAULT "../shared/data/m4-hourly/Hourly-test.csv"
#define EV_M 24                  /* seasonal period (hourly data) */
#define EV_NAIVE2_SMAPE 18.383   /* M4 Hourly Naive2, the OWA reference */
#define EV_NAIVE2_MASE 2.395

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast eval [--train TRAIN.csv --test TEST.csv] [-m MODEL] [--out FILE]\n"
            "       rwkvcast eval --synthetic KIND [--count N] [--seed S] [-m MODEL]\n"
            "       rwkvcast eval --live [DIR] [-m MODEL] [--csv FILE]  (see eval --live --help)\n"
            "\n"
            "Scores the model, seasonal naive and Naive2 (sMAPE, MASE, OWA, cov80) on the test\n"
            "horizon of every series of M4-style wide CSVs (a header row, then one series per\n"
            "row: its id, then its values; fields may be in double quotes; an empty field,\n"
            "'nan', 'null' or 'NA' is a missing value; series ids must be unique).\n"
            "\n"
            "      --train FILE    training parts (default " EV_TRAIN_DEFAULT ")\n"
            "      --test FILE     test parts (default " EV_TEST_DEFAULT ")\n"
            "  -m, --model MODEL   weights file (default: the default model, see rwkvcastd(8))\n"
            "      --out FILE      write id,h,yhat,lo,hi for the model's forecasts\n"
            "      --synthetic KIND  score COUNT generated series of this kind instead\n"
            "      --count N       generated series (default 200)\n"
            "      --seed S        seed of the generated series (default 12345)\n"
            "  -h, --help          this text\n");
}

typedef struct score_acc {
    double smape, mase; /* sums over series */
    double cov, ncov;   /* points inside [lo, hi], points */
    int n;              /* series */
} score_acc;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of x (n values, sorted in place), linear interpolation. */
static double quantile(double *x, int n, double q) {
    if (n <= 0) return 0;
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    double p = q * (n - 1);
    int i = (int)p;
    if (i >= n - 1) return x[n - 1];
    return x[i] + (p - i) * (x[i + 1] - x[i]);
}

static void score(score_acc *a, const double *y, const double *f, const double *lo, const double *hi,
                  int H, double scale) {
    double s = 0, ae = 0;
    int k = 0;
    for (int h = 0; h < H; h++) {
        if (!isfinite(y[h])) continue;
        double den = fabs(y[h]) + fabs(f[h]);
        s += den > 0 ? 2 * fabs(y[h] - f[h]) / den : 0;
        ae += fabs(y[h] - f[h]);
        a->cov += (y[h] >= lo[h] && y[h] <= hi[h]);
        a->ncov++;
        k++;
    }
    if (!k) return;
    a->smape += 100 * s / k;
    a->mase += ae / k / scale;
    a->n++;
}

/* In-sample seasonal-naive MAE (the MASE scale); x has no NaN gaps assumed,
 * pairs with a NaN are skipped. */
static double mase_scale(const double *x, int n) {
    double s = 0;
    int k = 0;
    for (int t = EV_M; t < n; t++)
        if (isfinite(x[t]) && isfinite(x[t - EV_M])) {
            s += fabs(x[t] - x[t - EV_M]);
            k++;
        }
    return k && s > 0 ? s / k : 1.0;
}

/* Seasonal naive with empirical in-sample error quantiles per lead. */
static void snaive(const double *x, int n, int H, double *f, double *lo, double *hi, double *tmp) {
    for (int h = 1; h <= H; h++) {
        int kk = (h - 1) / EV_M + 1, lag = kk * EV_M;
        double base = x[n - EV_M + (h - 1) % EV_M];
        f[h - 1] = base;
        int c = 0;
        for (int t = lag; t < n; t++)
            if (isfinite(x[t]) && isfinite(x[t - lag])) tmp[c++] = x[t] - x[t - lag];
        lo[h - 1] = base + quantile(tmp, c, 0.1);
        hi[h - 1] = base + quantile(tmp, c, 0.9);
    }
}

/*
 * Naive2 as in M4: multiplicative classical decomposition (2x24 centred
 * moving average, indices averaged per position and normalized to mean 1)
 * when the lag-24 autocorrelation is significant at 90%, else plain naive.
 */
static void naive2(const double *x, int n, int H, double *f, double *lo, double *hi, double *tmp,
                   double *adj) {
    double si[EV_M];
    for (int j = 0; j < EV_M; j++) si[j] = 1.0;
    double mean = 0;
    for (int t = 0; t < n; t++) mean += x[t];
    mean /= n;
    double r[EV_M + 1], den = 0;
    for (int t = 0; t < n; t++) den += (x[t] - mean) * (x[t] - mean);
    for (int k = 1; k <= EV_M; k++) {
        double s = 0;
        for (int t = k; t < n; t++) s += (x[t] - mean) * (x[t - k] - mean);
        r[k] = den > 0 ? s / den : 0;
    }
    double acc = 0;
    for (int k = 1; k < EV_M; k++) acc += r[k] * r[k];
    double limit = 1.645 * sqrt((1 + 2 * acc) / n);
    if (n >= 3 * EV_M && fabs(r[EV_M]) > limit) {
        double sum[EV_M] = {0};
        int cnt[EV_M] = {0};
        for (int t = EV_M / 2; t + EV_M / 2 < n; t++) {
            double c = 0.5 * x[t - EV_M / 2] + 0.5 * x[t + EV_M / 2];
            for (int j = -EV_M / 2 + 1; j < EV_M / 2; j++) c += x[t + j];
            c /= EV_M;
            if (c != 0) {
                sum[t % EV_M] += x[t] / c;
                cnt[t % EV_M]++;
            }
        }
        double tot = 0;
        for (int j = 0; j < EV_M; j++) {
            si[j] = cnt[j] ? sum[j] / cnt[j] : 1.0;
            tot += si[j];
        }
        for (int j = 0; j < EV_M; j++) si[j] *= EV_M / tot;
    }
    for (int t = 0; t < n; t++) adj[t] = x[t] / si[t % EV_M];
    for (int h = 1; h <= H; h++) {
        double s = si[(n - 1 + h) % EV_M];
        f[h - 1] = adj[n - 1] * s;
        int c = 0;
        for (int t = h; t < n; t++) tmp[c++] = adj[t] - adj[t - h];
        lo[h - 1] = (adj[n - 1] + quantile(tmp, c, 0.1)) * s;
        hi[h - 1] = (adj[n - 1] + quantile(tmp, c, 0.9)) * s;
    }
}

int cmd_eval(int argc, char **argv) {
    const char *trainp = EV_TRAIN_DEFAULT, *testp = EV_TEST_DEFAULT, *modelp = NULL, *outp = NULL;
    const char *synth = NULL;
    int count = 200, kind = -1, c;
    uint64_t seed = 12345;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--live") == 0) return cmd_eval_live(argc, argv);
    ti_getopt g;
    if (ti_getopt_init(&g, "T/train= E/test= m|model= o/out= S/synthetic= n/count= s/seed= h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'T': trainp = optarg; break;
        case 'E': testp = optarg; break;
        case 'm': modelp = optarg; break;
        case 'o': outp = optarg; break;
        case 'S':
            synth = optarg;
            if (cli_opt_kind("--synthetic", synth, 0, &kind)) return 2;
            break;
        case 'n': if (ti_opt_int("--count", optarg, 1, 100000, &count)) return 2; break;
        case 's': if (ti_opt_u64("--seed", optarg, &seed)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 0)) return 2;
    if (!modelp) modelp = en_default_model_path();
    int rc = 1;
    rc_err e;
    char errbuf[512] = "";
    wide_csv *tr = NULL, *te = NULL;
    rk_model *m = NULL;
    rk_ws *ws = NULL;
    float *states = NULL, **sp = NULL, *feat = NULL, *out = NULL;
    ft_state *fs = NULL;
    double *buf = NULL;
    int *idx = NULL;
    FILE *fo = NULL;
    double **xs = NULL, **ys = NULL;
    int *nx = NULL, ns = 0, H = 0;

    m = rk_model_load(modelp, &e, errbuf, sizeof errbuf);
    if (!m) {
        fprintf(stderr, "Error: Cannot load model '%s': %s\n", modelp, errbuf[0] ? errbuf : rc_strerror(e));
        goto done;
    }
    ft_cfg fc;
    if ((e = ft_cfg_from_meta(&fc, &m->meta)) != RC_OK) {
        fprintf(stderr, "Error: Model '%s' was made for another featurizer (%s).\n", modelp,
                rc_strerror(e));
        goto done;
    }
    H = (int)m->dims.n_horizon;
    int Q = (int)m->dims.n_quant, HQ = H * Q, F = (int)m->dims.n_feat;

    if (kind >= 0) {
        ns = count;
        xs = rc_calloc((size_t)ns, sizeof *xs);
        ys = rc_calloc((size_t)ns, sizeof *ys);
        nx = rc_calloc((size_t)ns, sizeof *nx);
        buf = rc_malloc(4000 * sizeof(double));
        if (!xs || !ys || !nx || !buf) goto oom;
        for (int s = 0; s < ns; s++) {
            uint64_t r = rc_mix64(seed * 31337u + (uint64_t)s);
            sy_params p;
            sy_draw(&p, kind, r);
            p.p_missing = 0;
            p.p_gap = 0;
            int n = 700 + (int)(r % 700);
            nx[s] = n;
            xs[s] = rc_malloc((size_t)n * sizeof(double));
            ys[s] = rc_malloc((size_t)H * sizeof(double));
            if (!xs[s] || !ys[s]) goto oom;
            sy_generate(&p, 1420070400.0 + 3600.0 * (double)((r >> 16) % 43800), 3600, n + H,
                        buf, buf + 2000);
            memcpy(xs[s], buf + 2000, (size_t)n * sizeof(double));
            memcpy(ys[s], buf + 2000 + n, (size_t)H * sizeof(double));
        }
    } else {
        tr = wide_csv_read(trainp);
        te = tr ? wide_csv_read(testp) : NULL;
        if (!tr || !te) {
            /* wide_csv_read said what is wrong; a missing file also gets the way out. */
            if (access(trainp, F_OK) != 0 || access(testp, F_OK) != 0)
                fprintf(stderr, "Error: M4 Hourly data missing: need '%s' and '%s' (pass --train and"
                                " --test).\n", trainp, testp);
            goto done;
        }
        ns = tr->n;
        xs = rc_calloc((size_t)ns, sizeof *xs);
        ys = rc_calloc((size_t)ns, sizeof *ys);
        nx = rc_calloc((size_t)ns, sizeof *nx);
        if (!xs || !ys || !nx) goto oom;
        for (int s = 0; s < ns; s++) {
            int j = s < te->n && strcmp(te->id[s], tr->id[s]) == 0 ? s : wide_csv_find(te, tr->id[s]);
            if (j < 0 || te->len[j] < H || tr->len[s] < 2 * EV_M) {
                fprintf(stderr, "Error: Series '%s' has no test row of %d values or a too short"
                                " training part.\n", tr->id[s], H);
                goto done;
            }
            xs[s] = tr->v[s];
            nx[s] = tr->len[s];
            ys[s] = te->v[j];
        }
    }

    /* Warm every series' state over its training part, all series together. */
    ws = rk_ws_new(m, ns, &e);
    size_t S = rk_state_len(&m->dims);
    states = rc_malloc((size_t)ns * S * sizeof(float));
    sp = rc_malloc((size_t)ns * sizeof *sp);
    feat = rc_malloc((size_t)ns * F * sizeof(float));
    out = rc_malloc((size_t)ns * HQ * sizeof(float));
    fs = rc_malloc((size_t)ns * sizeof *fs);
    idx = rc_malloc((size_t)ns * sizeof *idx);
    rk_mslot *slots = rc_malloc((size_t)ns * sizeof *slots);
    float *fc_out = rc_malloc((size_t)ns * HQ * sizeof(float));
    float *fcast = fc_out;
    if (!ws || !states || !sp || !feat || !out || !fs || !idx || !fc_out || !slots) {
        rc_free(fc_out);
        rc_free(slots);
        goto oom;
    }
    int maxn = 0;
    for (int s = 0; s < ns; s++) {
        rk_state_init(m, states + (size_t)s * S);
        ft_init(&fs[s], &fc);
        if (nx[s] > maxn) maxn = nx[s];
    }
    for (int i = 0; i < maxn; i++) {
        int B = 0, any_last = 0;
        for (int s = 0; s < ns; s++) {
            if (i >= nx[s]) continue;
            /* Hourly timestamps from an arbitrary per-series start: M4 has none. */
            double t0 = 1420070400.0 + 3600.0 * (double)(rc_mix64((uint64_t)s + 77) % 43800);
            ft_push(&fs[s], &fc, t0 + 3600.0 * i, xs[s][i], feat + (size_t)B * F);
            ft_medium_slot(&fs[s], m->dims.n_medium, &slots[B]);
            sp[B] = states + (size_t)s * S;
            idx[B++] = s;
            any_last |= i == nx[s] - 1;
        }
        rk_step_batch(m, ws, B, feat, slots, sp, any_last ? out : NULL);
        if (any_last)
            for (int b = 0; b < B; b++) {
                int s = idx[b];
                if (i == nx[s] - 1)
                    ft_denorm(&fs[s], out + (size_t)b * HQ, fcast + (size_t)s * HQ, HQ);
            }
    }
    rc_free(slots);

    score_acc acc[3];
    memset(acc, 0, sizeof acc);
    buf = buf ? buf : rc_malloc(4000 * sizeof(double));
    double *tmp = rc_malloc((size_t)(maxn + 1) * sizeof(double));
    double *adj = rc_malloc((size_t)(maxn + 1) * sizeof(double));
    if (!buf || !tmp || !adj) {
        rc_free(tmp);
        rc_free(adj);
        rc_free(fc_out);
        goto oom;
    }
    if (outp) {
        fo = fopen(outp, "w");
        if (!fo) {
            fprintf(stderr, "Error: Cannot write '%s'.\n", outp);
            rc_free(tmp);
            rc_free(adj);
            rc_free(fc_out);
            goto done;
        }
        fprintf(fo, "id,h,yhat,lo,hi\n");
    }
    double *f = buf, *lo = buf + H, *hi = buf + 2 * H;
    for (int s = 0; s < ns; s++) {
        double scale = mase_scale(xs[s], nx[s]);
        const float *q = fcast + (size_t)s * HQ;
        for (int h = 0; h < H; h++) {
            f[h] = q[h * Q + Q / 2];
            lo[h] = q[h * Q];
            hi[h] = q[h * Q + Q - 1];
            if (fo)
                fprintf(fo, "%s,%d,%.6g,%.6g,%.6g\n", tr ? tr->id[s] : "syn", h + 1, f[h], lo[h],
                        hi[h]);
        }
        score(&acc[0], ys[s], f, lo, hi, H, scale);
        snaive(xs[s], nx[s], H, f, lo, hi, tmp);
        score(&acc[1], ys[s], f, lo, hi, H, scale);
        naive2(xs[s], nx[s], H, f, lo, hi, tmp, adj);
        score(&acc[2], ys[s], f, lo, hi, H, scale);
    }
    rc_free(tmp);
    rc_free(adj);
    rc_free(fc_out);
    if (kind >= 0)
        printf("eval: %d generated '%s' series (hourly, seed %llu), horizon %d, model %s\n", ns,
               synth, (unsigned long long)seed, H, modelp);
    else
        printf("eval: %d series from %s / %s, horizon %d, model %s\n", ns, trainp, testp, H, modelp);
    printf("%-16s %8s %8s %8s %8s\n", "method", "sMAPE", "MASE", "OWA", "cov80");
    static const char *const names[3] = {"rwkvcast", "seasonal naive", "Naive2"};
    for (int k = 0; k < 3; k++) {
        double sm = acc[k].smape / acc[k].n, ma = acc[k].mase / acc[k].n;
        printf("%-16s %8.3f %8.3f %8.3f %8.3f\n", names[k], sm, ma,
               0.5 * (sm / EV_NAIVE2_SMAPE + ma / EV_NAIVE2_MASE), acc[k].cov / acc[k].ncov);
    }
    if (kind >= 0) printf("(OWA uses the M4 Hourly Naive2 constants 18.383 / 2.395)\n");
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "Error: Out of memory.\n");
done:
    if (fo && fclose(fo) != 0) rc = 1;
    if (kind >= 0 && xs)
        for (int s = 0; s < ns; s++) {
            rc_free(xs[s]);
            rc_free(ys[s]);
        }
    rc_free(xs);
    rc_free(ys);
    rc_free(nx);
    rc_free(buf);
    rc_free(idx);
    rc_free(fs);
    rc_free(out);
    rc_free(feat);
    rc_free(sp);
    rc_free(states);
    rk_ws_free(ws);
    rk_model_free(m);
    wide_csv_free(tr);
    wide_csv_free(te);
    return rc;
}
