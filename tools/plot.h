/*
 * plot.h: the data `rwkvcast plot` draws (tools/cmd_plot.c), and where it
 * comes from besides a CSV: a running daemon's recent history
 * (tools/plot_daemon.c, the `history` and `get` control commands of
 * docs/PROTOCOL.md §3). Prefix: pl_.
 *
 * Ownership: a pl_series owns its arrays (rc_malloc'd by pl_grow and
 * pl_fetch); pl_series_free frees them, never the series itself.
 * Threads: the tool's main thread only.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PLOT_H
#define PLOT_H

#include <stddef.h>
#include <stdint.h>

/* One series: every drawn row, with the one-step forecast it was judged
 * against, and (from a daemon) the forecast made after the last row. */
typedef struct pl_series {
    const char *name;      /* file name or series id, borrowed from argv */
    size_t n, cap;         /* rows, allocated rows */
    double *t, *v;         /* (cap) time s, value (NaN missing) */
    float *yhat, *lo, *hi; /* (cap) one-step forecast of the row, NaN before the first */
    float *score;          /* (cap) anomaly score */
    int8_t *level;         /* (cap) 0/1/2 */
    double warn, alert;    /* score thresholds drawn in the score panel */
    int from_daemon;       /* 1: rows from a daemon's history (title says so) */
    /* The forecast after the last row (daemon only; n_ahead 0 without one). */
    int n_ahead;           /* horizons, <= PL_AHEAD_MAX */
    double *ahead_t;       /* (n_ahead) time of each horizon, s */
    float *ahead_yhat, *ahead_lo, *ahead_hi; /* (n_ahead) */
} pl_series;

#define PL_AHEAD_MAX 4096 /* horizons read from a `get` reply */

/* Makes room for one more row; 0 when out of memory. */
int pl_grow(pl_series *s);
void pl_series_free(pl_series *s);

/*
 * Fills s (zeroed, name set to the series id) from the daemon whose
 * control socket is sock (a connected REQ socket; CURVE set up by the
 * caller): `history` for the rows, then `get` for the forecast ahead.
 * Waits up to timeout_ms for each reply. 0 on success, else -1 after
 * printing one "Error: ..." line (no reply, a refusal with the daemon's
 * message, a malformed reply, fewer than two rows). A REQ socket that saw
 * no reply cannot be used again.
 */
int pl_fetch(void *sock, const char *endpoint, long timeout_ms, pl_series *s);

#endif
