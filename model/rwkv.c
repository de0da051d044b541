/*
 * rwkv.c: RWKV-4 model bookkeeping: shapes, the tensor table, parameter
 * carving, seeded init, the content hash and per-series state blobs.
 * The numeric kernels live in rwkv_step.c, the weights file in rwkv_file.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/rwkv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/rwkv_internal.h"

rc_err rk_dims_check(const rk_dims *d) {
    if (d->n_layer < 1 || d->n_layer > RK_MAX_LAYERS) return RC_ERR_SHAPE;
    if (d->d_model < 8 || d->d_model > 4096 || d->d_model % 8) return RC_ERR_SHAPE;
    if (d->n_feat < 1 || d->n_feat > 1024) return RC_ERR_SHAPE;
    if (d->n_horizon < 1 || d->n_horizon > 4096) return RC_ERR_SHAPE;
    if (d->n_quant < 1 || d->n_quant > RK_MAX_QUANT || d->n_quant % 2 == 0) return RC_ERR_SHAPE;
    if (d->ffn_mult < 1 || d->ffn_mult > 16) return RC_ERR_SHAPE;
    if (d->n_medium == 0 ? d->med_dim != 0
                         : (d->n_medium < 2 || d->n_medium > RK_MAX_MEDIUM || d->med_dim < 1 ||
                            d->med_dim > RK_MAX_MED_DIM || 2 * d->med_dim > d->ffn_mult * d->d_model))
        return RC_ERR_SHAPE;
    return RC_OK;
}

rk_dims rk_dims_default(uint32_t n_feat) {
    rk_dims d = {.n_layer = 2, .d_model = 64, .n_feat = n_feat, .n_horizon = 48, .n_quant = 3, .ffn_mult = 4};
    return d;
}

/*
 * The one place that knows the tensor order. Every other layout question
 * (carving, file order, golden names) is answered from this walk, so the
 * trainer's gradient blocks line up with the weights by construction.
 */
typedef struct rk_walk {
    rk_tensor_info *out; /* table rows, may be NULL */
    int max;             /* capacity of out */
    int n;               /* tensors visited */
    size_t off;          /* floats so far */
} rk_walk;

static void walk_add(rk_walk *w, const char *name, uint32_t rows, uint32_t cols) {
    if (w->out && w->n < w->max) {
        rk_tensor_info *t = &w->out[w->n];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = cols > 1 ? 2 : 1;
        t->shape[0] = rows;
        t->shape[1] = cols;
        t->offset = w->off;
        t->count = (size_t)rows * cols;
    }
    w->n++;
    w->off += (size_t)rows * cols;
}

static void walk_all(const rk_dims *d, rk_walk *w) {
    uint32_t D = d->d_model, F = d->n_feat, M = d->ffn_mult * d->d_model;
    uint32_t HQ = d->n_horizon * d->n_quant;
    char name[40];
    walk_add(w, "in.W", D, F);
    walk_add(w, "in.b", D, 1);
    walk_add(w, "ln0.w", D, 1);
    walk_add(w, "ln0.b", D, 1);
    for (uint32_t l = 0; l < d->n_layer; l++) {
        static const char *const vec1[] = {"ln1.w", "ln1.b", "att.mu_k", "att.mu_v", "att.mu_r",
                                           "att.decay", "att.first"};
        for (size_t i = 0; i < sizeof vec1 / sizeof vec1[0]; i++) {
            snprintf(name, sizeof name, "blocks.%u.%s", l, vec1[i]);
            walk_add(w, name, D, 1);
        }
        static const char *const att[] = {"att.Wk", "att.Wv", "att.Wr", "att.Wo"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blocks.%u.%s", l, att[i]);
            walk_add(w, name, D, D);
        }
        static const char *const vec2[] = {"ln2.w", "ln2.b", "ffn.mu_k", "ffn.mu_r"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blocks.%u.%s", l, vec2[i]);
            walk_add(w, name, D, 1);
        }
        snprintf(name, sizeof name, "blocks.%u.ffn.Wk", l);
        walk_add(w, name, M, D);
        snprintf(name, sizeof name, "blocks.%u.ffn.Wv", l);
        walk_add(w, name, D, M);
        snprintf(name, sizeof name, "blocks.%u.ffn.Wr", l);
        walk_add(w, name, D, D);
        if (d->n_medium) {
            snprintf(name, sizeof name, "blocks.%u.med.P", l);
            walk_add(w, name, d->med_dim, D);
            snprintf(name, sizeof name, "blocks.%u.med.U", l);
            walk_add(w, name, D, 2 * d->med_dim);
        }
    }
    walk_add(w, "ln_out.w", D, 1);
    walk_add(w, "ln_out.b", D, 1);
    walk_add(w, "head.W", HQ, D);
    walk_add(w, "head.b", HQ, 1);
}

