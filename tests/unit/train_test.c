/*
 * train_test.c: the trainer's sequence forward equals rk_step_batch step by
 * step (float, tolerance 2e-4 absolute+relative: the inference kernels use
 * their own exp approximation and FMA order); a training smoke test (tiny
 * model, generated data, loss goes down within a few dozen steps);
 * determinism for a seed across thread counts; checkpoint resume gives the
 * same weights as an uninterrupted run.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/train.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/synth.h"
#include "tests/unit/harness.h"

static rk_dims tiny(void) {
    return (rk_dims){.n_layer = 2, .d_model = 16, .n_feat = FT_NFEAT, .n_horizon = 4,
                     .n_quant = 3, .ffn_mult = 4};
}

/* Random medium slots for B lanes x T steps (lane-major): reads and writes
 * anywhere among nm mediums, some rows reading or writing nothing. */
static void random_slots(rk_mslot *sl, int n, int nm, uint64_t *r) {
    for (int i = 0; i < n; i++) {
        *r = *r * 6364136223846793005ULL + 1;
        uint64_t x = *r >> 16;
        sl[i].rd0 = (int16_t)(x % 5 == 0 ? -1 : (int)(x % (uint64_t)nm));
        sl[i].rd1 = (int16_t)((x >> 8) % 7 == 0 ? -1 : (int)((x >> 12) % (uint64_t)nm));
        sl[i].wr = (int16_t)((x >> 20) % 6 == 0 ? -1 : (int)((x >> 24) % (uint64_t)nm));
        sl[i].alpha = 0.05f + 0.9f * (float)((x >> 32) % 1000) / 1000.0f;
    }
}

/* The trainer's window forward against rk_step_batch step by step: outputs
 * and the states (mediums included) they leave behind. */
static void check_forward(rk_dims d) {
    rc_err e;
    rk_model *m = rk_model_new(&d, &e);
    ASSERT(m);
    rk_model_init_random(m, 3);
    uint64_t r = 99;
    if (d.n_medium) {
        /* The init reads no medium (Um = 0): give the look-back weights. */
        for (uint32_t l = 0; l < d.n_layer; l++)
            for (size_t i = 0; i < (size_t)d.d_model * 2 * d.med_dim; i++) {
                r = r * 6364136223846793005ULL + 1;
                m->p.layer[l].med_u[i] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5);
            }
        rk_model_prepare(m);
    }
    enum { B = 3, T = 9 };
    int F = FT_NFEAT, HQ = 12;
    size_t S = rk_state_len(&d);
    static float feat[B * T * FT_NFEAT], outw[B * T * 12], st1[B][256], st2[B][256];
    static rk_mslot slots[B * T];
    for (int i = 0; i < B * T * F; i++) {
        r = r * 6364136223846793005ULL + 1;
        feat[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 4 - 2);
    }
    if (d.n_medium) random_slots(slots, B * T, (int)d.n_medium, &r);
    float *p1[B], *p2[B];
    ASSERT(S <= 256);
    for (int b = 0; b < B; b++) {
        rk_state_init(m, st1[b]);
        rk_state_init(m, st2[b]);
        p1[b] = st1[b];
        p2[b] = st2[b];
    }
    ASSERT_EQ(tr_forward_window(m, B, T, feat, d.n_medium ? slots : NULL, p1, outw), RC_OK);
    rk_ws *ws = rk_ws_new(m, B, &e);
    ASSERT(ws);
    double maxdiff = 0, medmax = 0;
    for (int t = 0; t < T; t++) {
        float fb[B * FT_NFEAT], ob[B * 12];
        rk_mslot sb[B];
        for (int b = 0; b < B; b++) {
            memcpy(fb + b * F, feat + ((size_t)b * T + t) * F, F * sizeof(float));
            sb[b] = slots[b * T + t];
        }
        rk_step_batch(m, ws, B, fb, d.n_medium ? sb : NULL, p2, ob);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < HQ; j++) {
                double a = outw[((size_t)b * T + t) * HQ + j], c = ob[b * HQ + j];
                double dd = fabs(a - c) / (1 + fabs(c));
                if (dd > maxdiff) maxdiff = dd;
            }
    }
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < S; i++) {
            double dd = fabs(st1[b][i] - st2[b][i]) / (1 + fabs(st2[b][i]));
            if (dd > maxdiff) maxdiff = dd;
            if (i >= (size_t)5 * d.n_layer * d.d_model && fabs(st2[b][i]) > medmax) medmax = fabs(st2[b][i]);
        }
    printf("  trainer forward vs rk_step_batch (%u mediums): maxdiff %.3g\n", d.n_medium, maxdiff);
    ASSERT_LT(maxdiff, 2e-4);
    if (d.n_medium) ASSERT(medmax > 1e-3); /* the mediums were written */
    rk_ws_free(ws);
    rk_model_free(m);
}

