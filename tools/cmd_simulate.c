/*
 * cmd_simulate.c: `rwkvcast simulate`, N synthetic sensors published to the
 * daemon's ingest socket, with anomalies injected at random and announced on
 * stderr as they start, so a demo can show them being caught.
 *
 * Each sensor is base + trend*t + a seasonal wave (period --period seconds,
 * a compressed "day", plus a third harmonic) + AR(1) noise. Anomaly kinds:
 * spike (one sample), shift (level jumps for a few seconds), stuck (value
 * frozen), dropout (no samples), noise (variance burst). Every tick sends
 * the N samples as one msgpack batch array (docs/PROTOCOL.md §1), or prints CSV
 * rows with --csv.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/base.h"
#include "common/textin.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"

#define SIM_MAX_SENSORS 100000

enum { AN_NONE, AN_SPIKE, AN_SHIFT, AN_STUCK, AN_DROPOUT, AN_NOISE, AN__COUNT };
static const char *const an_names[AN__COUNT] = {"none", "spike", "shift", "stuck", "dropout", "noise"};

typedef struct sim_sensor {
    char id[64];      /* series id */
    double base;      /* mean level */
    double amp;       /* seasonal amplitude */
    double phase;     /* seasonal phase, radians */
    double trend;     /* units per second */
    double sd;        /* noise standard deviation */
    double ar;        /* current AR(1) noise term */
    double last;      /* last value sent (for stuck) */
    int kind;         /* active anomaly, AN_NONE if none */
    double until;     /* wall time the anomaly ends, s */
    double magnitude; /* shift offset or noise factor */
    int send;         /* 1 if this tick has a sample (0 during a dropout) */
} sim_sensor;

typedef struct sim_rng {
    uint64_t s; /* xorshift64* state, never 0 */
} sim_rng;

