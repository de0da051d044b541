/*
 * rwkv_ref.c: parallel-form double-precision reference of the network (tests only).
 *
 * SPDX-License-Identifier: MIT
 */
#include "tests/unit/rwkv_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void ln(double *y, const double *x, const float *w, const float *b, int n) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    double inv = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

/* y (N) = W (N, K) x (K) */
static void matvec(double *y, const float *W, const double *x, int N, int K) {
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)W[(size_t)n * K + k] * x[k];
        y[n] = s;
    }
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* x (T, D) in place: runs ln0, all blocks and ln_out over the whole sequence. */
static int blocks_seq(const rk_model *m, int T, double *x) {
    const rk_params *p = &m->p;
    int D = (int)m->dims.d_model, M = (int)(m->dims.ffn_mult * m->dims.d_model);
    size_t TD = (size_t)T * D;
    double *xa = malloc(TD * sizeof(double)), *k = malloc(TD * sizeof(double));
    double *v = malloc(TD * sizeof(double)), *r = malloc(TD * sizeof(double));
    double *tmp = malloc((size_t)(M + 2 * D) * sizeof(double)), *hid = malloc((size_t)M * sizeof(double));
    if (!xa || !k || !v || !r || !tmp || !hid) {
        free(xa); free(k); free(v); free(r); free(tmp); free(hid);
        return -1;
    }
    for (int t = 0; t < T; t++) ln(x + (size_t)t * D, x + (size_t)t * D, p->ln0_w, p->ln0_b, D);
    for (uint32_t l = 0; l < m->dims.n_layer; l++) {
        const rk_layer_params *L = &p->layer[l];
        /* Time mixing over the whole sequence. */
        for (int t = 0; t < T; t++) ln(xa + (size_t)t * D, x + (size_t)t * D, L->ln1_w, L->ln1_b, D);
        for (int t = 0; t < T; t++) {
            double *xk = tmp, *xv = tmp + D, *xr = tmp + 2 * D;
            for (int i = 0; i < D; i++) {
                double cur = xa[(size_t)t * D + i], prev = t ? xa[(size_t)(t - 1) * D + i] : 0.0;
                xk[i] = cur * L->att_mu_k[i] + prev * (1.0 - L->att_mu_k[i]);
                xv[i] = cur * L->att_mu_v[i] + prev * (1.0 - L->att_mu_v[i]);
                xr[i] = cur * L->att_mu_r[i] + prev * (1.0 - L->att_mu_r[i]);
            }
            matvec(k + (size_t)t * D, L->att_wk, xk, D, D);
            matvec(v + (size_t)t * D, L->att_wv, xv, D, D);
            matvec(r + (size_t)t * D, L->att_wr, xr, D, D);
        }
        for (int t = 0; t < T; t++) {
            double *y = tmp;
            for (int c = 0; c < D; c++) {
                double w = -exp((double)L->att_decay[c]), u = L->att_first[c];
                double num = exp(u + k[(size_t)t * D + c]) * v[(size_t)t * D + c];
                double den = exp(u + k[(size_t)t * D + c]);
                for (int i = 0; i < t; i++) {
                    double e = exp((t - 1 - i) * w + k[(size_t)i * D + c]);
                    num += e * v[(size_t)i * D + c];
                    den += e;
                }
                y[c] = sigm(r[(size_t)t * D + c]) * num / den;
            }
            double *o = tmp + D;
            matvec(o, L->att_wo, y, D, D);
            for (int c = 0; c < D; c++) x[(size_t)t * D + c] += o[c];
        }
        /* Channel mixing. */
        for (int t = 0; t < T; t++) ln(xa + (size_t)t * D, x + (size_t)t * D, L->ln2_w, L->ln2_b, D);
        for (int t = 0; t < T; t++) {
            double *xk = tmp, *xr = tmp + D, *o = tmp + 2 * D;
            for (int i = 0; i < D; i++) {
                double cur = xa[(size_t)t * D + i], prev = t ? xa[(size_t)(t - 1) * D + i] : 0.0;
                xk[i] = cur * L->ffn_mu_k[i] + prev * (1.0 - L->ffn_mu_k[i]);
                xr[i] = cur * L->ffn_mu_r[i] + prev * (1.0 - L->ffn_mu_r[i]);
            }
            matvec(hid, L->ffn_wk, xk, M, D);
            for (int i = 0; i < M; i++) hid[i] = hid[i] > 0 ? hid[i] * hid[i] : 0.0;
            /* o holds D values; reuse k's row t as scratch for the gate. */
            matvec(o, L->ffn_wv, hid, D, M);
            double *g = k + (size_t)t * D;
            matvec(g, L->ffn_wr, xr, D, D);
            for (int c = 0; c < D; c++) x[(size_t)t * D + c] += sigm(g[c]) * o[c];
        }
    }
    for (int t = 0; t < T; t++) ln(x + (size_t)t * D, x + (size_t)t * D, p->lnout_w, p->lnout_b, D);
    free(xa); free(k); free(v); free(r); free(tmp); free(hid);
    return 0;
}

int rk_ref_blocks(const rk_model *m, int T, const double *x, double *y) {
    memcpy(y, x, (size_t)T * m->dims.d_model * sizeof(double));
    return blocks_seq(m, T, y);
}

static double softplus(double x) { return x > 30 ? x : log1p(exp(x)); }

int rk_ref_forward(const rk_model *m, int T, const float *feat, double *out) {
    const rk_dims *d = &m->dims;
    int D = (int)d->d_model, F = (int)d->n_feat, H = (int)d->n_horizon, Q = (int)d->n_quant;
    double *x = malloc((size_t)T * D * sizeof(double)), *f = malloc((size_t)F * sizeof(double));
    double *o = malloc((size_t)H * Q * sizeof(double));
    if (!x || !f || !o) {
        free(x); free(f); free(o);
        return -1;
    }
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < F; i++) f[i] = feat[(size_t)t * F + i];
        matvec(x + (size_t)t * D, m->p.in_w, f, D, F);
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] += m->p.in_b[i];
    }
    int rc = blocks_seq(m, T, x);
    for (int t = 0; rc == 0 && t < T; t++) {
        matvec(o, m->p.head_w, x + (size_t)t * D, H * Q, D);
        double *q = out + (size_t)t * H * Q;
        for (int h = 0; h < H; h++) {
            int mid = Q / 2;
            double *oh = o + (size_t)h * Q, *qh = q + (size_t)h * Q;
            for (int j = 0; j < Q; j++) oh[j] += m->p.head_b[h * Q + j];
            qh[mid] = oh[mid];
            for (int j = mid + 1; j < Q; j++) qh[j] = qh[j - 1] + softplus(oh[j]);
            for (int j = mid - 1; j >= 0; j--) qh[j] = qh[j + 1] - softplus(oh[j]);
        }
    }
    free(x); free(f); free(o);
    return rc;
}
