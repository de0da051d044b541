/*
 * http_metrics.c: the /metrics page of the HTTP endpoint (http.h): the
 * daemon's counters, gauges and histograms, and the opt-in per-series
 * gauges. The page is built by a render job (ht_render) in slices of
 * bounded event-loop time, so a scrape of 10,000 exported series never
 * holds ingest up for the whole page: the counters at once (a few hundred
 * lines), then the series gauges a budget at a time, re-checking before
 * each line that its slot still holds the series it was picked for.
 *
 * SPDX-License-Identifier: MIT
 */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "connectors/wire.h"
#include "daemon/http.h"
#include "daemon/ingest.h"
#include "daemon/server.h"
#include "daemon/server_internal.h"

/* ---- Prometheus page ---- */

const double ht_lat_bounds[HT_LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

void ht_observe_latency(dm *d, double s) {
    int k = 0;
    while (k < HT_LAT_BUCKETS && s > ht_lat_bounds[k]) k++;
    d->lat_count[k]++;
    d->lat_sum += s > 0 ? s : 0;
}

void ht_label_value(ht_buf *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\\' && s[j] != '"' && s[j] != '\n') j++;
        ht_buf_put(b, s + i, j - i);
        if (j == n) break;
        ht_buf_put(b, s[j] == '\n' ? "\\n" : s[j] == '"' ? "\\\"" : "\\\\", 2);
        i = j + 1;
    }
}

static void family(ht_buf *b, const char *name, const char *type, const char *help) {
    ht_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(ht_buf *b, const char *name, const char *type, const char *help, double v) {
    family(b, name, type, help);
    ht_buf_printf(b, "%s %.17g\n", name, v);
}

/* Appends " <v>\n". Values are float32 (the engine's outputs), so seven
 * significant digits carry them; a hand-rolled formatter for the common
 * range, because snprintf("%g") was most of a 10,000-series page. */
/* " <v>\n" into out (>= 48 bytes); returns its length. */
static size_t fmt_value(char *out, double v) {
    if (isnan(v)) { memcpy(out, " NaN\n", 5); return 5; }
    if (isinf(v)) { memcpy(out, v > 0 ? " +Inf\n" : " -Inf\n", 6); return 6; }
    size_t o = 0;
    out[o++] = ' ';
    if (v == 0) {
        out[o++] = '0';
        out[o++] = '\n';
        return o;
    }
    if (v < 0) { out[o++] = '-'; v = -v; }
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                                 1e15, 1e16, 1e17, 1e18, 1e19, 1e20};
    if (!(v >= 1e-4 && v < 1e14)) {
        int n = snprintf(out + o, 48 - o, "%.7g\n", v);
        return o + (size_t)n;
    }
    int e = 0; /* decimal exponent: 10^e <= v < 10^(e+1) */
    while (e < 13 && v >= p10[e + 1]) e++;
    while (e > -4 && v < (e >= 0 ? p10[e] : 1.0 / p10[-e])) e--;
    /* Seven significant digits as an integer. */
    int sh = 6 - e; /* 6 - e in -7..10 */
    double scaled = sh >= 0 ? v * p10[sh] : v / p10[-sh];
    long long dig = llround(scaled);
    if (dig >= 10000000LL) { dig /= 10; e++; sh--; } /* rounding carried into an eighth digit */
    char ds[8];
    for (int i = 6; i >= 0; i--) { ds[i] = (char)('0' + dig % 10); dig /= 10; }
    int last = 6; /* drop trailing zeros of the fraction only */
    if (e >= 6) {
        memcpy(out + o, ds, 7);
        o += 7;
        for (int i = 6; i < e; i++) out[o++] = '0';
    } else if (e >= 0) {
        while (last > e && ds[last] == '0') last--;
        memcpy(out + o, ds, (size_t)e + 1);
        o += (size_t)e + 1;
        if (last > e) {
            out[o++] = '.';
            memcpy(out + o, ds + e + 1, (size_t)(last - e));
            o += (size_t)(last - e);
        }
    } else {
        while (last > 0 && ds[last] == '0') last--;
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > e; i--) out[o++] = '0';
        memcpy(out + o, ds, (size_t)last + 1);
        o += (size_t)last + 1;
    }
    out[o++] = '\n';
    return o;
}

