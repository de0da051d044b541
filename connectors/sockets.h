/*
 * sockets.h: ZeroMQ sockets of the daemon: SUB/PULL ingest, PUB output and the
 * REP control socket, configured from cf_config.
 *
 * Each function creates one socket in ctx, applies the options and binds or
 * connects. On failure it returns NULL and writes a one-line reason naming
 * the endpoint and zmq_strerror() into errbuf. Close with zmq_close().
 *
 * Threads: ZeroMQ sockets are not thread-safe; the loop thread owns them.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SOCKETS_H
#define SOCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct hm_monitor;

/* CURVE for one socket (connectors/curve.h): the daemon's secret key and
 * the ZAP domain of the endpoint's allow-list. NULL: a plain socket. */
typedef struct zq_curve {
    const uint8_t *sec;     /* (32) secret key, borrowed for the call */
    int domain;             /* ZAP domain: the allow-list's index; also the monitor's id */
    struct hm_monitor *mon; /* when not NULL: hm_open'd on the socket before it binds or
                               connects (connectors/hsmon.h); closed again on failure.
                               Borrowed; the caller hm_closes it before closing the socket */
} zq_curve;

/* Ingest socket: SUB (subscribed to in->topics, or everything) or PULL, with
 * ZMQ_RCVHWM = rcvhwm and ZMQ_MAXMSGSIZE = max_msg (-1 = unlimited). */
void *zq_open_input(void *ctx, const cf_input *in, int rcvhwm, long max_msg, const zq_curve *cv, char *errbuf,
                    size_t errlen);
/* PUB socket with ZMQ_SNDHWM; linger 200 ms so the last forecasts leave on exit. */
void *zq_open_pub(void *ctx, const char *endpoint, int bind, int sndhwm, const zq_curve *cv, char *errbuf,
                  size_t errlen);
/* REP socket, always bound. For ipc:// the socket file is created with mode
 * 0600 (umask around the bind, then chmod); a stale file is replaced. */
void *zq_open_rep(void *ctx, const char *endpoint, const zq_curve *cv, char *errbuf, size_t errlen);

#endif
