/*
 * sockets.c: ZeroMQ socket setup (sockets.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/sockets.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "connectors/curve.h"
#include "connectors/hsmon.h"

static void *fail(void *s, const zq_curve *cv, const char *what, const char *ep, char *errbuf, size_t errlen) {
    if (errbuf) snprintf(errbuf, errlen, "Cannot %s '%s': %s.", what, ep, zmq_strerror(zmq_errno()));
    /* The monitor goes first: stopping it needs the socket. */
    if (cv && cv->mon) hm_close(cv->mon);
    if (s) {
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(s);
    }
    return NULL;
}

static int attach(void *s, const char *ep, int bind) { return bind ? zmq_bind(s, ep) : zmq_connect(s, ep); }

/* CURVE server options and the handshake monitor, before bind/connect (a
 * monitor started after connect could miss the first, and with libzmq 4.3
 * final, refusal); 0, or -1 with errbuf set and s closed. */
static int curve(void *ctx, void *s, const zq_curve *cv, const char *ep, char *errbuf, size_t errlen) {
    if (!cv) return 0;
    char why[256];
    if (cv_server_setup(s, cv->sec, cv->domain, why, sizeof why) == RC_OK &&
        (!cv->mon || hm_open(cv->mon, ctx, s, cv->domain, why, sizeof why) == RC_OK))
        return 0;
    if (errbuf) snprintf(errbuf, errlen, "'%s': %s", ep, why);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(s);
    return -1;
}

void *zq_open_input(void *ctx, const cf_input *in, int rcvhwm, long max_msg, const zq_curve *cv, char *errbuf,
                    size_t errlen) {
    void *s = zmq_socket(ctx, in->type == CF_SUB ? ZMQ_SUB : ZMQ_PULL);
    if (!s) return fail(NULL, cv, "create a socket for", in->endpoint, errbuf, errlen);
    int64_t mm = max_msg;
    int zero = 0;
    if (zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &mm, sizeof mm) ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero))
        return fail(s, cv, "set options on", in->endpoint, errbuf, errlen);
    if (in->type == CF_SUB) {
        int n = in->n_topics ? in->n_topics : 1;
        for (int i = 0; i < n; i++) {
            const char *t = in->n_topics ? in->topics[i] : "";
            if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, t, strlen(t)))
                return fail(s, cv, "subscribe on", in->endpoint, errbuf, errlen);
        }
    }
    if (curve(ctx, s, cv, in->endpoint, errbuf, errlen)) return NULL;
    if (attach(s, in->endpoint, in->bind))
        return fail(s, cv, in->bind ? "bind" : "connect", in->endpoint, errbuf, errlen);
    return s;
}

void *zq_open_pub(void *ctx, const char *endpoint, int bind, int sndhwm, const zq_curve *cv, char *errbuf,
                  size_t errlen) {
    void *s = zmq_socket(ctx, ZMQ_PUB);
    if (!s) return fail(NULL, cv, "create a socket for", endpoint, errbuf, errlen);
    int linger = 200;
    if (zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger))
        return fail(s, cv, "set options on", endpoint, errbuf, errlen);
    if (curve(ctx, s, cv, endpoint, errbuf, errlen)) return NULL;
    if (attach(s, endpoint, bind)) return fail(s, cv, bind ? "bind" : "connect", endpoint, errbuf, errlen);
    return s;
}

void *zq_open_rep(void *ctx, const char *endpoint, const zq_curve *cv, char *errbuf, size_t errlen) {
    void *s = zmq_socket(ctx, ZMQ_REP);
    if (!s) return fail(NULL, cv, "create a socket for", endpoint, errbuf, errlen);
    int linger = 100;
    /* A control request is small; cap it so a stray client cannot make us buffer much. */
    int64_t mm = 64 * 1024;
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &mm, sizeof mm))
        return fail(s, cv, "set options on", endpoint, errbuf, errlen);
    if (curve(ctx, s, cv, endpoint, errbuf, errlen)) return NULL;
    int is_ipc = strncmp(endpoint, "ipc://", 6) == 0;
    /* The umask makes the socket file 0600 from the first instant; the chmod
     * below only re-asserts it. Single-threaded at this point of startup. */
    mode_t old = 0;
    if (is_ipc) old = umask(077);
    int rc = zmq_bind(s, endpoint);
    int saved = errno;
    if (is_ipc) umask(old);
    errno = saved;
    if (rc) return fail(s, cv, "bind", endpoint, errbuf, errlen);
    if (is_ipc && endpoint[6] != '@' && chmod(endpoint + 6, 0600) != 0) {
        if (errbuf) snprintf(errbuf, errlen, "Cannot chmod control socket '%s': %s.", endpoint + 6, strerror(errno));
        if (cv && cv->mon) hm_close(cv->mon);
        zmq_close(s);
        return NULL;
    }
    return s;
}
