/*
 * engine.c: the forecasting engine (see engine.h for the pipeline and contracts).
 *
 * Slots are stored as parallel arrays (structure of arrays): the model
 * states are one contiguous (max_series x state_len) block so a batch
 * gathers pointers, never copies; featurizer and anomaly states are small
 * fixed-size structs; the last forecast is (max_series x H*Q) floats in
 * value space. en_push only queues a sample (after checks against state
 * the caller's thread owns); when its batch is stepped, by the caller or a
 * worker, it is judged and featurized (both need only the series' own
 * past) and goes through the network together with the batch's other
 * series. A batch carries its results, so in pipeline mode the caller
 * delivers one batch's while the workers step the next ones.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/engine.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/calibration.h"
#include "model/features.h"

#ifndef RWKVCAST_DATADIR
#define RWKVCAST_DATADIR "/usr/local/share/rwkvcast"
#endif

#define EN_BLOB_MAGIC 0x31534e45u /* "ENS1" */
#define EN_BLOB_VERSION 5 /* 2: anomaly blob ANS2 (anchored blocks); 3: featurizer v3, calibration blob; 4: anomaly blob ANS3; 5: ANS4 (alarm budget) */
/* The oldest version still read: 4 differs only by its shorter anomaly blob
 * (ANS3), which an_load converts, so an upgrade keeps every series' state. */
#define EN_BLOB_VERSION_MIN 4
#define EN_BLOB_HDR 48

enum {
    SLOT_HAS_FC = 1,    /* fc holds a forecast */
    SLOT_DIRTY = 2,     /* changed since the last checkpoint */
    SLOT_HAS_SAMPLE = 8 /* at least one sample was stepped (4 was a queued flag) */
};

typedef struct en_slot_meta {
    double t;       /* last stepped sample's time */
    double v;       /* last stepped sample's value */
    float score;    /* its anomaly score */
    int8_t level;   /* its level */
    uint8_t flags;  /* SLOT_* */
    uint8_t pad_[2];
} en_slot_meta;

/* q_busy of a slot: bit 0 while one of its samples waits in the filling
 * batch; plus Q_FLIGHT for every submitted batch holding one whose results
 * are not delivered yet (at most EN_NB). Both change on the caller's thread
 * only, so it knows without a lock or a wait which slots a worker may be
 * writing: the others can be read (checkpoints) while batches step. */
#define Q_QUEUED 1
#define Q_FLIGHT 2

/* Below this many queued rows a flush runs on the calling thread alone:
 * waking the workers (two futex round trips) costs more than stepping a few
 * rows (about 6 us each with the default model). Not in pipeline mode,
 * where every batch goes to the workers so the caller can go on. */
#define EN_PAR_MIN_ROWS 16

/* One batch of queued samples and, once stepped, their results. A batch
 * holds everything its callbacks need (the forecast split into yhat/lo/hi,
 * the period), so in pipeline mode the next batch may step the same series
 * while this one's results are still being delivered. */
typedef struct en_batch {
    int n;               /* rows queued */
    uint32_t *slot;      /* (max_batch) */
    double *t, *v;       /* (max_batch) */
    uint8_t *flags;      /* (max_batch) EN_F_* */
    /* Filled when stepped, per row */
    float *score;        /* (max_batch) */
    int8_t *level;       /* (max_batch) */
    int8_t *changed;     /* (max_batch) */
    int8_t *kind;        /* (max_batch) an_kind after the sample */
    int *prev_h;         /* (max_batch) horizon of the forecast judged against, 0 = none */
    float *prev;         /* (max_batch, Q) forecast each sample was judged against */
    int *pos;            /* (max_batch) row -> position of its model rows, -1 if not stepped */
    float *fc3;          /* (max_batch, 3 H) yhat, lo, hi of the new forecast */
    double *dt;          /* (max_batch) sampling period after the sample */
    /* Per position: rows grouped by shard so each shard's model inputs are contiguous */
    int *row;            /* (max_batch) position -> row */
    float *feat;         /* (max_batch, F) */
    rk_mslot *mslot;     /* (max_batch) medium slots, compacted like feat */
    float **states;      /* (max_batch) pointers into states */
    float *out;          /* (max_batch, H*Q) normalized model output */
    int sh_begin[EN_MAX_THREADS], sh_n[EN_MAX_THREADS]; /* shard k's positions */
    int remaining;       /* workers still stepping it (guarded by the engine's mu) */
} en_batch;

/* Batches in pipeline mode: one filling, and up to EN_NB - 1 handed to the
 * workers, so a worker that finishes one finds the next already queued
 * instead of sleeping until the caller wakes it (two thread wake-ups per
 * batch otherwise, ~10 % of a batch's time on a VM). */
#define EN_NB 3

/* One shard: the series whose slot hashes to it, stepped by one thread
 * (shard 0 by the calling thread unless in pipeline mode). */
typedef struct en_shard {
    struct en_engine *e; /* owner */
    rk_ws *ws;           /* model workspace for max_batch rows */
    int k;               /* index */
    uint64_t rows;       /* samples stepped, lifetime */
    uint64_t busy_ns;    /* time spent stepping them, lifetime */
    pthread_t th;        /* worker thread */
    int started;         /* th was created */
} en_shard;

struct en_engine {
    const rk_model *m;   /* borrowed */
    en_cfg cfg;          /* settings */
    ft_cfg fcfg;         /* featurizer settings from the model file */
    uint32_t max_series; /* slots */
    int F, H, Q, HQ;     /* model dims */
    size_t state_len;    /* floats per model state */
    en_result_cb *cb;    /* result callback */
    void *cb_ctx;        /* its context */
    uint64_t batch_hist[EN_BATCH_BUCKETS]; /* delivered batches by size (en_batch_stats) */
    uint64_t batch_rows; /* their rows */

