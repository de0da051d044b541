/*
 * engine.h: the forecasting engine, shared by rwkvcastd and `rwkvcast replay`
 * (one code path). It owns a slab of per-series slots and turns samples into
 * forecasts and anomaly scores:
 *
 *   sample (t, v) of slot s
 *     -> an_update: judge v against the forecast s made one step earlier
 *     -> ft_push:   features (causal online normalizer, time phase, gaps)
 *     -> rk_step_batch, together with the other slots queued in this batch
 *     -> ft_denorm: H x Q quantiles back in value space, kept as s's last forecast
 *     -> callback with an en_result
 *
 * Slots are dense indices 0..max_series-1 handed out by the caller's registry
 * (id -> slot); the engine never sees series ids. All memory is allocated in
 * en_new; en_push and en_flush never allocate.
 *
 * Threads: the API is driven by one thread at a time (the caller's). With
 * cfg.threads = K > 1 the engine shards its slots by a fixed hash of the
 * slot into K shards and en_flush steps them in parallel: shard 0 on the
 * calling thread, shards 1..K-1 on workers started by en_new, each with its
 * own model workspace. A slot belongs to one shard for as long as it lives,
 * so no two threads ever touch one series' state; per shard, the samples
 * are judged, featurized, stepped and denormalized exactly as with K = 1,
 * so results are bit-identical for every K. Callbacks still run on the
 * calling thread, in arrival order, after the workers are done. Batches of
 * fewer than 16 samples run on the calling thread alone.
 *
 * Pipeline mode (cfg.pipeline = 1): every shard, shard 0 too, is stepped by
 * a worker, and a full batch is only handed over (en_submit): it queues
 * behind the one the workers are stepping (up to two in flight), so a
 * worker that finishes a batch goes straight on to the next while the
 * caller decodes and queues a third. The caller gets a batch's results
 * (callbacks) at the first en_submit, en_poll or en_flush after the
 * workers finished it, and waits only when all three batches are in
 * flight. So the caller's thread does I/O and the K worker threads do all
 * the stepping; results are bit-identical to K = 1 without a pipeline, in
 * the same order. Any call that reads or writes a slot first waits for the
 * batches in flight and delivers their results (en_slot_dirty, _clear_dirty,
 * _mark_dirty and en_slot_save only when the slot itself is in flight), so
 * callbacks may run inside those calls too; a callback must still not call
 * the engine.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "daemon/anomaly.h"
#include "model/rwkv.h"

#define EN_MAX_THREADS 64

typedef struct en_cfg {
    int max_batch;   /* series stepped together, 1..4096; default 256 */
    int threads;     /* shards stepped in parallel, 1..EN_MAX_THREADS; default 1 */
    an_cfg anomaly;  /* anomaly scoring and alert levels (anomaly.h) */
    /* 1: the caller resets or loads every slot (en_slot_reset, en_slot_load)
     * before its first use, so en_new leaves the slots zeroed instead of
     * resetting all max_series of them (a pass over GBs at 1M series, at
     * startup). Default 0. */
    int caller_inits_slots;
    /* 1: pipeline mode (above). Default 0. */
    int pipeline;
    /* Online calibration (calibration.h): 1 widens or narrows each series'
     * intervals to their nominal coverage, 1 shrinks the model's short-
     * horizon correction of the median to what it explains. Default 1 and
     * 1; 0 publishes the network's raw quantiles (for ablations). */
    int calibrate_intervals;
    int shrink_median;
} en_cfg;

void en_cfg_default(en_cfg *c);

/* What one processed sample produced; pointers are valid during the callback only. */
typedef struct en_result {
    uint32_t slot;      /* series slot */
    double t;           /* sample time, seconds since the epoch */
    double v;           /* observed value (NaN if missing) */
    double dt;          /* estimated sampling period, seconds (0 until known) */
    int H;              /* horizons; steps h = 1..H of dt each */
    const float *yhat;  /* (H) median forecast after this sample */
    const float *lo;    /* (H) lowest quantile (0.1 by default) */
    const float *hi;    /* (H) highest quantile (0.9 by default) */
    const float *prev;  /* (Q) the forecast that v was judged against, or NULL before the first */
    int prev_h;         /* its horizon (1..H: after a gap of k periods it is k), 0 when prev is NULL */
    float score;        /* anomaly score of v in [0,1] */
    int level;          /* 0 ok, 1 warn, 2 alert */
    int level_changed;  /* 1 when level differs from the previous sample's */
    int kind;           /* an_kind behind the level (an_state_kind after this sample) */
    unsigned flags;     /* EN_F_* the sample was queued with (en_push_flags) */
} en_result;

/* Sample flags, passed through to its result. */
#define EN_F_BACKFILL 1u /* history sent late: scored and learned, its alerts not published */

typedef void en_result_cb(void *ctx, const en_result *r);

typedef struct en_engine en_engine;

/*
 * Creates an engine for up to max_series slots over model m (borrowed; must
 * outlive the engine), and its cfg->threads - 1 worker threads. cb is called
 * from en_push/en_flush for every stepped sample, on the calling thread; it
 * must not call back into the engine. NULL with *err on failure. All slots
 * start fresh (en_slot_reset), unless cfg->caller_inits_slots.
 */
en_engine *en_new(const rk_model *m, const en_cfg *cfg, uint32_t max_series,
                  en_result_cb *cb, void *cb_ctx, rc_err *err);
void en_free(en_engine *e);

