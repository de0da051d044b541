/*
 * config_fuzz.c: libFuzzer target for the cf_ YAML loader (from memory).
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/config_fuzz.c
 *        config/config.c daemon/anomaly.c common/base.c common/log.c -lyaml -lm
 * Seeds: tests/fuzz/corpus/config/. Invariant: an error always has a message
 * starting with the file name; success leaves NUL-terminated strings.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cf_config c;
    char err[1024];
    rc_err rc = cf_load_mem(&c, "f.yaml", (const char *)data, size, err, sizeof err);
    if (rc == RC_ERR_CONFIG && strncmp(err, "f.yaml:", 7) != 0) abort();
    if (rc == RC_OK && (strnlen(c.state_db, CF_PATH) == CF_PATH || strnlen(c.control_endpoint, CF_STR) == CF_STR))
        abort();
    return 0;
}
