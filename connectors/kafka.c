/*
 * kafka.c: the Kafka consumer group and the changelog (kafka.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/kafka.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#ifdef HAVE_RDKAFKA

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

struct kf_client {
    rd_kafka_t *cons;           /* group consumer of the input topic */
    rd_kafka_t *prod;           /* changelog and output producer */
    rd_kafka_queue_t *q;        /* the consumer's queue (messages, rebalances, errors) */
    int pipefd[2];              /* librdkafka writes a byte to [1] when q becomes non-empty */
    char brokers[CF_STR];
    char topic[CF_STR];         /* input topic */
    cf_kafka k;                 /* settings (copy) */
    kf_parts_cb *on_assign, *on_revoke;
    void *ctx;
    int delivery_failed;        /* a record was not acknowledged since the last kf_flush */
    int closing;
};

int kf_available(void) { return 1; }

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errbuf, size_t errlen) {
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) == RD_KAFKA_CONF_OK) return 1;
    snprintf(errbuf, errlen, "Kafka setting '%s' (%.200s): %.200s.", k, v, e);
    return 0;
}

/* Partitions of our input topic in a librdkafka list. */
static int parts_of(kf_client *c, const rd_kafka_topic_partition_list_t *l, int32_t *out) {
    int n = 0;
    for (int i = 0; i < l->cnt && n < KF_MAX_PARTITIONS; i++)
        if (!strcmp(l->elems[i].topic, c->topic)) out[n++] = l->elems[i].partition;
    return n;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l, void *opaque) {
    kf_client *c = opaque;
    static int32_t parts[KF_MAX_PARTITIONS];
    int n = parts_of(c, l, parts);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* Restore first, then consume (Kafka Streams' order). */
        c->on_assign(c->ctx, parts, n);
        rd_kafka_assign(rk, l);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            LOG(LG_WARNING, "kafka", "Rebalance error: %s; giving up the partitions.", rd_kafka_err2str(err));
        c->on_revoke(c->ctx, parts, n);
        rd_kafka_assign(rk, NULL);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    kf_client *c = opaque;
    if (m->err) {
        c->delivery_failed = 1;
        LOG(LG_WARNING, "kafka", "Record to '%s' [%d] not delivered: %s.", rd_kafka_topic_name(m->rkt),
            (int)m->partition, rd_kafka_err2str(m->err));
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    LOG(level <= 4 ? LG_WARNING : LG_VERBOSE, "kafka", "%s: %s", fac, buf);
}

kf_client *kf_open(const char *brokers, const cf_kafka *k, const char *topic, kf_parts_cb *on_assign,
                   kf_parts_cb *on_revoke, void *ctx, char *errbuf, size_t errlen) {
    kf_client *c = rc_calloc(1, sizeof *c);
    if (!c) { snprintf(errbuf, errlen, "Out of memory."); return NULL; }
    c->pipefd[0] = c->pipefd[1] = -1;
    snprintf(c->brokers, sizeof c->brokers, "%s", brokers);
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->k = *k;
    c->on_assign = on_assign;
    c->on_revoke = on_revoke;
    c->ctx = ctx;
    char num[32], e[512];
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d", (int)(k->session_timeout * 1000));
    /* Offsets move only through kf_commit, after the changelog holds the
     * states they cover; a partition nobody committed starts at its start. */
    if (!set(cc, "bootstrap.servers", brokers, errbuf, errlen) || !set(cc, "group.id", k->group_id, errbuf, errlen) ||
        !set(cc, "client.id", k->client_id, errbuf, errlen) || !set(cc, "enable.auto.commit", "false", errbuf, errlen) ||
        !set(cc, "enable.auto.offset.store", "false", errbuf, errlen) ||
        !set(cc, "auto.offset.reset", "earliest", errbuf, errlen) ||
        !set(cc, "session.timeout.ms", num, errbuf, errlen) ||
        !set(cc, "heartbeat.interval.ms", k->session_timeout >= 3 ? "1000" : "300", errbuf, errlen) ||
        !set(pc, "bootstrap.servers", brokers, errbuf, errlen) || !set(pc, "client.id", k->client_id, errbuf, errlen) ||
        !set(pc, "linger.ms", "5", errbuf, errlen) || !set(pc, "acks", "all", errbuf, errlen)) {
        rd_kafka_conf_destroy(cc);
        rd_kafka_conf_destroy(pc);
        goto err;
    }
    rd_kafka_conf_set_opaque(cc, c);
    rd_kafka_conf_set_opaque(pc, c);
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rd_kafka_conf_set_log_cb(cc, on_log);
    rd_kafka_conf_set_log_cb(pc, on_log);
    if (!(c->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof e))) {
        rd_kafka_conf_destroy(pc);
        rd_kafka_conf_destroy(cc);
        snprintf(errbuf, errlen, "Cannot create the Kafka producer for '%s': %s.", brokers, e);
        goto err;
    }
    if (!(c->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof e))) {
        rd_kafka_conf_destroy(cc);
        snprintf(errbuf, errlen, "Cannot create the Kafka consumer for '%s': %s.", brokers, e);
        goto err;
    }
    rd_kafka_poll_set_consumer(c->cons);
    c->q = rd_kafka_queue_get_consumer(c->cons);
    if (pipe2(c->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(errbuf, errlen, "Cannot create a pipe for the Kafka consumer: %s.", strerror(errno));
        goto err;
    }
    rd_kafka_queue_io_event_enable(c->q, c->pipefd[1], "1", 1);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t r = rd_kafka_subscribe(c->cons, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (r) {
        snprintf(errbuf, errlen, "Cannot subscribe to Kafka topic '%s': %s.", topic, rd_kafka_err2str(r));
        goto err;
    }
    return c;
err:
    kf_close(c);
    return NULL;
}

void kf_close(kf_client *c) {
    if (!c) return;
    c->closing = 1;
    if (c->cons) {
        /* Leaves the group: the revoke callback saves states and offsets. */
        rd_kafka_consumer_close(c->cons);
        if (c->q) rd_kafka_queue_destroy(c->q);
        rd_kafka_destroy(c->cons);
    }
    if (c->prod) {
        rd_kafka_flush(c->prod, 5000);
        rd_kafka_destroy(c->prod);
    }
    for (int i = 0; i < 2; i++)
        if (c->pipefd[i] >= 0) close(c->pipefd[i]);
    rc_free(c);
}

int kf_fd(const kf_client *c) { return c->pipefd[0]; }

size_t kf_poll(kf_client *c, size_t max, int64_t until_ns, kf_msg_cb *cb, void *ctx) {
    char drain[64];
    while (read(c->pipefd[0], drain, sizeof drain) > 0) {
    }
    size_t done = 0;
    while (done < max && (done == 0 || lg_mono_ns() < until_ns)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cons, 0);
        if (!m) break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                LOG(LG_WARNING, "kafka", "Consumer: %s.", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_timestamp_type_t tt;
        int64_t ms = rd_kafka_message_timestamp(m, &tt);
        kf_msg k = {m->key, m->key_len, m->payload, m->len, m->partition, m->offset,
                    tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ms < 0 ? 0 : (double)ms * 1e-3};
        cb(ctx, &k);
        rd_kafka_message_destroy(m);
        done++;
    }
    /* More may be queued than this burst took: come back next round. */
    if (rd_kafka_queue_length(c->q) > 0) (void)!write(c->pipefd[1], "1", 1);
    rd_kafka_poll(c->prod, 0); /* delivery reports */
    return done;
}

int kf_commit(kf_client *c, const int32_t *parts, const int64_t *next_offset, int n) {
    if (n == 0) return 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, c->topic, parts[i])->offset = next_offset[i];
    rd_kafka_resp_err_t r = rd_kafka_commit(c->cons, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    if (r) LOG(LG_WARNING, "kafka", "Offset commit to group '%s' failed: %s.", c->k.group_id, rd_kafka_err2str(r));
    return r == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int produce(kf_client *c, const char *topic, int32_t part, const char *key, size_t klen, const void *val,
                   size_t vlen) {
    for (int tries = 0; tries < 100; tries++) {
        rd_kafka_resp_err_t r = rd_kafka_producev(
            c->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!r) return 1;
        if (r != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            LOG(LG_WARNING, "kafka", "Cannot produce to '%s': %s.", topic, rd_kafka_err2str(r));
            c->delivery_failed = 1;
            return 0;
        }
        rd_kafka_poll(c->prod, 10);
    }
    c->delivery_failed = 1;
    return 0;
}

int kf_changelog_put(kf_client *c, int32_t part, const char *key, size_t klen, const void *val, size_t vlen) {
    return produce(c, c->k.changelog_topic, part, key, klen, val, vlen);
}

int kf_produce(kf_client *c, const char *topic, const char *key, size_t klen, const void *val, size_t vlen) {
    return produce(c, topic, RD_KAFKA_PARTITION_UA, key, klen, val, vlen);
}

int kf_flush(kf_client *c, double timeout_s) {
    rd_kafka_resp_err_t r = rd_kafka_flush(c->prod, (int)(timeout_s * 1000));
    int ok = !r && !c->delivery_failed;
    c->delivery_failed = 0;
    return ok;
}

long kf_changelog_read(kf_client *c, const int32_t *parts, int n, double timeout_s, kf_record_cb *cb, void *ctx) {
    if (n == 0) return 0;
    int64_t until = lg_mono_ns() + (int64_t)(timeout_s * 1e9);
    char e[512], gid[CF_STR + 32];
    long got = 0;
    int64_t hi[KF_MAX_PARTITIONS], lo;
    int open_parts = 0;
    /* Where each partition ends now: records written later are not ours to wait for. */
    for (int i = 0; i < n; i++) {
        hi[i] = 0;
        rd_kafka_resp_err_t r;
        do {
            r = rd_kafka_query_watermark_offsets(c->prod, c->k.changelog_topic, parts[i], &lo, &hi[i], 2000);
        } while (r && lg_mono_ns() < until);
        if (r) {
            LOG(LG_WARNING, "kafka", "Cannot read the end of changelog '%s' [%d]: %s.", c->k.changelog_topic,
                (int)parts[i], rd_kafka_err2str(r));
            return -1;
        }
        if (hi[i] > lo) open_parts++;
        else hi[i] = -1;
    }
    if (!open_parts) return 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(gid, sizeof gid, "%s-restore", c->k.group_id);
    if (!set(conf, "bootstrap.servers", c->brokers, e, sizeof e) || !set(conf, "group.id", gid, e, sizeof e) ||
        !set(conf, "enable.auto.commit", "false", e, sizeof e) ||
        !set(conf, "enable.partition.eof", "false", e, sizeof e)) {
        LOG(LG_WARNING, "kafka", "%s", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        LOG(LG_WARNING, "kafka", "Cannot create the changelog reader: %s.", e);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        if (hi[i] >= 0) rd_kafka_topic_partition_list_add(l, c->k.changelog_topic, parts[i])->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    while (open_parts > 0 && lg_mono_ns() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            int i = 0;
            while (i < n && parts[i] != m->partition) i++;
            if (i < n && hi[i] >= 0 && m->offset < hi[i]) {
                cb(ctx, m->partition, m->key, m->key_len, m->payload, m->len);
                got++;
                if (m->offset + 1 >= hi[i]) {
                    hi[i] = -1;
                    open_parts--;
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return open_parts ? -1 : got;
}

#else /* !HAVE_RDKAFKA */

struct kf_client {
    int unused;
};

int kf_available(void) { return 0; }
kf_client *kf_open(const char *brokers, const cf_kafka *k, const char *topic, kf_parts_cb *on_assign,
                   kf_parts_cb *on_revoke, void *ctx, char *errbuf, size_t errlen) {
    (void)k, (void)topic, (void)on_assign, (void)on_revoke, (void)ctx;
    snprintf(errbuf, errlen, "Cannot use 'kafka://%s': this rwkvcastd was built without Kafka support "
             "(install librdkafka-dev and rebuild).", brokers);
    return NULL;
}
void kf_close(kf_client *c) { (void)c; }
int kf_fd(const kf_client *c) { (void)c; return -1; }
size_t kf_poll(kf_client *c, size_t max, int64_t until_ns, kf_msg_cb *cb, void *ctx) {
    (void)c, (void)max, (void)until_ns, (void)cb, (void)ctx;
    return 0;
}
int kf_commit(kf_client *c, const int32_t *parts, const int64_t *next_offset, int n) {
    (void)c, (void)parts, (void)next_offset, (void)n;
    return 0;
}
int kf_changelog_put(kf_client *c, int32_t part, const char *key, size_t klen, const void *val, size_t vlen) {
    (void)c, (void)part, (void)key, (void)klen, (void)val, (void)vlen;
    return 0;
}
int kf_produce(kf_client *c, const char *topic, const char *key, size_t klen, const void *val, size_t vlen) {
    (void)c, (void)topic, (void)key, (void)klen, (void)val, (void)vlen;
    return 0;
}
int kf_flush(kf_client *c, double timeout_s) { (void)c, (void)timeout_s; return 0; }
long kf_changelog_read(kf_client *c, const int32_t *parts, int n, double timeout_s, kf_record_cb *cb, void *ctx) {
    (void)c, (void)parts, (void)n, (void)timeout_s, (void)cb, (void)ctx;
    return -1;
}

#endif
