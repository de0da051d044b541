/*
 * payload_fuzz.c: libFuzzer target for the MQTT text payload reader and the
 * topic mapping (connectors/payload.h). Seeds: tests/fuzz/corpus/payload/.
 * Invariants checked: an accepted payload gives a finite t and a v that is
 * finite or NaN, within float range; a mapped topic gives a 1..255-byte
 * UTF-8 id; the JSON writer's output of a forecast built from the input
 * reads back.
 *
 * SPDX-License-Identifier: MIT
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    double t, v;
    pl_reason r = pl_parse(data, size, 1.0, &t, &v);
    if (r == PL_OK && (!isfinite(t) || isinf(v) || fabs(v) > FLT_MAX)) abort();
    (void)pl_is_msgpack(data, size);
    /* The same bytes as a topic. */
    char id[MP_ID_MAX];
    size_t n;
    if (pl_topic_to_id((const char *)data, size, "s/", '.', id, sizeof id, &n)) {
        if (n < 1 || n > MP_ID_MAX || !mp_utf8_valid((const uint8_t *)id, n)) abort();
        float q[2] = {(float)(r == PL_OK && !isnan(v) ? v : 0), 1};
        mp_forecast f = {id, (uint32_t)n, r == PL_OK ? t : 0, r == PL_OK ? v : NAN, 1, 2, q, q, q, 0.5f, 0, 0};
        char out[256 + 6 * MP_ID_MAX + 64 * 2];
        size_t k = pl_json_forecast(out, sizeof out, &f);
        if (k == 0) abort();
        double t2, v2;
        if (pl_parse((const uint8_t *)out, k, 0, &t2, &v2) != PL_OK) abort();
    }
    return 0;
}
