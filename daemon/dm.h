/*
 * dm.h: rwkvcastd itself: wires config, model, engine, registry, checkpoint
 * store, ZeroMQ sockets, control socket, signals and sd_notify around one
 * event loop (shared/DESIGN.md §3-5).
 *
 * Startup order: model -> engine -> registry -> store (restore every state)
 * -> sockets -> READY=1. Shutdown (SIGTERM/SIGINT): stop intake, flush the
 * engine, STOPPING=1, final checkpoint (bounded by shutdown_timeout), exit.
 *
 * Threads: the calling thread runs everything except the store's writer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DM_H
#define DM_H

#include "config/cf.h"

#define DM_VERSION "0.1.0"

/* Runs the daemon on cfg until a stop signal. Returns the process exit code:
 * 0 after a clean stop with the final checkpoint written, 1 on a startup or
 * runtime failure (the reason is logged). */
int dm_run(const cf_config *cfg);

#endif
