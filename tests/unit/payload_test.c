/*
 * payload_test.c: the MQTT text payloads and topic mapping
 * (connectors/payload.h): bare numbers, missing words, JSON objects with
 * their key aliases, nested values skipped, every refusal with its reason,
 * the nesting bound, the msgpack sniffing, topic -> id and the JSON
 * forecast writer (checked by reading it back with the same parser's rules).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/payload.h"
#include "tests/unit/harness.h"

static double t, v;

static pl_reason parse(const char *s) {
    t = v = -12345;
    return pl_parse((const uint8_t *)s, strlen(s), 99.0, &t, &v);
}

TEST(bare_numbers) {
    ASSERT_EQ(parse("21.5"), PL_OK);
    ASSERT_NEAR(v, 21.5, 0);
    ASSERT_NEAR(t, 99.0, 0);
    ASSERT_EQ(parse("  -3e2\r\n"), PL_OK);
    ASSERT_NEAR(v, -300, 0);
    ASSERT_EQ(parse("nan"), PL_OK);
    ASSERT(isnan(v));
    ASSERT_EQ(parse("NULL"), PL_OK);
    ASSERT(isnan(v));
    ASSERT_EQ(parse("1e999"), PL_R_INF);
    ASSERT_EQ(parse("3.5e38"), PL_R_INF);
    ASSERT_EQ(parse("inf"), PL_R_SYNTAX);
    ASSERT_EQ(parse("0x10"), PL_R_SYNTAX);
    ASSERT_EQ(parse(""), PL_R_SYNTAX);
    ASSERT_EQ(parse("   "), PL_R_SYNTAX);
    ASSERT_EQ(parse("1 2"), PL_R_SYNTAX);
    ASSERT_EQ(parse("1-"), PL_R_SYNTAX);
    ASSERT_EQ(parse("[1]"), PL_R_SYNTAX);
    char longnum[100];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[99] = 0;
    ASSERT_EQ(parse(longnum), PL_R_SYNTAX);
}

TEST(json_objects) {
    ASSERT_EQ(parse("{\"v\": 1.5, \"t\": 1700000000.25}"), PL_OK);
    ASSERT_NEAR(v, 1.5, 0);
    ASSERT_NEAR(t, 1700000000.25, 0);
    ASSERT_EQ(parse("{\"value\":2,\"timestamp\":5}"), PL_OK);
    ASSERT_NEAR(v, 2, 0);
    ASSERT_NEAR(t, 5, 0);
    ASSERT_EQ(parse("{\"time\":7,\"v\":null}"), PL_OK);
    ASSERT(isnan(v));
    ASSERT_NEAR(t, 7, 0);
    ASSERT_EQ(parse("{\"v\":3}"), PL_OK);
    ASSERT_NEAR(t, 99.0, 0);
    ASSERT_EQ(parse("{\"meta\": {\"a\": [1, {\"b\": \"}\\\"\"}, [], {}], \"ok\": true}, \"v\": 4, \"x\": false}"), PL_OK);
    ASSERT_NEAR(v, 4, 0);
    ASSERT_EQ(parse(" { \"v\" : -0.5 } \n"), PL_OK);
    ASSERT_NEAR(v, -0.5, 0);
}

TEST(json_refusals) {
    ASSERT_EQ(parse("{}"), PL_R_MISSING);
    ASSERT_EQ(parse("{\"t\": 5}"), PL_R_MISSING);
    ASSERT_EQ(parse("{\"v\": \"5\"}"), PL_R_TYPE);
    ASSERT_EQ(parse("{\"v\": true}"), PL_R_TYPE);
    ASSERT_EQ(parse("{\"v\": [5]}"), PL_R_TYPE);
    ASSERT_EQ(parse("{\"v\": 1, \"t\": null}"), PL_R_TYPE);
    ASSERT_EQ(parse("{\"v\": 1e400}"), PL_R_INF);
    ASSERT_EQ(parse("{\"v\": 1, \"t\": 1e400}"), PL_R_INF);
    ASSERT_EQ(parse("{"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1,}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\" 1}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{v: 1}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1} x"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": [1,]}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": {\"b\"}}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": \"unterminated}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": \"ctl\x01\"}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": nope}"), PL_R_SYNTAX);
    ASSERT_EQ(parse("{\"v\": 1, \"a\": [1 2]}"), PL_R_SYNTAX);
}

/* 64 levels of nesting are skipped; 65 are refused, and a million brackets
 * cost a linear scan, never the stack. */
TEST(nesting_bound) {
    static char buf[2100000];
    for (int depth = 63; depth <= 65; depth++) {
        int n = sprintf(buf, "{\"a\": ");
        for (int i = 0; i < depth; i++) buf[n++] = '[';
        for (int i = 0; i < depth; i++) buf[n++] = ']';
        sprintf(buf + n, ", \"v\": 1}");
        ASSERT_EQ(parse(buf), depth <= 64 ? PL_OK : PL_R_SYNTAX);
    }
    int n = sprintf(buf, "{\"a\": ");
    memset(buf + n, '[', 2000000);
    buf[n + 2000000] = 0;
    ASSERT_EQ(parse(buf), PL_R_SYNTAX);
}

