/*
 * curve.c: CURVE key files, allow-lists and the ZAP handler (curve.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "connectors/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int cv_available(void) { return zmq_has("curve") == 1; }

/* Key files are small: anything above this is not one. */
#define CV_FILE_MAX (1 << 20)

typedef struct kfile {
    FILE *f;
    const char *path;
    long line;        /* of the last key returned */
    char *err;
    size_t errlen;
} kfile;

static rc_err kf_open(kfile *k, const char *path, char *err, size_t errlen) {
    k->path = path;
    k->line = 0;
    k->err = err;
    k->errlen = errlen;
    k->f = fopen(path, "rb");
    if (!k->f) {
        snprintf(err, errlen, "%s: Cannot open: %s.", path, strerror(errno));
        return RC_ERR_IO;
    }
    return RC_OK;
}

/* The next key line decoded into out: 1, 0 at the end, -1 on an error (in
 * err). A key line is 40 Z85 characters; blanks around it are ignored. */
static int kf_next(kfile *k, uint8_t out[CV_KEY]) {
    char buf[256];
    while (fgets(buf, sizeof buf, k->f)) {
        k->line++;
        /* fgets stops at a newline, not at a NUL: find where it really stopped. */
        char *nl = memchr(buf, '\n', sizeof buf - 1);
        size_t n = nl ? (size_t)(nl - buf) + 1 : strlen(buf);
        if (!nl && n == sizeof buf - 1) {
            snprintf(k->err, k->errlen, "%s:%ld: Line too long for a key.", k->path, k->line);
            return -1;
        }
        if (memchr(buf, 0, n) != NULL) {
            snprintf(k->err, k->errlen, "%s:%ld: Not a Z85 key: a NUL byte (not a key file?).", k->path, k->line);
            return -1;
        }
        char *s = buf;
        while (*s == ' ' || *s == '\t') s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        *e = 0;
        if (!*s || *s == '#') continue;
        /* zmq_z85_decode accepts any multiple of 5 and does not check the
         * alphabet's range for every byte: check the length here, and that
         * the key round-trips. */
        char again[CV_Z85 + 1];
        if (e - s != CV_Z85 || !zmq_z85_decode(out, s) || !zmq_z85_encode(again, out, CV_KEY) ||
            memcmp(again, s, CV_Z85) != 0) {
            snprintf(k->err, k->errlen, "%s:%ld: Not a Z85 key (%.48s%s): expected 40 characters of "
                     "0-9a-zA-Z.-:+=^!/*?&<>()[]{}@%%$#.", k->path, k->line, s, e - s > 48 ? "..." : "");
            return -1;
        }
        return 1;
    }
    if (ferror(k->f)) {
        snprintf(k->err, k->errlen, "%s: Cannot read: %s.", k->path, strerror(errno));
        return -1;
    }
    return 0;
}

static void kf_close(kfile *k) {
    if (k->f) fclose(k->f);
    k->f = NULL;
}