    /* Per slot, written only while the slot's series is being stepped (by
     * the shard's thread) or with no batch in flight (by the caller). */
    float *states;       /* (max_series, state_len) */
    ft_state *ft;        /* (max_series) */
    an_state *an;        /* (max_series) */
    ca_state *ca;        /* (max_series) interval calibration */
    float *fc;           /* (max_series, H*Q) last forecast, value space */
    en_slot_meta *meta;  /* (max_series) */
    /* Per slot, the caller's thread only: what en_push needs to accept or
     * refuse a sample without reading state a worker may be writing. */
    double *q_last_t;    /* (max_series) last accepted sample time */
    uint8_t *q_busy;     /* (max_series) Q_QUEUED + Q_FLIGHT x batches in flight */

    /* Batches: bt[fill] takes en_push's samples. Handed to the workers in
     * sequence: ring[seq % EN_NB] is the batch of sequence number seq;
     * dlv_seq <= done_seq <= sub_seq (delivered, stepped, submitted). A
     * batch is free when its n is 0 (delivered or never filled). */
    en_batch bt[EN_NB];  /* bt[1..] are allocated in pipeline mode only */
    int nb;              /* batches allocated: EN_NB or 1 */
    int fill;
    int ring[EN_NB];
    uint64_t sub_seq;    /* written by the caller under mu */
    uint64_t done_seq;   /* written by the workers under mu */
    uint64_t dlv_seq;    /* the caller's own */

    /* Shards and their workers: fork-join per batch */
    int K;               /* shards = threads */
    en_shard *sh;        /* (K) */
    int k0;              /* first shard run by a worker: 1, or 0 in pipeline mode */
    pthread_mutex_t mu;  /* guards sub_seq, done_seq, ring, remaining, quit, notify_wanted */
    pthread_cond_t go;   /* sub_seq moved or quit */
    pthread_cond_t done; /* done_seq moved */
    int quit;            /* workers exit */
    int notify_fd;       /* written when a batch en_poll left in flight is done; -1: none */
    int notify_wanted;   /* en_poll is waiting for that write */
    int sync_ok;         /* mu, go and done were initialized */

    /* Scratch */
    float *l_yhat, *l_lo, *l_hi; /* (H) en_slot_last view */
    en_result last_view;         /* en_slot_last's result */
    float *load_state;           /* (state_len) staging for decode_blob */
    float *load_fc;              /* (H*Q) staging for decode_blob */
    ca_state load_ca;            /* staging for decode_blob */
    ca_table cat;                /* per-horizon calibration weights (read-only) */
};

void en_cfg_default(en_cfg *c) {
    c->max_batch = 256;
    c->threads = 1;
    an_cfg_default(&c->anomaly);
    c->caller_inits_slots = 0;
    c->pipeline = 0;
    c->calibrate_intervals = 1;
    c->shrink_median = 1;
}

static void *alloc_zero(size_t n, size_t size, int *fail) {
    void *p = rc_calloc(n ? n : 1, size);
    if (!p) *fail = 1;
    return p;
}

static void *shard_main(void *arg);

/* Starts the workers of shards k0..K-1 with every signal blocked, so
 * signals reach the daemon's own thread only. */