TEST(msgpack_sniffing) {
    const uint8_t map[] = {0x83}, arr[] = {0x91}, m16[] = {0xde}, a32[] = {0xdd}, num[] = {'1'}, brace[] = {'{'},
                  fix[] = {0x05};
    ASSERT(pl_is_msgpack(map, 1) && pl_is_msgpack(arr, 1) && pl_is_msgpack(m16, 1) && pl_is_msgpack(a32, 1));
    ASSERT(!pl_is_msgpack(num, 1) && !pl_is_msgpack(brace, 1) && !pl_is_msgpack(fix, 1) && !pl_is_msgpack(map, 0));
}

TEST(topic_mapping) {
    char id[255];
    size_t n;
    const char *tp = "sensors/hall/t1";
    ASSERT_EQ(pl_topic_to_id(tp, strlen(tp), "sensors/", '.', id, sizeof id, &n), 1);
    ASSERT_EQ(n, 7);
    ASSERT(!memcmp(id, "hall.t1", 7));
    ASSERT_EQ(pl_topic_to_id(tp, strlen(tp), "", '/', id, sizeof id, &n), 1);
    ASSERT_EQ(n, strlen(tp));
    ASSERT_EQ(pl_topic_to_id(tp, strlen(tp), "other/", '.', id, sizeof id, &n), 0);
    ASSERT_EQ(pl_topic_to_id("sensors/", 8, "sensors/", '.', id, sizeof id, &n), 0);
    char big[400];
    memset(big, 'x', sizeof big);
    ASSERT_EQ(pl_topic_to_id(big, 255, "", '.', id, sizeof id, &n), 1);
    ASSERT_EQ(pl_topic_to_id(big, 256, "", '.', id, sizeof id, &n), 0);
    ASSERT_EQ(pl_topic_to_id("a\xff", 2, "", '.', id, sizeof id, &n), 0);
}

TEST(json_forecast) {
    float yhat[3] = {1, 2, 3}, lo[3] = {0.5f, 1, 2}, hi[3] = {2, 3, NAN};
    mp_forecast f = {"a\"b\n", 4, 1700000000.5, NAN, 60, 3, yhat, lo, hi, 0.25f, 1, 0};
    char buf[512];
    size_t n = pl_json_forecast(buf, sizeof buf, &f);
    ASSERT(n > 0);
    buf[n] = 0;
    ASSERT_STREQ(buf, "{\"s\":\"a\\\"b\\u000a\",\"t\":1700000000.5,\"v\":null,\"dt\":60,\"h\":[1,2,3],"
                      "\"yhat\":[1,2,3],\"lo\":[0.5,1,2],\"hi\":[2,3,null],\"score\":0.25,\"level\":1}");
    /* The reader takes the writer's output back (a forecast is a valid payload
     * without "v" being a number: v is null, so missing). */
    ASSERT_EQ(pl_parse((const uint8_t *)buf, n, 0, &t, &v), PL_OK);
    ASSERT(isnan(v));
    ASSERT_NEAR(t, 1700000000.5, 0);
    for (size_t cap = 0; cap < n; cap++) ASSERT_EQ(pl_json_forecast(buf, cap, &f), 0);
    ASSERT_STREQ(pl_reason_name(PL_R_MISSING), "missing");
}

TEST(json_alert) {
    float yhat[2] = {1, 2}, lo[2] = {0.5f, 1}, hi[2] = {2, 3};
    mp_forecast f = {"s1", 2, 1700000000.5, 9.5, 60, 2, yhat, lo, hi, 0.875f, 2, 0};
    mp_alert a = {"spike", 1700000000.5, 1.0, 0.5, NAN};
    char buf[512];
    size_t n = pl_json_alert(buf, sizeof buf, &f, &a);
    ASSERT(n > 0);
    buf[n] = 0;
    ASSERT_STREQ(buf, "{\"s\":\"s1\",\"t\":1700000000.5,\"v\":9.5,\"dt\":60,\"h\":[1,2],"
                      "\"yhat\":[1,2],\"lo\":[0.5,1],\"hi\":[2,3],\"score\":0.875,\"level\":2,"
                      "\"kind\":\"spike\",\"since\":1700000000.5,\"expected\":1,\"expected_lo\":0.5,\"expected_hi\":null}");
    for (size_t cap = 0; cap < n; cap++) ASSERT_EQ(pl_json_alert(buf, cap, &f, &a), 0);
}

TT_MAIN(TEST_ENTRY(json_alert), TEST_ENTRY(bare_numbers), TEST_ENTRY(json_objects), TEST_ENTRY(json_refusals), TEST_ENTRY(nesting_bound),
        TEST_ENTRY(msgpack_sniffing), TEST_ENTRY(topic_mapping), TEST_ENTRY(json_forecast))
