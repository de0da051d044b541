/*
 * rwkvcast.c: entry point of the `rwkvcast` command; dispatches to the
 * subcommands declared in cmd.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "daemon/server.h" /* DM_VERSION: one version for both programs */
#include "tools/cmd.h"

typedef struct cmd_entry {
    const char *name;                  /* subcommand */
    int (*fn)(int argc, char **argv);  /* implementation */
    const char *summary;               /* one line for --help */
} cmd_entry;

static const cmd_entry commands[] = {
    {"train", cmd_train, "train a model on CSV series (M4-style wide or timestamp,value)"},
    {"eval", cmd_eval, "forecast M4-style test horizons; sMAPE, MASE, OWA, coverage vs baselines"},
    {"replay", cmd_replay, "run the daemon's engine over a timestamp,value CSV, offline"},
    {"send", cmd_send, "send a CSV or stdin as samples to a ZeroMQ endpoint"},
    {"tail", cmd_tail, "subscribe to a daemon's forecasts and alerts and print them"},
    {"ctl", cmd_ctl, "send a control command (ping, stats, series, get, ...) to a daemon"},
    {"simulate", cmd_simulate, "publish N synthetic sensors with injected anomalies"},
    {"plot", cmd_plot, "draw series, forecast band, anomaly scores and alerts into a PNG"},
    {"keygen", cmd_keygen, "write a CURVE key pair (NAME.key, NAME.pub) for the daemon or a client"},
};

static void usage(FILE *f) {
    fprintf(f, "Usage: rwkvcast COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'rwkvcast COMMAND --help' for the options of one command;\n"
               "'rwkvcast --version' prints the version.\n");
}

int main(int argc, char **argv) {
    lg_setup('C', 0, "rwkvcast");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("rwkvcast %s\n", DM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "Error: Unknown command '%s'.\n", argv[1]);
    usage(stderr);
    return 2;
}