static rc_err start_workers(en_engine *e) {
    if (pthread_mutex_init(&e->mu, NULL)) return RC_ERR_NOMEM;
    if (pthread_cond_init(&e->go, NULL)) {
        pthread_mutex_destroy(&e->mu);
        return RC_ERR_NOMEM;
    }
    if (pthread_cond_init(&e->done, NULL)) {
        pthread_cond_destroy(&e->go);
        pthread_mutex_destroy(&e->mu);
        return RC_ERR_NOMEM;
    }
    e->sync_ok = 1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc_err rc = RC_OK;
    for (int k = e->k0; k < e->K; k++) {
        if (pthread_create(&e->sh[k].th, NULL, shard_main, &e->sh[k])) {
            rc = RC_ERR_NOMEM;
            break;
        }
        e->sh[k].started = 1;
        /* Named for top -H, perf and the e2e benchmark's CPU accounting. */
        char name[16];
        snprintf(name, sizeof name, "rk-engine-%d", k % 100); /* k < EN_MAX_THREADS */
        pthread_setname_np(e->sh[k].th, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void stop_workers(en_engine *e) {
    if (!e->sync_ok) return;
    pthread_mutex_lock(&e->mu);
    e->quit = 1;
    pthread_cond_broadcast(&e->go);
    pthread_mutex_unlock(&e->mu);
    for (int k = e->k0; k < e->K; k++)
        if (e->sh[k].started) pthread_join(e->sh[k].th, NULL);
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->go);
    pthread_mutex_destroy(&e->mu);
    e->sync_ok = 0;
}

en_engine *en_new(const rk_model *m, const en_cfg *cfg, uint32_t max_series, en_result_cb *cb, void *cb_ctx,
                  rc_err *err) {
    en_engine *e = NULL;
    rc_err rc = RC_ERR_CONFIG;
    if (max_series < 1 || cfg->max_batch < 1 || cfg->max_batch > 4096) goto err;
    if (cfg->threads < 1 || cfg->threads > EN_MAX_THREADS) goto err;
    if (an_cfg_check(&cfg->anomaly) != RC_OK) goto err;
    rc = RC_ERR_SHAPE;
    if (m->dims.n_feat != FT_NFEAT) goto err;
    rc = RC_ERR_NOMEM;
    e = rc_calloc(1, sizeof *e);
    if (!e) goto err;
    e->m = m;
    e->cfg = *cfg;
    e->max_series = max_series;
    e->F = (int)m->dims.n_feat;
    e->H = (int)m->dims.n_horizon;
    e->Q = (int)m->dims.n_quant;
    e->HQ = e->H * e->Q;
    e->state_len = rk_state_len(&m->dims);
    e->cb = cb;
    e->cb_ctx = cb_ctx;
    /* A freshly initialized (untrained) model carries no featurizer
     * settings; a trained one must carry ours. */
    ft_cfg_default(&e->fcfg);
    if (m->meta.feat_kind != 0 && ft_cfg_from_meta(&e->fcfg, &m->meta) != RC_OK) {
        rc = RC_ERR_VERSION;
        goto err;
    }
    e->fcfg.n_quant = (uint32_t)e->Q;

    int fail = 0;
    size_t S = max_series, B = (size_t)cfg->max_batch;
    e->states = alloc_zero(S * e->state_len, sizeof(float), &fail);
    e->ft = alloc_zero(S, sizeof(ft_state), &fail);
    e->an = alloc_zero(S, sizeof(an_state), &fail);
    e->ca = alloc_zero(S, sizeof(ca_state), &fail);
    e->fc = alloc_zero(S * (size_t)e->HQ, sizeof(float), &fail);
    e->meta = alloc_zero(S, sizeof(en_slot_meta), &fail);
    e->q_last_t = alloc_zero(S, sizeof(double), &fail);
    e->q_busy = alloc_zero(S, 1, &fail);
    e->nb = cfg->pipeline ? EN_NB : 1;
    for (int j = 0; j < e->nb; j++) {
        en_batch *b = &e->bt[j];
        b->slot = alloc_zero(B, sizeof(uint32_t), &fail);
        b->t = alloc_zero(B, sizeof(double), &fail);
        b->v = alloc_zero(B, sizeof(double), &fail);
        b->score = alloc_zero(B, sizeof(float), &fail);
        b->level = alloc_zero(B, 1, &fail);
        b->changed = alloc_zero(B, 1, &fail);
        b->kind = alloc_zero(B, 1, &fail);
        b->flags = alloc_zero(B, 1, &fail);
        b->prev_h = alloc_zero(B, sizeof(int), &fail);
        b->prev = alloc_zero(B * (size_t)e->Q, sizeof(float), &fail);
        b->pos = alloc_zero(B, sizeof(int), &fail);
        b->fc3 = alloc_zero(B * 3 * (size_t)e->H, sizeof(float), &fail);
        b->dt = alloc_zero(B, sizeof(double), &fail);
        b->row = alloc_zero(B, sizeof(int), &fail);
        b->feat = alloc_zero(B * (size_t)e->F, sizeof(float), &fail);
        b->mslot = alloc_zero(B, sizeof(rk_mslot), &fail);
        b->states = alloc_zero(B, sizeof(float *), &fail);
        b->out = alloc_zero(B * (size_t)e->HQ, sizeof(float), &fail);
    }
    e->fill = 0;
    e->notify_fd = -1;
    e->l_yhat = alloc_zero((size_t)e->H * 3, sizeof(float), &fail);
    e->load_state = alloc_zero(e->state_len, sizeof(float), &fail);
    e->load_fc = alloc_zero((size_t)e->HQ, sizeof(float), &fail);
    e->K = cfg->threads;
    e->k0 = cfg->pipeline ? 0 : 1;
    e->sh = alloc_zero((size_t)e->K, sizeof(en_shard), &fail);
    if (fail) goto err;
    const float *ql = m->meta.quantiles;
    if (ca_table_init(&e->cat, e->H, ql[0], 1.0f - ql[e->Q - 1]) != RC_OK) goto err;
    e->l_lo = e->l_yhat + e->H;
    e->l_hi = e->l_yhat + 2 * e->H;
    for (int k = 0; k < e->K; k++) {
        e->sh[k].e = e;
        e->sh[k].k = k;
        /* Any shard may get the whole batch (hashing is not a promise of balance). */
        e->sh[k].ws = rk_ws_new(m, cfg->max_batch, &rc);
        if (!e->sh[k].ws) goto err;
    }
    if (!cfg->caller_inits_slots)
        for (uint32_t s = 0; s < max_series; s++) en_slot_reset(e, s);
    if (e->K > e->k0 && (rc = start_workers(e)) != RC_OK) goto err;
    if (err) *err = RC_OK;
    return e;
err:
    en_free(e);
    if (err) *err = rc;
    return NULL;
}

void en_free(en_engine *e) {
    if (!e) return;
    stop_workers(e);
    for (int k = 0; e->sh && k < e->K; k++) rk_ws_free(e->sh[k].ws);
    rc_free(e->sh);
    rc_free(e->load_fc);
    rc_free(e->load_state);
    rc_free(e->l_yhat);
    for (int j = 0; j < EN_NB; j++) {
        en_batch *b = &e->bt[j];
        void *bufs[] = {b->slot, b->t, b->v, b->flags, b->score, b->level, b->changed, b->kind, b->prev_h, b->prev,
                        b->pos, b->fc3, b->dt, b->row, b->feat, b->mslot, b->states, b->out};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) rc_free(bufs[i]);
    }
    rc_free(e->q_busy);
    rc_free(e->q_last_t);
    rc_free(e->meta);
    rc_free(e->fc);
    rc_free(e->an);
    rc_free(e->ca);
    ca_table_free(&e->cat);
    rc_free(e->ft);
    rc_free(e->states);
    rc_free(e);
}

const rk_model *en_model(const en_engine *e) { return e->m; }
uint32_t en_max_series(const en_engine *e) { return e->max_series; }

static void settle(en_engine *e);

void en_set_anomaly_cfg(en_engine *e, const an_cfg *c) {
    settle(e); /* the workers read it */
    e->cfg.anomaly = *c;
}

int en_pending(const en_engine *e) {
    int n = 0;
    for (int j = 0; j < e->nb; j++) n += e->bt[j].n;
    return n;
}

/* Removes slot's queued sample, if any (used by reset before reuse). */
static void drop_pending(en_engine *e, uint32_t slot) {
    en_batch *b = &e->bt[e->fill];
    int w = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->slot[i] == slot) continue;
        b->slot[w] = b->slot[i];
        b->t[w] = b->t[i];
        b->v[w] = b->v[i];
        b->flags[w] = b->flags[i];
        w++;
    }
    b->n = w;
    e->q_busy[slot] &= (uint8_t)~Q_QUEUED;
}

