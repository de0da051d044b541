/*
 * cmd_send.c: `rwkvcast send`, a CSV file or stdin turned into msgpack
 * samples (docs/PROTOCOL.md §1) on the daemon's ingest endpoint. One sample is sent
 * as a single map, --batch N packs N samples into one array message.
 *
 * Input: CSV read by common/textin.h (',' ';' or tab, detected; RFC 4180
 * quotes) with a header naming the columns (cli_util.h's names: series/s/id,
 * timestamp/time/t, value/v, ...), or no header with the columns value |
 * timestamp,value | series,timestamp,value. Blank lines and lines starting
 * with '#' are skipped. A row that does not parse is reported as
 * FILE:LINE:COL with the reason, counted and skipped; the exit status is then 1.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/base.h"
#include "common/textin.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"

#define SEND_MAX_REPORTED 20 /* bad rows printed before we only count them */

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast send [-e ENDPOINT] [--pull] [--bind] [--series ID] [--rate N]\n"
            "                     [--batch N] [--topic] [--backfill] [FILE.csv|-]\n"
            "\n"
            "Reads samples from a CSV file (or stdin for '-' or no file) and sends them as\n"
            "msgpack to rwkvcastd's ingest socket.\n"
            "\n"
            "CSV columns: a header naming them (series|s|id, timestamp|time|t, value|v) or,\n"
            "without a header: value | timestamp,value | series,timestamp,value. Fields are\n"
            "separated by ',', ';' or a tab (seen in the first line) and may be in double quotes.\n"
            TI_TIME_HELP
            "An empty value, 'nan', 'null' or 'NA' is sent as NaN (missing).\n"
            "\n"
            "  -e, --endpoint EP  ingest endpoint (default " CLI_INGEST_DEFAULT ")\n"
            "      --pub          publish with PUB; waits for the daemon's subscription (default)\n"
            "      --pull         send with PUSH (for a daemon that binds PULL)\n"
            "      --bind         bind EP instead of connecting (for a daemon that connects)\n"
            "  -s, --series ID    series id when the CSV has no series column\n"
            "                     (default: the file name without extension, 'stdin')\n"
            "  -r, --rate N       at most N samples per second (default: as fast as possible)\n"
            "  -b, --batch N      N samples per message, as a msgpack array (default 1)\n"
            "  -t, --topic        send the series id as a first frame (ZeroMQ topic), for\n"
            "                     daemons subscribed to series prefixes; batches then hold\n"
            "                     one series each\n"
            "  -w, --wait MS      wait up to MS for a subscriber in PUB mode (default 3000)\n"
            "      --backfill     mark the samples as history (\"b\": true): the daemon scores\n"
            "                     them and learns from them but publishes no alert events\n"
            "                     for them, and they neither raise nor end a silence alert\n"
            "  -q, --quiet        no summary line\n"
            CLI_CURVE_HELP
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 when every row was sent, 1 when rows were skipped or sending\n"
            "failed, 2 on a usage error.\n");
}

typedef struct send_ctx {
    void *sock;              /* ingest socket, borrowed */
    msgpack_sbuffer items;   /* packed samples waiting for the next message */
    msgpack_sbuffer msg;     /* the message being assembled */
    long pending;            /* samples in items */
    int topic;               /* 1: send the series id as a first (topic) frame */
    char series[256];        /* series of the pending samples (topic mode) */
    long batch;              /* samples per message */
    double rate;             /* samples per second, 0 = unlimited */
    double start;            /* wall time of the first send, s */
    long sent;               /* samples sent */
    long messages;           /* messages sent */
    int backfill;            /* 1: every sample carries "b": true */
} send_ctx;

static int flush(send_ctx *sc) {
    if (sc->pending == 0) return 0;
    const char *data = sc->items.data;
    size_t size = sc->items.size;
    if (sc->batch > 1) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sc->msg, msgpack_sbuffer_write);
        msgpack_sbuffer_clear(&sc->msg);
        msgpack_pack_array(&pk, (size_t)sc->pending);
        msgpack_sbuffer_write(&sc->msg, sc->items.data, sc->items.size);
        data = sc->msg.data;
        size = sc->msg.size;
    }
    if (sc->rate > 0) {
        /* Pace against the start time so sleep jitter does not accumulate. */
        double due = sc->start + (double)sc->sent / sc->rate;
        double now = cli_now();
        if (due > now) cli_sleep(due - now);
    }
    /* The topic frame lets a daemon (or a shard) subscribe to series prefixes. */
    while (sc->topic && zmq_send(sc->sock, sc->series, strlen(sc->series), ZMQ_SNDMORE) < 0) {
        if (errno == EINTR && !cli_stop) continue;
        if (!cli_stop) fprintf(stderr, "Error: Sending failed (%s).\n", zmq_strerror(errno));
        return -1;
    }
    while (zmq_send(sc->sock, data, size, 0) < 0) {
        if (errno == EINTR && !cli_stop) continue;
        if (cli_stop) return -1;
        fprintf(stderr, "Error: Sending failed (%s).\n", zmq_strerror(errno));
        return -1;
    }
    sc->sent += sc->pending;
    sc->messages++;
    sc->pending = 0;
    msgpack_sbuffer_clear(&sc->items);
    return 0;
}

