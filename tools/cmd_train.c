/*
 * cmd_train.c: `rwkvcast train`: builds the training set (M4-style wide CSV
 * plus generated series of every kind but one held-out kind), trains a model
 * from a seeded init with tr_step, checkpoints for --resume, and writes the
 * weights file. Progress (loss, LR, ETA) goes to stderr.
 *
 * M4 has no timestamps: each series gets hourly timestamps from a random
 * hour-aligned start (seeded), so the model cannot learn a calendar
 * alignment that does not exist.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/log.h"
#include "common/base.h"
#include "model/features.h"
#include "model/rwkv.h"
#include "model/synth.h"
#include "model/train.h"
#include "tools/cmd.h"
#include "tools/rp.h"
#include "tools/wide_csv.h"

#define M4_TRAIN_DEFAULT "../shared/data/m4-hourly/Hourly-train.csv"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast train [OPTIONS]\n"
            "  --train FILE        M4-style wide CSV, hourly (default " M4_TRAIN_DEFAULT ")\n"
            "  --no-train          synthetic series only\n"
            "  --holdout N         keep the last N values of each CSV series out of the loss (0)\n"
            "  --synthetic N       generated series per kind (80)\n"
            "  --live DIR          also every timestamp,value CSV in DIR except google_*\n"
            "                      (kept for evaluation), first --live-frac of each (0.5)\n"
            "  --h-pow P           horizon h's loss weight is h^-P (1; 0 = equal)\n"
            "  --exclude-kind K    generated kind left out of training (weekly; 'none')\n"
            "  --steps N           optimizer steps (3000)\n"
            "  --seed S            init and data seed (1)\n"
            "  --lanes B --window T --chunks G   batch shape (32, 48, 8)\n"
            "  --lr X              peak learning rate (2e-3)\n"
            "  --ema X             decay of the saved weight average (0.999; 0 = last weights)\n"
            "  --layers L --dmodel D             model size (2, 64)\n"
            "  --threads N         OpenMP threads (default: OpenMP's)\n"
            "  -o FILE             output weights (model/default.rwkv)\n"
            "  --ckpt FILE         training checkpoint (OUT.ckpt), every --ckpt-every steps (200)\n"
            "  --resume            continue from the checkpoint\n");
}

/*
 * Reads one timestamp,value CSV (header row) into *t, *v (rc_malloc'd, the
 * caller frees); rows that do not parse are skipped and counted. Returns the
 * number of rows, -1 when the file cannot be read (message printed).
 */
static int read_ts_csv(const char *path, double **t, double **v, int *bad) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "Error: Cannot open '%s'.\n", path);
        return -1;
    }
    int n = 0, cap = 0;
    *t = *v = NULL;
    *bad = 0;
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        char *fld[3];
        lineno++;
        if (rp_split(line, ',', fld, 3) < 2) continue;
        double tt, vv;
        if (!rp_parse_time(fld[0], &tt) || !rp_parse_value(fld[1], &vv)) {
            if (lineno > 1) (*bad)++;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            double *nt = rc_realloc(*t, (size_t)cap * sizeof(double));
            if (nt) *t = nt;
            double *nv = rc_realloc(*v, (size_t)cap * sizeof(double));
            if (nv) *v = nv;
            if (!nt || !nv) {
                fclose(f);
                return -1;
            }
        }
        (*t)[n] = tt;
        (*v)[n] = vv;
        n++;
    }
    fclose(f);
    return n;
}

/* Adds the first frac of every timestamp,value CSV in dir, but not the
 * google_* files, which the live-metrics evaluation keeps unseen. Returns
 * the number of series added, -1 on error (message printed). */
