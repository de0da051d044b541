/*
 * engine_test.c: the engine (daemon/engine.c): one result per sample with ordered
 * intervals, batching that does not change results, per-series order,
 * input errors, blob round trips and their error paths, threads and the
 * pipeline mode that change no bit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon/anomaly.h"
#include "daemon/engine.h"
#include "model/features.h"
#include "tests/unit/harness.h"

typedef struct rec {
    int n;             /* results seen */
    uint32_t slot[4096];
    double t[4096];
    float yhat1[4096];
    float score[4096];
    int bad;           /* results violating lo <= yhat <= hi or score range */
} rec;

static void on_result(void *ctx, const en_result *r) {
    rec *c = ctx;
    for (int h = 0; h < r->H; h++)
        if (!(r->lo[h] <= r->yhat[h] && r->yhat[h] <= r->hi[h]) || !isfinite(r->yhat[h])) c->bad++;
    if (!(r->score >= 0.0f && r->score <= 1.0f)) c->bad++;
    if (c->n < 4096) {
        c->slot[c->n] = r->slot;
        c->t[c->n] = r->t;
        c->yhat1[c->n] = r->yhat[0];
        c->score[c->n] = r->score;
    }
    c->n++;
}

static rk_model *model(void) {
    rk_dims d = rk_dims_default(FT_NFEAT);
    d.n_horizon = 12;
    rk_model *m = rk_model_new(&d, NULL);
    ASSERT(m != NULL);
    rk_model_init_random(m, 21);
    return m;
}

/* An engine with the default config but max_batch = batch and, when
 * caller_inits, caller_inits_slots (the daemon's setting). */
static en_engine *engine_cfg(const rk_model *m, int batch, int caller_inits, uint32_t series, rec *r) {
    en_cfg c;
    en_cfg_default(&c);
    c.max_batch = batch;
    c.caller_inits_slots = caller_inits;
    rc_err e;
    en_engine *en = en_new(m, &c, series, on_result, r, &e);
    ASSERT(en != NULL);
    return en;
}

static en_engine *engine(const rk_model *m, int batch, uint32_t series, rec *r) {
    return engine_cfg(m, batch, 0, series, r);
}

static double value(int s, int i) { return 100.0 + 10.0 * sin(i * 0.26 + s) + s; }

TEST(one_result_per_sample) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *e = engine(m, 8, 4, r);
    for (int i = 0; i < 300; i++) {
        for (uint32_t s = 0; s < 4; s++) ASSERT_EQ(en_push(e, s, 1e9 + 60.0 * i, value((int)s, i)), RC_OK);
    }
    en_flush(e);
    ASSERT_EQ(r->n, 1200);
    ASSERT_EQ(r->bad, 0);
    ASSERT_EQ(en_pending(e), 0);
    const en_result *last = en_slot_last(e, 2);
    ASSERT(last != NULL);
    ASSERT_NEAR(last->t, 1e9 + 60.0 * 299, 1e-6);
    ASSERT_NEAR(last->dt, 60.0, 1e-6);
    ASSERT(en_slot_last(e, 3) != NULL);
    en_free(e);
    rk_model_free(m);
    free(r);
}

/* Batch size must not change any number: same kernel path per row. */
TEST(batching_does_not_change_results) {
    rk_model *m = model();
    rec *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    en_engine *ea = engine(m, 1, 16, a), *eb = engine(m, 64, 16, b);
    for (int i = 0; i < 100; i++)
        for (uint32_t s = 0; s < 16; s++) {
            double v = (i % 17 == 0 && s == 3) ? NAN : value((int)s, i);
            ASSERT_EQ(en_push(ea, s, 1000.0 + i, v), RC_OK);
            ASSERT_EQ(en_push(eb, s, 1000.0 + i, v), RC_OK);
        }
    en_flush(ea);
    en_flush(eb);
    ASSERT_EQ(a->n, 1600);
    ASSERT_EQ(b->n, 1600);
    for (uint32_t s = 0; s < 16; s++) {
        const en_result *ra = en_slot_last(ea, s);
        float y = ra->yhat[5];
        const en_result *rb = en_slot_last(eb, s);
        ASSERT(memcmp(&y, &rb->yhat[5], sizeof y) == 0);
    }
    /* Results arrive in push order per series even when batched. */
    double last_t[16];
    for (int s = 0; s < 16; s++) last_t[s] = -1;
    for (int i = 0; i < b->n && i < 4096; i++) {
        ASSERT(b->t[i] > last_t[b->slot[i]]);
        last_t[b->slot[i]] = b->t[i];
    }
    en_free(ea);
    en_free(eb);
    rk_model_free(m);
    free(a);
    free(b);
}