static int add_sample(send_ctx *sc, const char *series, int has_t, double t, double v) {
    /* In topic mode a message holds one series only, so a new series flushes. */
    if (sc->topic && sc->pending > 0 && strcmp(series, sc->series) != 0 && flush(sc) != 0) return -1;
    if (sc->topic) snprintf(sc->series, sizeof sc->series, "%s", series);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sc->items, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (has_t ? 3 : 2) + (sc->backfill ? 1 : 0));
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, series, strlen(series));
    if (has_t) {
        msgpack_pack_str_with_body(&pk, "t", 1);
        /* Whole seconds go as ints: smaller, and exact for any consumer. */
        if (t == floor(t) && fabs(t) < 9e15) msgpack_pack_int64(&pk, (int64_t)t);
        else msgpack_pack_double(&pk, t);
    }
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_double(&pk, v);
    if (sc->backfill) {
        msgpack_pack_str_with_body(&pk, "b", 1);
        msgpack_pack_true(&pk);
    }
    sc->pending++;
    return sc->pending >= sc->batch ? flush(sc) : 0;
}

/* The three columns of the input, -1 when absent (set by the first row). */
typedef struct send_cols {
    int s, t, v;       /* series, timestamp, value */
    int n;             /* fields per row, -1 until the first row */
    char name[3][64];  /* header names of s, t, v for messages ("series", ... without a header) */
} send_cols;

/*
 * Decides the layout from the first row: a header if it names a column
 * (then it has to name the value), else the column count. 1 if the row was a
 * header, 0 if it is data, -1 on an error (printed).
 */
static int layout(ti_csv *in, const ti_row *r, send_cols *k) {
    k->n = r->n;
    if ((k->s = cli_find_col(in, r, cli_series_names, "series")) == -2 ||
        (k->t = cli_find_col(in, r, cli_time_names, "timestamp")) == -2 ||
        (k->v = cli_find_col(in, r, cli_value_names, "value")) == -2)
        return -1;
    if (k->v >= 0) {
        int col[3] = {k->s, k->t, k->v};
        for (int i = 0; i < 3; i++)
            if (col[i] >= 0) snprintf(k->name[i], sizeof k->name[i], "%s", r->f[col[i]].s);
        return 1;
    }
    if (k->s >= 0 || k->t >= 0) {
        fprintf(stderr, "Error: %s:%ld:1: Header has no 'value' column.\n", ti_csv_label(in), r->line);
        return -1;
    }
    switch (r->n) {
    case 1: k->v = 0; return 0;
    case 2: k->t = 0, k->v = 1; return 0;
    case 3: k->s = 0, k->t = 1, k->v = 2; return 0;
    default:
        fprintf(stderr,
                "Error: %s:%ld:1: %d columns and no header; expected value, timestamp,value or "
                "series,timestamp,value.\n",
                ti_csv_label(in), r->line, r->n);
        return -1;
    }
}

/* Bytes of a series id field kept for trimming; longer ones are errors anyway. */
#define SEND_ID_FIELD 1024

/*
 * Checks one data row into *t, *v and, from a series column, sbuf
 * (SEND_ID_FIELD + 1 bytes; *series then points into it). NULL if the row
 * is good, else the message (in in's buffer or msg, msg_len bytes).
 */
static const char *check_row(ti_csv *in, const ti_row *r, const send_cols *k, const char *series_opt,
                             double *t, double *v, const char **series, char *sbuf, char *msg, size_t msg_len) {
    const char *why = NULL;
    if (r->n != k->n) {
        snprintf(msg, msg_len, "%s:%ld:1: Wrong number of columns (%d, expected %d).", ti_csv_label(in), r->line,
                 r->n, k->n);
        return msg;
    }
    *v = NAN;
    if (!ti_is_missing(r->f[k->v].s) && ti_parse_double(r->f[k->v].s, v) != RC_OK)
        return ti_csv_field_error(in, r, k->v, "number", k->name[2], NULL);
    if (k->t >= 0 && ti_parse_time(r->f[k->t].s, t, &why) != RC_OK)
        return ti_csv_field_error(in, r, k->t, "timestamp", k->name[1], why);
    if (k->s >= 0 && !series_opt) {
        snprintf(sbuf, SEND_ID_FIELD + 1, "%s", r->f[k->s].s);
        *series = ti_trim(sbuf);
        if (r->f[k->s].len > SEND_ID_FIELD || strlen(*series) < 1 || strlen(*series) > 255)
            return ti_csv_field_error(in, r, k->s, "series id", k->name[0], "not 1..255 bytes");
    }
    return NULL;
}

/*
 * Reads every row of in into samples on sc. The first record decides the
 * layout (header or column count). Bad rows are reported (the first
 * SEND_MAX_REPORTED) and counted in *badp. Returns 0, or -1 on a fatal
 * error (layout, read or send failure).
 */
