/*
 * kgroup.c: Kafka partition ownership, changelog and commits (kgroup.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/kgroup.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "connectors/kafka.h"
#include "connectors/payload.h"
#include "daemon/alerts.h"
#include "daemon/ingest.h"
#include "daemon/server_internal.h"

struct kg_state {
    kf_client *kf;                   /* owned */
    int32_t *part;                   /* (max_series) input partition of each slot's series, -1 none */
    uint8_t *dirty;                  /* (max_series) stepped since its last changelog record */
    uint8_t *blob;                   /* (blob_size) one state */
    char *json;                      /* (json_cap) one forecast for the output topics */
    size_t json_cap;
    int all_dirty;                   /* a changelog write failed: the next one writes every owned series */
    uint8_t owned[KF_MAX_PARTITIONS];      /* 1 while assigned */
    int64_t next[KF_MAX_PARTITIONS];       /* offset after the last message consumed, -1 none since assign */
    int64_t committed[KF_MAX_PARTITIONS];  /* last committed by this daemon, -1 none */
    /* Counters */
    uint64_t assigns, revokes;       /* rebalance callbacks */
    uint64_t restored;               /* changelog records loaded */
    double last_restore_s;           /* duration of the last restore */
    double last_assign_t;            /* wall clock of the last assignment, seconds since the epoch */
    uint64_t records;                /* changelog records written */
    uint64_t commits, commit_fail;   /* offset commits */
    uint64_t out_fail;               /* output messages librdkafka refused */
};

/* ---- Helpers ---- */

static int in_list(const int32_t *parts, int n, int32_t p) {
    for (int i = 0; i < n; i++)
        if (parts[i] == p) return 1;
    return 0;
}

/* Writes the dirty states of the series of parts (all owned when parts is
 * NULL) to the changelog, waits for them, then commits those partitions'
 * offsets. Returns 1 when both went through. */
static int save_and_commit(dm *d, const int32_t *parts, int n) {
    struct kg_state *k = d->kg;
    en_flush(d->en);
    uint32_t cap = rg_capacity(d->rg);
    uint64_t wrote = 0;
    for (uint32_t s = 0; s < cap; s++) {
        int32_t p = k->part[s];
        if (p < 0 || (!k->dirty[s] && !k->all_dirty) || (parts && !in_list(parts, n, p))) continue;
        size_t len;
        const char *id = rg_id(d->rg, s, &len);
        if (!id) { k->part[s] = -1; continue; }
        en_slot_save(d->en, s, k->blob);
        if (!kf_changelog_put(k->kf, p, id, len, k->blob, d->blob_size)) goto failed;
        k->dirty[s] = 0;
        wrote++;
    }
    if (!kf_flush(k->kf, 10.0)) goto failed;
    k->records += wrote;
    if (!parts) k->all_dirty = 0;
    int32_t cp[KF_MAX_PARTITIONS];
    int64_t co[KF_MAX_PARTITIONS];
    int m = 0;
    for (int32_t p = 0; p < KF_MAX_PARTITIONS; p++) {
        if (!k->owned[p] || k->next[p] < 0 || k->next[p] == k->committed[p]) continue;
        if (parts && !in_list(parts, n, p)) continue;
        cp[m] = p;
        co[m++] = k->next[p];
    }
    if (!kf_commit(k->kf, cp, co, m)) { k->commit_fail++; return 0; }
    for (int i = 0; i < m; i++) k->committed[cp[i]] = co[i];
    if (m) k->commits++;
    return 1;
failed:
    /* Not acknowledged: no commit, and every owned state goes again next time. */
    LOG(LG_WARNING, "kafka", "Changelog write not acknowledged; offsets not committed, retrying at the next checkpoint.");
    k->all_dirty = 1;
    return 0;
}

/* ---- Rebalance ---- */

static void on_revoke(void *ctx, const int32_t *parts, int n) {
    dm *d = ctx;
    struct kg_state *k = d->kg;
    k->revokes++;
    int64_t t0 = lg_mono_ns();
    save_and_commit(d, parts, n);
    /* The next owner restores them from the changelog. */
    uint32_t cap = rg_capacity(d->rg), gone = 0;
    for (uint32_t s = 0; s < cap; s++) {
        if (k->part[s] < 0 || !in_list(parts, n, k->part[s])) continue;
        size_t len;
        const char *id = rg_id(d->rg, s, &len);
        if (id) {
            (void)ck_delete(d->ck, id, len);
            rg_remove(d->rg, s);
            en_slot_reset(d->en, s);
            al_slot_gone(d, s);
            hs_slot_gone(d->hs, s);
            gone++;
        }
        k->part[s] = -1;
        k->dirty[s] = 0;
    }
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < KF_MAX_PARTITIONS) k->owned[parts[i]] = 0;
    LOG(LG_NOTICE, "kafka", "Revoked %d partition(s): %u series saved to the changelog and released in %.3f s.", n,
        gone, (double)(lg_mono_ns() - t0) * 1e-9);
}

