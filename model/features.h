/*
 * features.h: featurization, shared by training, eval, replay and the daemon
 * (one code path): a causal per-series online normalizer, timestamp phase
 * features, gap/missing handling and the sampling-period estimate.
 *
 * The model forecasts a residual over a baseline, in normalized units:
 *   value(t+h) = baseline(h) + scale * out[h]
 *   baseline(h) = last + (1 - exp(-h)) * sum_{j=1..h} slope[bin(t + j*dt)]
 * where last is the newest value and slope[] is the series' seasonal memory:
 * FT_SBINS time-of-day bins, each the exponentially weighted mean change per
 * sample of the values that arrived in that part of the day (memory about
 * FT_SDAYS days). It is fixed-size and costs O(1) per sample at any sampling
 * period from a second to a day, and holds the daily shape and the trend at
 * once: a series that climbs keeps climbing, a daily cycle follows its own
 * profile. Before a bin has seen data it adds nothing, so a new series
 * starts as "repeat the last value". The factor 1 - exp(-h) (0.63 at one
 * step) shrinks the profile where the last value says most. With a zero
 * output the model is this baseline, which on the live-metrics files is
 * already better than the last value at one step and than seasonal naive
 * over 48 (bench/RESULTS.md), so training starts from there.
 *
 * The ring of the last FT_RING raw values gives lags and, when a day is at
 * most FT_RING samples, the seasonal difference features.
 *
 * CONTRACT FILE: the signatures below are used by the engine (daemon/engine.c).
 *
 * Threads: an ft_state belongs to one series and one thread at a time;
 * ft_cfg is read-only after setup. Nothing here allocates.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef FEATURES_H
#define FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "model/rwkv.h"

#define FT_NFEAT 16      /* features per sample fed to the model (rk_dims.n_feat) */
#define FT_KIND 3        /* featurizer identity stored in rk_meta.feat_kind */
#define FT_RING 48       /* raw values kept for lags and seasonal differences */
#define FT_SBINS 24      /* time-of-day bins of the seasonal memory (one hour each) */
#define FT_SDAYS 4       /* days of memory of each seasonal bin (EW) */

typedef struct ft_cfg {
    float norm_halflife; /* samples; half-life of the normalizer's level/scale */
    float clip;          /* normalizer updates clip deviations at clip * scale */
    float season_s;      /* seconds; seasonal period (86400: one day) of the ring's
                          * seasonal differences and of the seasonal memory */
    uint32_t n_quant;    /* Q of the model, for ft_denorm's horizon-major layout */
} ft_cfg;

/* Defaults: half-life 96 samples, clip 5, season one day, Q = 3. */
void ft_cfg_default(ft_cfg *c);
/* Settings travel inside the weights file (rk_meta.feat_param, feat_kind). */
void ft_cfg_to_meta(const ft_cfg *c, rk_meta *m);
/* RC_ERR_VERSION when the file was made for another featurizer (feat_kind),
 * RC_ERR_FORMAT when a stored setting is out of range. */
rc_err ft_cfg_from_meta(ft_cfg *c, const rk_meta *m);

typedef struct ft_state {
    /* Time */
    double last_t;       /* time of the last sample, seconds; -inf at start */
    double dt;           /* estimated sampling period, seconds; 0 until known */
    double cand_dt;      /* candidate new period seen in a row, seconds */
    /* Normalizer */
    double level;        /* location (robust EW mean), value units */
    double scale;        /* scale (robust EW mean absolute deviation), > 0 */
    uint32_t n;          /* samples seen (missing ones included) */
    uint32_t nv;         /* finite samples seen */
    uint32_t cand_n;     /* consecutive intervals near cand_dt */
    uint32_t season;     /* seasonal lag in the ring, samples, 2..FT_RING, or 0 = none */
    uint32_t nq;         /* Q for ft_denorm */
    uint32_t ring_n;     /* valid entries in ring, <= FT_RING */
    uint32_t ring_pos;   /* index of the next write in ring */
    uint32_t sbins;      /* bins of the seasonal memory in use, 2..FT_SBINS, or 0 */
    /* Seasonal memory */
    double sbin_s;       /* seconds per bin (season_s / sbins); 0 with sbins */
    double fin_t;        /* time of the last finite value, seconds; -inf at start */
    double fin_v;        /* the last finite value, value units */
    float ring[FT_RING]; /* last raw values (missing ones imputed), value units */
    float slope[FT_SBINS];     /* mean change per sample by time-of-day bin, value units */
    uint16_t slope_n[FT_SBINS]; /* updates of each bin, saturating (warm-up weights) */
} ft_state;

void ft_init(ft_state *s, const ft_cfg *c);
/*
 * Advances with one sample (t seconds since the epoch; v, NaN = missing)
 * and writes FT_NFEAT finite features for it (feat may be NULL). The
 * features of a sample use only this and earlier samples. Returns RC_OK, or
 * RC_ERR_PROTO (state untouched) when t is not finite or not after the
 * previous sample's time, RC_ERR_NUMERIC (state untouched) when v is +-Inf
 * or beyond float range (the model and the forecasts are float).
 */
rc_err ft_push(ft_state *s, const ft_cfg *c, double t, double v, float *feat);
/*
 * Maps n normalized model outputs back to value space: baseline(h) +
 * scale * in. in is horizon-major (o[h*Q + q], h = 0 for one step ahead,
 * Q = c->n_quant at ft_init); n is a multiple of Q (H*Q). out may alias in.
 */
void ft_denorm(const ft_state *s, const float *in, float *out, int n);
/* Maps a value to normalized space around the level: (v - level) / scale. */
float ft_norm(const ft_state *s, double v);
/* Baseline for horizon h >= 1 in value units (O(h)). */
double ft_baseline(const ft_state *s, int h);
/* Baselines of horizons 1..H into b[0..H-1], the same values in O(H). The
 * training target of horizon h is (v - b[h-1]) / scale: what ft_denorm
 * maps back to v. */
void ft_baselines(const ft_state *s, int H, double *b);
/*
 * The RRWKV medium slot (rwkv.h) of the newest sample, after ft_push: the
 * mediums are the seasonal memory's time-of-day bins (n_medium >= 2 of
 * them; FT_SBINS bins map onto fewer mediums proportionally). It reads its
 * own bin and the next one and writes its own, with the memory's weight:
 * an average while the bin is young, then EW over FT_SDAYS days at any
 * sampling period. No bins yet (period unknown, or a day shorter than two
 * samples): reads nothing, writes nothing.
 */
void ft_medium_slot(const ft_state *s, uint32_t n_medium, rk_mslot *out);
/* Estimated sampling period in seconds (0 until two samples were seen). */
double ft_period(const ft_state *s);

/* Fixed-size little-endian serialization of ft_state (magic, version, fields). */
#define FT_BLOB_SIZE (8 + 8 * 8 + 8 * 4 + FT_RING * 4 + FT_SBINS * 4 + FT_SBINS * 2)
void ft_save(const ft_state *s, uint8_t *buf);
/* RC_ERR_FORMAT (size, magic, bad field), RC_ERR_VERSION; s untouched on failure. */
rc_err ft_load(ft_state *s, const uint8_t *buf, size_t len);

#endif
