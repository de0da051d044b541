/*
 * mqtt.c: MQTT connections over libmosquitto (mqtt.h).
 *
 * The ring: one byte buffer of queue_bytes, records of a 16-byte header
 * {topic bytes, payload bytes, flags, record bytes} then the topic and the
 * payload, each record padded to 8 bytes. A record that does not fit
 * before the end of the buffer leaves a wrap marker (or, when not even a
 * header fits, nothing: the reader knows) and starts at offset 0. head and
 * tail count bytes since the start and only grow; the network thread
 * writes [tail, ...) and moves tail, the loop thread reads [head, tail)
 * and moves head, each under the mutex only for the index update, so
 * copying and ingest run unlocked.
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/mqtt.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#ifdef HAVE_MOSQUITTO

#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define HDR 16u
#define WRAP_MARK 0xffffffffu

typedef struct rec_hdr {
    uint32_t tlen;  /* topic bytes, or WRAP_MARK */
    uint32_t plen;  /* payload bytes */
    uint32_t flags; /* MQ_F_* */
    uint32_t size;  /* record bytes incl. header and padding */
} rec_hdr;

struct mq_client {
    struct mosquitto *mosq;     /* owned */
    char url[CF_STR];           /* for messages */
    char host[CF_STR];          /* parsed from url */
    int port;
    int keepalive;              /* seconds */
    /* Subscriptions (input only) */
    char (*filters)[CF_STR];    /* (n_filters) owned copy */
    int n_filters;
    int qos;
    long max_payload;           /* bytes; larger payloads are queued as MQ_F_OVERSIZE */
    /* Ring (input only) */
    uint8_t *buf;               /* (cap) bytes, owned */
    uint64_t cap;               /* bytes, a multiple of 8 */
    uint64_t head, tail;        /* bytes consumed / produced since the start; guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t space;       /* signalled when head moves or on close */
    int efd;                    /* eventfd: ring not empty; -1 for output-only */
    int closing;                /* guarded by mu */
    /* Counters (written under mu) */
    mq_stats st;
};

int mq_available(void) { return 1; }

static int lib_refs;
static pthread_mutex_t lib_mu = PTHREAD_MUTEX_INITIALIZER;

static void lib_ref(int up) {
    pthread_mutex_lock(&lib_mu);
    if (up && lib_refs++ == 0) mosquitto_lib_init();
    if (!up && --lib_refs == 0) mosquitto_lib_cleanup();
    pthread_mutex_unlock(&lib_mu);
}

static void wake(mq_client *c) {
    uint64_t one = 1;
    (void)!write(c->efd, &one, sizeof one);
}