static void on_record(void *ctx, int32_t p, const char *key, size_t klen, const uint8_t *val, size_t vlen) {
    dm *d = ctx;
    struct kg_state *k = d->kg;
    if (!key || klen == 0 || klen > MP_ID_MAX || vlen == 0) return;
    uint32_t slot = ig_put_state(d, key, klen, val, vlen);
    if (slot == RG_NONE) return;
    k->part[slot] = p;
    k->dirty[slot] = 0;
    k->restored++;
}

static void on_assign(void *ctx, const int32_t *parts, int n) {
    dm *d = ctx;
    struct kg_state *k = d->kg;
    k->assigns++;
    k->last_assign_t = lg_wall_s();
    int64_t t0 = lg_mono_ns();
    uint64_t before = k->restored;
    en_flush(d->en);
    long got = kf_changelog_read(k->kf, parts, n, d->cfg.kafka.restore_timeout, on_record, d);
    k->last_restore_s = (double)(lg_mono_ns() - t0) * 1e-9;
    char list[256] = "";
    size_t off = 0;
    for (int i = 0; i < n && off + 12 < sizeof list; i++) {
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%d", i ? "," : "", (int)parts[i]);
        if (parts[i] >= 0 && parts[i] < KF_MAX_PARTITIONS) {
            k->owned[parts[i]] = 1;
            k->next[parts[i]] = k->committed[parts[i]] = -1;
        }
    }
    if (got < 0)
        LOG(LG_WARNING, "kafka", "Changelog restore of partition(s) [%s] did not finish within %.0f s; "
            "consuming anyway from the committed offsets.", list, d->cfg.kafka.restore_timeout);
    LOG(LG_NOTICE, "kafka", "Assigned partition(s) [%s]: restored %llu series states from '%s' in %.3f s.", list,
        (unsigned long long)(k->restored - before), d->cfg.kafka.changelog_topic, k->last_restore_s);
}

/* ---- Messages ---- */

static void on_msg(void *ctx, const kf_msg *m) {
    dm *d = ctx;
    struct kg_state *k = d->kg;
    d->frames++;
    d->bytes += m->vlen;
    if (m->partition >= 0 && m->partition < KF_MAX_PARTITIONS) k->next[m->partition] = m->offset + 1;
    if (!m->key || m->klen == 0 || m->klen > MP_ID_MAX || !mp_utf8_valid((const uint8_t *)m->key, m->klen)) {
        ig_drop(d, MP_R_ID, m->key && m->klen <= MP_ID_MAX ? m->key : NULL, m->key ? m->klen : 0);
        return;
    }
    if ((long)m->vlen > d->cfg.max_msg_size) { ig_drop(d, IG_DROP_OVERSIZE, m->key, m->klen); return; }
    d->ingest_now = lg_wall_s();
    mp_sample s = {m->key, (uint32_t)m->klen, 0, 0, 0};
    pl_reason why = pl_parse(m->val, m->vlen, m->ts > 0 ? m->ts : d->ingest_now, &s.t, &s.v);
    if (why != PL_OK) { ig_drop(d, ig_pl_drop(why), m->key, m->klen); return; }
    uint32_t slot = ig_ingest_one(d, &s);
    if (slot == RG_NONE) return;
    k->part[slot] = m->partition;
    k->dirty[slot] = 1;
}

void kg_on_input(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    if (d->stopping || !d->kg) return;
    kf_poll(d->kg->kf, 1024, lg_mono_ns() + 10000000, on_msg, d);
}

/* ---- Lifecycle ---- */

