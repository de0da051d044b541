/*
 * rwkvcastd_main.c: rwkvcastd's command line (docs/PROTOCOL.md §5):
 *
 *   rwkvcastd [-c FILE] [--check-config]
 *
 * Without -c the daemon runs on the defaults documented in
 * config/rwkvcast.example.yaml. A bad config prints FILE:LINE:COL with the
 * key and the echoed line and exits with code 2 before binding anything.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/textin.h"
#include "config/config.h"
#include "connectors/kafka.h"
#include "connectors/mqtt.h"
#include "daemon/server.h"

static void usage(FILE *f) {
    fprintf(f, "Usage: rwkvcastd [-c FILE] [--check-config] [--salvage]\n"
               "  -c, --config FILE  YAML configuration (default: built-in defaults)\n"
               "  --check-config     validate the configuration and exit (0 ok, 2 bad)\n"
               "  --salvage          start even if the state store fails its integrity check,\n"
               "                     restoring the series that can still be read\n"
               "  -h, --help         this text\n"
               "  --version          print the version\n"
               "Inputs (input.endpoints, rwkvcast.yaml(5)): ZeroMQ SUB/PULL; MQTT (type: mqtt,\n"
               "mqtt://HOST:PORT) with libmosquitto; Kafka consumer groups (type: kafka,\n"
               "kafka://HOST:PORT) with librdkafka. This build: MQTT %s, Kafka %s.\n",
            mq_available() ? "yes" : "no", kf_available() ? "yes" : "no");
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int check = 0, c;
    ti_getopt g;
    int salvage = 0;
    if (ti_getopt_init(&g, "c|config= K/check-config S/salvage h|help V/version", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'K': check = 1; break;
        case 'S': salvage = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("rwkvcastd %s\n", DM_VERSION); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 0)) {
        usage(stderr);
        return 2;
    }
    lg_setup('D', 0, "rwkvcastd");
    static cf_config cfg;
    char err[1024];
    if (path) {
        if (cf_load(&cfg, path, err, sizeof err) != RC_OK) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    } else {
        cf_default(&cfg);
    }
    cfg.salvage = salvage;
    if (check) {
        printf("Configuration %s%s%s is valid.\n", path ? "'" : "(defaults)", path ? path : "", path ? "'" : "");
        return 0;
    }
    return dm_run(&cfg);
}
