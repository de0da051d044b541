/*
 * control.h: the control API (docs/PROTOCOL.md §3) on the REP socket.
 * Prefix: ct_.
 *
 * A request is one frame holding one msgpack map with a "cmd" string; the
 * reply is one msgpack map with "ok", and "error": "message" on failure.
 * Commands live in one table (control.c): name, the argument keys it
 * takes, and its handler. The dispatcher parses the map once, looks the
 * name up, fills a ct_args with the keys that command declares (a key
 * with a value of another type counts as absent; unknown keys are
 * ignored), and runs the handler, which writes the reply:
 *
 *   ping                        -> pong, version, pid
 *   stats                       -> counters, checkpoint, queues, engine
 *                                  (the list is in docs/PROTOCOL.md §3)
 *   series  offset|cursor limit -> total, series [ids] (slot order, limit
 *                                  <= 1000, default 100), next (offset of
 *                                  the next page, or nil)
 *   get     s                   -> s, last_t, score, level, stored,
 *                                  forecast (nil before the first sample);
 *                                  a series not in memory is read from the
 *                                  store (stored: true)
 *   forget  s                   -> was_loaded; the state is dropped from
 *                                  memory and deleted from the store
 *   checkpoint wait             -> started, queued (true when a job was in
 *                                  flight: the new one begins after it);
 *                                  with wait: true the reply is rows,
 *                                  duration, time, sent once a checkpoint
 *                                  begun after the request has committed
 *   reload                      -> ok, or the config error text
 *   history s limit             -> s, held, length, warn, alert and the
 *                                  columns t, v, yhat, lo, hi, score,
 *                                  level of the series' recent samples
 *                                  (history.h; only with history.series)
 *
 * Errors are replies, never daemon failures: a request that is not a map
 * with a 'cmd' string (or not msgpack) gets "Bad request: ...", an unknown
 * command "Unknown command '...'.", a request of more than one frame
 * "Bad request: multi-frame requests are not accepted (N frames).", a
 * reply that does not fit d->ctl_buf "Reply too large.".
 *
 * Threads: the event-loop thread only. Every function takes the daemon
 * state (server_internal.h) and writes its "Control" section.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CONTROL_H
#define CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/wire.h"
#include "daemon/checkpoint.h"
#include "daemon/eventloop.h"

typedef struct dm dm;

#define CT_CMD_MAX 32 /* bytes of a command name, NUL included; longer ones are no command */

/* What the caller does with the reply writer after a handler. */
typedef enum ct_status {
    CT_REPLY,    /* send it now */
    CT_DEFERRED  /* nothing to send yet: ct_checkpoint_reply writes it later */
} ct_status;

/* A request that ct_parse accepted. */
typedef struct ct_request {
    char cmd[CT_CMD_MAX]; /* the "cmd" value, NUL-terminated, not empty */
    mp_rd pairs;          /* reader at the map's first key; borrows the request buffer */
    uint32_t n_pairs;     /* key-value pairs in the map */
} ct_request;

/* Argument keys a command may declare (ct_command.args). */
enum {
    CT_ARG_S = 1 << 0,      /* "s": series id (string) */
    CT_ARG_OFFSET = 1 << 1, /* "offset", or its alias "cursor" (unsigned) */
    CT_ARG_LIMIT = 1 << 2,  /* "limit" (unsigned) */
    CT_ARG_WAIT = 1 << 3    /* "wait" (bool) */
};

/* A command's arguments; a key not declared, absent or of another type
 * leaves its default. */
typedef struct ct_args {
    const char *s;   /* series id, NOT NUL-terminated, borrowed from the request; NULL by default */
    size_t s_len;    /* bytes */
    uint64_t offset; /* first slot of a page; default 0 */
    uint64_t limit;  /* ids per page; default 0 (= 100) */
    int wait;        /* reply once the checkpoint committed; default 0 */
} ct_args;

/* A handler writes its whole reply (one map) into w. */
typedef ct_status ct_handler(dm *d, const ct_args *a, mp_wr *w);

typedef struct ct_command {
    const char *name; /* the "cmd" value */
    unsigned args;    /* CT_ARG_* bits: the keys parsed for this command */
    ct_handler *run;  /* the command itself */
} ct_command;

/* The command table (static storage); *n is set to its length. */
const ct_command *ct_commands(size_t *n);

/* Parses a request of len bytes (borrowed: q points into buf). RC_OK, or
 * RC_ERR_PROTO when buf is not msgpack, not a map, has a key that is not
 * a string, or has no non-empty 'cmd' string shorter than CT_CMD_MAX.
 * Bytes after the map are ignored. */
rc_err ct_parse(ct_request *q, const void *buf, size_t len);
/* Runs the command q names (q from ct_parse) and writes its reply into w;
 * an unknown name gets the "Unknown command" reply. */
ct_status ct_dispatch(dm *d, const ct_request *q, mp_wr *w);
/* One request, buf of len bytes (borrowed), start to finish: ct_parse,
 * then ct_dispatch or the "Bad request" reply; a reply that overflowed w
 * is replaced by the "Reply too large." one. What the socket does with a
 * single-frame request, without the socket. */
ct_status ct_handle(dm *d, const void *buf, size_t len, mp_wr *w);

/* ev io callback of the REP socket (ctx is the dm): receives one request,
 * all of its frames, and sends the reply unless it is deferred. */
void ct_on_socket(ev_loop *l, void *ctx);

/*
 * For a checkpoint that finished with result r (sn_done returned 1): when
 * a client waits for it ("wait": true), writes that client's reply into w,
 * resumes the REP socket and returns 1; else returns 0 and w is untouched.
 * ct_checkpoint_done does the same and sends the reply.
 */
int ct_checkpoint_reply(dm *d, const ck_result *r, mp_wr *w);
void ct_checkpoint_done(dm *d, const ck_result *r);

#endif