TEST(input_errors_leave_slot_untouched) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *e = engine(m, 4, 2, r);
    ASSERT_EQ(en_push(e, 0, 100.0, 1.0), RC_OK);
    ASSERT_EQ(en_push(e, 0, 100.0, 2.0), RC_ERR_PROTO); /* not after the last */
    ASSERT_EQ(en_push(e, 0, 50.0, 2.0), RC_ERR_PROTO);
    ASSERT_EQ(en_push(e, 0, 101.0, INFINITY), RC_ERR_NUMERIC);
    ASSERT_EQ(en_push(e, 0, NAN, 1.0), RC_ERR_NUMERIC);
    ASSERT_EQ(en_push(e, 2, 101.0, 1.0), RC_ERR_LIMIT);
    ASSERT_EQ(en_push(e, 0, 101.0, NAN), RC_OK); /* missing value is data */
    en_flush(e);
    ASSERT_EQ(r->n, 2);
    ASSERT_EQ(r->bad, 0);
    ASSERT_NEAR(en_slot_last_t(e, 0), 101.0, 0);
    en_free(e);
    rk_model_free(m);
    free(r);
}

/* Steps samples 0..119 of series 1 in slot 1 of a and returns its saved
 * blob (malloc'd, *n bytes). */
static uint8_t *saved_series(en_engine *a, size_t *n) {
    for (int i = 0; i < 120; i++) en_push(a, 1, 500.0 + 10 * i, value(1, i));
    en_flush(a);
    *n = en_blob_size(a);
    uint8_t *blob = malloc(*n);
    ASSERT(blob != NULL);
    en_slot_save(a, 1, blob);
    return blob;
}

/* Feeds samples 120..199 of series 1 to slot `from` of a and to each slot
 * in `to` of b (which hold a's saved state) and checks that every step's
 * forecast and score are bit-identical. */
static void continues_identically(en_engine *a, uint32_t from, en_engine *b, const uint32_t *to, int nto) {
    for (int i = 120; i < 200; i++) {
        en_push(a, from, 500.0 + 10 * i, value(1, i));
        for (int k = 0; k < nto; k++) en_push(b, to[k], 500.0 + 10 * i, value(1, i));
        en_flush(a);
        en_flush(b);
        const en_result *ra = en_slot_last(a, from);
        float ya[12], sa = ra->score;
        memcpy(ya, ra->yhat, sizeof ya);
        for (int k = 0; k < nto; k++) {
            const en_result *rb = en_slot_last(b, to[k]);
            ASSERT(rb != NULL);
            ASSERT(memcmp(ya, rb->yhat, sizeof ya) == 0);
            ASSERT(memcmp(&sa, &rb->score, sizeof sa) == 0);
        }
    }
}

TEST(blob_roundtrip_continues_identically) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *a = engine(m, 4, 2, r), *b = engine(m, 4, 2, r);
    size_t n;
    uint8_t *blob = saved_series(a, &n);
    ASSERT(en_slot_dirty(a, 1));
    ASSERT(!en_slot_dirty(a, 0));
    en_slot_clear_dirty(a, 1);
    ASSERT(!en_slot_dirty(a, 1));
    ASSERT_EQ(en_slot_load(b, 0, blob, n), RC_OK);
    const uint32_t to[] = {0};
    continues_identically(a, 1, b, to, 1);
    free(blob);
    en_free(a);
    en_free(b);
    rk_model_free(m);
    free(r);
}

