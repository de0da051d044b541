/*
 * connector_load.c: pushes N one-sample messages for S series into a
 * running rwkvcastd through one of its inputs, as fast as the transport
 * takes them, for bench/bench_connectors.py (bench/RESULTS.md "Inputs").
 *
 *   connector_load --zmq ENDPOINT     msgpack {"s","t","v"} on PUSH (to a PULL input)
 *   connector_load --mqtt HOST:PORT   JSON {"t","v"} on topic PREFIX<series> (--qos)
 *   connector_load --kafka BROKERS --topic T   JSON {"t","v"}, key = series
 *   common: -n N (messages), -s S (series), --t0 T (first time, seconds)
 *
 * Sample k of series i has t = t0 + 60 k, so every message is accepted.
 * The same payload shape (one sample per message) on every transport, so
 * the daemon's per-message cost is what is compared. Prints the send time.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/log.h"
#include "connectors/wire.h"
#ifdef HAVE_MOSQUITTO
#include <mosquitto.h>
#endif
#ifdef HAVE_RDKAFKA
#include <librdkafka/rdkafka.h>
#endif

static long n_msg = 100000, n_series = 100;
static double t0 = 1.7e9;
static int qos = 0;

#if defined(HAVE_MOSQUITTO) || defined(HAVE_RDKAFKA)
static int json(char *buf, size_t cap, long k) {
    return snprintf(buf, cap, "{\"t\": %.1f, \"v\": %.3f}", t0 + 60.0 * (double)(k / n_series),
                    (double)(k % 97) * 0.5);
}
#endif

static int run_zmq(const char *ep) {
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 0, linger = -1;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, ep)) { fprintf(stderr, "connect %s: %s\n", ep, zmq_strerror(zmq_errno())); return 1; }
    uint8_t buf[256];
    char id[32];
    for (long k = 0; k < n_msg; k++) {
        mp_wr w;
        mp_wr_init(&w, buf, sizeof buf);
        int n = snprintf(id, sizeof id, "s%05ld", k % n_series);
        mp_w_map(&w, 3);
        mp_w_cstr(&w, "s");
        mp_w_str(&w, id, (size_t)n);
        mp_w_kv_f64(&w, "t", t0 + 60.0 * (double)(k / n_series));
        mp_w_kv_f64(&w, "v", (double)(k % 97) * 0.5);
        zmq_send(s, buf, w.len, 0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

#ifdef HAVE_MOSQUITTO
static _Atomic long acked;

static void on_pub(struct mosquitto *m, void *obj, int mid) {
    (void)m, (void)obj, (void)mid;
    acked++;
}

static int run_mqtt(const char *hostport) {
    char host[256];
    int port = 1883;
    snprintf(host, sizeof host, "%s", hostport);
    char *c = strrchr(host, ':');
    if (c) { *c = 0; port = atoi(c + 1); }
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_max_inflight_messages_set(m, 0);
    if (mosquitto_connect(m, host, port, 60)) { fprintf(stderr, "cannot connect to %s\n", hostport); return 1; }
    mosquitto_publish_callback_set(m, on_pub);
    mosquitto_loop_start(m);
    char topic[64], pay[128];
    for (long k = 0; k < n_msg; k++) {
        snprintf(topic, sizeof topic, "bench/s%05ld", k % n_series);
        int n = json(pay, sizeof pay, k);
        /* libmosquitto queues without bound; N small messages fit in memory. */
        if (mosquitto_publish(m, NULL, topic, n, pay, qos, false)) { fprintf(stderr, "publish failed\n"); return 1; }
    }
    /* Every message handed to the broker (QoS 0: written; QoS 1: PUBACKed)
     * before the DISCONNECT, or a QoS 1 message in flight would be lost. */
    int64_t until = lg_mono_ns() + 120000000000LL;
    while (acked < n_msg && lg_mono_ns() < until) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (acked < n_msg) fprintf(stderr, "connector_load: only %ld of %ld acknowledged\n", (long)acked, n_msg);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
#endif

#ifdef HAVE_RDKAFKA
static int run_kafka(const char *brokers, const char *topic) {
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", "5", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) { fprintf(stderr, "%s\n", e); return 1; }
    char key[32], pay[128];
    for (long k = 0; k < n_msg; k++) {
        int kn = snprintf(key, sizeof key, "s%05ld", k % n_series);
        int n = json(pay, sizeof pay, k);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kn),
                                 RD_KAFKA_V_VALUE(pay, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    return 0;
}
#endif

int main(int argc, char **argv) {
    static const struct option opts[] = {{"zmq", 1, 0, 'z'}, {"mqtt", 1, 0, 'm'}, {"kafka", 1, 0, 'k'},
                                         {"topic", 1, 0, 'T'}, {"qos", 1, 0, 'q'}, {"t0", 1, 0, 'o'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *zmq_ep = NULL, *mqtt = NULL, *kafka = NULL, *topic = "metrics";
    int c;
    while ((c = getopt_long(argc, argv, "n:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'z': zmq_ep = optarg; break;
        case 'm': mqtt = optarg; break;
        case 'k': kafka = optarg; break;
        case 'T': topic = optarg; break;
        case 'q': qos = atoi(optarg); break;
        case 'o': t0 = atof(optarg); break;
        case 'n': n_msg = atol(optarg); break;
        case 's': n_series = atol(optarg); break;
        default:
            fprintf(stderr, "usage: connector_load (--zmq EP | --mqtt HOST:PORT [--qos Q] | --kafka BROKERS "
                            "[--topic T]) [-n N] [-s S] [--t0 T]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (n_series < 1 || n_msg < 1) return 2;
    (void)mqtt, (void)kafka, (void)topic; /* unused in a build without the libraries */
    int64_t t = lg_mono_ns();
    int rc = 2;
    if (zmq_ep) rc = run_zmq(zmq_ep);
#ifdef HAVE_MOSQUITTO
    else if (mqtt) rc = run_mqtt(mqtt);
#endif
#ifdef HAVE_RDKAFKA
    else if (kafka) rc = run_kafka(kafka, topic);
#endif
    else fprintf(stderr, "connector_load: no (usable) transport given\n");
    printf("{\"sent\": %ld, \"send_s\": %.3f}\n", n_msg, (double)(lg_mono_ns() - t) * 1e-9);
    return rc;
}
