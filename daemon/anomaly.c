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

#define AN_MAGIC 0x34534e41u /* "ANS4" little-endian: tails learned on z, the alarm budget */
#define AN_MAGIC_V3 0x33534e41u /* "ANS3": loaded (tails restart); ANS2: the channels before issue 19 (refused) */
/* Judged samples used to seed the statistics before any evidence counts. */
#define AN_N_CAL 10u
/* Scores are 1 - exp(-L / AN_LOG_SPAN) for evidence L = -log10 P. */
#define AN_LOG_SPAN 8.656170245 /* 6 / ln 2 */
/* z from which each channel's tail is learned, and the Gaussian law's
 * exceedance rate (one-sided), mean excess and mean squared excess beyond it:
 * the starting point. */
#define AN_Z0 2.0
#define AN_P_Z0 0.02275f
#define AN_EXCESS_Z0 0.3732f
#define AN_EXCESS2_Z0 0.2541f
/* Largest tail shape trusted (the moments estimate needs xi < 0.5), and
 * the cap on one excess, in mean excesses. */
#define AN_XI_MAX 0.45
#define AN_EXCESS_CAP 20.0
/* Samples the tail model's starting point is worth. */
#define AN_TAIL_PRIOR_N 50.0f
/* Evidence per sample entering the likelihood's short mean is capped, so
 * one huge sample moves it by a bounded amount (the point evidence has it). */
#define AN_LIK_CAP 6.0f
/* EW weight per sample of the forecast-error and resolution statistics. */
#define AN_ERR_RATE 0.0075f
/* Mean of |N(0,1)|: converts a mean absolute error into a sigma. */
#define AN_MEAN_ABS_N 0.7978845608f
/* Smallest evidence (decades) the alarm budget may map to warn's level. */
#define AN_THR_MIN 0.5
/* Share of one sign among a block's residuals from which a change is a trend. */
#define AN_TREND_SIGN 0.5
/* Blocks judged before the anchored channel's calibration is trusted. */
#define AN_A_CAL 8.0f
/* Sampling period assumed while a series' own is unknown (seconds), and the
 * bounds of the alarm budget's per-sample rate. */
#define AN_DT_UNKNOWN 60.0
#define AN_RATE_MIN 1e-7
#define AN_RATE_MAX 0.1

void an_cfg_default(an_cfg *c) {
    c->warn = 0.5f;   /* tail probability 1e-6 */
    c->alert = 0.75f; /* tail probability 1e-12 */
    c->clear = 0.3f;  /* tail probability ~5e-2 */
    c->warmup = 60;
    /* Chosen on the tuning halves of bench/anomaly_real.c and
     * bench/anomaly_bench.c (bench/RESULTS.md). */
    c->tail_rate = 0.0002f;
    c->short_rate = 0.7f;
    c->long_rate = 0.01f;
    c->anchor_len = 24.0f;
    c->anchor_rate = 0.1f;
    c->stuck_weight = 0.5f;
    c->alarm_budget = 0.25f;
    c->silence = 5.0f;
}

static int in01(float x) { return x >= 0.0f && x <= 1.0f; }
static int rate_ok(float x) { return x > 0.0f && x <= 1.0f; }

rc_err an_cfg_check(const an_cfg *c) {
    if (!in01(c->warn) || !in01(c->alert) || !in01(c->clear)) return RC_ERR_CONFIG;
    if (!(c->clear <= c->warn && c->warn <= c->alert)) return RC_ERR_CONFIG;
    if (!rate_ok(c->tail_rate) || !rate_ok(c->short_rate) || !rate_ok(c->long_rate)) return RC_ERR_CONFIG;
    if (!in01(c->stuck_weight) || !(c->alarm_budget >= 0.0f && c->alarm_budget <= 1e5f)) return RC_ERR_CONFIG;
    if (!(c->anchor_len == 0.0f || (c->anchor_len >= 2.0f && c->anchor_len <= 4096.0f)) || !rate_ok(c->anchor_rate) ||
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
    K(warn), K(alert), K(clear), K(tail_rate), K(short_rate), K(long_rate), K(stuck_weight),
    K(anchor_len), K(anchor_rate), K(alarm_budget), K(silence),
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
    int k = snprintf(buf, len, "warmup %u", c->warmup);
    size_t at = k > 0 ? (size_t)k : 0;
    for (size_t i = 0; i < sizeof an_keys / sizeof an_keys[0] && at < len; i++) {
        k = snprintf(buf + at, len - at, ", %s %g", an_keys[i].name,
                     (double)*(const float *)((const char *)c + an_keys[i].off));
        if (k < 0) break;
        at += (size_t)k;
    }
}

void an_init(an_state *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < AN_NCH; i++) {
        s->ev_p[i] = i == 0 ? 2.0f * AN_P_Z0 : AN_P_Z0; /* the point channel's |u| is two-sided */
        s->ev_b[i] = AN_EXCESS_Z0;
        s->ev_b2[i] = AN_EXCESS2_Z0;
    }
}