/* A blob of the previous version (4: the anomaly blob ANS3, before the
 * alarm budget), as a store written before the upgrade holds it: it loads,
 * and the series' forecasts go on bit-identical (model, featurizer and
 * calibration states are kept; only the anomaly tails restart). */
TEST(version_4_blob_loads_and_forecasts_identically) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *a = engine(m, 4, 2, r), *b = engine(m, 4, 2, r);
    size_t n;
    uint8_t *blob = saved_series(a, &n);
    const size_t an_at = 48 + rk_state_blob_size(&m->dims) + FT_BLOB_SIZE, shrink = AN_BLOB_SIZE - AN_BLOB_V3_SIZE;
    const size_t n4 = n - shrink;
    uint8_t *old = malloc(n4);
    ASSERT(old != NULL);
    memcpy(old, blob, an_at);
    rc_put_u32(old + 4, 4);
    /* ANS3: magic, n, level|kind, then its 27 fields (docs/FILE_FORMAT.md):
     * score step last_v mae, q_hi, ev_p[2] ev_b[2], m_short .. a_sgn[1] as in
     * ANS4, a_trend as a float. */
    uint8_t *o = old + an_at;
    const uint8_t *nw = blob + an_at;
    rc_put_u32(o, 0x33534e41u);
    rc_put_u32(o + 4, rc_get_u32(nw + 4));
    uint32_t lk = rc_get_u32(nw + 8);
    rc_put_u32(o + 8, lk & 0xffffu);                        /* level | kind << 8 */
    memcpy(o + 12, old + 40, 4);                            /* score, from the header */
    for (int j = 1; j < 4; j++) memcpy(o + 12 + 4 * j, nw + 12 + 4 * (j - 1), 4); /* step last_v mae */
    const float v3_tail[5] = {7.0f, 0.05f, 0.06f, 0.5f, 0.6f}; /* q_hi, ev_p[2], ev_b[2] */
    for (int j = 0; j < 5; j++) rc_put_f32(o + 12 + 4 * (4 + j), v3_tail[j]);
    for (int j = 9; j < 26; j++) memcpy(o + 12 + 4 * j, nw + 12 + 4 * (j + 3), 4); /* m_short .. a_sgn[1] */
    rc_put_f32(o + 12 + 4 * 26, (float)(lk >> 16));         /* a_trend */
    memcpy(o + AN_BLOB_V3_SIZE, nw + AN_BLOB_SIZE, n - an_at - AN_BLOB_SIZE);
    rc_put_u32(old + 44, rc_crc32c(old, 44) ^ rc_crc32c(old + 48, n4 - 48));
    ASSERT_EQ(en_slot_load(b, 0, old, n4), RC_OK);
    /* The same bytes claiming version 5 are refused (wrong size). */
    rc_put_u32(old + 4, 5);
    ASSERT_EQ(en_slot_load(b, 1, old, n4), RC_ERR_FORMAT);
    for (int i = 120; i < 200; i++) {
        en_push(a, 1, 500.0 + 10 * i, value(1, i));
        en_push(b, 0, 500.0 + 10 * i, value(1, i));
        en_flush(a);
        en_flush(b);
        const en_result *ra = en_slot_last(a, 1), *rb = en_slot_last(b, 0);
        ASSERT(ra != NULL && rb != NULL);
        ASSERT(memcmp(ra->yhat, rb->yhat, sizeof(float) * (size_t)ra->H) == 0);
        ASSERT(rb->score >= 0.0f && rb->score <= 1.0f);
    }
    free(old);
    free(blob);
    en_free(a);
    en_free(b);
    rk_model_free(m);
    free(r);
}

/* The daemon's engine (caller_inits_slots) never resets its slots up front:
 * a blob loaded into a slot that was never touched, or over one with a
 * queued sample, must continue exactly like the saved series. */
