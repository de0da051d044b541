/*
 * hsmon.c: refused CURVE handshakes counted from libzmq's socket monitor
 * (hsmon.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/hsmon.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

/* The events hm_event reads; the others are never published to us. */
#define HM_EVENTS                                                                                    \
    (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |                             \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                    \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)

const char *hm_reason_name(int r) {
    static const char *const name[HM__COUNT] = {"mechanism", "cryptographic", "protocol",
                                                "auth",      "no_detail",     "closed"};
    return r >= 0 && r < HM__COUNT ? name[r] : "?";
}

uint64_t hm_failed_total(const hm_monitor *m) {
    uint64_t t = 0;
    for (int r = 0; r < HM__COUNT; r++) t += m->failed[r];
    return t;
}

uint64_t hm_final_total(const hm_monitor *m) { return hm_failed_total(m) - m->failed[HM_NO_DETAIL]; }

static void pend_add(hm_monitor *m, int fd) {
    for (int i = 0; i < m->n_pend; i++)
        if (m->pend[i] == fd) return;
    /* Beyond HM_PENDING the connection is not tracked (hsmon.h). */
    if (m->n_pend < HM_PENDING) m->pend[m->n_pend++] = fd;
}

static int pend_remove(hm_monitor *m, int fd) {
    for (int i = 0; i < m->n_pend; i++)
        if (m->pend[i] == fd) {
            m->pend[i] = m->pend[--m->n_pend];
            return 1;
        }
    return 0;
}

/* Once there are as many tokens as pending connections, every pending one
 * has its result: none of them can close as "closed". */
static void settle(hm_monitor *m) {
    if (m->tokens_ok + m->tokens_fail >= m->n_pend) m->n_pend = m->tokens_ok = m->tokens_fail = 0;
}

/* A handshake result of some pending connection (hsmon.h: matching). */
static void result(hm_monitor *m, int ok) {
    if (m->n_pend == 0) return; /* a connection we never saw accepted */
    if (ok) m->tokens_ok++;
    else m->tokens_fail++;
    settle(m);
}

int hm_event(hm_monitor *m, unsigned event, uint32_t value) {
    int r = -1;
    switch (event) {
    case ZMQ_EVENT_ACCEPTED:
    case ZMQ_EVENT_CONNECTED:
        pend_add(m, (int)value);
        return 0;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        m->succeeded++;
        result(m, 1);
        return 0;
    case ZMQ_EVENT_DISCONNECTED:
        if (!pend_remove(m, (int)value)) return 0;
        /* A failure's connection closes right after it; use its token first. */
        if (m->tokens_fail) m->tokens_fail--;
        else if (m->tokens_ok) m->tokens_ok--;
        else {
            m->failed[HM_CLOSED]++;
            return 1;
        }
        settle(m);
        return 0;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: r = HM_AUTH; break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: r = HM_NO_DETAIL; break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        r = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? HM_MECHANISM
            : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC    ? HM_CRYPTO
                                                                : HM_PROTOCOL;
        break;
    default:
        return 0;
    }
    m->failed[r]++;
    result(m, 0);
    return 1;
}

rc_err hm_open(hm_monitor *m, void *ctx, void *sock, int id, char *err, size_t errlen) {
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://rwkvcast-hsmon-%d", id);
    if (zmq_socket_monitor(sock, addr, HM_EVENTS)) {
        snprintf(err, errlen, "Cannot monitor the socket's handshakes: %s.", zmq_strerror(zmq_errno()));
        return RC_ERR_IO;
    }
    void *p = zmq_socket(ctx, ZMQ_PAIR);
    /* No receive limit: libzmq's I/O thread sends the events blocking, so
     * a full pipe would stall every socket of the context until the loop
     * drains it; the loop drains each round instead. */
    int zero = 0;
    if (!p || zmq_setsockopt(p, ZMQ_RCVHWM, &zero, sizeof zero) ||
        zmq_setsockopt(p, ZMQ_LINGER, &zero, sizeof zero) || zmq_connect(p, addr)) {
        snprintf(err, errlen, "Cannot monitor the socket's handshakes: %s.", zmq_strerror(zmq_errno()));
        if (p) zmq_close(p);
        zmq_socket_monitor(sock, NULL, 0);
        return RC_ERR_IO;
    }
    m->pair = p;
    m->sock = sock;
    return RC_OK;
}

uint64_t hm_drain(hm_monitor *m, int max) {
    uint64_t refused = 0;
    if (!m->pair) return 0;
    for (int n = 0; n < max; n++) {
        /* Frame 1: u16 event, u32 value (host order); frame 2: the
         * endpoint, not needed (one monitor per socket). */
        uint8_t ev[6];
        int got = zmq_recv(m->pair, ev, sizeof ev, ZMQ_DONTWAIT);
        if (got < 0) break;
        int more = 0;
        size_t ml = sizeof more;
        char skip[64];
        while (zmq_getsockopt(m->pair, ZMQ_RCVMORE, &more, &ml) == 0 && more)
            if (zmq_recv(m->pair, skip, sizeof skip, 0) < 0) break;
        if (got < (int)sizeof ev) continue;
        uint16_t e;
        uint32_t v;
        memcpy(&e, ev, sizeof e);
        memcpy(&v, ev + 2, sizeof v);
        refused += (uint64_t)hm_event(m, e, v);
    }
    return refused;
}

void hm_close(hm_monitor *m) {
    if (!m->pair) return;
    zmq_socket_monitor(m->sock, NULL, 0);
    zmq_close(m->pair);
    m->pair = NULL;
    m->sock = NULL;
}
