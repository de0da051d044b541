/*
 * curve.h: CURVE keys and the ZAP allow-lists of rwkvcastd's TCP endpoints
 * (docs/PROTOCOL.md §9). Prefix: cv_.
 *
 * Key files are text, one Z85 key (40 characters) on a line, '#' starts a
 * comment line, blank lines are skipped:
 *   NAME.key  the secret key, then the public key on the next line; 0600,
 *             refused when the group or others may read it;
 *   NAME.pub  the public key alone (hand it to the other side);
 *   allow-list files hold public keys, one per line (NAME.pub files
 *             concatenated), at most CV_MAX_ALLOW; refused when the group
 *             or others may write them.
 * `rwkvcast keygen NAME` (cv_keygen) writes a fresh pair.
 *
 * ZAP: the daemon binds a REP socket on inproc://zeromq.zap.01 in its
 * context; libzmq sends it one request per CURVE handshake, whose domain
 * (ZMQ_ZAP_DOMAIN, set per endpoint: its index in the daemon's table)
 * says which allow-list applies. cv_zap_serve answers 200 to a listed
 * client key and 400 to anything else, counting the refusals.
 *
 * Errors: every loader returns RC_OK, RC_ERR_IO (open/read; errno in the
 * message) or RC_ERR_FORMAT, with "PATH:LINE: reason" in err (errlen
 * bytes). Threads: any; nothing is shared.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CURVE_H
#define CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

#define CV_KEY 32          /* bytes of a binary key */
#define CV_Z85 40          /* characters of a Z85 key */
#define CV_MAX_ALLOW 4096  /* keys in one allow-list file */

/* 1 when this libzmq has CURVE (built with libsodium). */
int cv_available(void);

/* Reads a secret key file: sec and its public key pub (derived from sec
 * and checked against the file's second line when it has one). Refuses a
 * file the group or others may read (RC_ERR_IO, "chmod 600"). */
rc_err cv_read_secret(const char *path, uint8_t pub[CV_KEY], uint8_t sec[CV_KEY], char *err, size_t errlen);
/* Reads a public key file: exactly one key. */
rc_err cv_read_public(const char *path, uint8_t pub[CV_KEY], char *err, size_t errlen);

typedef struct cv_allow {
    uint8_t (*key)[CV_KEY]; /* (n) sorted client public keys; owned, cv_allow_free */
    int n;                  /* keys; >= 1 after a successful read */
} cv_allow;

/* Reads an allow-list file into a (zeroed by the caller); at least one
 * key, at most CV_MAX_ALLOW. Repeated keys are kept once. A file the group
 * or others may write is refused (RC_ERR_IO, "chmod go-w"). */
rc_err cv_read_allow(const char *path, cv_allow *a, char *err, size_t errlen);
void cv_allow_free(cv_allow *a);
/* 1 when key is on a. O(log n). */
int cv_allowed(const cv_allow *a, const uint8_t key[CV_KEY]);

/* Writes a fresh key pair to BASE.key (0600) and BASE.pub (0644), creating
 * neither if either exists (RC_ERR_IO, "exists"). */
rc_err cv_keygen(const char *base, char *err, size_t errlen);

/* A client socket (send, tail, ctl, loadgen), before it connects: its key
 * pair from key_file (a secret key file) and the daemon's public key from
 * server_pub_file. */
rc_err cv_client_setup(void *sock, const char *key_file, const char *server_pub_file, char *err, size_t errlen);
/* A daemon socket, before bind/connect: CURVE server with secret key sec,
 * its ZAP domain the decimal domain (the index of its allow-list). */
rc_err cv_server_setup(void *sock, const uint8_t sec[CV_KEY], int domain, char *err, size_t errlen);

/*
 * Answers every ZAP request waiting on zap (a REP socket bound on
 * inproc://zeromq.zap.01), without blocking. The request's domain is the
 * decimal index of the allow-list in lists (n of them); a CURVE client key
 * on that list gets 200, anything else (another mechanism, an unknown
 * domain, a key not listed, a malformed request) 400, and rejected[index]
 * (or rejected[n] for an unknown domain) goes up by one. Returns the
 * requests answered. Loop thread.
 */
int cv_zap_serve(void *zap, const cv_allow *lists, int n, uint64_t *rejected);

#endif
