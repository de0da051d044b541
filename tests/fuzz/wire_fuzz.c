/*
 * wire_fuzz.c: libFuzzer target for the mp_ sample decoder and the reader.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/wire_fuzz.c
 *        connectors/wire.c common/base.c common/log.c -lm
 * Seeds: tests/fuzz/corpus/wire/. Invariants checked: every delivered sample
 * has a 1..255-byte id, a finite t, a non-Inf v and no flag but
 * MP_F_BACKFILL; and an alert event (mp_encode_alert) built from the
 * sample, with the input's bytes as forecast and alert numbers, is one
 * well-formed msgpack map of 15 keys (11 with the backfill key, plus 5)
 * or an overflow, never a write past its buffer.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/wire.h"

/* The input, for numbers in the encoded alert (any bit pattern: NaN, Inf). */
static const uint8_t *in_data;
static size_t in_size;

static float in_f32(size_t at) {
    float f = 0;
    if (in_size >= 4) memcpy(&f, in_data + at % (in_size - 3), 4);
    return f;
}

static void on_s(void *ctx, const mp_sample *m) {
    (void)ctx;
    if (m->s_len < 1 || m->s_len > MP_ID_MAX || !isfinite(m->t) || isinf(m->v)) abort();
    if (!mp_utf8_valid((const uint8_t *)m->s, m->s_len)) abort();
    if (m->flags & ~MP_F_BACKFILL) abort();
    /* The sample as the daemon would publish it in an alert event. */
    enum { H = 3 };
    float y[3][H];
    for (int a = 0; a < 3; a++)
        for (int h = 0; h < H; h++) y[a][h] = in_f32((size_t)(a * H + h) * 4);
    mp_forecast f = {m->s, m->s_len, m->t, m->v, in_f32(40), H, y[0], y[1], y[2], in_f32(44),
                     (int)(m->s_len % 3), (m->flags & MP_F_BACKFILL) != 0};
    mp_alert al = {"spike", m->t, in_f32(48), in_f32(52), in_f32(56)};
    static uint8_t buf[128 + MP_ID_MAX + 16 * H + 96 + 16];
    /* A buffer cut short by the input's length: both outcomes get exercised. */
    size_t cap = sizeof buf - (in_size % 200);
    mp_wr w;
    mp_wr_init(&w, buf, cap);
    mp_encode_alert(&w, &f, &al);
    if (w.len > cap) abort();
    if (w.overflow) return;
    mp_rd r;
    mp_obj o;
    mp_rd_init(&r, buf, w.len);
    if (mp_next(&r, &o) != RC_OK || o.type != MP_MAP || o.len != 15u + (uint32_t)f.backfill) abort();
    mp_rd_init(&r, buf, w.len);
    if (mp_skip(&r) != RC_OK || r.p != r.end) abort();
}

static void on_e(void *ctx, mp_reason why, const char *s, uint32_t n) {
    (void)ctx;
    (void)s;
    (void)n;
    if (why <= MP_OK || why >= MP_R__COUNT) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    in_data = data;
    in_size = size;
    mp_decode_samples(data, size, 1.0, on_s, on_e, NULL);
    mp_rd r;
    mp_rd_init(&r, data, size);
    while (r.p < r.end && mp_skip(&r) == RC_OK) {
    }
    return 0;
}