void en_slot_reset(en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return;
    settle(e);
    if (e->q_busy[slot] & Q_QUEUED) drop_pending(e, slot);
    rk_state_init(e->m, e->states + (size_t)slot * e->state_len);
    ft_init(&e->ft[slot], &e->fcfg);
    an_init(&e->an[slot]);
    ca_init(&e->ca[slot]);
    memset(e->fc + (size_t)slot * e->HQ, 0, (size_t)e->HQ * sizeof(float));
    memset(&e->meta[slot], 0, sizeof e->meta[slot]);
    e->meta[slot].t = -INFINITY;
    e->meta[slot].v = NAN;
    e->q_last_t[slot] = e->ft[slot].last_t;
}

double en_slot_last_t(const en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return -INFINITY;
    return e->q_last_t[slot];
}

/* Waits for the batches in flight only when one of them holds slot. */
static void settle_slot(en_engine *e, uint32_t slot) {
    if (e->q_busy[slot] >= Q_FLIGHT) settle(e);
}

int en_slot_busy(const en_engine *e, uint32_t slot) { return slot < e->max_series && e->q_busy[slot] != 0; }

int en_slot_in_flight(const en_engine *e, uint32_t slot) {
    return slot < e->max_series && e->q_busy[slot] >= Q_FLIGHT;
}

int en_slot_dirty(en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return 0;
    settle_slot(e, slot);
    return (e->meta[slot].flags & SLOT_DIRTY) != 0;
}

void en_slot_clear_dirty(en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return;
    settle_slot(e, slot);
    e->meta[slot].flags &= (uint8_t)~SLOT_DIRTY;
}

void en_slot_mark_dirty(en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return;
    settle_slot(e, slot);
    e->meta[slot].flags |= SLOT_DIRTY;
}

/* Splits a horizon-major forecast (H x Q) into yhat/lo/hi arrays. */
static void split_forecast(const en_engine *e, const float *fc, float *yhat, float *lo, float *hi) {
    for (int h = 0; h < e->H; h++) {
        lo[h] = fc[h * e->Q];
        yhat[h] = fc[h * e->Q + e->Q / 2];
        hi[h] = fc[h * e->Q + e->Q - 1];
    }
}

/*
 * Which horizon of the previous forecast the new sample answers: after a
 * gap of k sampling periods it is step k, not step 1.
 */
static int horizon_of(const en_engine *e, uint32_t slot, double t) {
    double dt = ft_period(&e->ft[slot]);
    double last = e->ft[slot].last_t;
    if (!(dt > 0) || !isfinite(last)) return 1;
    double k = floor((t - last) / dt + 0.5);
    if (!(k >= 1)) return 1;
    if (k > e->H) return 0; /* beyond the forecast: nothing to judge against */
    return (int)k;
}

/*
 * Judges row i's sample against the slot's previous forecast and featurizes
 * it into feat. Touches only the slot's own state, so shards run this in
 * parallel. 0 if the featurizer refused the sample (en_push checked what it
 * checks, so this does not happen; the row is then skipped, state untouched).
 */
static int prepare_row(en_engine *e, en_batch *b, int i, float *feat) {
    uint32_t slot = b->slot[i];
    double t = b->t[i], v = b->v[i];
    float *prev = b->prev + (size_t)i * e->Q;
    int h = (e->meta[slot].flags & SLOT_HAS_FC) ? horizon_of(e, slot, t) : 0;
    if (h > 0) memcpy(prev, e->fc + (size_t)slot * e->HQ + (size_t)(h - 1) * e->Q, (size_t)e->Q * sizeof(float));
    /* The calibration judges the intervals issued 1 (prev), 6 and 24
     * samples ago; after a gap they no longer line up with this sample. */
    if (h == 1 && isfinite(v))
        ca_observe(&e->ca[slot], &e->cat, v, prev[0], prev[e->Q - 1]);
    else if (h != 1)
        ca_forget_issued(&e->ca[slot]);
    if (ft_push(&e->ft[slot], &e->fcfg, t, v, feat) != RC_OK) return 0;
    int level = 0;
    int8_t before = e->meta[slot].level;
    /* The whole path too when v is its horizon 1: the anchored channel compares blocks with it. */
    float score = an_update_path(&e->an[slot], &e->cfg.anomaly, v, h > 0 ? prev : NULL, e->m->meta.quantiles, e->Q,
                                 h == 1 ? e->fc + (size_t)slot * e->HQ : NULL, e->H, ft_period(&e->ft[slot]), &level);
    b->score[i] = score;
    b->level[i] = (int8_t)level;
    b->changed[i] = (int8_t)(level != before);
    b->kind[i] = (int8_t)an_state_kind(&e->an[slot]);
    b->prev_h[i] = h;
    return 1;
}

/* Series arrive in any order, so with many series each slot's featurizer
 * and anomaly state, last forecast and meta are cache (and TLB) misses.
 * Prefetched PREFETCH_AHEAD rows early they arrive while the rows before are
 * judged; the model state is left to rk_step_batch, which fetches it one
 * series ahead layer by layer (fetched here it only evicted the rest).
 * always_inline: GCC 12 finds a function of nothing but prefetches free of
 * side effects and deletes its calls. */