rc_err cv_read_secret(const char *path, uint8_t pub[CV_KEY], uint8_t sec[CV_KEY], char *err, size_t errlen) {
    kfile k;
    rc_err rc = kf_open(&k, path, err, errlen);
    if (rc) return rc;
    struct stat st;
    rc = RC_ERR_FORMAT;
    if (fstat(fileno(k.f), &st) != 0) {
        snprintf(err, errlen, "%s: Cannot stat: %s.", path, strerror(errno));
        rc = RC_ERR_IO;
        goto done;
    }
    /* A secret any local user can read is no secret: refuse it, as ssh does. */
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s: Secret key file is readable by others (mode %03o); chmod 600 it.", path,
                 (unsigned)(st.st_mode & 0777));
        rc = RC_ERR_IO;
        goto done;
    }
    int r = kf_next(&k, sec);
    if (r <= 0) {
        if (!r) snprintf(err, errlen, "%s: No key in the file.", path);
        goto done;
    }
    char z[CV_Z85 + 1], zs[CV_Z85 + 1];
    zmq_z85_encode(zs, sec, CV_KEY);
    if (zmq_curve_public(z, zs) != 0) {
        snprintf(err, errlen, "%s: Cannot derive the public key: %s.", path, zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_z85_decode(pub, z);
    uint8_t filed[CV_KEY];
    r = kf_next(&k, filed);
    if (r < 0) goto done;
    if (r == 1 && memcmp(filed, pub, CV_KEY) != 0) {
        snprintf(err, errlen, "%s:%ld: The public key does not belong to the secret key above it.", path, k.line);
        goto done;
    }
    if (r == 1 && (r = kf_next(&k, filed)) != 0) {
        if (r == 1) snprintf(err, errlen, "%s:%ld: More than a secret and a public key.", path, k.line);
        goto done;
    }
    rc = RC_OK;
done:
    kf_close(&k);
    return rc;
}

rc_err cv_read_public(const char *path, uint8_t pub[CV_KEY], char *err, size_t errlen) {
    kfile k;
    rc_err rc = kf_open(&k, path, err, errlen);
    if (rc) return rc;
    rc = RC_ERR_FORMAT;
    uint8_t more[CV_KEY];
    int r = kf_next(&k, pub);
    if (r == 0) snprintf(err, errlen, "%s: No key in the file.", path);
    if (r != 1) goto done;
    r = kf_next(&k, more);
    if (r == 1) snprintf(err, errlen, "%s:%ld: More than one key in a public key file.", path, k.line);
    if (r != 0) goto done;
    rc = RC_OK;
done:
    kf_close(&k);
    return rc;
}

static int cmp_key(const void *a, const void *b) { return memcmp(a, b, CV_KEY); }

rc_err cv_read_allow(const char *path, cv_allow *a, char *err, size_t errlen) {
    kfile k;
    rc_err rc = kf_open(&k, path, err, errlen);
    if (rc) return rc;
    /* Whoever can write the list can let any key in: refuse a list the
     * group or others may write, as ssh does with authorized_keys. */
    struct stat st;
    if (fstat(fileno(k.f), &st) != 0 || (st.st_mode & 022)) {
        if (st.st_mode & 022)
            snprintf(err, errlen, "%s: Allow-list file is writable by others (mode %03o); chmod go-w it.", path,
                     (unsigned)(st.st_mode & 0777));
        else snprintf(err, errlen, "%s: Cannot stat: %s.", path, strerror(errno));
        kf_close(&k);
        return RC_ERR_IO;
    }
    a->n = 0;
    a->key = rc_malloc(sizeof *a->key * CV_MAX_ALLOW);
    if (!a->key) {
        snprintf(err, errlen, "%s: Out of memory.", path);
        kf_close(&k);
        return RC_ERR_NOMEM;
    }
    rc = RC_ERR_FORMAT;
    int r;
    uint8_t key[CV_KEY];
    while ((r = kf_next(&k, key)) == 1) {
        if (a->n == CV_MAX_ALLOW) {
            snprintf(err, errlen, "%s:%ld: More than %d keys.", path, k.line, CV_MAX_ALLOW);
            goto done;
        }
        memcpy(a->key[a->n++], key, CV_KEY);
    }
    if (r < 0) goto done;
    if (!a->n) {
        snprintf(err, errlen, "%s: No key in the allow-list (an empty list would refuse every client).", path);
        goto done;
    }
    qsort(a->key, (size_t)a->n, CV_KEY, cmp_key);
    int m = 1;
    for (int i = 1; i < a->n; i++)
        if (memcmp(a->key[i], a->key[m - 1], CV_KEY)) memcpy(a->key[m++], a->key[i], CV_KEY);
    a->n = m;
    rc = RC_OK;
done:
    kf_close(&k);
    if (rc) cv_allow_free(a);
    return rc;
}

void cv_allow_free(cv_allow *a) {
    rc_free(a->key);
    a->key = NULL;
    a->n = 0;
}

int cv_allowed(const cv_allow *a, const uint8_t key[CV_KEY]) {
    return a->n > 0 && bsearch(key, a->key, (size_t)a->n, CV_KEY, cmp_key) != NULL;
}

/* Creates path with mode, never over an existing file; 0 or -1 (err set). */
static int write_new(const char *path, int mode, const char *text, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: Cannot create: %s.", path, strerror(errno));
        return -1;
    }
    /* The umask may have taken bits away, never added any: set them exactly. */
    size_t n = strlen(text);
    int ok = fchmod(fd, (mode_t)mode) == 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) { ok = 0; e = errno; }
    if (!ok) {
        snprintf(err, errlen, "%s: Cannot write: %s.", path, strerror(e));
        unlink(path);
        return -1;
    }
    return 0;
}

rc_err cv_keygen(const char *base, char *err, size_t errlen) {
    char kpath[4096], ppath[4096], pub[CV_Z85 + 1], sec[CV_Z85 + 1], text[256];
    if (!*base || (size_t)snprintf(kpath, sizeof kpath, "%s.key", base) >= sizeof kpath ||
        (size_t)snprintf(ppath, sizeof ppath, "%s.pub", base) >= sizeof ppath) {
        snprintf(err, errlen, "Invalid key name (%.64s): empty or too long.", base);
        return RC_ERR_IO;
    }
    if (!cv_available()) {
        snprintf(err, errlen, "This libzmq has no CURVE support (built without libsodium).");
        return RC_ERR_IO;
    }
    /* Check both first, so neither is created when the other exists. */
    if (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0) {
        snprintf(err, errlen, "%s: exists; keygen never overwrites a key (remove it, or pick another name).",
                 access(kpath, F_OK) == 0 ? kpath : ppath);
        return RC_ERR_IO;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "Cannot make a key pair: %s.", zmq_strerror(zmq_errno()));
        return RC_ERR_IO;
    }
    snprintf(text, sizeof text, "# rwkvcast CURVE secret key, then its public key. Keep it private (0600).\n%s\n%s\n",
             sec, pub);
    if (write_new(kpath, 0600, text, err, errlen)) return RC_ERR_IO;
    snprintf(text, sizeof text, "# rwkvcast CURVE public key\n%s\n", pub);
    if (write_new(ppath, 0644, text, err, errlen)) {
        unlink(kpath);
        return RC_ERR_IO;
    }
    memset(sec, 0, sizeof sec);
    memset(text, 0, sizeof text);
    return RC_OK;
}