TEST(load_without_reset_continues_identically) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *a = engine(m, 4, 2, r), *b = engine_cfg(m, 4, 1, 3, r);
    size_t n;
    uint8_t *blob = saved_series(a, &n);
    ASSERT_EQ(en_slot_load(b, 2, blob, n), RC_OK); /* never reset */
    en_slot_reset(b, 0);
    en_push(b, 0, 1.0, 1.0);
    ASSERT_EQ(en_pending(b), 1);
    ASSERT_EQ(en_slot_load(b, 0, blob, n), RC_OK); /* drops the queued sample */
    ASSERT_EQ(en_pending(b), 0);
    const uint32_t to[] = {2, 0};
    continues_identically(a, 1, b, to, 2);
    free(blob);
    en_free(a);
    en_free(b);
    rk_model_free(m);
    free(r);
}

TEST(blob_errors_reset_slot) {
    rk_model *m = model(), *other = model();
    other->w[0] += 1.0f;
    rk_model_prepare(other);
    rec *r = calloc(1, sizeof *r);
    en_engine *a = engine(m, 4, 2, r), *b = engine(other, 4, 2, r);
    for (int i = 0; i < 30; i++) en_push(a, 0, 10.0 + i, value(0, i));
    en_flush(a);
    size_t n = en_blob_size(a);
    uint8_t *blob = malloc(n);
    en_slot_save(a, 0, blob);
    for (int i = 0; i < 5; i++) en_push(b, 1, 1.0 + i, 1.0);
    en_flush(b);
    ASSERT(en_slot_last(b, 1) != NULL);
    ASSERT_EQ(en_slot_load(b, 1, blob, n), RC_ERR_MODEL);
    ASSERT(en_slot_last(b, 1) == NULL); /* reset, not half-loaded */
    ASSERT_EQ(en_slot_load(a, 1, blob, n - 1), RC_ERR_FORMAT);
    blob[0] ^= 1;
    ASSERT_EQ(en_slot_load(a, 1, blob, n), RC_ERR_FORMAT);
    blob[0] ^= 1;
    /* A changed byte anywhere, header or body, fails the check value. */
    static const size_t at[4] = {32, 40, 48, 0};
    for (int k = 0; k < 4; k++) {
        size_t off = k < 3 ? at[k] : n - 9;
        blob[off] ^= 0x10;
        ASSERT_EQ(en_slot_load(a, 1, blob, n), RC_ERR_FORMAT);
        ASSERT(en_slot_last(a, 1) == NULL);
        blob[off] ^= 0x10;
    }
    ASSERT_EQ(en_slot_load(a, 1, blob, n), RC_OK);
    blob[4] = 7;
    ASSERT_EQ(en_slot_load(a, 1, blob, n), RC_ERR_VERSION);
    free(blob);
    en_free(a);
    en_free(b);
    rk_model_free(m);
    rk_model_free(other);
    free(r);
}

TEST(series_budget_default_model) {
    rk_dims d = rk_dims_default(FT_NFEAT);
    rk_model *m = rk_model_new(&d, NULL);
    rk_model_init_random(m, 1);
    en_cfg c;
    en_cfg_default(&c);
    size_t before = rc_mem_used();
    en_engine *e = en_new(m, &c, 10000, NULL, NULL, NULL);
    ASSERT(e != NULL);
    double per_series = (double)(rc_mem_used() - before) / 10000.0;
    printf("  default model: blob %zu bytes, %.0f bytes of engine memory per series\n", en_blob_size(e), per_series);
    ASSERT_LE(en_blob_size(e), 4096);
    ASSERT_LE(per_series, 4096 + 512); /* + the shared batch buffers amortized */
    en_free(e);
    rk_model_free(m);
}

TEST(reset_drops_queued_sample) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *e = engine(m, 8, 3, r);
    en_push(e, 0, 1.0, 1.0);
    en_push(e, 1, 1.0, 1.0);
    en_slot_reset(e, 0);
    ASSERT_EQ(en_pending(e), 1);
    en_flush(e);
    ASSERT_EQ(r->n, 1);
    ASSERT_EQ(r->slot[0], 1);
    ASSERT(en_slot_last(e, 0) == NULL);
    en_free(e);
    rk_model_free(m);
    free(r);
}


/* A digest of every result in arrival order: slot, time, score, level and
 * the whole forecast, bit for bit. */
