/*
 * plot_daemon.c: `rwkvcast plot -e`: a series' rows from a running daemon
 * (plot.h). The daemon keeps recent samples only of the series matching
 * its history.series pattern (daemon/history.h); `history` returns them
 * as columns, `get` the forecast made after the last one.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/base.h"
#include "tools/cli_util.h"
#include "tools/plot.h"

int pl_grow(pl_series *s) {
    if (s->n < s->cap) return 1;
    size_t cap = s->cap ? s->cap * 2 : 1024;
    double *t = rc_realloc(s->t, cap * sizeof *t), *v = t ? rc_realloc(s->v, cap * sizeof *v) : NULL;
    if (t) s->t = t;
    if (v) s->v = v;
    float **f[] = {&s->yhat, &s->lo, &s->hi, &s->score};
    int ok = t && v;
    for (int i = 0; ok && i < 4; i++) {
        float *p = rc_realloc(*f[i], cap * sizeof *p);
        if (p) *f[i] = p;
        else ok = 0;
    }
    int8_t *lv = ok ? rc_realloc(s->level, cap) : NULL;
    if (lv) s->level = lv;
    if (!ok || !lv) return 0;
    s->cap = cap;
    return 1;
}

void pl_series_free(pl_series *s) {
    rc_free(s->t);
    rc_free(s->v);
    rc_free(s->yhat);
    rc_free(s->lo);
    rc_free(s->hi);
    rc_free(s->score);
    rc_free(s->level);
    rc_free(s->ahead_t);
    rc_free(s->ahead_yhat);
    rc_free(s->ahead_lo);
    rc_free(s->ahead_hi);
}

/* A number of a reply: int, float, or nil (NaN). 0, or -1 for another type. */
static int number(const msgpack_object *o, double *out) {
    if (o->type == MSGPACK_OBJECT_NIL) { *out = NAN; return 0; }
    return cli_obj_number(o, out);
}

/* The array under key of map m with exactly n items (n < 0: any), or NULL. */
static const msgpack_object_array *column(const msgpack_object *m, const char *key, long n) {
    const msgpack_object *o = cli_map_get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY) return NULL;
    if (n >= 0 && o->via.array.size != (uint32_t)n) return NULL;
    return &o->via.array;
}

/* Sends {"cmd": cmd, "s": id} and unpacks the reply into up. 0, or -1
 * after printing why (no reply, not msgpack, not a map, "ok": false). */
static int request(void *sock, const char *endpoint, long timeout_ms, const char *cmd, const char *id,
                   msgpack_unpacked *up, zmq_msg_t *reply) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, cmd, strlen(cmd));
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, id, strlen(id));
    int rc = -1;
    if (zmq_send(sock, sb.data, sb.size, 0) < 0) {
        fprintf(stderr, "Error: Cannot send to '%s' (%s).\n", endpoint, zmq_strerror(errno));
        goto out;
    }
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        fprintf(stderr, "Error: No reply from '%s' within %ld ms (is rwkvcastd running?).\n", endpoint, timeout_ms);
        goto out;
    }
    if (zmq_msg_recv(reply, sock, 0) < 0) {
        fprintf(stderr, "Error: Cannot receive from '%s' (%s).\n", endpoint, zmq_strerror(errno));
        goto out;
    }
    size_t off = 0;
    if (msgpack_unpack_next(up, zmq_msg_data(reply), zmq_msg_size(reply), &off) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP) {
        fprintf(stderr, "Error: Reply from '%s' is not a msgpack map (%zu bytes).\n", endpoint, zmq_msg_size(reply));
        goto out;
    }
    const msgpack_object *ok = cli_map_get(&up->data, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        char msg[600] = "reply without \"ok\": true";
        cli_obj_str(cli_map_get(&up->data, "error"), msg, sizeof msg);
        fprintf(stderr, "Error: '%s' of series '%s' failed: %s\n", cmd, id, msg);
        goto out;
    }
    rc = 0;
out:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The rows of a `history` reply into s; 0 or -1 (printed). */
static int take_history(const msgpack_object *m, pl_series *s) {
    const msgpack_object_array *t = column(m, "t", -1);
    long n = t ? (long)t->size : -1;
    static const char *const keys[] = {"v", "yhat", "lo", "hi", "score", "level"};
    const msgpack_object_array *c[6];
    for (int k = 0; k < 6; k++)
        if (n < 0 || !(c[k] = column(m, keys[k], n))) n = -1;
    double warn, alert;
    const msgpack_object *w = cli_map_get(m, "warn"), *a = cli_map_get(m, "alert");
    if (n < 0 || !w || !a || cli_obj_number(w, &warn) || cli_obj_number(a, &alert)) {
        fprintf(stderr, "Error: Malformed 'history' reply for series '%s' (columns missing or of unequal length).\n",
                s->name);
        return -1;
    }
    s->warn = warn;
    s->alert = alert;
    for (long i = 0; i < n; i++) {
        double x[7];
        int bad = number(&t->ptr[i], &x[0]);
        for (int k = 0; k < 6; k++) bad |= number(&c[k]->ptr[i], &x[k + 1]);
        if (bad || !isfinite(x[0])) {
            fprintf(stderr, "Error: Malformed 'history' reply for series '%s' (row %ld).\n", s->name, i);
            return -1;
        }
        if (!pl_grow(s)) { fprintf(stderr, "Error: Out of memory.\n"); return -1; }
        size_t j = s->n++;
        s->t[j] = x[0];
        s->v[j] = x[1];
        s->yhat[j] = (float)x[2];
        s->lo[j] = (float)x[3];
        s->hi[j] = (float)x[4];
        s->score[j] = (float)x[5];
        s->level[j] = (int8_t)(x[6] >= 2 ? 2 : x[6] >= 1 ? 1 : 0);
    }
    return 0;
}

/* The forecast of a `get` reply (its "forecast" map: t, dt, h, yhat, lo,
 * hi), when it has one; a reply without it leaves s without a forecast
 * ahead. 0, or -1 when out of memory. */
static int take_ahead(const msgpack_object *m, pl_series *s) {
    const msgpack_object *f = cli_map_get(m, "forecast"), *to, *dto;
    double t, dt;
    if (!f || f->type != MSGPACK_OBJECT_MAP || !(to = cli_map_get(f, "t")) || !(dto = cli_map_get(f, "dt")) ||
        cli_obj_number(to, &t) || cli_obj_number(dto, &dt) || !(dt > 0) || !isfinite(t))
        return 0;
    const msgpack_object_array *h = column(f, "h", -1);
    long n = h ? (long)h->size : 0;
    if (n > PL_AHEAD_MAX) n = PL_AHEAD_MAX;
    const msgpack_object_array *y = column(f, "yhat", -1), *lo = column(f, "lo", -1), *hi = column(f, "hi", -1);
    if (!y || !lo || !hi || y->size < (uint32_t)n || lo->size < (uint32_t)n || hi->size < (uint32_t)n || n == 0)
        return 0;
    s->ahead_t = rc_malloc((size_t)n * sizeof *s->ahead_t);
    s->ahead_yhat = rc_malloc((size_t)n * sizeof(float));
    s->ahead_lo = rc_malloc((size_t)n * sizeof(float));
    s->ahead_hi = rc_malloc((size_t)n * sizeof(float));
    if (!s->ahead_t || !s->ahead_yhat || !s->ahead_lo || !s->ahead_hi) {
        fprintf(stderr, "Error: Out of memory.\n");
        return -1;
    }
    int k = 0;
    for (long i = 0; i < n; i++) {
        double hh, a, b, c;
        if (cli_obj_number(&h->ptr[i], &hh) || number(&y->ptr[i], &a) || number(&lo->ptr[i], &b) ||
            number(&hi->ptr[i], &c) || !(hh >= 1 && hh <= 1e6))
            break;
        s->ahead_t[k] = t + hh * dt;
        s->ahead_yhat[k] = (float)a;
        s->ahead_lo[k] = (float)b;
        s->ahead_hi[k] = (float)c;
        k++;
    }
    s->n_ahead = k;
    return 0;
}

int pl_fetch(void *sock, const char *endpoint, long timeout_ms, pl_series *s) {
    msgpack_unpacked up;
    zmq_msg_t reply;
    int rc = -1;
    s->from_daemon = 1;
    msgpack_unpacked_init(&up);
    zmq_msg_init(&reply);
    if (request(sock, endpoint, timeout_ms, "history", s->name, &up, &reply) || take_history(&up.data, s)) goto out;
    if (s->n < 2) {
        fprintf(stderr, "Error: Series '%s' has %zu sample%s in the daemon's history; at least two are needed to "
                "plot.\n", s->name, s->n, s->n == 1 ? "" : "s");
        goto out;
    }
    zmq_msg_close(&reply);
    zmq_msg_init(&reply);
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    if (request(sock, endpoint, timeout_ms, "get", s->name, &up, &reply) || take_ahead(&up.data, s)) goto out;
    rc = 0;
out:
    msgpack_unpacked_destroy(&up);
    zmq_msg_close(&reply);
    return rc;
}