static double rng_u01(sim_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(sim_rng *r) {
    double u = rng_u01(r), v = rng_u01(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast simulate [-e ENDPOINT] [-n N] [--rate HZ] [--duration S]\n"
            "                         [--anomaly-rate P] [--seed S] [--period S] [--csv]\n"
            "\n"
            "Publishes N synthetic sensors (seasonality with a compressed period, trend,\n"
            "noise) to rwkvcastd's ingest socket and injects anomalies (spike, shift, stuck,\n"
            "dropout, noise), announcing each on stderr as it starts.\n"
            "\n"
            "  -e, --endpoint EP      ingest endpoint (default " CLI_INGEST_DEFAULT ")\n"
            "      --pub              publish with PUB; waits for the daemon's subscription (default)\n"
            "      --pull             send with PUSH instead of PUB\n"
            "      --bind             bind EP instead of connecting\n"
            "  -w, --wait MS          wait up to MS for a subscriber in PUB mode (default 5000)\n"
            "  -n, --sensors N        number of sensors (default 8)\n"
            "  -r, --rate HZ          samples per second per sensor (default 5)\n"
            "  -d, --duration S       stop after S seconds (default: until Ctrl-C)\n"
            "  -a, --anomaly-rate P   anomalies per sensor per second (default 0.02)\n"
            "      --warmup S         no anomalies in the first S seconds (default 10)\n"
            "      --kinds LIST       anomaly kinds to inject, comma-separated (default: all of\n"
            "                         spike,shift,stuck,dropout,noise)\n"
            "  -p, --period S         seasonal period in seconds (default 30)\n"
            "      --prefix P         series ids are P00, P01, ... (default 'sensor-')\n"
            "      --seed S           random seed (default 1)\n"
            "      --csv              print series,timestamp,value rows to stdout, send nothing\n"
            "  -q, --quiet            do not announce anomalies\n"
            CLI_CURVE_HELP
            "  -h, --help             this text\n");
}

static void sim_value(sim_sensor *x, sim_rng *r, double t, double t0, double period, double *v, int *send) {
    double el = t - t0;
    double w = 6.283185307179586 * el / period;
    x->ar = 0.7 * x->ar + rng_normal(r) * x->sd * 0.71;
    double y = x->base + x->trend * el + x->amp * sin(w + x->phase) + 0.3 * x->amp * sin(3 * w + 2 * x->phase) +
               x->ar;
    *send = 1;
    if (x->kind != AN_NONE && t >= x->until) x->kind = AN_NONE;
    switch (x->kind) {
    case AN_SPIKE:
        y += x->magnitude;
        x->kind = AN_NONE;
        break;
    case AN_SHIFT: y += x->magnitude; break;
    case AN_STUCK: y = x->last; break;
    case AN_DROPOUT: *send = 0; break;
    case AN_NOISE: y += rng_normal(r) * x->sd * x->magnitude; break;
    default: break;
    }
    x->last = y;
    *v = y;
}

/* Picks one of the kinds enabled in the bit mask `kinds` (bit k = kind k). */
static void inject(sim_sensor *x, sim_rng *r, double t, unsigned kinds, int quiet) {
    int on[AN__COUNT], n = 0;
    for (int k = 1; k < AN__COUNT; k++)
        if (kinds & (1u << k)) on[n++] = k;
    int pick = (int)(rng_u01(r) * n);
    x->kind = on[pick < n ? pick : n - 1];
    double sign = rng_u01(r) < 0.5 ? -1.0 : 1.0;
    double len = 3.0 + 5.0 * rng_u01(r);
    char what[96] = "";
    switch (x->kind) {
    case AN_SPIKE:
        x->magnitude = sign * x->amp * (3.0 + 2.0 * rng_u01(r));
        x->until = t + 1e9;
        snprintf(what, sizeof what, "%+.3g for one sample", x->magnitude);
        break;
    case AN_SHIFT:
        x->magnitude = sign * x->amp * (1.5 + rng_u01(r));
        x->until = t + len;
        snprintf(what, sizeof what, "level %+.3g for %.1f s", x->magnitude, len);
        break;
    case AN_STUCK:
        x->until = t + len;
        snprintf(what, sizeof what, "frozen at %.4g for %.1f s", x->last, len);
        break;
    case AN_DROPOUT:
        x->until = t + len * 0.5;
        snprintf(what, sizeof what, "no samples for %.1f s", len * 0.5);
        break;
    default:
        x->magnitude = 8.0 + 4.0 * rng_u01(r);
        x->until = t + len;
        snprintf(what, sizeof what, "noise x%.1f for %.1f s", x->magnitude, len);
        break;
    }
    if (!quiet) {
        char clock[32];
        cli_format_clock(clock, sizeof clock, t);
        fprintf(stderr, "simulate: %s inject %-7s on %s: %s\n", clock, an_names[x->kind], x->id, what);
    }
}

/* Draws each sensor's level, amplitude, phase, trend and noise. */
static void sim_init(sim_sensor *xs, long n, const char *prefix, sim_rng *r) {
    for (long i = 0; i < n; i++) {
        sim_sensor *x = &xs[i];
        snprintf(x->id, sizeof x->id, "%s%02ld", prefix, i);
        x->base = 20.0 + 80.0 * rng_u01(r);
        x->amp = 2.0 + 8.0 * rng_u01(r);
        x->phase = 6.283185307179586 * rng_u01(r);
        x->trend = (rng_u01(r) - 0.5) * 0.02 * x->amp;
        x->sd = x->amp * (0.03 + 0.05 * rng_u01(r));
        x->last = x->base;
    }
}

/* Packs this tick's nsend samples (sensors with send set) as one batch array. */
static void pack_tick(msgpack_packer *pk, const sim_sensor *xs, long n, long nsend, double t) {
    msgpack_pack_array(pk, (size_t)nsend);
    for (long i = 0; i < n; i++) {
        const sim_sensor *x = &xs[i];
        if (!x->send) continue;
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "s", 1);
        msgpack_pack_str_with_body(pk, x->id, strlen(x->id));
        msgpack_pack_str_with_body(pk, "t", 1);
        msgpack_pack_double(pk, t);
        msgpack_pack_str_with_body(pk, "v", 1);
        msgpack_pack_double(pk, x->last);
    }
}

/* Parses "spike,shift,..." into a bit mask; 0 on success, -1 on an unknown name. */
static int parse_kinds(const char *list, unsigned *mask) {
    unsigned m = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int k = 1; k < AN__COUNT; k++)
            if (strlen(an_names[k]) == n && strncmp(p, an_names[k], n) == 0) m |= 1u << k, found = 1;
        if (!found) return -1;
        p += n;
        if (*p == ',') p++;
    }
    if (m == 0) return -1;
    *mask = m;
    return 0;
}

