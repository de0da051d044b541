/*
 * anomaly.c: anomaly score and alert levels (see anomaly.h for the method).
 *
 * Everything here is a handful of floating-point operations per sample on
 * a fixed-size state, so it runs inside the engine's per-sample path
 * without allocation. Numerics: every division has a floored denominator,
 * tail probabilities go through log10 only when positive, and the final
 * score is clamped, so neither NaN nor Inf can leave an_update.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/anomaly.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AN_MAGIC 0x32534e41u /* "ANS2" little-endian (ANS1 had no anchored blocks) */
#define AN_NF 29              /* f32 fields in the blob */
/* Blocks judged before the anchored channel's calibration is trusted. */
#define AN_A_CAL 8.0f
/* Judged samples used to seed the error calibration before any surprise is
 * trusted; the likelihood layer only starts learning after them. */
#define AN_N_CAL 10u
/* Mean of |N(0,1)|: converts a mean absolute error into a sigma. */
#define AN_MEAN_ABS_N 0.7978845608f
/* Scores are 1 - exp(-(-log10 P) / AN_LOG_SPAN) for a tail probability P. */
#define AN_LOG_SPAN 8.656170245 /* 6 / ln 2 */

void an_cfg_default(an_cfg *c) {
    c->warn = 0.5f;   /* tail probability 1e-6 */
    c->alert = 0.75f; /* tail probability 1e-12 */
    c->clear = 0.3f;  /* tail probability ~5e-2 */
    c->warmup = 60;
    c->err_rate = 0.0075f;
    c->short_rate = 0.7f;
    c->long_rate = 0.01f;
    c->zcap = 6.0f;
    /* 0: the surprise scale is the series' own recent forecast error. With
     * the 2026-12-06 model (calibrated intervals, seasonal-memory baseline)
     * 0.8 scored 12.9 / 26.2 / 67.5 on the tuning halves of SKAB-NAB,
     * SKAB-leaderboard and the generated set, 0 scored 32.3 / 53.5 / 77.4
     * (bench/RESULTS.md). */
    c->interval_weight = 0.0f;
    c->calm_weight = 0.0f;
    c->point_weight = 0.0f;
    c->guard = 0.0f;
    c->drift_rate = 0.0f;
    c->regime_rate = 0.0f;
    c->regime_weight = 0.0f;
    c->stuck_weight = 0.5f;
    /* Chosen on the tuning half of bench/anomaly_bench.c (bench/RESULTS.md). */
    c->anchor_len = 24.0f;
    c->anchor_weight = 1.0f;
    c->anchor_rate = 0.1f;
    c->silence = 5.0f;
}

static int in01(float x) { return x >= 0.0f && x <= 1.0f; }
static int rate_ok(float x) { return x > 0.0f && x <= 1.0f; }

rc_err an_cfg_check(const an_cfg *c) {
    if (!in01(c->warn) || !in01(c->alert) || !in01(c->clear)) return RC_ERR_CONFIG;
    if (!(c->clear <= c->warn && c->warn <= c->alert)) return RC_ERR_CONFIG;
    if (!rate_ok(c->err_rate) || !rate_ok(c->short_rate) || !rate_ok(c->long_rate))
        return RC_ERR_CONFIG;
    if (!(c->zcap >= 1.0f && c->zcap <= 100.0f)) return RC_ERR_CONFIG;
    if (!in01(c->interval_weight) || !in01(c->calm_weight) || !in01(c->point_weight) ||
        !(c->guard == 0.0f || c->guard == 1.0f) ||
        !(c->drift_rate >= 0.0f && c->drift_rate <= 1.0f) || !in01(c->regime_rate) ||
        !in01(c->regime_weight) || !in01(c->stuck_weight) ||
        !(c->anchor_len == 0.0f || (c->anchor_len >= 2.0f && c->anchor_len <= 4096.0f)) ||
        !in01(c->anchor_weight) || !rate_ok(c->anchor_rate) ||
        !(c->silence == 0.0f || (c->silence >= 0.5f && c->silence <= 1e6f)))
        return RC_ERR_CONFIG;
    return RC_OK;
}

/* The float settings by name, for an_cfg_set and an_cfg_describe. */
static const struct {
    const char *name; /* config key */
    size_t off;       /* offsetof(an_cfg, ...) */
} an_keys[] = {
#define K(f) {#f, offsetof(an_cfg, f)}
    K(warn), K(alert), K(clear), K(err_rate), K(short_rate), K(long_rate), K(zcap), K(interval_weight),
    K(calm_weight), K(point_weight), K(guard), K(drift_rate), K(regime_rate), K(regime_weight),
    K(stuck_weight), K(anchor_len), K(anchor_weight), K(anchor_rate),
#undef K
};

