/*
 * cli_util.h: helpers shared by the networked subcommands of `rwkvcast`
 * (send, tail, ctl, simulate): default endpoints, the ingest socket with the
 * PUB slow-joiner handled, CSV timestamp parsing, msgpack-to-JSON printing,
 * strict number parsing and a SIGINT/SIGTERM stop flag.
 *
 * Everything here runs on the tool's main thread only. Functions that can
 * fail print one "Error: ..." line to stderr themselves (the tools are
 * interactive programs, so the message is the product) and return -1 or NULL.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CLI_UTIL_H
#define CLI_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

/* Default endpoints, docs/PROTOCOL.md §1-3. */
#define CLI_INGEST_DEFAULT "tcp://127.0.0.1:7701"
#define CLI_OUTPUT_DEFAULT "tcp://127.0.0.1:7702"

/*
 * Default control endpoint, in order: $RWKVCAST_CONTROL, then
 * ipc://$RUNTIME_DIRECTORY/control.sock when systemd set RUNTIME_DIRECTORY,
 * then ipc:///run/rwkvcast/control.sock if that socket exists (the packaged
 * service), else ipc://./rwkvcastd.sock (the daemon's default next to its
 * default state_db ./rwkvcast.db, see config/config.c). Writes into buf (n bytes) and returns buf.
 */
const char *cli_control_default(char *buf, size_t n);

/* Set to 1 by SIGINT/SIGTERM once cli_install_signals() ran. */
extern volatile sig_atomic_t cli_stop;
void cli_install_signals(void);

/* Wall clock in seconds since the epoch; sleeps s seconds (interruptible). */
double cli_now(void);
void cli_sleep(double s);

/* Strict whole-string parsers; return 0 on success, -1 otherwise. */
int cli_parse_long(const char *s, long *out);
int cli_parse_double(const char *s, double *out);

/*
 * Parses a timestamp: epoch seconds (int or float), "YYYY-MM-DD HH:MM:SS",
 * "YYYY-MM-DD", or ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]". Times
 * without a zone are UTC. Returns 0 and *out in epoch seconds, or -1.
 */
int cli_parse_time(const char *s, double *out);
/* Formats epoch seconds as local "HH:MM:SS.mmm" into buf (>= 16 bytes). */
void cli_format_clock(char *buf, size_t n, double t);

/*
 * Opens the socket samples are sent on. mode 'p' = PUB semantics, 'u' = PUSH.
 * PUB mode uses an XPUB socket so it can see the daemon's subscription
 * arrive: a PUB drops everything sent before the subscriber's SUBSCRIBE
 * reaches it (the ZeroMQ slow-joiner problem), so we wait up to wait_ms for
 * one subscription and fail with a clear message if none comes. bind != 0
 * binds instead of connecting. Returns the socket (owned by the caller,
 * close with cli_ingest_close) or NULL; *ctx receives the context.
 */
void *cli_ingest_open(void **ctx, const char *endpoint, int mode, int bind, int wait_ms);
/* Flushes pending messages (up to linger_ms), closes the socket, ends ctx. */
void cli_ingest_close(void *ctx, void *sock, int linger_ms);

/* Returns the value for key in a msgpack map, or NULL (also when m is no map). */
const msgpack_object *cli_map_get(const msgpack_object *m, const char *key);
/* Numeric value of an int/float object; also decodes timestamp ext -1. 0 or -1. */
int cli_obj_number(const msgpack_object *o, double *out);
/* Copies a str object into buf (NUL-terminated, truncated); 0, or -1 if not a str. */
int cli_obj_str(const msgpack_object *o, char *buf, size_t n);

/*
 * Prints o as JSON. indent < 0 prints on one line; otherwise maps go one key
 * per line indented by `indent` spaces per level and arrays of scalars stay
 * on one line. NaN/Inf print as NaN/Infinity (like Python's json), binary
 * data as "<N bytes>", timestamps as epoch seconds.
 */
void cli_print_json(FILE *f, const msgpack_object *o, int indent);

#endif
