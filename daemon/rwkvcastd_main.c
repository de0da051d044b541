/*
 * rwkvcastd_main.c: the daemon's entry point (placeholder until the daemon lands).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "Error: rwkvcastd is not implemented yet.\n");
    return 1;
}