rc_err kg_open(dm *d, const cf_input *in, char *errbuf, size_t errlen) {
    struct kg_state *k = rc_calloc(1, sizeof *k);
    if (!k) { snprintf(errbuf, errlen, "Out of memory."); return RC_ERR_NOMEM; }
    d->kg = k;
    uint32_t cap = rg_capacity(d->rg);
    k->part = rc_malloc(cap * sizeof *k->part);
    k->dirty = rc_calloc(cap, 1);
    k->blob = rc_malloc(d->blob_size);
    k->json_cap = 256 + 6 * MP_ID_MAX + 64 * (size_t)d->model->dims.n_horizon;
    k->json = rc_malloc(k->json_cap);
    if (!k->part || !k->dirty || !k->blob || !k->json) { snprintf(errbuf, errlen, "Out of memory."); return RC_ERR_NOMEM; }
    for (uint32_t s = 0; s < cap; s++) k->part[s] = -1;
    for (int p = 0; p < KF_MAX_PARTITIONS; p++) k->next[p] = k->committed[p] = -1;
    k->kf = kf_open(in->endpoint + 8, &d->cfg.kafka, in->topics[0], on_assign, on_revoke, d, errbuf, errlen);
    return k->kf ? RC_OK : RC_ERR_IO;
}

void kg_close(dm *d) {
    struct kg_state *k = d->kg;
    if (!k) return;
    kf_close(k->kf); /* revokes: saves and commits what is owned */
    rc_free(k->json);
    rc_free(k->blob);
    rc_free(k->dirty);
    rc_free(k->part);
    rc_free(k);
    d->kg = NULL;
}

int kg_fd(const dm *d) { return d->kg && d->kg->kf ? kf_fd(d->kg->kf) : -1; }

void kg_checkpoint(dm *d) {
    if (!d->kg || !d->kg->kf) return;
    save_and_commit(d, NULL, 0);
}

void kg_on_result(dm *d, const en_result *r, const char *id, size_t len) {
    struct kg_state *k = d->kg;
    const cf_kafka *c = &d->cfg.kafka;
    if (!k || (!c->output_topic[0] && !c->alert_topic[0])) return;
    int alert = r->level_changed && !(r->flags & EN_F_BACKFILL) && c->alert_topic[0];
    if (!c->output_topic[0] && !alert) return;
    mp_forecast f = {id, (uint32_t)len, r->t, r->v, r->dt, r->H, r->yhat, r->lo, r->hi, r->score, r->level, 0};
    size_t n = pl_json_forecast(k->json, k->json_cap, &f);
    if (NEVER(n == 0)) return;
    if (c->output_topic[0] && !kf_produce(k->kf, c->output_topic, id, len, k->json, n)) k->out_fail++;
    if (alert && !kf_produce(k->kf, c->alert_topic, id, len, k->json, n)) k->out_fail++;
}

void kg_slot_leaving(dm *d, uint32_t slot, const char *id, size_t len, const uint8_t *b) {
    struct kg_state *k = d->kg;
    int32_t p = k->part[slot];
    k->part[slot] = -1;
    k->dirty[slot] = 0;
    if (p < 0) return;
    /* A failed put fails the next flush, which then commits nothing. */
    if (kf_changelog_put(k->kf, p, id, len, b, d->blob_size)) k->records++;
}

void kg_slot_new(dm *d, uint32_t slot) {
    d->kg->part[slot] = -1;
    d->kg->dirty[slot] = 0;
}

void kg_write_stats(dm *d, mp_wr *w) {
    struct kg_state *k = d->kg;
    mp_w_cstr(w, "kafka");
    mp_w_map(w, 11);
    int owned = 0, uncommitted = 0;
    for (int p = 0; k && p < KF_MAX_PARTITIONS; p++) {
        owned += k->owned[p];
        uncommitted += k->owned[p] && k->next[p] >= 0 && k->next[p] != k->committed[p];
    }
    mp_w_kv_int(w, "partitions", owned);
    /* Owned partitions with messages consumed since their last commit. */
    mp_w_kv_int(w, "uncommitted", uncommitted);
    mp_w_kv_int(w, "assigns", k ? (int64_t)k->assigns : 0);
    mp_w_kv_int(w, "revokes", k ? (int64_t)k->revokes : 0);
    mp_w_kv_int(w, "restored", k ? (int64_t)k->restored : 0);
    mp_w_kv_f64(w, "last_restore_s", k ? k->last_restore_s : 0);
    mp_w_kv_f64(w, "last_assign_t", k ? k->last_assign_t : 0);
    mp_w_kv_int(w, "changelog_records", k ? (int64_t)k->records : 0);
    mp_w_kv_int(w, "commits", k ? (int64_t)k->commits : 0);
    mp_w_kv_int(w, "commit_failures", k ? (int64_t)k->commit_fail : 0);
    mp_w_kv_int(w, "output_failures", k ? (int64_t)k->out_fail : 0);
}
