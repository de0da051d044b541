/*
 * features.c: featurization (see features.h). One code path for training, eval, replay
 * and the daemon: a robust exponentially weighted normalizer, a sampling
 * period estimate that ignores isolated gaps, a ring of recent raw values
 * that gives the seasonal-naive baseline, and time-of-day/day-of-week phase.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/features.h"

#include <math.h>
#include <string.h>
#if defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

#define FT_MAGIC 0x53544654u /* "TFTS" little-endian */
#define FT_VERSION 2u
#define FT_ZCLIP 20.0        /* normalized features are clipped to +-FT_ZCLIP */
#define FT_WARM 8u           /* finite samples before outlier clipping starts */
#define FT_PI 3.14159265358979323846

void ft_cfg_default(ft_cfg *c) {
    c->norm_halflife = 96.0f;
    c->clip = 5.0f;
    c->season_s = 86400.0f;
    c->n_quant = 3;
}

void ft_cfg_to_meta(const ft_cfg *c, rk_meta *m) {
    m->feat_kind = FT_KIND;
    memset(m->feat_param, 0, sizeof m->feat_param);
    m->feat_param[0] = c->norm_halflife;
    m->feat_param[1] = c->clip;
    m->feat_param[2] = c->season_s;
    m->feat_param[3] = (float)c->n_quant;
    m->feat_param[4] = (float)FT_NFEAT;
}

rc_err ft_cfg_from_meta(ft_cfg *c, const rk_meta *m) {
    if (m->feat_kind != FT_KIND) return RC_ERR_VERSION;
    const float *p = m->feat_param;
    if (!(p[0] >= 1.0f && p[0] <= 1e6f) || !(p[1] >= 1.0f && p[1] <= 100.0f) ||
        !(p[2] >= 0.0f && p[2] <= 1e9f) || !(p[3] >= 1.0f && p[3] <= RK_MAX_QUANT) ||
        p[4] != (float)FT_NFEAT)
        return RC_ERR_FORMAT;
    c->norm_halflife = p[0];
    c->clip = p[1];
    c->season_s = p[2];
    c->n_quant = (uint32_t)p[3];
    return RC_OK;
}

void ft_init(ft_state *s, const ft_cfg *c) {
    memset(s, 0, sizeof *s);
    s->last_t = -INFINITY;
    s->scale = 1.0;
    s->nq = c->n_quant ? c->n_quant : 1;
}

/* Raw value `lag` samples back (0 = the newest); lag < ring_n. */
static double ring_get(const ft_state *s, uint32_t lag) {
    uint32_t i = (s->ring_pos + FT_RING - 1 - lag) % FT_RING;
    return s->ring[i];
}

static void ring_put(ft_state *s, double v) {
    s->ring[s->ring_pos] = (float)v;
    s->ring_pos = (s->ring_pos + 1) % FT_RING;
    if (s->ring_n < FT_RING) s->ring_n++;
}

/* The value a missing sample is assumed to have: seasonal, else the level. */
static double impute(const ft_state *s) {
    if (s->season && s->ring_n >= s->season) return ring_get(s, s->season - 1);
    return s->level;
}

static double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/*
 * Period estimate: the first interval, then a slow average of intervals
 * within [2/3, 3/2] of it. Other intervals are gaps unless four in a row
 * agree with each other, which means the sensor changed its rate.
 * Returns the gap length in periods (1 for a regular sample).
 */
static double update_period(ft_state *s, double iv) {
    if (s->dt <= 0) {
        s->dt = iv;
        return 1.0;
    }
    double g = iv / s->dt;
    if (g >= 2.0 / 3.0 && g <= 1.5) {
        s->dt += 0.02 * (iv - s->dt);
        s->cand_n = 0;
        return 1.0;
    }
    if (s->cand_n > 0 && fabs(iv - s->cand_dt) <= 0.1 * s->cand_dt) {
        s->cand_n++;
    } else {
        s->cand_dt = iv;
        s->cand_n = 1;
    }
    if (s->cand_n >= 4) {
        s->dt = s->cand_dt;
        s->cand_n = 0;
        return 1.0;
    }
    return g;
}

static uint32_t season_of(const ft_state *s, const ft_cfg *c) {
    if (s->dt <= 0 || c->season_s <= 0) return 0;
    double p = floor(c->season_s / s->dt + 0.5);
    return (p >= 2 && p <= FT_RING) ? (uint32_t)p : 0;
}

