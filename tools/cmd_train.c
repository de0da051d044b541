/*
 * cmd_train.c: `rwkvcast train` (placeholder until its issue lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "tools/cmd.h"

int cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "Error: 'rwkvcast train' is not implemented yet.\n");
    return 1;
}