void ht_put_value(ht_buf *b, double v) {
    char out[48];
    ht_buf_put(b, out, fmt_value(out, v));
}

/* Everything but the per-series gauges: a few hundred lines, at once. */
/* Clients refused and handshakes passed on each CURVE socket
 * (connectors/hsmon.h); nothing without CURVE. */
static void curve_metrics(dm *d, ht_buf *b) {
    if (!d->zap) return;
    static const char *const fam[2][2] = {
        {"rwkvcast_curve_rejected_total",
         "Connections refused on a CURVE endpoint, by reason (docs/PROTOCOL.md section 9)."},
        {"rwkvcast_curve_accepted_total", "CURVE handshakes that passed an endpoint's allow-list."}};
    for (int f = 0; f < 2; f++) {
        family(b, fam[f][0], "counter", fam[f][1]);
        for (int k = 0; k < DM_CURVE_LISTS; k++) {
            const hm_monitor *m = &d->hsmon[k];
            if (!m->pair) continue;
            const char *kind, *ep = dm_curve_socket(d, k, &kind);
            for (int r = 0; r < (f ? 1 : HM__COUNT); r++) {
                ht_buf_printf(b, "%s{socket=\"%s\",endpoint=\"", fam[f][0], kind);
                ht_label_value(b, ep, strlen(ep));
                if (f) ht_buf_printf(b, "\"} %llu\n", (unsigned long long)m->succeeded);
                else ht_buf_printf(b, "\",reason=\"%s\"} %llu\n", hm_reason_name(r), (unsigned long long)m->failed[r]);
            }
        }
    }
}

