/*
 * kafka.h: the Kafka consumer-group input and the changelog of series
 * states (librdkafka). Prefix: kf_.
 *
 * One kf_client holds three librdkafka handles: the group consumer of the
 * input topic (manual offset commits only), a producer (changelog records,
 * and the optional forecast/alert topics) and, while partitions are being
 * taken over, a group-less reader of the changelog. What the daemon does
 * with partitions (daemon/kgroup.h) is behind two callbacks that run on
 * the loop thread inside kf_poll, before librdkafka assigns or after it
 * revokes: the Kafka Streams order, so a new owner restores a partition's
 * states before it consumes the partition.
 *
 * Threads: everything here runs on the loop thread. librdkafka's own
 * threads do the network I/O and the group heartbeats; kf_fd becomes
 * readable when they queued something for kf_poll.
 *
 * Build: without librdkafka (HAVE_RDKAFKA undefined) kf_open fails with a
 * message saying so; everything else compiles.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KAFKA_H
#define KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct kf_client kf_client;

#define KF_MAX_PARTITIONS 1024 /* partitions of the input topic a daemon can own */

/* One consumed message; key and value borrowed until the callback returns. */
typedef struct kf_msg {
    const char *key;    /* NULL when the message has none */
    size_t klen;        /* bytes */
    const uint8_t *val; /* payload, may be NULL with vlen 0 */
    size_t vlen;        /* bytes */
    int32_t partition;  /* of the input topic */
    int64_t offset;     /* its offset */
    double ts;          /* message timestamp, seconds since the epoch; 0 when it has none */
} kf_msg;

typedef void kf_msg_cb(void *ctx, const kf_msg *m);
/* Partitions of the input topic given to (assign) or taken from (revoke)
 * this daemon; called on the loop thread from kf_poll. */
typedef void kf_parts_cb(void *ctx, const int32_t *parts, int n);
/* One changelog record read back (kf_changelog_read). */
typedef void kf_record_cb(void *ctx, int32_t partition, const char *key, size_t klen, const uint8_t *val,
                          size_t vlen);

/*
 * Connects to brokers (HOST:PORT[,...], the URL without kafka://), joins
 * k->group_id and subscribes to topic. on_assign runs before a partition
 * is consumed, on_revoke before it is given up. Returns NULL with errbuf
 * filled when librdkafka refuses the settings. Loop thread.
 */
kf_client *kf_open(const char *brokers, const cf_kafka *k, const char *topic, kf_parts_cb *on_assign,
                   kf_parts_cb *on_revoke, void *ctx, char *errbuf, size_t errlen);
/* Leaves the group (revoking through on_revoke, so states and offsets are
 * saved), then frees everything. NULL is fine. */
void kf_close(kf_client *c);

/* Readable when kf_poll has something to do. */
int kf_fd(const kf_client *c);
/* Serves the consumer: delivers up to max messages to cb (and runs the
 * rebalance callbacks), until lg_mono_ns() passes until_ns. Returns the
 * messages delivered. */
size_t kf_poll(kf_client *c, size_t max, int64_t until_ns, kf_msg_cb *cb, void *ctx);

/* Commits next_offset[i] for partition parts[i] of the input topic,
 * synchronously. 1 on success; 0 with the reason logged. */
int kf_commit(kf_client *c, const int32_t *parts, const int64_t *next_offset, int n);

/* Queues a changelog record (copied) for partition part, key = series id.
 * 1 when queued. */
int kf_changelog_put(kf_client *c, int32_t part, const char *key, size_t klen, const void *val, size_t vlen);
/* Queues a message (copied) on topic with key, partitioned by librdkafka. */
int kf_produce(kf_client *c, const char *topic, const char *key, size_t klen, const void *val, size_t vlen);
/* Waits up to timeout_s for every queued record; 1 when all were
 * acknowledged by the brokers since the last call, 0 otherwise. */
int kf_flush(kf_client *c, double timeout_s);

/* Reads partitions parts of the changelog from the start to their end as
 * of the call, delivering every record in order. Returns the records
 * read, or -1 when timeout_s passed first (what was read was delivered). */
long kf_changelog_read(kf_client *c, const int32_t *parts, int n, double timeout_s, kf_record_cb *cb, void *ctx);

/* 1 when built with librdkafka. */
int kf_available(void);

#endif