rc_err cv_client_setup(void *sock, const char *key_file, const char *server_pub_file, char *err, size_t errlen) {
    uint8_t pub[CV_KEY], sec[CV_KEY], srv[CV_KEY];
    rc_err rc = cv_read_secret(key_file, pub, sec, err, errlen);
    if (!rc) rc = cv_read_public(server_pub_file, srv, err, errlen);
    if (!rc && (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, srv, CV_KEY) ||
                zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, CV_KEY) ||
                zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, CV_KEY))) {
        snprintf(err, errlen, "Cannot set the CURVE keys: %s.", zmq_strerror(zmq_errno()));
        rc = RC_ERR_IO;
    }
    memset(sec, 0, sizeof sec);
    return rc;
}

rc_err cv_server_setup(void *sock, const uint8_t sec[CV_KEY], int domain, char *err, size_t errlen) {
    int one = 1;
    char dom[16];
    snprintf(dom, sizeof dom, "%d", domain);
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, CV_KEY) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, dom, strlen(dom))) {
        snprintf(err, errlen, "Cannot make the socket a CURVE server: %s.", zmq_strerror(zmq_errno()));
        return RC_ERR_IO;
    }
    return RC_OK;
}

/* ---- ZAP (ZeroMQ RFC 27) ---- */

enum { ZAP_FRAMES = 7 }; /* version .. mechanism, plus CURVE's one credential */

static void zap_reply(void *zap, const zmq_msg_t *id, const char *code, const char *text) {
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id), ZMQ_SNDMORE);
    zmq_send(zap, code, 3, ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, ZMQ_SNDMORE); /* user id */
    zmq_send(zap, "", 0, 0);           /* metadata */
}

static int frame_is(zmq_msg_t *m, const char *s) {
    return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

int cv_zap_serve(void *zap, const cv_allow *lists, int n, uint64_t *rejected) {
    int answered = 0;
    for (;;) {
        zmq_msg_t f[ZAP_FRAMES];
        int nf = 0, more = 1, extra = 0;
        for (int i = 0; i < ZAP_FRAMES; i++) zmq_msg_init(&f[i]);
        /* Read the whole request; frames past the seventh are read and dropped. */
        while (more) {
            zmq_msg_t *m = nf < ZAP_FRAMES ? &f[nf] : NULL;
            zmq_msg_t skip;
            if (!m) { zmq_msg_init(&skip); m = &skip; }
            if (zmq_msg_recv(m, zap, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                if (m == &skip) zmq_msg_close(&skip);
                nf = -1;
                break;
            }
            more = zmq_msg_more(m);
            if (m == &skip) { zmq_msg_close(&skip); extra++; }
            else nf++;
        }
        if (nf <= 0) {
            for (int i = 0; i < ZAP_FRAMES; i++) zmq_msg_close(&f[i]);
            return answered;
        }
        int idx = -1;
        if (nf >= 3) {
            char dom[16];
            size_t dl = zmq_msg_size(&f[2]);
            if (dl > 0 && dl < sizeof dom) {
                memcpy(dom, zmq_msg_data(&f[2]), dl);
                dom[dl] = 0;
                char *end;
                long v = strtol(dom, &end, 10);
                if (!*end && v >= 0 && v < n) idx = (int)v;
            }
        }
        int ok = nf == ZAP_FRAMES && !extra && frame_is(&f[0], "1.0") && frame_is(&f[5], "CURVE") &&
                 zmq_msg_size(&f[6]) == CV_KEY && idx >= 0 && cv_allowed(&lists[idx], zmq_msg_data(&f[6]));
        if (!ok) rejected[idx >= 0 ? idx : n]++;
        if (nf >= 2) zap_reply(zap, &f[1], ok ? "200" : "400", ok ? "OK" : "Client key not allowed");
        else zap_reply(zap, &f[0], "500", "Malformed request");
        answered++;
        for (int i = 0; i < ZAP_FRAMES; i++) zmq_msg_close(&f[i]);
    }
}
