/*
 * rwkv.h: the RWKV-4 forecasting network (Peng et al. 2023, arXiv 2305.13048)
 * in recurrent form: weights, per-series state, batched step.
 *
 * Network, per sample of one series:
 *   x  = in_w feat + in_b                      feat (F) -> x (D)
 *   x  = ln0(x)
 *   for each of L blocks:
 *     xa = ln1(x); token shift with att_xx; r,k,v; WKV (stable form); x += Wo (r*wkv)
 *     xf = ln2(x); token shift with ffn_xx; x += sigmoid(Wr xr) * (Wv relu(Wk xk)^2)
 *   y  = ln_out(x)
 *   o  = head_w y + head_b                     (H*Q) raw, horizon-major: o[h*Q + q]
 *   quantiles = rk_head_quantiles(o)           monotone in q for every h
 * Matrices are [out][in] (y = W x), exactly as shared/golden uses them.
 *
 * Memory: an rk_model owns one contiguous block of parameters cut into named
 * tensors (rk_params) plus a packed, transposed copy used by the inference
 * kernels. A per-series state is a caller-owned float[rk_state_len()] laid out
 * per layer as ffn_xx, att_xx, att_aa, att_bb, att_pp (D floats each); only
 * rk_state_init() produces a valid one (pp starts at -1e30, not 0).
 * Nothing in rk_step/rk_step_batch allocates: the workspace is sized at
 * rk_ws_new() for a maximum batch.
 *
 * Threads: an rk_model is read-only after rk_model_prepare() and may be shared
 * by any number of threads; an rk_ws belongs to one thread at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RWKV_H
#define RWKV_H

#include <stddef.h>
#include <stdint.h>

#include "../common/base.h"

#define RK_MAX_LAYERS 16
#define RK_MAX_MEDIUM 24  /* mediums per layer (one per 1/24 of a day) */
#define RK_MAX_MED_DIM 8  /* floats per medium */
#define RK_MAX_QUANT 9
#define RK_FEAT_PARAMS 16 /* featurizer settings stored in the weights file */
#define RK_INFO_LEN 256   /* training metadata text, NUL-padded */

/* Weights file and state blob formats; see docs/FILE_FORMAT.md. */
#define RK_FILE_MAGIC "RWKVCAST"   /* 8 bytes */
#define RK_FILE_VERSION_MIN 1
#define RK_FILE_VERSION_MAX 2 /* 2: adds n_medium, med_dim; written only when n_medium > 0 */
#define RK_STATE_MAGIC 0x54534b52u /* "RKST" little-endian */
#define RK_STATE_VERSION 1

typedef struct rk_dims {
    uint32_t n_layer;  /* L, 1..RK_MAX_LAYERS */
    uint32_t d_model;  /* D, channels of the residual stream, a multiple of 8 */
    uint32_t n_feat;   /* F, input features per sample */
    uint32_t n_horizon;/* H, forecast steps ahead */
    uint32_t n_quant;  /* Q, odd, 1..RK_MAX_QUANT; the middle one is the median */
    uint32_t ffn_mult; /* channel-mixing hidden width = ffn_mult * D (4 in RWKV-4) */
    uint32_t n_medium; /* RRWKV mediums per layer, 0 (off) or 2..RK_MAX_MEDIUM */
    uint32_t med_dim;  /* r, floats per medium, 1..RK_MAX_MED_DIM (0 when off) */
} rk_dims;

/*
 * RRWKV mediums (Wang 2023, arXiv 2306.05176), here as a per-series seasonal
 * memory: each layer keeps n_medium summaries of r floats, one per part of
 * the day. A sample writes a summary of its layer input into its part's
 * medium (an exponentially weighted mean over days) and, before that, looks
 * back on two mediums (its own part and the next one, i.e. what this and
 * the coming part of the day looked like before):
 *   s  = Pm xa                  xa = ln1(x), Pm (r, D)
 *   c  = [m[rd0], m[rd1]]       (2r) before the write; a slot < 0 reads 0
 *   m[wr] += alpha (s - m[wr])  when wr >= 0
 *   x1 = x + Wo (r * wkv) + Um c            Um (D, 2r)
 * The medium is written from the layer's input, so within a layer nothing
 * depends on its own output: the trainer keeps its sequence form. Which
 * medium a sample reads and writes, and alpha, come from its timestamp
 * (features.h: ft_medium_slot).
 */
