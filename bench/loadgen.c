/*
 * loadgen.c: end-to-end load generator for a running rwkvcastd
 * (build/bench/loadgen; driven by bench/bench_e2e.py for `make bench-e2e`).
 *
 * It publishes msgpack samples (docs/PROTOCOL.md §1) for N series to the
 * daemon's ingest socket at a fixed total rate or as fast as it can, for a
 * bounded time, subscribes to the daemon's PUB output and matches every
 * forecast "f.<series>" to the sample that caused it by (series, t). The
 * latency is publish -> forecast receipt on CLOCK_MONOTONIC, taken in one
 * process, so no clock sync is involved and nothing is embedded in the payload.
 *
 * Series ids are fixed width (prefix + zero-padded index), so every sample
 * of every message has the same byte layout: all messages are encoded once
 * at start into one buffer, and each round only patches the 8-byte 't' and
 * 'v' floats in place. The send loop allocates nothing (libzmq copies a
 * frame into its own buffer inside zmq_send; that is the library's cost, and
 * also what a real producer pays). Sample k of series i has
 * t = t0 + k*dt, so the receiver recovers k from 't' alone.
 *
 * Send times live in a table of N x R slots indexed by (series, k mod R),
 * R a power of two chosen so the table stays near 4M slots: a forecast
 * arriving more than R rounds late finds its slot reused and counts as
 * 'late' (its sample then shows up as lost). The slot's k is published with
 * release/acquire atomics, so the receiver thread never reads a half
 * written slot.
 *
 * Threads: main (setup, report), one sender, one receiver; each owns its
 * ZeroMQ socket. Output: one JSON line on stdout, a readable summary on
 * stderr. Exit 0 after a run, 1 when the daemon never answered the probe,
 * 2 on bad options.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/log.h"
#include "common/base.h"
#include "common/textin.h"
#include "connectors/curve.h"
#include "connectors/wire.h"

enum { SHAPE_SINGLE, SHAPE_BATCH, SHAPE_COLUMNAR };
static const char *const shape_names[] = {"single", "batch", "columnar"};

/* Latency histogram: exact below 128 ns, then 64 sub-buckets per octave
 * (under 1.6% relative error), up to 2^63 ns. Fixed size: no allocation. */
#define HB_N 3776
typedef struct hist {
    uint64_t n[HB_N];   /* counts per bucket */
    uint64_t count;     /* samples recorded */
    int64_t max_ns;     /* largest value, ns */
    double sum_ns;      /* for the mean, ns */
} hist;

static int hb_index(int64_t v) {
    if (v < 128) return v < 0 ? 0 : (int)v;
    int msb = 63 - __builtin_clzll((uint64_t)v);
    int e = msb - 6;
    return e * 64 + (int)((uint64_t)v >> e);
}

/* Midpoint of a bucket, ns. */
static double hb_value(int idx) {
    if (idx < 128) return idx;
    int e = idx / 64 - 1;
    double lo = (double)((uint64_t)(idx % 64 + 64) << e);
    return lo + (double)(1ull << e) * 0.5;
}

static void hist_add(hist *h, int64_t v) {
    h->n[hb_index(v)]++;
    h->count++;
    h->sum_ns += (double)v;
    if (v > h->max_ns) h->max_ns = v;
}

/* Value at quantile q in [0,1], ns; 0 when empty. */
static double hist_q(const hist *h, double q) {
    if (!h->count) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->count), acc = 0;
    if (want < 1) want = 1;
    for (int i = 0; i < HB_N; i++) {
        acc += h->n[i];
        if (acc >= want) return hb_value(i);
    }
    return (double)h->max_ns;
}

/* One send-time slot: sample k of series i lives at i*R + (k & (R-1)). */
typedef struct slot {
    _Atomic int64_t sent_ns;   /* CLOCK_MONOTONIC at zmq_send, ns */
    _Atomic uint32_t k1;       /* k + 1 of the sample in this slot, 0 = being written */
    _Atomic uint32_t got;      /* 1 once its forecast arrived */
} slot;

/* One pre-encoded message. */
typedef struct msg {
    uint32_t off, len;         /* bytes in the template buffer */
    uint32_t first;            /* first series index */
    uint32_t nser;             /* series in the message */
    uint32_t t_off;            /* first 't' float64 payload, absolute offset */
} msg;