static void render_head(dm *d, ht_buf *b) {
    double now = lg_wall_s();
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->model->hash);
    family(b, "rwkvcast_build_info", "gauge", "Version and model of the running daemon (value 1).");
    ht_buf_printf(b, "rwkvcast_build_info{version=\"%s\",model_hash=\"%s\",model=\"", DM_VERSION, hash);
    const char *mp = d->cfg.model[0] ? d->cfg.model : en_default_model_path();
    ht_label_value(b, mp, strlen(mp));
    ht_buf_printf(b, "\",horizons=\"%d\",quantiles=\"%d\"} 1\n", d->model->dims.n_horizon,
                  d->model->dims.n_quant);
    one(b, "rwkvcast_start_time_seconds", "gauge", "When the daemon started, seconds since the epoch.", d->started);
    one(b, "rwkvcast_ingest_messages_total", "counter", "Ingest messages received.", (double)d->frames);
    one(b, "rwkvcast_ingest_bytes_total", "counter", "Payload bytes of the ingest messages.", (double)d->bytes);
    family(b, "rwkvcast_samples_total", "counter",
           "Samples by outcome: accepted into the engine (missing: of those, NaN values) or dropped.");
    ht_buf_printf(b, "rwkvcast_samples_total{outcome=\"accepted\"} %llu\n", (unsigned long long)d->samples);
    ht_buf_printf(b, "rwkvcast_samples_total{outcome=\"missing\"} %llu\n", (unsigned long long)d->missing);
    ht_buf_printf(b, "rwkvcast_samples_total{outcome=\"dropped\"} %llu\n", (unsigned long long)ig_dropped_total(d));
    family(b, "rwkvcast_dropped_total", "counter", "Inputs dropped, by reason (docs/PROTOCOL.md section 1).");
    for (int i = 1; i < IG_DROP__COUNT; i++)
        ht_buf_printf(b, "rwkvcast_dropped_total{reason=\"%s\"} %llu\n", ig_drop_name(i),
                      (unsigned long long)d->dropped[i]);
    curve_metrics(d, b);
    one(b, "rwkvcast_steps_total", "counter", "Samples the engine stepped.", (double)d->steps);
    one(b, "rwkvcast_forecasts_published_total", "counter", "Forecasts published (f.<series>).", (double)d->published);
    one(b, "rwkvcast_alert_events_total", "counter", "Alert events published (a.<series>: level changes and silence).",
        (double)d->alerts);
    one(b, "rwkvcast_series_active", "gauge", "Series in memory.", rg_count(d->rg));
    one(b, "rwkvcast_series_capacity", "gauge", "series.max: series that fit in memory.", rg_capacity(d->rg));
    one(b, "rwkvcast_series_created_total", "counter", "Series created fresh.", (double)d->new_series);
    one(b, "rwkvcast_series_evicted_total", "counter", "Series moved to the store to free a slot (series.policy: evict).",
        (double)d->evicted);
    one(b, "rwkvcast_series_refused_total", "counter",
        "Samples of new series refused because series.max was reached (dropped, reason limit).",
        (double)d->dropped[IG_DROP_LIMIT]);
    one(b, "rwkvcast_series_expired_total", "counter", "Series that left memory after series.idle_ttl without samples.",
        (double)d->expired);
    one(b, "rwkvcast_series_brought_back_total", "counter", "Evicted or expired series read back on a new sample.",
        (double)d->brought_back);
    one(b, "rwkvcast_series_restored_total", "counter", "Series loaded from the store at startup.", (double)d->restored);
    one(b, "rwkvcast_series_reset_total", "counter", "Stored states restarted: saved under another model, or unreadable.",
        (double)d->model_reset);
    one(b, "rwkvcast_series_forgotten_total", "counter", "Series dropped by the forget command.", (double)d->forgotten);
    one(b, "rwkvcast_store_rows_expired_total", "counter", "Store rows deleted after series.idle_ttl.",
        (double)d->rows_expired);
    one(b, "rwkvcast_checkpoints_total", "counter", "Checkpoints committed.", (double)d->ckpt_count);
    one(b, "rwkvcast_checkpoint_failures_total", "counter", "Checkpoint and eviction jobs that failed.",
        (double)d->ckpt_fail);
    int ok = d->ckpt_have_last;
    one(b, "rwkvcast_checkpoint_duration_seconds", "gauge", "How long the last checkpoint's transaction took.",
        ok ? d->ckpt_last.duration : 0);
    one(b, "rwkvcast_checkpoint_rows", "gauge", "Rows the last checkpoint wrote.", ok ? d->ckpt_last.rows : 0);
    one(b, "rwkvcast_checkpoint_snapshot_seconds", "gauge", "Event-loop time the last snapshot took to copy.",
        d->last_snapshot_s);
    /* Since the last committed checkpoint; since start before the first. */
    double last_ok = d->ckpt_ok_at > 0 ? d->ckpt_ok_at : d->started;
    one(b, "rwkvcast_checkpoint_age_seconds", "gauge",
        "Seconds since the last committed checkpoint (since start before the first).", now - last_ok);
    one(b, "rwkvcast_engine_queue_samples", "gauge", "Samples queued for or in the engine.", en_pending(d->en));
    one(b, "rwkvcast_store_queue_rows", "gauge", "Evicted states waiting for the store.", ck_pending(d->ck));
    one(b, "rwkvcast_heap_bytes", "gauge", "The daemon's own heap (rc_malloc), bytes.", (double)rc_mem_used());

    uint64_t bc[EN_BATCH_BUCKETS], rows, cum = 0;
    en_batch_stats(d->en, bc, &rows);
    family(b, "rwkvcast_engine_batch_size", "histogram", "Samples per engine batch.");
    for (int k = 0; k < EN_BATCH_BUCKETS; k++) {
        cum += bc[k];
        ht_buf_printf(b, "rwkvcast_engine_batch_size_bucket{le=\"%d\"} %llu\n", 1 << k, (unsigned long long)cum);
    }
    ht_buf_printf(b, "rwkvcast_engine_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    ht_buf_printf(b, "rwkvcast_engine_batch_size_sum %llu\nrwkvcast_engine_batch_size_count %llu\n",
                  (unsigned long long)rows, (unsigned long long)cum);

    family(b, "rwkvcast_ingest_to_publish_seconds", "histogram",
           "From reading a sample's message to publishing its forecast.");
    cum = 0;
    for (int k = 0; k < HT_LAT_BUCKETS; k++) {
        cum += d->lat_count[k];
        ht_buf_printf(b, "rwkvcast_ingest_to_publish_seconds_bucket{le=\"%g\"} %llu\n", ht_lat_bounds[k],
                      (unsigned long long)cum);
    }
    cum += d->lat_count[HT_LAT_BUCKETS];
    ht_buf_printf(b, "rwkvcast_ingest_to_publish_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    ht_buf_printf(b, "rwkvcast_ingest_to_publish_seconds_sum %.9g\nrwkvcast_ingest_to_publish_seconds_count %llu\n",
                  d->lat_sum, (unsigned long long)cum);
    hs_stats hst = {0, 0, 0, 0};
    if (d->hs) hs_get_stats(d->hs, &hst);
    one(b, "rwkvcast_history_series", "gauge", "Series with a recent-history ring (history.series, history.max_series).",
        hst.series);
    one(b, "rwkvcast_history_bytes", "gauge", "Memory of the history rings and their per-slot index, bytes.",
        (double)hst.bytes);
    one(b, "rwkvcast_history_full_total", "counter",
        "Series matching history.series that found history.max_series rings taken.", (double)hst.full);
    family(b, "rwkvcast_history_requests_total", "counter", "history control requests, by outcome.");
    ht_buf_printf(b, "rwkvcast_history_requests_total{outcome=\"ok\"} %llu\n"
                     "rwkvcast_history_requests_total{outcome=\"error\"} %llu\n",
                  (unsigned long long)d->hist_requests, (unsigned long long)d->hist_errors);
}


