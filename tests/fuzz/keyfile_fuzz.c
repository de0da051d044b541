/*
 * keyfile_fuzz.c: libFuzzer target for the CURVE key files the daemon and
 * the CLI read (connectors/curve.c): the secret key file (curve.server_key,
 * --curve-key), the public key file (--curve-server-key) and the
 * allow-lists (curve_allow), whose lines, comments, lengths, Z85 alphabet,
 * NUL bytes and key counts come from the operator's files. The first byte
 * picks the reader; the rest is the file, written 0600 to one scratch
 * file (a secret key file must be private).
 * Invariants: a reader returns RC_OK or an error with a message naming the
 * file; an accepted secret's public key is the one derived from it; an
 * accepted allow-list holds 1..CV_MAX_ALLOW sorted, distinct keys, each of
 * which cv_allowed finds; everything allocated is freed (our heap counter
 * is back where it was).
 * Seeds: tests/fuzz/corpus/keyfile/.
 *
 * SPDX-License-Identifier: MIT
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/base.h"
#include "connectors/curve.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    snprintf(path, sizeof path, "/dev/shm/keyfile_fuzz_%d.key", (int)getpid());
    return 0;
}

static int put_file(const uint8_t *data, size_t size) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    int ok = write(fd, data, size) == (ssize_t)size;
    return close(fd) == 0 && ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || !put_file(data + 1, size - 1)) return 0;
    size_t heap = rc_mem_used();
    char err[600];
    err[0] = 0;
    uint8_t pub[CV_KEY], sec[CV_KEY];
    rc_err rc;
    switch (data[0] % 3) {
    case 0:
        rc = cv_read_secret(path, pub, sec, err, sizeof err);
        if (rc == RC_OK) {
            char zs[CV_Z85 + 1], zp[CV_Z85 + 1], want[CV_Z85 + 1];
            zmq_z85_encode(zs, sec, CV_KEY);
            zmq_z85_encode(zp, pub, CV_KEY);
            if (zmq_curve_public(want, zs) != 0 || strcmp(want, zp) != 0) abort();
        }
        break;
    case 1:
        rc = cv_read_public(path, pub, err, sizeof err);
        break;
    default: {
        cv_allow a;
        memset(&a, 0, sizeof a);
        rc = cv_read_allow(path, &a, err, sizeof err);
        if (rc == RC_OK) {
            if (a.n < 1 || a.n > CV_MAX_ALLOW) abort();
            for (int i = 0; i < a.n; i++) {
                if (i && memcmp(a.key[i - 1], a.key[i], CV_KEY) >= 0) abort();
                if (!cv_allowed(&a, a.key[i])) abort();
            }
        } else if (a.key || a.n) abort(); /* a failed read leaves nothing behind */
        cv_allow_free(&a);
        break;
    }
    }
    if (rc != RC_OK && (!err[0] || !strstr(err, path))) abort();
    if (rc_mem_used() != heap) abort();
    return 0;
}