/* ---- Network thread callbacks ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    mq_client *c = obj;
    if (rc != 0) {
        LOG(LG_WARNING, "mqtt", "Broker '%s' refused the connection: %s.", c->url, mosquitto_connack_string(rc));
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->st.connects++;
    c->st.connected = 1;
    pthread_mutex_unlock(&c->mu);
    LOG(LG_NOTICE, "mqtt", "Connected to '%s'%s.", c->url, c->n_filters ? "; subscribing" : "");
    if (c->n_filters) {
        char *subs[CF_MAX_TOPICS];
        for (int i = 0; i < c->n_filters; i++) subs[i] = c->filters[i];
        int r = mosquitto_subscribe_multiple(mosq, NULL, c->n_filters, subs, c->qos, 0, NULL);
        if (r != MOSQ_ERR_SUCCESS)
            LOG(LG_WARNING, "mqtt", "Cannot subscribe on '%s': %s.", c->url, mosquitto_strerror(r));
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted) {
    (void)mosq, (void)mid;
    mq_client *c = obj;
    for (int i = 0; i < n; i++)
        if (granted[i] > 2)
            LOG(LG_WARNING, "mqtt", "Broker '%s' refused the subscription to '%s'.", c->url,
                i < c->n_filters ? c->filters[i] : "?");
    pthread_mutex_lock(&c->mu);
    c->st.subscribed = 1;
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    mq_client *c = obj;
    pthread_mutex_lock(&c->mu);
    int was = c->st.connected, closing = c->closing;
    c->st.connected = 0;
    c->st.subscribed = 0;
    if (was) c->st.disconnects++;
    pthread_mutex_unlock(&c->mu);
    if (was && !closing)
        LOG(LG_WARNING, "mqtt", "Lost the connection to '%s' (%s); reconnecting with backoff.", c->url,
            rc == MOSQ_ERR_CONN_LOST ? "connection lost" : mosquitto_strerror(rc));
}

/* Bytes of a record of t topic and p payload bytes, padded to 8. */
static uint64_t rec_size(size_t t, size_t p) { return (HDR + t + p + 7) & ~(uint64_t)7; }

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m) {
    (void)mosq;
    mq_client *c = obj;
    size_t tlen = m->topic ? strlen(m->topic) : 0;
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    uint32_t flags = 0;
    if ((long)plen > c->max_payload) { flags |= MQ_F_OVERSIZE; plen = 0; }
    /* A topic that would take more than a quarter of the ring is not kept
     * either (MQTT allows 64 KiB topics); the drop is still counted. */
    if (rec_size(tlen, plen) > c->cap / 4) { flags |= MQ_F_OVERSIZE; plen = 0; tlen = 0; }
    uint64_t need = rec_size(tlen, plen);

    pthread_mutex_lock(&c->mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    uint64_t off, waste;
    for (;;) {
        off = c->tail % c->cap;
        waste = c->cap - off < need ? c->cap - off : 0;
        if (c->cap - (c->tail - c->head) >= waste + need || c->closing) break;
        if (pthread_cond_timedwait(&c->space, &c->mu, &until) == ETIMEDOUT) break;
    }
    if (c->closing || c->cap - (c->tail - c->head) < waste + need) {
        if (!c->closing) c->st.queue_full++;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    pthread_mutex_unlock(&c->mu);

    /* [tail, tail + waste + need) is free and only this thread writes it. */
    if (waste >= HDR) {
        rec_hdr w = {WRAP_MARK, 0, 0, (uint32_t)waste};
        memcpy(c->buf + off, &w, HDR);
    }
    uint8_t *r = c->buf + (waste ? 0 : off);
    rec_hdr h = {(uint32_t)tlen, (uint32_t)plen, flags, (uint32_t)need};
    memcpy(r, &h, HDR);
    if (tlen) memcpy(r + HDR, m->topic, tlen);
    if (plen) memcpy(r + HDR + tlen, m->payload, plen);

    /* Empty at the moment the record becomes visible, not when its space
     * was reserved: the loop may have drained the ring in between and gone
     * to sleep, and nothing else would wake it for this record. */
    pthread_mutex_lock(&c->mu);
    int was_empty = c->head == c->tail;
    c->tail += waste + need;
    pthread_mutex_unlock(&c->mu);
    if (was_empty) wake(c);
}

/* ---- Open / close ---- */

/* Splits mqtt[s]://HOST[:PORT] into c->host and c->port; *tls set for mqtts. */
static int parse_url(mq_client *c, const char *url, int *tls) {
    const char *h;
    if (!strncmp(url, "mqtt://", 7)) { h = url + 7; *tls = 0; c->port = 1883; }
    else if (!strncmp(url, "mqtts://", 8)) { h = url + 8; *tls = 1; c->port = 8883; }
    else return 0;
    size_t n = strcspn(h, ":/");
    if (n == 0 || n >= sizeof c->host) return 0;
    memcpy(c->host, h, n);
    c->host[n] = 0;
    if (h[n] == ':') {
        char *end;
        long p = strtol(h + n + 1, &end, 10);
        if (p < 1 || p > 65535 || (*end && *end != '/')) return 0;
        c->port = (int)p;
    }
    return 1;
}

mq_client *mq_open(const char *url, const cf_mqtt *m, const char *client_id,
                   const char (*filters)[CF_STR], int n_filters, long max_payload,
                   char *errbuf, size_t errlen) {
    mq_client *c = rc_calloc(1, sizeof *c);
    if (!c) { snprintf(errbuf, errlen, "Out of memory."); return NULL; }
    int tls = 0, r;
    c->efd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->space, NULL);
    snprintf(c->url, sizeof c->url, "%s", url);
    lib_ref(1);
    if (!parse_url(c, url, &tls)) {
        snprintf(errbuf, errlen, "Invalid MQTT broker URL '%s': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT].", url);
        goto err;
    }
    c->keepalive = m->keepalive;
    c->qos = m->qos;
    c->max_payload = max_payload;
    if (n_filters > 0) {
        c->n_filters = n_filters;
        c->filters = rc_calloc((size_t)n_filters, CF_STR);
        c->cap = ((uint64_t)m->queue_bytes + 7) & ~(uint64_t)7;
        c->buf = rc_malloc(c->cap);
        if (!c->filters || !c->buf) { snprintf(errbuf, errlen, "Out of memory for the MQTT queue."); goto err; }
        memcpy(c->filters, filters, (size_t)n_filters * CF_STR);
        if ((c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
            snprintf(errbuf, errlen, "Cannot create an eventfd for '%s': %s.", url, strerror(errno));
            goto err;
        }
    }
    c->mosq = mosquitto_new(client_id, !!m->clean_session, c);
    if (!c->mosq) { snprintf(errbuf, errlen, "Cannot create an MQTT client for '%s': %s.", url, strerror(errno)); goto err; }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    if (n_filters > 0) {
        mosquitto_message_callback_set(c->mosq, on_message);
        mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    }
    mosquitto_reconnect_delay_set(c->mosq, (unsigned)m->reconnect_min, (unsigned)m->reconnect_max, true);
    if (m->username[0] &&
        (r = mosquitto_username_pw_set(c->mosq, m->username, m->password[0] ? m->password : NULL))) {
        snprintf(errbuf, errlen, "Cannot set the MQTT credentials for '%s': %s.", url, mosquitto_strerror(r));
        goto err;
    }
    if (tls || m->tls_ca[0] || m->tls_cert[0]) {
        const char *capath = m->tls_ca[0] ? NULL : "/etc/ssl/certs";
        r = mosquitto_tls_set(c->mosq, m->tls_ca[0] ? m->tls_ca : NULL, capath, m->tls_cert[0] ? m->tls_cert : NULL,
                              m->tls_key[0] ? m->tls_key : NULL, NULL);
        if (r) {
            snprintf(errbuf, errlen, "Cannot set up TLS for '%s' (tls_ca '%s', tls_cert '%s', tls_key '%s'): %s.", url,
                     m->tls_ca, m->tls_cert, m->tls_key, r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
            goto err;
        }
        if (m->tls_insecure) mosquitto_tls_insecure_set(c->mosq, true);
    }
    /* The network thread first, then the connect: a refused first attempt
     * is retried there with the backoff, so the broker may come up later. */
    if ((r = mosquitto_loop_start(c->mosq)) != MOSQ_ERR_SUCCESS) {
        snprintf(errbuf, errlen, "Cannot start the MQTT thread for '%s': %s.", url, mosquitto_strerror(r));
        goto err;
    }
    r = mosquitto_connect_async(c->mosq, c->host, c->port, c->keepalive);
    if (r != MOSQ_ERR_SUCCESS)
        LOG(LG_WARNING, "mqtt", "Cannot connect to '%s' yet (%s); retrying in the background.", url,
            r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r));
    return c;
err:
    mq_close(c);
    return NULL;
}

void mq_close(mq_client *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    pthread_cond_broadcast(&c->space);
    pthread_mutex_unlock(&c->mu);
    if (c->mosq) {
        mosquitto_disconnect(c->mosq);
        /* Not forced: a cancelled thread could die holding c->mu. The
         * disconnect ends its loop, and libmosquitto wakes it from a
         * reconnect backoff sleep; on_message returns at once on closing. */
        mosquitto_loop_stop(c->mosq, false);
        mosquitto_destroy(c->mosq);
    }
    if (c->efd >= 0) close(c->efd);
    pthread_cond_destroy(&c->space);
    pthread_mutex_destroy(&c->mu);
    rc_free(c->buf);
    rc_free(c->filters);
    rc_free(c);
    lib_ref(0);
}

/* ---- Loop thread ---- */

int mq_fd(const mq_client *c) { return c->efd; }

size_t mq_drain(mq_client *c, size_t max, int64_t until_ns, mq_msg_cb *cb, void *ctx) {
    uint64_t n_ev;
    (void)!read(c->efd, &n_ev, sizeof n_ev);
    size_t done = 0;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        uint64_t head = c->head, tail = c->tail;
        pthread_mutex_unlock(&c->mu);
        if (head == tail) return done;
        int budget_left = 1;
        while (head < tail) {
            if (done >= max || (done > 0 && lg_mono_ns() > until_ns)) { budget_left = 0; break; }
            uint64_t off = head % c->cap;
            if (c->cap - off < HDR) { head += c->cap - off; continue; }
            rec_hdr h;
            memcpy(&h, c->buf + off, HDR);
            if (h.tlen == WRAP_MARK) { head += h.size; continue; }
            const uint8_t *r = c->buf + off;
            cb(ctx, (const char *)r + HDR, h.tlen, r + HDR + h.tlen, h.plen, h.flags);
            head += h.size;
            done++;
        }
        pthread_mutex_lock(&c->mu);
        c->head = head;
        int more = c->head != c->tail;
        pthread_cond_signal(&c->space);
        pthread_mutex_unlock(&c->mu);
        if (!budget_left) {
            /* Come back on the next loop round, after the other sockets. */
            if (more) wake(c);
            return done;
        }
    }
}

int mq_publish(mq_client *c, const char *topic, const void *payload, size_t n, int qos, int retain) {
    pthread_mutex_lock(&c->mu);
    int up = c->st.connected;
    pthread_mutex_unlock(&c->mu);
    int r = up ? mosquitto_publish(c->mosq, NULL, topic, (int)n, payload, qos, !!retain) : MOSQ_ERR_NO_CONN;
    pthread_mutex_lock(&c->mu);
    if (r == MOSQ_ERR_SUCCESS) c->st.published++;
    else c->st.publish_fail++;
    pthread_mutex_unlock(&c->mu);
    return r == MOSQ_ERR_SUCCESS;
}

void mq_get_stats(mq_client *c, mq_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

#else /* !HAVE_MOSQUITTO */

struct mq_client {
    int unused;
};

int mq_available(void) { return 0; }

mq_client *mq_open(const char *url, const cf_mqtt *m, const char *client_id,
                   const char (*filters)[CF_STR], int n_filters, long max_payload,
                   char *errbuf, size_t errlen) {
    (void)m, (void)client_id, (void)filters, (void)n_filters, (void)max_payload;
    snprintf(errbuf, errlen, "Cannot use '%s': this rwkvcastd was built without MQTT support "
             "(install libmosquitto-dev and rebuild).", url);
    return NULL;
}
void mq_close(mq_client *c) { (void)c; }
int mq_fd(const mq_client *c) { (void)c; return -1; }
size_t mq_drain(mq_client *c, size_t max, int64_t until_ns, mq_msg_cb *cb, void *ctx) {
    (void)c, (void)max, (void)until_ns, (void)cb, (void)ctx;
    return 0;
}
int mq_publish(mq_client *c, const char *topic, const void *payload, size_t n, int qos, int retain) {
    (void)c, (void)topic, (void)payload, (void)n, (void)qos, (void)retain;
    return 0;
}
void mq_get_stats(mq_client *c, mq_stats *out) { (void)c; memset(out, 0, sizeof *out); }

#endif