rc_err an_cfg_set(an_cfg *c, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || !eq[1]) return RC_ERR_CONFIG;
    char *end;
    errno = 0;
    double d = strtod(eq + 1, &end);
    if (*end || errno || !isfinite(d)) return RC_ERR_CONFIG;
    size_t l = (size_t)(eq - kv);
    if (l == 6 && !strncmp(kv, "warmup", 6)) {
        if (!(d >= 0 && d <= 4294967295.0) || d != floor(d)) return RC_ERR_CONFIG;
        c->warmup = (uint32_t)d;
        return RC_OK;
    }
    for (size_t i = 0; i < sizeof an_keys / sizeof an_keys[0]; i++)
        if (strlen(an_keys[i].name) == l && !strncmp(kv, an_keys[i].name, l)) {
            *(float *)((char *)c + an_keys[i].off) = (float)d;
            return RC_OK;
        }
    return RC_ERR_CONFIG;
}

void an_cfg_describe(const an_cfg *c, char *buf, size_t len) {
    size_t at = 0;
    int k = snprintf(buf, len, "warmup %u", c->warmup);
    at = k > 0 ? (size_t)k : 0;
    for (size_t i = 0; i < sizeof an_keys / sizeof an_keys[0] && at < len; i++) {
        k = snprintf(buf + at, len - at, ", %s %g", an_keys[i].name,
                     (double)*(const float *)((const char *)c + an_keys[i].off));
        if (k < 0) break;
        at += (size_t)k;
    }
}

void an_init(an_state *s) {
    memset(s, 0, sizeof *s);
}

/* Standard normal quantile for p in (0,1), Winitzki's closed form for
 * erfinv (relative error ~2e-3: plenty, since the error calibration
 * rescales the interval anyway, and it costs no iteration). */
static double probit(double p) {
    double x = 2.0 * p - 1.0;
    const double a = 0.147;
    double ln = log(1.0 - x * x);
    double t = 2.0 / (M_PI * a) + ln / 2.0;
    double e = sqrt(sqrt(t * t - ln / a) - t);
    return (x < 0 ? -e : e) * M_SQRT2;
}

/* probit(p) for the model's outermost quantile levels, which are the same on
 * every call from a thread: the last two levels seen and their quantiles
 * (log and two square roots saved per sample). NaN keys never match. */
static double probit_level(float p) {
    static _Thread_local float key[2] = {NAN, NAN};
    static _Thread_local double val[2];
    if (p == key[0]) return val[0];
    if (p == key[1]) return val[1];
    key[1] = key[0];
    val[1] = val[0];
    key[0] = p;
    val[0] = probit((double)p);
    return val[0];
}

/* -log10 of a tail probability, mapped to [0,1]. */
static float tail_score_w(double x, double w) {
    if (!(x > 0.0) || !(w > 0.0)) return 0.0f;
    if (x > 1e6) return 1.0f;
    double lg;
    if (x < 8.0) {
        lg = log10(0.5 * erfc(x / M_SQRT2));
    } else {
        /* Mills-ratio asymptote, where erfc would underflow: Q(x) ~ phi(x)/x. */
        lg = (-0.5 * x * x - log(x * sqrt(2.0 * M_PI))) / M_LN10;
    }
    /* 1 - e^(-L/span) with L = -log10 P: monotone in P over the whole
     * tail (no plateau at 1 that would tie a 7-sigma event with a
     * 30-sigma one), P = 1e-6 -> 0.5, P = 1e-12 -> 0.75. */
    double sc = 1.0 - exp(-w * (-lg) / AN_LOG_SPAN);
    return sc >= 1.0 ? 1.0f : sc <= 0.0 ? 0.0f : (float)sc;
}

/* Weights act on -log10 P (evidence), not on the score: a weighted
 * channel can still reach any score, it just needs a rarer event. */
static float tail_score(double x) { return tail_score_w(x, 1.0); }

static float ew_rate(float rate, uint32_t k) {
    /* Running mean for the first samples, EW after: fast, unbiased start. */
    float r0 = 1.0f / (float)(k + 1);
    return r0 > rate ? r0 : rate;
}

