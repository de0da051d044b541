/*
 * rwkv_step.c: the inference kernels of the RWKV-4 network: weight packing,
 * the batched GEMM, LayerNorm, the numerically stable WKV, and the step.
 *
 * Data layout. A batch of B series is processed in chunks of at most
 * RK_CHUNK rows; each chunk runs the whole network before the next starts,
 * so its activations (rows x D floats per buffer) stay in L1/L2 while every
 * weight panel is streamed once per chunk. Weight matrices W (N, K) are
 * packed at prepare time into panels of RK_NR = 16 output columns:
 * panel[j][k][c] = W[16 j + c][k], zero-padded, so the micro-kernel reads
 * the weights strictly sequentially and a panel (K x 16 floats, 4-16 KB)
 * stays in L1 while all rows of the chunk go past it.
 *
 * The micro-kernel computes a 6 x 16 tile of C with 12 accumulators of 8
 * floats (GCC vector extensions; FMA when the target has it), the shape
 * that fits AVX2's 16 registers. With AVX-512 (32 registers of 16 floats)
 * it is an 8 x 32 tile (two panels, 16 accumulators: 10 loads per 16 FMAs,
 * so the two 512-bit FMA pipes of AMD Zen 5 stay fed; a 12 x 16 tile needs
 * 13 loads per 12 FMAs and waited on the load ports), and 1-3 rows (a single
 * series) take 4 panels at once so they still have 4-12 independent FMA
 * chains. Every output element is its init
 * plus the sum over k in k order whatever the tile, so batched and
 * single-series results are bit-identical.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "model/rwkv.h"
#include "model/rwkv_internal.h"

#define RK_CHUNK 96 /* rows per chunk: a multiple of the tiles' 3, 6, 8 and 12 rows */
#if defined(__AVX512F__)
/* Rows of the one-panel tile (the last 16 columns of an odd panel count). */
#define RK_MR 12
#elif defined(__AVX__)
#define RK_MR 6 /* 12 accumulators of 8 floats + 2 panel rows + 1 broadcast: 15 of 16 ymm */
#else
#define RK_MR 3 /* SSE: 12 accumulators of 4 floats + 4 panel vectors: 16 xmm (+1 spill) */
#endif

typedef float v8 __attribute__((vector_size(32)));

