/*
 * kafka_mock.c: a Kafka cluster for the end-to-end tests, hosted by
 * librdkafka's mock cluster (rd_kafka_mock_cluster_new), since Debian
 * packages no broker. The daemons under test connect to it over TCP on
 * 127.0.0.1 like to any cluster; consumer groups, offset commits and
 * producing work as on a real one.
 *
 *   kafka_mock TOPIC:PARTITIONS ...
 *
 * creates the topics, prints "BOOTSTRAP host:port,..." and then reads
 * commands on stdin, one per line:
 *   P TOPIC KEY VALUE   produce VALUE (the rest of the line) with KEY, the
 *                       partition chosen by librdkafka's default partitioner
 *   X TOPIC KEYHEX VALHEX  the same with key and value in hex, any bytes;
 *                       KEYHEX "-" produces a message without a key, "." one
 *                       with an empty key
 *   F                   wait until everything produced is acknowledged,
 *                       then print "OK <records delivered so far>"
 * and exits on EOF. Errors go to stderr, exit status 1.
 *
 * SPDX-License-Identifier: MIT
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long delivered;

/* Decodes hex in place; returns the byte count, -1 on a bad digit. */
static long unhex(char *s) {
    size_t n = strlen(s);
    if (n % 2) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        s[i] = (char)v;
    }
    return (long)(n / 2);
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) fprintf(stderr, "kafka_mock: delivery failed: %s\n", rd_kafka_err2str(m->err));
    else delivered++;
}

int main(int argc, char **argv) {
    char err[512];
    rd_kafka_conf_t *mc = rd_kafka_conf_new();
    rd_kafka_conf_set(mc, "log_level", "3", err, sizeof err);
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, mc, err, sizeof err);
    if (!host) { fprintf(stderr, "kafka_mock: %s\n", err); return 1; }
    rd_kafka_mock_cluster_t *cl = rd_kafka_mock_cluster_new(host, 1);
    if (!cl) { fprintf(stderr, "kafka_mock: cannot create the mock cluster\n"); return 1; }
    for (int i = 1; i < argc; i++) {
        char name[256];
        int parts = 0;
        if (sscanf(argv[i], "%255[^:]:%d", name, &parts) != 2 || parts < 1) {
            fprintf(stderr, "kafka_mock: bad topic '%s' (want NAME:PARTITIONS)\n", argv[i]);
            return 1;
        }
        if (rd_kafka_mock_topic_create(cl, name, parts, 1)) {
            fprintf(stderr, "kafka_mock: cannot create topic '%s'\n", name);
            return 1;
        }
    }
    const char *boot = rd_kafka_mock_cluster_bootstraps(cl);
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(pc, "bootstrap.servers", boot, err, sizeof err) ||
        rd_kafka_conf_set(pc, "linger.ms", "2", err, sizeof err)) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, on_dr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    if (!prod) { fprintf(stderr, "kafka_mock: %s\n", err); return 1; }
    printf("BOOTSTRAP %s\n", boot);
    fflush(stdout);
    static char line[1 << 20];
    int rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == 'F') {
            rd_kafka_flush(prod, 30000);
            printf("OK %ld\n", delivered);
            fflush(stdout);
            continue;
        }
        char *topic = strtok(line + 1, " "), *key = strtok(NULL, " "), *val = strtok(NULL, "");
        if ((line[0] != 'P' && line[0] != 'X') || !topic || !key) {
            fprintf(stderr, "kafka_mock: bad command\n");
            rc = 1;
            continue;
        }
        if (!val) val = "";
        long klen = (long)strlen(key), vlen = (long)strlen(val);
        if (line[0] == 'X') {
            if (!strcmp(key, ".")) key[0] = 0;
            klen = strcmp(key, "-") ? unhex(key) : 0;
            vlen = unhex(val);
            if (klen < 0 || vlen < 0) { fprintf(stderr, "kafka_mock: bad hex\n"); rc = 1; continue; }
            if (!strcmp(key, "-")) key = NULL;
        }
        for (;;) {
            rd_kafka_resp_err_t r = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                                                      RD_KAFKA_V_VALUE(val, (size_t)vlen),
                                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (r == RD_KAFKA_RESP_ERR__QUEUE_FULL) { rd_kafka_poll(prod, 10); continue; }
            if (r) { fprintf(stderr, "kafka_mock: produce: %s\n", rd_kafka_err2str(r)); rc = 1; }
            break;
        }
        rd_kafka_poll(prod, 0);
    }
    rd_kafka_flush(prod, 30000);
    rd_kafka_destroy(prod);
    rd_kafka_mock_cluster_destroy(cl);
    rd_kafka_destroy(host);
    return rc;
}