typedef struct digest {
    uint64_t h;
    long n;
} digest;

static void mix_bytes(digest *d, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) d->h = (d->h ^ b[i]) * 1099511628211ull;
}

static void on_digest(void *ctx, const en_result *r) {
    digest *d = ctx;
    mix_bytes(d, &r->slot, sizeof r->slot);
    mix_bytes(d, &r->t, sizeof r->t);
    mix_bytes(d, &r->score, sizeof r->score);
    mix_bytes(d, &r->level, sizeof r->level);
    mix_bytes(d, r->yhat, sizeof(float) * (size_t)r->H);
    mix_bytes(d, r->lo, sizeof(float) * (size_t)r->H);
    mix_bytes(d, r->hi, sizeof(float) * (size_t)r->H);
    d->n++;
}

/* Drives 1000 series (gaps, missing values, a reset while queued, one
 * series sending twice per round, a slot saved and loaded back, reads of a
 * slot's last result, explicit submits) through an engine of K threads,
 * pipelined or not. d digests the results; q the reads made between them. */
static void drive_threads(const rk_model *m, int K, int pipeline, digest *d, digest *q, uint8_t *blob0,
                          uint64_t *shard_rows) {
    en_cfg c;
    en_cfg_default(&c);
    c.max_batch = 256;
    c.threads = K;
    c.pipeline = pipeline;
    rc_err err;
    d->h = q->h = 1469598103934665603ull;
    d->n = q->n = 0;
    en_engine *e = en_new(m, &c, 1000, on_digest, d, &err);
    ASSERT(e != NULL);
    ASSERT_EQ(en_threads(e), K);
    uint8_t *blob = malloc(en_blob_size(e));
    ASSERT(blob != NULL);
    for (int i = 0; i < 40; i++) {
        for (uint32_t s = 0; s < 1000; s++) {
            if ((s + (uint32_t)i) % 11 == 0) continue; /* a gap */
            double v = (i * 7 + (int)s) % 29 == 0 ? NAN : value((int)s, i) + (s == 17 && i > 30 ? 40.0 : 0.0);
            ASSERT_EQ(en_push(e, s, 1e9 + 60.0 * i, v), RC_OK);
            if (s == 5) ASSERT_EQ(en_push(e, s, 1e9 + 60.0 * i + 30.0, v), RC_OK); /* flushes */
            /* Refused against the time just accepted, in flight or not. */
            if (s == 3) ASSERT_EQ(en_push(e, s, 1e9 + 60.0 * i, v), RC_ERR_PROTO);
            if (s == 500 && i % 7 == 3) en_submit(e);
        }
        if (i == 20) en_slot_reset(e, 999); /* it is queued: dropped from the batch */
        if (i == 25) { /* a blob round trip of a slot that may be queued or in flight */
            en_slot_save(e, 42, blob);
            ASSERT_EQ(en_slot_load(e, 42, blob, en_blob_size(e)), RC_OK);
        }
        const en_result *r = en_slot_last(e, 7);
        if (r) {
            mix_bytes(q, &r->t, sizeof r->t);
            mix_bytes(q, r->yhat, sizeof(float) * (size_t)r->H);
        }
        int dirty = en_slot_dirty(e, 8);
        mix_bytes(q, &dirty, sizeof dirty);
        en_slot_clear_dirty(e, 8);
        double lt = en_slot_last_t(e, 9);
        mix_bytes(q, &lt, sizeof lt);
        q->n++;
    }
    en_flush(e);
    ASSERT_EQ(en_pending(e), 0);
    en_slot_save(e, 0, blob0);
    uint64_t total = 0;
    for (int k = 0; k < K; k++) {
        uint64_t busy;
        en_shard_stats(e, k, &shard_rows[k], &busy);
        total += shard_rows[k];
    }
    ASSERT_EQ((long)total, d->n);
    free(blob);
    en_free(e);
}

/* Runs drive_threads with K threads, pipelined or not, and checks it against
 * the reference run bit for bit: results, slot reads and saved state. */
