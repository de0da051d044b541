/*
 * rp.h: opening the model the way `rwkvcast replay` (tools/cmd_replay.c) and
 * the anomaly benchmark (bench/anomaly_bench.c) both do, with the documented
 * random fallback. Header-only because bench programs do not link the
 * tools' objects. Reading their CSV input is common/textin.h's job.
 *
 * Threads: reentrant. Errors: see the function.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RP_H
#define RP_H

#include <stdio.h>
#include <unistd.h>

#include "daemon/engine.h"
#include "model/features.h"
#include "model/rwkv.h"

/*
 * Opens the model for replay/bench: path, or en_default_model_path() when
 * path is NULL. When path is NULL and the default file does not exist, builds
 * rk_dims_default(FT_NFEAT) with rk_model_init_random(seed 1) instead and sets
 * *is_random = 1 (callers say so in their output). NULL on failure with a
 * message in errbuf. Free with rk_model_free.
 */
static inline rk_model *rp_open_model(const char *path, int *is_random, char *errbuf, size_t errlen) {
    rc_err err = RC_OK;
    *is_random = 0;
    const char *p = path ? path : en_default_model_path();
    if (path || access(p, F_OK) == 0) return rk_model_load(p, &err, errbuf, errlen);
    rk_dims d = rk_dims_default(FT_NFEAT);
    rk_model *m = rk_model_new(&d, &err);
    if (!m) {
        snprintf(errbuf, errlen, "Cannot create a model (%s).", rc_strerror(err));
        return NULL;
    }
    ft_cfg fc;
    ft_cfg_default(&fc);
    fc.n_quant = d.n_quant;
    ft_cfg_to_meta(&fc, &m->meta);
    rk_model_init_random(m, 1);
    *is_random = 1;
    return m;
}

#endif