int cmd_simulate(int argc, char **argv) {
    ti_getopt g;
    if (ti_getopt_init(&g, CLI_INGEST_SPEC CLI_CURVE_SPEC "n|sensors= r|rate= d|duration= a|anomaly-rate= W/warmup= "
                                           "K/kinds= p|period= X/prefix= S/seed= c/csv q|quiet h|help", 0))
        return 2;
    cli_ingest_opts io = {CLI_INGEST_DEFAULT, 'p', 0, 5000};
    const char *prefix = "sensor-";
    int csv = 0, quiet = 0;
    unsigned kinds = ((1u << AN__COUNT) - 1) & ~1u;
    long n = 8, seed = 1;
    double rate = 5, duration = 0, arate = 0.02, warmup = 10, period = 30;
    int c, bad = 0;
    /* Cases in --help order. */
    while (!bad && (c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        int net = cli_ingest_option(&io, c, optarg);
        if (!net && cli_curve_option(c, optarg)) continue;
        if (net) {
            bad = net < 0;
            continue;
        }
        switch (c) {
        case 'n': bad = ti_opt_long("--sensors", optarg, 1, SIM_MAX_SENSORS, &n); break;
        case 'r': bad = ti_opt_double("--rate", optarg, 0, 1, 10000, &rate); break;
        case 'd': bad = ti_opt_double("--duration", optarg, 0, 0, HUGE_VAL, &duration); break;
        case 'a': bad = ti_opt_double("--anomaly-rate", optarg, 0, 0, HUGE_VAL, &arate); break;
        case 'W': bad = ti_opt_double("--warmup", optarg, 0, 0, HUGE_VAL, &warmup); break;
        case 'K':
            if (parse_kinds(optarg, &kinds)) {
                fprintf(stderr, "Error: Invalid '--kinds' value (%s): expected names from %s,%s,%s,%s,%s.\n",
                        optarg, an_names[1], an_names[2], an_names[3], an_names[4], an_names[5]);
                bad = 1;
            }
            break;
        case 'p': bad = ti_opt_double("--period", optarg, 0, 1, HUGE_VAL, &period); break;
        case 'X':
            prefix = optarg;
            if (strlen(optarg) > 48) {
                fprintf(stderr, "Error: Invalid '--prefix' value (%s): expected at most 48 bytes.\n", optarg);
                bad = 1;
            }
            break;
        case 'S': bad = ti_opt_long("--seed", optarg, LONG_MIN, LONG_MAX, &seed); break;
        case 'c': csv = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (bad || ti_opt_operands(argc, argv, 0)) return 2;

    int ret = 1;
    void *ctx = NULL, *sock = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sim_rng rng = {(uint64_t)seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL};
    /* All per-sensor memory is sized once here; the tick loop allocates nothing of ours. */
    sim_sensor *xs = rc_calloc((size_t)n, sizeof *xs);
    if (!xs) {
        fprintf(stderr, "Error: Out of memory for %ld sensors.\n", n);
        goto err;
    }
    sim_init(xs, n, prefix, &rng);
    cli_install_signals();
    if (!csv) {
        sock = cli_ingest_open(&ctx, &io);
        if (!sock) goto err;
    }
    double t0 = cli_now(), dt = 1.0 / rate;
    long tick = 0, sent = 0, injected = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    while (!cli_stop) {
        double due = t0 + (double)tick * dt;
        if (duration > 0 && due - t0 >= duration) break;
        double now = cli_now();
        if (due > now) cli_sleep(due - now);
        if (cli_stop) break;
        double t = due;
        /* Count the samples first: the array header needs the length up front. */
        msgpack_sbuffer_clear(&sb);
        long nsend = 0;
        for (long i = 0; i < n; i++) {
            sim_sensor *x = &xs[i];
            if (x->kind == AN_NONE && t - t0 >= warmup && rng_u01(&rng) < arate * dt) {
                inject(x, &rng, t, kinds, quiet);
                injected++;
            }
            double v;
            int send;
            sim_value(x, &rng, t, t0, period, &v, &send);
            x->send = send;
            nsend += send;
            if (csv && send) printf("%s,%.3f,%.6g\n", x->id, t, v);
        }
        if (!csv && nsend > 0) {
            pack_tick(&pk, xs, n, nsend, t);
            if (zmq_send(sock, sb.data, sb.size, 0) < 0 && !cli_stop) {
                fprintf(stderr, "Error: Sending to '%s' failed (%s).\n", io.endpoint, zmq_strerror(errno));
                goto err;
            }
        }
        if (csv) fflush(stdout);
        sent += nsend;
        tick++;
    }
    if (!quiet)
        fprintf(stderr, "simulate: %ld samples from %ld sensors in %.1f s; %ld anomalies injected\n", sent, n,
                cli_now() - t0, injected);
    ret = 0;
err:
    cli_socket_close(ctx, sock, 2000);
    msgpack_sbuffer_destroy(&sb);
    rc_free(xs);
    return ret;
}