#define PREFETCH_AHEAD 6
static inline __attribute__((always_inline)) void prefetch_range(const void *p, size_t len) {
    const char *c = p;
    for (size_t off = 0; off < len; off += 64) __builtin_prefetch(c + off, 1);
    __builtin_prefetch(c + len - 1, 1);
}

static inline __attribute__((always_inline)) void prefetch_slot(const en_engine *e, uint32_t slot, int judge) {
    prefetch_range(&e->meta[slot], sizeof e->meta[slot]);
    prefetch_range(&e->ft[slot], sizeof e->ft[slot]);
    prefetch_range(e->fc + (size_t)slot * e->HQ, (size_t)e->HQ * sizeof(float));
    if (judge) prefetch_range(&e->an[slot], sizeof e->an[slot]);
    prefetch_range(&e->ca[slot], sizeof e->ca[slot]);
}

/* Everything a batch needs for one shard's rows: judge and featurize, one
 * batched model step, forecasts back to value space and into the batch's
 * results. Only this shard's slots and positions are written. */
static void run_shard(en_engine *e, en_batch *b, en_shard *sh) {
    int64_t t0 = lg_mono_ns();
    int n_ok = 0;
    const int begin = b->sh_begin[sh->k], end = begin + b->sh_n[sh->k];
    for (int p = begin; p < end && p < begin + PREFETCH_AHEAD; p++) prefetch_slot(e, b->slot[b->row[p]], 1);
    for (int p = begin; p < end; p++) {
        if (p + PREFETCH_AHEAD < end) prefetch_slot(e, b->slot[b->row[p + PREFETCH_AHEAD]], 1);
        int i = b->row[p], q = begin + n_ok;
        uint32_t slot = b->slot[i];
        b->pos[i] = -1;
        if (!prepare_row(e, b, i, b->feat + (size_t)q * e->F)) continue;
        if (e->m->dims.n_medium) ft_medium_slot(&e->ft[slot], e->m->dims.n_medium, &b->mslot[q]);
        b->row[q] = i; /* q <= p: compaction never overwrites an unread entry */
        b->pos[i] = q;
        b->states[q] = e->states + (size_t)slot * e->state_len;
        n_ok++;
    }
    if (n_ok == 0) return;
    rk_step_batch(e->m, sh->ws, n_ok, b->feat + (size_t)begin * e->F,
                  e->m->dims.n_medium ? b->mslot + begin : NULL, b->states + begin, b->out + (size_t)begin * e->HQ);
    for (int q = begin; q < begin + n_ok && q < begin + PREFETCH_AHEAD; q++) prefetch_slot(e, b->slot[b->row[q]], 0);
    for (int q = begin; q < begin + n_ok; q++) {
        /* Again: the step in between streamed every state of the batch through the cache. */
        if (q + PREFETCH_AHEAD < begin + n_ok) prefetch_slot(e, b->slot[b->row[q + PREFETCH_AHEAD]], 0);
        int i = b->row[q];
        uint32_t s = b->slot[i];
        en_slot_meta *mt = &e->meta[s];
        float *fc = e->fc + (size_t)s * e->HQ, *r3 = b->fc3 + (size_t)i * 3 * e->H;
        ft_denorm(&e->ft[s], b->out + (size_t)q * e->HQ, fc, e->HQ);
        ca_apply(&e->ca[s], &e->cat, fc, b->out + (size_t)q * e->HQ, e->ft[s].scale, e->Q,
                 e->cfg.shrink_median, e->cfg.calibrate_intervals);
        split_forecast(e, fc, r3, r3 + e->H, r3 + 2 * e->H);
        b->dt[i] = ft_period(&e->ft[s]);
        mt->t = b->t[i];
        mt->v = b->v[i];
        mt->score = b->score[i];
        mt->level = b->level[i];
        mt->flags = (uint8_t)(mt->flags | SLOT_HAS_FC | SLOT_DIRTY | SLOT_HAS_SAMPLE);
    }
    sh->rows += (uint64_t)n_ok;
    sh->busy_ns += (uint64_t)(lg_mono_ns() - t0);
}