static void expect_same_run(const rk_model *m, int K, int pipeline, const digest *d1, const digest *q1,
                            const uint8_t *b1, size_t bs, uint64_t *rows) {
    digest dk, qk;
    uint8_t *bk = malloc(bs);
    ASSERT(bk != NULL);
    drive_threads(m, K, pipeline, &dk, &qk, bk, rows);
    ASSERT_EQ(dk.n, d1->n);
    ASSERT(dk.h == d1->h);
    ASSERT(qk.h == q1->h);
    ASSERT_EQ(memcmp(b1, bk, bs), 0);
    free(bk);
}

/* The last result read back from a blob (a series in the store) is the
 * slot's own; a fresh slot's blob has none; a foreign blob is refused. */
TEST(blob_last_equals_slot_last) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *e = engine(m, 8, 2, r);
    for (int i = 0; i < 50; i++) ASSERT_EQ(en_push(e, 0, 1e9 + 60.0 * i, value(0, i)), RC_OK);
    en_flush(e);
    size_t bs = en_blob_size(e);
    uint8_t *b = malloc(bs), *b1 = malloc(bs);
    en_slot_save(e, 0, b);
    en_slot_save(e, 1, b1);
    const en_result *s = en_slot_last(e, 0);
    double t = s->t, dt = s->dt, v = s->v;
    float score = s->score, y[64], lo[64], hi[64];
    int level = s->level, H = s->H;
    ASSERT(H <= 64);
    memcpy(y, s->yhat, sizeof(float) * (size_t)H);
    memcpy(lo, s->lo, sizeof(float) * (size_t)H);
    memcpy(hi, s->hi, sizeof(float) * (size_t)H);
    rc_err err = RC_ERR_IO;
    const en_result *x = en_blob_last(e, b, bs, &err);
    ASSERT(x != NULL);
    ASSERT_EQ(err, RC_OK);
    ASSERT(x->t == t && x->dt == dt && x->v == v && x->score == score && x->level == level && x->H == H);
    ASSERT_EQ(memcmp(x->yhat, y, sizeof(float) * (size_t)H), 0);
    ASSERT_EQ(memcmp(x->lo, lo, sizeof(float) * (size_t)H), 0);
    ASSERT_EQ(memcmp(x->hi, hi, sizeof(float) * (size_t)H), 0);
    ASSERT(en_blob_last(e, b1, bs, &err) == NULL);
    ASSERT_EQ(err, RC_OK);
    b[8] ^= 1; /* model hash */
    ASSERT(en_blob_last(e, b, bs, &err) == NULL);
    ASSERT_EQ(err, RC_ERR_MODEL);
    ASSERT(en_blob_last(e, b, 10, &err) == NULL);
    ASSERT_EQ(err, RC_ERR_FORMAT);
    free(b);
    free(b1);
    en_free(e);
    rk_model_free(m);
    free(r);
}

/* Sharding across threads must not change a single bit, nor the order of
 * results, and every shard must get work. */
TEST(threads_do_not_change_results) {
    rk_model *m = model();
    en_cfg c;
    en_cfg_default(&c);
    size_t bs;
    {
        rc_err err;
        en_engine *e = en_new(m, &c, 1, NULL, NULL, &err);
        ASSERT(e != NULL);
        bs = en_blob_size(e);
        en_free(e);
        c.threads = 0;
        ASSERT(en_new(m, &c, 1, NULL, NULL, &err) == NULL);
        ASSERT_EQ(err, RC_ERR_CONFIG);
        c.threads = EN_MAX_THREADS + 1;
        ASSERT(en_new(m, &c, 1, NULL, NULL, &err) == NULL);
        ASSERT_EQ(err, RC_ERR_CONFIG);
    }
    digest d1, q1;
    uint8_t *b1 = malloc(bs);
    uint64_t rows1[1], rows[3];
    drive_threads(m, 1, 0, &d1, &q1, b1, rows1);
    ASSERT(d1.n > 30000);
    for (int K = 2; K <= 3; K++) {
        expect_same_run(m, K, 0, &d1, &q1, b1, bs, rows);
        for (int k = 0; k < K; k++) ASSERT((double)rows[k] > 0.6 * (double)d1.n / K);
    }
    free(b1);
    rk_model_free(m);
}

