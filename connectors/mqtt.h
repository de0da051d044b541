/*
 * mqtt.h: MQTT connections of the daemon (libmosquitto): an input that
 * subscribes to topic filters and hands every message to the event loop,
 * and an output that publishes forecasts and retained alert levels.
 * Prefix: mq_.
 *
 * Threads: each connection runs libmosquitto's own network thread
 * (mosquitto_loop_start), which connects, reconnects with exponential
 * backoff (mqtt.reconnect_min doubling to reconnect_max), keeps the session
 * alive and receives. So a broker that is down, slow or restarting never
 * stalls the daemon's loop. The network thread copies each message into a
 * fixed ring (mqtt.queue_bytes, allocated once) and wakes the loop through
 * an eventfd; the loop thread drains the ring with mq_drain. When the ring
 * is full the network thread waits (up to 1 s, then the message is
 * dropped and counted): with QoS 1 that holds the broker's flow back
 * instead of losing messages. mq_publish may be called from the loop
 * thread while the network thread runs (libmosquitto locks internally).
 *
 * Sessions: with clean_session false and a fixed client id, the broker
 * keeps the subscriptions and queues QoS 1/2 messages while the daemon is
 * away (restart, broker restart with persistence), and delivers them on
 * reconnect.
 *
 * Build: without libmosquitto (HAVE_MOSQUITTO undefined) mq_open fails
 * with a message saying so; everything else compiles.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef MQTT_H
#define MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct mq_client mq_client;

/* Flags of a drained message. */
#define MQ_F_OVERSIZE 1u /* payload above max_payload: only the topic was kept */

/* One message: topic and payload borrowed from the ring until the callback returns. */
typedef void mq_msg_cb(void *ctx, const char *topic, size_t tlen, const uint8_t *payload, size_t plen,
                       unsigned flags);

/* Counters of one connection (read by the loop thread; approximate while running). */
typedef struct mq_stats {
    uint64_t connects;      /* successful CONNACKs */
    uint64_t disconnects;   /* connections lost (or closed) */
    uint64_t queue_full;    /* messages dropped: the ring stayed full for 1 s */
    uint64_t published;     /* mq_publish calls the library accepted */
    uint64_t publish_fail;  /* mq_publish calls refused (not connected, or an error) */
    int connected;          /* 1 while a session is up */
    int subscribed;         /* 1 once the broker acknowledged the subscriptions of this session */
} mq_stats;

/*
 * Opens a connection to url (mqtt[s]://HOST[:PORT]) with the session,
 * credential and TLS settings of m, under client id client_id; when
 * n_filters > 0 it subscribes to them at m->qos on every (re)connect and
 * keeps a ring of m->queue_bytes, messages larger than max_payload are
 * queued as MQ_F_OVERSIZE. Starts the network thread; the first connect
 * is tried at once and retried in the background when it fails, so a
 * broker that is not up yet is not an error. Returns NULL with errbuf
 * filled when the URL, the TLS files or the library refuse.
 * Free with mq_close. Loop thread.
 */
mq_client *mq_open(const char *url, const cf_mqtt *m, const char *client_id,
                   const char (*filters)[CF_STR], int n_filters, long max_payload,
                   char *errbuf, size_t errlen);
/* Disconnects, stops the network thread and frees everything. NULL is fine. */
void mq_close(mq_client *c);

/* The eventfd that becomes readable when the ring holds messages; -1 for
 * an output-only connection. Register it with ev_add_io. */
int mq_fd(const mq_client *c);
/*
 * Delivers queued messages to cb in arrival order, at most max of them and
 * until lg_mono_ns() passes until_ns (at least one is delivered). When
 * messages remain, the eventfd stays readable. Returns the number
 * delivered. Loop thread.
 */
size_t mq_drain(mq_client *c, size_t max, int64_t until_ns, mq_msg_cb *cb, void *ctx);

/* Publishes n bytes on topic at qos with the retain flag. Returns 1 when
 * the library took it; 0 when not connected (the message is not queued,
 * so a broker outage cannot grow memory) or on error. Loop thread. */
int mq_publish(mq_client *c, const char *topic, const void *payload, size_t n, int qos, int retain);

/* Copies the counters. */
void mq_get_stats(mq_client *c, mq_stats *out);

/* 1 when built with libmosquitto. */
int mq_available(void);

#endif
