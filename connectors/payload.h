/*
 * payload.h: the text payloads of the MQTT (and Kafka) inputs, and the
 * topic -> series id mapping (docs/PROTOCOL.md §6). Prefix: pl_.
 *
 * A broker message is one sample of the series its topic (or key) names,
 * written as a bare number ("21.5", "nan") or as a JSON object
 * ({"v": 21.5, "t": 1700000000.25}); or it is the msgpack of the wire
 * protocol, which names its own series. pl_is_msgpack tells the two
 * apart by the first byte, so a sender never has to configure a format.
 *
 * The JSON reader is our own: it reads one flat object, skips nested
 * values iteratively (a depth counter, no recursion, so a hostile payload
 * of nested brackets cannot overflow the stack), never allocates and never
 * copies more than one number token into a 64-byte stack buffer.
 *
 * Threads: every function is reentrant; no state.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PAYLOAD_H
#define PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/wire.h"

/* Why a text payload was refused. */
typedef enum pl_reason {
    PL_OK = 0,
    PL_R_SYNTAX,  /* not a number and not a JSON object, or malformed JSON */
    PL_R_TYPE,    /* "v" or "t" is not a number (null is fine for "v": missing) */
    PL_R_MISSING, /* no "v" (or "value") key */
    PL_R_INF,     /* v is +-Inf or beyond float range, or t is not finite */
} pl_reason;

/* 1 when the payload starts like a msgpack map or array (a wire-protocol
 * payload, docs/PROTOCOL.md §1), 0 for anything else (text). */
int pl_is_msgpack(const uint8_t *p, size_t n);

/*
 * Reads one text payload of n bytes (not NUL-terminated):
 *   - a bare number with optional surrounding whitespace; "nan" and
 *     "null" (any case) mean missing; an empty payload is PL_R_SYNTAX;
 *   - a JSON object with "v" (or "value"): a number, or null for missing,
 *     and optionally "t" (or "time", "timestamp"): seconds since the
 *     epoch. Other keys are skipped whatever they hold.
 * *t gets `now` when the payload has no time. On PL_OK *t is finite and *v
 * is finite or NaN; on failure *t and *v are unspecified.
 */
pl_reason pl_parse(const uint8_t *p, size_t n, double now, double *t, double *v);

/* Static name of a reason ("syntax", "type", "missing", "inf"); never NULL. */
const char *pl_reason_name(pl_reason why);

/*
 * Maps a topic of tlen bytes to a series id in out (cap bytes, not
 * NUL-terminated; *len set): strip_prefix (NUL-terminated, may be "") is
 * removed and must be there, then every '/' becomes sep (sep == '/' keeps
 * them). Returns 0 when the topic lacks the prefix, or the id would be
 * empty, longer than cap or not UTF-8; 1 on success.
 */
int pl_topic_to_id(const char *topic, size_t tlen, const char *strip_prefix, char sep,
                   char *out, size_t cap, size_t *len);

/*
 * Writes f as one JSON object, the same fields as the msgpack map of
 * docs/PROTOCOL.md §2 ({"s","t","v","dt","h","yhat","lo","hi","score",
 * "level"}; NaN as null, the id escaped), into buf (cap bytes, no NUL).
 * Times and values with 17 significant digits (they round-trip), the
 * float forecasts with 9. Returns the bytes written, 0 when it does not
 * fit: cap = 256 + 6 * s_len + 64 * H always does. No allocation.
 */
size_t pl_json_forecast(char *buf, size_t cap, const mp_forecast *f);
/* The same map plus an alert event's keys ("kind", "since", "expected",
 * "expected_lo", "expected_hi": docs/PROTOCOL.md §2), as pl_json_forecast
 * writes it; 0 when it does not fit in cap. */
size_t pl_json_alert(char *buf, size_t cap, const mp_forecast *f, const mp_alert *a);

#endif