size_t rk_param_count(const rk_dims *d) {
    rk_walk w = {0};
    walk_all(d, &w);
    return w.off;
}

int rk_tensor_table(const rk_dims *d, rk_tensor_info *out, int max) {
    rk_walk w = {.out = out, .max = max};
    walk_all(d, &w);
    return w.n;
}

void rk_params_point(rk_params *p, const rk_dims *d, float *base) {
    /* Mirrors walk_all's order; the unit test checks both agree tensor by tensor. */
    size_t D = d->d_model, F = d->n_feat, M = (size_t)d->ffn_mult * D;
    size_t HQ = (size_t)d->n_horizon * d->n_quant;
    float *q = base;
#define TAKE(dst, n) do { (dst) = q; q += (n); } while (0)
    memset(p, 0, sizeof *p);
    TAKE(p->in_w, D * F);
    TAKE(p->in_b, D);
    TAKE(p->ln0_w, D);
    TAKE(p->ln0_b, D);
    for (uint32_t l = 0; l < d->n_layer; l++) {
        rk_layer_params *L = &p->layer[l];
        TAKE(L->ln1_w, D);
        TAKE(L->ln1_b, D);
        TAKE(L->att_mu_k, D);
        TAKE(L->att_mu_v, D);
        TAKE(L->att_mu_r, D);
        TAKE(L->att_decay, D);
        TAKE(L->att_first, D);
        TAKE(L->att_wk, D * D);
        TAKE(L->att_wv, D * D);
        TAKE(L->att_wr, D * D);
        TAKE(L->att_wo, D * D);
        TAKE(L->ln2_w, D);
        TAKE(L->ln2_b, D);
        TAKE(L->ffn_mu_k, D);
        TAKE(L->ffn_mu_r, D);
        TAKE(L->ffn_wk, M * D);
        TAKE(L->ffn_wv, D * M);
        TAKE(L->ffn_wr, D * D);
        if (d->n_medium) {
            TAKE(L->med_p, (size_t)d->med_dim * D);
            TAKE(L->med_u, D * 2 * d->med_dim);
        }
    }
    TAKE(p->lnout_w, D);
    TAKE(p->lnout_b, D);
    TAKE(p->head_w, HQ * D);
    TAKE(p->head_b, HQ);
#undef TAKE
}

static void meta_default(rk_meta *meta, uint32_t Q) {
    memset(meta, 0, sizeof *meta);
    if (Q == 3) {
        meta->quantiles[0] = 0.1f;
        meta->quantiles[1] = 0.5f;
        meta->quantiles[2] = 0.9f;
    } else {
        for (uint32_t j = 0; j < Q; j++) meta->quantiles[j] = (float)(j + 1) / (float)(Q + 1);
    }
}

rk_model *rk_model_new(const rk_dims *d, rc_err *err) {
    rc_err e = rk_dims_check(d);
    rk_model *m = NULL;
    if (e != RC_OK) goto err;
    e = RC_ERR_NOMEM;
    m = rc_calloc(1, sizeof *m);
    if (!m) goto err;
    m->dims = *d;
    meta_default(&m->meta, d->n_quant);
    m->n_param = rk_param_count(d);
    m->w = rc_aligned_alloc(64, m->n_param * sizeof(float));
    if (!m->w) goto err;
    memset(m->w, 0, m->n_param * sizeof(float));
    rk_params_point(&m->p, d, m->w);
    if (rk_model_prepare(m) != RC_OK) goto err;
    if (err) *err = RC_OK;
    return m;
err:
    rk_model_free(m);
    if (err) *err = e;
    return NULL;
}

