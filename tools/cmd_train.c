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
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/log.h"
#include "common/base.h"
#include "common/textin.h"
#include "model/features.h"
#include "model/rwkv.h"
#include "model/synth.h"
#include "model/train.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"
#include "tools/series_csv.h"
#include "tools/wide_csv.h"

#define M4_TRAIN_DEFAULT "../shared/data/m4-hourly/Hourly-train.csv"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast train [OPTIONS]\n"
            "  --train FILE        M4-style wide CSV, hourly (default " M4_TRAIN_DEFAULT ");\n"
            "                      the format `rwkvcast eval --help` describes\n"
            "  --no-train          synthetic series only\n"
            "  --holdout N         keep the last N values of each CSV series out of the loss (0)\n"
            "  --synthetic N       generated series per kind (80)\n"
            "  --live DIR          also every timestamp,value CSV in DIR but google_* (which\n"
            "                      eval --live keeps unseen), the first --live-frac of each (0.5)\n"
            "  --exclude-kind K    generated kind left out of training (weekly; 'none')\n"
            "  --steps N           optimizer steps (3000)\n"
            "  --seed S            init and data seed (1)\n"
            "  --lanes B --window T --chunks G   batch shape (32, 48, 8)\n"
            "  --lr X              peak learning rate (2e-3)\n"
            "  --ema X             decay of the saved weight average (0.999; 0 = last weights)\n"
            "  --h-pow P           horizon h's loss weight is h^-P, mean 1 (1; 0 = equal)\n"
            "  --layers L --dmodel D             model size (2, 64)\n"
            "  --mediums M         RRWKV mediums per layer, one per 1/M of a day (0 = none,\n"
            "                      the default; 2..%d), a seasonal memory the blocks look back on\n"
            "  --med-dim R         floats per medium (1; 1..%d)\n"
            "  --threads N         OpenMP threads (default: OpenMP's)\n"
            "  -o, --out FILE      output weights (model/default.rwkv)\n"
            "  --ckpt FILE         training checkpoint (OUT.ckpt), every --ckpt-every steps (200)\n"
            "  --resume            continue from the checkpoint\n"
            "  -h, --help          this text\n", RK_MAX_MEDIUM, RK_MAX_MED_DIM);
}

/*
 * Adds the first frac of every timestamp,value CSV in dir (sorted by name),
 * but not the google_* files, which `eval --live` keeps unseen so that its
 * score on them is out of sample; rows the engine would refuse (time not
 * after the last) are dropped as the daemon drops them. Returns the number
 * of series added, -1 on error (message printed).
 */
static int add_live_dir(tr_data *td, const ft_cfg *fc, const char *dir, double frac, int warmup) {
    char **csv = NULL, **ign = NULL, path[4096], msg[512];
    int ncsv = 0, nign = 0, added = 0;
    if (sc_list_dir(dir, &csv, &ncsv, &ign, &nign) != 0) return -1;
    for (int i = 0; i < ncsv && added >= 0; i++) {
        if (strncmp(csv[i], "google_", 7) == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, csv[i]);
        sc_rows r;
        memset(&r, 0, sizeof r);
        long first = 0;
        if (sc_read(path, &r, msg, sizeof msg) != RC_OK) {
            fprintf(stderr, "Error: '%s': %s\n", path, msg);
            added = -1;
        } else {
            int dropped = sc_drop_unordered(&r, &first);
            int keep = (int)(r.n * frac);
            if (keep > warmup + 100) {
                if (tr_data_add(td, fc, r.t, r.v, keep, keep, warmup) != RC_OK) {
                    fprintf(stderr, "Error: Out of memory.\n");
                    added = -1;
                } else {
                    added++;
                    fprintf(stderr, "train: %s: first %d of %d rows (%d unparseable, %d out of order)\n", csv[i],
                            keep, r.n, r.bad_time + r.bad_value, dropped);
                }
            }
        }
        sc_rows_free(&r);
    }
    sc_names_free(csv, ncsv);
    sc_names_free(ign, nign);
    return added;
}

static void fmt_dur(char *b, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    int m = (int)(s / 60);
    snprintf(b, n, "%dm%02ds", m, (int)s - 60 * m);
}

