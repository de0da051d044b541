/*
 * cmd_tail.c: `rwkvcast tail`, a subscriber on the daemon's output PUB
 * (docs/PROTOCOL.md §2) that prints forecasts ("f.<series>") and alert-level
 * changes ("a.<series>") one line each, or as JSON lines with --json.
 *
 * Runs until --count messages were printed, --duration seconds passed, or
 * SIGINT/SIGTERM. --throttle keeps a busy stream readable: at most one
 * forecast line per series per interval (alert events are always printed).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/base.h"
#include "common/log.h"
#include "common/textin.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"

/* Throttle table: open addressing on the series hash; full means no throttling. */
#define TAIL_SLOTS 4096

typedef struct tail_slot {
    uint64_t hash;  /* FNV-1a of the series id, 0 = empty */
    double last;    /* wall time of the last printed forecast, s */
} tail_slot;

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast tail [-e ENDPOINT] [--alerts] [--series PREFIX] [--count N]\n"
            "                     [--duration S] [--throttle S] [--json] [--color|--no-color]\n"
            "\n"
            "Subscribes to rwkvcastd's output and prints forecasts and alert events:\n"
            "  TIME  SERIES  value  yhat(+1) [lo, hi]  score  ok|WARN|ALERT\n"
            "Alert events (a change of a series' level, a series falling silent or\n"
            "sending again) are marked with '>>>', one line each, saying what kind of\n"
            "change it is, the value against what was expected and since when:\n"
            "  >>> TIME SERIES ALERT spike: v=V expected E [LO, HI] score=S, since TIME (D s)\n"
            "  >>> TIME SERIES back to ok (spike): v=V expected E [LO, HI] score=S, raised at TIME (D s ago)\n"
            "  >>> TIME SERIES ALERT silence: no sample for D s (since TIME), expected E [LO, HI]\n"
            "  >>> TIME SERIES sending again after D s of silence: v=V expected E [LO, HI], level ok\n"
            "Times are local, HH:MM:SS.mmm; SERIES is escaped (control bytes as \\xNN).\n"
            "\n"
            "  -e, --endpoint EP   output endpoint (default " CLI_OUTPUT_DEFAULT ")\n"
            "      --bind          bind EP instead of connecting\n"
            "  -a, --alerts        only alert events, no forecasts\n"
            "  -s, --series P      only series whose id starts with P\n"
            "  -n, --count N       exit after N printed messages\n"
            "  -d, --duration S    exit after S seconds\n"
            "  -t, --throttle S    at most one forecast line per series every S seconds\n"
            "  -j, --json          one JSON object per line: {\"topic\": ..., <payload keys>}\n"
            "      --color         colour levels (default when stdout is a terminal)\n"
            "      --no-color      never colour\n"
            CLI_CURVE_HELP
            "  -h, --help          this text\n");
}

static const char *level_name(long level) {
    return level <= 0 ? "ok" : level == 1 ? "WARN" : "ALERT";
}

static const char *level_color(long level) {
    return level <= 0 ? "\033[32m" : level == 1 ? "\033[33m" : "\033[1;31m";
}

/* First element of a numeric array field, NaN when absent. */
static double first_of(const msgpack_object *m, const char *key) {
    const msgpack_object *a = cli_map_get(m, key);
    double v = NAN;
    if (a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size > 0) cli_obj_number(&a->via.array.ptr[0], &v);
    else if (a) cli_obj_number(a, &v);
    return v;
}

static void print_num(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "%s", "-");
    else snprintf(buf, n, "%.4g", v);
}

static void print_json_line(const char *topic, const msgpack_object *m) {
    fputs("{\"topic\": ", stdout);
    msgpack_object t;
    t.type = MSGPACK_OBJECT_STR;
    t.via.str.ptr = topic;
    t.via.str.size = (uint32_t)strlen(topic);
    cli_print_json(stdout, &t, -1);
    if (m->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < m->via.map.size; i++) {
            fputs(", ", stdout);
            cli_print_json(stdout, &m->via.map.ptr[i].key, -1);
            fputs(": ", stdout);
            cli_print_json(stdout, &m->via.map.ptr[i].val, -1);
        }
    } else {
        fputs(", \"payload\": ", stdout);
        cli_print_json(stdout, m, -1);
    }
    fputs("}\n", stdout);
}

/*
 * One line for an alert event that explains itself (kind, since, expected
 * value and band: docs/PROTOCOL.md §2). Colours only the level word.
 */
