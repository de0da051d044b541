/*
 * ingest.h: samples in, forecasts out. Reads ingest frames, decodes them
 * (docs/PROTOCOL.md §1), finds or creates each series' engine slot in the
 * registry (bringing evicted series back from the store, evicting the
 * least recently seen one when the policy says so), queues the sample in
 * the engine, and publishes what the engine steps as "f.<series>" and, on
 * a level change, "a.<series>" (docs/PROTOCOL.md §2). It also fills the
 * slots from the store at startup, so every way a series gets a slot is
 * here. Prefix: ig_.
 *
 * Hot path per sample: rg_find (one hash probe, prefetched a few samples
 * ahead), rg_touch, en_push; results are encoded into d->pub_buf and handed
 * to zmq_send. Nothing here allocates per sample (libzmq itself copies
 * messages above 33 bytes into its own buffers; that is inside the library
 * and bounded by the HWMs).
 *
 * Errors: a bad input is dropped, counted in d->dropped by reason and
 * logged (rate-limited per reason); nothing here fails the daemon.
 *
 * Threads: the event-loop thread only. Every function takes the daemon
 * state (server_internal.h) and writes its "Ingest" section.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/wire.h"
#include "daemon/engine.h"
#include "daemon/eventloop.h"

typedef struct dm dm;

/* Drop reasons: the decoder's (mp_reason 1..6), then ingest's own. */
enum {
    IG_DROP_OVERSIZE = MP_R__COUNT, /* frame above input.max_msg_size */
    IG_DROP_FRAMES,                 /* more than two frames */
    IG_DROP_OLD,                    /* timestamp not after the series' last */
    IG_DROP_LIMIT,                  /* new series beyond series.max (or evict queue full) */
    IG_DROP_TIME,                   /* t outside input.max_future / max_age of the clock */
    IG_DROP_STORE,                  /* an evicted series could not be read back from the store */
    IG_DROP_PAYLOAD,                /* MQTT payload neither a number, nor JSON, nor msgpack */
    IG_DROP_QUEUE,                  /* MQTT message lost: the connector's queue stayed full for 1 s */
    IG_DROP__COUNT
};

/* Samples between decoding one and looking its series up (ingest.c). */
#define IG_LOOKAHEAD 8

/* Static name of a drop reason 1..IG_DROP__COUNT-1 as the stats reply and
 * the log call it ("msgpack", ..., "limit"). */
const char *ig_drop_name(int why);
/* Sum of d->dropped over every reason. */
uint64_t ig_dropped_total(const dm *d);
/* Sets up the per-reason log rate limits (1 per second, bursts of 10). */
void ig_init(dm *d);

/*
 * ev io callback of one ingest socket; ctx is a void *[2] of (dm *, zmq
 * socket). Reads a burst of messages (bounded to 10 ms and 1024
 * messages) and ingests each: one frame is the payload, two are topic and
 * payload, more are dropped ("frames"), as are payloads above
 * input.max_msg_size ("oversize"). Reads nothing once d->stopping is set.
 */
void ig_on_input(ev_loop *l, void *ctx);
/* Decodes one payload (n bytes, borrowed) and ingests every sample of it
 * before returning, so buf may be freed afterwards. */
void ig_ingest_payload(dm *d, const void *buf, size_t n);

/*
 * ev io callback of one MQTT input (connectors/mqtt.h); ctx is a void *[2]
 * of (dm *, mq_client *). Drains a burst of messages (same bounds as
 * ig_on_input). A msgpack payload (docs/PROTOCOL.md §1) is ingested as on
 * ZeroMQ, naming its own series; any other payload is one sample (a bare
 * number or a JSON object, connectors/payload.h) of the series the topic
 * maps to (mqtt.strip_prefix, mqtt.separator). Drops go to the same
 * counters: an unmappable topic is 'bad_id', an unreadable payload
 * 'payload', a JSON "v" of the wrong type 'type', without "v"
 * 'missing_key'.
 */
void ig_on_mqtt(ev_loop *l, void *ctx);

/* Counts and logs (rate-limited) one dropped input of reason why; id may
 * be NULL. For connectors that drop before the decoder (kgroup.c). */
void ig_drop(dm *d, int why, const char *id, size_t len);
/* The drop reason of a refused text payload (connectors/payload.h). */
int ig_pl_drop(int pl_reason_code);
/* Ingests one decoded sample at once (no look-ahead), with the same checks
 * and drops as any other; d->ingest_now must be set. Returns the series'
 * slot when the sample was queued in the engine, RG_NONE when dropped. */
uint32_t ig_ingest_one(dm *d, const mp_sample *m);
/* Loads a state blob (n bytes, as en_slot_save wrote it) into the slot of
 * series id, taking a free slot for a series not in memory. A blob from
 * another model or an unreadable one resets the slot, as at startup.
 * Returns the slot, or RG_NONE when the registry is full. */
uint32_t ig_put_state(dm *d, const char *id, size_t len, const uint8_t *b, size_t n);

/* Engine result callback (ctx is the dm): counts the step and publishes
 * "f.<series>", then the alert events it calls for (alerts.h); with an
 * MQTT output also PREFIX forecast/<series>, and on a level change the
 * retained PREFIX level/<series> and PREFIX alert/<series>. */
void ig_on_result(void *ctx, const en_result *r);
/* series.idle_ttl: moves up to max series that had no sample for idle_ttl
 * seconds to the store (least recently seen first), counting them in
 * d->expired; stops early when the store's queue is full. Returns how many. */
uint32_t ig_expire_idle(dm *d, uint32_t max);
/* Sends one two-frame message "<prefix><id>" + payload on PUB without
 * blocking; counts it in d->published when ZeroMQ took it. prefix is
 * "f." or "a.". */
void ig_publish(dm *d, const char *prefix, const char *id, size_t len, const uint8_t *payload, size_t n);
/* With an MQTT output: one alert event (alerts.c) as the retained level on
 * PREFIX level/<id> and the event on PREFIX alert/<id>: mp (mp_n bytes) is
 * its msgpack map, sent as is, or its JSON form per mqtt.output.format. */
void ig_publish_mqtt_alert(dm *d, const mp_forecast *f, const mp_alert *a, const uint8_t *mp, size_t mp_n);
/* Writes r as the forecast map of docs/PROTOCOL.md §2 (used by `get`). */
void ig_encode_result(const en_result *r, const char *id, size_t len, mp_wr *w);

/*
 * ck_restore callback (ctx is the dm): puts one stored series into a free
 * slot at startup, counted in d->restored; a row stays in the store when
 * the registry is full. A blob from another model, or an unreadable one,
 * leaves the slot reset instead and marked dirty (the next checkpoint
 * replaces the unusable row), is logged and counted in d->model_reset;
 * bringing an evicted series back does the same.
 */
void ig_restore_row(void *ctx, const char *id, size_t len, uint64_t hash, const uint8_t *b, size_t n);

#endif
