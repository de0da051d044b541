/*
 * cmd_send.c: `rwkvcast send`, a CSV file or stdin turned into msgpack
 * samples (docs/PROTOCOL.md §1) on the daemon's ingest endpoint. One sample is sent
 * as a single map, --batch N packs N samples into one array message.
 *
 * Input: a header naming the columns (series/s/id, timestamp/time/t,
 * value/v), or no header with the columns value | timestamp,value |
 * series,timestamp,value. Blank lines and lines starting with '#' are
 * skipped. A row that does not parse is reported with its line number,
 * counted and skipped; the exit status is then 1.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/base.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"

#define SEND_MAX_FIELDS 16
#define SEND_LINE_MAX 8192
#define SEND_MAX_REPORTED 20 /* bad rows printed before we only count them */

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast send [-e ENDPOINT] [--pull] [--bind] [--series ID] [--rate N]\n"
            "                     [--batch N] [--topic] [FILE.csv|-]\n"
            "\n"
            "Reads samples from a CSV file (or stdin for '-' or no file) and sends them as\n"
            "msgpack to rwkvcastd's ingest socket.\n"
            "\n"
            "CSV columns: a header naming them (series|s|id, timestamp|time|t, value|v) or,\n"
            "without a header: value | timestamp,value | series,timestamp,value.\n"
            "Timestamps: epoch seconds, 'YYYY-MM-DD HH:MM:SS' or ISO-8601 (UTC unless a zone\n"
            "is given). An empty value or 'nan' is sent as NaN (missing).\n"
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
            "  -q, --quiet        no summary line\n"
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
    msgpack_pack_map(&pk, has_t ? 3 : 2);
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
    sc->pending++;
    return sc->pending >= sc->batch ? flush(sc) : 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Splits line in place on commas; returns the number of fields (max SEND_MAX_FIELDS). */
static int split(char *line, char **fields) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (n < SEND_MAX_FIELDS) fields[n++] = trim(p);
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

static int name_is(const char *f, const char *const *names) {
    for (; *names; names++)
        if (strcasecmp(f, *names) == 0) return 1;
    return 0;
}

static int parse_value(const char *f, double *v) {
    if (*f == '\0' || strcasecmp(f, "nan") == 0 || strcasecmp(f, "na") == 0 ||
        strcasecmp(f, "null") == 0) {
        *v = NAN;
        return 0;
    }
    return cli_parse_double(f, v) == 0 && isfinite(*v) ? 0 : -1;
}

/*
 * Reads every row of `in` into samples on sc. The first non-comment row
 * decides the layout (header or column count). Bad rows are reported (the
 * first SEND_MAX_REPORTED) and counted in *badp. line is a SEND_LINE_MAX
 * buffer. Returns 0, or -1 on a fatal error (layout, read or send failure).
 */
static int read_rows(send_ctx *sc, FILE *in, const char *label, const char *series_opt, const char *defseries,
                     char *line, long *badp) {
    static const char *const s_names[] = {"series", "s", "id", "series_id", "sensor", "name", NULL};
    static const char *const t_names[] = {"timestamp", "time", "t", "ts", "date", "datetime", NULL};
    static const char *const v_names[] = {"value", "v", "y", NULL};
    int col_s = -1, col_t = -1, col_v = -1, ncols = -1;
    long lineno = 0, bad = 0;
    while (!cli_stop && fgets(line, SEND_LINE_MAX, in)) {
        lineno++;
        size_t len = strlen(line);
        if (len == SEND_LINE_MAX - 1 && line[len - 1] != '\n') {
            if (bad++ < SEND_MAX_REPORTED)
                fprintf(stderr, "%s:%ld: Line longer than %d bytes, skipped.\n", label, lineno,
                        SEND_LINE_MAX - 2);
            int ch;
            while ((ch = fgetc(in)) != EOF && ch != '\n') {}
            continue;
        }
        char *p = trim(line);
        if (*p == '\0' || *p == '#') continue;
        char *f[SEND_MAX_FIELDS];
        int n = split(p, f);
        if (ncols < 0) {
            /* The first row decides the layout: a header if it names columns. */
            for (int i = 0; i < n; i++) {
                if (name_is(f[i], s_names)) col_s = i;
                else if (name_is(f[i], t_names)) col_t = i;
                else if (name_is(f[i], v_names)) col_v = i;
            }
            ncols = n;
            if (col_v >= 0) continue;
            if (col_s >= 0 || col_t >= 0) {
                fprintf(stderr, "Error: %s:%ld: Header has no 'value' column.\n", label, lineno);
                return -1;
            }
            if (n == 1) col_v = 0;
            else if (n == 2) col_t = 0, col_v = 1;
            else if (n == 3) col_s = 0, col_t = 1, col_v = 2;
            else {
                fprintf(stderr,
                        "Error: %s:%ld: %d columns and no header; expected value, "
                        "timestamp,value or series,timestamp,value.\n",
                        label, lineno, n);
                return -1;
            }
        }
        const char *why = NULL;
        const char *what = "";
        double t = 0, v = 0;
        const char *series = series_opt ? series_opt : defseries;
        if (n != ncols) {
            why = "wrong number of columns";
        } else if (col_v >= n || parse_value(f[col_v], &v) != 0) {
            why = "bad value", what = f[col_v];
        } else if (col_t >= 0 && cli_parse_time(f[col_t], &t) != 0) {
            why = "bad timestamp", what = f[col_t];
        } else if (col_s >= 0 && !series_opt) {
            series = f[col_s];
            if (strlen(series) < 1 || strlen(series) > 255) why = "series id not 1..255 bytes";
        }
        if (why) {
            if (bad++ < SEND_MAX_REPORTED) {
                if (*what) fprintf(stderr, "%s:%ld: %s ('%s'), row skipped.\n", label, lineno, why, what);
                else fprintf(stderr, "%s:%ld: %s (%d, expected %d), row skipped.\n", label, lineno, why,
                             n, ncols);
            }
            continue;
        }
        if (add_sample(sc, series, col_t >= 0, t, v) != 0) return -1;
    }
    if (ferror(in)) {
        fprintf(stderr, "Error: Reading '%s' failed (%s).\n", label, strerror(errno));
        return -1;
    }
    *badp = bad;
    return 0;
}