static void print_alert(const char *series, const msgpack_object *m, const char *kind, int color) {
    double t = NAN, v = NAN, score = NAN, lvl = 0, since = NAN, ex = NAN, lo = NAN, hi = NAN;
    if (cli_obj_number(cli_map_get(m, "t"), &t) != 0) t = cli_now();
    cli_obj_number(cli_map_get(m, "v"), &v);
    cli_obj_number(cli_map_get(m, "score"), &score);
    cli_obj_number(cli_map_get(m, "level"), &lvl);
    cli_obj_number(cli_map_get(m, "since"), &since);
    cli_obj_number(cli_map_get(m, "expected"), &ex);
    cli_obj_number(cli_map_get(m, "expected_lo"), &lo);
    cli_obj_number(cli_map_get(m, "expected_hi"), &hi);
    long level = (long)lvl;
    char clock[32], sc[32], vs[32], es[32], ls[32], hs[32], esc[LG_ESCAPE_CAP(31)];
    cli_format_clock(clock, sizeof clock, t);
    if (isnan(since)) snprintf(sc, sizeof sc, "?");
    else cli_format_clock(sc, sizeof sc, since);
    print_num(vs, sizeof vs, v);
    print_num(es, sizeof es, ex);
    print_num(ls, sizeof ls, lo);
    print_num(hs, sizeof hs, hi);
    /* The kind is the sender's too: escaped like the id. */
    lg_escape(esc, sizeof esc, kind, strlen(kind));
    const char *on = color ? level_color(level) : "", *off = color ? "\033[0m" : "";
    double span = t - since;
    if (!strcmp(kind, "silence") && isnan(v) && level > 0)
        printf(">>> %s %-20s %s%s%s silence: no sample for %.3g s (since %s), expected %s [%s, %s]\n", clock, series,
               on, level_name(level), off, span, sc, es, ls, hs);
    else if (!strcmp(kind, "silence"))
        printf(">>> %s %-20s sending again after %.3g s of silence: v=%s expected %s [%s, %s], level %s%s%s\n",
               clock, series, span, vs, es, ls, hs, on, level_name(level), off);
    else if (level > 0)
        printf(">>> %s %-20s %s%s%s %s: v=%s expected %s [%s, %s] score=%.2f, since %s (%.3g s)\n", clock, series, on,
               level_name(level), off, esc, vs, es, ls, hs, isnan(score) ? 0.0 : score, sc, span);
    else
        printf(">>> %s %-20s back to %s%s%s (%s): v=%s expected %s [%s, %s] score=%.2f, raised at %s (%.3g s ago)\n",
               clock, series, on, level_name(level), off, esc, vs, es, ls, hs, isnan(score) ? 0.0 : score, sc, span);
}

static void print_line(int is_alert, const msgpack_object *m, int color) {
    char raw[256] = "?", series[LG_ESCAPE_CAP(255)];
    cli_obj_str(cli_map_get(m, "s"), raw, sizeof raw);
    /* The id is whatever a sender chose: escaped, so it cannot move the
     * operator's cursor, recolour the terminal or fake a line. */
    lg_escape(series, sizeof series, raw, strlen(raw));
    char kind[32];
    if (is_alert && cli_obj_str(cli_map_get(m, "kind"), kind, sizeof kind) == 0) {
        print_alert(series, m, kind, color);
        return;
    }
    double t = NAN, v = NAN, score = NAN, lvl = 0;
    if (cli_obj_number(cli_map_get(m, "t"), &t) != 0) t = cli_now();
    cli_obj_number(cli_map_get(m, "v"), &v);
    cli_obj_number(cli_map_get(m, "score"), &score);
    cli_obj_number(cli_map_get(m, "level"), &lvl);
    long level = (long)lvl;
    char clock[32], vs[32], ys[32], ls[32], hs[32];
    cli_format_clock(clock, sizeof clock, t);
    print_num(vs, sizeof vs, v);
    print_num(ys, sizeof ys, first_of(m, "yhat"));
    print_num(ls, sizeof ls, first_of(m, "lo"));
    print_num(hs, sizeof hs, first_of(m, "hi"));
    const char *on = color ? level_color(level) : "";
    const char *off = color ? "\033[0m" : "";
    if (is_alert) {
        const char *bold = color ? "\033[1m" : "";
        printf("%s>>> %s %-20s %s%s%s%s  v=%s yhat(+1)=%s [%s, %s] score=%.2f%s\n", bold, clock, series,
               level > 0 ? "level " : "back to ", on, level_name(level), color ? "\033[0m\033[1m" : "", vs,
               ys, ls, hs, isnan(score) ? 0.0 : score, off);
    } else {
        printf("%s  %-20s v=%-10s yhat(+1)=%-10s [%s, %s]  score=%.2f  %s%s%s\n", clock, series, vs, ys, ls,
               hs, isnan(score) ? 0.0 : score, on, level_name(level), off);
    }
}

/*
 * Returns 1 if a forecast of m's series was printed less than `throttle`
 * seconds ago, else records now and returns 0. slots has TAIL_SLOTS entries;
 * when it is full, series that find no slot are never throttled.
 */