typedef struct opts {
    const char *in, *out;      /* daemon ingest and PUB endpoints */
    int push;                  /* 1: PUSH (daemon PULL), 0: PUB (daemon SUB) */
    uint32_t n;                /* series */
    const char *prefix;        /* series id prefix */
    int shape;                 /* SHAPE_* */
    uint32_t batch;            /* series per message (batch) or samples per message (columnar) */
    double rate;               /* samples/s in total, 0 = as fast as possible */
    double duration;           /* seconds of sending */
    uint64_t rounds;           /* samples per series to send, 0 = until duration */
    double t0, dt;             /* time of sample 0, seconds between samples of one series */
    double drain;              /* seconds to wait for forecasts after the last send */
    int recv;                  /* 0: do not subscribe (populate only) */
    int timeline;              /* 1: max latency per 100 ms of send time in the JSON */
    const char *label;         /* copied into the JSON */
    int sndhwm;                /* our PUB/PUSH high-water mark, messages */
    int nodrop;                /* PUB: block at the HWM instead of dropping (ZMQ_XPUB_NODROP) */
    double tick_us;            /* fixed rate: send what is due every tick_us, 0 = each message on time */
    const char *curve_key;     /* CURVE: our secret key file, NULL = plain (connectors/curve.h) */
    const char *curve_server;  /* CURVE: the daemon's public key file */
} opts;

typedef struct lg {
    opts o;
    void *zctx;
    /* Templates */
    uint8_t *buf;              /* every message, encoded once */
    msg *msgs;                 /* (n_msgs) */
    uint32_t n_msgs;
    uint32_t cols;             /* samples per series per message (columnar), else 1 */
    uint32_t sample_bytes;     /* stride between samples of a batch */
    uint32_t id_width;         /* digits of the index */
    size_t prefix_len;
    float vtab[4096];          /* values, indexed by (i*7 + k) & 4095 */
    /* Matching */
    slot *slots;               /* (n * R) */
    uint32_t R;                /* ring depth, power of two */
    /* Shared between threads */
    _Atomic uint64_t sent;     /* samples handed to zmq_send */
    _Atomic int send_done;     /* the sender finished */
    _Atomic int probe_seen;    /* the receiver saw the probe's forecast */
    _Atomic int recv_ready;    /* the receiver's socket is connected */
    _Atomic int recv_stop;     /* main asks the receiver to stop */
    int64_t send_start_ns, send_end_ns;
    uint64_t sent_msgs, send_fail, k_next;
    /* Receiver results (read by main after join) */
    uint64_t received, matched, unmatched, late, dup, alerts;
    int64_t first_recv_ns, last_recv_ns; /* forecasts of our series, monotonic ns */
    hist h;
    int64_t *tl_max;           /* (tl_n) max latency per 100 ms of send time, ns */
    uint32_t tl_n;
} lg;

static int64_t now_ns(void) { return lg_mono_ns(); }

