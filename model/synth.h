/*
 * synth.h: synthetic series for training and tests: daily and weekly
 * seasonality, trends, level shifts, AR noise, outliers, missing values,
 * gaps, any sampling period. Deterministic for (kind, seed, t0, dt, n) on
 * every platform (own PRNG, no libc rand).
 *
 * Two layers: sy_draw() picks a kind's random parameters from a seed and
 * sy_base() evaluates the clean signal at any time (usable by the simulator
 * to get a base signal and inject its own anomalies); sy_generate() samples
 * it on a grid and adds noise, shifts, outliers, missing values and gaps.
 *
 * Threads: no shared state; everything is reentrant. Nothing allocates.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SYNTH_H
#define SYNTH_H

#include <stdint.h>

typedef enum sy_kind {
    SY_DAILY = 0,  /* daily profile (3 harmonics) + AR noise */
    SY_WEEKLY,     /* daily profile modulated by weekday/weekend */
    SY_TREND,      /* daily profile on a linear trend */
    SY_SHIFTS,     /* daily profile with abrupt level shifts */
    SY_AR,         /* no season: slow mean-reverting walk, like a machine metric */
    SY_SPIKY,      /* daily profile with outliers, missing values and gaps */
    SY_KIND_COUNT
} sy_kind;

/* Static lowercase name ("daily", ...), "?" when out of range. */
const char *sy_kind_name(int kind);
/* Kind for a name, or -1. */
int sy_kind_from_name(const char *name);

typedef struct sy_params {
    int kind;            /* sy_kind */
    double level;        /* base level, value units, > 0 */
    double amp;          /* daily amplitude, value units */
    double harm_a[3];    /* relative amplitude of harmonics 1..3 of the day */
    double harm_p[3];    /* their phases, radians */
    double weekend;      /* weekend multiplier of the daily profile (1 = none) */
    double slope;        /* trend, value units per day */
    double t_ref;        /* seconds; the trend is 0 here (sy_generate: 0 means its t0) */
    double noise;        /* innovation sd of the AR noise, value units */
    double ar;           /* AR(1) coefficient of the noise, 0..1 */
    double p_outlier;    /* probability of an outlier per sample */
    double p_missing;    /* probability of a missing (NaN) value per sample */
    double p_gap;        /* probability a gap (skipped timestamps) starts at a sample */
    double p_shift;      /* probability of a level shift per sample */
    uint64_t seed;       /* noise stream seed */
} sy_params;

/* Random parameters of a kind, deterministic in seed. */
void sy_draw(sy_params *p, int kind, uint64_t seed);
/* Clean signal (season, weekly modulation, trend from t_ref) at time t, seconds. */
double sy_base(const sy_params *p, double t);
/*
 * Samples n points starting at t0 every dt seconds (gaps skip timestamps),
 * writing times to t (n) and values to v (n, NaN = missing).
 */
void sy_generate(const sy_params *p, double t0, double dt, int n, double *t, double *v);

#endif