static int throttled(tail_slot *slots, const msgpack_object *m, double throttle) {
    const msgpack_object *so = cli_map_get(m, "s");
    uint64_t h = so && so->type == MSGPACK_OBJECT_STR ? rc_hash64(RC_HASH_INIT, so->via.str.ptr, so->via.str.size)
                                                      : 1;
    if (h == 0) h = 1;
    double now = cli_now();
    for (size_t i = 0; i < TAIL_SLOTS; i++) {
        tail_slot *sl = &slots[(h + i) % TAIL_SLOTS];
        if (sl->hash == 0) sl->hash = h, sl->last = -1e300;
        if (sl->hash != h) continue;
        if (now - sl->last < throttle) return 1;
        sl->last = now;
        return 0;
    }
    return 0;
}

int cmd_tail(int argc, char **argv) {
    ti_getopt g;
    if (ti_getopt_init(&g, "e|endpoint= B/bind a|alerts s|series= n|count= d|duration= t|throttle= j|json "
                           "C/color N/no-color " CLI_CURVE_SPEC "h|help", 0))
        return 2;
    const char *endpoint = CLI_OUTPUT_DEFAULT;
    const char *prefix = "";
    int alerts_only = 0, json = 0, bind = 0;
    int color = isatty(STDOUT_FILENO);
    long count = 0;
    double duration = 0, throttle = 0;
    int c;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (cli_curve_option(c, optarg)) continue;
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'B': bind = 1; break;
        case 'a': alerts_only = 1; break;
        case 's': prefix = optarg; break;
        case 'n': if (ti_opt_long("--count", optarg, 0, LONG_MAX, &count)) return 2; break;
        case 'd': if (ti_opt_double("--duration", optarg, 0, 0, HUGE_VAL, &duration)) return 2; break;
        case 't': if (ti_opt_double("--throttle", optarg, 0, 0, HUGE_VAL, &throttle)) return 2; break;
        case 'j': json = 1; break;
        case 'C': color = 1; break;
        case 'N': color = 0; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 0)) return 2;
    if (json) color = 0;

    int ret = 1;
    tail_slot *slots = NULL;
    void *ctx = NULL;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    void *s = cli_socket_open(&ctx, ZMQ_SUB, endpoint, bind, 0);
    if (!s) goto err;
    if (throttle > 0 && !(slots = rc_calloc(TAIL_SLOTS, sizeof *slots))) {
        fprintf(stderr, "Error: Out of memory.\n");
        goto err;
    }
    /* Subscribing after connecting is fine: ZeroMQ sends subscriptions on every pipe. */
    char topic[300];
    snprintf(topic, sizeof topic, "a.%s", prefix);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic, strlen(topic));
    if (!alerts_only) {
        snprintf(topic, sizeof topic, "f.%s", prefix);
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic, strlen(topic));
    }
    cli_install_signals();
    double end = duration > 0 ? cli_now() + duration : 0;
    long printed = 0, bad = 0;
    while (!cli_stop && (count == 0 || printed < count)) {
        long wait = 200;
        if (end > 0) {
            double left = end - cli_now();
            if (left <= 0) break;
            if (left * 1000 < wait) wait = (long)(left * 1000) + 1;
        }
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int pr = zmq_poll(&it, 1, wait);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) {
            fprintf(stderr, "Error: Polling '%s' failed (%s).\n", endpoint, zmq_strerror(errno));
            goto err;
        }
        if (pr == 0) continue;
        /* Read every frame of one message: the last one is the payload. */
        char tp[300] = "";
        int nframes = 0, more = 1;
        while (more) {
            if (zmq_msg_recv(&frame, s, 0) < 0) {
                if (errno == EINTR) break;
                fprintf(stderr, "Error: Receiving failed (%s).\n", zmq_strerror(errno));
                goto err;
            }
            more = zmq_msg_more(&frame);
            if (more && nframes == 0) {
                size_t n = zmq_msg_size(&frame) < sizeof tp - 1 ? zmq_msg_size(&frame) : sizeof tp - 1;
                memcpy(tp, zmq_msg_data(&frame), n);
                tp[n] = '\0';
            }
            nframes++;
        }
        if (more) break; /* interrupted inside a message */
        size_t off = 0;
        if (msgpack_unpack_next(&up, zmq_msg_data(&frame), zmq_msg_size(&frame), &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            up.data.type != MSGPACK_OBJECT_MAP) {
            if (bad++ < 5) fprintf(stderr, "tail: skipped a message that is not a msgpack map ('%s')\n", tp);
            continue;
        }
        int is_alert = tp[0] == 'a' && tp[1] == '.';
        if (alerts_only && !is_alert) continue;
        if (!is_alert && slots && throttled(slots, &up.data, throttle)) continue;
        if (json) print_json_line(tp[0] ? tp : "?", &up.data);
        else print_line(is_alert, &up.data, color);
        fflush(stdout);
        printed++;
    }
    ret = 0;
err:
    msgpack_unpacked_destroy(&up);
    zmq_msg_close(&frame);
    cli_socket_close(ctx, s, 0);
    rc_free(slots);
    return ret;
}
