/*
 * common_test.c: the heap wrapper (byte counting, fault injection, aligned
 * blocks), little-endian helpers, the hash, and the log rate limiter.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "common/log.h"
#include "common/base.h"
#include "tests/unit/harness.h"

TEST(heap_counts_bytes) {
    size_t base = rc_mem_used();
    void *a = rc_malloc(100), *b = rc_calloc(10, 30), *c = rc_aligned_alloc(64, 1000);
    ASSERT(a && b && c);
    ASSERT_EQ(((uintptr_t)c) % 64, 0);
    ASSERT_EQ(rc_mem_used() - base, 100 + 300 + 1000);
    for (int i = 0; i < 300; i++) ASSERT_EQ(((unsigned char *)b)[i], 0);
    a = rc_realloc(a, 5000);
    ASSERT(a != NULL);
    ASSERT_EQ(rc_mem_used() - base, 5000 + 300 + 1000);
    rc_free(a);
    rc_free(b);
    rc_free(c);
    rc_free(NULL);
    ASSERT_EQ(rc_mem_used(), base);
    ASSERT(rc_calloc(SIZE_MAX / 2, 4) == NULL); /* overflow is refused, not wrapped */
}

TEST(fault_injection_transient_and_persistent) {
    rc_fail_after(3, 0);
    void *a = rc_malloc(8), *b = rc_malloc(8), *c = rc_malloc(8), *d = rc_malloc(8);
    ASSERT(a && b && !c && d); /* only the 3rd fails */
    rc_free(a);
    rc_free(b);
    rc_free(d);
    rc_fail_after(2, 1);
    a = rc_malloc(8);
    ASSERT(a != NULL);
    ASSERT(rc_malloc(8) == NULL);
    ASSERT(rc_malloc(8) == NULL); /* persistent: keeps failing */
    ASSERT(rc_aligned_alloc(64, 8) == NULL);
    ASSERT(rc_strdup("x") == NULL);
    rc_fail_after(0, 0);
    b = rc_strdup("hello");
    ASSERT_STREQ(b, "hello");
    rc_free(a);
    rc_free(b);
}

TEST(little_endian_helpers) {
    uint8_t buf[8];
    rc_put_u32(buf, 0x01020304u);
    ASSERT_EQ(buf[0], 4);
    ASSERT_EQ(buf[3], 1);
    ASSERT_EQ(rc_get_u32(buf), 0x01020304u);
    rc_put_u64(buf, 0x1122334455667788ULL);
    ASSERT_EQ(buf[0], 0x88);
    ASSERT(rc_get_u64(buf) == 0x1122334455667788ULL);
    rc_put_f32(buf, -1.5f);
    ASSERT(rc_get_f32(buf) == -1.5f);
    rc_put_f64(buf, M_PI);
    ASSERT(rc_get_f64(buf) == M_PI);
}

TEST(hash_is_fnv1a) {
    /* Published FNV-1a 64 test vectors. */
    ASSERT(rc_hash64(RC_HASH_INIT, "", 0) == 0xcbf29ce484222325ULL);
    ASSERT(rc_hash64(RC_HASH_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    ASSERT(rc_hash64(RC_HASH_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
    /* Streaming equals one shot. */
    ASSERT(rc_hash64(rc_hash64(RC_HASH_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

/* Pinned outputs: the tools' generated data sets depend on these bits. */
TEST(mix64_is_murmur3_finalizer) {
    ASSERT(rc_mix64(0) == 0);
    ASSERT(rc_mix64(1) == 0xb456bcfc34c2cb2cULL);
    ASSERT(rc_mix64(12345ULL * 31337u) == 0x77996466353d385fULL);
}

TEST(strerror_total) {
    for (int e = 0; e <= RC_ERR__COUNT; e++) ASSERT(rc_strerror((rc_err)e) != NULL);
    ASSERT_STREQ(rc_strerror(RC_OK), "ok");
    ASSERT_STREQ(rc_strerror((rc_err)999), "unknown error");
}

TEST(rate_limiter_bounds_messages) {
    lg_ratelimit rl;
    lg_rl_init(&rl, 0.001, 5); /* burst of 5, then ~nothing */
    int allowed = 0;
    for (int i = 0; i < 100; i++) allowed += lg_rl_allow(&rl);
    ASSERT_EQ(allowed, 5);
    ASSERT_EQ(rl.suppressed, 95);
    lg_rl_init(&rl, 1e9, 1); /* refills instantly */
    for (int i = 0; i < 10; i++) {
        int64_t t = lg_mono_ns();
        while (lg_mono_ns() - t < 1000) {
        }
        ASSERT(lg_rl_allow(&rl));
    }
}

TEST(level_names) {
    ASSERT_EQ(lg_level_from_name("debug"), LG_DEBUG);
    ASSERT_EQ(lg_level_from_name("WARNING"), LG_WARNING);
    ASSERT_EQ(lg_level_from_name("loud"), -1);
}

/* Untrusted ids in log lines and on terminals: controls, C1 controls,
 * backslash and quote escaped, UTF-8 kept, long input cut with "...". */
TEST(escape_untrusted_text) {
    char b[LG_ESCAPE_CAP(255)];
    ASSERT_STREQ(lg_escape(b, sizeof b, "cpu.total", 9), "cpu.total");
    ASSERT_STREQ(lg_escape(b, sizeof b, "a\nC fake\x1b[31m", 13), "a\\x0aC fake\\x1b[31m");
    ASSERT_STREQ(lg_escape(b, sizeof b, "q'\\\x7f", 4), "q\\'\\\\\\x7f");
    ASSERT_STREQ(lg_escape(b, sizeof b, "caf\xc3\xa9", 5), "caf\xc3\xa9");
    ASSERT_STREQ(lg_escape(b, sizeof b, "x\xc2\x9b" "1m", 5), "x\\xc2\\x9b1m");
    ASSERT_STREQ(lg_escape(b, sizeof b, "nul\0in", 6), "nul\\x00in");
    /* 255 bytes of controls fit the documented cap exactly. */
    char ctl[255];
    memset(ctl, 1, sizeof ctl);
    ASSERT_EQ(strlen(lg_escape(b, sizeof b, ctl, sizeof ctl)), 4 * 255);
    /* A small buffer ends in "..." and is always terminated. */
    char small[10];
    ASSERT_STREQ(lg_escape(small, sizeof small, "abcdefghijklmnop", 16), "abcdef...");
    ASSERT_STREQ(lg_escape(small, sizeof small, "\x01\x02\x03", 3), "\\x01...");
    ASSERT_STREQ(lg_escape(small, 4, "abcdef", 6), "...");
}

TT_MAIN(TEST_ENTRY(heap_counts_bytes), TEST_ENTRY(fault_injection_transient_and_persistent),
        TEST_ENTRY(little_endian_helpers), TEST_ENTRY(hash_is_fnv1a), TEST_ENTRY(mix64_is_murmur3_finalizer),
        TEST_ENTRY(strerror_total),
        TEST_ENTRY(rate_limiter_bounds_messages), TEST_ENTRY(level_names), TEST_ENTRY(escape_untrusted_text))
