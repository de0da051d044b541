/*
 * ingest.c: samples in, forecasts out (ingest.h): frames -> decoder ->
 * look-ahead ring -> registry -> engine, and engine results -> PUB.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/ingest.h"

#include <math.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "daemon/alerts.h"
#include "daemon/kgroup.h"
#include "connectors/mqtt.h"
#include "connectors/payload.h"
#include "daemon/server_internal.h"

static const char *const drop_names[IG_DROP__COUNT] = {
    "", "msgpack", "type", "missing_key", "bad_id", "inf", "length",
    "oversize", "frames", "old_timestamp", "limit", "time_range", "store", "payload", "queue_full"};

const char *ig_drop_name(int why) {
    return why > 0 && why < IG_DROP__COUNT ? drop_names[why] : "";
}

uint64_t ig_dropped_total(const dm *d) {
    uint64_t n = 0;
    for (int i = 1; i < IG_DROP__COUNT; i++) n += d->dropped[i];
    return n;
}

void ig_init(dm *d) {
    for (int i = 0; i < IG_DROP__COUNT; i++) lg_rl_init(&d->rl[i], 1.0, 10.0);
}

/* ---- Output ---- */

void ig_publish(dm *d, const char *prefix, const char *id, size_t len, const uint8_t *payload, size_t n) {
    memcpy(d->topic, prefix, 2);
    memcpy(d->topic + 2, id, len);
    if (zmq_send(d->pub, d->topic, 2 + len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
    if (zmq_send(d->pub, payload, n, ZMQ_DONTWAIT) >= 0) d->published++;
}

void ig_encode_result(const en_result *r, const char *id, size_t len, mp_wr *w) {
    mp_forecast f = {id, (uint32_t)len, r->t, r->v, r->dt, r->H, r->yhat, r->lo, r->hi, r->score, r->level,
                     (r->flags & EN_F_BACKFILL) != 0};
    mp_encode_forecast(w, &f);
}

/* PREFIX KIND/<series> into d->mq_topic (NUL-terminated). '+', '#' and NUL
 * may not appear in a topic name: they become '_'. */
static const char *mq_topic(dm *d, const char *kind, const char *id, size_t len) {
    size_t k = (size_t)snprintf(d->mq_topic, sizeof d->mq_topic, "%s%s/", d->cfg.mqtt.out_prefix, kind);
    for (size_t i = 0; i < len && k + 1 < sizeof d->mq_topic; i++)
        d->mq_topic[k++] = id[i] == '+' || id[i] == '#' || id[i] == 0 ? '_' : id[i];
    d->mq_topic[k] = 0;
    return d->mq_topic;
}

/* The MQTT output of one result (ig_on_result); w holds its msgpack map. */
static void publish_mqtt(dm *d, const en_result *r, const char *id, size_t len, const mp_wr *w) {
    const cf_mqtt *m = &d->cfg.mqtt;
    const void *body = w->buf;
    size_t n = w->len;
    if (m->out_format == CF_FMT_JSON) {
        mp_forecast f = {id, (uint32_t)len, r->t, r->v, r->dt, r->H, r->yhat, r->lo, r->hi, r->score, r->level, 0};
        n = pl_json_forecast(d->mq_buf, d->mq_cap, &f);
        if (NEVER(n == 0)) return;
        body = d->mq_buf;
    }
    if (mq_publish(d->mq_out, mq_topic(d, "forecast", id, len), body, n, m->out_qos, 0)) d->mq_published++;
}

void ig_publish_mqtt_alert(dm *d, const mp_forecast *f, const mp_alert *a, const uint8_t *mp, size_t mp_n) {
    const cf_mqtt *m = &d->cfg.mqtt;
    const void *body = mp;
    size_t n = mp_n;
    if (m->out_format == CF_FMT_JSON) {
        n = pl_json_alert(d->mq_buf, d->mq_cap, f, a);
        if (NEVER(n == 0)) return;
        body = d->mq_buf;
    }
    char lv[2] = {(char)('0' + f->level), 0};
    mq_publish(d->mq_out, mq_topic(d, "level", f->s, f->s_len), lv, 1, m->out_qos, 1);
    mq_publish(d->mq_out, mq_topic(d, "alert", f->s, f->s_len), body, n, m->out_qos, 0);
}

void ig_on_result(void *ctx, const en_result *r) {
    dm *d = ctx;
    size_t len;
    const char *id = rg_id(d->rg, r->slot, &len);
    d->steps++;
    if (NEVER(!id)) return;
    /* Only with HTTP on: the clock read is the cost of the histogram. */
    if (d->recv_t) ht_observe_latency(d, lg_wall_s() - d->recv_t[r->slot]);
    if (d->hs) hs_record(d->hs, id, len, r);
    mp_wr w;
    mp_wr_init(&w, d->pub_buf, d->pub_cap);
    ig_encode_result(r, id, len, &w);
    if (NEVER(w.overflow)) return;
    ig_publish(d, "f.", id, len, w.buf, w.len);
    al_on_result(d, r, id, len);
    if (d->mq_out) publish_mqtt(d, r, id, len, &w);
    if (d->kg) kg_on_result(d, r, id, len);
}

/* ---- Drops ---- */

static void drop(dm *d, int why, const char *id, size_t len) {
    d->dropped[why]++;
    if (!lg_rl_allow(&d->rl[why])) return;
    uint64_t sup = d->rl[why].suppressed;
    d->rl[why].suppressed = 0;
    /* The id is the sender's bytes: escaped, so it cannot forge a log line. */
    char esc[LG_ESCAPE_CAP(255)], more[64] = "";
    if (sup) snprintf(more, sizeof more, "; %llu similar suppressed", (unsigned long long)sup);
    if (id)
        LOG(LG_WARNING, "ingest", "Dropped input of series '%s' (%s)%s.", lg_escape(esc, sizeof esc, id, len),
            drop_names[why], more);
    else
        LOG(LG_WARNING, "ingest", "Dropped input (%s)%s.", drop_names[why], more);
}

static void on_decode_error(void *ctx, mp_reason why, const char *s, uint32_t n) {
    drop(ctx, (int)why, s, n);
}

/* ---- Series slots ---- */

/* Loads a stored blob into slot, or resets the slot (see ig_restore_row). */
static void load_slot(dm *d, uint32_t slot, const char *id, size_t len, uint64_t hash, const uint8_t *b, size_t n) {
    rc_err rc = hash == d->model->hash ? en_slot_load(d->en, slot, b, n) : RC_ERR_MODEL;
    if (rc == RC_OK) {
        al_slot_loaded(d, slot);
        return;
    }
    en_slot_reset(d->en, slot);
    al_slot_new(d, slot);
    /* The next checkpoint replaces the unusable row with the fresh state,
     * so it is reset and counted once, not again on every restart. */
    en_slot_mark_dirty(d->en, slot);
    d->model_reset++;
    char esc[LG_ESCAPE_CAP(255)];
    LOG(LG_NOTICE, "store", "State of series '%s' was %s (%s); starting it afresh.",
        lg_escape(esc, sizeof esc, id, len), rc == RC_ERR_MODEL ? "saved under another model" : "unreadable", rc_strerror(rc));
}

void ig_restore_row(void *ctx, const char *id, size_t len, uint64_t hash, const uint8_t *b, size_t n) {
    dm *d = ctx;
    uint32_t slot;
    /* No rg_find first: ids are the table's primary key, so each comes once
     * (the probe was 5% of a 1M-series restore). */
    if (rg_insert(d->rg, id, len, &slot) != RC_OK) return; /* full: the rest stays in the store */
    load_slot(d, slot, id, len, hash, b, n);
    d->restored++;
}

/* Moves victim's state to the store queue and frees its slot; 0 when the
 * queue is full. */
static int to_store(dm *d, uint32_t victim) {
    size_t len;
    const char *id = rg_id(d->rg, victim, &len);
    if (NEVER(!id)) return 0;
    /* A queued sample of the victim must be stepped before its state is saved. */
    if (en_slot_busy(d->en, victim)) en_flush(d->en);
    uint8_t *b = ck_evict_add(d->ck, id, len, d->model->hash);
    if (!b) return 0;
    en_slot_save(d->en, victim, b);
    /* A Kafka-owned state also goes to the changelog, so the next commit
     * still has every state it covers there. */
    if (d->kg) kg_slot_leaving(d, victim, id, len, b);
    rg_remove(d->rg, victim);
    en_slot_reset(d->en, victim);
    al_slot_gone(d, victim);
    hs_slot_gone(d->hs, victim);
    return 1;
}

/* Frees the least recently seen slot by queueing its state for the store. */
static int evict_one(dm *d) {
    if (!to_store(d, rg_lru(d->rg))) return 0;
    d->evicted++;
    return 1;
}

uint32_t ig_expire_idle(dm *d, uint32_t max) {
    if (!(d->cfg.idle_ttl > 0) || !d->seen) return 0;
    double now = (double)(lg_mono_ns() - d->start_ns) * 1e-9;
    uint32_t n = 0;
    /* The registry's least-recently-seen order is the order of idleness. */
    while (n < max && rg_count(d->rg) > 0) {
        uint32_t v = rg_lru(d->rg);
        if ((double)d->seen[v] + d->cfg.idle_ttl > now) break;
        if (!to_store(d, v)) break; /* queue full: the rest on a later tick */
        d->expired++;
        n++;
    }
    return n;
}

/* The slot of id: found, or newly taken (fresh, or brought back from the
 * store); RG_NONE with the drop reason in *why when the registry is full
 * and nothing can be evicted, or the store cannot be read. */
static uint32_t slot_for(dm *d, const char *id, size_t len, uint64_t id_hash, int *why) {
    uint32_t slot = rg_find_hashed(d->rg, id, len, id_hash);
    if (slot != RG_NONE) return slot;
    *why = IG_DROP_LIMIT;
    if (rg_count(d->rg) == rg_capacity(d->rg) &&
        (d->cfg.policy != CF_POLICY_EVICT || !evict_one(d)))
        return RG_NONE;
    if (rg_insert(d->rg, id, len, &slot) != RC_OK) return RG_NONE;
    /* A reused slot (evicted, forgotten) no longer belongs to a Kafka partition. */
    if (d->kg) kg_slot_new(d, slot);
    size_t n;
    uint64_t hash;
    int found = ck_fetch(d->ck, id, len, d->fetch_buf, d->blob_size, &n, &hash);
    if (found < 0) {
        /* Not known absent: starting it afresh would let the next
         * checkpoint overwrite its stored state. Its next sample retries. */
        rg_remove(d->rg, slot);
        *why = IG_DROP_STORE;
        return RG_NONE;
    }
    if (found == 1) {
        load_slot(d, slot, id, len, hash, d->fetch_buf, n);
        d->brought_back++;
    } else {
        en_slot_reset(d->en, slot);
        al_slot_new(d, slot);
        d->new_series++;
    }
    /* ck_fetch took any pending row of id back: snapshots write it from now on. */
    en_slot_mark_dirty(d->en, slot);
    return slot;
}

/* ---- Samples ---- */

static void ingest_sample(dm *d, const mp_sample *m, uint64_t hash) {
    /* Before the registry: a sample from the far future (t in ns, a broken
     * clock) would make every later real one old_timestamp until 'forget'. */
    if ((d->cfg.max_future > 0 && m->t > d->ingest_now + d->cfg.max_future) ||
        (d->cfg.max_age > 0 && m->t < d->ingest_now - d->cfg.max_age)) {
        drop(d, IG_DROP_TIME, m->s, m->s_len);
        return;
    }
    int why;
    uint32_t slot = slot_for(d, m->s, m->s_len, hash, &why);
    if (slot == RG_NONE) { drop(d, why, m->s, m->s_len); return; }
    rg_touch(d->rg, slot);
    if (d->seen) d->seen[slot] = d->seen_now;
    rc_err rc = en_push_flags(d->en, slot, m->t, m->v, (m->flags & MP_F_BACKFILL) ? EN_F_BACKFILL : 0);
    if (rc == RC_ERR_PROTO) { drop(d, IG_DROP_OLD, m->s, m->s_len); return; }
    if (rc != RC_OK) { drop(d, MP_R_INF, m->s, m->s_len); return; }
    d->samples++;
    if (isnan(m->v)) d->missing++;
    if (d->recv_t) d->recv_t[slot] = d->ingest_now;
}

/*
 * Decoded samples are ingested IG_LOOKAHEAD samples late, in order: with
 * many series each registry lookup is two cache misses (the hash bucket,
 * then the slot with the id), so the bucket is fetched when a sample is
 * decoded, its slot halfway through the ring, and the lookup itself finds
 * both in cache (at 1M series rg_find was 4.7 % of the daemon's CPU, 0.9 %
 * at 1k).
 */
static void ingest_oldest(dm *d) {
    unsigned i = d->la_first;
    d->la_first = (i + 1) % IG_LOOKAHEAD;
    d->la_n--;
    ingest_sample(d, &d->la[i], d->la_hash[i]);
}

static void on_sample(void *ctx, const mp_sample *m) {
    dm *d = ctx;
    if (d->la_n == IG_LOOKAHEAD) ingest_oldest(d);
    unsigned j = (d->la_first + d->la_n) % IG_LOOKAHEAD;
    d->la[j] = *m;
    d->la_hash[j] = rg_hash(m->s, m->s_len);
    rg_prefetch_bucket(d->rg, d->la_hash[j]);
    d->la_n++;
    if (d->la_n > IG_LOOKAHEAD / 2)
        rg_prefetch_slot(d->rg, d->la_hash[(j + IG_LOOKAHEAD - IG_LOOKAHEAD / 2) % IG_LOOKAHEAD]);
}

void ig_ingest_payload(dm *d, const void *buf, size_t n) {
    d->ingest_now = lg_wall_s();
    d->seen_now = (uint32_t)((lg_mono_ns() - d->start_ns) / 1000000000);
    mp_decode_samples(buf, n, d->ingest_now, on_sample, on_decode_error, d);
    /* The ring's ids point into buf: empty it before the caller frees buf. */
    while (d->la_n > 0) ingest_oldest(d);
}

/* ---- Frames ---- */

/* The burst is bounded in time (10 ms) and count, so a flooded socket
 * cannot starve the other sockets, the control socket and the timers (the
 * checkpoint among them). The clock is read after every message (a vDSO
 * call, ~20 ns): one message may carry thousands of samples, so checking
 * every 16th let a burst run for ~1 s on a slow (sanitized) build. */
void ig_on_input(ev_loop *l, void *ctx) {
    (void)l;
    void **sp = ctx;
    dm *d = (dm *)sp[0];
    void *sock = sp[1];
    int64_t until = lg_mono_ns() + 10000000;
    for (int burst = 0; burst < 1024 && !d->stopping; burst++) {
        if (burst > 0 && lg_mono_ns() > until) break;
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, sock, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&a); break; }
        d->frames++;
        zmq_msg_t *payload = &a;
        int nframes = 1;
        zmq_msg_init(&b);
        if (zmq_msg_more(&a)) {
            /* Two frames: topic, then payload. More than two: drop them all. */
            zmq_msg_recv(&b, sock, 0);
            payload = &b;
            nframes = 2;
            while (zmq_msg_more(&b)) {
                zmq_msg_close(&b);
                zmq_msg_init(&b);
                zmq_msg_recv(&b, sock, 0);
                nframes++;
            }
        }
        size_t n = zmq_msg_size(payload);
        d->bytes += n;
        if (nframes > 2) drop(d, IG_DROP_FRAMES, NULL, 0);
        else if ((long)n > d->cfg.max_msg_size) drop(d, IG_DROP_OVERSIZE, NULL, 0);
        else ig_ingest_payload(d, zmq_msg_data(payload), n);
        zmq_msg_close(&b);
        zmq_msg_close(&a);
    }
}

