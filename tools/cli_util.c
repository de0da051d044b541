/*
 * cli_util.c: helpers shared by send, tail, ctl and simulate (see cli_util.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "tools/cli_util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <msgpack/timestamp.h>
#include <zmq.h>

#include "connectors/curve.h"
#include "model/synth.h"

volatile sig_atomic_t cli_stop;

static void on_signal(int sig) {
    (void)sig;
    cli_stop = 1;
}

void cli_install_signals(void) {
    /* No SA_RESTART: a blocking zmq_poll or nanosleep must return with EINTR. */
    static const int sigs[] = {SIGINT, SIGTERM};
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

const char *cli_control_default(char *buf, size_t n) {
    const char *env = getenv("RWKVCAST_CONTROL");
    const char *rt = getenv("RUNTIME_DIRECTORY");
    struct stat st;
    if (env && *env)
        snprintf(buf, n, "%s", env);
    else if (rt && *rt)
        snprintf(buf, n, "ipc://%s/control.sock", rt);
    else if (stat("/run/rwkvcast/control.sock", &st) == 0)
        snprintf(buf, n, "ipc:///run/rwkvcast/control.sock");
    else
        snprintf(buf, n, "ipc://./rwkvcastd.sock");
    return buf;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_sleep(double s) {
    if (!(s > 0)) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}


void cli_format_clock(char *buf, size_t n, double t) {
    time_t secs = (time_t)floor(t);
    struct tm tm;
    localtime_r(&secs, &tm);
    size_t k = strftime(buf, n, "%H:%M:%S", &tm);
    int ms = (int)((t - floor(t)) * 1000.0);
    if (ms > 999) ms = 999;
    if (k < n) snprintf(buf + k, n - k, ".%03d", ms);
}

const char *const cli_series_names[] = {"series", "s", "id", "series_id", "sensor", "name", NULL};
const char *const cli_time_names[] = {"timestamp", "time", "t", "ts", "date", "datetime", NULL};
const char *const cli_value_names[] = {"value", "v", "y", NULL};

int cli_find_col(ti_csv *c, const ti_row *hdr, const char *const *names, const char *role) {
    int found = -1;
    for (int i = 0; i < hdr->n; i++)
        for (const char *const *nm = names; *nm; nm++) {
            if (ti_row_find(hdr, *nm, i) != i) continue;
            if (found >= 0) {
                /* Two columns could both be the timestamp: guessing would be silent data loss. */
                fprintf(stderr, "Error: %s:%ld:%ld: Columns '%s' and '%s' both name the %s column.\n",
                        ti_csv_label(c), hdr->f[i].line, hdr->f[i].col, hdr->f[found].s, hdr->f[i].s, role);
                return -2;
            }
            found = i;
            break;
        }
    return found;
}

int cli_opt_kind(const char *name, const char *arg, int allow_none, int *kind) {
    *kind = allow_none && strcmp(arg, "none") == 0 ? -1 : sy_kind_from_name(arg);
    if (*kind >= 0 || (allow_none && strcmp(arg, "none") == 0)) return 0;
    char list[256] = "";
    size_t k = 0;
    for (int i = 0; i < SY_KIND_COUNT && k < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", sy_kind_name(i));
    fprintf(stderr, "Error: Invalid '%s' value (%s): expected one of %s%s.\n", name, arg, list,
            allow_none ? ", none" : "");
    return -1;
}

int cli_ingest_option(cli_ingest_opts *o, int c, const char *arg) {
    switch (c) {
    case 'e': o->endpoint = arg; return 1;
    case 'P': o->mode = 'u'; return 1;
    case 'U': o->mode = 'p'; return 1;
    case 'B': o->bind = 1; return 1;
    case 'w': return ti_opt_long("--wait", arg, 0, 3600000, &o->wait_ms) ? -1 : 1;
    default: return 0;
    }
}

static const char *curve_key, *curve_server_key; /* --curve-key, --curve-server-key */

int cli_curve_option(int c, const char *arg) {
    if (c == 'Y') curve_key = arg;
    else if (c == 'Z') curve_server_key = arg;
    else return 0;
    return 1;
}

void *cli_socket_open(void **ctx, int type, const char *endpoint, int bind, int sndhwm) {
    void *c = zmq_ctx_new();
    void *s = c ? zmq_socket(c, type) : NULL;
    if (!s) {
        fprintf(stderr, "Error: Cannot create a ZeroMQ socket (%s).\n", zmq_strerror(errno));
        goto err;
    }
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (!curve_key != !curve_server_key) {
        fprintf(stderr, "Error: CURVE needs both '--curve-key' (this client's secret key file) and "
                "'--curve-server-key' (the daemon's public key file).\n");
        goto err;
    }
    if (curve_key) {
        char why[600];
        if (cv_client_setup(s, curve_key, curve_server_key, why, sizeof why) != RC_OK) {
            fprintf(stderr, "Error: %s\n", why);
            goto err;
        }
    }
    /* Before connecting: the high-water mark applies to pipes made after it is set. */
    if (sndhwm > 0) zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    if ((bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint)) != 0) {
        fprintf(stderr, "Error: Cannot %s '%s' (%s).\n", bind ? "bind" : "connect to", endpoint,
                zmq_strerror(errno));
        goto err;
    }
    *ctx = c;
    return s;
err:
    cli_socket_close(c, s, 0);
    return NULL;
}

void cli_socket_close(void *ctx, void *sock, int linger_ms) {
    if (sock) {
        zmq_setsockopt(sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close(sock);
    }
    if (ctx) zmq_ctx_term(ctx);
}

/* Waits up to wait_ms for a subscription on XPUB socket s; 0 when one came. */
static int await_subscriber(void *s, const char *endpoint, long wait_ms) {
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    double deadline = cli_now() + (double)wait_ms / 1000.0;
    int subscribed = 0, everything = 0;
    char prefix[64] = "";
    while (!subscribed && !cli_stop) {
        double left = deadline - cli_now();
        if (left <= 0) break;
        int pr = zmq_poll(&it, 1, (long)(left * 1000.0) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        /* A subscription message starts with byte 1, then the topic prefix. */
        char msg[256];
        int len = zmq_recv(s, msg, sizeof msg, ZMQ_DONTWAIT);
        if (len > 0 && msg[0] == 1) {
            subscribed = 1;
            everything = len == 1;
            if (len > 1) snprintf(prefix, sizeof prefix, "%.*s", len - 1 < 63 ? len - 1 : 63, msg + 1);
        }
    }
    /* A subscriber that filters on prefixes only sees messages whose topic
     * frame matches; say so rather than let samples vanish silently. */
    if (subscribed && !everything && zmq_poll(&it, 1, 100) > 0) {
        char msg[256];
        int len = zmq_recv(s, msg, sizeof msg, ZMQ_DONTWAIT);
        everything = len == 1 && msg[0] == 1;
    }
    if (subscribed && !everything)
        fprintf(stderr,
                "Note: The subscriber on '%s' filters on topic prefixes (e.g. '%s'); only messages "
                "with a matching topic frame reach it (send --topic sends the series id).\n",
                endpoint, prefix);
    if (!subscribed) {
        if (!cli_stop)
            fprintf(stderr,
                    "Error: No subscriber on '%s' after %ld ms (is rwkvcastd running and "
                    "listening there? --pull switches to PUSH).\n",
                    endpoint, wait_ms);
        return -1;
    }
    /* Other subscribers may still be joining; a short grace costs little. */
    cli_sleep(0.05);
    return 0;
}

void *cli_ingest_open(void **ctx, const cli_ingest_opts *o) {
    /* A generous send HWM: bursts from `send` of a big CSV must queue, not drop. */
    void *s = cli_socket_open(ctx, o->mode == 'u' ? ZMQ_PUSH : ZMQ_XPUB, o->endpoint, o->bind, 1000000);
    if (s && o->mode != 'u' && await_subscriber(s, o->endpoint, o->wait_ms) != 0) {
        cli_socket_close(*ctx, s, 0);
        *ctx = NULL;
        return NULL;
    }
    return s;
}

const msgpack_object *cli_map_get(const msgpack_object *m, const char *key) {
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl && memcmp(k->via.str.ptr, key, kl) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

int cli_obj_number(const msgpack_object *o, double *out) {
    if (!o) return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return 0;
    case MSGPACK_OBJECT_EXT: {
        msgpack_timestamp ts;
        if (!msgpack_object_to_timestamp(o, &ts)) return -1;
        *out = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        return 0;
    }
    default: return -1;
    }
}

int cli_obj_str(const msgpack_object *o, char *buf, size_t n) {
    if (!o || o->type != MSGPACK_OBJECT_STR || n == 0) return -1;
    size_t len = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(buf, o->via.str.ptr, len);
    buf[len] = '\0';
    return 0;
}

static void print_str(FILE *f, const char *p, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void print_double(FILE *f, double v) {
    if (isnan(v)) fputs("NaN", f);
    else if (isinf(v)) fputs(v > 0 ? "Infinity" : "-Infinity", f);
    else if (v == floor(v) && fabs(v) < 1e15) fprintf(f, "%.1f", v);
    else {
        /* Shortest form that reads back exactly: epoch times need 16 digits. */
        char buf[32];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
        fputs(buf, f);
    }
}

static int is_container(const msgpack_object *o) {
    return o->type == MSGPACK_OBJECT_MAP || o->type == MSGPACK_OBJECT_ARRAY;
}

static void print_json(FILE *f, const msgpack_object *o, int indent, int level) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", f); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: print_double(f, o->via.f64); break;
    case MSGPACK_OBJECT_STR: print_str(f, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: fprintf(f, "\"<%u bytes>\"", (unsigned)o->via.bin.size); break;
    case MSGPACK_OBJECT_EXT: {
        double t;
        if (cli_obj_number(o, &t) == 0) print_double(f, t);
        else fprintf(f, "\"<ext %d, %u bytes>\"", o->via.ext.type, (unsigned)o->via.ext.size);
        break;
    }
    case MSGPACK_OBJECT_ARRAY: {
        int nested = 0;
        for (uint32_t i = 0; i < o->via.array.size; i++) nested |= is_container(&o->via.array.ptr[i]);
        int multi = indent >= 0 && nested;
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) fputs(multi ? "," : ", ", f);
            if (multi) fprintf(f, "\n%*s", indent * (level + 1), "");
            print_json(f, &o->via.array.ptr[i], indent, level + 1);
        }
        if (multi && o->via.array.size) fprintf(f, "\n%*s", indent * level, "");
        fputc(']', f);
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        int multi = indent >= 0 && o->via.map.size > 0;
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i) fputs(multi ? "," : ", ", f);
            if (multi) fprintf(f, "\n%*s", indent * (level + 1), "");
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                print_str(f, kv->key.via.str.ptr, kv->key.via.str.size);
            } else {
                /* JSON keys must be strings; quote whatever else came. */
                fputc('"', f);
                print_json(f, &kv->key, -1, 0);
                fputc('"', f);
            }
            fputs(": ", f);
            print_json(f, &kv->val, indent, level + 1);
        }
        if (multi) fprintf(f, "\n%*s", indent * level, "");
        fputc('}', f);
        break;
    }
    }
}

void cli_print_json(FILE *f, const msgpack_object *o, int indent) {
    print_json(f, o, indent, 0);
}