/* Robust EW update: warm-up averages, then deviations clipped at clip*scale. */
static void update_norm(ft_state *s, const ft_cfg *c, double v) {
    double a = 1.0 - exp2(-1.0 / c->norm_halflife);
    if (s->nv == 0) {
        s->level = v;
        s->scale = fmax(fabs(v) * 0.05, 1e-6);
        s->nv = 1;
        return;
    }
    double an = 1.0 / (double)(s->nv + 1);
    if (an > a) a = an;
    double d = v - s->level;
    double lim = s->nv < FT_WARM ? INFINITY : c->clip * s->scale;
    double dc = clampd(d, -lim, lim);
    s->level += a * dc;
    s->scale += a * (fabs(dc) - s->scale);
    double floor_ = fmax(1e-4 * fabs(s->level), 1e-8);
    if (s->scale < floor_) s->scale = floor_;
    s->nv++;
}

float ft_norm(const ft_state *s, double v) {
    return (float)((v - s->level) / s->scale);
}

double ft_baseline(const ft_state *s, int h) {
    uint32_t P = s->season;
    if (P && s->ring_n >= P && h >= 1) {
        uint32_t lag = P - 1 - (uint32_t)((h - 1) % (int)P);
        return ring_get(s, lag);
    }
    return s->level;
}

float ft_target(const ft_state *s, int h, double v) {
    return (float)((v - ft_baseline(s, h)) / s->scale);
}

double ft_period(const ft_state *s) {
    return s->dt;
}

/* Horizon h's values: b + scale * in, the baseline shared by its Q quantiles. */
static inline void denorm_row(double b, double scale, const float *in, float *out, int Q) {
    for (int q = 0; q < Q; q++) out[q] = (float)(b + scale * (double)in[q]);
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
/* m mod P lane by lane, for 0 <= m < P + 8: subtracts P where a lane is still
 * at or above it (one round when P >= 8, at most four when P = 2). */
static inline __m256i lanes_mod(__m256i m, __m256i P) {
    for (__mmask8 over; (over = _mm256_cmpge_epi32_mask(m, P));) m = _mm256_mask_sub_epi32(m, over, m, P);
    return m;
}

/*
 * Q = 3, eight horizons per step, in double like the scalar loop (the fused
 * multiply-add of b + scale * x is what -ffp-contract=fast makes of it
 * there, so the results are bit for bit the same). The 24 interleaved
 * inputs are split into lo/mid/hi lanes and joined again by in-register
 * permutes: staging them through memory made store forwarding fail and was
 * slower than scalar code. Baselines come straight from the ring by a
 * gather on indices kept in a vector, (first + h mod P) mod FT_RING.
 */
static void denorm3_avx512(const ft_state *s, int seasonal, uint32_t first, const float *in, float *out, int H,
                           float *mid, float *lo, float *hi) {
    const __m512d scale = _mm512_set1_pd(s->scale);
    const __m512d level = _mm512_set1_pd(s->level);
    const __m512i split0 = _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i split1 = _mm512_setr_epi32(1, 4, 7, 10, 13, 16, 19, 22, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i split2 = _mm512_setr_epi32(2, 5, 8, 11, 14, 17, 20, 23, 0, 0, 0, 0, 0, 0, 0, 0);
    /* Output p = 3h + q takes lane h of the q-th result: lo at 0.., mid at 8.., hi at 16... */
    const __m512i join0 = _mm512_setr_epi32(0, 8, 16, 1, 9, 17, 2, 10, 18, 3, 11, 19, 4, 12, 20, 5);
    const __m512i join1 = _mm512_setr_epi32(13, 21, 6, 14, 22, 7, 15, 23, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i P = _mm256_set1_epi32((int)(seasonal ? s->season : 1));
    const __m256i ringn = _mm256_set1_epi32(FT_RING), eight = _mm256_set1_epi32(8);
    const __m256i base = _mm256_set1_epi32((int)first);
    __m256i m = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); /* h mod P, lane by lane */
    if (seasonal) m = lanes_mod(m, P);
    for (int h = 0; h < H; h += 8) {
        const int r = H - h < 8 ? H - h : 8;
        const __mmask16 k_a = (__mmask16)((1u << (3 * r < 16 ? 3 * r : 16)) - 1);
        const __mmask8 k_b = (__mmask8)((1u << (3 * r > 16 ? 3 * r - 16 : 0)) - 1);
        const __mmask8 k_h = (__mmask8)((1u << r) - 1);
        __m512d b = level;
        if (seasonal) {
            __m256i idx = _mm256_add_epi32(base, m);
            idx = _mm256_mask_sub_epi32(idx, _mm256_cmpge_epi32_mask(idx, ringn), idx, ringn);
            b = _mm512_cvtps_pd(_mm256_mmask_i32gather_ps(_mm256_setzero_ps(), k_h, idx, s->ring, 4));
            m = lanes_mod(_mm256_add_epi32(m, eight), P);
        }
        const float *x = in + (size_t)h * 3;
        __m512 a = _mm512_maskz_loadu_ps(k_a, x);
        __m512 c = _mm512_castps256_ps512(_mm256_maskz_loadu_ps(k_b, x + 16));
        __m256 o0 = _mm512_cvtpd_ps(_mm512_fmadd_pd(
            _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_permutex2var_ps(a, split0, c))), scale, b));
        __m256 o1 = _mm512_cvtpd_ps(_mm512_fmadd_pd(
            _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_permutex2var_ps(a, split1, c))), scale, b));
        __m256 o2 = _mm512_cvtpd_ps(_mm512_fmadd_pd(
            _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_permutex2var_ps(a, split2, c))), scale, b));
        __m512 o01 = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(o0)), _mm256_castps_pd(o1), 1));
        __m512 o2w = _mm512_castps256_ps512(o2);
        float *o = out + (size_t)h * 3;
        _mm512_mask_storeu_ps(o, k_a, _mm512_permutex2var_ps(o01, join0, o2w));
        _mm256_mask_storeu_ps(o + 16, k_b, _mm512_castps512_ps256(_mm512_permutex2var_ps(o01, join1, o2w)));
        if (mid) {
            _mm256_mask_storeu_ps(lo + h, k_h, o0);
            _mm256_mask_storeu_ps(mid + h, k_h, o1);
            _mm256_mask_storeu_ps(hi + h, k_h, o2);
        }
    }
}
#endif

