/*
 * hsmon_test.c: the counting of refused CURVE handshakes from socket
 * monitor events (connectors/hsmon.c), fed event sequences as libzmq
 * 4.3 emits them: each failure reason, garbage closed before a handshake,
 * clients that pass, overlapping handshakes (results carry no fd), fd
 * reuse and more pending handshakes than the table holds. The e2e
 * test_curve.py runs the same against a real daemon.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <zmq.h>

#include "connectors/hsmon.h"
#include "tests/unit/harness.h"

#define ACC ZMQ_EVENT_ACCEPTED
#define DIS ZMQ_EVENT_DISCONNECTED
#define OK ZMQ_EVENT_HANDSHAKE_SUCCEEDED

static int fail_ev(hm_monitor *m, hm_reason r) {
    switch (r) {
    case HM_MECHANISM:
        return hm_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    case HM_CRYPTO: return hm_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC);
    case HM_PROTOCOL:
        return hm_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND);
    case HM_AUTH: return hm_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);
    case HM_NO_DETAIL: return hm_event(m, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32);
    default: return 0;
    }
}

TEST(each_reason_once) {
    hm_monitor m;
    memset(&m, 0, sizeof m);
    for (int r = HM_MECHANISM; r <= HM_NO_DETAIL; r++) {
        ASSERT_EQ(hm_event(&m, ACC, 14), 0);
        ASSERT_EQ(fail_ev(&m, (hm_reason)r), 1);
        ASSERT_EQ(hm_event(&m, DIS, 14), 0);
    }
    /* Garbage: accepted and closed, no handshake event at all. */
    ASSERT_EQ(hm_event(&m, ACC, 15), 0);
    ASSERT_EQ(hm_event(&m, DIS, 15), 1);
    for (int r = 0; r < HM__COUNT; r++) ASSERT_EQ(m.failed[r], 1);
    ASSERT_EQ(hm_failed_total(&m), HM__COUNT);
    /* A client that passes and later leaves is no refusal. */
    ASSERT_EQ(hm_event(&m, ACC, 16), 0);
    ASSERT_EQ(hm_event(&m, OK, 0), 0);
    ASSERT_EQ(hm_event(&m, DIS, 16), 0);
    ASSERT_EQ(m.succeeded, 1);
    ASSERT_EQ(hm_failed_total(&m), HM__COUNT);
    ASSERT_EQ(m.n_pend, 0);
    /* Events of no interest, and a close of a connection never seen. */
    ASSERT_EQ(hm_event(&m, ZMQ_EVENT_LISTENING, 3), 0);
    ASSERT_EQ(hm_event(&m, DIS, 99), 0);
    ASSERT_EQ(hm_event(&m, OK, 0), 0);
    ASSERT_EQ(hm_failed_total(&m), HM__COUNT);
    ASSERT_STREQ(hm_reason_name(HM_CLOSED), "closed");
    ASSERT_STREQ(hm_reason_name(HM__COUNT), "?");
}

/* Overlapping handshakes: results cannot be tied to a connection, yet the
 * count of "closed" is exact once they have all closed. */
TEST(overlapping_handshakes) {
    hm_monitor m;
    memset(&m, 0, sizeof m);
    /* a passes, b is garbage; b closes first, then a. */
    hm_event(&m, ACC, 20);
    hm_event(&m, ACC, 21);
    hm_event(&m, OK, 0);
    hm_event(&m, DIS, 21);
    hm_event(&m, DIS, 20);
    ASSERT_EQ(m.failed[HM_CLOSED], 1);
    /* a and b both pass later; a closes in between. */
    memset(&m, 0, sizeof m);
    hm_event(&m, ACC, 20);
    hm_event(&m, ACC, 21);
    hm_event(&m, OK, 0);
    hm_event(&m, DIS, 20);
    hm_event(&m, OK, 0);
    hm_event(&m, DIS, 21);
    ASSERT_EQ(hm_failed_total(&m), 0);
    ASSERT_EQ(m.succeeded, 2);
    ASSERT_EQ(m.n_pend, 0);
    /* A failure while a garbage connection is pending; the garbage closes
     * before the failed one (which closes right after its event in libzmq,
     * but order is not relied on). */
    memset(&m, 0, sizeof m);
    hm_event(&m, ACC, 30);
    hm_event(&m, ACC, 31);
    fail_ev(&m, HM_AUTH);
    hm_event(&m, DIS, 31);
    hm_event(&m, DIS, 30);
    ASSERT_EQ(m.failed[HM_AUTH], 1);
    ASSERT_EQ(m.failed[HM_CLOSED], 1);
    ASSERT_EQ(m.n_pend, 0);
}

/* A random interleaving of many connections of every kind: the totals
 * match once all have closed. */
TEST(random_interleaving_totals) {
    uint64_t seed = 88172645463325252ull;
    for (int round = 0; round < 200; round++) {
        hm_monitor m;
        memset(&m, 0, sizeof m);
        enum { N = 40 };
        int kind[N], state[N]; /* kind: 0 pass, 1..5 fail reason + 1, 6 garbage; state 0 new 1 open 2 result 3 closed */
        uint64_t want[HM__COUNT] = {0};
        for (int i = 0; i < N; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            kind[i] = (int)(seed % 7);
            state[i] = 0;
            if (kind[i] >= 1 && kind[i] <= 5) want[kind[i] - 1]++;
            if (kind[i] == 6) want[HM_CLOSED]++;
        }
        int left = 0; /* events still to send: 3 a connection, 2 for garbage */
        for (int i = 0; i < N; i++) left += kind[i] == 6 ? 2 : 3;
        while (left > 0) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            int i = (int)(seed % N);
            if (state[i] == 3) continue;
            if (state[i] == 0) hm_event(&m, ACC, 100 + (uint32_t)i), state[i] = kind[i] == 6 ? 2 : 1;
            else if (state[i] == 1) {
                if (kind[i] == 0) hm_event(&m, OK, 0);
                else fail_ev(&m, (hm_reason)(kind[i] - 1));
                state[i] = 2;
            } else hm_event(&m, DIS, 100 + (uint32_t)i), state[i] = 3;
            left--;
        }
        for (int r = 0; r < HM__COUNT; r++) ASSERT_EQ(m.failed[r], want[r]);
        ASSERT_EQ(m.n_pend, 0);
    }
}

/* More handshakes than the table holds: no crash, no count beyond truth. */
TEST(table_full) {
    hm_monitor m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < HM_PENDING + 50; i++) hm_event(&m, ACC, (uint32_t)(1000 + i));
    ASSERT_EQ(m.n_pend, HM_PENDING);
    hm_event(&m, ACC, 1000); /* a reused fd is kept once */
    ASSERT_EQ(m.n_pend, HM_PENDING);
    for (int i = 0; i < HM_PENDING + 50; i++) hm_event(&m, DIS, (uint32_t)(1000 + i));
    ASSERT_EQ(m.failed[HM_CLOSED], HM_PENDING);
    ASSERT_EQ(m.n_pend, 0);
}

TT_MAIN(TEST_ENTRY(each_reason_once), TEST_ENTRY(overlapping_handshakes), TEST_ENTRY(random_interleaving_totals),
        TEST_ENTRY(table_full))
