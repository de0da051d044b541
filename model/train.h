/*
 * train.h: the trainer. Truncated BPTT over windows of T steps on B lanes (one
 * series per lane, its RWKV state carried from window to window like the
 * daemon does), pinball loss over all H horizons x Q quantiles (horizon h
 * weighted by h^-h_pow, so the next step is not 1/H of the loss), Adam with
 * warm-up and cosine decay, global-norm gradient clipping.
 *
 * Data: tr_data_add() featurizes a whole series with ft_push (the daemon's
 * code path) and stores features, per-row targets (v - baseline(h)) / scale
 * for every horizon (ft_baselines) and row weights (0 during the warm-up
 * and where no target exists).
 *
 * Threads and determinism: tr_step runs the lanes in cfg.chunks fixed
 * groups in parallel with OpenMP (one group per thread at a time, each with
 * its own activations and gradient buffer); the groups' gradients are summed
 * in group order afterwards, so results are bit-identical for a seed
 * whatever the thread count. A trainer is driven by one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TRAIN_H
#define TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "model/features.h"
#include "model/rwkv.h"

typedef struct tr_cfg {
    int lanes;           /* B, series trained side by side */
    int window;          /* T, BPTT window in steps */
    int chunks;          /* lane groups (parallel units), divides lanes */
    int warmup_rows;     /* rows at a series' start that carry no loss */
    long steps;          /* total optimizer steps (for the LR schedule and ETA) */
    long lr_warmup;      /* steps of linear LR warm-up */
    float lr;            /* peak learning rate */
    float lr_final;      /* fraction of lr reached at the end (cosine) */
    float beta1, beta2, eps; /* Adam */
    float clip;          /* global gradient-norm clip */
    float tgt_clip;      /* targets are clipped to +-tgt_clip (normalized units) */
    float ema;           /* decay of the weight average kept for the output (0 = off) */
    float h_pow;         /* horizon h's loss weight is h^-h_pow, scaled to mean 1 (0 = equal) */
    uint64_t seed;       /* series order */
} tr_cfg;

void tr_cfg_default(tr_cfg *c);

typedef struct tr_data tr_data;
tr_data *tr_data_new(const rk_dims *d, rc_err *err);
void tr_data_free(tr_data *td);
/*
 * Featurizes one series (t, v: n samples, v NaN = missing) with cfg fc.
 * Targets use only samples with index < loss_end (so a validation tail can
 * be withheld); rows before warmup carry no loss. RC_ERR_NOMEM.
 */
rc_err tr_data_add(tr_data *td, const ft_cfg *fc, const double *t, const double *v, int n,
                   int loss_end, int warmup);
int tr_data_count(const tr_data *td);
long tr_data_rows(const tr_data *td);

typedef struct tr_trainer tr_trainer;
/* m is borrowed and trained in place; td borrowed. NULL with *err. */
tr_trainer *tr_new(rk_model *m, const tr_data *td, const tr_cfg *c, rc_err *err);
void tr_free(tr_trainer *tr);
/* One optimizer step on the next window of every lane; returns the mean
 * pinball loss of the window (NaN if no row counted). Calls rk_model_prepare. */
double tr_step(tr_trainer *tr);
long tr_steps_done(const tr_trainer *tr);
/* Copies the exponential moving average of the weights (cfg.ema) into the
 * model and prepares it; a no-op when ema is 0. Call once, after the last step. */
void tr_finish(tr_trainer *tr);

/* Resumable checkpoint: step, lanes, states, Adam moments and the model. */
rc_err tr_save(const tr_trainer *tr, const char *path);
/* RC_ERR_IO, RC_ERR_FORMAT, RC_ERR_SHAPE (other dims or cfg). */
rc_err tr_load(tr_trainer *tr, const char *path);

/* For tests: the trainer's sequence forward over one window of B series
 * from the given states (advanced in place): feat (B*T, F), slots (B*T,
 * lane-major, or NULL), out (B*T, H*Q). */
rc_err tr_forward_window(const rk_model *m, int B, int T, const float *feat, const rk_mslot *slots,
                         float *const *states, float *out);

#endif
