/*
 * features.c: featurization (see features.h). One code path for training, eval, replay
 * and the daemon: a robust exponentially weighted normalizer, a sampling
 * period estimate that ignores isolated gaps, a ring of recent raw values
 * for lags, the seasonal memory (mean change per sample by time of day)
 * that gives the baseline, and time-of-day/day-of-week phase.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/features.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define FT_MAGIC 0x53544654u /* "TFTS" little-endian */
#define FT_VERSION 3u
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
    s->fin_t = -INFINITY;
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

/* Samples in one season at the estimated period (rounded), 0 while unknown. */
static double season_samples(const ft_state *s, const ft_cfg *c) {
    if (s->dt <= 0 || c->season_s <= 0) return 0;
    return floor(c->season_s / s->dt + 0.5);
}

static uint32_t season_of(const ft_state *s, const ft_cfg *c) {
    double p = season_samples(s, c);
    return (p >= 2 && p <= FT_RING) ? (uint32_t)p : 0;
}

/* Phase of t within the season, seconds in [0, season). */
static double season_phase(double t, double season) {
    double p = fmod(t, season);
    return p < 0 ? p + season : p;
}

static int bin_of_phase(const ft_state *s, double ph) {
    int k = (int)(ph / s->sbin_s);
    return k < (int)s->sbins ? k : (int)s->sbins - 1;
}

/*
 * The seasonal memory's bins for the current period estimate: FT_SBINS when
 * a season holds at least that many samples, one per sample down to two,
 * else none. A new layout starts the memory afresh (the old bins described
 * other times of day).
 */
static void update_sbins(ft_state *s, const ft_cfg *c) {
    double per = season_samples(s, c);
    uint32_t nb = per >= FT_SBINS ? FT_SBINS : per >= 2 ? (uint32_t)per : 0;
    double w = nb ? (double)c->season_s / nb : 0;
    if (nb != s->sbins || w != s->sbin_s) {
        s->sbins = nb;
        s->sbin_s = w;
        memset(s->slope, 0, sizeof s->slope);
        memset(s->slope_n, 0, sizeof s->slope_n);
    }
}

/*
 * One absurd but finite sample while the normalizer is young (a first
 * value of 1e30 before values near 50) set the level and scale for
 * thousands of samples (the EW forgets at its half-life) and a mean
 * change of -1e30 in the seasonal memory for days: every forecast in
 * between was ~1e29. Two values whose sizes differ by more than
 * FT_ABSURD (with 1 as the smallest size, so values near 0 never count)
 * cannot both be right; before FT_WARM samples the normalizer cannot tell
 * which one is wrong, so it restarts from the newer one (the next samples
 * settle it: 10, 1e30, 11 ends at 11) and the seasonal memory learns
 * nothing from the jump. Once warm, the clip at clip * scale bounds any
 * sample's pull.
 */
#define FT_ABSURD 1e3
static int absurd_pair(double a, double b) {
    double fa = fabs(a), fb = fabs(b);
    return fa > FT_ABSURD * (fb + 1.0) || fb > FT_ABSURD * (fa + 1.0);
}

/*
 * Learns the change per sample from the last finite value to v in v's bin
 * (ph: t's phase in the season, seconds): an average while the bin is
 * young, then EW with a memory of FT_SDAYS days. Changes are clipped at
 * clip * scale once the normalizer is warm, so a spike's jump up and back
 * down cancel instead of bending the profile. A gap of more than four
 * periods teaches nothing (its mean change says little about any hour).
 */
static void update_seasonal_memory(ft_state *s, const ft_cfg *c, double t, double ph, double v) {
    if (s->sbins && isfinite(s->fin_t) && !(s->nv < FT_WARM && absurd_pair(s->fin_v, v))) {
        double g = (t - s->fin_t) / s->dt;
        if (g <= 4.5) {
            double steps = g < 1.5 ? 1.0 : floor(g + 0.5);
            double lim = s->nv < FT_WARM ? INFINITY : c->clip * s->scale;
            double d = clampd((v - s->fin_v) / steps, -lim, lim);
            int k = bin_of_phase(s, ph);
            double beta = s->dt / (FT_SDAYS * s->sbin_s);
            double a = 1.0 / (s->slope_n[k] + 1.0);
            if (a < beta) a = beta;
            s->slope[k] += (float)(a * (d - s->slope[k]));
            if (s->slope_n[k] < UINT16_MAX) s->slope_n[k]++;
        }
    }
    s->fin_t = t;
    s->fin_v = v;
}

