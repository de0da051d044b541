/*
 * rwkv_ref.h: a reference implementation of the whole rwkvcast network in
 * its parallel (transformer-like) form, in double precision, for tests
 * only. WKV is computed directly from the paper's definition over the
 * whole sequence, O(T^2):
 *   wkv_t = (sum_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u + k_t} v_t)
 *         / (sum_{i<t} e^{(t-1-i)w + k_i}     + e^{u + k_t})
 * with no running maximum: double's range covers the test inputs.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RWKV_REF_H
#define RWKV_REF_H

#include "model/rwkv.h"

/*
 * feat (T, F) -> out (T, H*Q) quantiles after each step (rk_head_quantiles
 * applied in double). Allocates internally; returns 0, or -1 on OOM.
 */
int rk_ref_forward(const rk_model *m, int T, const float *feat, double *out);

/* The block stack alone: x (T, D) -> y (T, D) after ln_out. */
int rk_ref_blocks(const rk_model *m, int T, const double *x, double *y);

#endif