static inline v8 v8_load(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The float vector the element-wise kernels and, without AVX-512, the GEMM
 * tile are written on: as wide as the target's float registers, up to 8
 * (AVX: 8, plain SSE: 4). 8-float vectors on SSE are register pairs that
 * GCC splits clumsily: the tile spilled its accumulators and a batched step
 * was 25x slower than with AVX2. */
#if defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vfi __attribute__((vector_size(VW * 4)));

static inline vf vf_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vf_store(float *p, vf v) { memcpy(p, &v, sizeof v); }

#if defined(__AVX512F__)
typedef float v16 __attribute__((vector_size(64)));
static inline v16 v16_load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v16_store(float *p, v16 v) { memcpy(p, &v, sizeof v); }
#endif

/* ---- packing ---- */

void rk_pack_layout(const rk_dims *d, rk_pack *pk) {
    size_t D = d->d_model, F = d->n_feat, M = (size_t)d->ffn_mult * D;
    size_t HQ = (size_t)d->n_horizon * d->n_quant;
    size_t off = 0;
#define PUT(dst, n) do { (dst) = off; off += rk_pad(n); } while (0)
    memset(pk, 0, sizeof *pk);
    PUT(pk->in_w, F * rk_pad(D));
    PUT(pk->in_b, D);
    for (uint32_t l = 0; l < d->n_layer; l++) {
        rk_pack_layer *L = &pk->layer[l];
        PUT(L->wk, D * rk_pad(D));
        PUT(L->wv, D * rk_pad(D));
        PUT(L->wr, D * rk_pad(D));
        PUT(L->wo, D * rk_pad(D));
        PUT(L->fk, D * rk_pad(M));
        PUT(L->fv, M * rk_pad(D));
        PUT(L->fr, D * rk_pad(D));
        PUT(L->wdecay, D);
        PUT(L->omu_ak, D);
        PUT(L->omu_av, D);
        PUT(L->omu_ar, D);
        PUT(L->omu_fk, D);
        PUT(L->omu_fr, D);
    }
    PUT(pk->head_w, D * rk_pad(HQ));
    PUT(pk->head_b, HQ);
#undef PUT
    pk->total = off;
}

/*
 * The head's packed output order: column c computes raw output
 * head_src(c) (horizon-major o[h Q + q]): the H medians first, then the
 * H (Q - 1) outer outputs horizon by horizon. The outer ones, and only
 * they, go through softplus, so they form one contiguous block.
 */
static size_t head_src(size_t c, size_t H, size_t Q) {
    size_t mid = Q / 2;
    if (c < H) return c * Q + mid;
    c -= H;
    size_t h = c / (Q - 1), j = c % (Q - 1);
    return h * Q + (j < mid ? j : j + 1);
}

/* W is (N, K) row-major; dst receives pad(N)/16 panels of K x 16. Output
 * column n is W's row n, or head_src(n) when head is given (N = H Q). */
static void pack_matrix(float *dst, const float *W, size_t N, size_t K, const rk_dims *head) {
    size_t Np = rk_pad(N);
    for (size_t j = 0; j < Np; j += RK_NR)
        for (size_t k = 0; k < K; k++)
            for (size_t c = 0; c < RK_NR; c++) {
                size_t n = j + c;
                if (n < N && head) n = head_src(n, head->n_horizon, head->n_quant);
                *dst++ = n < N ? W[n * K + k] : 0.0f;
            }
}

static void pack_vector(float *dst, const float *v, size_t n, const rk_dims *head) {
    memset(dst, 0, rk_pad(n) * sizeof(float));
    for (size_t i = 0; i < n; i++) dst[i] = v[head ? head_src(i, head->n_horizon, head->n_quant) : i];
}

static void pack_one_minus(float *dst, const float *mu, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = 1.0f - mu[i];
}

void rk_pack_fill(const rk_model *m) {
    const rk_dims *d = &m->dims;
    size_t D = d->d_model, F = d->n_feat, M = (size_t)d->ffn_mult * D;
    size_t HQ = (size_t)d->n_horizon * d->n_quant;
    rk_pack pk;
    rk_pack_layout(d, &pk);
    float *P = m->packed;
    memset(P, 0, pk.total * sizeof(float));
    pack_matrix(P + pk.in_w, m->p.in_w, D, F, NULL);
    pack_vector(P + pk.in_b, m->p.in_b, D, NULL);
    for (uint32_t l = 0; l < d->n_layer; l++) {
        const rk_layer_params *L = &m->p.layer[l];
        const rk_pack_layer *Q = &pk.layer[l];
        pack_matrix(P + Q->wk, L->att_wk, D, D, NULL);
        pack_matrix(P + Q->wv, L->att_wv, D, D, NULL);
        pack_matrix(P + Q->wr, L->att_wr, D, D, NULL);
        pack_matrix(P + Q->wo, L->att_wo, D, D, NULL);
        pack_matrix(P + Q->fk, L->ffn_wk, M, D, NULL);
        pack_matrix(P + Q->fv, L->ffn_wv, D, M, NULL);
        pack_matrix(P + Q->fr, L->ffn_wr, D, D, NULL);
        for (size_t i = 0; i < D; i++) P[Q->wdecay + i] = -expf(L->att_decay[i]);
        pack_one_minus(P + Q->omu_ak, L->att_mu_k, D);
        pack_one_minus(P + Q->omu_av, L->att_mu_v, D);
        pack_one_minus(P + Q->omu_ar, L->att_mu_r, D);
        pack_one_minus(P + Q->omu_fk, L->ffn_mu_k, D);
        pack_one_minus(P + Q->omu_fr, L->ffn_mu_r, D);
    }
    pack_matrix(P + pk.head_w, m->p.head_w, HQ, D, d);
    pack_vector(P + pk.head_b, m->p.head_b, HQ, d);
}

rc_err rk_model_prepare(rk_model *m) {
    if (!m->packed) {
        rk_pack pk;
        rk_pack_layout(&m->dims, &pk);
        m->packed = rc_aligned_alloc(64, pk.total * sizeof(float));
        if (!m->packed) return RC_ERR_NOMEM;
    }
    rk_pack_fill(m);
    m->hash = rk_content_hash(m);
    return RC_OK;
}

/* ---- workspace ---- */

#define RK_MC (2 * RK_MAX_MED_DIM) /* row stride of ws->mc */

struct rk_ws {
    int max_batch;       /* rows the caller may pass per call */
    int rows;            /* rows per chunk, min(max_batch, RK_CHUNK) */
    size_t ldd;          /* row stride of D-wide buffers, pad(D) */
    size_t ldm;          /* row stride of the ffn hidden buffer, pad(M) */
    size_t ldo;          /* row stride of the head output, pad(H*Q) */
    float *x;            /* (rows, ldd) residual stream */
    float *xa;           /* (rows, ldd) LayerNorm output */
    float *xk, *xv, *xr; /* (rows, ldd) token-shifted inputs */
    float *k, *v, *r;    /* (rows, ldd) projections */
    float *h;            /* (rows, ldm) ffn hidden */
    float *o;            /* (rows, ldo) head output */
    float *mc;           /* (rows, RK_MC) medium look-back c of each row */
    float *block;        /* the one allocation all of the above point into */
};

rk_ws *rk_ws_new(const rk_model *m, int max_batch, rc_err *err) {
    rk_ws *ws = NULL;
    rc_err e = RC_ERR_SHAPE;
    if (max_batch < 1) goto err;
    e = RC_ERR_NOMEM;
    ws = rc_calloc(1, sizeof *ws);
    if (!ws) goto err;
    const rk_dims *d = &m->dims;
    ws->max_batch = max_batch;
    ws->rows = max_batch < RK_CHUNK ? max_batch : RK_CHUNK;
    ws->ldd = rk_pad(d->d_model);
    ws->ldm = rk_pad((size_t)d->ffn_mult * d->d_model);
    ws->ldo = rk_pad((size_t)d->n_horizon * d->n_quant);
    size_t R = (size_t)ws->rows;
    size_t total = R * (8 * ws->ldd + ws->ldm + ws->ldo + RK_MC);
    ws->block = rc_aligned_alloc(64, total * sizeof(float));
    if (!ws->block) goto err;
    memset(ws->block, 0, total * sizeof(float));
    float *q = ws->block;
    float **d_bufs[] = {&ws->x, &ws->xa, &ws->xk, &ws->xv, &ws->xr, &ws->k, &ws->v, &ws->r};
    for (size_t i = 0; i < 8; i++) {
        *d_bufs[i] = q;
        q += R * ws->ldd;
    }
    ws->h = q;
    q += R * ws->ldm;
    ws->o = q;
    q += R * ws->ldo;
    ws->mc = q;
    if (err) *err = RC_OK;
    return ws;
err:
    rk_ws_free(ws);
    if (err) *err = e;
    return NULL;
}

void rk_ws_free(rk_ws *ws) {
    if (!ws) return;
    rc_free(ws->block);
    rc_free(ws);
}

int rk_ws_max_batch(const rk_ws *ws) { return ws->max_batch; }

/* ---- GEMM ---- */

enum { GEMM_SET = 0, GEMM_ADD = 1 };

/*
 * One MR x 16 tile: C[i][0..16) (=|+=) bias + sum_k A[i][k] * P[k][0..16).
 * Always inlined with a constant MR so the accumulators live in registers.
 */
#if defined(__AVX512F__)
/*
 * MR rows x NP panels (16 NP columns): C (=|+=) init + sum_k A[i][k] * P.
 * The FMA pipes are fed only if loads stay below FMAs: each k costs NP
 * panel loads and MR broadcasts for MR * NP FMAs, so 8 x 2 (10 loads, 16
 * FMAs) keeps both 512-bit FMA pipes busy where a 12 x 1 tile (13 loads,
 * 12 FMAs) waits on the load ports. 1-3 rows (a single series) take 4
 * panels so they still have 4-12 independent FMA chains. Every output
 * element is init + sum over k in k order whatever MR and NP, so results
 * are bit-identical across tile shapes (batched = single series).
 */
static inline __attribute__((always_inline)) void
gemm_block(const int MR, const int NP, float *C, size_t ldc, const float *A, size_t lda,
           const float *P, size_t ps, const float *bias, int K, int mode) {
    v16 acc[RK_MR][4];
    for (int i = 0; i < MR; i++)
        for (int p = 0; p < NP; p++) {
            if (mode == GEMM_ADD) acc[i][p] = v16_load(C + i * ldc + p * RK_NR);
            else if (bias) acc[i][p] = v16_load(bias + p * RK_NR);
            else acc[i][p] = (v16){0};
        }
    for (int k = 0; k < K; k++) {
        v16 b[4];
        for (int p = 0; p < NP; p++) b[p] = v16_load(P + p * ps + (size_t)k * RK_NR);
        for (int i = 0; i < MR; i++) {
            float a = A[(size_t)i * lda + k];
            for (int p = 0; p < NP; p++) acc[i][p] += a * b[p];
        }
    }
    for (int i = 0; i < MR; i++)
        for (int p = 0; p < NP; p++) v16_store(C + i * ldc + p * RK_NR, acc[i][p]);
}

/* Rows [0, rows) of an NP-panel column block, MR2 rows at a time; the
 * switch gives every row count a tile with constant MR (registers). */
#define GEMM_ROWS(NP, MR2)                                                                   \
    do {                                                                                     \
        int i_ = 0;                                                                          \
        for (; i_ + (MR2) <= rows; i_ += (MR2))                                              \
            gemm_block((MR2), (NP), C + i_ * ldc + j, ldc, A + i_ * lda, lda, Pj, ps, bj, K, mode); \
        float *Ci_ = C + i_ * ldc + j;                                                       \
        const float *Ai_ = A + i_ * lda;                                                     \
        switch (rows - i_) {                                                                 \
        case 11: if ((MR2) > 11) gemm_block(11, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;      \
        case 10: if ((MR2) > 10) gemm_block(10, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;      \
        case 9: if ((MR2) > 9) gemm_block(9, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 8: if ((MR2) > 8) gemm_block(8, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 7: if ((MR2) > 7) gemm_block(7, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 6: if ((MR2) > 6) gemm_block(6, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 5: if ((MR2) > 5) gemm_block(5, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 4: if ((MR2) > 4) gemm_block(4, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 3: if ((MR2) > 3) gemm_block(3, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 2: if ((MR2) > 2) gemm_block(2, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        case 1: if ((MR2) > 1) gemm_block(1, (NP), Ci_, ldc, Ai_, lda, Pj, ps, bj, K, mode); break;        \
        default: break;                                                                      \
        }                                                                                    \
    } while (0)
#else
#define RK_NV (RK_NR / VW) /* vectors per tile row: 2 with AVX, 4 with SSE */
static inline __attribute__((always_inline)) void
gemm_tile(const int MR, float *C, size_t ldc, const float *A, size_t lda,
          const float *P, const float *bias, int K, int mode) {
    vf acc[RK_MR][RK_NV];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < RK_NV; v++) {
            if (mode == GEMM_ADD) acc[i][v] = vf_load(C + i * ldc + v * VW);
            else if (bias) acc[i][v] = vf_load(bias + v * VW);
            else acc[i][v] = (vf){0};
        }
    /* Unrolled by 4: on AMD Zen 3 (AVX2) the loop's own instructions cost
     * ~5 % of the batched step and ~10 % of the single-series one
     * (rwkv_bench, A/B in alternation). */
    _Pragma("GCC unroll 4") for (int k = 0; k < K; k++) {
        vf b[RK_NV];
        for (int v = 0; v < RK_NV; v++) b[v] = vf_load(P + (size_t)k * RK_NR + v * VW);
        for (int i = 0; i < MR; i++) {
            float a = A[(size_t)i * lda + k];
            for (int v = 0; v < RK_NV; v++) acc[i][v] += a * b[v];
        }
    }
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < RK_NV; v++) vf_store(C + i * ldc + v * VW, acc[i][v]);
}
#endif

/*
 * C (rows x Np, stride ldc) = or += A (rows x K, stride lda) * packed P
 * (+ bias). Loop order: panel outer, rows inner, so each 16-column panel
 * is loaded into L1 once per chunk and reused by every row tile.
 */
static void gemm(float *C, size_t ldc, const float *A, size_t lda, const float *P,
                 const float *bias, int rows, int K, size_t Np, int mode) {
#if defined(__AVX512F__)
    const size_t ps = (size_t)K * RK_NR; /* floats per panel */
    size_t j = 0;
    if (rows < 4) {
        /* A single series (or up to 3): 4 panels at a time. */
        for (; j + 4 * RK_NR <= Np; j += 4 * RK_NR) {
            const float *Pj = P + j * (size_t)K, *bj = bias ? bias + j : NULL;
            GEMM_ROWS(4, 3);
        }
    }
    for (; j + 2 * RK_NR <= Np; j += 2 * RK_NR) {
        const float *Pj = P + j * (size_t)K, *bj = bias ? bias + j : NULL;
        GEMM_ROWS(2, 8);
    }
    for (; j < Np; j += RK_NR) {
        const float *Pj = P + j * (size_t)K, *bj = bias ? bias + j : NULL;
        GEMM_ROWS(1, RK_MR);
    }
#else
    for (size_t j = 0; j < Np; j += RK_NR) {
        const float *Pj = P + j * (size_t)K;
        const float *bj = bias ? bias + j : NULL;
        int i = 0;
        for (; i + RK_MR <= rows; i += RK_MR)
            gemm_tile(RK_MR, C + i * ldc + j, ldc, A + i * lda, lda, Pj, bj, K, mode);
        float *Ci = C + i * ldc + j;
        const float *Ai = A + i * lda;
        switch (rows - i) {
#if RK_MR > 3
        case 5: gemm_tile(5, Ci, ldc, Ai, lda, Pj, bj, K, mode); break;
        case 4: gemm_tile(4, Ci, ldc, Ai, lda, Pj, bj, K, mode); break;
        case 3: gemm_tile(3, Ci, ldc, Ai, lda, Pj, bj, K, mode); break;
#endif
        case 2: gemm_tile(2, Ci, ldc, Ai, lda, Pj, bj, K, mode); break;
        case 1: gemm_tile(1, Ci, ldc, Ai, lda, Pj, bj, K, mode); break;
        default: break;
        }
    }
#endif
}

/* ---- elementwise kernels ----
 *
 * Written on vectors by hand rather than left to the vectorizer: every
 * channel count they see (D, ffn_mult D) is a multiple of 8, so there are
 * no alias checks, remainder loops or if-conversion to hope for, and the
 * selects are bitwise blends that need no FP compare to be "non-trapping".
 * They use vf (above): on SSE a 32-byte vector's integer half (the
 * exponent bits of exp) was split into scalar code, 2x slower than the
 * vectorizer.
 */

static inline vf vf_splat(float x) { return (vf){0} + x; }
/* m ? a : b per lane; m is a comparison result (all ones or all zeros). */
static inline vf vf_sel(vfi m, vf a, vf b) { return (vf)(((vfi)a & m) | ((vfi)b & ~m)); }

/*
 * exp(x) with ~1 ulp error: range reduction x = n ln2 + r and Cephes'
 * degree-6 polynomial on |r| <= ln2/2, assembled as p * 2^n from the
 * exponent bits; n is rounded by adding and subtracting 1.5 * 2^23, which
 * leaves the nearest integer in round-to-nearest mode. exp of anything
 * below -87 is 0 (the WKV relies on exp(-huge) = 0).
 */
static inline vf vf_exp(vf x) {
    vfi under = x < -87.0f;
    vf xc = vf_sel(under, vf_splat(-87.0f), x);
    xc = vf_sel(xc > 88.0f, vf_splat(88.0f), xc);
    vf n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    vf r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = vf_splat(1.9875691500E-4f);
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * (r * r) + r + 1.0f;
    vfi bits = (__builtin_convertvector(n, vfi) + 127) << 23;
    return (vf)((vfi)(p * (vf)bits) & ~under);
}

/*
 * log(1 + y) for y in [0, 1] without forming 1 + y (which would lose y's
 * low bits): log(1+y) = 2 atanh(s), s = y / (2 + y) <= 1/3, summed as the
 * odd series 2 s (1 + s^2/3 + ... + s^16/17), whose truncation error is
 * below 1e-8 relative.
 */
static inline vf vf_log1p_unit(vf y) {
    vf s = y / (2.0f + y), s2 = s * s;
    vf p = vf_splat(1.0f / 17.0f);
    p = p * s2 + 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* softplus(x) = max(x, 0) + log(1 + exp(-|x|)), stable for any x. */
static inline vf vf_softplus(vf x) {
    vfi pos = x > 0.0f;
    vf nax = vf_sel(pos, -x, x);
    return vf_sel(pos, x, vf_splat(0.0f)) + vf_log1p_unit(vf_exp(nax));
}

/*
 * y = LayerNorm(x) * w + b over n channels (n a multiple of 8), population
 * variance, eps 1e-5; y may be x. Two passes (mean, then the centred sum of
 * squares) rather than E[x^2] - mean^2, which cancels for large means.
 */
static void layernorm_forward(float *y, const float *x, const float *w, const float *b, int n) {
    v8 acc = {0};
    for (int i = 0; i < n; i += 8) acc += v8_load(x + i);
    float mean = 0.0f;
    for (int j = 0; j < 8; j++) mean += acc[j];
    mean /= (float)n;
    v8 vacc = {0};
    for (int i = 0; i < n; i += 8) {
        v8 c = v8_load(x + i) - mean;
        vacc += c * c;
    }
    float var = 0.0f;
    for (int j = 0; j < 8; j++) var += vacc[j];
    var /= (float)n;
    float inv = 1.0f / sqrtf(var + 1e-5f);
    for (int i = 0; i < n; i += VW) vf_store(y + i, (vf_load(x + i) - mean) * inv * vf_load(w + i) + vf_load(b + i));
}

/*
 * RWKV's token shift for `cnt` projections at once: out[j] = cur * mu[j] +
 * prev * (1 - mu[j]); then prev = cur for the next step. One pass loads cur
 * and prev once for all of them.
 */
static inline __attribute__((always_inline)) void
token_shift(int cnt, float *const *out, const float *const *mu, const float *const *omu,
            const float *cur, float *prev, int n) {
    for (int i = 0; i < n; i += VW) {
        vf c = vf_load(cur + i), p = vf_load(prev + i);
        for (int j = 0; j < cnt; j++) vf_store(out[j] + i, c * vf_load(mu[j] + i) + p * vf_load(omu[j] + i));
        vf_store(prev + i, c);
    }
}

/*
 * WKV of one series, stable form (state aa, bb, pp; pp is a log-scale
 * running max so no exp ever overflows):
 *   ww = u + k;  p = max(pp, ww);  e1 = exp(pp - p);  e2 = exp(ww - p)
 *   wkv = (e1 aa + e2 v) / (e1 bb + e2)
 *   ww = pp + w; p = max(ww, k);   e1 = exp(ww - p);  e2 = exp(k - p)
 *   aa = e1 aa + e2 v;  bb = e1 bb + e2;  pp = p
 * y = sigmoid(r) * wkv = (e1 aa + e2 v) / ((e1 bb + e2) (1 + exp(-r))),
 * one division instead of two.
 */
static void wkv_forward(float *y, const float *k, const float *v, const float *r, const float *u,
                        const float *w, float *aa, float *bb, float *pp, int n) {
    /* One of e1, e2 is exp(0) = 1 in each half, so each half needs one exp:
     * exp(-|a - b|) for the smaller term. */
    for (int i = 0; i < n; i += VW) {
        vf kk = vf_load(k + i), vv = vf_load(v + i), a = vf_load(aa + i), b = vf_load(bb + i);
        vf q = vf_load(pp + i);
        vf d = q - (vf_load(u + i) + kk);
        vfi neg = d < 0.0f;
        vf ed = vf_exp(vf_sel(neg, d, -d)), one = vf_splat(1.0f);
        vf e1 = vf_sel(neg, ed, one), e2 = vf_sel(neg, one, ed);
        vf num = e1 * a + e2 * vv, den = e1 * b + e2;
        vf_store(y + i, num / (den * (1.0f + vf_exp(-vf_load(r + i)))));
        vf ww = q + vf_load(w + i);
        d = ww - kk;
        neg = d < 0.0f;
        ed = vf_exp(vf_sel(neg, d, -d));
        e1 = vf_sel(neg, ed, one);
        e2 = vf_sel(neg, one, ed);
        vf_store(aa + i, e1 * a + e2 * vv);
        vf_store(bb + i, e1 * b + e2);
        vf_store(pp + i, vf_sel(neg, kk, ww));
    }
}

/* x = max(x, 0)^2, the channel mix's squared ReLU. */
static void relu_square(float *x, int n) {
    for (int i = 0; i < n; i += VW) {
        vf t = vf_load(x + i);
        t = vf_sel(t > 0.0f, t, vf_splat(0.0f));
        vf_store(x + i, t * t);
    }
}

/* x += sigmoid(r) * v = v / (1 + exp(-r)) */
static void gated_add(float *x, const float *r, const float *v, int n) {
    for (int i = 0; i < n; i += VW)
        vf_store(x + i, vf_load(x + i) + vf_load(v + i) / (1.0f + vf_exp(-vf_load(r + i))));
}

/* The scalar softplus for a head whose H * Q is not a multiple of VW: lane 0
 * of the vector one, so every element gets the same value either way. */
static float softplus1(float x) { return vf_softplus(vf_splat(x))[0]; }

/* One horizon's quantiles from its median and the softplus offsets: up[j]
 * for j > mid, down[j] for j < mid, summed outward from the median. The
 * running sums stay in registers: re-reading qh[j -/+ 1] would put a
 * store-to-load forward on every step of the chain. */
static inline void outward_sums(float *qh, float med, const float *up, const float *down, int Q) {
    int mid = Q / 2;
    float acc = med;
    qh[mid] = med;
    for (int j = mid + 1; j < Q; j++) qh[j] = acc = acc + up[j];
    acc = med;
    for (int j = mid - 1; j >= 0; j--) qh[j] = acc = acc - down[j];
}

/* dst[i] = softplus(src[i]) for i < n (dst may be src): vectors, then the scalar tail. */
static void softplus_n(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + VW <= n; i += VW) vf_store(dst + i, vf_softplus(vf_load(src + i)));
    for (; i < n; i++) dst[i] = softplus1(src[i]);
}

void rk_head_quantiles(float *q, const float *o, int H, int Q) {
    int mid = Q / 2;
    float sp[256];
    /* Softplus of a block of raw outputs in one vectorizable pass, then
     * the outward cumulative sums per horizon. */
    int per = (int)(sizeof sp / sizeof sp[0]) / Q;
    for (int h0 = 0; h0 < H; h0 += per) {
        int nh = H - h0 < per ? H - h0 : per;
        const float *ob = o + (size_t)h0 * Q;
        float *qb = q + (size_t)h0 * Q;
        softplus_n(sp, ob, nh * Q);
        for (int h = 0; h < nh; h++) {
            const float *s = sp + (size_t)h * Q;
            outward_sums(qb + (size_t)h * Q, ob[(size_t)h * Q + mid], s, s, Q);
        }
    }
}

/*
 * The same from the packed head's output order (head_src): o[0..H) are the
 * medians, o[H..H Q) the outer outputs, Q - 1 per horizon, which alone go
 * through softplus (in place: o is workspace). Equal, bit for bit, to
 * rk_head_quantiles on the horizon-major outputs.
 */
static void head_quantiles_packed(float *q, float *o, int H, int Q) {
    float *s = o + H;
    softplus_n(s, s, H * (Q - 1));
    for (int h = 0; h < H; h++) {
        const float *sh = s + (size_t)h * (Q - 1);
        outward_sums(q + (size_t)h * Q, o[h], sh - 1, sh, Q);
    }
}

/* ---- the network ---- */

/* State slices of layer l: ffn_xx, att_xx, att_aa, att_bb, att_pp. */
#define ST_FFN_XX 0
#define ST_ATT_XX 1
#define ST_AA 2
#define ST_BB 3
#define ST_PP 4

/*
 * The mediums of one row and layer (rwkv.h): reads the look-back c (2r)
 * from med (n_medium x r, this layer's slice of the state), then writes
 * the summary Pm xa into the slot's medium. The r x D summary is a few
 * hundred multiply-adds, next to the ~50k of a layer: plain loops.
 */
static void medium_rw(float *c, float *med, const rk_mslot *sl, const float *Pm, const float *xa,
                      int r, int D) {
    for (int j = 0; j < r; j++) {
        c[j] = sl->rd0 >= 0 ? med[sl->rd0 * r + j] : 0.0f;
        c[r + j] = sl->rd1 >= 0 ? med[sl->rd1 * r + j] : 0.0f;
    }
    if (sl->wr < 0) return;
    float *mw = med + sl->wr * r;
    for (int j = 0; j < r; j++) {
        const float *pj = Pm + (size_t)j * D;
        float acc = 0.0f;
        for (int i = 0; i < D; i++) acc += pj[i] * xa[i];
        mw[j] += sl->alpha * (acc - mw[j]);
    }
}

/* x += Um c, Um (D, 2r) row-major. */
static void medium_add(float *x, const float *Um, const float *c, int r2, int D) {
    for (int i = 0; i < D; i++) {
        const float *u = Um + (size_t)i * r2;
        float acc = 0.0f;
        for (int j = 0; j < r2; j++) acc += u[j] * c[j];
        x[i] += acc;
    }
}

/* Runs ln0, the blocks and ln_out on one chunk; ws->x holds its input rows.
 * slots: the rows' medium slots, or NULL (no medium read or written). */
static void blocks_chunk(const rk_model *m, rk_ws *ws, const rk_pack *pk, int R, const rk_mslot *slots,
                         float *const *states, float *blocks_out, size_t out_stride) {
    const rk_dims *d = &m->dims;
    const int D = (int)d->d_model, M = (int)(d->ffn_mult * d->d_model);
    const size_t ldd = ws->ldd, ldm = ws->ldm;
    const float *P = m->packed;
    const rk_params *p = &m->p;
    const int r = (int)d->med_dim, med = d->n_medium && slots;
    const size_t med0 = (size_t)d->n_layer * 5 * D;

    for (int b = 0; b < R; b++) layernorm_forward(ws->x + b * ldd, ws->x + b * ldd, p->ln0_w, p->ln0_b, D);

    for (uint32_t l = 0; l < d->n_layer; l++) {
        const rk_layer_params *L = &p->layer[l];
        const rk_pack_layer *Q = &pk->layer[l];
        size_t soff = (size_t)l * 5 * D;
        const float *const att_mu[3] = {L->att_mu_k, L->att_mu_v, L->att_mu_r};
        const float *const att_omu[3] = {P + Q->omu_ak, P + Q->omu_av, P + Q->omu_ar};
        const float *const ffn_mu[2] = {L->ffn_mu_k, L->ffn_mu_r};
        const float *const ffn_omu[2] = {P + Q->omu_fk, P + Q->omu_fr};

        /* Time mixing: token shift per series, then three GEMMs over the chunk.
         * States of many series do not fit in cache; fetching the next
         * series' layer slice (5 D floats) early hides the miss latency. */
        for (int b = 0; b < R; b++) {
            if (b + 1 < R) {
                const char *nx = (const char *)(states[b + 1] + soff);
                for (size_t off = 0; off < 5 * (size_t)D * sizeof(float); off += 64) __builtin_prefetch(nx + off, 1);
            }
            float *xa = ws->xa + b * ldd, *prev = states[b] + soff + ST_ATT_XX * D;
            layernorm_forward(xa, ws->x + b * ldd, L->ln1_w, L->ln1_b, D);
            float *const out[3] = {ws->xk + b * ldd, ws->xv + b * ldd, ws->xr + b * ldd};
            token_shift(3, out, att_mu, att_omu, xa, prev, D);
            if (med)
                medium_rw(ws->mc + b * RK_MC, states[b] + med0 + (size_t)l * d->n_medium * r, &slots[b],
                          L->med_p, xa, r, D);
        }
        gemm(ws->k, ldd, ws->xk, ldd, P + Q->wk, NULL, R, D, ldd, GEMM_SET);
        gemm(ws->v, ldd, ws->xv, ldd, P + Q->wv, NULL, R, D, ldd, GEMM_SET);
        gemm(ws->r, ldd, ws->xr, ldd, P + Q->wr, NULL, R, D, ldd, GEMM_SET);
        for (int b = 0; b < R; b++) {
            float *s = states[b] + soff;
            wkv_forward(ws->xa + b * ldd, ws->k + b * ldd, ws->v + b * ldd, ws->r + b * ldd,
                        L->att_first, P + Q->wdecay, s + ST_AA * D, s + ST_BB * D, s + ST_PP * D, D);
        }
        gemm(ws->x, ldd, ws->xa, ldd, P + Q->wo, NULL, R, D, ldd, GEMM_ADD);
        if (med)
            for (int b = 0; b < R; b++) medium_add(ws->x + b * ldd, L->med_u, ws->mc + b * RK_MC, 2 * r, D);

        /* Channel mixing. */
        for (int b = 0; b < R; b++) {
            float *xf = ws->xa + b * ldd, *prev = states[b] + soff + ST_FFN_XX * D;
            layernorm_forward(xf, ws->x + b * ldd, L->ln2_w, L->ln2_b, D);
            float *const out[2] = {ws->xk + b * ldd, ws->xr + b * ldd};
            token_shift(2, out, ffn_mu, ffn_omu, xf, prev, D);
        }
        gemm(ws->h, ldm, ws->xk, ldd, P + Q->fk, NULL, R, D, ldm, GEMM_SET);
        for (int b = 0; b < R; b++) relu_square(ws->h + b * ldm, M);
        gemm(ws->v, ldd, ws->h, ldm, P + Q->fv, NULL, R, M, ldd, GEMM_SET);
        gemm(ws->r, ldd, ws->xr, ldd, P + Q->fr, NULL, R, D, ldd, GEMM_SET);
        for (int b = 0; b < R; b++) gated_add(ws->x + b * ldd, ws->r + b * ldd, ws->v + b * ldd, D);

        if (blocks_out)
            for (int b = 0; b < R; b++)
                memcpy(blocks_out + l * out_stride + (size_t)b * D, ws->x + b * ldd, (size_t)D * sizeof(float));
    }
    for (int b = 0; b < R; b++) layernorm_forward(ws->x + b * ldd, ws->x + b * ldd, p->lnout_w, p->lnout_b, D);
}

void rk_blocks_batch(const rk_model *m, rk_ws *ws, int B, float *x, float *const *states, float *blocks_out) {
    rk_pack pk;
    rk_pack_layout(&m->dims, &pk);
    const int D = (int)m->dims.d_model;
    for (int c0 = 0; c0 < B; c0 += ws->rows) {
        int R = B - c0 < ws->rows ? B - c0 : ws->rows;
        for (int b = 0; b < R; b++)
            memcpy(ws->x + b * ws->ldd, x + (size_t)(c0 + b) * D, (size_t)D * sizeof(float));
        blocks_chunk(m, ws, &pk, R, NULL, states + c0, blocks_out ? blocks_out + (size_t)c0 * D : NULL,
                     (size_t)B * D);
        for (int b = 0; b < R; b++)
            memcpy(x + (size_t)(c0 + b) * D, ws->x + b * ws->ldd, (size_t)D * sizeof(float));
    }
}

void rk_step_batch(const rk_model *m, rk_ws *ws, int B, const float *feat, const rk_mslot *slots,
                   float *const *states, float *out) {
    rk_pack pk;
    rk_pack_layout(&m->dims, &pk);
    const rk_dims *d = &m->dims;
    const int F = (int)d->n_feat, D = (int)d->d_model;
    const int H = (int)d->n_horizon, Q = (int)d->n_quant, HQ = H * Q;
    const float *P = m->packed;
    for (int c0 = 0; c0 < B; c0 += ws->rows) {
        int R = B - c0 < ws->rows ? B - c0 : ws->rows;
        gemm(ws->x, ws->ldd, feat + (size_t)c0 * F, (size_t)F, P + pk.in_w, P + pk.in_b, R, F, ws->ldd, GEMM_SET);
        blocks_chunk(m, ws, &pk, R, slots ? slots + c0 : NULL, states + c0, NULL, 0);
        if (!out) continue;
        gemm(ws->o, ws->ldo, ws->x, ws->ldd, P + pk.head_w, P + pk.head_b, R, D, ws->ldo, GEMM_SET);
        for (int b = 0; b < R; b++) head_quantiles_packed(out + (size_t)(c0 + b) * HQ, ws->o + b * ws->ldo, H, Q);
    }
}

void rk_step(const rk_model *m, rk_ws *ws, const float *feat, const rk_mslot *slot, float *state,
             float *out) {
    float *states[1] = {state};
    rk_step_batch(m, ws, 1, feat, slot, states, out);
}