int cmd_send(int argc, char **argv) {
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"pull", no_argument, NULL, 'P'},
        {"pub", no_argument, NULL, 'U'},            {"bind", no_argument, NULL, 'B'},
        {"series", required_argument, NULL, 's'},   {"rate", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},    {"wait", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},          {"help", no_argument, NULL, 'h'},
        {"topic", no_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = CLI_INGEST_DEFAULT;
    const char *series_opt = NULL;
    int mode = 'p', bind = 0, quiet = 0, topic = 0;
    long batch = 1, wait_ms = 3000;
    double rate = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:s:r:b:w:tqh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'P': mode = 'u'; break;
        case 'U': mode = 'p'; break;
        case 'B': bind = 1; break;
        case 's': series_opt = optarg; break;
        case 'r':
            if (cli_parse_double(optarg, &rate) != 0 || !(rate >= 0)) {
                fprintf(stderr, "Error: Invalid '--rate' value (%s).\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (cli_parse_long(optarg, &batch) != 0 || batch < 1 || batch > 100000) {
                fprintf(stderr, "Error: Invalid '--batch' value (%s); use 1..100000.\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (cli_parse_long(optarg, &wait_ms) != 0 || wait_ms < 0) {
                fprintf(stderr, "Error: Invalid '--wait' value (%s).\n", optarg);
                return 2;
            }
            break;
        case 'q': quiet = 1; break;
        case 't': topic = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "Error: At most one input file.\n");
        return 2;
    }
    const char *path = optind < argc ? argv[optind] : "-";
    int is_stdin = strcmp(path, "-") == 0;
    if (series_opt && (strlen(series_opt) < 1 || strlen(series_opt) > 255)) {
        fprintf(stderr, "Error: Invalid '--series' value (%s); 1..255 bytes.\n", series_opt);
        return 2;
    }
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
    const char *label = is_stdin ? "<stdin>" : path;
    FILE *in = is_stdin ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "Error: Cannot open '%s' (%s).\n", path, strerror(errno));
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
    char *line = rc_malloc(SEND_LINE_MAX);
    if (!line) {
        fprintf(stderr, "Error: Out of memory.\n");
        goto err;
    }
    cli_install_signals();
    sc.sock = cli_ingest_open(&ctx, endpoint, mode, bind, (int)wait_ms);
    if (!sc.sock) goto err;
    sc.start = cli_now();

    long bad = 0;
    if (read_rows(&sc, in, label, series_opt, defseries, line, &bad) != 0) goto err;
    if (flush(&sc) != 0) goto err;
    if (!quiet)
        fprintf(stderr, "send: %ld samples in %ld messages to %s; %ld bad rows skipped\n", sc.sent,
                sc.messages, endpoint, bad);
    ret = bad > 0 || cli_stop ? 1 : 0;
err:
    /* Queued messages get up to 5 s to leave before we give up on them. */
    cli_ingest_close(ctx, sc.sock, 5000);
    msgpack_sbuffer_destroy(&sc.items);
    msgpack_sbuffer_destroy(&sc.msg);
    rc_free(line);
    if (!is_stdin) fclose(in);
    return ret;
}