/* ---- Per-series gauges, in slices ---- */

/* The per-series gauges: one family at a time (the format wants a family's
 * samples together), over the slots picked at the start of the render,
 * each id escaped once into a label prefix. */
enum { G_YHAT, G_LO, G_HI, G_SCORE, G_LEVEL, G__COUNT };

static const struct { const char *name, *help; } gauges[G__COUNT] = {
    {"rwkvcast_series_forecast", "Median forecast of the series' value h steps ahead (h = step label)."},
    {"rwkvcast_series_forecast_lower", "Lower bound of the forecast interval (lowest quantile, 0.1 by default)."},
    {"rwkvcast_series_forecast_upper", "Upper bound of the forecast interval (highest quantile, 0.9 by default)."},
    {"rwkvcast_series_anomaly_score", "Anomaly score of the series' last sample, 0..1."},
    {"rwkvcast_series_alert_level", "Alert level of the series: 0 ok, 1 warn, 2 alert."}};

enum { R_IDLE, R_PICK, R_LINES, R_DONE };

struct ht_render {
    int phase;          /* R_* */
    int on;             /* per-series gauges in this render (http.series set, series_max > 0) */
    uint32_t cursor;    /* R_PICK: next registry slot to look at */
    uint32_t cap;       /* entries of pick, lab and raw (http.series_max when allocated) */
    uint32_t n;         /* series picked */
    uint32_t matched;   /* series matching, picked or over the cap */
    uint32_t *pick;     /* (cap) slots */
    size_t *lab;        /* (cap + 1) label i is labels.p[lab[i] .. lab[i + 1]) */
    size_t *raw;        /* (cap + 1) id i is ids.p[raw[i] .. raw[i + 1]) */
    ht_buf labels;      /* {series="<escaped id>" per picked series */
    ht_buf ids;         /* the ids as they were, to see a slot reused between slices */
    int k;              /* R_LINES: family */
    uint32_t i;         /* R_LINES: next series of it */
    int64_t busy_ns;    /* loop time this render took so far */
    int slices;         /* slices so far */
    double last_busy_s; /* the last finished render's loop time, seconds */
    int last_slices;    /* and its slices */
};

ht_render *ht_render_new(void) {
    ht_render *r = rc_calloc(1, sizeof *r);
    if (!r) return NULL;
    ht_buf_init(&r->labels, 0);
    ht_buf_init(&r->ids, 0);
    return r;
}

static void release(ht_render *r);

void ht_render_free(ht_render *r) {
    if (!r) return;
    release(r);
    rc_free(r);
}

