/*
 * anomaly.h: anomaly scoring and alert levels, shared by the daemon and replay.
 *
 * CONTRACT FILE: the function signatures below are used by the engine
 * (daemon/engine.c); the owner of the anomaly issue fills in the struct
 * internals and the implementation in daemon/anomaly.c.
 *
 * Per sample: the observed value v is judged against the calibrated
 * quantile forecast the series issued for it (value space, ascending
 * quantiles; calibration.h keeps its 80% interval covering about 80% on
 * every series). Everything rests on one number, the tail probability P of
 * v under that predictive distribution; the score is P on a log scale, the
 * same on every series; levels have hysteresis and a warm-up.
 *
 * Method, per judged sample (all O(1), fixed size, no allocation):
 *  1. Standardized residual u = (v - median) / s, s the half-width of the
 *     calibrated interval on v's side as a Gaussian-equivalent sigma
 *     ((q_hi - median) / z(0.9) above, likewise below), never below the
 *     sigma of the series' own recent forecast errors (an interval right on
 *     average can be too narrow where the forecaster is poor) nor below half
 *     the series' typical nonzero change (a quantized or flat sensor does
 *     not turn its resolution step into a huge surprise).
 *  2. Every channel turns its observation into a Gaussian-equivalent
 *     z-score; its evidence L = -log10 P, P the tail of z under the
 *     Gaussian law, recalibrated by the series' own history of z: beyond
 *     z = 2 the excesses follow a generalized Pareto law with the rate,
 *     scale and shape (by moments, shape capped at 0.45) this series showed
 *     lately (peaks over threshold, as SPOT does, Siffer et al. 2017;
 *     starting from the Gaussian law's), never above the Gaussian evidence.
 *     A series with heavy tails or bursts thus does not call its usual
 *     bursts rare, a power-law tail is followed as such, and a quiet series
 *     keeps its sensitivity. The channels, the largest taken:
 *     - point: z = |u|, two-sided;
 *     - likelihood (after Numenta's HTM anomaly likelihood, Ahmad et al.
 *       2017): a short-window EW mean of min(point evidence, 6) is compared
 *       with its own long-run EW mean and variance; z is that standardized
 *       short mean, so a burst of moderately odd samples (a variance
 *       change) counts although none is odd alone;
 *     - change, anchored blocks: the mean of v over a block of anchor_len
 *       samples against the mean of the median forecast path made before
 *       the block, judged against this series' running bias and mean
 *       absolute size of such block residuals (z); its tail learns from
 *       block ends only. A one-step forecaster follows a level shift within
 *       a few samples, so its residuals stop being surprising; the forecast
 *       made before the change does not move. Two blocks staggered by half
 *       a block bound the wait. A sample that is a point alert stays out
 *       of the blocks, and no block opens on a path made right after one
 *       (a forecaster that followed a spike forecasts its echo), so one
 *       spike raises one alert, not a spike and then a shift;
 *     - stuck sensor: a run of k values identical to the previous one has
 *       probability p * c^(k-1) under the series' own rate p of repeats and
 *       rate c of a repeat following a repeat (both floored at 1%),
 *       weighted by stuck_weight; once the run is an alert, a longer run
 *       holds the level without being reported as new evidence.
 *  3. Alarm budget: each channel's evidence (the stuck sensor's aside) is
 *     rescaled so that warn's level sits at the tail probability that its
 *     third of alarm_budget alerts a day allows per judgement, at the
 *     series' own sampling period (estimated by the featurizer; one a
 *     minute while unknown). So a 10 s series and a 5 min series with the
 *     same learned law raise about the same alerts a day from their own
 *     bursts. Real bursts run heavier than the learned tails: on the
 *     live-metrics files the measured false alerts were about 3.5x the
 *     budget (bench/RESULTS.md), which the default allows for.
 *  4. (Without a budget, alarm_budget 0, warn's level is P = 1e-6 per
 *     sample, whatever the sampling rate.)
 *  5. score = 1 - exp(-L' / (6 / ln 2)) for the rescaled evidence L':
 *     L' = 6 decades -> 0.5 (warn), 12 -> 0.75 (alert). A score is thus a
 *     tail probability on a log scale relative to the budget, comparable
 *     across series, and it keeps ranking events far in the tail.
 *  6. Levels: raised to 1 at score >= warn, to 2 at score >= alert, and
 *     dropped back to 0 only when score < clear (hysteresis). No level and
 *     score 0 during the first `warmup` judged samples of a series.
 *  7. Kind: each rise of the level records what raised it (an_kind): the
 *     stuck evidence -> stuck; the likelihood -> variance (but spike when
 *     the sample's point evidence alone reaches warn); the anchored
 *     blocks -> trend when the block's one-step residuals were at least 3
 *     to 1 of one sign (the forecaster kept lagging behind a drift), else
 *     shift (it followed a jump); the point evidence -> spike.
 * Missing values (NaN or Inf v) and samples without a forecast change
 * nothing. Outliers enter the running statistics winsorized, so one huge
 * spike does not blind the detector for long.
 *
 * Defaults and the channels kept were chosen on the tuning halves of
 * bench/anomaly_bench.c and bench/anomaly_real.c (bench/RESULTS.md). Removed
 * in issue 19 (they did not earn their keep there, or were replaced by the
 * learned tails): the guard, calm, point-weight, drift and regime channels,
 * the interval/error scale blend and zcap. A CUSUM of the standardized
 * residuals (reference 0.25..2 sigmas) was built and measured: with its
 * evidence recalibrated like the others it changed no tuning-half score by
 * more than 1.5 points either way (the anchored blocks already catch what
 * it caught), so it was removed with its key. A per-series dynamic
 * threshold (a stochastic quantile tracker of the evidence, alarm_rate per
 * sample) was replaced by the alarm budget: on heavy-tailed series it
 * climbed a decade per alert for days, and its rate per sample made a 5 min
 * series 30 times stricter per day than a 10 s one.
 *
 * Threads: an_state belongs to the series' slot (one thread at a time);
 * an_cfg is read-only while in use.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef ANOMALY_H
#define ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

/* Channels whose evidence tail each series learns: point, likelihood, anchored. */
#define AN_NCH 3
/* Channels sharing the alarm budget: point, likelihood, anchored. */
#define AN_NTHR 3

