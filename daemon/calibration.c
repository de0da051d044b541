/*
 * calibration.c: online interval calibration (see calibration.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/calibration.h"

#include <math.h>
#include <string.h>

#define CA_MAGIC 0x31414343u /* "CCA1" little-endian */
#define CA_VERSION 2u /* 2: the median's shrinkage statistics, warm-up counts */

/* Updates after which the warm-up step CA_ETA0 / sqrt(n) is down to the
 * smallest step, CA_ETA (the counts saturate there). */
#define CA_WARM_N ((uint32_t)((CA_ETA0 / CA_ETA) * (CA_ETA0 / CA_ETA)))

/* The step once warm, per representative horizon: one-step outcomes are
 * nearly independent, so they may move the factors faster; an h-step
 * outcome overlaps the h - 1 before it (they share most of their path), so
 * its evidence is worth less per sample and its step is smaller, which
 * keeps the long-horizon intervals from wobbling. */
static const float ca_eta[CA_NREP] = {CA_ETA1, CA_ETA, CA_ETA};

/* The representative horizons and where each one's ring starts. */
static const int ca_rep[CA_NREP] = {1, 6, 24};
static const int ca_off[CA_NREP] = {0, 0, 6}; /* rep 0 (one step) has no ring */

rc_err ca_table_init(ca_table *t, int H, float alpha_lo, float alpha_hi) {
    memset(t, 0, sizeof *t);
    t->rep = rc_malloc((size_t)(H > 0 ? H : 1));
    t->w = rc_malloc((size_t)(H > 0 ? H : 1) * sizeof(float));
    if (!t->rep || !t->w) {
        ca_table_free(t);
        return RC_ERR_NOMEM;
    }
    t->H = H;
    for (int h = 1; h <= H; h++) {
        int a = 0;
        while (a + 2 < CA_NREP && h >= ca_rep[a + 1]) a++;
        double w = (log((double)h) - log((double)ca_rep[a])) / (log((double)ca_rep[a + 1]) - log((double)ca_rep[a]));
        t->rep[h - 1] = (uint8_t)a;
        t->w[h - 1] = (float)(w < 0 ? 0 : w > 1 ? 1 : w);
    }
    t->alpha[0] = alpha_lo;
    t->alpha[1] = alpha_hi;
    for (int r = 0; r < CA_NREP; r++) {
        /* The warm-up step of rep r meets its own step after this many updates. */
        t->warm_n[r] = (uint32_t)((CA_ETA0 / ca_eta[r]) * (CA_ETA0 / ca_eta[r]));
        for (int side = 0; side < 2; side++) {
            t->miss[r][side] = (float)exp((double)ca_eta[r] * (1.0 - t->alpha[side]));
            t->hit[r][side] = (float)exp(-(double)ca_eta[r] * t->alpha[side]);
        }
    }
    return RC_OK;
}

void ca_table_free(ca_table *t) {
    rc_free(t->rep);
    rc_free(t->w);
    t->rep = NULL;
    t->w = NULL;
}

void ca_init(ca_state *s) {
    for (int k = 0; k < CA_NSHRINK; k++) s->mae[k] = 0;
    s->b1 = s->d1 = NAN;
    for (int r = 0; r < CA_NREP; r++) {
        s->f[r][0] = s->f[r][1] = 1.0f;
        s->nobs[r] = 0;
    }
    ca_forget_issued(s);
    s->n = 0;
}

void ca_forget_issued(ca_state *s) {
    for (int i = 0; i < CA_RING_LEN; i++) s->ring[i][0] = s->ring[i][1] = NAN;
}

static float clampf(float x) {
    return x < CA_FMIN ? CA_FMIN : x > CA_FMAX ? CA_FMAX : x;
}

float ca_lambda(const ca_state *s) {
    /* Ties (no evidence yet, or a model that never corrects) keep the model:
     * the scan goes from lambda = 1 down. */
    int best = CA_NSHRINK - 1;
    for (int k = CA_NSHRINK - 2; k >= 0; k--)
        if (s->mae[k] < s->mae[best]) best = k;
    return (float)best / (CA_NSHRINK - 1);
}

void ca_observe(ca_state *s, const ca_table *t, double y, float lo1, float hi1) {
    if (!isnan(s->d1)) {
        const float a = CA_SHRINK_RATE;
        const float e = (float)(y - s->b1);
        for (int k = 0; k < CA_NSHRINK; k++) {
            const float lam = (float)k / (CA_NSHRINK - 1);
            s->mae[k] += a * (fabsf(e - lam * s->d1) - s->mae[k]);
        }
    }
    const float one[2] = {lo1, hi1};
    for (int r = 0; r < CA_NREP; r++) {
        /* Issued r forecasts ago: its slot is the one the next forecast overwrites. */
        const float *iv = r == 0 ? one : s->ring[ca_off[r] + (int)(s->n % (uint32_t)ca_rep[r])];
        if (s->n < (uint32_t)ca_rep[r] || isnan(iv[0]) || isnan(iv[1])) continue;
        const int below = y < iv[0], above = y > iv[1];
        if (s->nobs[r] < CA_WARM_N) s->nobs[r]++;
        const uint32_t k = s->nobs[r];
        if (k < t->warm_n[r]) {
            /* Warm-up: a larger step, so exp runs here (the first few hundred samples only). */
            const double eta = (double)CA_ETA0 / sqrt((double)k);
            s->f[r][0] = clampf(s->f[r][0] * (float)exp(eta * ((double)below - t->alpha[0])));
            s->f[r][1] = clampf(s->f[r][1] * (float)exp(eta * ((double)above - t->alpha[1])));
        } else {
            s->f[r][0] = clampf(s->f[r][0] * (below ? t->miss[r][0] : t->hit[r][0]));
            s->f[r][1] = clampf(s->f[r][1] * (above ? t->miss[r][1] : t->hit[r][1]));
        }
    }
}