void rk_model_free(rk_model *m) {
    if (!m) return;
    rc_free(m->packed);
    rc_free(m->w);
    rc_free(m);
}

/* splitmix64: tiny, well-mixed and identical on every platform. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) from the top 24 bits: exact in float, so portable. */
static float rng_sym(uint64_t *s) {
    return (float)(rng_next(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static void fill_uniform(float *x, size_t n, float scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_sym(s);
}

void rk_model_init_random(rk_model *m, uint64_t seed) {
    const rk_dims *d = &m->dims;
    size_t D = d->d_model, F = d->n_feat, M = (size_t)d->ffn_mult * D;
    size_t HQ = (size_t)d->n_horizon * d->n_quant;
    uint64_t s = seed ^ 0x52574b5643415354ULL;
    rk_params *p = &m->p;
    /* Uniform(-a, a) has std a/sqrt(3): a = sqrt(3/fan_in) gives unit-variance outputs. */
    fill_uniform(p->in_w, D * F, sqrtf(3.0f / (float)F), &s);
    fill_uniform(p->in_b, D, 0.1f, &s);
    for (size_t i = 0; i < D; i++) {
        p->ln0_w[i] = 1.0f + 0.05f * rng_sym(&s);
        p->ln0_b[i] = 0.05f * rng_sym(&s);
    }
    for (uint32_t l = 0; l < d->n_layer; l++) {
        rk_layer_params *L = &p->layer[l];
        float depth = d->n_layer > 1 ? (float)l / (float)(d->n_layer - 1) : 0.0f;
        for (size_t i = 0; i < D; i++) {
            float frac = D > 1 ? (float)i / (float)(D - 1) : 0.0f;
            L->ln1_w[i] = 1.0f + 0.05f * rng_sym(&s);
            L->ln1_b[i] = 0.05f * rng_sym(&s);
            L->ln2_w[i] = 1.0f + 0.05f * rng_sym(&s);
            L->ln2_b[i] = 0.05f * rng_sym(&s);
            /* RWKV-4's init: token-shift mixes spread over channels. */
            L->att_mu_k[i] = powf(frac, 1.0f - 0.5f * depth) * 0.8f + 0.1f;
            L->att_mu_v[i] = L->att_mu_k[i] * 0.9f + 0.05f;
            L->att_mu_r[i] = 0.5f * L->att_mu_k[i] + 0.25f;
            L->ffn_mu_k[i] = L->att_mu_k[i];
            L->ffn_mu_r[i] = L->att_mu_r[i];
            /* Decay speeds from fast (-5) to slow (+3): w = -exp(decay) spans
             * memories from hundreds of samples down to a fraction of one. */
            L->att_decay[i] = -5.0f + 8.0f * powf(frac, 0.7f + 1.3f * depth);
            L->att_first[i] = logf(0.3f) + 0.5f * (float)((int)((i + 1) % 3) - 1);
        }
        float aD = sqrtf(3.0f / (float)D), aM = sqrtf(3.0f / (float)M);
        fill_uniform(L->att_wk, D * D, aD, &s);
        fill_uniform(L->att_wv, D * D, aD, &s);
        fill_uniform(L->att_wr, D * D, aD, &s);
        fill_uniform(L->att_wo, D * D, 0.5f * aD, &s);
        fill_uniform(L->ffn_wk, M * D, aD, &s);
        fill_uniform(L->ffn_wv, D * M, 0.5f * aM, &s);
        fill_uniform(L->ffn_wr, D * D, aD, &s);
    }
    /* Mediums start as a random summary that nothing reads yet (Um = 0):
     * the network is the one without mediums until training finds a use
     * for them. Own random stream, so the other weights do not depend on
     * whether the model has mediums. */
    if (d->n_medium) {
        uint64_t ms = seed ^ 0x4d454449554d53ULL; /* own stream: "MEDIUMS" */
        for (uint32_t l = 0; l < d->n_layer; l++) {
            fill_uniform(p->layer[l].med_p, (size_t)d->med_dim * D, sqrtf(3.0f / (float)D), &ms);
            memset(p->layer[l].med_u, 0, D * 2 * d->med_dim * sizeof(float));
        }
    }
    for (size_t i = 0; i < D; i++) {
        p->lnout_w[i] = 1.0f + 0.05f * rng_sym(&s);
        p->lnout_b[i] = 0.05f * rng_sym(&s);
    }
    fill_uniform(p->head_w, HQ * D, 0.5f * sqrtf(3.0f / (float)D), &s);
    fill_uniform(p->head_b, HQ, 0.1f, &s);
    m->meta.seed = seed;
    rk_model_prepare(m);
}

/* ---- per-series state ---- */

size_t rk_state_len(const rk_dims *d) {
    return (size_t)d->n_layer * (5 * (size_t)d->d_model + (size_t)d->n_medium * d->med_dim);
}

void rk_state_init(const rk_model *m, float *state) {
    size_t D = m->dims.d_model;
    for (uint32_t l = 0; l < m->dims.n_layer; l++) {
        float *s = state + (size_t)l * 5 * D;
        memset(s, 0, 4 * D * sizeof(float));
        /* pp holds the log of the running max; -1e30 stands for -inf
         * without producing inf - inf = NaN in the first update. */
        for (size_t i = 0; i < D; i++) s[4 * D + i] = RK_PP_INIT;
    }
    size_t base = (size_t)m->dims.n_layer * 5 * D;
    memset(state + base, 0, (rk_state_len(&m->dims) - base) * sizeof(float));
}

#define RK_STATE_HDR 24 /* magic, version, L, D, model hash */

size_t rk_state_blob_size(const rk_dims *d) { return RK_STATE_HDR + 4 * rk_state_len(d); }

void rk_state_save(const rk_model *m, const float *state, uint8_t *buf) {
    rc_put_u32(buf, RK_STATE_MAGIC);
    rc_put_u32(buf + 4, RK_STATE_VERSION);
    rc_put_u32(buf + 8, m->dims.n_layer);
    rc_put_u32(buf + 12, m->dims.d_model);
    rc_put_u64(buf + 16, m->hash);
    size_t n = rk_state_len(&m->dims);
    for (size_t i = 0; i < n; i++) rc_put_f32(buf + RK_STATE_HDR + 4 * i, state[i]);
}

rc_err rk_state_load(const rk_model *m, float *state, const uint8_t *buf, size_t len) {
    if (len < RK_STATE_HDR || rc_get_u32(buf) != RK_STATE_MAGIC) return RC_ERR_FORMAT;
    if (rc_get_u32(buf + 4) != RK_STATE_VERSION) return RC_ERR_VERSION;
    if (rc_get_u32(buf + 8) != m->dims.n_layer || rc_get_u32(buf + 12) != m->dims.d_model)
        return RC_ERR_SHAPE;
    if (len != rk_state_blob_size(&m->dims)) return RC_ERR_FORMAT;
    if (rc_get_u64(buf + 16) != m->hash) return RC_ERR_MODEL;
    size_t n = rk_state_len(&m->dims);
    for (size_t i = 0; i < n; i++) {
        float v = rc_get_f32(buf + RK_STATE_HDR + 4 * i);
        /* pp may legitimately be very negative but never NaN/Inf. */
        if (!isfinite(v)) return RC_ERR_NUMERIC;
    }
    for (size_t i = 0; i < n; i++) state[i] = rc_get_f32(buf + RK_STATE_HDR + 4 * i);
    return RC_OK;
}

double rk_macs_per_step(const rk_dims *d) {
    double D = d->d_model, M = (double)d->ffn_mult * D, F = d->n_feat;
    double HQ = (double)d->n_horizon * d->n_quant;
    double per_layer = 4 * D * D + 2 * D * M + D * D + 3.0 * d->med_dim * D;
    return D * F + d->n_layer * per_layer + HQ * D;
}
