/*
 * cli_util.h: helpers shared by the subcommands of `rwkvcast`: default
 * endpoints, the options and sockets of the networked commands (send, tail,
 * ctl, simulate) with the PUB slow-joiner handled, the CSV column names that
 * send and replay both recognise, msgpack-to-JSON printing and a
 * SIGINT/SIGTERM stop flag. Parsing text (CSV, timestamps, numbers, option
 * values) is common/textin.h's job.
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

#include "common/textin.h"

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

/* Formats epoch seconds as local "HH:MM:SS.mmm" into buf (>= 16 bytes). */
void cli_format_clock(char *buf, size_t n, double t);

/*
 * Header names of the series, timestamp and value columns of a CSV, for
 * send and replay alike (NULL-terminated; matched ignoring case and blanks).
 */
extern const char *const cli_series_names[]; /* series, s, id, series_id, sensor, name */
extern const char *const cli_time_names[];   /* timestamp, time, t, ts, date, datetime */
extern const char *const cli_value_names[];  /* value, v, y */
/*
 * Index of the column of header row hdr (read from c) named by one of
 * names, -1 when none is, or -2 after printing "Error: FILE:LINE:COL:
 * Columns 'a' and 'b' both name the ROLE column." when two are.
 */
int cli_find_col(ti_csv *c, const ti_row *hdr, const char *const *names, const char *role);

/*
 * A generated-series kind (model/synth.h) given to option name: 0 and *kind,
 * or -1 after printing "Error: Invalid '--x' value (v); expected one of
 * KIND, ...". With allow_none, "none" is accepted as kind -1.
 */
int cli_opt_kind(const char *name, const char *arg, int allow_none, int *kind);

/* Options of the ingest socket (send, simulate), filled by cli_ingest_option. */
typedef struct cli_ingest_opts {
    const char *endpoint; /* -e, --endpoint */
    int mode;             /* 'p' PUB semantics (--pub, the default) or 'u' PUSH (--pull) */
    int bind;             /* --bind: bind instead of connecting */
    long wait_ms;         /* -w, --wait: how long PUB mode waits for a subscriber, ms */
} cli_ingest_opts;
/* Their part of a ti_getopt_init spec (common/textin.h). */
#define CLI_INGEST_SPEC "e|endpoint= P/pull U/pub B/bind w|wait= "
/* Takes getopt_long's result c: 1 if it was an ingest option (stored), 0 if
 * not, -1 for a bad value (message printed). */
int cli_ingest_option(cli_ingest_opts *o, int c, const char *arg);

/*
 * Opens the socket samples are sent on (o->mode 'p' = PUB semantics, 'u' =
 * PUSH). PUB mode uses an XPUB socket so it can see the daemon's
 * subscription arrive: a PUB drops everything sent before the subscriber's
 * SUBSCRIBE reaches it (the ZeroMQ slow-joiner problem), so we wait up to
 * o->wait_ms for one subscription and fail with a clear message if none
 * comes. Returns the socket (close with cli_socket_close) or NULL; *ctx
 * receives the context.
 */
void *cli_ingest_open(void **ctx, const cli_ingest_opts *o);

/*
 * A new context and a socket of ZeroMQ type `type` with linger 0 and, if
 * sndhwm > 0, that send high-water mark, connected to endpoint (bound on
 * it when bind != 0). Returns the socket and *ctx, or NULL after printing
 * an error. Close with cli_socket_close.
 */
void *cli_socket_open(void **ctx, int type, const char *endpoint, int bind, int sndhwm);

/*
 * CURVE (connectors/curve.h) for every socket cli_socket_open makes after
 * the options are read: --curve-key FILE, this client's secret key file
 * (`rwkvcast keygen NAME` makes NAME.key; its NAME.pub goes on the
 * daemon's allow-list), and --curve-server-key FILE, the daemon's public
 * key file. Both or neither: cli_socket_open fails with a message
 * otherwise, and when a file is missing or malformed.
 */
#define CLI_CURVE_SPEC "Y/curve-key= Z/curve-server-key= "
#define CLI_CURVE_HELP                                                              \
    "      --curve-key FILE   CURVE: this client's secret key file (rwkvcast keygen)\n" \
    "      --curve-server-key FILE  CURVE: the daemon's public key file\n"
/* Takes getopt_long's result c: 1 if it was a CURVE option (stored), 0 if not. */
int cli_curve_option(int c, const char *arg);
/* Gives pending messages up to linger_ms to leave, closes sock (NULL: none) and ends ctx (NULL: none). */
void cli_socket_close(void *ctx, void *sock, int linger_ms);

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
