/*
 * kgroup.h: the daemon's side of the Kafka consumer group
 * (connectors/kafka.h): which series this daemon owns, their states in
 * the changelog topic, and offset commits. Prefix: kg_.
 *
 * Ownership: each daemon of the group owns the series whose messages come
 * from the partitions assigned to it (series id = message key, so one
 * series lives in one partition). A slot remembers the partition its
 * series' samples came from.
 *
 * The changelog (kafka.changelog_topic, compacted, as many partitions as
 * the input topic): partition p holds one record per series of input
 * partition p, key = series id, value = the state blob (en_slot_save).
 *   - At every checkpoint (checkpoint_interval) the loop steps every queued
 *     sample, writes the states that changed since the last one, waits for
 *     the brokers to acknowledge them, and only then commits the input
 *     offsets those states cover. A crash (kill -9) therefore replays at
 *     most one interval, from the committed offsets, onto the states the
 *     changelog holds for exactly those offsets.
 *   - A state evicted (series.policy: evict) or expired (series.idle_ttl)
 *     from memory is queued for the changelog as well, so the next commit
 *     covers it too.
 *   - On revoke the same is done for the revoked partitions at once; their
 *     series then leave memory and the local store.
 *   - On assign the new owner reads the assigned partitions of the
 *     changelog to their end and loads the last record of each series
 *     before librdkafka starts fetching the input (Kafka Streams' restore).
 * Since the engine is deterministic per series, the forecasts then
 * continue exactly as if one daemon had seen every sample.
 *
 * Threads: the loop thread only. The changelog writes and the restore
 * block the loop while they run (milliseconds on a local cluster; the
 * restore reads one record per series of the assigned partitions).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KGROUP_H
#define KGROUP_H

#include "common/base.h"
#include "config/config.h"
#include "connectors/wire.h"
#include "daemon/engine.h"
#include "daemon/eventloop.h"

typedef struct dm dm;

/* Joins the group of input in (type kafka) with d->cfg.kafka. RC_OK, or an
 * error with the reason in errbuf. Loop thread, after dm_core_open. */
rc_err kg_open(dm *d, const cf_input *in, char *errbuf, size_t errlen);
/* Leaves the group (saving the owned states and offsets) and frees. */
void kg_close(dm *d);
/* The fd kg_on_input waits on; -1 without a Kafka input. */
int kg_fd(const dm *d);
/* ev io callback (ctx is the dm): a burst of messages (1024 / 10 ms) and
 * any rebalance. A message's key is the series id (none, empty, over 255
 * bytes or not UTF-8: 'bad_id'); its value a bare number or a JSON object
 * as on MQTT (connectors/payload.h), the message timestamp standing in
 * for a missing "t". */
void kg_on_input(ev_loop *l, void *ctx);
/* The checkpoint step described above; called by the checkpoint timer and
 * at shutdown. No-op without a Kafka input. */
void kg_checkpoint(dm *d);
/* Forecast (and, on a level change, alert) of a result to the configured
 * output topics, as JSON keyed by series id. No-op when none is set. */
void kg_on_result(dm *d, const en_result *r, const char *id, size_t len);
/* A slot was given to a new series: it belongs to no partition until a
 * Kafka message of its series arrives. */
void kg_slot_new(dm *d, uint32_t slot);
/* The state of slot (blob b, as en_slot_save wrote it) leaves memory for
 * the local store (eviction, idle expiry): when its series belongs to a
 * partition, the blob is queued for the changelog too; the next
 * checkpoint's flush makes sure it arrived before any commit. */
void kg_slot_leaving(dm *d, uint32_t slot, const char *id, size_t len, const uint8_t *b);
/* Writes the "kafka" entry of the stats reply (a key and a map). */
void kg_write_stats(dm *d, mp_wr *w);

#endif
