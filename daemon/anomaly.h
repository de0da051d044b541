/*
 * anomaly.h: anomaly scoring and alert levels, shared by the daemon and replay.
 *
 * CONTRACT FILE: the function signatures below are used by the engine
 * (daemon/engine.c); the owner of the anomaly issue fills in the struct
 * internals and the implementation in daemon/anomaly.c.
 *
 * Per sample: the observed value v is judged against the quantile forecast
 * the series made one step earlier (value space, ascending quantiles). The
 * score is in [0,1] and means the same on every series; levels have
 * hysteresis and a warm-up.
 *
 * Method, per judged sample (all O(1), fixed size, no allocation):
 *  1. Surprise z >= 0: the forecast residual r = v - median, minus its own
 *     running bias, divided by a scale that blends (a) the forecast's
 *     interval half-width on v's side (as a Gaussian-equivalent sigma),
 *     recalibrated by the series' running ratio of errors to half-widths,
 *     and (b) the series' running mean absolute forecast error. So a model
 *     with too-narrow or too-wide intervals still yields z ~ |N(0,1)| on
 *     normal data, on every series. The scale never goes below half the
 *     typical nonzero change of the series, so a quantized or long-flat
 *     sensor does not turn its resolution step into a huge surprise.
 *  2. Likelihood layer (after Ahmad et al.'s HTM anomaly likelihood): a
 *     short-window EW mean of min(z, zcap) is compared with its own
 *     long-run EW mean and variance; the Gaussian upper tail P of that
 *     standardized short mean is the likelihood that the recent surprise
 *     is normal. One noisy sample moves the short mean only a little; a
 *     sustained change moves it far. Optionally the lower tail (a series
 *     that suddenly became too predictable: stuck sensor) adds in, weighted.
 *     With guard = 1 the surprise is the smaller of the model's z and the
 *     z of a persistence forecast (last value, calibrated the same way):
 *     a value counts as surprising only if neither explains it, which
 *     keeps a weak or untrained model from raising false alarms.
 *     A drift chart (EWMA of the signed surprise against its own long-run
 *     law, two-sided) catches slow changes that a one-step forecaster
 *     follows with a lag: each residual is small but they share a sign.
 *     A regime channel judges the forecast itself: how far the median
 *     forecast now sits from its own slow average, in units of its usual
 *     distance. A good forecaster follows a level change within a few
 *     samples, so its residuals stop being surprising; that the forecast
 *     had to move unusually far is the lasting evidence of the change.
 *     A stuck-sensor channel: a run of k values identical to the previous
 *     one has probability p * c^(k-1) under the series' own rate p of
 *     repeats and rate c of a repeat following a repeat (both floored at
 *     1%), so a continuous sensor that freezes scores within a few samples
 *     while a coarsely quantized one, whose runs are normal, needs a run
 *     far longer than its usual ones. Once the run is an alert, the
 *     channel holds a score between clear and warn: the level stays
 *     raised, and a longer run is not reported as new evidence.
 *     A single sample far in the tail (two-sided Gaussian tail of z itself,
 *     weighted by point_weight) can also score: a 10-sigma jump is news
 *     even before the short window fills.
 *     An anchored-block channel (an_update_path) catches sustained changes
 *     a one-step forecaster follows within a few samples (level shifts,
 *     slow faults): at a block's first sample it keeps the mean of the
 *     median forecast path for the next anchor_len samples, made before
 *     them; when the block is complete, the block mean of v minus that
 *     reference is judged against the series' own running bias and mean
 *     absolute size of such block residuals (Gaussian tail, winsorized
 *     learning, trusted after 8 blocks). Two blocks run staggered by half
 *     a block, so a change waits at most about 1.5 blocks for a verdict.
 *  3. score = 1 - exp(-(-log10 P) / (6 / ln 2)): P = 1e-6 -> 0.5,
 *     P = 1e-12 -> 0.75. A score is thus a tail probability on a log
 *     scale, the same on every series, and it keeps ranking events far in
 *     the tail instead of saturating at 1. The final score is the largest
 *     of the enabled channels (likelihood, calm, point, drift, regime, stuck).
 *  Defaults were chosen on SKAB and the generated set of
 *  bench/anomaly_bench.c (bench/RESULTS.md): likelihood and stuck
 *  channels on; the guard and the point, calm, drift and regime channels
 *  off, because they did not improve the NAB scores there (they stay
 *  available as settings). The anchored channel (on) and its settings
 *  were chosen on the tuning half only and confirmed on the held-out
 *  half; a CUSUM of the signed surprise was tried and dropped (no gain).
 *  4. Levels: raised to 1 at score >= warn, to 2 at score >= alert, and
 *     dropped back to 0 only when score < clear (hysteresis). No level and
 *     score 0 during the first `warmup` judged samples of a series.
 * Missing values (NaN or Inf v) and samples without a forecast change
 * nothing. Outliers enter the running statistics winsorized, so one huge
 * spike does not blind the detector for long.
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

typedef struct an_cfg {
    /* Alert levels */
    float warn;         /* score at or above which level becomes 1 (warn) */
    float alert;        /* score at or above which level becomes 2 (alert) */
    float clear;        /* score below which a raised level falls back to 0 */
    uint32_t warmup;    /* judged samples per series before any level (and score) is raised */
    /* Calibration and likelihood (rates are EW weights per sample, in (0,1]) */
    float err_rate;     /* calibration of forecast errors; ~1/window, default 0.0075 */
    float short_rate;   /* short-window mean surprise; default 0.7 */
    float long_rate;    /* long-run distribution of the short mean; default 0.01 */
    float zcap;         /* surprise above this (sigmas) is capped, default 6 */
    float interval_weight; /* 0..1: share of the forecast interval in the scale, default 0 */
    float calm_weight;  /* 0..1: weight (on -log10 P) of the "too predictable" lower tail, default 0 */
    float point_weight; /* 0..1: weight (on -log10 P) of the single-sample tail of z, default 0 */
    float guard;        /* 0 or 1: surprise is min(model z, persistence z) when 1; default 0 */
    float drift_rate;   /* 0..1: EW rate of the signed-surprise drift chart, 0 = off (default) */
    float regime_rate;  /* 0..1: EW rate of the forecast's slow reference, 0 = off (default) */
    float regime_weight;/* 0..1: weight (on -log10 P) of the regime channel, default 0 */
    float stuck_weight; /* 0..1: weight (on -log10 P) of the stuck-sensor channel, default 0.5 */
    float anchor_len;   /* 0 (off) or 2..4096: samples per anchored block, capped at the horizon; default 24 */
    float anchor_weight;/* 0..1: weight (on -log10 P) of the anchored-block channel, default 1 */
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
    float z;            /* last surprise, sigmas (capped), diagnostic */
    /* Forecast-error calibration */
    float bias;         /* EW mean of the residual v - median, value units */
    float mae;          /* EW mean |residual - bias|, value units */
    float ratio;        /* EW mean |residual - bias| / interval sigma (dimensionless) */
    float last_v;       /* previous judged value, value units */
    float step;         /* EW mean size of nonzero value changes (sensor resolution), value units */
    float nbias;        /* EW mean of the persistence residual v - last_v, value units */
    float nmae;         /* EW mean |persistence residual - nbias|, value units */
    /* Likelihood layer */
    float m_short;      /* EW short-window mean of min(z, zcap) */
    float mu_long;      /* EW long-run mean of m_short */
    float var_long;     /* EW long-run variance of m_short */
    /* Drift channel (EWMA chart of signed surprise) */
    float d_short;      /* EW mean of signed, capped z at drift_rate */
    float d_mu;         /* EW long-run mean of d_short */
    float d_var;        /* EW long-run variance of d_short */
    /* Regime channel (how far the forecast itself moved) */
    float f_slow;       /* EW mean of the forecast median at regime_rate, value units */
    float f_dev;        /* EW mean |median - f_slow|, value units */
    /* Stuck-sensor channel */
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
 * Judges v against q (Q quantile values at horizon 1, ascending) whose
 * levels are qlev (Q, e.g. 0.1 0.5 0.9). q == NULL means no forecast yet.
 * NaN v leaves the state as it is and returns the last score. Returns the
 * score in [0,1] and stores the level (0 ok, 1 warn, 2 alert) in *level.
 * Same as an_update_path without a path (the anchored channel then idles).
 */