const rk_model *en_model(const en_engine *e);
uint32_t en_max_series(const en_engine *e);
/* Replaces the anomaly settings (on config reload); states are kept. */
void en_set_anomaly_cfg(en_engine *e, const an_cfg *c);

/*
 * Queues one sample of slot; it is judged, featurized and stepped with its
 * batch. A slot queued twice, or a full batch, submits the queued batch
 * first, so per-series order is kept. Errors, with the slot untouched:
 * RC_ERR_PROTO when t is not after the slot's last accepted time,
 * RC_ERR_NUMERIC when v or t is +-Inf (NaN v means missing and is fine).
 */
rc_err en_push(en_engine *e, uint32_t slot, double t, double v);
/* en_push with flags (EN_F_*), handed back in the sample's en_result. */
rc_err en_push_flags(en_engine *e, uint32_t slot, double t, double v, unsigned flags);
/* Starts stepping the queued samples: at once and to the end without a
 * pipeline (same as en_flush); in pipeline mode hands them to the workers
 * and delivers the results of the batches they have finished. */
void en_submit(en_engine *e);
/* Steps every queued sample now and delivers every result before it returns. */
void en_flush(en_engine *e);
/*
 * Progress without waiting, for a caller that sleeps in poll() between
 * events. In pipeline mode: delivers the batches the workers have
 * finished and hands them the queued samples (unless two batches are
 * already in flight); returns 1 while a batch is still in flight, and the
 * worker that finishes the last one in flight writes an 8-byte 1 to the
 * notify fd (en_set_notify_fd: an eventfd), so the caller wakes to call
 * en_poll again. Without a pipeline it is en_flush and returns 0.
 */
int en_poll(en_engine *e);
/* The fd en_poll's batches signal (not owned; -1, the default, for none). */
void en_set_notify_fd(en_engine *e, int fd);
/* Samples queued or being stepped whose results are not delivered yet. */
int en_pending(const en_engine *e);

/* Shards (= threads) and, per shard k, samples stepped and nanoseconds
 * spent on them since en_new. */
int en_threads(const en_engine *e);
void en_shard_stats(en_engine *e, int k, uint64_t *rows, uint64_t *busy_ns);

/* Batches stepped since en_new, by size: counts[i] holds those of
 * 2^(i-1) < n <= 2^i rows (counts[0]: one row), i < EN_BATCH_BUCKETS;
 * *rows their rows. Caller's thread; counts are delivered batches. */
#define EN_BATCH_BUCKETS 13 /* up to 4096 = the largest max_batch */
void en_batch_stats(const en_engine *e, uint64_t counts[EN_BATCH_BUCKETS], uint64_t *rows);

/* Fresh state for a new series in slot (drops any queued sample of it first). */
void en_slot_reset(en_engine *e, uint32_t slot);
/* Last accepted sample time of slot, or -inf when it has none. */
double en_slot_last_t(const en_engine *e, uint32_t slot);
/* Last result of slot (after its most recent stepped sample), NULL if none.
 * Waits only for batches in flight that hold the slot. */
const en_result *en_slot_last(en_engine *e, uint32_t slot);

/*
 * Whether slot has a sample queued or being stepped whose result is not
 * delivered yet (busy), and whether a worker may be stepping it (in
 * flight: submitted, not delivered). Neither waits. A slot that is not in
 * flight can be read by en_slot_dirty/en_slot_save while other slots step;
 * for one that is, they first wait for the batches in flight. A slot that is
 * only queued is saved without its queued sample (en_flush steps it first).
 */
int en_slot_busy(const en_engine *e, uint32_t slot);
int en_slot_in_flight(const en_engine *e, uint32_t slot);

/* Dirty tracking for checkpoints: set by every stepped sample and reset. */
int en_slot_dirty(en_engine *e, uint32_t slot);
void en_slot_clear_dirty(en_engine *e, uint32_t slot);
/* Marks slot dirty without a step (a series taken back from the store's
 * pending queue must be written by the next snapshot; see checkpoint.h). */
void en_slot_mark_dirty(en_engine *e, uint32_t slot);

/*
 * Versioned little-endian blob of one slot (model state, featurizer,
 * anomaly state, last forecast), en_blob_size() bytes, stamped with the
 * model hash. en_slot_load returns RC_ERR_MODEL for a blob saved under
 * another model, RC_ERR_FORMAT/VERSION/SHAPE for a damaged one; the slot is
 * reset on any failure, never half-loaded.
 */
size_t en_blob_size(const en_engine *e);
/*
 * The last result kept in a blob (time, value, score, level, forecast) for a
 * series that is not in a slot, e.g. evicted to the store; slot is
 * UINT32_MAX and prev NULL. Valid until the next en_blob_last/en_slot_last.
 * NULL with *err = RC_OK when the blob has no sample yet, or NULL with the
 * en_slot_load error for a blob this engine cannot read.
 */
const en_result *en_blob_last(en_engine *e, const uint8_t *buf, size_t len, rc_err *err);
void en_slot_save(en_engine *e, uint32_t slot, uint8_t *buf);
rc_err en_slot_load(en_engine *e, uint32_t slot, const uint8_t *buf, size_t len);

/*
 * Where the shipped default model lives: $RWKVCAST_MODEL if set, else the
 * installed copy (DATADIR/default.rwkv) if it exists, else model/default.rwkv
 * relative to the working directory. Never NULL.
 */
const char *en_default_model_path(void);

#endif
