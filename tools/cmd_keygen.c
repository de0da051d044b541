/*
 * cmd_keygen.c: `rwkvcast keygen NAME`: a fresh CURVE key pair for
 * rwkvcastd or one of its clients (connectors/curve.h, docs/PROTOCOL.md §9).
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "common/textin.h"
#include "connectors/curve.h"
#include "tools/cmd.h"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast keygen NAME\n"
            "\n"
            "Writes a fresh CURVE key pair: NAME.key (the secret key, then the public key;\n"
            "mode 0600) and NAME.pub (the public key; mode 0644), and prints the public key.\n"
            "Never overwrites: if either file exists, nothing is written.\n"
            "\n"
            "The daemon's pair: 'curve.server_key: NAME.key' in its config; clients get\n"
            "NAME.pub (--curve-server-key). A client's pair: NAME.key stays with the client\n"
            "(--curve-key), NAME.pub goes on the endpoint's allow-list ('curve_allow', one\n"
            "public key per line).\n"
            "\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 when both files were written, 1 when not, 2 on a usage error.\n");
}

int cmd_keygen(int argc, char **argv) {
    ti_getopt g;
    if (ti_getopt_init(&g, "h|help", 0)) return 2;
    int c;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 1)) return 2;
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    const char *base = argv[optind];
    char err[600];
    if (cv_keygen(base, err, sizeof err) != RC_OK) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s.pub", base);
    uint8_t pub[CV_KEY];
    if (cv_read_public(path, pub, err, sizeof err) != RC_OK) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    char z[CV_Z85 + 1];
    zmq_z85_encode(z, pub, CV_KEY);
    printf("%s\n", z);
    fprintf(stderr, "keygen: wrote %s.key (secret, 0600) and %s.pub (public)\n", base, base);
    return 0;
}