void ft_denorm_split(const ft_state *s, const float *in, float *out, int n, float *mid, float *lo, float *hi) {
    const int Q = (int)(s->nq ? s->nq : 1), H = n / Q;
    const double scale = s->scale;
    /* ft_baseline(h) for h = 1.. walks the ring forward from the value P
     * samples back, wrapping to it again every P horizons: one index
     * stepped per horizon instead of a lag and a modulo each (this runs for
     * every published forecast). */
    const uint32_t P = s->season;
    const int seasonal = P && s->ring_n >= P;
    const uint32_t first = seasonal ? (s->ring_pos + FT_RING - P) % FT_RING : 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    if (Q == 3) {
        denorm3_avx512(s, seasonal, first, in, out, H, mid, lo, hi);
        return;
    }
#endif
    uint32_t idx = first, k = 0;
    for (int h = 0; h < H; h++) {
        double b = s->level;
        if (seasonal) {
            b = s->ring[idx];
            if (++k == P) {
                k = 0;
                idx = first;
            } else if (++idx == FT_RING) {
                idx = 0;
            }
        }
        const float *x = in + (size_t)h * Q;
        float *o = out + (size_t)h * Q;
        if (Q == 3) {
            /* The default, written out: three independent chains, no loop. */
            float o0 = (float)(b + scale * (double)x[0]);
            float o1 = (float)(b + scale * (double)x[1]);
            float o2 = (float)(b + scale * (double)x[2]);
            o[0] = o0;
            o[1] = o1;
            o[2] = o2;
        } else {
            denorm_row(b, scale, x, o, Q);
        }
        if (mid) {
            lo[h] = o[0];
            mid[h] = o[Q / 2];
            hi[h] = o[Q - 1];
        }
    }
}

void ft_denorm(const ft_state *s, const float *in, float *out, int n) {
    ft_denorm_split(s, in, out, n, NULL, NULL, NULL);
}

/*
 * Time of day and day of week as points on the unit circle, into feat[0..3]
 * (the sample's features 7..10).
 * Many series usually share a timestamp (one scrape, one tick of every
 * sensor), so the last timestamp's four values are kept per thread: the
 * two fmod and two sincos were about 40 % of ft_push's time in the daemon,
 * and the values are the same bits either way.
 */
static void phase_features(double t, float *feat) {
    /* Keyed on the bits of t: -0.0 == 0.0, but their sines differ in sign. */
    static _Thread_local uint64_t last_key = 0x7ff8000000000001u; /* a NaN: t is finite */
    static _Thread_local float last[4];
    uint64_t key;
    memcpy(&key, &t, sizeof key);
    if (key != last_key) {
        double tod = fmod(t, 86400.0) / 86400.0;
        /* The epoch was a Thursday; shift so phase 0 is Monday 00:00 UTC. */
        double dow = fmod(t + 3.0 * 86400.0, 604800.0) / 604800.0;
        last[0] = (float)sin(2 * FT_PI * tod);
        last[1] = (float)cos(2 * FT_PI * tod);
        last[2] = (float)sin(2 * FT_PI * dow);
        last[3] = (float)cos(2 * FT_PI * dow);
        last_key = key;
    }
    memcpy(feat, last, sizeof last);
}

static float zc(const ft_state *s, double v) {
    return (float)clampd((v - s->level) / s->scale, -FT_ZCLIP, FT_ZCLIP);
}