typedef struct an_cfg {
    /* Alert levels */
    float warn;         /* score at or above which level becomes 1 (warn) */
    float alert;        /* score at or above which level becomes 2 (alert) */
    float clear;        /* score below which a raised level falls back to 0 */
    uint32_t warmup;    /* judged samples per series before any level (and score) is raised */
    /* Learning rates: EW weights per sample, in (0,1] */
    float tail_rate;    /* the learned tails of z, ~1/window (judgements); default 0.0002 */
    float short_rate;   /* likelihood: short-window mean of the evidence; default 0.7 */
    float long_rate;    /* likelihood: long-run law of the short mean; default 0.01 */
    /* Channels */
    float stuck_weight; /* 0..1: weight (on -log10 P) of the stuck-sensor evidence, default 0.5 */
    float alarm_budget; /* 0 (off) or up to 1e5: alerts per series per day its own bursts may raise under the learned tails (step 3), default 0.25 */
    float anchor_len;   /* 0 (off) or 2..4096: samples per anchored block, capped at the horizon; default 24 */
    float anchor_rate;  /* (0,1]: EW weight per block of the block-residual calibration, default 0.1 */
    /* Read by the daemon (daemon/alerts.h), not by an_update. */
    float silence;      /* 0 (off) or 0.5..1e6: sampling periods without a sample before a silence alert, default 5 */
} an_cfg;

void an_cfg_default(an_cfg *c);
/* RC_OK, or RC_ERR_CONFIG when thresholds are out of [0,1] or not ordered
 * (clear <= warn <= alert), or a rate/weight is out of range. */
rc_err an_cfg_check(const an_cfg *c);
/* Sets one setting from "KEY=VALUE" (KEY as in the config's anomaly
 * section, VALUE a number); RC_ERR_CONFIG for an unknown key or a bad
 * number. The range is an_cfg_check's. For the benchmarks' --an/--try. */
rc_err an_cfg_set(an_cfg *c, const char *kv);
/* Every setting as "key value, ..." into buf (len bytes, NUL-terminated). */
void an_cfg_describe(const an_cfg *c, char *buf, size_t len);

/*
 * What kind of change raised a level, for alert events that explain
 * themselves (issue 19). The values are stable (they are saved in the
 * anomaly blob); an_kind_name gives the wire and log spelling. SILENCE is
 * never set by an_update: the daemon raises it when a series stops
 * sending (daemon/alerts.h).
 */
typedef enum an_kind {
    AN_KIND_NONE = 0,   /* no level was raised yet (or not since a restore of an older blob) */
    AN_KIND_SPIKE = 1,  /* one or a few samples far from the forecast */
    AN_KIND_SHIFT = 2,  /* the level moved and stayed */
    AN_KIND_TREND = 3,  /* a slow drift away from the forecast */
    AN_KIND_VARIANCE = 4, /* the noise grew (or shrank) */
    AN_KIND_STUCK = 5,  /* the sensor repeats one value */
    AN_KIND_SILENCE = 6, /* no sample for too long (daemon only) */
    AN_KIND_COUNT = 7
} an_kind;

/* "none", "spike", "shift", "trend", "variance", "stuck", "silence"; "none"
 * for a value out of range. Static strings, never NULL; any thread. */
const char *an_kind_name(int kind);

