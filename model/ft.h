/*
 * ft.h: featurization, shared by training, eval, replay and the daemon
 * (one code path): a causal per-series online normalizer, timestamp phase
 * features, gap/missing handling and the sampling-period estimate.
 *
 * CONTRACT FILE: the signatures below are used by the engine (daemon/en.c);
 * the owner of the training issue fills in the internals in model/ft.c and
 * may change FT_NFEAT, the struct fields and FT_BLOB_SIZE.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef FT_H
#define FT_H

#include <stddef.h>
#include <stdint.h>

#include "common/rc.h"
#include "model/rk.h"

#define FT_NFEAT 8       /* features per sample fed to the model (rk_dims.n_feat) */
#define FT_KIND 1        /* featurizer identity stored in rk_meta.feat_kind */

typedef struct ft_cfg {
    float norm_halflife; /* samples; half-life of the normalizer's level/scale */
} ft_cfg;

void ft_cfg_default(ft_cfg *c);
/* Settings travel inside the weights file (rk_meta.feat_param). */
void ft_cfg_to_meta(const ft_cfg *c, rk_meta *m);
/* RC_ERR_VERSION when the file was made for another featurizer (feat_kind). */
rc_err ft_cfg_from_meta(ft_cfg *c, const rk_meta *m);

typedef struct ft_state {
    double last_t;       /* time of the last sample, seconds; -inf at start */
    double dt;           /* estimated sampling period, seconds; 0 until known */
    double level;        /* normalizer location */
    double scale;        /* normalizer scale, > 0 */
    uint32_t n;          /* samples seen */
    uint32_t pad_;
} ft_state;

void ft_init(ft_state *s, const ft_cfg *c);
/*
 * Advances with one sample (t seconds since the epoch; v, NaN = missing)
 * and writes FT_NFEAT features for it. The features of a sample use only
 * this and earlier samples. Returns RC_OK, or RC_ERR_PROTO (state
 * untouched) when t is not after the previous sample's time.
 */
rc_err ft_push(ft_state *s, const ft_cfg *c, double t, double v, float *feat);
/* Maps n normalized model outputs back to value space with the current normalizer. */
void ft_denorm(const ft_state *s, const float *in, float *out, int n);
/* Maps a value to normalized space (training targets use this). */
float ft_norm(const ft_state *s, double v);
/* Estimated sampling period in seconds (0 until two samples were seen). */
double ft_period(const ft_state *s);

/* Fixed-size little-endian serialization of ft_state. */
#define FT_BLOB_SIZE 40
void ft_save(const ft_state *s, uint8_t *buf);
rc_err ft_load(ft_state *s, const uint8_t *buf, size_t len);

#endif
