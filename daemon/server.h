/*
 * server.h: rwkvcastd itself: wires config, model, engine, registry, checkpoint
 * store, ZeroMQ sockets, control socket, signals and sd_notify around one
 * event loop (docs/PROTOCOL.md). Prefix: dm_.
 *
 * The daemon is four files around one state struct (server_internal.h):
 * server.c (this API: startup, loop wiring, signals, reload, shutdown),
 * ingest.c (samples in, forecasts out), snapshot.c (checkpoints in
 * slices) and control.c (the control API of docs/PROTOCOL.md §3).
 *
 * Startup order: model -> engine -> registry -> store (restore every state)
 * -> sockets -> READY=1. Shutdown (SIGTERM/SIGINT): stop intake, flush the
 * engine, STOPPING=1, final checkpoint (bounded by shutdown_timeout), exit.
 * SIGHUP reloads the configuration (what can change while running).
 *
 * Threads: the calling thread runs everything except the engine's workers
 * and the store's writer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SERVER_H
#define SERVER_H

#include "config/config.h"

#define DM_VERSION "0.1.0"

/* Runs the daemon on cfg (copied; borrowed for the call) until a stop
 * signal. Returns the process exit code: 0 after a clean stop with the
 * final checkpoint written, 1 on a startup or runtime failure (the reason
 * is logged). Installs handlers for SIGTERM, SIGINT and SIGHUP and ignores
 * SIGPIPE; call it once per process. */
int dm_run(const cf_config *cfg);

#endif