TEST(forward_matches_rk_step) { check_forward(tiny()); }

TEST(forward_matches_rk_step_with_mediums) {
    rk_dims d = tiny();
    d.n_medium = 4;
    d.med_dim = 3;
    check_forward(d);
}

static tr_data *make_data(const rk_dims *d) {
    rc_err e;
    tr_data *td = tr_data_new(d, &e);
    ASSERT(td);
    ft_cfg fc;
    ft_cfg_default(&fc);
    static double t[400], v[400];
    for (int s = 0; s < 8; s++) {
        sy_params p;
        sy_draw(&p, s % SY_KIND_COUNT, (uint64_t)s + 1);
        sy_generate(&p, 1.5e9, 3600, 400, t, v);
        ASSERT_EQ(tr_data_add(td, &fc, t, v, 400, 400, 24), RC_OK);
    }
    return td;
}

static void make_cfg(tr_cfg *c, long steps) {
    tr_cfg_default(c);
    c->lanes = 4;
    c->chunks = 2;
    c->window = 24;
    c->steps = steps;
    c->lr_warmup = 5;
    c->lr = 5e-3f;
}

TEST(training_smoke_loss_goes_down) {
    rk_dims d = tiny();
    rc_err e;
    rk_model *m = rk_model_new(&d, &e);
    ASSERT(m);
    rk_model_init_random(m, 1);
    tr_data *td = make_data(&d);
    tr_cfg c;
    make_cfg(&c, 150);
    tr_trainer *tr = tr_new(m, td, &c, &e);
    ASSERT(tr);
    double first = 0, last = 0;
    int nf = 0, nl = 0;
    for (int s = 0; s < 150; s++) {
        double l = tr_step(tr);
        /* NaN means no row of this window carried loss (all lanes warming up). */
        ASSERT(!isinf(l));
        if (isnan(l)) continue;
        if (s < 20) first += l, nf++;
        if (s >= 130) last += l, nl++;
    }
    first /= nf;
    last /= nl;
    printf("  mean loss, steps 1-20: %.4f, steps 131-150: %.4f\n", first, last);
    ASSERT_LT(last, 0.8 * first);
    tr_free(tr);
    tr_data_free(td);
    rk_model_free(m);
}

static void run(rk_model *m, tr_data *td, long steps, int threads, const char *save,
                const char *load, long total) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    rc_err e;
    tr_cfg c;
    make_cfg(&c, total);
    tr_trainer *tr = tr_new(m, td, &c, &e);
    ASSERT(tr);
    if (load) ASSERT_EQ(tr_load(tr, load), RC_OK);
    for (long s = 0; s < steps; s++) tr_step(tr);
    if (save) ASSERT_EQ(tr_save(tr, save), RC_OK);
    tr_free(tr);
}

TEST(deterministic_and_resumable) {
    rk_dims d = tiny();
    rc_err e;
    tr_data *td = make_data(&d);
    rk_model *a = rk_model_new(&d, &e), *b = rk_model_new(&d, &e), *c = rk_model_new(&d, &e);
    ASSERT(a && b && c);
    rk_model_init_random(a, 5);
    rk_model_init_random(b, 5);
    rk_model_init_random(c, 5);
    run(a, td, 20, 1, NULL, NULL, 20);
    run(b, td, 20, 2, NULL, NULL, 20);
    ASSERT(memcmp(a->w, b->w, a->n_param * sizeof(float)) == 0);
    char path[] = "/tmp/tr_test_ckpt_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    run(c, td, 10, 2, path, NULL, 20);
    rk_model_init_random(c, 77); /* the checkpoint must restore everything */
    run(c, td, 10, 2, NULL, path, 20);
    unlink(path);
    ASSERT(memcmp(a->w, c->w, a->n_param * sizeof(float)) == 0);
    rk_model_free(a);
    rk_model_free(b);
    rk_model_free(c);
    tr_data_free(td);
}

TT_MAIN(TEST_ENTRY(forward_matches_rk_step), TEST_ENTRY(forward_matches_rk_step_with_mediums), TEST_ENTRY(training_smoke_loss_goes_down),
        TEST_ENTRY(deterministic_and_resumable))
