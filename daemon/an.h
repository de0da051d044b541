/*
 * an.h: anomaly scoring and alert levels, shared by the daemon and replay.
 *
 * CONTRACT FILE: the function signatures below are used by the engine
 * (daemon/en.c); the owner of the anomaly issue fills in the struct
 * internals and the implementation in daemon/an.c.
 *
 * Per sample: the observed value v is judged against the quantile forecast
 * the series made one step earlier (value space, ascending quantiles). The
 * score is in [0,1] and means the same on every series; levels have
 * hysteresis and a warm-up.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AN_H
#define AN_H

#include <stddef.h>
#include <stdint.h>

#include "common/rc.h"

typedef struct an_cfg {
    float warn;         /* score at or above which level becomes 1 (warn) */
    float alert;        /* score at or above which level becomes 2 (alert) */
    float clear;        /* score below which a raised level falls back to 0 */
    uint32_t warmup;    /* samples per series before any level is raised */
} an_cfg;

void an_cfg_default(an_cfg *c);
/* RC_OK, or RC_ERR_CONFIG when thresholds are out of [0,1] or not ordered. */
rc_err an_cfg_check(const an_cfg *c);

typedef struct an_state {
    uint32_t n;         /* samples judged */
    int32_t level;      /* current level 0/1/2 */
    float score;        /* last score */
    float err_scale;    /* running scale of recent surprise */
} an_state;

void an_init(an_state *s);

/*
 * Judges v against q (Q quantile values at horizon 1, ascending) whose
 * levels are qlev (Q, e.g. 0.1 0.5 0.9). q == NULL means no forecast yet.
 * NaN v leaves the state as it is and returns the last score. Returns the
 * score in [0,1] and stores the level (0 ok, 1 warn, 2 alert) in *level.
 */
float an_update(an_state *s, const an_cfg *c, double v, const float *q,
                const float *qlev, int Q, int *level);

/* Fixed-size little-endian serialization of an_state. */
#define AN_BLOB_SIZE 16
void an_save(const an_state *s, uint8_t *buf);
rc_err an_load(an_state *s, const uint8_t *buf, size_t len);

#endif
