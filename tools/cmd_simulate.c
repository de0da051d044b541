/*
 * cmd_simulate.c: `rwkvcast simulate` (placeholder until its issue lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "tools/cmd.h"

int cmd_simulate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "Error: 'rwkvcast simulate' is not implemented yet.\n");
    return 1;
}