typedef struct rk_mslot {
    int16_t rd0, rd1; /* mediums read (this part of the day, the next), -1 = none */
    int16_t wr;       /* medium written, -1 = none */
    float alpha;      /* weight of this sample in m[wr], (0, 1] */
} rk_mslot;

/* Everything the file carries besides tensors. */
typedef struct rk_meta {
    float quantiles[RK_MAX_QUANT];    /* (Q) quantile levels, ascending, e.g. 0.1 0.5 0.9 */
    uint32_t feat_kind;               /* featurizer identity/version (features.h) */
    float feat_param[RK_FEAT_PARAMS]; /* featurizer settings (features.h) */
    uint64_t seed;                    /* seed of the random init */
    char info[RK_INFO_LEN];           /* training metadata, free text, NUL-terminated */
} rk_meta;

typedef struct rk_layer_params {
    float *ln1_w, *ln1_b;               /* (D) */
    float *att_mu_k, *att_mu_v, *att_mu_r; /* (D) token-shift mix, 1 = current token */
    float *att_decay;                   /* (D) w = -exp(decay) */
    float *att_first;                   /* (D) u, bonus of the current key */
    float *att_wk, *att_wv, *att_wr;    /* (D, D) */
    float *att_wo;                      /* (D, D) */
    float *ln2_w, *ln2_b;               /* (D) */
    float *ffn_mu_k, *ffn_mu_r;         /* (D) */
    float *ffn_wk;                      /* (M, D), M = ffn_mult*D */
    float *ffn_wv;                      /* (D, M) */
    float *ffn_wr;                      /* (D, D) */
    float *med_p;                       /* (r, D) medium summary, NULL without mediums */
    float *med_u;                       /* (D, 2r) medium look-back, NULL without mediums */
} rk_layer_params;

/* Named views into one contiguous float block, in file order. */
typedef struct rk_params {
    float *in_w;   /* (D, F) */
    float *in_b;   /* (D) */
    float *ln0_w, *ln0_b; /* (D) */
    rk_layer_params layer[RK_MAX_LAYERS];
    float *lnout_w, *lnout_b; /* (D) */
    float *head_w; /* (H*Q, D) */
    float *head_b; /* (H*Q) */
} rk_params;

/* One row of the tensor table: name as in shared/golden ("blocks.0.att.Wk"). */
typedef struct rk_tensor_info {
    char name[40];     /* NUL-terminated */
    uint32_t ndim;     /* 1 or 2 */
    uint32_t shape[2]; /* rows, cols (cols = 1 for vectors) */
    size_t offset;     /* in floats from the start of the block */
    size_t count;      /* floats */
} rk_tensor_info;

typedef struct rk_model {
    rk_dims dims;   /* shape */
    rk_meta meta;   /* settings and metadata stored with the weights */
    size_t n_param; /* floats in w */
    float *w;       /* (n_param) all parameters, owned */
    rk_params p;    /* views into w */
    float *packed;  /* inference copy: transposed matrices etc., owned, built by rk_model_prepare */
    uint64_t hash;  /* content hash of dims, meta and w; set by rk_model_prepare/load */
} rk_model;

/* Returns RC_OK when d is a shape this code can run, else RC_ERR_SHAPE. */
rc_err rk_dims_check(const rk_dims *d);
/* Default dims: L=2, D=64, F=ft default, H=48, Q=3, ffn_mult=4, no mediums
 * (they did not beat seed-to-seed noise: bench/RESULTS.md, the ablation). */
rk_dims rk_dims_default(uint32_t n_feat);

/* Total parameter floats for d. */
size_t rk_param_count(const rk_dims *d);
/* Points p's tensors into base (rk_param_count floats, borrowed). Used for
 * weights, gradients and optimizer moments alike so they share one layout. */
void rk_params_point(rk_params *p, const rk_dims *d, float *base);
/* Fills up to max rows of the tensor table; returns the number of tensors. */
int rk_tensor_table(const rk_dims *d, rk_tensor_info *out, int max);

