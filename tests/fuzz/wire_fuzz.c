/*
 * wire_fuzz.c: libFuzzer target for the mp_ sample decoder and the reader.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/wire_fuzz.c
 *        connectors/wire.c common/base.c common/log.c -lm
 * Seeds: tests/fuzz/corpus/wire/. Invariants checked: every delivered sample
 * has a 1..255-byte id, a finite t and a non-Inf v.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "connectors/wire.h"

static void on_s(void *ctx, const mp_sample *m) {
    (void)ctx;
    if (m->s_len < 1 || m->s_len > MP_ID_MAX || !isfinite(m->t) || isinf(m->v)) abort();
    if (!mp_utf8_valid((const uint8_t *)m->s, m->s_len)) abort();
}

static void on_e(void *ctx, mp_reason why, const char *s, uint32_t n) {
    (void)ctx;
    (void)s;
    (void)n;
    if (why <= MP_OK || why >= MP_R__COUNT) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mp_decode_samples(data, size, 1.0, on_s, on_e, NULL);
    mp_rd r;
    mp_rd_init(&r, data, size);
    while (r.p < r.end && mp_skip(&r) == RC_OK) {
    }
    return 0;
}
