/*
 * http.c: the HTTP endpoint (http.h): libmicrohttpd driven by the event
 * loop, the routes, the Prometheus page and msgpack-to-JSON for /series.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/http.h"

#include <arpa/inet.h>
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

/* ---- Server ---- */

#define HT_MAX_CONN 64       /* MHD_OPTION_CONNECTION_LIMIT */
#define HT_SLICE_NS 1000000  /* loop time per slice of a /metrics render */
#define HT_SNDBUF (64 * 1024) /* SO_SNDBUF of a connection, bytes (the kernel doubles it) */

struct ht_server {
    dm *d;                  /* borrowed */
    struct MHD_Daemon *mhd; /* owned */
    int fd;                 /* MHD's epoll fd, registered with the loop */
    int timer;              /* ev timer id: MHD's timeouts, and the render's slices; -1 until wired */
    ev_loop *ev;            /* borrowed, once wired */
    uint64_t requests;      /* answered, all outcomes */
    size_t last_len;        /* bytes of the last /metrics page */
    /* /metrics: one render at a time, shared by every scrape waiting for it */
    ht_render *job;         /* owned */
    ht_buf page;            /* the page being rendered; MHD frees it once sent */
    struct MHD_Response *resp; /* the last finished page (our reference), or NULL */
    unsigned resp_status;   /* its status: 200, or 500 when it could not be built */
    int resp_due;           /* resumed scrapes that have not queued resp yet; at 0 our reference goes */
    struct MHD_Connection *wait[HT_MAX_CONN]; /* suspended scrapes waiting for the page in progress */
    int n_wait;             /* entries of wait */
};

/* Marks a /metrics connection suspended for its page (its con_cls). */
static char metrics_tag;

uint64_t ht_requests(const ht_server *h) { return h->requests; }

static void free_cb(void *p) { rc_free(p); }

/* Starts rendering a /metrics page into h->page (the daemon's own metrics
 * at once); the timer runs the slices. */
static void start_render(ht_server *h) {
    /* Our reference to the previous page goes; scrapes still sending it keep theirs. */
    if (h->resp) MHD_destroy_response(h->resp);
    h->resp = NULL;
    ht_buf_init(&h->page, 0);
    /* Sized from the last page: no doubling and copying of megabytes.
     * Nothing is kept between scrapes (the daemon's heap is what it was
     * once the page is sent; glibc keeps the pages mapped anyway). */
    ht_buf_reserve(&h->page, h->last_len + h->last_len / 8 + 4096);
    ht_render_begin(h->job, h->d, &h->page);
    if (h->timer >= 0) ev_timer_reset(h->ev, h->timer, 0);
}

/* The page is complete: one response for every waiting scrape, which are
 * resumed to take it. */
static void finish_render(ht_server *h) {
    ht_buf *b = &h->page;
    struct MHD_Response *r = NULL;
    h->resp_status = MHD_HTTP_OK;
    if (!b->failed && b->p) {
        h->last_len = b->len;
        LOG(LG_VERBOSE, "http", "/metrics: %zu bytes for %d scrape%s.", h->last_len, h->n_wait, h->n_wait == 1 ? "" : "s");
        /* MHD owns the page until the last scrape has it, and frees it with rc_free. */
        r = MHD_create_response_from_buffer_with_free_callback(b->len, b->p, free_cb);
        if (!r) ht_buf_free(b);
    } else {
        static const char oom[] = "Out of memory.\n";
        ht_buf_free(b);
        h->resp_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    b->p = NULL;
    b->len = b->cap = 0;
    if (r) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, h->resp_status == MHD_HTTP_OK
                                ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    h->resp = r;
    h->resp_due = h->n_wait;
    for (int i = 0; i < h->n_wait; i++) MHD_resume_connection(h->wait[i]);
    h->n_wait = 0;
}

/* /metrics: the first call suspends the connection until a page is ready
 * (rendered in slices by the timer); the call after its resumption sends it. */
static enum MHD_Result metrics_page(ht_server *h, struct MHD_Connection *c, void **con_cls) {
    if (*con_cls == &metrics_tag) {
        *con_cls = NULL;
        if (!h->resp) return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(c, h->resp_status, h->resp);
        /* The last waiting scrape has it: the page lives as long as MHD
         * sends it, and is freed after (a scrape whose client left while
         * it waited never comes here; the next render drops the page then). */
        if (--h->resp_due <= 0) {
            MHD_destroy_response(h->resp);
            h->resp = NULL;
        }
        return ret;
    }
    if (h->n_wait == HT_MAX_CONN) return MHD_NO; /* cannot happen: the connection limit */
    *con_cls = &metrics_tag;
    h->wait[h->n_wait++] = c;
    MHD_suspend_connection(c);
    if (!ht_render_busy(h->job)) start_render(h);
    return MHD_YES;
}

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
     * also covers a request with a body (which is never read). A /metrics
     * scrape is called again once its page is ready. */
    if (*con_cls == &metrics_tag) return metrics_page(h, c, con_cls);
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
    case HT_METRICS: return metrics_page(h, c, con_cls);
    case HT_SERIES: return series_page(d, c, id, id_len);
    case HT_BAD_ID:
        return send_msg(c, MHD_HTTP_BAD_REQUEST, "Invalid series id: 1..255 bytes of UTF-8, percent-encoded.");
    case HT_NOT_FOUND: break;
    }
    return send_msg(c, MHD_HTTP_NOT_FOUND, "Not found. Try /metrics, /healthz or /series/<id>.");
}