void ca_apply(ca_state *s, const ca_table *t, float *fc, const float *out, double scale, int Q, int shrink,
              int widths) {
    const int mid = Q / 2;
    const float lam = shrink ? ca_lambda(s) : 1.0f;
    s->d1 = (float)(scale * (double)out[mid]);
    s->b1 = fc[mid] - s->d1;
    if (!isfinite(s->d1) || !isfinite(s->b1)) s->b1 = s->d1 = NAN;
    /* exp(-(h-1)) as a running product, h = 1 .. CA_SHRINK_H. */
    float keep_gap = 1.0f - lam;
    for (int h = 0; h < t->H && h < CA_SHRINK_H; h++, keep_gap *= 0.36787944f) {
        const float shift = -keep_gap * (float)(scale * (double)out[(size_t)h * Q + mid]);
        float *o = fc + (size_t)h * Q;
        for (int q = 0; q < Q; q++) o[q] += shift;
    }
    for (int h = 0; widths && h < t->H; h++) {
        const int a = t->rep[h];
        const float w = t->w[h];
        const float flo = (1 - w) * s->f[a][0] + w * s->f[a + 1][0];
        const float fhi = (1 - w) * s->f[a][1] + w * s->f[a + 1][1];
        float *o = fc + (size_t)h * Q;
        const float m = o[mid];
        for (int q = 0; q < mid; q++) o[q] = m - flo * (m - o[q]);
        for (int q = mid + 1; q < Q; q++) o[q] = m + fhi * (o[q] - m);
    }
    for (int r = 1; r < CA_NREP; r++) {
        float *iv = s->ring[ca_off[r] + (int)(s->n % (uint32_t)ca_rep[r])];
        if (ca_rep[r] <= t->H) {
            iv[0] = fc[(size_t)(ca_rep[r] - 1) * Q];
            iv[1] = fc[(size_t)(ca_rep[r] - 1) * Q + Q - 1];
        } else {
            iv[0] = iv[1] = NAN;
        }
    }
    s->n++;
}

/* Blob: u32 magic, u32 version, f32 mae[CA_NSHRINK], b1, d1, f32 f[CA_NREP][2],
 * f32 ring[CA_RING_LEN][2], u32 n, u16 nobs[CA_NREP]. */
void ca_save(const ca_state *s, uint8_t *buf) {
    uint8_t *p = buf;
    rc_put_u32(p, CA_MAGIC);
    rc_put_u32(p + 4, CA_VERSION);
    p += 8;
    for (int k = 0; k < CA_NSHRINK; k++, p += 4) rc_put_f32(p, s->mae[k]);
    rc_put_f32(p, s->b1);
    rc_put_f32(p + 4, s->d1);
    p += 8;
    for (int r = 0; r < CA_NREP; r++)
        for (int k = 0; k < 2; k++, p += 4) rc_put_f32(p, s->f[r][k]);
    for (int i = 0; i < CA_RING_LEN; i++)
        for (int k = 0; k < 2; k++, p += 4) rc_put_f32(p, s->ring[i][k]);
    rc_put_u32(p, s->n);
    p += 4;
    for (int r = 0; r < CA_NREP; r++, p += 2) rc_put_u16(p, s->nobs[r]);
}

rc_err ca_load(ca_state *s, const uint8_t *buf, size_t len) {
    if (len != CA_BLOB_SIZE || rc_get_u32(buf) != CA_MAGIC) return RC_ERR_FORMAT;
    if (rc_get_u32(buf + 4) != CA_VERSION) return RC_ERR_VERSION;
    ca_state t;
    const uint8_t *p = buf + 8;
    for (int k = 0; k < CA_NSHRINK; k++, p += 4) {
        t.mae[k] = rc_get_f32(p);
        if (!(t.mae[k] >= 0) || !isfinite(t.mae[k])) return RC_ERR_FORMAT;
    }
    t.b1 = rc_get_f32(p);
    t.d1 = rc_get_f32(p + 4);
    p += 8;
    if (isinf(t.b1) || isinf(t.d1) || isnan(t.b1) != isnan(t.d1)) return RC_ERR_FORMAT;
    for (int r = 0; r < CA_NREP; r++)
        for (int k = 0; k < 2; k++, p += 4) {
            t.f[r][k] = rc_get_f32(p);
            if (!(t.f[r][k] >= CA_FMIN && t.f[r][k] <= CA_FMAX)) return RC_ERR_FORMAT;
        }
    for (int i = 0; i < CA_RING_LEN; i++)
        for (int k = 0; k < 2; k++, p += 4) {
            t.ring[i][k] = rc_get_f32(p);
            if (isinf(t.ring[i][k])) return RC_ERR_FORMAT;
        }
    t.n = rc_get_u32(p);
    p += 4;
    for (int r = 0; r < CA_NREP; r++, p += 2) {
        t.nobs[r] = rc_get_u16(p);
        if (t.nobs[r] > CA_WARM_N) return RC_ERR_FORMAT;
    }
    *s = t;
    return RC_OK;
}