/* Robust EW update: warm-up averages, then deviations clipped at clip*scale. */
static void update_norm(ft_state *s, const ft_cfg *c, double v) {
    double a = 1.0 - exp2(-1.0 / c->norm_halflife);
    if (s->nv == 0 || (s->nv < FT_WARM && absurd_pair(s->level, v))) {
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

/* The newest value, imputed if it was missing; the level before any. */
static double last_value(const ft_state *s) {
    return s->ring_n ? ring_get(s, 0) : s->level;
}

/*
 * Walks horizons 1..H: the running sum of the bins' mean changes along the
 * times t + j*dt, shrunk by 1 - exp(-h) (exp(-h) kept as a running product,
 * so every caller gets the same bits), and runs BODY with the baseline b_
 * of horizon h_. The phase is stepped, not recomputed, because this runs
 * for every published forecast (48 fmod would cost more than the rest of
 * the denormalization).
 */
#define FT_WALK_BASELINE(s, H, BODY)                                                  \
    do {                                                                              \
        const double last_ = last_value(s);                                           \
        const int seas_ = (s)->sbins > 0 && (s)->dt > 0;                              \
        /* The phase in bins, stepped by dt / sbin_s: one division per */             \
        /* forecast, not one per horizon. */                                          \
        const double nb_ = seas_ ? (double)(s)->sbins : 0;                            \
        const double inv_ = seas_ ? 1.0 / (s)->sbin_s : 0;                            \
        const double step_ = (s)->dt * inv_;                                          \
        double x_ = seas_ ? season_phase((s)->last_t, (s)->sbin_s * nb_) * inv_ : 0;  \
        double acc_ = 0, eh_ = 1;                                                     \
        for (int h_ = 1; h_ <= (H); h_++) {                                           \
            double b_ = last_;                                                        \
            if (seas_) {                                                              \
                x_ += step_;                                                          \
                while (x_ >= nb_) x_ -= nb_;                                          \
                int k_ = (int)x_;                                                     \
                if (k_ >= (int)(s)->sbins) k_ = (int)(s)->sbins - 1;                  \
                if ((s)->slope_n[k_]) acc_ += (double)(s)->slope[k_];                 \
                eh_ *= 0.36787944117144233; /* exp(-1) */                              \
                b_ = last_ + (1.0 - eh_) * acc_;                                      \
            }                                                                         \
            BODY                                                                      \
        }                                                                             \
    } while (0)

double ft_baseline(const ft_state *s, int h) {
    double r = last_value(s);
    FT_WALK_BASELINE(s, h, { if (h_ == h) r = b_; });
    return r;
}

void ft_baselines(const ft_state *s, int H, double *b) {
    FT_WALK_BASELINE(s, H, { b[h_ - 1] = b_; });
}

double ft_period(const ft_state *s) {
    return s->dt;
}

void ft_denorm(const ft_state *s, const float *in, float *out, int n) {
    const int Q = (int)(s->nq ? s->nq : 1), H = n / Q;
    const double scale = s->scale;
    FT_WALK_BASELINE(s, H, {
        const float *x = in + (size_t)(h_ - 1) * Q;
        float *o = out + (size_t)(h_ - 1) * Q;
        for (int q = 0; q < Q; q++) o[q] = (float)(b_ + scale * (double)x[q]);
    });
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
    if (isinf(v) || fabs(v) > FLT_MAX) return RC_ERR_NUMERIC;
    double gap = 1.0;
    if (s->n > 0) gap = update_period(s, t - s->last_t);
    s->season = season_of(s, c);
    update_sbins(s, c);
    /* t's phase in the season: the seasonal memory's bin now, the feature's next. */
    const double per = s->sbin_s * s->sbins, ph = s->sbins ? season_phase(t, per) : 0;
    /* A short gap leaves the ring misaligned with the season: fill the
     * skipped samples with imputed values (bounded by the ring size). */
    if (gap > 1.5 && s->nv > 0) {
        double k = floor(gap + 0.5) - 1;
        /* Compared as doubles: a gap of 1e12 periods does not fit an int. */
        for (int i = 0; i < FT_RING && i < k; i++) ring_put(s, impute(s));
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
    if (!missing) {
        update_seasonal_memory(s, c, t, ph, v);
        update_norm(s, c, v);
    }
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
    /* The seasonal memory: the change expected over the next sample, and
     * the day's mean change per sample (the trend) over 12 samples. */
    double next = 0, drift = 0;
    if (s->sbins) {
        double next_ph = ph + s->dt;
        while (next_ph >= per) next_ph -= per;
        int k = bin_of_phase(s, next_ph);
        if (s->slope_n[k]) next = s->slope[k];
        for (uint32_t i = 0; i < s->sbins; i++) drift += s->slope[i];
        drift /= s->sbins;
    }
    feat[14] = (float)clampd(next / s->scale, -FT_ZCLIP, FT_ZCLIP);
    feat[15] = (float)clampd(12.0 * drift / s->scale, -FT_ZCLIP, FT_ZCLIP);
    return RC_OK;
}

void ft_medium_slot(const ft_state *s, uint32_t n_medium, rk_mslot *out) {
    out->rd0 = out->rd1 = out->wr = -1;
    out->alpha = 0.0f;
    if (!s->sbins || !(s->dt > 0) || n_medium < 2) return;
    const double per = s->sbin_s * s->sbins;
    int k = bin_of_phase(s, season_phase(s->last_t, per));
    int kn = (k + 1) % (int)s->sbins;
    uint32_t nb = s->sbins;
    /* Mediums per bin: 1:1 when there are enough, else bins grouped. */
    int mk = nb <= n_medium ? k : (int)((uint64_t)k * n_medium / nb);
    int mn = nb <= n_medium ? kn : (int)((uint64_t)kn * n_medium / nb);
    out->rd0 = (int16_t)mk;
    out->rd1 = (int16_t)mn;
    if (!s->slope_n[k]) return;
    double beta = s->dt / (FT_SDAYS * s->sbin_s);
    double a = 1.0 / s->slope_n[k];
    out->wr = (int16_t)mk;
    out->alpha = (float)fmin(1.0, fmax(a, beta));
}

/* Blob: u32 magic, u32 version, 8 f64, 8 u32, FT_RING f32, FT_SBINS f32,
 * FT_SBINS u16, little-endian. */
void ft_save(const ft_state *s, uint8_t *buf) {
    uint8_t *p = buf;
    rc_put_u32(p, FT_MAGIC); p += 4;
    rc_put_u32(p, FT_VERSION); p += 4;
    const double d[8] = {s->last_t, s->dt, s->cand_dt, s->level, s->scale, s->sbin_s, s->fin_t, s->fin_v};
    for (int i = 0; i < 8; i++, p += 8) rc_put_f64(p, d[i]);
    const uint32_t u[8] = {s->n, s->nv, s->cand_n, s->season, s->nq, s->ring_n, s->ring_pos, s->sbins};
    for (int i = 0; i < 8; i++, p += 4) rc_put_u32(p, u[i]);
    for (int i = 0; i < FT_RING; i++, p += 4) rc_put_f32(p, s->ring[i]);
    for (int i = 0; i < FT_SBINS; i++, p += 4) rc_put_f32(p, s->slope[i]);
    for (int i = 0; i < FT_SBINS; i++, p += 2) rc_put_u16(p, s->slope_n[i]);
}

rc_err ft_load(ft_state *s, const uint8_t *buf, size_t len) {
    if (len != FT_BLOB_SIZE || rc_get_u32(buf) != FT_MAGIC) return RC_ERR_FORMAT;
    if (rc_get_u32(buf + 4) != FT_VERSION) return RC_ERR_VERSION;
    ft_state t;
    memset(&t, 0, sizeof t);
    const uint8_t *p = buf + 8;
    double *d[8] = {&t.last_t, &t.dt, &t.cand_dt, &t.level, &t.scale, &t.sbin_s, &t.fin_t, &t.fin_v};
    for (int i = 0; i < 8; i++, p += 8) *d[i] = rc_get_f64(p);
    uint32_t *u[8] = {&t.n, &t.nv, &t.cand_n, &t.season, &t.nq, &t.ring_n, &t.ring_pos, &t.sbins};
    for (int i = 0; i < 8; i++, p += 4) *u[i] = rc_get_u32(p);
    for (int i = 0; i < FT_RING; i++, p += 4) t.ring[i] = rc_get_f32(p);
    for (int i = 0; i < FT_SBINS; i++, p += 4) t.slope[i] = rc_get_f32(p);
    for (int i = 0; i < FT_SBINS; i++, p += 2) t.slope_n[i] = rc_get_u16(p);
    if (!(t.scale > 0) || !isfinite(t.scale) || !isfinite(t.level) || !(t.dt >= 0) ||
        !isfinite(t.dt) || t.season > FT_RING || t.ring_n > FT_RING || t.ring_pos >= FT_RING ||
        t.nq < 1 || t.nq > RK_MAX_QUANT || t.sbins > FT_SBINS || t.sbins == 1 ||
        (t.sbins && !(t.sbin_s > 0 && isfinite(t.sbin_s) && t.dt > 0)) || isnan(t.fin_t) ||
        !isfinite(t.fin_v))
        return RC_ERR_FORMAT;
    for (int i = 0; i < FT_RING; i++)
        if (!isfinite(t.ring[i])) return RC_ERR_FORMAT;
    for (int i = 0; i < FT_SBINS; i++)
        if (!isfinite(t.slope[i])) return RC_ERR_FORMAT;
    *s = t;
    return RC_OK;
}