const char *an_kind_name(int kind) {
    static const char *const names[AN_KIND_COUNT] = {"none", "spike", "shift", "trend",
                                                     "variance", "stuck", "silence"};
    return kind > 0 && kind < AN_KIND_COUNT ? names[kind] : names[0];
}

an_kind an_state_kind(const an_state *s) { return (an_kind)s->kind; }

/* Standard normal quantile for p in (0,1), Winitzki's closed form for
 * erfinv (relative error ~2e-3: plenty, since the interval it converts is
 * itself calibrated to a coverage, not to a shape). */
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

/* -log10 Q(x), Q the standard normal upper tail; 0 for x <= 0 (evidence
 * never negative). */
static double ev_gauss(double x) {
    if (!(x > 0.0)) return 0.0;
    if (x > 1e6) x = 1e6;
    if (x < 8.0) return -log10(0.5 * erfc(x / M_SQRT2));
    /* Mills-ratio asymptote, where erfc would underflow: Q(x) ~ phi(x)/x. */
    return (0.5 * x * x + log(x * sqrt(2.0 * M_PI))) / M_LN10;
}

/* Evidence L (-log10 P) to a score: 1 - e^(-L/span), monotone over the
 * whole tail (no plateau at 1 that would tie a 7-sigma event with a
 * 30-sigma one), P = 1e-6 -> 0.5, P = 1e-12 -> 0.75. */
static float to_score(double L) {
    double sc = 1.0 - exp(-L / AN_LOG_SPAN);
    return sc >= 1.0 ? 1.0f : sc > 0.0 ? (float)sc : 0.0f;
}

static float ew_rate(float rate, uint32_t k) {
    /* Running mean for the first samples, EW after: fast, unbiased start. */
    float r0 = 1.0f / (float)(k + 1);
    return r0 > rate ? r0 : rate;
}

