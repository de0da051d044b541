/*
 * train_grad_test.c: the trainer's hand-written backward against central finite
 * differences, in double precision, for every parameter tensor of a tiny
 * model (L=2, D=8, F=FT_NFEAT, H=3, Q=3, ffn_mult=4), B=2 series, T=5 steps,
 * from the initial state and from a warmed-up state (so the WKV's carried
 * aa/bb/pp and the token-shift states are non-trivial); and the same with
 * RRWKV mediums (3 mediums of r=2 per layer, slots that write a medium and
 * read it back later in the window, so the gradient runs through them).
 *
 * The checked code is model/train_kernels.inc itself, included here with
 * TR_REAL = double. Loss for the check: L = sum_j c_j q_j + 0.5 q_j^2 over
 * all quantile outputs with fixed random c (smooth, so finite differences
 * are exact to O(eps^2)); the pinball loss's own derivative is tested apart.
 *
 * Tolerance: every parameter entry, |analytic - numeric| <= 1e-6 +
 * 1e-5 * max(|analytic|, |numeric|), with eps = 1e-5.
 *
 * SPDX-License-Identifier: MIT
 */
#define TR_REAL double
#include "model/train_kernels.inc"

#include "model/features.h"
#include "model/rwkv.h"
#include "tests/unit/harness.h"

enum { GB = 2, GT = 5, GS = 5 * 2 * 8 + 2 * 3 * 2 };

typedef struct gctx {
    rk_dims d;
    size_t np;
    real *w, *g, *actmem, *wtmem;
    trc_params p, gp;
    trc_act a;
    trc_wt wt;
    real st0[GB][GS]; /* initial states (L=2, D=8, mediums) */
    rk_mslot slot[GB * GT];
    real feat[GB * GT * FT_NFEAT];
    real c[GB * GT * 9];
} gctx;

static uint64_t rs = 12345;
static double urand(void) {
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rs >> 11) / 9007199254740992.0 * 2 - 1;
}

/* Loss of the window from ctx's initial states; fills a->dq when want_grad. */
static double gloss(gctx *c, int want_grad) {
    real st[GB][GS];
    real *sp[GB];
    memcpy(st, c->st0, sizeof st);
    for (int b = 0; b < GB; b++) sp[b] = st[b];
    trc_wt_build(&c->wt, c->wtmem, &c->p, &c->d);
    memcpy(c->a.feat, c->feat, sizeof c->feat);
    c->a.slot = c->d.n_medium ? c->slot : NULL;
    trc_forward(&c->a, &c->p, &c->wt, &c->d, sp, GB, GT);
    double L = 0;
    int n = GB * GT * 9;
    for (int j = 0; j < n; j++) {
        L += c->c[j] * c->a.q[j] + 0.5 * c->a.q[j] * c->a.q[j];
        if (want_grad) c->a.dq[j] = c->c[j] + c->a.q[j];
    }
    return L;
}

static void setup(gctx *c, int warm, int mediums) {
    memset(c, 0, sizeof *c);
    c->d = (rk_dims){.n_layer = 2, .d_model = 8, .n_feat = FT_NFEAT, .n_horizon = 3,
                     .n_quant = 3, .ffn_mult = 4, .n_medium = mediums ? 3 : 0, .med_dim = mediums ? 2 : 0};
    /* Step t reads mediums t % 3 and (t + 1) % 3, then writes t % 3: what
     * step 0 writes, step 2 reads. A row that writes nothing and one that
     * reads one medium only cover the -1 slots. */
    for (int n = 0; n < GB * GT; n++) {
        int t = n % GT;
        c->slot[n] = (rk_mslot){(int16_t)(t % 3), (int16_t)((t + 1) % 3), (int16_t)(t % 3), 0.3f + 0.1f * (float)t};
    }
    c->slot[GT + 3].wr = -1;
    c->slot[GT + 1].rd1 = -1;
    rc_err e;
    rk_model *m = rk_model_new(&c->d, &e);
    ASSERT(m);
    rk_model_init_random(m, 7);
    c->np = m->n_param;
    c->w = rc_malloc(c->np * sizeof(real));
    c->g = rc_calloc(c->np, sizeof(real));
    /* Perturb the init so no parameter sits at a symmetric special value. */
    for (size_t i = 0; i < c->np; i++) c->w[i] = m->w[i] + 0.05 * urand();
    trc_point(&c->p, &c->d, c->w);
    trc_point(&c->gp, &c->d, c->g);
    /* Offsets must match rk_params_point tensor by tensor. */
    ASSERT_EQ(c->p.head_b - c->w, m->p.head_b - m->w);
    ASSERT_EQ(c->p.layer[1].ffn_wv - c->w, m->p.layer[1].ffn_wv - m->w);
    ASSERT_EQ(c->p.lnout_w - c->w, m->p.lnout_w - m->w);
    c->actmem = rc_malloc(trc_act_floats(&c->d, GB * GT, GB) * sizeof(real));
    trc_act_point(&c->a, &c->d, GB * GT, GB, c->actmem);
    c->wtmem = rc_malloc(trc_wt_floats(&c->d) * sizeof(real));
    float fst[GS];
    ASSERT(rk_state_len(&c->d) <= GS);
    rk_state_init(m, fst);
    for (int b = 0; b < GB; b++)
        for (size_t i = 0; i < rk_state_len(&c->d); i++) c->st0[b][i] = fst[i];
    for (size_t i = 0; i < sizeof c->feat / sizeof c->feat[0]; i++) c->feat[i] = urand();
    for (size_t i = 0; i < sizeof c->c / sizeof c->c[0]; i++) c->c[i] = urand();
    if (warm) {
        /* Run one window to get a warm state, then detach it as st0. */
        real *sp[GB];
        for (int b = 0; b < GB; b++) sp[b] = c->st0[b];
        trc_wt_build(&c->wt, c->wtmem, &c->p, &c->d);
        for (size_t i = 0; i < sizeof c->feat / sizeof c->feat[0]; i++) c->a.feat[i] = urand();
        c->a.slot = c->d.n_medium ? c->slot : NULL;
        trc_forward(&c->a, &c->p, &c->wt, &c->d, sp, GB, GT);
    }
    rk_model_free(m);
}