typedef struct an_state {
    uint32_t n;         /* samples judged against a forecast */
    int32_t level;      /* current level 0/1/2 */
    int32_t kind;       /* an_kind of the evidence that last raised the level; kept after it falls */
    float score;        /* last score, [0,1] */
    float step;         /* EW mean size of nonzero value changes (sensor resolution), value units */
    float mae;          /* EW mean |v - median|, value units (floors the scale) */
    float last_v;       /* previous judged value, value units */
    /* Learned tails of each channel's z beyond AN_Z0 (2): point, likelihood, anchored */
    float ev_p[AN_NCH]; /* EW rate of the channel's z above AN_Z0 (2) */
    float ev_b[AN_NCH]; /* EW mean excess over AN_Z0 of those exceedances, z units */
    float ev_b2[AN_NCH]; /* EW mean squared excess, z units squared (the tail's shape) */
    /* Likelihood */
    float m_short;      /* EW short-window mean of min(L, 6) */
    float mu_long;      /* EW long-run mean of m_short */
    float var_long;     /* EW long-run variance of m_short */
    /* Stuck-sensor evidence */
    float p_same;       /* EW fraction of judged samples equal to the previous one */
    float same_n;       /* current run of samples equal to the previous one */
    float p_cont;       /* EW rate of a repeat right after a repeat (run persistence) */
    /* Anchored-block channel: two blocks, staggered by half a block */
    float a_ref[2];     /* mean median forecast over the block, made before its first sample, value units */
    float a_acc[2];     /* sum of v - a_ref over the block so far, value units */
    float a_cnt[2];     /* samples in the block so far (0: not open) */
    float a_bias;       /* EW mean of the block residual (block mean of v - a_ref), value units */
    float a_mae;        /* EW mean |block residual - a_bias|, value units */
    float a_n;          /* blocks judged */
    float a_sgn[2];     /* sum of the signs of the one-step residuals v - median over the block so far */
    int32_t a_trend;    /* 1: the block with the most evidence lately had residuals mostly of one sign */
} an_state;

void an_init(an_state *s);

/*
 * The kind (an_kind) behind the current level, or behind the last raised
 * one once it fell back to 0 (so the event that clears an alert names what
 * cleared); AN_KIND_NONE before any level was raised. Set by an_update
 * each time the level rises (0->1, 0->2, 1->2).
 */
an_kind an_state_kind(const an_state *s);

/*
 * Judges v against q (Q quantile values, ascending, the forecast issued for
 * v's time) whose levels are qlev (Q, e.g. 0.1 0.5 0.9). q == NULL means no
 * forecast yet. NaN v leaves the state as it is and returns the last
 * score. Returns the score in [0,1] and stores the level (0 ok, 1 warn,
 * 2 alert) in *level.
 */
float an_update(an_state *s, const an_cfg *c, double v, const float *q,
                const float *qlev, int Q, int *level);

/*
 * an_update plus the whole forecast made one step earlier: path is (H, Q),
 * horizon-major, horizon 1 being v's own (so q == path when given). Only
 * the first anchor_len medians are read, by the anchored-block channel,
 * which opens a block only on a sample with a path whose medians read are
 * all finite. path == NULL (e.g. after a gap, when v is judged at a
 * horizon > 1) is fine: open blocks go on. dt is the series' sampling
 * period in seconds (0 when unknown), which spreads the alarm budget over
 * its samples. an_update is this without a path, with dt unknown.
 */
float an_update_path(an_state *s, const an_cfg *c, double v, const float *q,
                     const float *qlev, int Q, const float *path, int H, double dt, int *level);

/* Fixed-size little-endian serialization of an_state: magic "ANS4" as u32
 * version tag, u32 n, u32 level | kind << 8 | a_trend << 16, then the AN_NF
 * f32 fields above in order, score left out (docs/FILE_FORMAT.md): the
 * engine's blob header carries the score, so an_load leaves it 0 and the
 * caller sets it. an_load also reads "ANS3" blobs (AN_BLOB_V3_SIZE bytes,
 * the layout before the alarm budget): everything is kept but the learned
 * tails, which restart from the Gaussian law. Blobs of the older
 * "ANS1"/"ANS2" layouts are refused (RC_ERR_FORMAT): the engine then starts
 * the series afresh. */
#define AN_NF 29
#define AN_BLOB_SIZE (12 + 4 * AN_NF)
/* The previous layout, "ANS3" (27 fields), which an_load still reads. */
#define AN_BLOB_V3_NF 27
#define AN_BLOB_V3_SIZE (12 + 4 * AN_BLOB_V3_NF)
void an_save(const an_state *s, uint8_t *buf);
/* RC_ERR_FORMAT on a short or foreign blob, RC_ERR_NUMERIC on non-finite
 * fields; s is untouched on failure. */
rc_err an_load(an_state *s, const uint8_t *buf, size_t len);

#endif