rc_err ft_push(ft_state *s, const ft_cfg *c, double t, double v, float *feat) {
    if (!isfinite(t) || (s->n > 0 && !(t > s->last_t))) return RC_ERR_PROTO;
    if (isinf(v)) return RC_ERR_NUMERIC;
    double gap = 1.0;
    if (s->n > 0) gap = update_period(s, t - s->last_t);
    s->season = season_of(s, c);
    /* A short gap leaves the ring misaligned with the season: fill the
     * skipped samples with imputed values (bounded by the ring size). */
    if (gap > 1.5 && s->nv > 0) {
        double k = floor(gap + 0.5) - 1;
        for (int i = 0; i < (int)k && i < FT_RING; i++) ring_put(s, impute(s));
    }
    int missing = !isfinite(v);
    s->last_t = t;
    s->n++;
    if (missing && s->nv == 0) {
        if (feat) {
            memset(feat, 0, FT_NFEAT * sizeof *feat);
            feat[1] = 1.0f;
        }
        return RC_OK;
    }
    double x = missing ? impute(s) : v;
    int have_prev = s->ring_n > 0;
    double prev = have_prev ? ring_get(s, 0) : x;
    if (!missing) update_norm(s, c, v);
    ring_put(s, x);
    if (!feat) return RC_OK;

    uint32_t P = s->season;
    int seas = P && s->ring_n > P;
    float z = zc(s, x);
    feat[0] = z;
    feat[1] = (float)missing;
    feat[2] = gap > 1.5 ? (float)(clampd(log2(gap), 0, 16) / 4) : 0.0f;
    feat[3] = have_prev ? (float)clampd(z - zc(s, prev), -FT_ZCLIP, FT_ZCLIP) : 0.0f;
    feat[4] = (float)seas;
    feat[5] = seas ? (float)clampd(z - zc(s, ring_get(s, P)), -FT_ZCLIP, FT_ZCLIP) : 0.0f;
    feat[6] = seas ? zc(s, ring_get(s, P - 1)) : 0.0f;
    phase_features(t, feat + 7);
    feat[11] = s->dt > 0 ? (float)(clampd(log10(s->dt), -3, 8) / 5) : 0.0f;
    feat[12] = (float)(clampd(log10(s->scale / (fabs(s->level) + 1e-12)), -6, 2) / 4);
    feat[13] = (float)fmin((double)s->nv / 168.0, 1.0);
    return RC_OK;
}

/* Blob: u32 magic, u32 version, 5 f64, 8 u32, FT_RING f32, little-endian. */
void ft_save(const ft_state *s, uint8_t *buf) {
    uint8_t *p = buf;
    rc_put_u32(p, FT_MAGIC); p += 4;
    rc_put_u32(p, FT_VERSION); p += 4;
    const double d[5] = {s->last_t, s->dt, s->cand_dt, s->level, s->scale};
    for (int i = 0; i < 5; i++, p += 8) rc_put_f64(p, d[i]);
    const uint32_t u[8] = {s->n, s->nv, s->cand_n, s->season, s->nq, s->ring_n, s->ring_pos, 0};
    for (int i = 0; i < 8; i++, p += 4) rc_put_u32(p, u[i]);
    for (int i = 0; i < FT_RING; i++, p += 4) rc_put_f32(p, s->ring[i]);
}

rc_err ft_load(ft_state *s, const uint8_t *buf, size_t len) {
    if (len != FT_BLOB_SIZE || rc_get_u32(buf) != FT_MAGIC) return RC_ERR_FORMAT;
    if (rc_get_u32(buf + 4) != FT_VERSION) return RC_ERR_VERSION;
    ft_state t;
    memset(&t, 0, sizeof t);
    const uint8_t *p = buf + 8;
    double *d[5] = {&t.last_t, &t.dt, &t.cand_dt, &t.level, &t.scale};
    for (int i = 0; i < 5; i++, p += 8) *d[i] = rc_get_f64(p);
    uint32_t *u[7] = {&t.n, &t.nv, &t.cand_n, &t.season, &t.nq, &t.ring_n, &t.ring_pos};
    for (int i = 0; i < 7; i++, p += 4) *u[i] = rc_get_u32(p);
    p += 4;
    for (int i = 0; i < FT_RING; i++, p += 4) t.ring[i] = rc_get_f32(p);
    if (!(t.scale > 0) || !isfinite(t.scale) || !isfinite(t.level) || !(t.dt >= 0) ||
        t.season > FT_RING || t.ring_n > FT_RING || t.ring_pos >= FT_RING || t.nq < 1 ||
        t.nq > RK_MAX_QUANT)
        return RC_ERR_FORMAT;
    for (int i = 0; i < FT_RING; i++)
        if (!isfinite(t.ring[i])) return RC_ERR_FORMAT;
    *s = t;
    return RC_OK;
}
