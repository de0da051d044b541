/*
 * alerts.c: alert events and silence alerts (alerts.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/alerts.h"

#include <math.h>
#include <string.h>

#include "common/log.h"
#include "daemon/ingest.h"
#include "daemon/server_internal.h"

/* Wheel buckets: 4096 ticks of 50 ms = 205 s per round. A deadline
 * further out passes its bucket once per round before it fires, so a
 * series every 10 s (silence 50 s) is never moved, one every hour is
 * moved ~90 times per 5-hour deadline: either way far less than one
 * visit per sample. */
#define AL_BUCKETS 4096
/* Slots visited per timer call: a whole fleet going silent at once is
 * announced over many loop iterations instead of stalling ingest. 1024
 * fires (~0.5 us each at 1M series, bench/timewheel_bench.c, plus ~2 us to
 * encode and publish each event) keep a call near the 2 ms budget of a
 * checkpoint slice. */
#define AL_BUDGET 1024

rc_err al_open(al_alerts *al, uint32_t max_series) {
    rc_err err;
    memset(al, 0, sizeof *al);
    al->slot = rc_calloc(max_series ? max_series : 1, sizeof *al->slot);
    if (!al->slot) return RC_ERR_NOMEM;
    al->tw = tw_new(max_series ? max_series : 1, AL_BUCKETS, (int64_t)(AL_TICK_S * 1e9), lg_mono_ns(), &err);
    return al->tw ? RC_OK : err;
}

void al_close(al_alerts *al) {
    tw_free(al->tw);
    rc_free(al->slot);
    memset(al, 0, sizeof *al);
}

static void unwatch(al_alerts *al, uint32_t slot) {
    tw_disarm(al->tw, slot);
    if (al->slot[slot].silent) al->silent--;
}

void al_slot_new(dm *d, uint32_t slot) {
    unwatch(&d->al, slot);
    memset(&d->al.slot[slot], 0, sizeof d->al.slot[slot]);
}

void al_slot_gone(dm *d, uint32_t slot) { al_slot_new(d, slot); }

/* Arms slot's silence deadline silence x dt from now (no-op when silence
 * is off or the period is unknown). */
static void arm(dm *d, uint32_t slot, double dt) {
    double n = (double)d->cfg.anomaly.silence;
    if (!(n > 0) || !(dt > 0) || !isfinite(dt)) {
        tw_disarm(d->al.tw, slot);
        return;
    }
    double ahead = n * dt * 1e9;
    /* Beyond ~3 years the wheel clamps anyway; keep the product finite. */
    if (ahead > 1e17) ahead = 1e17;
    tw_arm(d->al.tw, slot, lg_mono_ns() + (int64_t)ahead);
}

void al_slot_loaded(dm *d, uint32_t slot) {
    al_slot_new(d, slot);
    const en_result *r = en_slot_last(d->en, slot);
    if (!r) return;
    al_slot *a = &d->al.slot[slot];
    a->level = (int8_t)r->level;
    a->since = r->t;
    a->seen = UINT32_MAX;
    arm(d, slot, r->dt);
}

static mp_forecast forecast_of(const en_result *r, const char *id, size_t len) {
    return (mp_forecast){id, (uint32_t)len, r->t, r->v, r->dt, r->H, r->yhat, r->lo, r->hi, r->score, r->level,
                         (r->flags & EN_F_BACKFILL) != 0};
}

static void publish_alert(dm *d, const mp_forecast *f, const mp_alert *a, const char *id, size_t len) {
    mp_wr w;
    mp_wr_init(&w, d->pub_buf, d->pub_cap);
    mp_encode_alert(&w, f, a);
    if (NEVER(w.overflow)) return;
    ig_publish(d, "a.", id, len, w.buf, w.len);
    if (d->mq_out) ig_publish_mqtt_alert(d, f, a, w.buf, w.len);
    d->alerts++;
}

/* The alert part of an event about sample r: what v was judged against. */
static mp_alert alert_of(const dm *d, const en_result *r, int kind, double since) {
    int Q = (int)d->model->dims.n_quant;
    mp_alert a = {an_kind_name(kind), since, NAN, NAN, NAN};
    if (r->prev) {
        a.expected = r->prev[Q / 2];
        a.lo = r->prev[0];
        a.hi = r->prev[Q - 1];
    }
    return a;
}

void al_on_result(dm *d, const en_result *r, const char *id, size_t len) {
    al_alerts *al = &d->al;
    al_slot *a = &al->slot[r->slot];
    if (a->seen < UINT32_MAX) a->seen++;
    if (r->flags & EN_F_BACKFILL) {
        /* History: learned, never announced; nor does it end a silence. */
        al->backfill++;
        if (r->level_changed) al->held_back++;
        return;
    }
    mp_forecast f = forecast_of(r, id, len);
    if (a->silent) {
        a->silent = 0;
        al->silent--;
        al->cleared++;
        mp_alert x = alert_of(d, r, AN_KIND_SILENCE, a->silent_since);
        publish_alert(d, &f, &x, id, len);
    }
    if (r->level != a->level) {
        if (a->level == 0) a->since = r->t;
        /* A falling level keeps the since of the rise it ends. */
        mp_alert x = alert_of(d, r, r->kind, a->since);
        publish_alert(d, &f, &x, id, len);
        a->level = (int8_t)r->level;
    }
    /* A series in warm-up raises nothing, silence included. */
    if (a->seen >= d->cfg.anomaly.warmup) arm(d, r->slot, r->dt);
}

/* A silence deadline passed: one alert event, from the series' last forecast. */
static void on_silent(void *ctx, uint32_t slot) {
    dm *d = ctx;
    size_t len;
    const char *id = rg_id(d->rg, slot, &len);
    const en_result *r = id ? en_slot_last(d->en, slot) : NULL;
    al_slot *a = &d->al.slot[slot];
    if (NEVER(!r) || a->silent || !(d->cfg.anomaly.silence > 0)) return;
    /* en_slot_last waits for a batch in flight that holds the slot and
     * delivers it: a sample that arrived just at the deadline re-armed it
     * then, and the series is not silent. */
    if (tw_armed(d->al.tw, slot)) return;
    a->silent = 1;
    a->silent_since = r->t;
    d->al.silent++;
    d->al.raised++;
    double now = lg_wall_s();
    /* The forecast for now: the step of the last forecast that now falls on. */
    int k = 1;
    if (r->dt > 0) {
        double steps = floor((now - r->t) / r->dt + 0.5);
        k = steps < 1 ? 1 : steps > r->H ? r->H : (int)steps;
    }
    mp_forecast f = forecast_of(r, id, len);
    f.t = now;
    f.v = NAN;
    f.level = 2;
    f.backfill = 0;
    mp_alert x = {an_kind_name(AN_KIND_SILENCE), r->t, r->yhat[k - 1], r->lo[k - 1], r->hi[k - 1]};
    publish_alert(d, &f, &x, id, len);
    char esc[LG_ESCAPE_CAP(255)];
    LOG(LG_VERBOSE, "alerts", "Series '%s' is silent: no sample for %.3g s (%.3g x its period).",
        lg_escape(esc, sizeof esc, id, len), now - r->t, (double)d->cfg.anomaly.silence);
}

double al_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    if (tw_advance(d->al.tw, lg_mono_ns(), AL_BUDGET, on_silent, d)) return 0.0;
    return AL_TICK_S;
}