float an_update(an_state *s, const an_cfg *c, double v, const float *q,
                const float *qlev, int Q, int *level);

/*
 * an_update plus the whole forecast made one step earlier: path is (H, Q),
 * horizon-major, horizon 1 being v's own (so q == path when given). Only
 * the first anchor_len medians are read, by the anchored-block channel,
 * which opens a block only on a sample with a path whose medians read are
 * all finite. path == NULL (e.g. after a gap, when v is judged at a
 * horizon > 1) is fine: open blocks go on.
 */
float an_update_path(an_state *s, const an_cfg *c, double v, const float *q,
                     const float *qlev, int Q, const float *path, int H, int *level);

/* Fixed-size little-endian serialization of an_state: magic "ANS2" as u32
 * version tag, then the fields above in order (u32, u32 level | kind << 8,
 * 29 x f32); blobs saved before `kind` existed load with AN_KIND_NONE;
 * docs/FILE_FORMAT.md. Blobs of the older "ANS1" layouts are refused
 * (RC_ERR_FORMAT): the engine then starts the series afresh. */
#define AN_BLOB_SIZE 128
void an_save(const an_state *s, uint8_t *buf);
/* RC_ERR_FORMAT on a short or foreign blob, RC_ERR_NUMERIC on non-finite
 * fields; s is untouched on failure. */
rc_err an_load(an_state *s, const uint8_t *buf, size_t len);

#endif