static float clampf(float x, float lo, float hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/*
 * A channel's evidence from its standardized statistic z (a Gaussian-
 * equivalent z-score: the point residual's |u|, the likelihood's
 * standardized short mean, the anchored block's residual), recalibrated by
 * the series' own history of z: up to AN_Z0 the Gaussian law is taken as it
 * is; beyond, z's excesses follow a generalized Pareto law with the
 * exceedance rate, scale and shape this series showed lately (peaks over
 * threshold, as SPOT does: Siffer et al. 2017; the shape by moments, so it
 * stays O(1)). A series with heavy tails or bursts thus does not call its
 * usual bursts rare, and a power-law tail is followed as such, not cut off
 * as an exponential one would be. Never more than the Gaussian evidence
 * (nominal): a tail learned lighter than the law's is not trusted to be
 * sharper.
 */
static double tail_ev(const an_state *s, int ch, double z, double nominal) {
    if (!(z > AN_Z0)) return nominal;
    double m = (double)s->ev_b[ch], m2 = (double)s->ev_b2[ch];
    double var = m2 - m * m, ratio = var > 1e-12 ? m * m / var : 1.0;
    double xi = 0.5 * (1.0 - ratio), sigma = 0.5 * m * (1.0 + ratio);
    if (xi < 0.0) xi = 0.0, sigma = m; /* lighter than exponential: taken as exponential */
    if (xi > AN_XI_MAX) xi = AN_XI_MAX, sigma = m * (1.0 - xi);
    if (!(sigma > 1e-6)) sigma = 1e-6;
    double x = z - AN_Z0;
    double lt = -log10((double)s->ev_p[ch]) +
                (xi > 1e-6 ? log10(1.0 + xi * x / sigma) / xi : x / (sigma * M_LN10));
    return lt < nominal ? lt : nominal;
}

/* Learns channel ch's tail from its statistic z (after judging): the
 * excess winsorized, so one anomaly is not absorbed at once. k counts the
 * channel's judgements so far. */
static void learn_tail(an_state *s, const an_cfg *c, int ch, double z, uint32_t k) {
    float r = ew_rate(c->tail_rate, (uint32_t)((float)k + AN_TAIL_PRIOR_N));
    int ex = z > AN_Z0;
    s->ev_p[ch] += r * ((float)ex - s->ev_p[ch]);
    if (s->ev_p[ch] < 1e-5f) s->ev_p[ch] = 1e-5f;
    if (!ex) return;
    /* EW over exceedances, with about the memory the rate gives samples. */
    float re = clampf(0.25f * r / (s->ev_p[ch] > 0.01f ? s->ev_p[ch] : 0.01f), 0.0f, 1.0f);
    double e = z - AN_Z0, lim = AN_EXCESS_CAP * (double)s->ev_b[ch];
    if (e > lim) e = lim;
    s->ev_b[ch] += re * ((float)e - s->ev_b[ch]);
    s->ev_b2[ch] += re * ((float)(e * e) - s->ev_b2[ch]);
    s->ev_b[ch] = clampf(s->ev_b[ch], 0.01f, 100.0f);
    s->ev_b2[ch] = clampf(s->ev_b2[ch], s->ev_b[ch] * s->ev_b[ch], 1e4f);
}

/* The stuck-sensor evidence of the current run, -log10 of p * c^(run-1). */
static double ev_stuck(const an_state *s, double run) {
    double p = (double)s->p_same < 0.01 ? 0.01 : (double)s->p_same;
    double pc = (double)s->p_cont < 0.01 ? 0.01 : (double)s->p_cont;
    return -(log10(p) + (run - 1.0) * log10(pc));
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

enum { EV_POINT, EV_LIK, EV_ANCHOR, EV_STUCK, EV_N }; /* the first AN_NCH have learned tails */

/* x limited to [-lim, lim]; NaN x passes through. */
static double clip_abs(double x, double lim) {
    return x > lim ? lim : x < -lim ? -lim : x;
}

/*
 * Anchored blocks: the mean of v over a block of K samples against the
 * mean of the median forecast path made before the block's first sample.
 * A one-step forecaster follows a level shift or a slow fault within a
 * few samples, so its one-step residuals stop being surprising; the
 * forecast made before the change does not move, and the whole block's
 * mean sits off it. The block residual is judged against its own running
 * bias and mean absolute size on this series. Two blocks staggered by K/2
 * bound the wait to about K/2 samples after a block ends. A block opens
 * only on a sample that has the path (horizon 1); a gap inside a block
 * just stretches it. Returns the evidence of a block completed now, or 0.
 */
static double anchored(an_state *s, const an_cfg *c, double v, double res, int odd, const float *path, int K,
                       int Q, double floor_, int *judged) {
    const int mid = Q / 2;
    /* A sample that is itself an alert on the point evidence (a spike, or
     * the first samples of a jump) stays out of the blocks, which wait one
     * sample more: one far value would otherwise pass for a shift of the
     * whole block it falls in. After a real shift the forecaster follows
     * within a few samples and the blocks see the new level. */
    if (odd) return 0.0;
    double best = 0.0;
    /* Block 0 reopens at once; block 1 opens K/2 samples into block 0. */
    int open[2] = {s->a_cnt[0] > 0.0f, s->a_cnt[1] > 0.0f};
    int want[2] = {!open[0], !open[1] && s->a_cnt[0] == (float)(K / 2)};
    /* The reference: the mean of the path's first K medians, which must
     * be finite (checked when a block opens, not on every sample). */
    double ref = 0.0;
    /* A path made right after an odd sample (the last score at or above
     * clear) is no reference: a forecaster that followed a spike forecasts
     * its echo, and a block measured against that would report a shift when
     * the series simply went on. The block opens on a later sample. */
    if (s->score >= c->warn) path = NULL;
    if (path && (want[0] || want[1])) {
        for (int i = 0; i < K; i++) ref += (double)path[(size_t)i * (size_t)Q + (size_t)mid];
        if (!isfinite(ref)) path = NULL;
    }
    int start[2] = {path && want[0], path && want[1]};
    for (int j = 0; j < 2; j++) {
        if (start[j]) {
            s->a_ref[j] = (float)(ref / K);
            s->a_acc[j] = 0.0f;
            s->a_sgn[j] = 0.0f;
        }
        if (!open[j] && !start[j]) continue;
        s->a_acc[j] += (float)(v - (double)s->a_ref[j]);
        /* EW over about half a block: the latest residuals decide, so a
         * ramp caught by a block that began before it is still a trend. */
        s->a_sgn[j] = s->a_sgn[j] * (1.0f - 2.0f / (float)K) + (res > 0.0 ? 1.0f : res < 0.0 ? -1.0f : 0.0f);
        s->a_cnt[j] += 1.0f;
        if (s->a_cnt[j] < (float)K) continue;
        s->a_cnt[j] = 0.0f;
        double R = (double)s->a_acc[j] / K, dr = R - (double)s->a_bias;
        /* Floored like the one-step scale (half the typical nonzero step):
         * on quantized or long-flat sensors the block residuals would
         * otherwise shrink to nothing. */
        double as = (double)s->a_mae / AN_MEAN_ABS_N;
        if (!(as > floor_)) as = floor_;
        if (s->a_n >= AN_A_CAL) {
            double e = fabs(dr) / as;
            *judged = 1;
            if (e > best) {
                best = e;
                /* The one-step residuals' balance over the block: a
                 * forecaster that followed a jump has residuals of both
                 * signs again (a shift); one that keeps lagging behind a
                 * drift has them mostly of one sign (a trend). */
                s->a_trend = fabs((double)s->a_sgn[j]) >= AN_TREND_SIGN * 0.5 * K;
            }
            /* Winsorized, so a lasting change is not learned at once. */
            dr = clip_abs(dr, 4.0 * as);
        }
        float aa = ew_rate(c->anchor_rate, (uint32_t)s->a_n);
        s->a_bias += aa * (float)dr;
        s->a_mae += aa * ((float)fabs(dr) - s->a_mae);
        if (s->a_n < 1e6f) s->a_n += 1.0f;
    }
    return best;
}

/* Kind of a rising level from the channel with the most evidence. */
static an_kind kind_of(const an_state *s, int ch) {
    switch (ch) {
    case EV_STUCK: return AN_KIND_STUCK;
    case EV_LIK: return AN_KIND_VARIANCE;
    case EV_ANCHOR: return s->a_trend ? AN_KIND_TREND : AN_KIND_SHIFT;
    default: return AN_KIND_SPIKE;
    }
}

float an_update(an_state *s, const an_cfg *c, double v, const float *q,
                const float *qlev, int Q, int *level) {
    return an_update_path(s, c, v, q, qlev, Q, NULL, 0, 0.0, level);
}

/* The alarm budget per sample: the day's budget spread over the samples
 * of a day at this series' sampling period (one a minute while the period
 * is unknown). */
static double budget_rate(const an_cfg *c, double dt) {
    if (!(dt > 0.0) || !isfinite(dt)) dt = AN_DT_UNKNOWN;
    double r = (double)c->alarm_budget * dt / 86400.0;
    return r < AN_RATE_MIN ? AN_RATE_MIN : r > AN_RATE_MAX ? AN_RATE_MAX : r;
}

/* The factor on a budgeted channel's evidence (judged once per `every`
 * samples) that puts warn's level at the tail probability its share of the
 * budget allows; 1 without a budget. */
static double budget_scale(const an_cfg *c, double dt, double every) {
    if (!(c->alarm_budget > 0.0f)) return 1.0;
    const double lw = -AN_LOG_SPAN * log(1.0 - (double)c->warn);
    double thr = -log10(budget_rate(c, dt) / AN_NTHR * every);
    if (thr < AN_THR_MIN) thr = AN_THR_MIN;
    return lw / thr;
}

float an_update_path(an_state *s, const an_cfg *c, double v, const float *q,
                     const float *qlev, int Q, const float *path, int H, double dt, int *level) {
    if (!isfinite(v) || q == NULL || Q < 1) goto out;
    if (H < 1) path = NULL;
    for (int i = 0; i < Q; i++)
        if (!isfinite(q[i])) goto out;

    const int mid = Q / 2;
    const double med = (double)q[mid], res = v - med;
    /* Sigma on v's side of the median, from the calibrated interval. */
    double sig = 0.0;
    if (Q >= 3 && qlev) {
        int j = res >= 0 ? Q - 1 : 0;
        double zq = fabs(probit_level(qlev[j]));
        if (zq > 1e-3 && isfinite(zq)) sig = fabs((double)q[j] - med) / zq;
    }
    /* Never narrower than the series' own recent errors (a Gaussian sigma
     * from their mean absolute size): an interval calibrated on average can
     * be too narrow where the forecaster is poor, as on sensors unlike its
     * training data, and every residual would then look rare. */
    const double sig_e = (double)s->mae / AN_MEAN_ABS_N;
    if (s->n >= 3 && sig_e > sig) sig = sig_e;
    double floor_ = 1e-6 * (fabs(v) + fabs(med)) + 1e-30;
    if (0.5 * (double)s->step > floor_) floor_ = 0.5 * (double)s->step;
    if (!(sig > floor_)) sig = floor_;
    const double u = res / sig;

    double ev[EV_N] = {0}, zc[AN_NCH] = {0};
    /* The alarm budget's factors (budget_scale): point and likelihood are
     * judged every sample, the anchored channel once per block end. */
    double scale_sample = 1.0, scale_block = 1.0;
    int run_odd = 0; /* the current run of repeats is already suspicious */
    if (s->n >= AN_N_CAL) {
        const uint32_t k = s->n - AN_N_CAL;
        /* Point: the two-sided Gaussian-equivalent tail of u. */
        double nominal = ev_gauss(fabs(u)) - M_LN2 / M_LN10;
        if (nominal < 0.0) nominal = 0.0;
        zc[EV_POINT] = fabs(u);
        ev[EV_POINT] = tail_ev(s, EV_POINT, zc[EV_POINT], nominal);
        /* Likelihood: the short mean of the point evidence against its own law. */
        double lc = ev[EV_POINT] < AN_LIK_CAP ? ev[EV_POINT] : AN_LIK_CAP;
        s->m_short += ew_rate(c->short_rate, k) * ((float)lc - s->m_short);
        double sd = sqrt((double)s->var_long), sdf = 0.1 * (double)s->mu_long + 0.02;
        if (sd < sdf) sd = sdf;
        if (k >= 2) {
            zc[EV_LIK] = ((double)s->m_short - (double)s->mu_long) / sd;
            ev[EV_LIK] = tail_ev(s, EV_LIK, zc[EV_LIK], ev_gauss(zc[EV_LIK]));
        }
        ew_baseline(&s->mu_long, &s->var_long, s->m_short, sd, ew_rate(c->long_rate, k), k);
        scale_sample = budget_scale(c, dt, 1.0);
        int K = (int)c->anchor_len < H ? (int)c->anchor_len : H;
        if (K >= 2) {
            int judged = 0;
            int odd = to_score(ev[EV_POINT] * scale_sample) >= c->warn;
            zc[EV_ANCHOR] = anchored(s, c, v, res, odd, path, K, Q, floor_, &judged);
            /* A block was judged: the anchored channel's tail learns from
             * block ends only, and its share of the budget is per block end
             * (one per K/2 samples). */
            if (judged) {
                scale_block = budget_scale(c, dt, 0.5 * K);
                ev[EV_ANCHOR] = tail_ev(s, EV_ANCHOR, zc[EV_ANCHOR], ev_gauss(zc[EV_ANCHOR]));
                learn_tail(s, c, EV_ANCHOR, zc[EV_ANCHOR], (uint32_t)s->a_n);
            }
        }
        if (k >= 2) {
            for (int ch = 0; ch < EV_ANCHOR; ch++) learn_tail(s, c, ch, zc[ch], k);
        }
        if (c->stuck_weight > 0.0f && k >= 2 && (float)v == s->last_v) {
            /* The run of repeats including this sample. */
            double run = (double)s->same_n + 1.0;
            {
                double st = c->stuck_weight * ev_stuck(s, run);
                run_odd = to_score(st) >= c->clear;
                /* Once the run is itself an alert, a longer run is no news:
                 * held just above clear, the raised level stays (hysteresis)
                 * without re-alerting. The margin keeps rounding from holding
                 * a run that never alerted. */
                double prev_st = run >= 2.0 ? c->stuck_weight * ev_stuck(s, run - 1.0) : 0.0;
                if (to_score(prev_st) >= c->alert + 1e-3f && to_score(st) > c->clear)
                    st = -AN_LOG_SPAN * log(1.0 - (double)(c->clear + 0.5f * (c->warn - c->clear)));
                ev[EV_STUCK] = st;
            }
        }
    }
    /* The alarm budget: each channel's evidence is rescaled so that warn's
     * level sits at the tail probability its share of the day's budget
     * allows per judgement at this sampling rate. The learned tails make
     * that evidence this series' own -log10 P, so a series raises about
     * alarm_budget alerts a day from its own bursts, whatever its sampling
     * rate, while a quiet one keeps its sensitivity. Stuck runs aside: their
     * evidence already rests on the series' own repeat rates. (An anchored
     * channel not judged now has no evidence to scale.) */
    ev[EV_POINT] *= scale_sample;
    ev[EV_LIK] *= scale_sample;
    ev[EV_ANCHOR] *= scale_block;
    int best = EV_POINT;
    for (int i = 1; i < EV_N; i++)
        if (ev[i] > ev[best]) best = i;
    double L = ev[best];
    float sc = to_score(L);
    /* The likelihood follows the point evidence within a sample or two:
     * when the sample is itself an alert, it is a spike, not a variance
     * change, whichever channel reads higher. */
    if (best == EV_LIK && to_score(ev[EV_POINT]) >= c->warn) best = EV_POINT;

    /* Learning, after judging. */
    {
        float a = ew_rate(AN_ERR_RATE, s->n);
        /* Forecast errors, winsorized at 4 sigmas once there are a few. */
        double ar = fabs(res), lim = 4.0 * sig;
        s->mae += a * (float)((s->n >= 3 && ar > lim ? lim : ar) - (double)s->mae);
        /* Resolution: typical size of a nonzero change between judged values. */
        double dv = fabs(v - (double)s->last_v);
        if (s->n > 0 && dv > 0.0) {
            if (s->step == 0.0f) s->step = (float)dv;
            else s->step += AN_ERR_RATE * ((float)(dv < 10.0 * s->step ? dv : 10.0 * s->step) - s->step);
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
        if (!isfinite(s->last_v) || !isfinite(s->step) || !isfinite(s->mae) ||
            !isfinite(s->m_short) || !isfinite(s->mu_long) || !isfinite(s->var_long)) {
            /* Unreachable with finite inputs below ~1e38; start afresh. */
            an_init(s);
        }
    }

    s->n++;
    if (s->n <= c->warmup) sc = 0.0f;
    s->score = sc;

    if (s->n > c->warmup) {
        int32_t before = s->level;
        /* Levels with hysteresis: up at warn/alert, down to 0 only below clear. */
        if (sc >= c->alert) s->level = 2;
        else if (sc >= c->warn && s->level < 1) s->level = 1;
        else if (sc < c->clear) s->level = 0;
        if (s->level > before) s->kind = kind_of(s, best);
    }
out:
    if (level) *level = s->level;
    return s->score;
}

/* The f32 fields after the header, in blob order (ANS4). The score is not
 * among them: the engine's blob header carries it (en_slot_save), and
 * a_trend rides in the level/kind word. */
#define AN_FIELDS(X)                                                                               \
    X(step) X(last_v) X(mae) X(ev_p[0]) X(ev_p[1]) X(ev_p[2]) X(ev_b[0]) X(ev_b[1]) X(ev_b[2])     \
    X(ev_b2[0]) X(ev_b2[1]) X(ev_b2[2]) X(m_short) X(mu_long) X(var_long) X(p_same) X(same_n)      \
    X(p_cont) X(a_ref[0]) X(a_ref[1]) X(a_acc[0]) X(a_acc[1]) X(a_cnt[0]) X(a_cnt[1]) X(a_bias)    \
    X(a_mae) X(a_n) X(a_sgn[0]) X(a_sgn[1])

void an_save(const an_state *s, uint8_t *buf) {
    rc_put_u32(buf, AN_MAGIC);
    rc_put_u32(buf + 4, s->n);
    rc_put_u32(buf + 8, (uint32_t)s->level | (uint32_t)s->kind << 8 | (uint32_t)(s->a_trend != 0) << 16);
    uint8_t *p = buf + 12;
#define PUT(f) rc_put_f32(p, s->f), p += 4;
    AN_FIELDS(PUT)
#undef PUT
}

/* ANS3 (2026-12-06, before the learned tails moved to z and the alarm
 * budget replaced the dynamic threshold): where each of its 27 f32 fields
 * goes in AN_FIELDS; -1 for the dropped ones (score: the engine restores it
 * from its header; the threshold; the tails, which restart from the
 * Gaussian law as their meaning changed); AN_V3_TREND for a_trend. */
#define AN_V3_TREND 99
static const signed char an_v3_map[AN_BLOB_V3_NF] = {
    -1, 0, 1, 2, -1, -1, -1, -1, -1, /* score step last_v mae q_hi ev_p[2] ev_b[2] */
    12, 13, 14, 15, 16, 17,          /* m_short mu_long var_long p_same same_n p_cont */
    18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, AN_V3_TREND /* a_ref a_acc a_cnt a_bias a_mae a_n a_sgn a_trend */
};

rc_err an_load(an_state *s, const uint8_t *buf, size_t len) {
    uint32_t magic = len >= 12 ? rc_get_u32(buf) : 0;
    const int v3 = magic == AN_MAGIC_V3;
    if ((magic != AN_MAGIC && !v3) || len < (v3 ? AN_BLOB_V3_SIZE : AN_BLOB_SIZE)) return RC_ERR_FORMAT;
    an_state t;
    an_init(&t);
    t.n = rc_get_u32(buf + 4);
    uint32_t lk = rc_get_u32(buf + 8);
    t.level = (int32_t)(lk & 0xffu);
    t.kind = (int32_t)(lk >> 8 & 0xffu);
    t.a_trend = (int32_t)(lk >> 16);
    if (t.level > 2 || t.kind >= AN_KIND_COUNT || t.a_trend > 1 || (v3 && t.a_trend)) return RC_ERR_FORMAT;
    /* f: the fields in AN_FIELDS order, the tails' prior where ANS3 has none. */
    float f[AN_NF];
    int i = 0;
#define GET(fl) f[i++] = t.fl;
    AN_FIELDS(GET)
#undef GET
    const int nf = v3 ? AN_BLOB_V3_NF : AN_NF;
    for (int j = 0; j < nf; j++) {
        float x = rc_get_f32(buf + 12 + 4 * j);
        if (!isfinite(x)) return RC_ERR_NUMERIC;
        int to = v3 ? an_v3_map[j] : j;
        if (to == AN_V3_TREND) {
            if (!(x == 0.0f || x == 1.0f)) return RC_ERR_FORMAT;
            t.a_trend = x == 1.0f;
        } else if (to >= 0) {
            f[to] = x;
        }
    }
    i = 0;
#define SET(fl) t.fl = f[i++];
    AN_FIELDS(SET)
#undef SET
    int bad = 0;
    for (int ch = 0; ch < AN_NCH; ch++)
        bad |= !(t.ev_p[ch] > 0.0f && t.ev_p[ch] <= 1.0f) || !(t.ev_b[ch] > 0.0f) || !(t.ev_b2[ch] > 0.0f);
    if (bad || t.step < 0.0f || t.mae < 0.0f || t.var_long < 0.0f ||
        t.p_same < 0.0f || t.p_same > 1.0f || t.same_n < 0.0f || t.p_cont < 0.0f || t.p_cont > 1.0f ||
        t.a_cnt[0] < 0.0f || t.a_cnt[1] < 0.0f || t.a_mae < 0.0f || t.a_n < 0.0f ||
        fabsf(t.a_sgn[0]) > 4096.0f || fabsf(t.a_sgn[1]) > 4096.0f)
        return RC_ERR_FORMAT;
    *s = t;
    return RC_OK;
}