/* Frees what one page needed. */
static void release(ht_render *r) {
    ht_buf_free(&r->labels);
    ht_buf_free(&r->ids);
    ht_buf_init(&r->labels, 0);
    ht_buf_init(&r->ids, 0);
    rc_free(r->pick);
    rc_free(r->lab);
    rc_free(r->raw);
    r->pick = NULL;
    r->lab = r->raw = NULL;
    r->cap = 0;
}

int ht_render_busy(const ht_render *r) { return r->phase != R_IDLE; }

void ht_render_begin(ht_render *r, dm *d, ht_buf *b) {
    int64_t t0 = lg_mono_ns();
    render_head(d, b);
    uint32_t cap = d->cfg.http_series_max;
    r->on = d->cfg.http_series[0] && cap > 0;
    /* The index arrays live for one page (freed by release), so an idle
     * endpoint holds nothing. */
    release(r);
    if (r->on) {
        r->pick = rc_malloc((size_t)cap * sizeof *r->pick);
        r->lab = rc_malloc(((size_t)cap + 1) * sizeof *r->lab);
        r->raw = rc_malloc(((size_t)cap + 1) * sizeof *r->raw);
        if (r->pick && r->lab && r->raw) r->cap = cap;
        else b->failed = 1, r->on = 0;
    }
    r->n = r->matched = r->cursor = r->i = 0;
    r->k = 0;
    if (r->lab) r->lab[0] = r->raw[0] = 0;
    r->phase = r->on ? R_PICK : R_DONE;
    r->slices = 1;
    r->busy_ns = lg_mono_ns() - t0;
}

/* R_PICK: up to `max` registry slots looked at; 1 when the registry is done. */
static int pick_some(ht_render *r, dm *d, uint32_t max) {
    char id[MP_ID_MAX + 1];
    int match_all = strcmp(d->cfg.http_series, "*") == 0;
    uint32_t s = r->cursor >= rg_capacity(d->rg) ? RG_NONE : rg_next(d->rg, r->cursor);
    for (uint32_t seen = 0; s != RG_NONE && seen < max; s = rg_next(d->rg, s + 1), seen++) {
        size_t len;
        const char *p = rg_id(d->rg, s, &len);
        if (!p || !en_slot_last(d->en, s)) continue;
        if (!match_all) {
            memcpy(id, p, len);
            id[len] = 0;
            if (fnmatch(d->cfg.http_series, id, 0) != 0) continue;
        }
        r->matched++;
        if (r->n == r->cap) continue;
        r->pick[r->n] = s;
        ht_buf_put(&r->labels, "{series=\"", 9);
        ht_label_value(&r->labels, p, len);
        ht_buf_put(&r->labels, "\"", 1);
        ht_buf_put(&r->ids, p, len);
        r->n++;
        r->lab[r->n] = r->labels.len;
        r->raw[r->n] = r->ids.len;
    }
    r->cursor = s == RG_NONE ? UINT32_MAX : s;
    return s == RG_NONE;
}

/* The result of picked series i, or NULL when its slot no longer holds it
 * (evicted, expired or forgotten between slices) or has none. */
static const en_result *picked(const ht_render *r, dm *d, uint32_t i) {
    size_t len;
    const char *p = rg_id(d->rg, r->pick[i], &len);
    if (!p || len != r->raw[i + 1] - r->raw[i] || memcmp(p, r->ids.p + r->raw[i], len) != 0) return NULL;
    return en_slot_last(d->en, r->pick[i]);
}

/* R_LINES: the lines of up to `max` series of family r->k; 1 when every
 * family is done. */
