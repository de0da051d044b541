/*
 * http.c: the HTTP endpoint (http.h): libmicrohttpd driven by the event
 * loop, the routes, the Prometheus page and msgpack-to-JSON for /series.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/http.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "connectors/wire.h"
#include "daemon/control.h"
#include "daemon/ingest.h"
#include "daemon/server.h"
#include "daemon/server_internal.h"

/* ---- Buffer ---- */

void ht_buf_init(ht_buf *b, size_t max) {
    memset(b, 0, sizeof *b);
    b->max = max ? max : (size_t)256 << 20;
}

void ht_buf_free(ht_buf *b) {
    rc_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int grow(ht_buf *b, size_t need) {
    if (b->failed) return 0;
    if (b->len + need + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need + 1) cap *= 2;
    if (cap > b->max) cap = b->max;
    if (b->len + need + 1 > cap) { b->failed = 1; return 0; }
    char *p = rc_realloc(b->p, cap);
    if (!p) { b->failed = 1; return 0; }
    b->p = p;
    b->cap = cap;
    return 1;
}

void ht_buf_reserve(ht_buf *b, size_t n) { (void)grow(b, n); }

void ht_buf_put(ht_buf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ht_buf_printf(ht_buf *b, const char *fmt, ...) {
    va_list ap;
    for (int pass = 0; pass < 2 && !b->failed; pass++) {
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        va_start(ap, fmt);
        int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = 1; return; }
        if ((size_t)n < room) { b->len += (size_t)n; return; }
        if (!grow(b, (size_t)n)) return;
    }
}

/* ---- Routes ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int path_is(const char *p, size_t n, const char *want) {
    size_t k = strlen(want);
    return n == k && memcmp(p, want, k) == 0;
}

ht_route_kind ht_route(const char *path, size_t len, char *id, size_t cap, size_t *id_len) {
    const char *q = memchr(path, '?', len);
    if (q) len = (size_t)(q - path);
    if (path_is(path, len, "/")) return HT_INDEX;
    if (path_is(path, len, "/metrics")) return HT_METRICS;
    if (path_is(path, len, "/healthz")) return HT_HEALTHZ;
    static const char pre[] = "/series/";
    if (len < sizeof pre - 1 || memcmp(path, pre, sizeof pre - 1) != 0) return HT_NOT_FOUND;
    size_t o = 0;
    for (size_t i = sizeof pre - 1; i < len; i++) {
        char c = path[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(path[i + 1]) : -1, lo = i + 2 < len ? hexval(path[i + 2]) : -1;
            if (hi < 0 || lo < 0) return HT_BAD_ID;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o == cap || o == MP_ID_MAX) return HT_BAD_ID;
        id[o++] = c;
    }
    if (o == 0 || !mp_utf8_valid((const uint8_t *)id, o)) return HT_BAD_ID;
    *id_len = o;
    return HT_SERIES;
}

/* ---- JSON ---- */

static void json_str(ht_buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    ht_buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        /* Runs of plain bytes go in one copy. */
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < 0x80) j++;
        if (j > i) ht_buf_put(b, (const char *)s + i, j - i);
        i = j;
        if (i == n) break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            /* A whole valid UTF-8 sequence is kept; anything else is U+FFFD. */
            size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (k > 1 && i + k <= n && mp_utf8_valid(s + i, k)) ht_buf_put(b, (const char *)s + i, k);
            else { ht_buf_put(b, "\\ufffd", 6); k = 1; }
            i += k;
            continue;
        }
        char e[8] = {'\\', (char)c, 0};
        size_t el = 2;
        if (c == '\n') e[1] = 'n';
        else if (c == '\t') e[1] = 't';
        else if (c == '\r') e[1] = 'r';
        else if (c < 0x20) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        ht_buf_put(b, e, el);
        i++;
    }
    ht_buf_put(b, "\"", 1);
}

static void json_num(ht_buf *b, double v) {
    if (!isfinite(v)) ht_buf_put(b, "null", 4);
    else ht_buf_printf(b, "%.17g", v);
}

