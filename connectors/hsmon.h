/*
 * hsmon.h: counts the refused handshakes of one CURVE socket from libzmq's
 * socket monitor (docs/PROTOCOL.md §9). Prefix: hm_.
 *
 * The ZAP handler (curve.h) only sees clients that got as far as a valid
 * CURVE HELLO and INITIATE. A client without CURVE, one with the wrong
 * server key, or a port scanner sending garbage fails earlier, inside
 * libzmq, and is refused without ZAP ever hearing of it. The socket
 * monitor reports those: hm_open asks libzmq to publish the socket's
 * connection and handshake events on an inproc PAIR, which the daemon's
 * loop drains with hm_drain (never blocking).
 *
 * Reasons (hm_reason_name gives the label used in stats and /metrics):
 *   mechanism      the client speaks another mechanism (no CURVE keys: NULL)
 *   cryptographic  a CURVE message that does not decrypt (wrong server key)
 *   protocol       any other ZMTP protocol error during the handshake
 *   auth           ZAP said no (the client key is not on the allow-list)
 *   no_detail      the handshake failed without a reason: closed or timed out
 *                  half-way, an I/O error
 *   closed         the connection closed before a handshake began: not
 *                  ZMTP 3 (garbage, HTTP, ZMTP 1.0/2.0 peers, which libzmq
 *                  refuses whenever ZAP is on) and so no handshake event
 *
 * "closed" has no event of its own: a connection that was accepted and
 * closed without a handshake result is one. Handshake results carry no fd,
 * so a result is matched to the one pending connection when there is one,
 * and otherwise kept as a token that the next pending connection to close
 * uses up. Every connection ends with one close, so the count is exact once
 * the connections open during overlapping handshakes have closed; a count
 * read while they are open may be off by their number. At most HM_PENDING
 * handshakes are tracked at once; connections beyond that are not counted
 * as "closed" (their handshake failures still are).
 *
 * Ownership: hm_monitor is embedded by the caller (zero it first); hm_open
 * creates its PAIR socket, hm_close stops the monitor and closes it before
 * the monitored socket is closed. Threads: the thread that owns the
 * monitored socket (the daemon's loop). Nothing is allocated by hm_event or
 * hm_drain.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef HSMON_H
#define HSMON_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

typedef enum hm_reason {
    HM_MECHANISM,
    HM_CRYPTO,
    HM_PROTOCOL,
    HM_AUTH,
    HM_NO_DETAIL,
    HM_CLOSED,
    HM__COUNT
} hm_reason;

#define HM_PENDING 256 /* handshakes tracked at once per socket */

typedef struct hm_monitor {
    void *pair;                 /* PAIR connected to the monitor; owned, NULL when closed */
    void *sock;                 /* the monitored socket, borrowed */
    uint64_t failed[HM__COUNT]; /* refused connections per reason */
    uint64_t succeeded;         /* handshakes that passed */
    int pend[HM_PENDING];       /* fds accepted or connected whose handshake has no known result */
    int n_pend;                 /* entries in pend */
    int tokens_ok;              /* results seen while several were pending: successes */
    int tokens_fail;            /* and failures, each to be matched with a close */
} hm_monitor;

/* The label of reason r ("mechanism" .. "closed"); "?" out of range. */
const char *hm_reason_name(int r);

/*
 * Starts monitoring sock (a CURVE server socket in ctx): its monitor is
 * published on inproc://rwkvcast-hsmon-ID (ID unique in ctx), to which m's
 * PAIR connects. Returns RC_OK, or RC_ERR_IO with zmq_strerror in err
 * (errlen bytes) and m unchanged.
 */
rc_err hm_open(hm_monitor *m, void *ctx, void *sock, int id, char *err, size_t errlen);
/* Reads at most max waiting events without blocking and counts them.
 * Returns the connections refused by those events (a sum over reasons). */
uint64_t hm_drain(hm_monitor *m, int max);
/* Stops the monitor and closes the PAIR; safe on a closed or zeroed m. The
 * counts stay. */
void hm_close(hm_monitor *m);

/* One monitor event (ZMQ_EVENT_*, its value), the counting without a
 * socket (hm_drain's core, and the unit test's). Returns the connections
 * it counted as refused (0 or 1). */
int hm_event(hm_monitor *m, unsigned event, uint32_t value);
/* The refused connections over all reasons. */
uint64_t hm_failed_total(const hm_monitor *m);
/* Those after which libzmq 4.3 drops a connecting socket's peer for good
 * (a protocol error ends the session without a reconnect): every reason
 * but no_detail. The caller dials again (server.c). */
uint64_t hm_final_total(const hm_monitor *m);

#endif