static float clampf(float x, float lo, float hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/*
 * One step (rate a) of a slow EW mean *mu and variance *var of x. Once k
 * (the steps taken so far) reaches 2, x is first clamped to 3 sd around *mu,
 * so a lasting change moves the baseline gradually, not all at once.
 */
static void ew_baseline(float *mu, float *var, float x, double sd, float a, uint32_t k) {
    float lim = (float)(3.0 * sd);
    float xw = k >= 2 ? clampf(x, *mu - lim, *mu + lim) : x;
    float delta = xw - *mu;
    *mu += a * delta;
    *var = (1.0f - a) * (*var + a * delta * delta);
}

/* x limited to [-lim, lim]; NaN x passes through. */
static double clip_abs(double x, double lim) {
    return x > lim ? lim : x < -lim ? -lim : x;
}

const char *an_kind_name(int kind) {
    static const char *const names[AN_KIND_COUNT] = {"none", "spike", "shift", "trend",
                                                     "variance", "stuck", "silence"};
    return kind > 0 && kind < AN_KIND_COUNT ? names[kind] : names[0];
}

an_kind an_state_kind(const an_state *s) { return (an_kind)s->kind; }

/*
 * Provisional classification of a rising level, from what the state shows
 * right after the sample: a suspicious run of repeats is a stuck sensor, a
 * sample that is itself far off (>= 4 sigmas) a spike, anything else (the
 * likelihood or anchored channel building up over several samples) a
 * shift. Trend and variance are not told apart yet.
 */
static an_kind provisional_kind(const an_state *s, int run_odd) {
    if (run_odd && s->same_n >= 1.0f) return AN_KIND_STUCK;
    if (s->z >= 4.0f) return AN_KIND_SPIKE;
    return AN_KIND_SHIFT;
}

float an_update(an_state *s, const an_cfg *c, double v, const float *q,
                const float *qlev, int Q, int *level) {
    return an_update_path(s, c, v, q, qlev, Q, NULL, 0, level);
}

float an_update_path(an_state *s, const an_cfg *c, double v, const float *q,
                     const float *qlev, int Q, const float *path, int H, int *level) {
    if (!isfinite(v) || q == NULL || Q < 1) goto out;
    if (H < 1) path = NULL;
    for (int i = 0; i < Q; i++)
        if (!isfinite(q[i])) goto out;

    int mid = Q / 2;
    double res = v - (double)q[mid];
    double d = res - (double)s->bias;
    double ad = fabs(d);

    /* Interval sigma on v's side of the median (0 when Q == 1 or degenerate). */
    double sig_q = 0.0;
    if (Q >= 3 && qlev) {
        int j = d >= 0 ? Q - 1 : 0;
        double zq = fabs(probit_level(qlev[j]));
        double w = fabs((double)q[j] - (double)q[mid]);
        if (zq > 1e-3 && isfinite(zq)) sig_q = w / zq;
    }
    double sig_e = (double)s->mae / AN_MEAN_ABS_N;
    double sig_i = sig_q * (double)s->ratio / AN_MEAN_ABS_N;
    double wi = sig_q > 0.0 ? (double)c->interval_weight : 0.0;
    double sigma = wi * sig_i + (1.0 - wi) * sig_e;
    double floor_ = 1e-6 * (fabs(v) + fabs((double)q[mid])) + 1e-30;
    if (0.5 * (double)s->step > floor_) floor_ = 0.5 * (double)s->step;
    if (!(sigma > floor_)) sigma = floor_;

    float z = 0.0f, zs = 0.0f;
    int run_odd = 0; /* the current run of repeats is already suspicious */
    double zraw = 0.0;
    /* Persistence forecast, calibrated like the model's. */
    double dn = v - (double)s->last_v - (double)s->nbias;
    double sig_n = (double)s->nmae / AN_MEAN_ABS_N;
    if (!(sig_n > floor_)) sig_n = floor_;
    if (s->n >= 3) {
        zraw = ad / sigma;
        if (c->guard > 0.0f && fabs(dn) / sig_n < zraw) zraw = fabs(dn) / sig_n;
        z = zraw > (double)c->zcap ? c->zcap : (float)zraw;
        zs = d >= 0 ? z : -z;
    }
    s->z = z;

    /* Likelihood layer: judge the short mean against its long-run law,
     * then learn (winsorized, so an anomaly is not absorbed at once). */
    float sc = 0.0f;
    if (s->n >= AN_N_CAL) {
        uint32_t k = s->n - AN_N_CAL;
        s->m_short += ew_rate(c->short_rate, k) * (z - s->m_short);
        double sd = sqrt((double)s->var_long);
        double sdf = 0.1 * (double)s->mu_long + 1e-3;
        if (sd < sdf) sd = sdf;
        if (k >= 2) {
            double x = ((double)s->m_short - (double)s->mu_long) / sd;
            float hi = tail_score(x);
            float lo = tail_score_w(-x, c->calm_weight);
            /* Two-sided tail of the sample alone: P = 2 Q(z), so -log10 P
             * = -log10 Q(z) - log10 2. */
            float pt = tail_score_w(zraw, c->point_weight);
            sc = hi > lo ? hi : lo;
            if (pt > sc) sc = pt;
        }
        if (c->stuck_weight > 0.0f && s->same_n >= 1.0f && k >= 2) {
            /* -log10 P of the run, P = p^run; mapped like every tail. */
            double p = (double)s->p_same < 0.01 ? 0.01 : (double)s->p_same;
            double pc = (double)s->p_cont < 0.01 ? 0.01 : (double)s->p_cont;
            double lg = log10(p) + ((double)s->same_n - 1.0) * log10(pc);
            double st = 1.0 - exp(c->stuck_weight * lg / AN_LOG_SPAN);
            float stf = st >= 1.0 ? 1.0f : st <= 0.0 ? 0.0f : (float)st;
            run_odd = stf >= c->clear;
            /* Once the run is itself an alert, a longer run is no news:
             * the channel then holds the score just above clear, which
             * keeps the raised level (hysteresis) without re-alerting. */
            double prev_lg = s->same_n >= 2.0f ? lg - log10(pc) : 0.0;
            double prev_st = 1.0 - exp(c->stuck_weight * prev_lg / AN_LOG_SPAN);
            /* The margin keeps rounding from holding a run that never alerted. */
            if (prev_st >= (double)c->alert + 1e-3 && stf > c->clear) stf = c->clear + 0.5f * (c->warn - c->clear);
            if (stf > sc) sc = stf;
        }
        if (c->regime_rate > 0.0f) {
            double fd = fabs((double)q[mid] - (double)s->f_slow);
            /* In units of the larger of the forecast's usual wander and the
             * forecast error: a smooth forecast of a noisy series must
             * move by more than the noise to count. */
            double fs = (double)s->f_dev / AN_MEAN_ABS_N;
            if (fs < sigma) fs = sigma;
            if (!(fs > floor_)) fs = floor_;
            if (k >= 2) {
                float rg = tail_score_w(fd / fs, c->regime_weight);
                if (rg > sc) sc = rg;
            }
            float ra = ew_rate(c->regime_rate, k);
            double fw = fd < 4.0 * fs || k < 2 ? fd : 4.0 * fs;
            s->f_dev += ra * ((float)fw - s->f_dev);
            s->f_slow += ra * (q[mid] - s->f_slow);
        }
        if (c->drift_rate > 0.0f) {
            s->d_short += ew_rate(c->drift_rate, k) * (zs - s->d_short);
            double dsd = sqrt((double)s->d_var);
            if (dsd < 0.05) dsd = 0.05;
            if (k >= 2) {
                float dr = tail_score(fabs((double)s->d_short - (double)s->d_mu) / dsd);
                if (dr > sc) sc = dr;
            }
            ew_baseline(&s->d_mu, &s->d_var, s->d_short, dsd, ew_rate(c->long_rate, k), k);
        }
        int K = (int)c->anchor_len < H ? (int)c->anchor_len : H;
        if (K >= 2 && c->anchor_weight > 0.0f) {
            /* Anchored blocks: the mean of v over a block of K samples
             * against the mean of the forecast path made before the
             * block's first sample. A one-step forecaster follows a level
             * shift or a slow fault within a few samples, so its one-step
             * residuals stop being surprising; the forecast made before
             * the change does not move, and the whole block's mean sits
             * off it. The block residual is judged against its own
             * running bias and mean absolute size on this series, so the
             * score means the same everywhere. Two blocks staggered by K/2
             * bound the wait to about K/2 samples after a block ends. A
             * block opens only on a sample that has the path (horizon 1);
             * a gap inside a block just stretches it by the missing steps. */
            /* Block 0 reopens at once; block 1 opens K/2 samples into block 0. */
            int open[2] = {s->a_cnt[0] > 0.0f, s->a_cnt[1] > 0.0f};
            int want[2] = {!open[0], !open[1] && s->a_cnt[0] == (float)(K / 2)};
            /* The block's reference: the mean of the path's first K
             * medians. Only those are read, so only they must be finite
             * (a non-finite one makes the sum non-finite); checked when a
             * block opens, not on every sample. */
            double ref = 0.0;
            if (path && (want[0] || want[1])) {
                for (int i = 0; i < K; i++) ref += (double)path[(size_t)i * (size_t)Q + (size_t)mid];
                if (!isfinite(ref)) path = NULL;
            }
            int start[2] = {path && want[0], path && want[1]};
            for (int j = 0; j < 2; j++) {
                if (!start[j]) continue;
                s->a_ref[j] = (float)(ref / K);
                s->a_acc[j] = 0.0f;
            }
            for (int j = 0; j < 2; j++) {
                if (!open[j] && !start[j]) continue;
                s->a_acc[j] += (float)(v - (double)s->a_ref[j]);
                s->a_cnt[j] += 1.0f;
                if (s->a_cnt[j] < (float)K) continue;
                s->a_cnt[j] = 0.0f;
                double R = (double)s->a_acc[j] / K, dr = R - (double)s->a_bias;
                /* Floored like the one-step scale (half the typical
                 * nonzero step): on quantized or long-flat sensors the
                 * block residuals would otherwise shrink to nothing.
                 * (A floor of step / sqrt(K) was tried: far more false
                 * alarms on SKAB.) */
                double as = (double)s->a_mae / AN_MEAN_ABS_N;
                if (!(as > floor_)) as = floor_;
                if (s->a_n >= AN_A_CAL) {
                    float an = tail_score_w(fabs(dr) / as, c->anchor_weight);
                    if (an > sc) sc = an;
                    /* Winsorized, so a lasting change is not learned at once. */
                    dr = clip_abs(dr, 4.0 * as);
                }
                float aa = ew_rate(c->anchor_rate, (uint32_t)s->a_n);
                s->a_bias += aa * (float)dr;
                s->a_mae += aa * ((float)fabs(dr) - s->a_mae);
                if (s->a_n < 1e6f) s->a_n += 1.0f;
            }
        }
        ew_baseline(&s->mu_long, &s->var_long, s->m_short, sd, ew_rate(c->long_rate, k), k);
    }

    /* Error calibration, winsorized at 4 sigma once it is trusted. */
    {
        float a = ew_rate(c->err_rate, s->n);
        double dw = s->n >= 3 ? clip_abs(d, 4.0 * sigma) : d;
        s->bias += a * (float)dw;
        s->mae += a * ((float)fabs(dw) - s->mae);
        if (sig_q > 0.0) {
            double u = fabs(dw) / sig_q;
            if (s->n >= 3 && s->ratio > 0.0f && u > 5.0 * s->ratio) u = 5.0 * s->ratio;
            s->ratio += a * ((float)u - s->ratio);
        }
        /* Resolution: typical size of a nonzero change between judged values. */
        double dv = fabs(v - (double)s->last_v);
        if (s->n > 0 && dv > 0.0) {
            if (s->step == 0.0f) s->step = (float)dv;
            else s->step += c->err_rate * ((float)(dv < 10.0 * s->step ? dv : 10.0 * s->step) - s->step);
        }
        if (s->n > 0) {
            double dnw = s->n >= 3 ? clip_abs(dn, 4.0 * sig_n) : dn;
            s->nbias += a * (float)dnw;
            s->nmae += a * ((float)fabs(dnw) - s->nmae);
        }
        if (s->n > 0) {
            int same = (float)v == s->last_v;
            /* A run that is already suspicious does not teach the repeat
             * rates, or a frozen sensor would slowly make itself normal. */
            if (!(same && run_odd)) {
                s->p_same += a * ((float)same - s->p_same);
                if (s->same_n >= 1.0f) s->p_cont += a * ((float)same - s->p_cont);
            }
            s->same_n = same ? s->same_n + 1.0f : 0.0f;
            if (s->same_n > 1e6f) s->same_n = 1e6f;
        }
        s->last_v = (float)v;
        if (!isfinite(s->bias) || !isfinite(s->mae) || !isfinite(s->ratio) ||
            !isfinite(s->last_v) || !isfinite(s->step) || !isfinite(s->nbias) ||
            !isfinite(s->nmae)) {
            /* Unreachable with finite inputs below ~1e38; restart calibration. */
            s->bias = s->mae = s->ratio = s->last_v = s->step = s->nbias = s->nmae = 0.0f;
            s->n = 0;
        }
    }

    s->n++;
    if (s->n <= c->warmup) sc = 0.0f;
    if (!(sc >= 0.0f)) sc = 0.0f;
    if (sc > 1.0f) sc = 1.0f;
    s->score = sc;

    /* Levels with hysteresis: up at warn/alert, down to 0 only below clear. */
    if (s->n > c->warmup) {
        int32_t before = s->level;
        if (sc >= c->alert) s->level = 2;
        else if (sc >= c->warn && s->level < 1) s->level = 1;
        else if (sc < c->clear) s->level = 0;
        if (s->level > before) s->kind = provisional_kind(s, run_odd);
    }
out:
    if (level) *level = s->level;
    return s->score;
}

void an_save(const an_state *s, uint8_t *buf) {
    rc_put_u32(buf, AN_MAGIC);
    rc_put_u32(buf + 4, s->n);
    /* The kind rides in the level word: the blob stays 128 bytes and
     * blobs saved before it existed read as AN_KIND_NONE. */
    rc_put_u32(buf + 8, (uint32_t)s->level | (uint32_t)s->kind << 8);
    const float f[AN_NF] = {s->score, s->z, s->bias, s->mae, s->ratio, s->last_v, s->step,
                            s->nbias, s->nmae, s->m_short, s->mu_long, s->var_long,
                            s->d_short, s->d_mu, s->d_var, s->f_slow, s->f_dev,
                            s->p_same, s->same_n, s->p_cont,
                            s->a_ref[0], s->a_ref[1], s->a_acc[0], s->a_acc[1],
                            s->a_cnt[0], s->a_cnt[1], s->a_bias, s->a_mae, s->a_n};
    for (int i = 0; i < AN_NF; i++) rc_put_f32(buf + 12 + 4 * i, f[i]);
}

rc_err an_load(an_state *s, const uint8_t *buf, size_t len) {
    if (len < AN_BLOB_SIZE || rc_get_u32(buf) != AN_MAGIC) return RC_ERR_FORMAT;
    an_state t;
    t.n = rc_get_u32(buf + 4);
    uint32_t lk = rc_get_u32(buf + 8);
    t.level = (int32_t)(lk & 0xffu);
    t.kind = (int32_t)(lk >> 8);
    if (t.level > 2 || t.kind >= AN_KIND_COUNT) return RC_ERR_FORMAT;
    float f[AN_NF];
    for (int i = 0; i < AN_NF; i++) {
        f[i] = rc_get_f32(buf + 12 + 4 * i);
        if (!isfinite(f[i])) return RC_ERR_NUMERIC;
    }
    t.score = f[0]; t.z = f[1]; t.bias = f[2]; t.mae = f[3]; t.ratio = f[4];
    t.last_v = f[5]; t.step = f[6]; t.nbias = f[7]; t.nmae = f[8];
    t.m_short = f[9]; t.mu_long = f[10]; t.var_long = f[11];
    t.d_short = f[12]; t.d_mu = f[13]; t.d_var = f[14];
    t.f_slow = f[15]; t.f_dev = f[16];
    t.p_same = f[17]; t.same_n = f[18]; t.p_cont = f[19];
    t.a_ref[0] = f[20]; t.a_ref[1] = f[21]; t.a_acc[0] = f[22]; t.a_acc[1] = f[23];
    t.a_cnt[0] = f[24]; t.a_cnt[1] = f[25]; t.a_bias = f[26]; t.a_mae = f[27]; t.a_n = f[28];
    if (!(t.score >= 0.0f && t.score <= 1.0f) || t.mae < 0.0f || t.ratio < 0.0f ||
        t.var_long < 0.0f || t.step < 0.0f || t.nmae < 0.0f ||
        t.d_var < 0.0f || t.f_dev < 0.0f ||
        t.p_same < 0.0f || t.p_same > 1.0f || t.same_n < 0.0f ||
        t.p_cont < 0.0f || t.p_cont > 1.0f ||
        t.a_cnt[0] < 0.0f || t.a_cnt[1] < 0.0f || t.a_mae < 0.0f || t.a_n < 0.0f)
        return RC_ERR_FORMAT;
    *s = t;
    return RC_OK;
}