rc_err ht_json_from_mp(ht_buf *out, const void *mp, size_t n) {
    /* Containers open on an explicit stack: hostile nesting cannot recurse. */
    enum { DEPTH = 32 };
    struct { uint32_t left; int is_map; int want_key; } st[DEPTH];
    int depth = 0;
    mp_rd r;
    mp_rd_init(&r, mp, n);
    for (;;) {
        mp_obj o;
        if (mp_next(&r, &o) != RC_OK) return RC_ERR_PROTO;
        int as_key = depth > 0 && st[depth - 1].is_map && st[depth - 1].want_key;
        switch (o.type) {
        case MP_NIL: ht_buf_put(out, as_key ? "\"null\"" : "null", as_key ? 6 : 4); break;
        case MP_BOOL:
            if (as_key) ht_buf_put(out, o.b ? "\"true\"" : "\"false\"", o.b ? 6 : 7);
            else ht_buf_put(out, o.b ? "true" : "false", o.b ? 4 : 5);
            break;
        case MP_INT: ht_buf_printf(out, as_key ? "\"%lld\"" : "%lld", (long long)o.i); break;
        case MP_UINT: ht_buf_printf(out, as_key ? "\"%llu\"" : "%llu", (unsigned long long)o.u); break;
        case MP_FLOAT:
            if (as_key) ht_buf_printf(out, "\"%.17g\"", o.f);
            else json_num(out, o.f);
            break;
        case MP_STR: json_str(out, o.p, o.len); break;
        case MP_BIN:
        case MP_EXT: ht_buf_put(out, as_key ? "\"\"" : "null", as_key ? 2 : 4); break;
        case MP_ARR:
        case MP_MAP:
            if (as_key) return RC_ERR_PROTO; /* a container as a map key: not JSON */
            if (depth == DEPTH) return RC_ERR_PROTO;
            ht_buf_put(out, o.type == MP_MAP ? "{" : "[", 1);
            st[depth].left = o.type == MP_MAP ? o.len * 2 : o.len;
            st[depth].is_map = o.type == MP_MAP;
            st[depth].want_key = 1;
            depth++;
            if (o.len) continue; /* its first item comes next */
            /* Empty: closed right away below. */
            st[depth - 1].left = 1;
            ht_buf_put(out, o.type == MP_MAP ? "}" : "]", 1);
            depth--;
            break;
        }
        /* One item done: separators, and close the containers it ended. */
        while (depth > 0) {
            if (o.type == MP_MAP || o.type == MP_ARR) {
                /* An empty container just closed counts as its parent's item. */
                o.type = MP_NIL;
            }
            if (--st[depth - 1].left > 0) {
                if (st[depth - 1].is_map) {
                    ht_buf_put(out, st[depth - 1].want_key ? ":" : ",", 1);
                    st[depth - 1].want_key = !st[depth - 1].want_key;
                } else {
                    ht_buf_put(out, ",", 1);
                }
                break;
            }
            ht_buf_put(out, st[depth - 1].is_map ? "}" : "]", 1);
            depth--;
        }
        if (depth == 0) return out->failed ? RC_ERR_NOMEM : RC_OK;
    }
}

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
void ht_put_value(ht_buf *b, double v) {
    if (isnan(v)) { ht_buf_put(b, " NaN\n", 5); return; }
    if (isinf(v)) { ht_buf_put(b, v > 0 ? " +Inf\n" : " -Inf\n", 6); return; }
    char out[48];
    size_t o = 0;
    out[o++] = ' ';
    if (v == 0) {
        out[o++] = '0';
        out[o++] = '\n';
        ht_buf_put(b, out, o);
        return;
    }
    if (v < 0) { out[o++] = '-'; v = -v; }
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                                 1e15, 1e16, 1e17, 1e18, 1e19, 1e20};
    if (!(v >= 1e-4 && v < 1e14)) {
        int n = snprintf(out + o, sizeof out - o, "%.7g\n", v);
        ht_buf_put(b, out, o + (size_t)n);
        return;
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
    ht_buf_put(b, out, o);
}

/* The per-series gauges: one family at a time (the format wants a family's
 * samples together), over the slots chosen once per scrape, each id
 * escaped once into a label prefix. */
enum { G_YHAT, G_LO, G_HI, G_SCORE, G_LEVEL, G__COUNT };