static void check_all(int warm, int mediums) {
    gctx *c = rc_malloc(sizeof *c);
    setup(c, warm, mediums);
    gloss(c, 1);
    trc_backward(&c->a, &c->gp, &c->p, &c->d, GB, GT);
    rk_tensor_info tab[64];
    int nt = rk_tensor_table(&c->d, tab, 64);
    ASSERT(nt > 10);
    const double eps = 1e-5;
    int bad = 0;
    for (int ti = 0; ti < nt; ti++) {
        double maxdiff = 0, maxg = 0;
        for (size_t k = 0; k < tab[ti].count; k++) {
            size_t i = tab[ti].offset + k;
            real keep = c->w[i];
            c->w[i] = keep + eps;
            double lp = gloss(c, 0);
            c->w[i] = keep - eps;
            double lm = gloss(c, 0);
            c->w[i] = keep;
            double num = (lp - lm) / (2 * eps), ana = c->g[i];
            double diff = fabs(num - ana);
            double tol = 1e-6 + 1e-5 * fmax(fabs(num), fabs(ana));
            if (diff > maxdiff) maxdiff = diff;
            if (fabs(ana) > maxg) maxg = fabs(ana);
            if (diff > tol) {
                if (bad < 10)
                    fprintf(stderr, "  %s[%zu]: analytic %.9g numeric %.9g\n", tab[ti].name, k, ana,
                            num);
                bad++;
            }
        }
        printf("  %-22s n=%-5zu maxdiff %.3g (max |g| %.3g) %s\n", tab[ti].name, tab[ti].count,
               maxdiff, maxg, maxg > 0 ? "OK" : "NOT OK (zero gradient)");
        if (!(maxg > 0)) bad++;
    }
    ASSERT_EQ(bad, 0);
    rc_free(c->w);
    rc_free(c->g);
    rc_free(c->actmem);
    rc_free(c->wtmem);
    rc_free(c);
}

TEST(grad_every_tensor_cold_state) { check_all(0, 0); }
TEST(grad_every_tensor_warm_state) { check_all(1, 0); }
TEST(grad_every_tensor_with_mediums_cold_state) { check_all(0, 1); }
TEST(grad_every_tensor_with_mediums_warm_state) { check_all(1, 1); }

/* Pinball loss derivative: finite differences of trc_loss in each q. */
TEST(pinball_derivative) {
    rk_dims d = {.n_layer = 1, .d_model = 8, .n_feat = FT_NFEAT, .n_horizon = 2, .n_quant = 3,
                 .ffn_mult = 4};
    real *mem = rc_malloc(trc_act_floats(&d, 1, 1) * sizeof(real));
    trc_act a;
    trc_act_point(&a, &d, 1, 1, mem);
    const float quant[3] = {0.1f, 0.5f, 0.9f};
    real tgt[2] = {0.3, NAN}, wrow[1] = {1};
    real qv[6] = {-0.5, 0.1, 0.7, 0, 0, 0};
    memcpy(a.q, qv, sizeof qv);
    double cnt = 0;
    double L = trc_loss(&a, &d, quant, tgt, wrow, NULL, 1, &cnt);
    ASSERT_NEAR(cnt, 1, 0);
    /* 0.1*0.8 + 0.5*0.2 + 0.1*0.4 */
    ASSERT_NEAR(L, 0.08 + 0.1 + 0.04, 1e-6); /* levels are float */
    ASSERT_NEAR(a.dq[0], -0.1, 1e-7);
    ASSERT_NEAR(a.dq[1], -0.5, 1e-7);
    ASSERT_NEAR(a.dq[2], 0.1, 1e-7);
    for (int j = 3; j < 6; j++) ASSERT_NEAR(a.dq[j], 0, 0);
    rc_free(mem);
}

TT_MAIN(TEST_ENTRY(grad_every_tensor_cold_state), TEST_ENTRY(grad_every_tensor_warm_state),
        TEST_ENTRY(grad_every_tensor_with_mediums_cold_state), TEST_ENTRY(grad_every_tensor_with_mediums_warm_state),
        TEST_ENTRY(pinball_derivative))
