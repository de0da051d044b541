/*
 * http_fuzz.c: libFuzzer target for the parsers of the HTTP endpoint
 * (daemon/http.h): the request path router with its percent-decoding of
 * series ids, the msgpack-to-JSON writer behind /series/<id>, and the
 * Prometheus label-value escaper and sample-value formatter. The first
 * input byte picks which; the rest is the input.
 * Seeds: tests/fuzz/corpus/http/.
 * Invariants: the router never reads past the input and a series id it
 * returns is 1..255 bytes of valid UTF-8; JSON it writes has balanced
 * brackets outside strings, no raw control byte and no bare NaN/Infinity;
 * an escaped label value has no raw newline and no unescaped quote; a
 * written value reads back with strtod within seven significant digits.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/wire.h"
#include "daemon/http.h"

static void check_json(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20) abort();
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') { if (--depth < 0) abort(); }
        else if (c == 'N' || c == 'I') abort(); /* NaN, Infinity: not JSON */
    }
    if (in_str || depth != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: {
        /* A copy exactly n bytes long, so ASan sees any read past it. */
        char *path = malloc(n ? n : 1);
        if (!path) return 0;
        memcpy(path, p, n);
        char id[MP_ID_MAX];
        size_t len = 0;
        ht_route_kind k = ht_route(path, n, id, sizeof id, &len);
        if (k == HT_SERIES && (len < 1 || len > MP_ID_MAX || !mp_utf8_valid((const uint8_t *)id, len))) abort();
        free(path);
        break;
    }
    case 1: {
        ht_buf b;
        ht_buf_init(&b, 1 << 20);
        if (ht_json_from_mp(&b, p, n) == RC_OK && !b.failed) check_json(b.p ? b.p : "", b.len);
        ht_buf_free(&b);
        break;
    }
    case 3: {
        double v;
        if (n < sizeof v) break;
        memcpy(&v, p, sizeof v);
        ht_buf b;
        ht_buf_init(&b, 0);
        ht_put_value(&b, v);
        if (b.failed || b.len < 3 || b.p[0] != ' ' || b.p[b.len - 1] != '\n') abort();
        char *end;
        double r = strtod(b.p + 1, &end);
        if (*end != '\n') abort();
        if (isnan(v) != isnan(r)) abort();
        if (isfinite(v) && fabs(v) > 1e-300 && fabs(r - v) > 5.1e-7 * fabs(v)) abort();
        if (isinf(v) && r != v) abort();
        ht_buf_free(&b);
        break;
    }
    default: {
        ht_buf b;
        ht_buf_init(&b, 1 << 20);
        ht_label_value(&b, (const char *)p, n);
        for (size_t i = 0; i < b.len; i++) {
            if (b.p[i] == '\n') abort();
            if (b.p[i] == '\\') { i++; if (i >= b.len || !strchr("\\\"n", b.p[i])) abort(); }
            else if (b.p[i] == '"') abort();
        }
        ht_buf_free(&b);
        break;
    }
    }
    return 0;
}