/* ---- MQTT ---- */

/* The decoder's reasons for a text payload, as drop reasons. */
int ig_pl_drop(int code) {
    switch ((pl_reason)code) {
    case PL_R_TYPE: return MP_R_TYPE;
    case PL_R_MISSING: return MP_R_MISSING;
    case PL_R_INF: return MP_R_INF;
    default: return IG_DROP_PAYLOAD;
    }
}

static void on_mqtt_msg(void *ctx, const char *topic, size_t tlen, const uint8_t *p, size_t n, unsigned flags) {
    dm *d = ctx;
    d->frames++;
    d->bytes += n;
    const char *log_id = tlen <= MP_ID_MAX ? topic : NULL;
    if (flags & MQ_F_OVERSIZE) { drop(d, IG_DROP_OVERSIZE, log_id, tlen); return; }
    if (pl_is_msgpack(p, n)) { ig_ingest_payload(d, p, n); return; }
    char id[MP_ID_MAX];
    size_t len;
    if (!pl_topic_to_id(topic, tlen, d->cfg.mqtt.strip_prefix, d->cfg.mqtt.separator, id, sizeof id, &len)) {
        drop(d, MP_R_ID, log_id, log_id ? tlen : 0);
        return;
    }
    d->ingest_now = lg_wall_s();
    d->seen_now = (uint32_t)((lg_mono_ns() - d->start_ns) / 1000000000);
    mp_sample m = {id, (uint32_t)len, 0, 0, 0};
    pl_reason why = pl_parse(p, n, d->ingest_now, &m.t, &m.v);
    if (why != PL_OK) { drop(d, ig_pl_drop(why), id, len); return; }
    /* Through the look-ahead ring like any sample; emptied before id (on
     * this stack) goes away. */
    on_sample(d, &m);
    while (d->la_n > 0) ingest_oldest(d);
}