static int read_rows(send_ctx *sc, ti_csv *in, const char *series_opt, const char *defseries, long *badp) {
    send_cols k = {-1, -1, -1, -1, {"series", "timestamp", "value"}};
    long bad = 0;
    ti_row r;
    char msg[320], sbuf[SEND_ID_FIELD + 1];
    while (!cli_stop) {
        rc_err e = ti_csv_next(in, &r);
        const char *why = e == RC_ERR_FORMAT ? ti_csv_error(in) : NULL;
        /* Ctrl-C while blocked on a pipe interrupts the read: that is the end, not an error. */
        if (e == RC_ERR_IO && cli_stop) break;
        if (e != RC_OK && e != RC_ERR_FORMAT) {
            fprintf(stderr, "Error: %s\n", ti_csv_error(in));
            return -1;
        }
        if (e == RC_OK && r.n == 0) break;
        if (!why && k.n < 0) {
            int hdr = layout(in, &r, &k);
            if (hdr < 0) return -1;
            if (hdr) continue;
        }
        double t = 0, v = 0;
        const char *series = series_opt ? series_opt : defseries;
        if (!why) why = check_row(in, &r, &k, series_opt, &t, &v, &series, sbuf, msg, sizeof msg);
        if (why) {
            if (bad++ < SEND_MAX_REPORTED) fprintf(stderr, "%s Row skipped.\n", why);
            continue;
        }
        if (add_sample(sc, series, k.t >= 0, t, v) != 0) return -1;
    }
    *badp = bad;
    return 0;
}

int cmd_send(int argc, char **argv) {
    ti_getopt g;
    if (ti_getopt_init(&g, CLI_INGEST_SPEC CLI_CURVE_SPEC "s|series= r|rate= b|batch= t|topic K/backfill q|quiet h|help", 0))
        return 2;
    cli_ingest_opts io = {CLI_INGEST_DEFAULT, 'p', 0, 3000};
    const char *series_opt = NULL;
    int quiet = 0, topic = 0, backfill = 0;
    long batch = 1;
    double rate = 0;
    int c;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        int net = cli_ingest_option(&io, c, optarg);
        if (net < 0) return 2;
        if (net || cli_curve_option(c, optarg)) continue;
        switch (c) {
        case 's':
            series_opt = optarg;
            if (strlen(series_opt) < 1 || strlen(series_opt) > 255) {
                fprintf(stderr, "Error: Invalid '--series' value (%s): expected 1..255 bytes.\n", series_opt);
                return 2;
            }
            break;
        case 'r': if (ti_opt_double("--rate", optarg, 0, 0, HUGE_VAL, &rate)) return 2; break;
        case 'b': if (ti_opt_long("--batch", optarg, 1, 100000, &batch)) return 2; break;
        case 'q': quiet = 1; break;
        case 't': topic = 1; break;
        case 'K': backfill = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 1)) return 2;
    const char *path = optind < argc ? argv[optind] : "-";
    int is_stdin = strcmp(path, "-") == 0;
    /* Default series id: the file's base name without its extension. */
    char defseries[256];
    if (is_stdin) {
        snprintf(defseries, sizeof defseries, "stdin");
    } else {
        const char *base = strrchr(path, '/');
        snprintf(defseries, sizeof defseries, "%s", base ? base + 1 : path);
        char *dot = strrchr(defseries, '.');
        if (dot && dot != defseries) *dot = '\0';
    }
    char errbuf[512];
    rc_err oerr;
    ti_csv *in = ti_csv_open(path, 0, TI_CSV_COMMENTS, &oerr, errbuf, sizeof errbuf);
    if (!in) {
        fprintf(stderr, "Error: %s\n", errbuf);
        return 1;
    }

    int ret = 1;
    void *ctx = NULL;
    send_ctx sc;
    memset(&sc, 0, sizeof sc);
    msgpack_sbuffer_init(&sc.items);
    msgpack_sbuffer_init(&sc.msg);
    sc.batch = batch;
    sc.rate = rate;
    sc.topic = topic;
    sc.backfill = backfill;
    cli_install_signals();
    sc.sock = cli_ingest_open(&ctx, &io);
    if (!sc.sock) goto err;
    sc.start = cli_now();

    long bad = 0;
    if (read_rows(&sc, in, series_opt, defseries, &bad) != 0) goto err;
    if (flush(&sc) != 0) goto err;
    if (!quiet)
        fprintf(stderr, "send: %ld samples in %ld messages to %s; %ld bad rows skipped\n", sc.sent,
                sc.messages, io.endpoint, bad);
    ret = bad > 0 || cli_stop ? 1 : 0;
err:
    /* Queued messages get up to 5 s to leave before we give up on them. */
    cli_socket_close(ctx, sc.sock, 5000);
    msgpack_sbuffer_destroy(&sc.items);
    msgpack_sbuffer_destroy(&sc.msg);
    ti_csv_close(in);
    return ret;
}
