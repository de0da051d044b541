/*
 * server.h: rwkvcastd itself: wires config, model, engine, registry, checkpoint
 * store, ZeroMQ sockets, control socket, signals and sd_notify around one
 * event loop (docs/PROTOCOL.md).
 *
 * Startup order: model -> engine -> registry -> store (restore every state)
 * -> sockets -> READY=1. Shutdown (SIGTERM/SIGINT): stop intake, flush the
 * engine, STOPPING=1, final checkpoint (bounded by shutdown_timeout), exit.
 *
 * Control protocol (REP; request and reply are one msgpack map each; every
 * reply has "ok", failures add "error": "message"):
 *   {"cmd":"ping"}                      -> pong, version, pid
 *   {"cmd":"stats"}                     -> received (messages), bytes, decoded
 *        (samples), missing (NaN values accepted), dropped {reason: n} with
 *        reasons msgpack type missing_key bad_id inf length oversize frames
 *        old_timestamp limit, dropped_total, series, max_series, steps,
 *        steps_per_s, published, alerts, new_series, evicted, brought_back,
 *        restored, model_reset, forgotten, heap_bytes, model_hash (hex),
 *        uptime, restore_s (reading the store at startup), startup_s (start to
 *        READY), loop_max_s (longest busy loop iteration since the previous
 *        stats request), checkpoint {count failures interval last_time
 *        last_duration (writer, seconds) last_rows busy last_snapshot_s (loop
 *        time the last snapshot took) snapshotting}, queues {engine store}
 *   {"cmd":"series","offset":N,"limit":M} -> total, series [ids] (slot order,
 *        M <= 1000, default 100), next (offset of the next page or nil);
 *        "cursor" is accepted for "offset"
 *   {"cmd":"get","s":ID}                -> s, last_t, score, level, forecast
 *        (the "f." map of the last step, or nil); error if not in memory
 *   {"cmd":"checkpoint"}                -> started, queued (true when a job
 *        was in flight: the new checkpoint begins after it); replies at once
 *   {"cmd":"checkpoint","wait":true}    -> rows, duration, time; the reply
 *        comes once a checkpoint begun after the request has committed
 *   {"cmd":"forget","s":ID}             -> was_loaded; the state is dropped
 *        from memory and deleted from the store
 *   {"cmd":"reload"}                    -> ok, or the config error text
 *
 * Threads: the calling thread runs everything except the store's writer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SERVER_H
#define SERVER_H

#include "config/config.h"

#define DM_VERSION "0.1.0"

/* Runs the daemon on cfg until a stop signal. Returns the process exit code:
 * 0 after a clean stop with the final checkpoint written, 1 on a startup or
 * runtime failure (the reason is logged). */
int dm_run(const cf_config *cfg);

#endif