int cmd_train(int argc, char **argv) {
    const char *train = M4_TRAIN_DEFAULT, *out = "model/default.rwkv", *ckpt = NULL;
    int holdout = 0, nsyn = 80, resume = 0, threads = 0, layers = 2, dmodel = 64;
    char ckbuf[4096];
    tr_cfg tc;
    tr_cfg_default(&tc);
    int every = 200, excl = SY_WEEKLY, c, bad = 0;
    const char *live = NULL;
    double live_frac = 0.5, h_pow = tc.h_pow;
    const rk_dims dd = rk_dims_default(FT_NFEAT);
    int mediums = (int)dd.n_medium, med_dim = dd.med_dim ? (int)dd.med_dim : 1;
    ti_getopt g;
    if (ti_getopt_init(&g, "T/train= N/no-train H/holdout= Y/synthetic= V/live= F/live-frac= K/exclude-kind= "
                           "S/steps= s/seed= B/lanes= W/window= C/chunks= l/lr= e/ema= p/h-pow= L/layers= "
                           "D/dmodel= m/mediums= r/med-dim= P/threads= "
                           "o|out= k/ckpt= E/ckpt-every= R/resume h|help", 0))
        return 2;
    double ema_opt = tc.ema, lr_opt = tc.lr;
    /* Cases in --help order. */
    while (!bad && (c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'T': train = optarg; break;
        case 'N': train = NULL; break;
        case 'H': bad = ti_opt_int("--holdout", optarg, 0, INT_MAX, &holdout); break;
        case 'Y': bad = ti_opt_int("--synthetic", optarg, 0, 100000, &nsyn); break;
        case 'V': live = optarg; break;
        case 'F': bad = ti_opt_double("--live-frac", optarg, 0, 1, 1, &live_frac); break;
        case 'K': bad = cli_opt_kind("--exclude-kind", optarg, 1, &excl); break;
        case 'S': bad = ti_opt_long("--steps", optarg, 1, 1000000000, &tc.steps); break;
        case 's': bad = ti_opt_u64("--seed", optarg, &tc.seed); break;
        case 'B': bad = ti_opt_int("--lanes", optarg, 1, 65536, &tc.lanes); break;
        case 'W': bad = ti_opt_int("--window", optarg, 1, 100000, &tc.window); break;
        case 'C': bad = ti_opt_int("--chunks", optarg, 1, 65536, &tc.chunks); break;
        case 'l': bad = ti_opt_double("--lr", optarg, 0, 1, 1, &lr_opt); break;
        case 'e': bad = ti_opt_double("--ema", optarg, 0, 0, 1, &ema_opt); break;
        case 'p': bad = ti_opt_double("--h-pow", optarg, 0, 0, 4, &h_pow); break;
        case 'L': bad = ti_opt_int("--layers", optarg, 1, RK_MAX_LAYERS, &layers); break;
        case 'D': bad = ti_opt_int("--dmodel", optarg, 8, 4096, &dmodel); break;
        case 'm': bad = ti_opt_int("--mediums", optarg, 0, RK_MAX_MEDIUM, &mediums); break;
        case 'r': bad = ti_opt_int("--med-dim", optarg, 1, RK_MAX_MED_DIM, &med_dim); break;
        case 'P': bad = ti_opt_int("--threads", optarg, 0, 1024, &threads); break;
        case 'o': out = optarg; break;
        case 'k': ckpt = optarg; break;
        case 'E': bad = ti_opt_int("--ckpt-every", optarg, 0, INT_MAX, &every); break;
        case 'R': resume = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (bad || ti_opt_operands(argc, argv, 0)) return 2;
    if (mediums == 1) {
        fprintf(stderr, "Error: Invalid '--mediums' value (1): expected 0 (none) or 2..%d.\n", RK_MAX_MEDIUM);
        return 2;
    }
    if (dmodel % 8) {
        fprintf(stderr, "Error: Invalid '--dmodel' value (%d): expected a multiple of 8.\n", dmodel);
        return 2;
    }
    if (tc.lanes % tc.chunks) {
        fprintf(stderr, "Error: '--lanes' (%d) is not a multiple of '--chunks' (%d).\n", tc.lanes, tc.chunks);
        return 2;
    }
    tc.ema = (float)ema_opt;
    tc.h_pow = (float)h_pow;
    tc.lr = (float)lr_opt;
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
    d.n_medium = (uint32_t)mediums;
    d.med_dim = mediums ? (uint32_t)med_dim : 0;
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
            /* wide_csv_read said what is wrong; a missing file also gets the way out. */
            if (access(train, F_OK) != 0)
                fprintf(stderr, "Error: Training data '%s' is missing; pass --train FILE or --no-train.\n", train);
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
    if (live && (n_live = add_live_dir(td, &fc, live, live_frac, tc.warmup_rows)) < 0) goto done;
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
                    "model L=%u D=%u F=%u H=%u Q=%u mediums=%u x %u, %zu parameters\n",
            n_csv, n_live, n_syn, excl >= 0 ? sy_kind_name(excl) : "none", tr_data_rows(td),
            d.n_layer, d.d_model, d.n_feat, d.n_horizon, d.n_quant, d.n_medium, d.med_dim, m->n_param);
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
             "series (%s, holdout %d) + %d live (%s, first %g) + %d generated (held out: %s); "
             "final loss ema %.4f",
             (unsigned long long)tc.seed, tc.steps, tc.lanes, tc.window, (double)tc.lr, (double)tc.h_pow,
             n_csv, train ? train : "none", holdout, n_live, live ? live : "none", live_frac, n_syn, excl >= 0 ? sy_kind_name(excl) : "none", ema);
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