/* Pipeline mode (workers step while the caller queues the next batch):
 * the same results in the same order, the same slot reads between them and
 * the same saved state as stepping on the caller's thread, for 1 and 2
 * threads. */
TEST(pipeline_does_not_change_results) {
    rk_model *m = model();
    rec *r = calloc(1, sizeof *r);
    en_engine *e0 = engine(m, 8, 2, r);
    size_t bs = en_blob_size(e0);
    en_free(e0);
    digest d1, q1;
    uint8_t *b1 = malloc(bs);
    uint64_t rows1[1], rows[2];
    drive_threads(m, 1, 0, &d1, &q1, b1, rows1);
    for (int K = 1; K <= 2; K++) expect_same_run(m, K, 1, &d1, &q1, b1, bs, rows);
    /* A full batch is in flight after en_push returns; en_flush delivers it. */
    en_cfg c;
    en_cfg_default(&c);
    c.max_batch = 8;
    c.pipeline = 1;
    rc_err err;
    memset(r, 0, sizeof *r);
    en_engine *e = en_new(m, &c, 16, on_result, r, &err);
    ASSERT(e != NULL);
    for (uint32_t s = 0; s < 8; s++) ASSERT_EQ(en_push(e, s, 1e9, value((int)s, 0)), RC_OK);
    ASSERT_EQ(en_pending(e), 8);
    ASSERT_EQ(r->n, 0);
    ASSERT_EQ(en_push(e, 0, 1e9, 1.0), RC_ERR_PROTO); /* its sample is in flight */
    ASSERT_EQ(en_push(e, 8, 1e9, 1.0), RC_OK);
    ASSERT_EQ(en_pending(e), 9);
    en_flush(e);
    ASSERT_EQ(en_pending(e), 0);
    ASSERT_EQ(r->n, 9);
    ASSERT_EQ(r->bad, 0);
    for (int i = 0; i < 9; i++) ASSERT_EQ(r->slot[i], (uint32_t)i);
    en_free(e);
    free(b1);
    free(r);
    rk_model_free(m);
}

/* en_poll never waits (the daemon's loop calls it before it sleeps): it
 * hands the queued samples to the workers and returns 1 while a batch is in
 * flight; the worker that finishes it writes the eventfd, and the next
 * en_poll delivers. Driven that way, an engine delivers every result of a
 * round before the caller goes on, the same results as with en_flush. */
TEST(poll_delivers_when_the_fd_says) {
    rk_model *m = model();
    digest d[2];
    for (int mode = 0; mode < 2; mode++) {
        en_cfg c;
        en_cfg_default(&c);
        c.max_batch = 64;
        c.pipeline = 1;
        d[mode].h = 1469598103934665603ull;
        d[mode].n = 0;
        en_engine *e = en_new(m, &c, 300, on_digest, &d[mode], NULL);
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        ASSERT(e != NULL && fd >= 0);
        en_set_notify_fd(e, fd);
        time_t until = time(NULL) + 60;
        for (int i = 0; i < 30; i++) {
            /* 300 series: four full batches queued by en_push, 44 samples left filling */
            for (uint32_t s = 0; s < 300; s++) ASSERT_EQ(en_push(e, s, 1e9 + 60.0 * i, value((int)s, i)), RC_OK);
            if (mode == 0) {
                en_flush(e);
            } else {
                while (en_poll(e)) {
                    struct pollfd p = {.fd = fd, .events = POLLIN};
                    ASSERT_EQ(poll(&p, 1, 10000), 1); /* not a lost wake-up */
                    uint64_t n;
                    ASSERT_EQ(read(fd, &n, sizeof n), (ssize_t)sizeof n);
                    ASSERT(time(NULL) < until);
                }
            }
            ASSERT_EQ(en_pending(e), 0);
            ASSERT_EQ(d[mode].n, 300L * (i + 1));
        }
        en_free(e);
        close(fd);
    }
    ASSERT(d[0].h == d[1].h);
    rk_model_free(m);
}