static int lines_some(ht_render *r, dm *d, ht_buf *b, uint32_t max, char (*step)[24], const size_t *step_len) {
    int k = r->k;
    const char *name = gauges[k].name;
    size_t nl = strlen(name);
    if (r->i == 0) family(b, name, "gauge", gauges[k].help);
    int nh = k >= G_SCORE ? 1 : d->cfg.http_n_horizons;
    uint32_t end = r->i + max < r->n ? r->i + max : r->n;
    for (uint32_t i = r->i; i < end; i++) {
        const en_result *res = picked(r, d, i);
        if (!res) continue;
        const char *lp = r->labels.p + r->lab[i];
        size_t ll = r->lab[i + 1] - r->lab[i];
        /* Room for every line of this series at once, then plain copies:
         * one capacity check per series instead of four per line. */
        ht_buf_reserve(b, (size_t)nh * (nl + ll + 24 + 48));
        if (b->failed) return 1;
        const float *v = k == G_YHAT ? res->yhat : k == G_LO ? res->lo : res->hi;
        for (int j = 0; j < nh; j++) {
            int h = k >= G_SCORE ? 1 : d->cfg.http_horizons[j];
            if (h > res->H) continue;
            char *o = b->p + b->len;
            memcpy(o, name, nl);
            memcpy(o + nl, lp, ll);
            o += nl + ll;
            if (k >= G_SCORE) {
                *o++ = '}';
                o += fmt_value(o, k == G_SCORE ? res->score : res->level);
            } else {
                memcpy(o, step[j], step_len[j]);
                o += step_len[j];
                o += fmt_value(o, v[h - 1]);
            }
            b->len = (size_t)(o - b->p);
        }
        b->p[b->len] = 0;
    }
    r->i = end;
    if (end < r->n) return 0;
    r->i = 0;
    return ++r->k == G__COUNT;
}

/* The last lines, after the series gauges. */
static void render_tail(ht_render *r, dm *d, ht_buf *b) {
    if (r->on) {
        one(b, "rwkvcast_series_exported", "gauge", "Series exported with per-series gauges (at most http.series_max).",
            r->n);
        one(b, "rwkvcast_series_matched", "gauge", "Series in memory matching http.series (exported or over the cap).",
            r->matched);
    }
    one(b, "rwkvcast_http_metrics_render_seconds", "gauge",
        "Event-loop time the previous /metrics page took to render (in slices of at most about 1 ms each).",
        r->last_busy_s);
    one(b, "rwkvcast_http_metrics_render_slices", "gauge", "Slices the previous /metrics page was rendered in.",
        r->last_slices);
    uint64_t req = d->ht ? ht_requests(d->ht) : 0;
    one(b, "rwkvcast_http_requests_total", "counter", "HTTP requests answered (this one included).", (double)req);
}

int ht_render_step(ht_render *r, dm *d, ht_buf *b, int64_t until_ns) {
    if (r->phase == R_IDLE) return 1;
    int64_t t0 = lg_mono_ns();
    /* No en_flush: en_slot_last waits for a batch in flight only when it
     * holds the slot read, so the engine's pipeline keeps running between
     * and during slices (a flush per slice drained it ten times a scrape). */
    char step[CF_MAX_HTTP_STEPS][24];
    size_t step_len[CF_MAX_HTTP_STEPS];
    for (int j = 0; j < d->cfg.http_n_horizons; j++)
        step_len[j] = (size_t)snprintf(step[j], sizeof step[j], ",step=\"%d\"}", d->cfg.http_horizons[j]);
    /* Work in chunks of 64 series, the clock read between them (a chunk
     * is 5-20 us warm, with 4 horizons). */
    while (r->phase != R_DONE) {
        int done = r->phase == R_PICK ? pick_some(r, d, 64) : lines_some(r, d, b, 64, step, step_len);
        if (done && r->phase == R_PICK) {
            if (r->labels.failed || r->ids.failed) b->failed = 1;
            r->phase = R_LINES;
        } else if (done) {
            r->phase = R_DONE;
        }
        if (r->phase != R_DONE && lg_mono_ns() >= until_ns) break;
    }
    int64_t t1 = lg_mono_ns();
    r->busy_ns += t1 - t0;
    if (r->phase != R_DONE) {
        r->slices++;
        return 0;
    }
    r->last_busy_s = (double)r->busy_ns * 1e-9;
    r->last_slices = r->slices;
    render_tail(r, d, b);
    release(r);
    r->phase = R_IDLE;
    return 1;
}

void ht_render_metrics(dm *d, ht_buf *b) {
    ht_render *r = ht_render_new();
    if (!r) { b->failed = 1; return; }
    ht_render_begin(r, d, b);
    ht_render_step(r, d, b, INT64_MAX);
    ht_render_free(r);
}