static void sleep_until(int64_t t_ns) {
    struct timespec ts = {(time_t)(t_ns / 1000000000), (long)(t_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* ---- Templates ---- */

static void write_id(const lg *g, char *out, uint32_t i) {
    memcpy(out, g->o.prefix, g->prefix_len);
    char *d = out + g->prefix_len;
    for (int p = (int)g->id_width - 1; p >= 0; p--) { d[p] = (char)('0' + i % 10); i /= 10; }
}

/* Encodes every message once; records where the floats to patch are. */
static int build_templates(lg *g) {
    const opts *o = &g->o;
    char id[MP_ID_MAX + 1];
    size_t id_len = g->prefix_len + g->id_width;
    uint32_t per = o->shape == SHAPE_BATCH ? o->batch : 1;
    g->cols = o->shape == SHAPE_COLUMNAR ? o->batch : 1;
    g->n_msgs = (o->n + per - 1) / per;
    /* Upper bound per sample map: header, "s" + id, "t"/"v" keys + float64s. */
    size_t bound_one = 1 + 2 + 2 + id_len + 2 + 2 + (size_t)g->cols * 18 + 8;
    size_t cap = (size_t)o->n * bound_one + (size_t)g->n_msgs * 8;
    g->buf = rc_malloc(cap);
    g->msgs = rc_malloc(sizeof(msg) * g->n_msgs);
    if (!g->buf || !g->msgs) return 0;
    mp_wr w;
    mp_wr_init(&w, g->buf, cap);
    for (uint32_t m = 0; m < g->n_msgs; m++) {
        msg *x = &g->msgs[m];
        x->first = m * per;
        x->nser = o->n - x->first < per ? o->n - x->first : per;
        x->off = (uint32_t)w.len;
        if (o->shape == SHAPE_BATCH) mp_w_arr(&w, x->nser);
        for (uint32_t j = 0; j < x->nser; j++) {
            size_t start = w.len;
            write_id(g, id, x->first + j);
            mp_w_map(&w, 3);
            mp_w_cstr(&w, "s");
            mp_w_str(&w, id, id_len);
            mp_w_cstr(&w, "t");
            if (g->cols > 1) mp_w_arr(&w, g->cols);
            if (j == 0) x->t_off = (uint32_t)w.len + 1;
            for (uint32_t c = 0; c < g->cols; c++) mp_w_f64(&w, 0);
            mp_w_cstr(&w, "v");
            if (g->cols > 1) mp_w_arr(&w, g->cols);
            for (uint32_t c = 0; c < g->cols; c++) mp_w_f64(&w, 0);
            g->sample_bytes = (uint32_t)(w.len - start);
        }
        x->len = (uint32_t)w.len - x->off;
    }
    return !w.overflow;
}

static void put_f64be(uint8_t *p, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    for (int b = 7; b >= 0; b--) { p[b] = (uint8_t)u; u >>= 8; }
}

static double get_f64be(const uint8_t *p) {
    uint64_t u = 0;
    for (int b = 0; b < 8; b++) u = (u << 8) | p[b];
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/*
 * Writes times and values of round k (samples k .. k+cols-1 of each
 * series) into message m and records its send time for the receiver.
 * Offsets inside one sample: the 't' floats (9 bytes each, marker first),
 * then key "v" (2 bytes) and the array header when columnar, then the 'v'.
 */
static void patch(lg *g, const msg *x, uint64_t k, int64_t ns) {
    uint32_t v_gap = g->cols * 9 + 2 + (g->cols > 1 ? (g->cols <= 15 ? 1 : 3) : 0);
    for (uint32_t j = 0; j < x->nser; j++) {
        uint32_t i = x->first + j;
        uint8_t *tp = g->buf + x->t_off + (size_t)j * g->sample_bytes;
        for (uint32_t c = 0; c < g->cols; c++) {
            uint64_t kc = k + c;
            put_f64be(tp + c * 9, g->o.t0 + (double)kc * g->o.dt);
            put_f64be(tp + v_gap + c * 9, g->vtab[(i * 7u + (uint32_t)kc) & 4095]);
            /* Seqlock-style: k1 = 0 while the slot changes, so a very late
             * forecast of the previous occupant never reads a torn slot. */
            slot *s = &g->slots[(size_t)i * g->R + (kc & (g->R - 1))];
            atomic_store_explicit(&s->k1, 0, memory_order_relaxed);
            atomic_thread_fence(memory_order_release);
            atomic_store_explicit(&s->sent_ns, ns, memory_order_relaxed);
            atomic_store_explicit(&s->got, 0, memory_order_relaxed);
            atomic_store_explicit(&s->k1, (uint32_t)(kc + 1), memory_order_release);
        }
    }
}

/* CURVE client keys on sk before it connects (--curve-key); 0 or -1 (printed). */
static int curve_client(void *sk, const opts *o) {
    if (!o->curve_key) return 0;
    char err[600];
    if (cv_client_setup(sk, o->curve_key, o->curve_server, err, sizeof err) == RC_OK) return 0;
    fprintf(stderr, "Error: %s\n", err);
    return -1;
}

/* ---- Sender ---- */

static void *sender(void *arg) {
    lg *g = arg;
    const opts *o = &g->o;
    void *sk = zmq_socket(g->zctx, o->push ? ZMQ_PUSH : ZMQ_PUB);
    int hwm = o->sndhwm, tmo = 1000, linger = 2000;
    zmq_setsockopt(sk, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sk, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(sk, ZMQ_LINGER, &linger, sizeof linger);
    /* A PUB drops silently at its HWM; with nodrop it pushes back like PUSH,
     * so "as fast as possible" measures what the daemon sustains. */
    if (!o->push && o->nodrop) zmq_setsockopt(sk, ZMQ_XPUB_NODROP, &o->nodrop, sizeof o->nodrop);
    if (curve_client(sk, o) != 0 || zmq_connect(sk, o->in) != 0) {
        fprintf(stderr, "Error: cannot connect to '%s' (%s).\n", o->in, zmq_strerror(errno));
        zmq_close(sk);
        atomic_store(&g->send_done, -1);
        return NULL;
    }
    /* Probe: a sample of a separate series until its forecast comes back.
     * This waits out PUB/SUB joining on both sockets, so the measured run
     * does not lose its first messages to the slow-joiner window. */
    if (o->recv) {
        char pb[MP_ID_MAX + 64];
        uint8_t pbuf[512];
        int n = snprintf(pb, sizeof pb, "%sprobe", o->prefix);
        int64_t until = now_ns() + 10 * 1000000000LL;
        for (int a = 0; !atomic_load(&g->probe_seen); a++) {
            if (now_ns() > until || a >= 1000) {
                zmq_close(sk);
                atomic_store(&g->send_done, -1);
                return NULL;
            }
            mp_wr w;
            mp_wr_init(&w, pbuf, sizeof pbuf);
            mp_w_map(&w, 3);
            mp_w_cstr(&w, "s");
            mp_w_str(&w, pb, (size_t)n);
            mp_w_kv_f64(&w, "t", o->t0 + a * 1e-6);
            mp_w_kv_f64(&w, "v", 0);
            if (atomic_load(&g->recv_ready)) zmq_send(sk, w.buf, w.len, ZMQ_DONTWAIT);
            int64_t t = now_ns() + 10000000;
            while (!atomic_load(&g->probe_seen) && now_ns() < t) sleep_until(now_ns() + 200000);
        }
    }
    uint64_t k = 0, sent = 0;
    uint32_t m = 0;
    int64_t start = now_ns(), end = start + (int64_t)(o->duration * 1e9);
    double ns_per_sample = o->rate > 0 ? 1e9 / o->rate : 0;
    const int64_t tick_ns = (int64_t)(o->tick_us * 1e3);
    g->send_start_ns = start;
    for (;;) {
        int64_t t = now_ns();
        if (t >= end) break;
        if (ns_per_sample > 0) {
            int64_t due = start + (int64_t)((double)sent * ns_per_sample);
            if (tick_ns > 0) {
                /* Ahead: sleep one tick (or to the next due, if later), then
                 * send everything due: bursts of about rate * tick samples,
                 * one wake-up per tick here and in the ZeroMQ I/O threads
                 * instead of one per message. Latency is still measured
                 * from each message's own send time. */
                if (due > t) { sleep_until(due > t + tick_ns ? due : t + tick_ns); continue; }
            } else {
                /* Sleep when well ahead; closer than 100 us, spin, since a
                 * sleep overshoots by tens of microseconds. */
                if (due > t + 100000) { sleep_until(due - 50000); continue; }
                if (due > t) continue;
            }
        }
        const msg *x = &g->msgs[m];
        patch(g, x, k, t);
        if (zmq_send(sk, g->buf + x->off, x->len, 0) < 0) {
            g->send_fail++;
            if (g->send_fail > 10) break; /* the peer is gone: stop, report */
        } else {
            g->sent_msgs++;
            sent += (uint64_t)x->nser * g->cols;
            atomic_store_explicit(&g->sent, sent, memory_order_release);
        }
        if (++m == g->n_msgs) {
            m = 0;
            k += g->cols;
            if (o->rounds && k >= o->rounds) break;
        }
    }
    /* A partial round still advances k for the series it reached; the next
     * run must start after every time used here. */
    g->k_next = m ? k + g->cols : k;
    g->send_end_ns = now_ns();
    zmq_close(sk);
    atomic_store(&g->send_done, 1);
    return NULL;
}

/* ---- Receiver ---- */

/* Series index from the topic "f.<prefix><digits>"; -1 for anything else,
 * -2 for the probe. */
static int64_t topic_series(const lg *g, const uint8_t *p, size_t n) {
    size_t pl = g->prefix_len;
    if (n < 2 + pl + 1 || memcmp(p + 2, g->o.prefix, pl) != 0) return -1;
    p += 2 + pl;
    n -= 2 + pl;
    if (n == 5 && !memcmp(p, "probe", 5)) return -2;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v < (int64_t)g->o.n ? v : -1;
}

/* The 't' of a forecast map; 0 when absent. Stops at the key, so the H
 * forecast floats after it are never walked. */
static int forecast_t(const uint8_t *p, size_t n, double *t) {
    mp_rd r;
    mp_obj o, k;
    mp_rd_init(&r, p, n);
    if (mp_next(&r, &o) != RC_OK || o.type != MP_MAP) return 0;
    for (uint32_t i = 0; i < o.len; i++) {
        if (mp_next(&r, &k) != RC_OK || k.type != MP_STR) return 0;
        if (k.len == 1 && k.p[0] == 't') {
            /* Fast path for the daemon's float64 (0xcb + 8 bytes). */
            if (r.end - r.p >= 9 && r.p[0] == 0xcb) { *t = get_f64be(r.p + 1); return 1; }
            mp_obj v;
            return mp_next(&r, &v) == RC_OK && mp_as_double(&v, t);
        }
        if (mp_skip(&r) != RC_OK) return 0;
    }
    return 0;
}

static void on_forecast(lg *g, const uint8_t *topic, size_t tn, const uint8_t *p, size_t n, int64_t ns) {
    int64_t i = topic_series(g, topic, tn);
    if (i == -2) { atomic_store(&g->probe_seen, 1); return; }
    if (!g->received++) g->first_recv_ns = ns;
    g->last_recv_ns = ns;
    double t;
    if (i < 0 || !forecast_t(p, n, &t)) { g->unmatched++; return; }
    double kd = (t - g->o.t0) / g->o.dt;
    if (!(kd > -0.5) || kd > 4e9) { g->unmatched++; return; }
    uint64_t k = (uint64_t)llround(kd);
    slot *s = &g->slots[(size_t)i * g->R + (k & (g->R - 1))];
    uint32_t k1 = atomic_load_explicit(&s->k1, memory_order_acquire);
    int64_t sent_ns = atomic_load_explicit(&s->sent_ns, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (k1 != (uint32_t)(k + 1) || atomic_load_explicit(&s->k1, memory_order_relaxed) != k1) {
        g->late++;
        return;
    }
    if (atomic_exchange_explicit(&s->got, 1, memory_order_relaxed)) { g->dup++; return; }
    g->matched++;
    int64_t lat = ns - sent_ns;
    hist_add(&g->h, lat);
    if (g->tl_n) {
        int64_t b = (sent_ns - g->send_start_ns) / 100000000;
        if (b >= 0 && b < (int64_t)g->tl_n && lat > g->tl_max[b]) g->tl_max[b] = lat;
    }
}

static void *receiver(void *arg) {
    lg *g = arg;
    void *sk = zmq_socket(g->zctx, ZMQ_SUB);
    int hwm = 0, linger = 0;
    zmq_setsockopt(sk, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sk, ZMQ_LINGER, &linger, sizeof linger);
    char sub[2 + MP_ID_MAX + 1];
    int sn = snprintf(sub, sizeof sub, "f.%s", g->o.prefix);
    zmq_setsockopt(sk, ZMQ_SUBSCRIBE, sub, (size_t)sn);
    if (curve_client(sk, &g->o) != 0 || zmq_connect(sk, g->o.out) != 0) {
        fprintf(stderr, "Error: cannot connect to '%s' (%s).\n", g->o.out, zmq_strerror(errno));
        zmq_close(sk);
        return NULL;
    }
    atomic_store(&g->recv_ready, 1);
    zmq_msg_t a, b;
    zmq_msg_init(&a);
    zmq_msg_init(&b);
    int64_t done_at = 0;
    for (;;) {
        if (atomic_load(&g->recv_stop)) break;
        int done = atomic_load(&g->send_done);
        if (done && !done_at) done_at = now_ns();
        if (done == -1) break;
        if (done_at) {
            uint64_t sent = atomic_load(&g->sent);
            /* Drained: every sample answered, or nothing new for 0.5 s, or the drain limit. */
            int64_t t = now_ns();
            int64_t last = g->last_recv_ns > done_at ? g->last_recv_ns : done_at;
            if (g->matched >= sent || t - done_at > (int64_t)(g->o.drain * 1e9) || t - last > 500000000)
                break;
        }
        zmq_pollitem_t pi = {sk, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 50) <= 0) continue;
        /* Read everything queued before looking at the clock flags again. */
        for (int burst = 0; burst < 4096; burst++) {
            if (zmq_msg_recv(&a, sk, ZMQ_DONTWAIT) < 0) break;
            int64_t ns = now_ns();
            if (!zmq_msg_more(&a)) continue;
            zmq_msg_recv(&b, sk, 0);
            while (zmq_msg_more(&b)) zmq_msg_recv(&b, sk, 0);
            on_forecast(g, zmq_msg_data(&a), zmq_msg_size(&a), zmq_msg_data(&b), zmq_msg_size(&b), ns);
        }
    }
    zmq_msg_close(&a);
    zmq_msg_close(&b);
    zmq_close(sk);
    return NULL;
}

/* ---- Main ---- */

static void usage(FILE *f) {
    fprintf(f,
        "Usage: loadgen [options]\n"
        "Publishes samples of N series to rwkvcastd and measures publish -> forecast latency.\n"
        "  --in ENDPOINT       daemon ingest (default tcp://127.0.0.1:7701)\n"
        "  --out ENDPOINT      daemon PUB output (default tcp://127.0.0.1:7702)\n"
        "  --sock pub|push     our ingest socket: pub for a SUB ingest (default), push for PULL\n"
        "  -n, --series N      series (default 1000)\n"
        "  --prefix STR        series id prefix (default 'lg.')\n"
        "  --shape S           single | batch (array of maps, default) | columnar\n"
        "  --batch B           series per message (batch) or samples per message (columnar); default 64\n"
        "  --rate R            total samples/s; 0 = as fast as possible (default 0)\n"
        "  --duration S        seconds of sending (default 5; hard bound)\n"
        "  --rounds K          stop after K samples per series (default: duration only)\n"
        "  --t0 T              time of the first sample (default: now); epoch seconds or\n"
        "                      YYYY-MM-DD[ HH:MM[:SS[.fff]]], YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]\n"
        "  --dt S              seconds between samples of a series (default 1)\n"
        "  --drain S           max seconds to wait for forecasts after sending (default 2)\n"
        "  --no-recv           do not subscribe: send only (e.g. to create series)\n"
        "  --timeline          add max latency per 100 ms of send time to the JSON\n"
        "  --sndhwm N          our send high-water mark in messages (default 10000)\n"
        "  --nodrop            pub: block at the high-water mark instead of dropping\n"
        "  --tick US           with --rate: send what is due every US microseconds (bursts;\n"
        "                      fewer wake-ups); 0 = each message at its own time (default 0)\n"
        "  --label STR         copied into the JSON line\n"
        "  --curve-key FILE    CURVE: our secret key file (rwkvcast keygen), for both sockets\n"
        "  --curve-server-key FILE  CURVE: the daemon's public key file\n"
        "  -h, --help          this text\n"
        "Prints one JSON line on stdout and a summary on stderr.\n");
}

/* Index of arg in names (n of them), or -1 after naming the option and value. */
static int pick(const char *name, const char *arg, const char *const *names, int n) {
    for (int k = 0; k < n; k++)
        if (!strcmp(arg, names[k])) return k;
    fprintf(stderr, "Error: Invalid '%s' value (%s).\n", name, arg);
    return -1;
}

/* Fills o from the command line. 0 to run, 1 after --help, 2 on a bad option (message printed). */
static int parse(opts *o, int argc, char **argv) {
    *o = (opts){"tcp://127.0.0.1:7701", "tcp://127.0.0.1:7702", 0, 1000, "lg.", SHAPE_BATCH, 64,
                0, 5, 0, 0, 1, 2, 1, 0, "", 10000, 0, 0, NULL, NULL};
    o->t0 = floor(lg_wall_s());
    ti_getopt g;
    if (ti_getopt_init(&g, "I/in= O/out= k/sock= n|series= p/prefix= S/shape= b/batch= r/rate= d/duration= "
                           "R/rounds= t/t0= D/dt= w/drain= N/no-recv L/timeline W/sndhwm= x/nodrop T/tick= "
                           "l/label= Y/curve-key= Z/curve-server-key= h|help", 0))
        return 2;
    static const char *const socks[] = {"pub", "push"};
    long n = o->n, batch = o->batch;
    int c, bad = 0;
    /* Cases in --help order. */
    while (!bad && (c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'I': o->in = optarg; break;
        case 'O': o->out = optarg; break;
        case 'k': bad = (o->push = pick("--sock", optarg, socks, 2)) < 0; break;
        case 'n': bad = ti_opt_long("--series", optarg, 1, 100000000, &n); break;
        case 'p': o->prefix = optarg; break;
        case 'S': bad = (o->shape = pick("--shape", optarg, shape_names, 3)) < 0; break;
        case 'b': bad = ti_opt_long("--batch", optarg, 1, 65535, &batch); break;
        case 'r': bad = ti_opt_double("--rate", optarg, 0, 0, HUGE_VAL, &o->rate); break;
        case 'd': bad = ti_opt_double("--duration", optarg, 0, 1, 3600, &o->duration); break;
        case 'R': bad = ti_opt_u64("--rounds", optarg, &o->rounds); break;
        case 't': bad = ti_opt_time("--t0", optarg, &o->t0); break;
        case 'D': bad = ti_opt_double("--dt", optarg, 0, 1, HUGE_VAL, &o->dt); break;
        case 'w': bad = ti_opt_double("--drain", optarg, 0, 0, HUGE_VAL, &o->drain); break;
        case 'N': o->recv = 0; break;
        case 'L': o->timeline = 1; break;
        case 'W': bad = ti_opt_int("--sndhwm", optarg, 0, INT_MAX, &o->sndhwm); break;
        case 'x': o->nodrop = 1; break;
        case 'T': bad = ti_opt_double("--tick", optarg, 0, 0, 1e6, &o->tick_us); break;
        case 'l': o->label = optarg; break;
        case 'Y': o->curve_key = optarg; break;
        case 'Z': o->curve_server = optarg; break;
        case 'h': usage(stdout); return 1;
        default: return ti_opt_error(c, argv);
        }
    }
    if (bad || ti_opt_operands(argc, argv, 0)) return 2;
    if (!o->curve_key != !o->curve_server) {
        fprintf(stderr, "Error: CURVE needs both '--curve-key' and '--curve-server-key'.\n");
        return 2;
    }
    o->n = (uint32_t)n;
    o->batch = (uint32_t)batch;
    if (o->shape == SHAPE_SINGLE) o->batch = 1;
    if (strlen(o->prefix) + 10 > MP_ID_MAX || strchr(o->prefix, '"') || strchr(o->prefix, '\\')) {
        fprintf(stderr, "Error: Invalid '--prefix' value (%s).\n", o->prefix);
        return 2;
    }
    return 0;
}

static void report(const lg *g) {
    const opts *o = &g->o;
    uint64_t sent = atomic_load(&g->sent);
    double secs = (double)(g->send_end_ns - g->send_start_ns) * 1e-9;
    double rsecs = (double)(g->last_recv_ns - g->send_start_ns) * 1e-9;
    /* Forecast throughput over the receive window, late ones included: what
     * the daemon delivered even when the send side outran it. */
    double fsecs = (double)(g->last_recv_ns - g->first_recv_ns) * 1e-9;
    uint64_t lost = sent > g->matched ? sent - g->matched : 0;
    double us = 1e-3;
    double p50 = hist_q(&g->h, 0.5) * us, p99 = hist_q(&g->h, 0.99) * us, p999 = hist_q(&g->h, 0.999) * us;
    double mean = g->h.count ? g->h.sum_ns / (double)g->h.count * us : 0;
    double next_t0 = o->t0 + (double)g->k_next * o->dt;
    printf("{\"label\":\"%s\",\"in\":\"%s\",\"out\":\"%s\",\"sock\":\"%s\",\"nodrop\":%d,\"series\":%u,\"shape\":\"%s\","
           "\"batch\":%u,\"target_rate\":%.1f,\"duration\":%.3f,\"sent\":%llu,\"sent_msgs\":%llu,"
           "\"send_fail\":%llu,\"received\":%llu,\"matched\":%llu,\"lost\":%llu,\"late\":%llu,"
           "\"dup\":%llu,\"unmatched\":%llu,\"rate_sent\":%.1f,\"rate_recv\":%.1f,\"rate_fc\":%.1f,"
           "\"lat_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
           "\"t0\":%.6f,\"next_t0\":%.6f",
           o->label, o->in, o->out, o->push ? "push" : "pub", o->nodrop, o->n, shape_names[o->shape], o->batch, o->rate,
           secs, (unsigned long long)sent, (unsigned long long)g->sent_msgs,
           (unsigned long long)g->send_fail, (unsigned long long)g->received, (unsigned long long)g->matched,
           (unsigned long long)(o->recv ? lost : 0), (unsigned long long)g->late, (unsigned long long)g->dup,
           (unsigned long long)g->unmatched, secs > 0 ? (double)sent / secs : 0,
           rsecs > 0 ? (double)g->matched / rsecs : 0, fsecs > 0 ? (double)(g->received - 1) / fsecs : 0, p50, p99, p999, (double)g->h.max_ns * us, mean,
           o->t0, next_t0);
    if (g->tl_n) {
        printf(",\"max_us_by_100ms\":[");
        uint32_t last = (uint32_t)((g->send_end_ns - g->send_start_ns) / 100000000) + 1;
        if (last > g->tl_n) last = g->tl_n;
        for (uint32_t b = 0; b < last; b++) printf("%s%.0f", b ? "," : "", (double)g->tl_max[b] * us);
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
    fprintf(stderr,
            "loadgen %s: %u series, %s x%u, %s %s -> %s\n"
            "  sent %llu samples in %llu messages over %.2f s (%.0f samples/s; target %s)\n"
            "  forecasts matched %llu, lost %llu, late %llu, dup %llu, unmatched %llu\n"
            "  latency publish -> forecast: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
            o->label, o->n, shape_names[o->shape], o->batch, o->push ? "push" : "pub", o->in, o->out,
            (unsigned long long)sent, (unsigned long long)g->sent_msgs, secs, secs > 0 ? (double)sent / secs : 0,
            o->rate > 0 ? "fixed" : "as fast as possible", (unsigned long long)g->matched,
            (unsigned long long)(o->recv ? lost : 0), (unsigned long long)g->late, (unsigned long long)g->dup,
            (unsigned long long)g->unmatched, p50, p99, p999, (double)g->h.max_ns * us);
}

int main(int argc, char **argv) {
    lg *g = rc_calloc(1, sizeof *g);
    if (!g) return 1;
    int code = parse(&g->o, argc, argv);
    if (code) {
        if (code == 2) usage(stderr);
        code = code == 1 ? 0 : 2;
        goto err;
    }
    code = 1;
    g->prefix_len = strlen(g->o.prefix);
    g->id_width = 1;
    for (uint32_t x = g->o.n - 1; x >= 10; x /= 10) g->id_width++;
    /* Ring depth: enough rounds in flight for small N, 4 at 1M series. */
    uint32_t want = (1u << 22) / g->o.n;
    g->R = 4;
    while (g->R < want && g->R < 4096) g->R <<= 1;
    if (g->o.shape == SHAPE_COLUMNAR)
        while (g->R < 2 * g->o.batch) g->R <<= 1;
    g->slots = rc_calloc((size_t)g->o.n * g->R, sizeof(slot));
    if (g->o.timeline) {
        g->tl_n = (uint32_t)(g->o.duration * 10) + 2;
        g->tl_max = rc_calloc(g->tl_n, sizeof(int64_t));
        if (!g->tl_max) goto err;
    }
    if (!g->slots || !build_templates(g)) { fprintf(stderr, "Error: Out of memory.\n"); goto err; }
    for (int i = 0; i < 4096; i++)
        g->vtab[i] = (float)(20.0 + 5.0 * sin(i * 0.05) + 0.5 * sin(i * 1.7));
    g->zctx = zmq_ctx_new();
    pthread_t st, rt;
    int have_r = 0;
    if (g->o.recv) {
        if (pthread_create(&rt, NULL, receiver, g) != 0) goto err;
        have_r = 1;
    }
    if (pthread_create(&st, NULL, sender, g) != 0) {
        atomic_store(&g->recv_stop, 1);
        if (have_r) pthread_join(rt, NULL);
        goto err;
    }
    pthread_join(st, NULL);
    if (have_r) pthread_join(rt, NULL);
    if (atomic_load(&g->send_done) == -1) {
        fprintf(stderr, "Error: no forecast of the probe series from '%s' within 10 s (is rwkvcastd running, "
                "ingest '%s'?).\n", g->o.out, g->o.in);
        printf("{\"label\":\"%s\",\"error\":\"no answer from the daemon\"}\n", g->o.label);
        goto err;
    }
    report(g);
    code = 0;
err:
    if (g->zctx) zmq_ctx_term(g->zctx);
    rc_free(g->tl_max);
    rc_free(g->slots);
    rc_free(g->msgs);
    rc_free(g->buf);
    rc_free(g);
    return code;
}