void ig_on_mqtt(ev_loop *l, void *ctx) {
    (void)l;
    void **sp = ctx;
    dm *d = (dm *)sp[0];
    mq_client *c = sp[1];
    if (d->stopping) return;
    mq_drain(c, 1024, lg_mono_ns() + 10000000, on_mqtt_msg, d);
    /* Messages the network thread had to give up on: counted here, on the
     * loop thread, with the rest. */
    mq_stats st;
    mq_get_stats(c, &st);
    for (int i = 0; i < CF_MAX_INPUTS; i++) {
        if (d->mq_in[i] != c) continue;
        while (d->mq_qfull_seen[i] < st.queue_full) {
            d->mq_qfull_seen[i]++;
            drop(d, IG_DROP_QUEUE, NULL, 0);
        }
    }
}

/* ---- Single samples and states (Kafka) ---- */

void ig_drop(dm *d, int why, const char *id, size_t len) { drop(d, why, id, len); }

uint32_t ig_ingest_one(dm *d, const mp_sample *m) {
    uint64_t h = rg_hash(m->s, m->s_len), before = d->samples;
    ingest_sample(d, m, h);
    return d->samples > before ? rg_find_hashed(d->rg, m->s, m->s_len, h) : RG_NONE;
}

uint32_t ig_put_state(dm *d, const char *id, size_t len, const uint8_t *b, size_t n) {
    uint32_t slot = rg_find(d->rg, id, len);
    if (slot == RG_NONE && rg_insert(d->rg, id, len, &slot) != RC_OK) return RG_NONE;
    if (en_slot_busy(d->en, slot)) en_flush(d->en);
    load_slot(d, slot, id, len, d->model->hash, b, n);
    en_slot_mark_dirty(d->en, slot);
    return slot;
}
