/*
 * cmd_send.c: `rwkvcast send` (placeholder until its issue lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "tools/cmd.h"

int cmd_send(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "Error: 'rwkvcast send' is not implemented yet.\n");
    return 1;
}
