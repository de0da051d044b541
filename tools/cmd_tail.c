/*
 * cmd_tail.c: `rwkvcast tail` (placeholder until its issue lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "tools/cmd.h"

int cmd_tail(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "Error: 'rwkvcast tail' is not implemented yet.\n");
    return 1;
}