/* New model with zeroed weights and meta (quantiles 0.1/0.5/0.9 when Q=3,
 * evenly spaced otherwise). NULL with *err on failure. Free with rk_model_free. */
rk_model *rk_model_new(const rk_dims *d, rc_err *err);
/* Seeded random init (deterministic for a seed across runs and machines),
 * scaled like RWKV-4's init: decays spread per channel, mu in (0,1). Calls prepare. */
void rk_model_init_random(rk_model *m, uint64_t seed);
/* Recomputes the packed copy and hash after m->w or m->meta changed.
 * Returns RC_ERR_NOMEM only on the first call (later calls reuse the buffer). */
rc_err rk_model_prepare(rk_model *m);
void rk_model_free(rk_model *m);

/*
 * Weights file I/O. Load validates magic, version range, dims, sizes and the
 * content hash; on failure returns NULL, sets *err and writes a one-line reason
 * naming the path into errbuf (errlen bytes, may be NULL).
 */
rk_model *rk_model_load(const char *path, rc_err *err, char *errbuf, size_t errlen);
rc_err rk_model_save(const rk_model *m, const char *path);
/* The same format in memory. save_mem returns the exact size when buf is NULL. */
size_t rk_model_save_mem(const rk_model *m, uint8_t *buf, size_t cap);
rk_model *rk_model_load_mem(const uint8_t *buf, size_t len, rc_err *err, char *errbuf, size_t errlen);

/* Per-series recurrent state: per layer ffn_xx, att_xx, aa, bb, pp (D each),
 * then, with mediums, per layer n_medium * r floats. */
size_t rk_state_len(const rk_dims *d); /* floats: 5 L D + L n_medium r */
void rk_state_init(const rk_model *m, float *state);
/* Blob: magic, version, L, D, model hash, rk_state_len float32 LE. Size in bytes: */
size_t rk_state_blob_size(const rk_dims *d);
/* Writes the blob to buf (rk_state_blob_size bytes). */
void rk_state_save(const rk_model *m, const float *state, uint8_t *buf);
/* RC_ERR_FORMAT (magic/size), RC_ERR_VERSION, RC_ERR_SHAPE, RC_ERR_MODEL
 * (saved under another model hash). state is untouched on failure. */
rc_err rk_state_load(const rk_model *m, float *state, const uint8_t *buf, size_t len);

/* Inference workspace for batches of up to max_batch series. */
typedef struct rk_ws rk_ws;
rk_ws *rk_ws_new(const rk_model *m, int max_batch, rc_err *err);
void rk_ws_free(rk_ws *ws);
int rk_ws_max_batch(const rk_ws *ws);

/*
 * Steps B series (1 <= B <= max_batch) one sample each, together: every
 * weight matrix is streamed once per batch (matrix-matrix products).
 *   feat   (B, F) input features, row-major
 *   states B pointers to distinct per-series states, updated in place
 *   slots  (B) medium slots of the samples (models with mediums), or NULL:
 *          then no medium is read or written
 *   out    (B, H*Q) quantile forecasts in normalized space (after
 *          rk_head_quantiles), may be NULL to skip the head
 */
void rk_step_batch(const rk_model *m, rk_ws *ws, int B, const float *feat, const rk_mslot *slots,
                   float *const *states, float *out);
/* The same for one series; equals rk_step_batch with B = 1. */
void rk_step(const rk_model *m, rk_ws *ws, const float *feat, const rk_mslot *slot, float *state,
             float *out);

/*
 * The block stack alone (ln0, L blocks, ln_out), as pinned by shared/golden:
 *   x  (B, D) input already projected to D; overwritten with ln_out's output
 *   blocks_out (L, B, D) residual stream after each block, may be NULL
 */
void rk_blocks_batch(const rk_model *m, rk_ws *ws, int B, float *x,
                     float *const *states, float *blocks_out);

/*
 * Maps raw head outputs o (H*Q, horizon-major) to monotone quantiles q:
 * the middle quantile is o itself; outer ones step away from it by
 * softplus(o), so lo <= median <= hi by construction. q may alias o.
 */
void rk_head_quantiles(float *q, const float *o, int H, int Q);

/* Multiply-adds of one step for one series (for FLOP accounting: 2 per MAC). */
double rk_macs_per_step(const rk_dims *d);

#endif