static void *shard_main(void *arg) {
    en_shard *sh = arg;
    en_engine *e = sh->e;
    uint64_t seen = 0;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        /* Every submitted batch, in sequence (each has a shard, maybe empty, for every worker). */
        while (e->sub_seq == seen && !e->quit) pthread_cond_wait(&e->go, &e->mu);
        if (e->quit) break;
        en_batch *b = &e->bt[e->ring[seen % EN_NB]];
        seen++;
        pthread_mutex_unlock(&e->mu);
        run_shard(e, b, sh);
        pthread_mutex_lock(&e->mu);
        /* Every worker takes the batches in order, so they finish in order. */
        if (--b->remaining == 0) {
            e->done_seq++;
            pthread_cond_signal(&e->done);
            /* The caller sleeps in poll() rather than on `done`: wake it
             * when the last batch it handed over is done, not after each
             * one. A wake-up of a thread whose vCPU is idle costs ~10 us on
             * a VM (3 % of this thread at full load); meanwhile the earlier
             * batch's results wait for one more batch at most, or until the
             * next input wakes the caller anyway. */
            if (e->notify_wanted && e->done_seq == e->sub_seq && e->notify_fd >= 0) {
                e->notify_wanted = 0;
                int fd = e->notify_fd;
                pthread_mutex_unlock(&e->mu);
                /* Outside the lock: the woken caller takes it first thing. */
                uint64_t one = 1;
                ssize_t wr = write(fd, &one, sizeof one);
                (void)wr; /* EAGAIN: the counter is already readable */
                pthread_mutex_lock(&e->mu);
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* The shard a slot belongs to for as long as its series holds it: a fixed
 * hash of the slot (Fibonacci hashing spreads consecutive slots). */
static int shard_of(const en_engine *e, uint32_t slot) {
    if (e->K == 1) return 0;
    return (int)(((uint64_t)(uint32_t)(slot * 2654435761u) * (uint64_t)e->K) >> 32);
}

/* Groups the rows by shard (stable, so one shard sees them in arrival order). */
static void partition(en_engine *e, en_batch *b) {
    int cnt[EN_MAX_THREADS] = {0}, at[EN_MAX_THREADS];
    for (int i = 0; i < b->n; i++) cnt[shard_of(e, b->slot[i])]++;
    for (int k = 0, off = 0; k < e->K; k++) {
        b->sh_begin[k] = at[k] = off;
        b->sh_n[k] = cnt[k];
        off += cnt[k];
    }
    for (int i = 0; i < b->n; i++) b->row[at[shard_of(e, b->slot[i])]++] = i;
}

/* Hands the filling batch to the workers of shards k0..K-1 (queued behind
 * the batches they are still stepping). */
static void submit_to_workers(en_engine *e, int k0) {
    pthread_mutex_lock(&e->mu);
    e->bt[e->fill].remaining = e->K - k0;
    e->ring[e->sub_seq % EN_NB] = e->fill;
    e->sub_seq++;
    pthread_cond_broadcast(&e->go);
    pthread_mutex_unlock(&e->mu);
}

/* The results of a stepped batch, in arrival order, on the calling thread;
 * the batch is empty afterwards. */
static void deliver(en_engine *e, en_batch *b) {
    int n = b->n;
    b->n = 0;
    if (n > 0) {
        int k = 0;
        while (k < EN_BATCH_BUCKETS - 1 && (1 << k) < n) k++;
        e->batch_hist[k]++;
        e->batch_rows += (uint64_t)n;
    }
    for (int i = 0; i < n; i++) {
        e->q_busy[b->slot[i]] -= Q_FLIGHT;
        if (!e->cb || b->pos[i] < 0) continue;
        const float *r3 = b->fc3 + (size_t)i * 3 * e->H;
        en_result r = {
            .slot = b->slot[i],
            .t = b->t[i],
            .v = b->v[i],
            .dt = b->dt[i],
            .H = e->H,
            .yhat = r3,
            .lo = r3 + e->H,
            .hi = r3 + 2 * e->H,
            .prev = b->prev_h[i] > 0 ? b->prev + (size_t)i * e->Q : NULL,
            .prev_h = b->prev_h[i],
            .score = b->score[i],
            .level = b->level[i],
            .level_changed = b->changed[i],
            .kind = b->kind[i],
            .flags = b->flags[i],
        };
        e->cb(e->cb_ctx, &r);
    }
}

/* Delivers, in order, the submitted batches before sequence number `upto`
 * that the workers have finished, after waiting until at least `need` of
 * them are. */
static void deliver_done(en_engine *e, uint64_t need, uint64_t upto) {
    pthread_mutex_lock(&e->mu);
    while (e->done_seq - e->dlv_seq < need) pthread_cond_wait(&e->done, &e->mu);
    uint64_t done = e->done_seq < upto ? e->done_seq : upto;
    pthread_mutex_unlock(&e->mu);
    for (; e->dlv_seq < done; e->dlv_seq++) deliver(e, &e->bt[e->ring[e->dlv_seq % EN_NB]]);
}

/* Waits for every submitted batch and delivers its results. Every call that
 * touches slot state goes through here first, so the caller never sees a
 * slot a worker is writing. */
static void settle(en_engine *e) {
    if (e->sub_seq != e->dlv_seq) deliver_done(e, e->sub_seq - e->dlv_seq, e->sub_seq);
}

/*
 * Starts stepping the filling batch. Without pipelining it is stepped and
 * its results delivered before this returns. In pipeline mode it is queued
 * for the workers, the results of the batches they have finished are
 * delivered, so the caller encodes and publishes them while the workers
 * step, and a free batch becomes the filling one: when all EN_NB are in
 * flight, after waiting for the oldest.
 */
void en_submit(en_engine *e) {
    en_batch *b = &e->bt[e->fill];
    /* Queued -> in flight (every row's slot has Q_QUEUED set). */
    for (int i = 0; i < b->n; i++) e->q_busy[b->slot[i]] += Q_FLIGHT - Q_QUEUED;
    if (!e->cfg.pipeline) {
        if (b->n == 0) return;
        partition(e, b);
        if (e->K == 1 || b->n < EN_PAR_MIN_ROWS) {
            for (int k = 0; k < e->K; k++) run_shard(e, b, &e->sh[k]);
            deliver(e, b);
        } else {
            submit_to_workers(e, 1);
            run_shard(e, b, &e->sh[0]);
            settle(e);
        }
        return;
    }
    uint64_t older = e->sub_seq; /* the batches before this one */
    if (b->n > 0) {
        partition(e, b);
        submit_to_workers(e, 0);
    }
    /* Only older ones: the batch just handed over is always in flight when
     * this returns, whatever the workers' speed. */
    deliver_done(e, e->sub_seq - e->dlv_seq == EN_NB ? 1 : 0, older);
    for (int j = 0; j < EN_NB; j++)
        if (e->bt[j].n == 0) e->fill = j; /* free: delivered (or the one just left empty) */
}

void en_flush(en_engine *e) {
    en_submit(e);
    settle(e);
}

void en_set_notify_fd(en_engine *e, int fd) { e->notify_fd = fd; }

int en_poll(en_engine *e) {
    if (!e->cfg.pipeline) {
        en_flush(e);
        return 0;
    }
    for (;;) {
        deliver_done(e, 0, e->sub_seq);
        /* Queued samples go to the workers unless that would leave no free batch to fill. */
        if (e->bt[e->fill].n > 0 && e->sub_seq - e->dlv_seq < EN_NB - 1) en_submit(e);
        /* Armed under the lock the workers finish under: a batch finished
         * after this check writes the fd; one finished before is counted. */
        pthread_mutex_lock(&e->mu);
        int busy = e->done_seq != e->sub_seq;
        if (busy) e->notify_wanted = 1;
        pthread_mutex_unlock(&e->mu);
        if (busy) return 1;
        if (e->dlv_seq == e->sub_seq && e->bt[e->fill].n == 0) return 0;
    }
}

rc_err en_push(en_engine *e, uint32_t slot, double t, double v) { return en_push_flags(e, slot, t, v, 0); }

rc_err en_push_flags(en_engine *e, uint32_t slot, double t, double v, unsigned flags) {
    if (slot >= e->max_series) return RC_ERR_LIMIT;
    if (!isfinite(t) || isinf(v)) return RC_ERR_NUMERIC;
    /* One sample per series per batch: the slot's previous sample must be
     * stepped before this one is judged against its forecast. */
    if (e->q_busy[slot] & Q_QUEUED) en_submit(e);
    if (!(t > e->q_last_t[slot])) return RC_ERR_PROTO;
    en_batch *b = &e->bt[e->fill];
    int i = b->n;
    b->slot[i] = slot;
    b->t[i] = t;
    b->v[i] = v;
    b->flags[i] = (uint8_t)flags;
    b->n = i + 1;
    e->q_busy[slot] |= Q_QUEUED;
    e->q_last_t[slot] = t;
    if (b->n == e->cfg.max_batch) en_submit(e);
    return RC_OK;
}

int en_threads(const en_engine *e) { return e->K; }

void en_batch_stats(const en_engine *e, uint64_t counts[EN_BATCH_BUCKETS], uint64_t *rows) {
    memcpy(counts, e->batch_hist, sizeof e->batch_hist);
    *rows = e->batch_rows;
}

void en_shard_stats(en_engine *e, int k, uint64_t *rows, uint64_t *busy_ns) {
    if (k < 0 || k >= e->K) {
        *rows = *busy_ns = 0;
        return;
    }
    settle(e);
    *rows = e->sh[k].rows;
    *busy_ns = e->sh[k].busy_ns;
}

const en_result *en_slot_last(en_engine *e, uint32_t slot) {
    if (slot >= e->max_series) return NULL;
    /* Only this slot is read (the silence timers ask for one series while
     * the others step). */
    settle_slot(e, slot);
    if (!(e->meta[slot].flags & SLOT_HAS_SAMPLE)) return NULL;
    const en_slot_meta *mt = &e->meta[slot];
    split_forecast(e, e->fc + (size_t)slot * e->HQ, e->l_yhat, e->l_lo, e->l_hi);
    e->last_view = (en_result){
        .slot = slot,
        .t = mt->t,
        .v = mt->v,
        .dt = ft_period(&e->ft[slot]),
        .H = e->H,
        .yhat = e->l_yhat,
        .lo = e->l_lo,
        .hi = e->l_hi,
        .prev = NULL,
        .score = mt->score,
        .level = mt->level,
        .level_changed = 0,
        .kind = an_state_kind(&e->an[slot]),
    };
    return &e->last_view;
}

/* ---- blobs ----
 *   0  u32 magic "ENS1"      4  u32 version       8  u64 model hash
 *  16  u32 H                20  u32 Q            24  u32 flags (HAS_FC|HAS_SAMPLE)
 *  28  i32 level            32  f64 t            40  f32 score   44 u32 check (blob_check)
 *  48  rk state blob, ft blob, an blob, ca blob, f32 forecast (H*Q), f64 v
 */

/* The blob's check value: CRC-32C of the header before it, xor that of
 * everything after it (the field itself is the only byte range left out). */
static uint32_t blob_check(const uint8_t *buf, size_t len) {
    return rc_crc32c(buf, 44) ^ rc_crc32c(buf + EN_BLOB_HDR, len - EN_BLOB_HDR);
}

size_t en_blob_size(const en_engine *e) {
    return EN_BLOB_HDR + rk_state_blob_size(&e->m->dims) + FT_BLOB_SIZE + AN_BLOB_SIZE + CA_BLOB_SIZE +
           4 * (size_t)e->HQ + 8;
}

void en_slot_save(en_engine *e, uint32_t slot, uint8_t *buf) {
    settle_slot(e, slot);
    const en_slot_meta *mt = &e->meta[slot];
    memset(buf, 0, EN_BLOB_HDR);
    rc_put_u32(buf, EN_BLOB_MAGIC);
    rc_put_u32(buf + 4, EN_BLOB_VERSION);
    rc_put_u64(buf + 8, e->m->hash);
    rc_put_u32(buf + 16, (uint32_t)e->H);
    rc_put_u32(buf + 20, (uint32_t)e->Q);
    rc_put_u32(buf + 24, (uint32_t)(mt->flags & (SLOT_HAS_FC | SLOT_HAS_SAMPLE)));
    rc_put_u32(buf + 28, (uint32_t)(int32_t)mt->level);
    rc_put_f64(buf + 32, mt->t);
    rc_put_f32(buf + 40, mt->score);
    uint8_t *p = buf + EN_BLOB_HDR;
    rk_state_save(e->m, e->states + (size_t)slot * e->state_len, p);
    p += rk_state_blob_size(&e->m->dims);
    ft_save(&e->ft[slot], p);
    p += FT_BLOB_SIZE;
    an_save(&e->an[slot], p);
    p += AN_BLOB_SIZE;
    ca_save(&e->ca[slot], p);
    p += CA_BLOB_SIZE;
    const float *fc = e->fc + (size_t)slot * e->HQ;
    for (int i = 0; i < e->HQ; i++) rc_put_f32(p + 4 * i, fc[i]);
    p += 4 * (size_t)e->HQ;
    rc_put_f64(p, mt->v);
    /* Last: a flipped bit or a hand-edited row is refused at load instead
     * of being restored as finite but wrong numbers. */
    rc_put_u32(buf + 44, blob_check(buf, en_blob_size(e)));
}

/*
 * Validates every part of a blob against this engine and decodes it: the
 * model state into load_state, the forecast into load_fc, the featurizer and
 * anomaly states into *fs and *as. Nothing of a slot is touched, so
 * en_slot_load and en_blob_last accept and refuse exactly the same blobs.
 */
static rc_err decode_blob(en_engine *e, const uint8_t *buf, size_t len, ft_state *fs, an_state *as) {
    if (len < EN_BLOB_HDR || rc_get_u32(buf) != EN_BLOB_MAGIC) return RC_ERR_FORMAT;
    uint32_t version = rc_get_u32(buf + 4);
    if (version < EN_BLOB_VERSION_MIN || version > EN_BLOB_VERSION) return RC_ERR_VERSION;
    if (rc_get_u64(buf + 8) != e->m->hash) return RC_ERR_MODEL;
    if (rc_get_u32(buf + 16) != (uint32_t)e->H || rc_get_u32(buf + 20) != (uint32_t)e->Q) return RC_ERR_SHAPE;
    const size_t an_n = version == 4 ? AN_BLOB_V3_SIZE : AN_BLOB_SIZE;
    if (len != en_blob_size(e) - AN_BLOB_SIZE + an_n) return RC_ERR_FORMAT;
    if (rc_get_u32(buf + 44) != blob_check(buf, len)) return RC_ERR_FORMAT;
    size_t rk_n = rk_state_blob_size(&e->m->dims);
    const uint8_t *p = buf + EN_BLOB_HDR;
    rc_err rc;
    if ((rc = rk_state_load(e->m, e->load_state, p, rk_n)) != RC_OK) return rc;
    p += rk_n;
    if ((rc = ft_load(fs, p, FT_BLOB_SIZE)) != RC_OK) return rc;
    p += FT_BLOB_SIZE;
    if ((rc = an_load(as, p, an_n)) != RC_OK) return rc;
    /* The anomaly blob leaves its score to the header. */
    as->score = rc_get_f32(buf + 40);
    if (!(as->score >= 0.0f && as->score <= 1.0f)) return RC_ERR_FORMAT;
    p += an_n;
    if ((rc = ca_load(&e->load_ca, p, CA_BLOB_SIZE)) != RC_OK) return rc;
    p += CA_BLOB_SIZE;
    for (int i = 0; i < e->HQ; i++) {
        e->load_fc[i] = rc_get_f32(p + 4 * i);
        if (!isfinite(e->load_fc[i])) return RC_ERR_NUMERIC;
    }
    return RC_OK;
}

/* The last value: the blob's final f64 (layout above). */
static double blob_last_v(const uint8_t *buf, size_t len) { return rc_get_f64(buf + len - 8); }

const en_result *en_blob_last(en_engine *e, const uint8_t *buf, size_t len, rc_err *err) {
    ft_state fs;
    an_state as;
    rc_err rc = decode_blob(e, buf, len, &fs, &as);
    *err = rc;
    if (rc != RC_OK || !(rc_get_u32(buf + 24) & SLOT_HAS_SAMPLE)) return NULL;
    split_forecast(e, e->load_fc, e->l_yhat, e->l_lo, e->l_hi);
    e->last_view = (en_result){
        .slot = UINT32_MAX,
        .t = rc_get_f64(buf + 32),
        .v = blob_last_v(buf, len),
        .dt = ft_period(&fs),
        .H = e->H,
        .yhat = e->l_yhat,
        .lo = e->l_lo,
        .hi = e->l_hi,
        .prev = NULL,
        .score = rc_get_f32(buf + 40),
        .level = (int)(int32_t)rc_get_u32(buf + 28),
        .level_changed = 0,
        .kind = an_state_kind(&as),
    };
    return &e->last_view;
}

rc_err en_slot_load(en_engine *e, uint32_t slot, const uint8_t *buf, size_t len) {
    if (slot >= e->max_series) return RC_ERR_LIMIT;
    settle(e);
    ft_state fs;
    an_state as;
    rc_err rc = decode_blob(e, buf, len, &fs, &as);
    if (rc != RC_OK) {
        en_slot_reset(e, slot);
        return rc;
    }
    /* Everything validated: commit. Every part of the slot is overwritten,
     * so it is not reset first (a restore writes 1M slots once, not twice). */
    if (e->q_busy[slot] & Q_QUEUED) drop_pending(e, slot);
    memcpy(e->states + (size_t)slot * e->state_len, e->load_state, e->state_len * sizeof(float));
    e->ft[slot] = fs;
    e->q_last_t[slot] = fs.last_t;
    e->an[slot] = as;
    e->ca[slot] = e->load_ca;
    memcpy(e->fc + (size_t)slot * e->HQ, e->load_fc, (size_t)e->HQ * sizeof(float));
    en_slot_meta *mt = &e->meta[slot];
    memset(mt, 0, sizeof *mt);
    mt->flags = (uint8_t)(rc_get_u32(buf + 24) & (SLOT_HAS_FC | SLOT_HAS_SAMPLE));
    mt->level = (int8_t)(int32_t)rc_get_u32(buf + 28);
    mt->t = rc_get_f64(buf + 32);
    mt->score = rc_get_f32(buf + 40);
    mt->v = blob_last_v(buf, len);
    return RC_OK;
}

const char *en_default_model_path(void) {
    const char *env = getenv("RWKVCAST_MODEL");
    if (env && *env) return env;
    static const char installed[] = RWKVCAST_DATADIR "/default.rwkv";
    if (access(installed, R_OK) == 0) return installed;
    return "model/default.rwkv";
}
