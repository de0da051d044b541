/*
 * calibration.h: online calibration of a series' forecasts: the median's
 * short-horizon correction by the model is shrunk by a learned factor, and
 * the prediction intervals are calibrated in the spirit of adaptive
 * conformal inference (Gibbs and Candes 2021).
 *
 * Median. The model forecasts a residual d(h) over the featurizer's baseline
 * b(h) (features.h), which at one step is about the last value. On a smooth
 * series a small error of the network in normalized units can be large next
 * to the last value's own error, so each series learns how much of d(1) to
 * keep: lambda is the one of 0, 1/4, 1/2, 3/4, 1 whose forecast b + lambda d
 * had the lowest mean absolute error lately (EW over about 1/CA_SHRINK_RATE
 * samples). Absolute errors, not squares: the published median is judged
 * by them, and one spike does not swing the choice.
 * Horizon h keeps lambda_h = 1 - (1 - lambda) e^-(h-1) of its correction, so
 * the shrinkage fades out over a few steps, where the model is much better
 * than the last value. A series whose network corrections help keeps them
 * (lambda near 1); one where they only add noise falls back to the baseline.
 *
 * Intervals.
 * The model's quantiles are widened or narrowed around the median by two
 * factors per horizon, one for the lower side and one for the upper side.
 * Each factor is exp(k) with k moved after every observed value by
 *   k += eta * (miss - alpha)
 * where miss is 1 when the value fell beyond that side of the interval
 * issued for it and alpha is the side's nominal miss rate (0.1 for the
 * 0.1/0.9 quantiles). This is the online gradient step of ACI on the
 * pinball loss of the interval edge: whatever the data do, drift included,
 * the long-run fraction of misses on each side tends to alpha (the running
 * miss rate differs from alpha by at most (|k_max - k_min| + eta) / (eta * n)
 * after n updates, with k bounded by ln CA_FMIN and ln CA_FMAX), so an 80%
 * interval covers about 80% on every series.
 *
 * A new series starts with factors 1 and a larger step that shrinks as
 * CA_ETA0 / sqrt(n) down to the rep's own step (after 156 updates at one
 * step, 400 at 6 and 24), so intervals that are far off at first (a
 * network unsure of an unfamiliar series) are corrected within tens of
 * samples, not thousands.
 *
 * Horizons: the factors are learned at CA_NREP representative horizons
 * (1, 6 and 24 steps; an interval issued r samples ago is judged when the
 * value r samples later arrives, from a ring of the intervals issued at 6
 * and 24 steps and the caller's own last forecast at one step) and
 * interpolated in log h between them; horizons past the last one use its
 * factors. Horizons beyond H are not learned.
 *
 * Cost: O(CA_NREP) per observed sample, O(H*Q) per applied forecast, no
 * allocation. State is fixed-size (CA_BLOB_SIZE bytes serialized).
 *
 * Threads: a ca_state belongs to one series and one thread at a time;
 * a ca_table is read-only after ca_table_init.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CALIBRATION_H
#define CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

#define CA_NREP 3         /* representative horizons */
#define CA_RING_LEN 30    /* issued intervals kept: 6 + 24 (the one-step one is the caller's) */
#define CA_ETA 0.05f      /* step of k per observed value, once warm (6 and 24 steps) */
#define CA_ETA1 0.08f     /* the same at one step */
#define CA_ETA0 1.0f      /* warm-up: the n-th update of a rep steps max(CA_ETA, CA_ETA0 / sqrt(n)) */
#define CA_NSHRINK 5      /* candidate shrinkage factors 0, 1/4, .. 1 */
#define CA_SHRINK_RATE 0.01f /* EW rate of the median's shrinkage statistics */
#define CA_SHRINK_H 8     /* horizons whose correction may be shrunk */
#define CA_FMIN 0.01f     /* factors stay in [CA_FMIN, CA_FMAX] */
#define CA_FMAX 100.0f

typedef struct ca_state {
    float mae[CA_NSHRINK];        /* EW mean |y - b(1) - lambda_k d(1)|, lambda_k = k / (CA_NSHRINK - 1) */
    float b1, d1;                 /* the last issued one-step baseline and correction, NaN = none */
    float f[CA_NREP][2];          /* factors exp(k), [rep][0 = lower, 1 = upper] */
    float ring[CA_RING_LEN][2];   /* issued lo, hi at horizons 6 and 24, NaN = none; 6 then 24 entries */
    uint32_t n;                   /* forecasts issued (ring position) */
    uint16_t nobs[CA_NREP];       /* updates of each rep's factors, saturating at the end of warm-up */
} ca_state;

/* Made once per engine for its H and quantile levels. */
typedef struct ca_table {
    int H;                        /* horizons */
    uint8_t *rep;                 /* (H) lower rep index a, the factor is (1-w) f[a] + w f[a+1] */
    float *w;                     /* (H) weight of rep a+1 */
    float miss[CA_NREP][2];       /* factor multipliers exp(eta (1 - alpha)) per rep and side */
    float hit[CA_NREP][2];        /* exp(-eta alpha) */
    double alpha[2];              /* nominal miss rate per side */
    uint32_t warm_n[CA_NREP];     /* updates of warm-up per rep: (CA_ETA0 / eta)^2 */
} ca_table;

/*
 * H horizons; alpha_lo, alpha_hi: nominal miss rates of the lowest and
 * highest quantile (q[0] and 1 - q[Q-1]). RC_ERR_NOMEM; free with ca_table_free.
 */
rc_err ca_table_init(ca_table *t, int H, float alpha_lo, float alpha_hi);
void ca_table_free(ca_table *t);

void ca_init(ca_state *s);
/*
 * Judges value y (finite) against the intervals issued 1, 6 and 24
 * forecasts ago and moves the factors (a multiplication each once warm: the
 * factors are kept as exp(k)). lo1, hi1: the one-step interval issued for
 * y, which the caller keeps anyway (its last forecast); NaN for none.
 */
void ca_observe(ca_state *s, const ca_table *t, double y, float lo1, float hi1);
/*
 * Calibrates a forecast fc (H*Q, horizon-major, value space) in place. out
 * is the model's normalized output (H*Q) and scale the normalizer's scale,
 * so the model's correction of horizon h is d(h) = scale * out[h*Q + Q/2].
 * First every quantile of horizon h moves by (lambda_h - 1) d(h); then the
 * quantiles below the median move to mid - f_lo * (mid - q), those above to
 * mid + f_hi * (q - mid). Records the issued one-step baseline and
 * correction and the representative horizons' intervals for the next
 * ca_observe calls. Q odd. shrink 0 skips the first step, widths 0 the
 * second (the state still learns, so an ablation sees the same factors).
 */
void ca_apply(ca_state *s, const ca_table *t, float *fc, const float *out, double scale, int Q, int shrink,
              int widths);
/* The current one-step shrinkage factor lambda in [0, 1]. */
float ca_lambda(const ca_state *s);
/* A new sample arrived after a gap of more than one period: the intervals
 * in the ring no longer line up with the samples, so they are forgotten
 * (the factors are kept). */
void ca_forget_issued(ca_state *s);

#define CA_BLOB_SIZE (8 + 4 * (CA_NSHRINK + 2 + CA_NREP * 2 + CA_RING_LEN * 2) + 4 + 2 * CA_NREP)
void ca_save(const ca_state *s, uint8_t *buf);
/* RC_ERR_FORMAT (size, magic, a factor out of range), RC_ERR_VERSION; s untouched on failure. */
rc_err ca_load(ca_state *s, const uint8_t *buf, size_t len);

#endif