/*
 * Checkpoints read slots while batches step (pipeline mode): en_slot_busy
 * and en_slot_in_flight follow a sample from queued to in flight to
 * delivered; saving a slot that is not in flight delivers nothing (it does
 * not wait for the workers) and saves what it held before, and a queued
 * sample is not in the blob until it is stepped.
 */
TEST(slots_not_in_flight_are_read_without_waiting) {
    rk_model *m = model();
    en_cfg c;
    en_cfg_default(&c);
    c.max_batch = 8;
    c.pipeline = 1;
    rec r = {0};
    en_engine *e = en_new(m, &c, 64, on_result, &r, NULL);
    ASSERT(e != NULL);
    size_t bl = en_blob_size(e);
    uint8_t *a = malloc(bl), *b = malloc(bl), *q = malloc(bl);
    ASSERT(a && b && q);
    for (uint32_t s = 0; s < 16; s++) ASSERT_EQ(en_push(e, s, 1e9, value((int)s, 0)), RC_OK);
    en_flush(e);
    ASSERT_EQ(r.n, 16);
    en_slot_save(e, 20, a); /* slot 20: idle from here on */
    en_slot_save(e, 3, q);  /* slot 3 before its second sample */
    ASSERT(!en_slot_busy(e, 3) && !en_slot_in_flight(e, 3));

    /* Queued: busy, not in flight; saved without the queued sample. */
    ASSERT_EQ(en_push(e, 3, 1e9 + 60, value(3, 1)), RC_OK);
    ASSERT(en_slot_busy(e, 3) && !en_slot_in_flight(e, 3));
    en_slot_save(e, 3, b);
    ASSERT(memcmp(b, q, bl) == 0);

    /* Seven more fill the batch of 8: en_push hands it over, so it is in
     * flight until some later call delivers it. */
    for (uint32_t s = 4; s < 11; s++) ASSERT_EQ(en_push(e, s, 1e9 + 60, value((int)s, 1)), RC_OK);
    ASSERT(en_slot_in_flight(e, 3) && en_slot_busy(e, 3) && en_slot_in_flight(e, 10));
    ASSERT(!en_slot_in_flight(e, 20) && !en_slot_busy(e, 20));
    ASSERT_EQ(r.n, 16);
    /* An idle slot is read while the batch steps: no delivery, same bytes. */
    ASSERT(!en_slot_dirty(e, 20));
    en_slot_save(e, 20, b);
    ASSERT(memcmp(a, b, bl) == 0);
    ASSERT_EQ(r.n, 16);
    ASSERT(en_slot_in_flight(e, 3));
    /* The slot in flight: saving it waits for the batch and delivers it. */
    en_slot_save(e, 3, b);
    ASSERT_EQ(r.n, 24);
    ASSERT(!en_slot_busy(e, 3) && !en_slot_in_flight(e, 3) && !en_slot_in_flight(e, 10));
    ASSERT(memcmp(b, q, bl) != 0); /* now with the second sample */
    ASSERT(en_slot_dirty(e, 3));
    ASSERT_EQ(r.bad, 0);
    free(a);
    free(b);
    free(q);
    en_free(e);
    rk_model_free(m);
}

TT_MAIN(TEST_ENTRY(threads_do_not_change_results), TEST_ENTRY(pipeline_does_not_change_results), TEST_ENTRY(load_without_reset_continues_identically), TEST_ENTRY(blob_last_equals_slot_last), TEST_ENTRY(one_result_per_sample), TEST_ENTRY(batching_does_not_change_results),
        TEST_ENTRY(input_errors_leave_slot_untouched), TEST_ENTRY(blob_roundtrip_continues_identically), TEST_ENTRY(version_4_blob_loads_and_forecasts_identically),
        TEST_ENTRY(blob_errors_reset_slot), TEST_ENTRY(series_budget_default_model),
        TEST_ENTRY(reset_drops_queued_sample), TEST_ENTRY(poll_delivers_when_the_fd_says),
        TEST_ENTRY(slots_not_in_flight_are_read_without_waiting))