/* Each connection's send buffer is capped (HT_SNDBUF), so one MHD_run
 * copies at most that much of a page into the kernel: a 10 MB /metrics
 * page written in one send() held the loop for 10-15 ms; in pieces the
 * loop serves samples between them while the client drains the socket. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)socket_ctx;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int sz = HT_SNDBUF;
    if (ci) (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
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
    ht_buf_init(&h->page, 0);
    if (!(h->job = ht_render_new())) {
        rc_free(h);
        *err = RC_ERR_NOMEM;
        snprintf(msg, msglen, "Out of memory.");
        return NULL;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* Small per-connection memory (headers of a scrape are tiny; a huge
     * header gets 431), few connections, and idle ones closed after 10 s. */
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)HT_MAX_CONN,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                              MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                              MHD_OPTION_END);
    (void)sl;
    if (!h->mhd) {
        snprintf(msg, msglen, "Cannot listen for HTTP on '%s' (address in use or not available). "
                 "Set 'http.listen' to a free address, or to \"\" to switch HTTP off.", d->cfg.http_listen);
        ht_render_free(h->job);
        rc_free(h);
        *err = RC_ERR_IO;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    h->fd = info ? info->epoll_fd : -1;
    if (h->fd < 0) {
        snprintf(msg, msglen, "libmicrohttpd has no epoll fd.");
        MHD_stop_daemon(h->mhd);
        ht_render_free(h->job);
        rc_free(h);
        *err = RC_ERR_IO;
        return NULL;
    }
    return h;
}

/* Runs whatever MHD has ready, then arms the timer for its next timeout
 * (0 when it has more to do right away, at most 1 s). */
/* Seconds until the timer should run again: at once while a page is
 * being rendered (the loop serves its other events in between), else
 * MHD's next timeout, at most 1 s. */
static double next_run(ht_server *h) {
    if (ht_render_busy(h->job)) return 0;
    MHD_UNSIGNED_LONG_LONG ms = 1000;
    if (MHD_get_timeout(h->mhd, &ms) != MHD_YES || ms > 1000) ms = 1000;
    return (double)ms * 1e-3;
}

static void run_mhd(ht_server *h) {
    MHD_run(h->mhd);
    if (h->timer >= 0) ev_timer_reset(h->ev, h->timer, next_run(h));
}

static void on_io(ev_loop *l, void *ctx) {
    (void)l;
    run_mhd(ctx);
}

static double on_timer(ev_loop *l, void *ctx) {
    (void)l;
    ht_server *h = ctx;
    /* One slice of the page in progress; once complete, MHD sends it. */
    if (ht_render_busy(h->job) && ht_render_step(h->job, h->d, &h->page, lg_mono_ns() + HT_SLICE_NS))
        finish_render(h);
    MHD_run(h->mhd);
    return next_run(h);
}

int ht_wire(ht_server *h, ev_loop *l) {
    h->ev = l;
    if (ev_add_io(l, NULL, h->fd, on_io, h) < 0) return 0;
    h->timer = ev_add_timer(l, 1.0, on_timer, h);
    return h->timer >= 0;
}

void ht_close(ht_server *h) {
    if (!h) return;
    /* Scrapes waiting for a page are resumed to be closed (no page). */
    if (h->resp) MHD_destroy_response(h->resp);
    h->resp = NULL;
    for (int i = 0; i < h->n_wait; i++) MHD_resume_connection(h->wait[i]);
    h->n_wait = 0;
    MHD_run(h->mhd);
    MHD_stop_daemon(h->mhd);
    ht_buf_free(&h->page);
    ht_render_free(h->job);
    rc_free(h);
}
