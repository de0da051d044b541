/*
 * http.h: rwkvcastd's HTTP endpoint (libmicrohttpd), for the operator's
 * stack: Prometheus scrapes /metrics, load balancers and systemd units ask
 * /healthz, people and scripts read one series as JSON. Prefix: ht_.
 *
 *   GET /metrics        Prometheus text format 0.0.4: counters, gauges and
 *                       histograms of the daemon (docs/PROTOCOL.md §7), and
 *                       the opt-in per-series gauges (http.series pattern,
 *                       capped by http.series_max)
 *   GET /healthz        200 "ok" while the loop runs and is not stopping,
 *                       503 while it stops (live and ready in one)
 *   GET /series/<id>    the `get` control reply as JSON (id percent-encoded)
 *   GET /               a short index of the above
 *
 * HEAD is answered like GET without the body; every other method gets 405
 * with "Allow: GET, HEAD", a request with a body 413, an unknown path 404,
 * a bad series id 400. Errors are counted (rwkvcast_http_requests_total).
 *
 * Threads: libmicrohttpd runs without threads of its own (MHD_USE_EPOLL,
 * external polling): its epoll fd is one more fd of the event loop and every
 * request is answered on the loop thread, which owns all the data it
 * reports, so nothing is shared and nothing is locked. A scrape of
 * /metrics suspends its connection while the page is rendered in slices of
 * about 1 ms of loop time (ht_render), the loop serving samples between
 * them; scrapes that arrive meanwhile wait for the same page (measured in
 * bench/RESULTS.md). Responses are written non-blocking, at most a
 * socket buffer (128 KiB) per loop round, so neither a slow client nor a
 * 10 MB page stalls the loop.
 *
 * Ownership: ht_open allocates the server, ht_close frees it. The pure
 * helpers (ht_route, ht_json_from_mp, ht_buf_*) are reentrant and are what
 * the fuzz target tests/fuzz/http_fuzz.c drives.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "daemon/eventloop.h"

typedef struct dm dm;
typedef struct ht_server ht_server;

/* ---- Growable text buffer ---- */

typedef struct ht_buf {
    char *p;     /* (cap) bytes, rc_malloc'd; NUL-terminated while not failed */
    size_t len;  /* bytes used, NUL excluded */
    size_t cap;  /* bytes allocated */
    size_t max;  /* growth limit, bytes; 0 = 256 MiB */
    int failed;  /* an allocation failed or max was hit: later appends are no-ops */
} ht_buf;

void ht_buf_init(ht_buf *b, size_t max);
void ht_buf_free(ht_buf *b);
void ht_buf_put(ht_buf *b, const char *s, size_t n);
/* Makes room for n more bytes in one allocation (a hint; failure is sticky as for the others). */
void ht_buf_reserve(ht_buf *b, size_t n);
void ht_buf_printf(ht_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Pure helpers ---- */

typedef enum ht_route_kind {
    HT_NOT_FOUND = 0, /* no such page */
    HT_INDEX,         /* "/" */
    HT_METRICS,       /* "/metrics" */
    HT_HEALTHZ,       /* "/healthz" */
    HT_SERIES,        /* "/series/<id>": id decoded into the caller's buffer */
    HT_BAD_ID         /* "/series/..." with an id that is empty, too long, not UTF-8 or badly escaped */
} ht_route_kind;

/*
 * Routes a request path of len bytes as received (still percent-encoded;
 * a query string after '?' is ignored). For HT_SERIES the decoded id is
 * written to id (cap >= 255 bytes, not NUL-terminated) and *id_len is set.
 * Never reads beyond len.
 */
ht_route_kind ht_route(const char *path, size_t len, char *id, size_t cap, size_t *id_len);

/*
 * Appends the msgpack value at mp (n bytes) to out as JSON: maps with
 * string keys (other keys are written as strings of their JSON), arrays,
 * numbers (NaN and infinities as null: JSON has neither), strings escaped
 * (invalid UTF-8 as U+FFFD), binary and ext as null. Nesting deeper than 32
 * or malformed msgpack: RC_ERR_PROTO, out then holds a partial document.
 */
rc_err ht_json_from_mp(ht_buf *out, const void *mp, size_t n);

/* Appends " <v>\n" for a sample line: NaN, +Inf, -Inf, or v with seven
 * significant digits (the engine's values are float32), shortest form. */
void ht_put_value(ht_buf *b, double v);

/* Appends s (n bytes) as a Prometheus label value: \ " and newline escaped. */
void ht_label_value(ht_buf *b, const char *s, size_t n);

/* 1 when s is a listen address ht_open takes: "IPv4:PORT" or "[IPv6]:PORT". */
int ht_listen_valid(const char *s);

/* ---- Metrics ---- */

/* Histogram of ingest-to-publish latency: upper bounds in seconds. */
#define HT_LAT_BUCKETS 14
extern const double ht_lat_bounds[HT_LAT_BUCKETS];
/* Records one latency (seconds) into d's histogram. Loop thread. */
void ht_observe_latency(dm *d, double seconds);

/*
 * A /metrics render job (http_metrics.c): ht_render_begin writes the
 * daemon's own metrics into b at once; ht_render_step then adds the
 * per-series gauges until it is done (returns 1, the page complete) or
 * the monotonic clock passes until_ns (returns 0; call again later, from
 * the loop, with the same b). Between steps ingest goes on: a series that
 * leaves its slot meanwhile is left out, never shown under another's id.
 * A page's index arrays and labels are allocated at its begin and freed
 * when it is done (per scrape, never per sample). Loop thread; a step
 * waits for the engine only for a slot it reads that a batch in flight
 * holds (en_slot_last).
 */
typedef struct ht_render ht_render;
ht_render *ht_render_new(void);
void ht_render_free(ht_render *r);
void ht_render_begin(ht_render *r, dm *d, ht_buf *b);
int ht_render_step(ht_render *r, dm *d, ht_buf *b, int64_t until_ns);
/* 1 between ht_render_begin and the step that finished the page. */
int ht_render_busy(const ht_render *r);

/* The whole page at once (a job of one step). Loop thread. */
void ht_render_metrics(dm *d, ht_buf *b);

/* ---- Server ---- */

/*
 * Starts listening on d->cfg.http_listen ("HOST:PORT", IPv4 or [IPv6]).
 * Returns NULL with *err = RC_OK when the endpoint is switched off (""),
 * NULL with *err and msg (msglen bytes) on failure (address in use, ...).
 * The server answers only after ht_wire added it to the loop.
 */
ht_server *ht_open(dm *d, rc_err *err, char *msg, size_t msglen);
/* Adds the server's fd and its timeout timer to loop l. 0 when the loop is full. */
int ht_wire(ht_server *h, ev_loop *l);
/* Requests answered since start (all outcomes). */
uint64_t ht_requests(const ht_server *h);
/* Stops listening, closes every connection, frees h. NULL is a no-op. */
void ht_close(ht_server *h);

#endif
