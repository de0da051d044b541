/*
 * registry_test.c: the series registry: insert/find/remove against a brute-force
 * model under random operations, the limit, and LRU order.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "daemon/registry.h"
#include "tests/unit/harness.h"

TEST(basic_and_limit) {
    rc_err err;
    rg_registry *r = rg_new(3, &err);
    ASSERT(r);
    uint32_t a, b, c, d;
    ASSERT_EQ(rg_insert(r, "a", 1, &a), RC_OK);
    ASSERT_EQ(rg_insert(r, "bb", 2, &b), RC_OK);
    ASSERT_EQ(rg_insert(r, "ccc", 3, &c), RC_OK);
    ASSERT_EQ(rg_insert(r, "d", 1, &d), RC_ERR_LIMIT);
    ASSERT_EQ(a, 0);
    ASSERT_EQ(rg_find(r, "bb", 2), b);
    ASSERT_EQ(rg_find(r, "b", 1), RG_NONE);
    ASSERT_STREQ(rg_id(r, c, NULL), "ccc");
    ASSERT_EQ(rg_lru(r), a);
    rg_touch(r, a);
    ASSERT_EQ(rg_lru(r), b);
    rg_remove(r, b);
    ASSERT_EQ(rg_lru(r), c);
    ASSERT_EQ(rg_count(r), 2);
    ASSERT_EQ(rg_insert(r, "d", 1, &d), RC_OK);
    ASSERT_EQ(d, b); /* the freed slot is reused */
    ASSERT_EQ(rg_next(r, 0), 0);
    ASSERT(rg_id(r, 7, NULL) == NULL);
    char big[300] = {0};
    ASSERT_EQ(rg_insert(r, big, 256, &d), RC_ERR_PROTO);
    rg_free(r);
    ASSERT(rg_new(0, &err) == NULL);
    ASSERT_EQ(err, RC_ERR_CONFIG);
}

/* Random operations against a plain array model; small table to force
 * long clusters and wrap-around in the backward-shift deletion. */
TEST(random_against_model) {
    enum { N = 200, IDS = 400 };
    rc_err err;
    rg_registry *r = rg_new(N, &err);
    ASSERT(r);
    int where[IDS];
    for (int i = 0; i < IDS; i++) where[i] = -1;
    uint64_t x = 88172645463325252ull;
    int count = 0;
    for (int step = 0; step < 200000; step++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int id = (int)(x % IDS);
        char s[16];
        int n = snprintf(s, sizeof s, "series-%d", id);
        uint32_t got = rg_find(r, s, (size_t)n);
        ASSERT_EQ(got == RG_NONE ? -1 : (int)got, where[id]);
        if (where[id] >= 0 && (x >> 20) % 2) {
            rg_remove(r, (uint32_t)where[id]);
            where[id] = -1;
            count--;
        } else if (where[id] < 0) {
            uint32_t sl;
            rc_err rc = rg_insert(r, s, (size_t)n, &sl);
            if (count == N) {
                ASSERT_EQ(rc, RC_ERR_LIMIT);
                uint32_t victim = rg_lru(r);
                ASSERT_NE(victim, RG_NONE);
                for (int k = 0; k < IDS; k++)
                    if (where[k] == (int)victim) where[k] = -1;
                rg_remove(r, victim);
                count--;
            } else {
                ASSERT_EQ(rc, RC_OK);
                where[id] = (int)sl;
                count++;
            }
        } else {
            rg_touch(r, (uint32_t)where[id]);
        }
        ASSERT_EQ(rg_count(r), count);
    }
    rg_free(r);
}

TEST(oom) {
    for (long n = 1; n < 6; n++) {
        rc_err err;
        rc_fail_after(n, 0);
        rg_registry *r = rg_new(100, &err);
        rc_fail_after(0, 0);
        if (r) rg_free(r);
        else ASSERT_EQ(err, RC_ERR_NOMEM);
    }
}

/* The stepwise lookup (hash, prefetches, find with the hash) answers what
 * rg_find answers, for present, absent and removed ids, and the prefetches
 * are harmless on empty buckets and after the map changed. */
TEST(hashed_lookup_equals_find) {
    rc_err err;
    rg_registry *r = rg_new(1000, &err);
    ASSERT(r);
    char id[32];
    for (int i = 0; i < 1000; i += 2) {
        int n = snprintf(id, sizeof id, "s.%d", i);
        uint32_t slot;
        ASSERT_EQ(rg_insert(r, id, (size_t)n, &slot), RC_OK);
    }
    rg_remove(r, rg_find(r, "s.10", 4));
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(id, sizeof id, "s.%d", i);
        uint64_t h = rg_hash(id, (size_t)n);
        rg_prefetch_bucket(r, h);
        rg_prefetch_slot(r, h);
        ASSERT_EQ(rg_find_hashed(r, id, (size_t)n, h), rg_find(r, id, (size_t)n));
        ASSERT_EQ(rg_find(r, id, (size_t)n) != RG_NONE, i % 2 == 0 && i != 10);
    }
    ASSERT_EQ(rg_find_hashed(r, id, 0, rg_hash(id, 0)), RG_NONE);
    rg_free(r);
}

TT_MAIN(TEST_ENTRY(basic_and_limit), TEST_ENTRY(hashed_lookup_equals_find), TEST_ENTRY(oom), TEST_ENTRY(random_against_model))