static int add_live_dir(tr_data *td, const ft_cfg *fc, const char *dir, double frac, int warmup) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "Error: Live-metrics directory '%s' is missing or unreadable.\n", dir);
        return -1;
    }
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 256) {
        size_t L = strlen(de->d_name);
        if (L < 5 || strcmp(de->d_name + L - 4, ".csv") != 0 || strncmp(de->d_name, "google_", 7) == 0)
            continue;
        names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    /* Sorted, so the data set is the same whatever order readdir gives. */
    for (int i = 1; i < nn; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *x = names[j];
            names[j] = names[j - 1];
            names[j - 1] = x;
        }
    int added = 0;
    for (int i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        double *t = NULL, *v = NULL;
        int bad = 0, n = read_ts_csv(path, &t, &v, &bad);
        int keep = n > 0 ? (int)(n * frac) : 0;
        if (n >= 0 && keep > warmup + 100) {
            if (tr_data_add(td, fc, t, v, keep, keep, warmup) != RC_OK) n = -1;
            else added++;
            fprintf(stderr, "train: %s: %d of %d rows%s\n", names[i], keep, n, bad ? " (some rows skipped)" : "");
        }
        rc_free(t);
        rc_free(v);
        if (n < 0) added = -1;
        if (added < 0) break;
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    return added;
}

static void fmt_dur(char *b, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    int m = (int)(s / 60);
    snprintf(b, n, "%dm%02ds", m, (int)s - 60 * m);
}

int cmd_train(int argc, char **argv) {
    const char *train = M4_TRAIN_DEFAULT, *out = "model/default.rwkv", *ckpt = NULL;
    const char *exclude = "weekly";
    int holdout = 0, nsyn = 80, resume = 0, threads = 0, layers = 2, dmodel = 64;
    char ckbuf[4096];
    tr_cfg tc;
    tr_cfg_default(&tc);
    int every = 200;
    const char *live = NULL;
    double live_frac = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--no-train") == 0) {
            train = NULL;
        } else if (strcmp(a, "--resume") == 0) {
            resume = 1;
        } else if (ARG("--train")) {
            train = v;
        } else if (ARG("--holdout")) {
            holdout = atoi(v);
        } else if (ARG("--synthetic")) {
            nsyn = atoi(v);
        } else if (ARG("--live")) {
            live = v;
        } else if (ARG("--live-frac")) {
            live_frac = atof(v);
        } else if (ARG("--h-pow")) {
            tc.h_pow = (float)atof(v);
        } else if (ARG("--exclude-kind")) {
            exclude = v;
        } else if (ARG("--steps")) {
            tc.steps = atol(v);
        } else if (ARG("--seed")) {
            tc.seed = strtoull(v, NULL, 10);
        } else if (ARG("--lanes")) {
            tc.lanes = atoi(v);
        } else if (ARG("--window")) {
            tc.window = atoi(v);
        } else if (ARG("--chunks")) {
            tc.chunks = atoi(v);
        } else if (ARG("--ema")) {
            tc.ema = (float)atof(v);
        } else if (ARG("--lr")) {
            tc.lr = (float)atof(v);
        } else if (ARG("--layers")) {
            layers = atoi(v);
        } else if (ARG("--dmodel")) {
            dmodel = atoi(v);
        } else if (ARG("--threads")) {
            threads = atoi(v);
        } else if (ARG("-o")) {
            out = v;
        } else if (ARG("--ckpt")) {
            ckpt = v;
        } else if (ARG("--ckpt-every")) {
            every = atoi(v);
        } else {
            fprintf(stderr, "Error: Unknown or incomplete option '%s'.\n", a);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    int excl = strcmp(exclude, "none") == 0 ? -1 : sy_kind_from_name(exclude);
    if (strcmp(exclude, "none") != 0 && excl < 0) {
        fprintf(stderr, "Error: Unknown series kind '%s'.\n", exclude);
        return 2;
    }
    if (tc.steps < 1 || nsyn < 0 || holdout < 0 || layers < 1 || dmodel < 8) {
        fprintf(stderr, "Error: Invalid numeric option.\n");
        return 2;
    }
    if (!ckpt) {
        snprintf(ckbuf, sizeof ckbuf, "%s.ckpt", out);
        ckpt = ckbuf;
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    int rc = 1;
    rc_err e;
    wide_csv *w = NULL;
    tr_data *td = NULL;
    tr_trainer *tr = NULL;
    double *tt = NULL, *vv = NULL;
    rk_dims d = rk_dims_default(FT_NFEAT);
    d.n_layer = (uint32_t)layers;
    d.d_model = (uint32_t)dmodel;
    rk_model *m = rk_model_new(&d, &e);
    if (!m) {
        fprintf(stderr, "Error: Cannot create the model (%s).\n", rc_strerror(e));
        return 1;
    }
    rk_model_init_random(m, tc.seed);
    /* Start from the baseline: a zero head predicts a zero residual, i.e.
     * seasonal naive (median) with unit-softplus intervals, so training
     * begins at seasonal naive's accuracy instead of a random forecast. */
    memset(m->p.head_w, 0, (size_t)d.n_horizon * d.n_quant * d.d_model * sizeof(float));
    memset(m->p.head_b, 0, (size_t)d.n_horizon * d.n_quant * sizeof(float));
    ft_cfg fc;
    ft_cfg_default(&fc);
    fc.n_quant = d.n_quant;
    ft_cfg_to_meta(&fc, &m->meta);
    td = tr_data_new(&d, &e);
    if (!td) goto oom;
    int n_csv = 0, n_syn = 0;
    if (train) {
        w = wide_csv_read(train);
        if (!w) {
            fprintf(stderr, "Error: Training data '%s' is missing or unreadable; pass --train FILE"
                            " or --no-train.\n", train);
            goto done;
        }
        int maxn = 0;
        for (int s = 0; s < w->n; s++) maxn = w->len[s] > maxn ? w->len[s] : maxn;
        tt = rc_malloc((size_t)(maxn + 1) * sizeof(double));
        if (!tt) goto oom;
        for (int s = 0; s < w->n; s++) {
            /* A random hour-aligned start in 2015..2020 per series. */
            uint64_t r = rc_mix64(tc.seed * 1000003u + (uint64_t)s);
            double t0 = 1420070400.0 + 3600.0 * (double)(r % 43800);
            for (int i = 0; i < w->len[s]; i++) tt[i] = t0 + 3600.0 * i;
            if (tr_data_add(td, &fc, tt, w->v[s], w->len[s], w->len[s] - holdout,
                            tc.warmup_rows) != RC_OK)
                goto oom;
            n_csv++;
        }
        rc_free(tt);
        tt = NULL;
    }
    int n_live = 0;
    if (live) {
        n_live = add_live_dir(td, &fc, live, live_frac, tc.warmup_rows);
        if (n_live < 0) goto done;
    }
    /* Generated series: mostly hourly, some faster sensors. */
    static const double dts[8] = {3600, 3600, 3600, 3600, 1800, 900, 300, 60};
    tt = rc_malloc(2000 * sizeof(double));
    vv = rc_malloc(2000 * sizeof(double));
    if (!tt || !vv) goto oom;
    for (int k = 0; k < SY_KIND_COUNT; k++) {
        if (k == excl) continue;
        for (int j = 0; j < nsyn; j++) {
            uint64_t r = rc_mix64(tc.seed * 7919u + (uint64_t)k * 100003u + (uint64_t)j);
            sy_params sp;
            sy_draw(&sp, k, r);
            double dt = dts[r % 8];
            int n = 700 + (int)((r >> 8) % 800);
            double t0 = floor((1420070400.0 + (double)((r >> 20) % 157680000)) / dt) * dt;
            sy_generate(&sp, t0, dt, n, tt, vv);
            if (tr_data_add(td, &fc, tt, vv, n, n, tc.warmup_rows) != RC_OK) goto oom;
            n_syn++;
        }
    }
    fprintf(stderr, "train: %d CSV series + %d live + %d generated (kind '%s' held out), %ld rows; "
                    "model L=%u D=%u F=%u H=%u Q=%u, %zu parameters\n",
            n_csv, n_live, n_syn, excl >= 0 ? sy_kind_name(excl) : "none", tr_data_rows(td),
            d.n_layer, d.d_model, d.n_feat, d.n_horizon, d.n_quant, m->n_param);
    tr = tr_new(m, td, &tc, &e);
    if (!tr) {
        fprintf(stderr, "Error: Cannot set up training (%s).\n", rc_strerror(e));
        goto done;
    }
    if (resume) {
        e = tr_load(tr, ckpt);
        if (e != RC_OK) {
            fprintf(stderr, "Error: Cannot resume from '%s' (%s).\n", ckpt, rc_strerror(e));
            goto done;
        }
        fprintf(stderr, "train: resumed from '%s' at step %ld\n", ckpt, tr_steps_done(tr));
    }
    double t_start = lg_wall_s(), ema = NAN;
    long s0 = tr_steps_done(tr);
    while (tr_steps_done(tr) < tc.steps) {
        double loss = tr_step(tr);
        long st = tr_steps_done(tr);
        if (isfinite(loss)) ema = isnan(ema) ? loss : 0.98 * ema + 0.02 * loss;
        if (st % 20 == 0 || st == tc.steps) {
            double el = lg_wall_s() - t_start;
            double eta = el / (double)(st - s0) * (double)(tc.steps - st);
            char b1[32], b2[32];
            fmt_dur(b1, sizeof b1, el);
            fmt_dur(b2, sizeof b2, eta);
            fprintf(stderr, "step %5ld/%ld  loss %.4f  ema %.4f  elapsed %s  ETA %s\n", st,
                    tc.steps, loss, ema, b1, b2);
        }
        if (every > 0 && st % every == 0 && st < tc.steps) {
            e = tr_save(tr, ckpt);
            if (e != RC_OK)
                fprintf(stderr, "Warning: Cannot write checkpoint '%s' (%s).\n", ckpt,
                        rc_strerror(e));
        }
    }
    tr_finish(tr);
    snprintf(m->meta.info, sizeof m->meta.info,
             "rwkvcast train: seed %llu, %ld steps, lanes %d, window %d, lr %g, h-pow %g; data: %d CSV "
             "series (%s, holdout %d) + %d live (first %g) + %d generated (held out: %s); final loss ema %.4f",
             (unsigned long long)tc.seed, tc.steps, tc.lanes, tc.window, (double)tc.lr, (double)tc.h_pow,
             n_csv, train ? train : "none", holdout, n_live, live_frac, n_syn, excl >= 0 ? sy_kind_name(excl) : "none", ema);
    rk_model_prepare(m);
    e = rk_model_save(m, out);
    if (e != RC_OK) {
        fprintf(stderr, "Error: Cannot write '%s' (%s).\n", out, rc_strerror(e));
        goto done;
    }
    fprintf(stderr, "train: wrote '%s' (%.1f min)\n", out, (lg_wall_s() - t_start) / 60);
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "Error: Out of memory.\n");
done:
    tr_free(tr);
    tr_data_free(td);
    wide_csv_free(w);
    rc_free(tt);
    rc_free(vv);
    rk_model_free(m);
    return rc;
}