static void series_gauges(dm *d, ht_buf *b) {
    if (!d->cfg.http_series[0] || d->cfg.http_series_max == 0) return;
    /* Workers may still be stepping a slot: its last result is read after. */
    en_flush(d->en);
    uint32_t cap = d->cfg.http_series_max, n = 0, matched = 0;
    uint32_t *pick = rc_malloc((size_t)cap * sizeof *pick);
    size_t *lab = rc_malloc(((size_t)cap + 1) * sizeof *lab); /* label i is labels.p[lab[i] .. lab[i+1]) */
    ht_buf labels;
    ht_buf_init(&labels, 0);
    if (!pick || !lab) { b->failed = 1; goto out; }
    char id[MP_ID_MAX + 1];
    int match_all = strcmp(d->cfg.http_series, "*") == 0;
    lab[0] = 0;
    for (uint32_t s = rg_next(d->rg, 0); s != RG_NONE; s = rg_next(d->rg, s + 1)) {
        size_t len;
        const char *p = rg_id(d->rg, s, &len);
        if (!p || !en_slot_last(d->en, s)) continue;
        if (!match_all) {
            memcpy(id, p, len);
            id[len] = 0;
            if (fnmatch(d->cfg.http_series, id, 0) != 0) continue;
        }
        matched++;
        if (n == cap) continue;
        pick[n] = s;
        ht_buf_put(&labels, "{series=\"", 9);
        ht_label_value(&labels, p, len);
        ht_buf_put(&labels, "\"", 1);
        lab[++n] = labels.len;
    }
    if (labels.failed) { b->failed = 1; goto out; }
    static const struct { const char *name, *help; } g[G__COUNT] = {
        {"rwkvcast_series_forecast", "Median forecast of the series' value h steps ahead (h = step label)."},
        {"rwkvcast_series_forecast_lower", "Lower bound of the forecast interval (lowest quantile, 0.1 by default)."},
        {"rwkvcast_series_forecast_upper", "Upper bound of the forecast interval (highest quantile, 0.9 by default)."},
        {"rwkvcast_series_anomaly_score", "Anomaly score of the series' last sample, 0..1."},
        {"rwkvcast_series_alert_level", "Alert level of the series: 0 ok, 1 warn, 2 alert."}};
    char step[CF_MAX_HTTP_STEPS][24];
    size_t step_len[CF_MAX_HTTP_STEPS];
    for (int j = 0; j < d->cfg.http_n_horizons; j++)
        step_len[j] = (size_t)snprintf(step[j], sizeof step[j], ",step=\"%d\"}", d->cfg.http_horizons[j]);
    for (int k = 0; k < G__COUNT; k++) {
        family(b, g[k].name, "gauge", g[k].help);
        size_t nl = strlen(g[k].name);
        for (uint32_t i = 0; i < n; i++) {
            const en_result *r = en_slot_last(d->en, pick[i]);
            if (!r) continue;
            const char *lp = labels.p + lab[i];
            size_t ll = lab[i + 1] - lab[i];
            if (k >= G_SCORE) {
                ht_buf_put(b, g[k].name, nl);
                ht_buf_put(b, lp, ll);
                ht_buf_put(b, "}", 1);
                ht_put_value(b, k == G_SCORE ? r->score : r->level);
                continue;
            }
            const float *v = k == G_YHAT ? r->yhat : k == G_LO ? r->lo : r->hi;
            for (int j = 0; j < d->cfg.http_n_horizons; j++) {
                int h = d->cfg.http_horizons[j];
                if (h > r->H) continue;
                ht_buf_put(b, g[k].name, nl);
                ht_buf_put(b, lp, ll);
                ht_buf_put(b, step[j], step_len[j]);
                ht_put_value(b, v[h - 1]);
            }
        }
    }
    one(b, "rwkvcast_series_exported", "gauge", "Series exported with per-series gauges (at most http.series_max).", n);
    one(b, "rwkvcast_series_matched", "gauge", "Series in memory matching http.series (exported or over the cap).",
        matched);
out:
    ht_buf_free(&labels);
    rc_free(lab);
    rc_free(pick);
}

