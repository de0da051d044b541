/*
 * cmd_ctl.c: `rwkvcast ctl`, one request on the daemon's control socket
 * (docs/PROTOCOL.md §3): {"cmd": CMD, key: value, ...} over REQ, the reply printed
 * as indented JSON. Exit 0 when the reply says "ok": true, 1 on "ok": false,
 * a timeout or a transport error, 2 on a usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/textin.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast ctl [-e ENDPOINT] [-t MS] [-j] CMD [KEY=VALUE ...]\n"
            "\n"
            "Sends one control request to rwkvcastd and prints the reply.\n"
            "CMD is ping, stats, series, get, checkpoint, forget, reload or history. Each\n"
            "KEY=VALUE "
            "adds a field: integers, decimals, true/false and null are sent as such,\n"
            "anything else as a string (quote it, e.g. s='\"42\"', to force a string).\n"
            "\n"
            "  -e, --endpoint EP   control endpoint (default: $RWKVCAST_CONTROL, else\n"
            "                      ipc://$RUNTIME_DIRECTORY/control.sock, else\n"
            "                      ipc:///run/rwkvcast/control.sock if present, else\n"
            "                      ipc://./rwkvcastd.sock, the daemon's default when\n"
            "                      run without systemd in the current directory)\n"
            "  -t, --timeout MS    give up after MS milliseconds (default 3000)\n"
            "  -j, --json          print the reply on one line\n"
            CLI_CURVE_HELP
            "  -h, --help          this text\n"
            "\n"
            "Examples:\n"
            "  rwkvcast ctl ping\n"
            "  rwkvcast ctl stats\n"
            "  rwkvcast ctl series offset=0 limit=50\n"
            "  rwkvcast ctl get s=sensor-00\n"
            "  rwkvcast ctl history s=sensor-00 limit=10   (with history.series set)\n"
            "  rwkvcast ctl checkpoint wait=true   (reply after the commit)\n"
            "\n"
            "Exit status: 0 if the daemon answered ok, 1 if it refused, timed out or was\n"
            "unreachable, 2 on a usage error.\n");
}

/* Packs a KEY=VALUE value with the type it looks like (numbers as
 * common/textin.h reads them: decimal only, so "0x10" or "inf" stay strings). */
static void pack_value(msgpack_packer *pk, const char *v) {
    long l;
    double d;
    size_t n = strlen(v);
    if (n >= 2 && ((v[0] == '"' && v[n - 1] == '"') || (v[0] == '\'' && v[n - 1] == '\''))) {
        msgpack_pack_str_with_body(pk, v + 1, n - 2);
    } else if (strcmp(v, "true") == 0) {
        msgpack_pack_true(pk);
    } else if (strcmp(v, "false") == 0) {
        msgpack_pack_false(pk);
    } else if (strcmp(v, "null") == 0) {
        msgpack_pack_nil(pk);
    } else if (ti_parse_long(v, LONG_MIN, LONG_MAX, &l) == RC_OK) {
        msgpack_pack_int64(pk, l);
    } else if (ti_parse_double(v, &d) == RC_OK) {
        msgpack_pack_double(pk, d);
    } else {
        msgpack_pack_str_with_body(pk, v, n);
    }
}

int cmd_ctl(int argc, char **argv) {
    ti_getopt g;
    /* Options end at CMD: its KEY=VALUE operands may start with '-'. */
    if (ti_getopt_init(&g, "e|endpoint= t|timeout= j|json " CLI_CURVE_SPEC "h|help", 1)) return 2;
    char defep[512];
    const char *endpoint = NULL;
    long timeout = 3000;
    int oneline = 0;
    int c;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (cli_curve_option(c, optarg)) continue;
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 't': if (ti_opt_long("--timeout", optarg, 1, INT_MAX, &timeout)) return 2; break;
        case 'j': oneline = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "Error: Missing control command (ping, stats, series, get, ...).\n");
        usage(stderr);
        return 2;
    }
    for (int i = optind + 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            fprintf(stderr, "Error: Argument '%s' is not KEY=VALUE.\n", argv[i]);
            return 2;
        }
    }
    if (!endpoint) endpoint = cli_control_default(defep, sizeof defep);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)(argc - optind));
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, argv[optind], strlen(argv[optind]));
    for (int i = optind + 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        msgpack_pack_str_with_body(&pk, argv[i], (size_t)(eq - argv[i]));
        pack_value(&pk, eq + 1);
    }

    int ret = 1;
    void *ctx = NULL;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    /* Linger 0 (cli_socket_open's): an unanswered request must not keep us alive at exit. */
    void *s = cli_socket_open(&ctx, ZMQ_REQ, endpoint, 0, 0);
    if (!s) goto err;
    if (zmq_send(s, sb.data, sb.size, 0) < 0) {
        fprintf(stderr, "Error: Cannot send to '%s' (%s).\n", endpoint, zmq_strerror(errno));
        goto err;
    }
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int pr = zmq_poll(&it, 1, (long)timeout);
    if (pr <= 0) {
        if (pr < 0 && errno != EINTR)
            fprintf(stderr, "Error: Polling '%s' failed (%s).\n", endpoint, zmq_strerror(errno));
        else
            fprintf(stderr, "Error: No reply from '%s' within %ld ms (is rwkvcastd running?).\n",
                    endpoint, timeout);
        goto err;
    }
    if (zmq_msg_recv(&reply, s, 0) < 0) {
        fprintf(stderr, "Error: Cannot receive from '%s' (%s).\n", endpoint, zmq_strerror(errno));
        goto err;
    }
    size_t off = 0;
    if (msgpack_unpack_next(&up, zmq_msg_data(&reply), zmq_msg_size(&reply), &off) !=
        MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "Error: Reply from '%s' is not msgpack (%zu bytes).\n", endpoint,
                zmq_msg_size(&reply));
        goto err;
    }
    cli_print_json(stdout, &up.data, oneline ? -1 : 2);
    fputc('\n', stdout);
    const msgpack_object *ok = cli_map_get(&up.data, "ok");
    if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean) {
        ret = 0;
    } else {
        char msg[512] = "reply without \"ok\": true";
        cli_obj_str(cli_map_get(&up.data, "error"), msg, sizeof msg);
        fprintf(stderr, "Error: '%s' failed: %s\n", argv[optind], msg);
    }
err:
    msgpack_unpacked_destroy(&up);
    zmq_msg_close(&reply);
    cli_socket_close(ctx, s, 0);
    msgpack_sbuffer_destroy(&sb);
    return ret;
}
