/*
 * cmd_ctl.c: `rwkvcast ctl` (placeholder until its issue lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include "tools/cmd.h"

int cmd_ctl(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "Error: 'rwkvcast ctl' is not implemented yet.\n");
    return 1;
}