void ht_render_metrics(dm *d, ht_buf *b) {
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
    series_gauges(d, b);
    uint64_t req = d->ht ? ht_requests(d->ht) : 0;
    one(b, "rwkvcast_http_requests_total", "counter", "HTTP requests answered (this one included).", (double)req);
}

/* ---- Server ---- */

struct ht_server {
    dm *d;                  /* borrowed */
    struct MHD_Daemon *mhd; /* owned */
    int fd;                 /* MHD's epoll fd, registered with the loop */
    int timer;              /* ev timer id for MHD's connection timeouts; -1 until wired */
    ev_loop *ev;            /* borrowed, once wired */
    uint64_t requests;      /* answered, all outcomes */
    size_t last_len;        /* bytes of the last /metrics page */
};

uint64_t ht_requests(const ht_server *h) { return h->requests; }

static void free_cb(void *p) { rc_free(p); }

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype, ht_buf *b) {
    struct MHD_Response *r;
    if (b->failed || !b->p) {
        static const char oom[] = "Out of memory.\n";
        ht_buf_free(b);
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = "text/plain; charset=utf-8";
    } else {
        /* MHD owns the page until it is sent, and frees it with rc_free. */
        r = MHD_create_response_from_buffer_with_free_callback(b->len, b->p, free_cb);
        if (!r) ht_buf_free(b);
        b->p = NULL;
    }
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_msg(struct MHD_Connection *c, unsigned status, const char *msg) {
    ht_buf b;
    ht_buf_init(&b, 0);
    ht_buf_put(&b, msg, strlen(msg));
    ht_buf_put(&b, "\n", 1);
    return send_text(c, status, "text/plain; charset=utf-8", &b);
}

/* /series/<id>: the control command `get`, its reply turned into JSON. */
static enum MHD_Result series_page(dm *d, struct MHD_Connection *c, const char *id, size_t len) {
    uint8_t req[MP_ID_MAX + 32];
    mp_wr w;
    mp_wr_init(&w, req, sizeof req);
    mp_w_map(&w, 2);
    mp_w_kv_str(&w, "cmd", "get");
    mp_w_cstr(&w, "s");
    mp_w_str(&w, id, len);
    mp_wr rep;
    mp_wr_init(&rep, d->ctl_buf, d->ctl_cap);
    ct_handle(d, w.buf, w.len, &rep);
    ht_buf b;
    ht_buf_init(&b, 0);
    if (ht_json_from_mp(&b, rep.buf, rep.len) != RC_OK) b.failed = 1;
    ht_buf_put(&b, "\n", 1);
    /* {"ok": false, "error": "Unknown series."}: the answer is 404. */
    unsigned status = strncmp(b.p ? b.p : "", "{\"ok\":false", 11) ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND;
    return send_text(c, status, "application/json", &b);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload;
    ht_server *h = cls;
    dm *d = h->d;
    /* The first call of a request only has the headers; answering then
     * also covers a request with a body (which is never read). */
    (void)con_cls;
    h->requests++;
    const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (*upload_size || MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
        (clen && strcmp(clen, "0"))) {
        *upload_size = 0;
        return send_msg(c, MHD_HTTP_CONTENT_TOO_LARGE, "Request bodies are not accepted.");
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_msg(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and HEAD.");
    /* MHD's own unescaping is off (see ht_open): the path arrives as sent. */
    char id[MP_ID_MAX];
    size_t id_len = 0;
    switch (ht_route(url, strlen(url), id, sizeof id, &id_len)) {
    case HT_INDEX:
        return send_msg(c, MHD_HTTP_OK, "rwkvcastd " DM_VERSION "\n/metrics  Prometheus metrics\n"
                                        "/healthz  200 when live and ready\n/series/<id>  one series as JSON");
    case HT_HEALTHZ:
        return d->stopping ? send_msg(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping") : send_msg(c, MHD_HTTP_OK, "ok");
    case HT_METRICS: {
        ht_buf b;
        ht_buf_init(&b, 0);
        /* Sized from the last page: no doubling and copying of megabytes. */
        ht_buf_reserve(&b, h->last_len + h->last_len / 8 + 4096);
        int64_t t0 = lg_mono_ns();
        ht_render_metrics(d, &b);
        LOG(LG_VERBOSE, "http", "/metrics: %zu bytes in %.1f ms.", b.len, (double)(lg_mono_ns() - t0) * 1e-6);
        h->last_len = b.len;
        return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
    }
    case HT_SERIES: return series_page(d, c, id, id_len);
    case HT_BAD_ID:
        return send_msg(c, MHD_HTTP_BAD_REQUEST, "Invalid series id: 1..255 bytes of UTF-8, percent-encoded.");
    case HT_NOT_FOUND: break;
    }
    return send_msg(c, MHD_HTTP_NOT_FOUND, "Not found. Try /metrics, /healthz or /series/<id>.");
}

/* Leaves the path as sent, so ht_route sees %00 and the true length. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    LOG(LG_VERBOSE, "http", "%s", msg);
}

/* "HOST:PORT" (IPv4) or "[HOST]:PORT" (IPv6) into ss; 0 when malformed. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl) {
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon) return 0;
    size_t hl = (size_t)(colon - s);
    int v6 = hl >= 2 && s[0] == '[' && s[hl - 1] == ']';
    if (v6) { s++; hl -= 2; }
    if (hl == 0 || hl >= sizeof host) return 0;
    memcpy(host, s, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535) return 0;
    memset(ss, 0, sizeof *ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return 0;
        *sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return 0;
        *sl = sizeof *a;
    }
    return 1;
}

int ht_listen_valid(const char *s) {
    struct sockaddr_storage ss;
    socklen_t sl;
    return parse_listen(s, &ss, &sl);
}

ht_server *ht_open(dm *d, rc_err *err, char *msg, size_t msglen) {
    *err = RC_OK;
    if (!d->cfg.http_listen[0]) return NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!parse_listen(d->cfg.http_listen, &ss, &sl)) {
        snprintf(msg, msglen, "Invalid 'http.listen' value (%s).", d->cfg.http_listen);
        *err = RC_ERR_CONFIG;
        return NULL;
    }
    ht_server *h = rc_calloc(1, sizeof *h);
    if (!h) { *err = RC_ERR_NOMEM; snprintf(msg, msglen, "Out of memory."); return NULL; }
    h->d = d;
    h->timer = -1;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* Small per-connection memory (headers of a scrape are tiny; a huge
     * header gets 431), few connections, and idle ones closed after 10 s. */
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                              MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_END);
    (void)sl;
    if (!h->mhd) {
        snprintf(msg, msglen, "Cannot listen for HTTP on '%s' (address in use or not available). "
                 "Set 'http.listen' to a free address, or to \"\" to switch HTTP off.", d->cfg.http_listen);
        rc_free(h);
        *err = RC_ERR_IO;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    h->fd = info ? info->epoll_fd : -1;
    if (h->fd < 0) {
        snprintf(msg, msglen, "libmicrohttpd has no epoll fd.");
        MHD_stop_daemon(h->mhd);
        rc_free(h);
        *err = RC_ERR_IO;
        return NULL;
    }
    return h;
}

/* Runs whatever MHD has ready, then arms the timer for its next timeout
 * (0 when it has more to do right away, at most 1 s). */
static void run_mhd(ht_server *h) {
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 1000;
    if (MHD_get_timeout(h->mhd, &ms) != MHD_YES || ms > 1000) ms = 1000;
    if (h->timer >= 0) ev_timer_reset(h->ev, h->timer, (double)ms * 1e-3);
}

static void on_io(ev_loop *l, void *ctx) {
    (void)l;
    run_mhd(ctx);
}

static double on_timer(ev_loop *l, void *ctx) {
    (void)l;
    ht_server *h = ctx;
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 1000;
    if (MHD_get_timeout(h->mhd, &ms) != MHD_YES || ms > 1000) ms = 1000;
    return (double)ms * 1e-3;
}

int ht_wire(ht_server *h, ev_loop *l) {
    h->ev = l;
    if (ev_add_io(l, NULL, h->fd, on_io, h) < 0) return 0;
    h->timer = ev_add_timer(l, 1.0, on_timer, h);
    return h->timer >= 0;
}

void ht_close(ht_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->mhd);
    rc_free(h);
}
