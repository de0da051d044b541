/*
 * checkpoint.c: the SQLite checkpoint store (checkpoint.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

enum { OP_PUT = 1, OP_DEL = 2, OP_NONE = 3 /* taken back by ck_fetch: skipped */ };

/* Snapshot chunks: the loop fills one while the writer writes another, so
 * snapshot memory is CHUNKS x chunk_rows rows whatever max_series is. */
enum { CHUNKS = 4 };

/* Bytes of the file ck_restore maps (SQLite caps it at its compile-time
 * SQLITE_MAX_MMAP_SIZE, 2 GB in Debian's build; the rest is read). */
#define CK_RESTORE_MMAP "68719476736"

/* Row header; the blob follows at the next 8-byte boundary. */
typedef struct row {
    uint8_t op;             /* OP_PUT or OP_DEL */
    uint8_t pad_;
    uint16_t id_len;        /* bytes */
    uint32_t pad2_;
    uint64_t model_hash;    /* model that produced the blob */
    char id[CK_ID_MAX + 1]; /* NUL-terminated */
} row;

typedef struct rowbuf {
    uint8_t *base; /* (cap * stride) bytes */
    uint32_t cap;  /* rows */
    uint32_t n;    /* rows used */
} rowbuf;

struct ck_store {
    sqlite3 *wdb;          /* writer thread's connection */
    sqlite3 *rdb;          /* loop thread's connection for reads */
    sqlite3_stmt *fetch;   /* on rdb */
    size_t blob_size;      /* bytes */
    size_t stride;         /* bytes per row */
    rowbuf ring[2];        /* pending / in-flight evictions and deletions */
    int pend;              /* index of the pending ring */
    rowbuf chunk[CHUNKS];  /* snapshot chunks, reused across chunks and jobs */
    int fill;              /* chunk the loop fills, or -1 (loop thread only) */
    /* Handoff, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thr;
    int thr_started;
    int job;               /* 1 from ck_begin until the writer finishes */
    double expire_next;    /* ck_expire_before for the next job (loop thread) */
    double expire_job;     /* the job's cutoff, 0 = none (set under mu by ck_begin) */
    int sealed;            /* 1 once the job's last chunk is queued */
    int busy;              /* 1 from ck_begin until ck_poll collects (loop thread only) */
    int stop;              /* writer should exit */
    int is_free[CHUNKS];   /* chunk neither filled, queued nor being written */
    int queue[CHUNKS];     /* chunks handed to the writer, FIFO */
    int q_head, q_len;     /* queue position and length */
    uint32_t snap_rows;    /* snapshot rows added to the open job (loop thread only) */
    ck_result res;         /* last job's result, written by the writer */
};

static row *row_at(const ck_store *s, const rowbuf *b, uint32_t i) {
    return (row *)(b->base + (size_t)i * s->stride);
}
static uint8_t *row_blob(row *r) { return (uint8_t *)r + ((sizeof(row) + 7) & ~(size_t)7); }

/* Schema migrations: migrations[v] upgrades from v to v+1. Forward-only. */
static const char *const migrations[CK_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE series(\n"
    "  id TEXT PRIMARY KEY,\n"
    "  model_hash INTEGER NOT NULL,\n"
    "  updated REAL NOT NULL,\n"
    "  state BLOB NOT NULL) WITHOUT ROWID;\n"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;\n"
    "INSERT INTO meta VALUES('created', julianday('now'));\n",
    /* 1 -> 2: series.idle_ttl deletes rows by their last write. */
    "CREATE INDEX series_updated ON series(updated);\n",
};

/* SQLite's message alone ("unable to open database file") does not say
 * why: the errno of the failing system call goes with it, and for a
 * permission error the user the daemon runs as (a store made by root and
 * a daemon started as another user was the usual case). */
static rc_err sqlfail(sqlite3 *db, const char *what, const char *path, char *errbuf, size_t errlen) {
    if (!errbuf) return RC_ERR_IO;
    int e = db ? sqlite3_system_errno(db) : 0;
    char why[160] = "";
    if (e == EACCES || e == EPERM || e == EROFS)
        snprintf(why, sizeof why, " (%s; rwkvcastd runs as uid %d, gid %d)", strerror(e), (int)geteuid(),
                 (int)getegid());
    else if (e)
        snprintf(why, sizeof why, " (%s)", strerror(e));
    snprintf(errbuf, errlen, "Checkpoint store '%s': %s failed: %s%s.", path, what,
             db ? sqlite3_errmsg(db) : "out of memory", why);
    return RC_ERR_IO;
}

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static rc_err migrate(sqlite3 *db, const char *path, char *errbuf, size_t errlen) {
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sqlfail(db, "BEGIN", path, errbuf, errlen);
    int v = user_version(db);
    if (v < 0) goto fail;
    if (v > CK_SCHEMA_VERSION) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (errbuf) snprintf(errbuf, errlen, "Checkpoint store '%s': schema version (%d) is newer than "
                             "this rwkvcastd supports (%d).", path, v, CK_SCHEMA_VERSION);
        return RC_ERR_VERSION;
    }
    for (; v < CK_SCHEMA_VERSION; v++) {
        char sql[64];
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) goto fail;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) goto fail;
        LOG(LG_NOTICE, "ck", "Checkpoint store '%s' migrated to schema version %d.", path, v + 1);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    return RC_OK;
fail:
    sqlfail(db, "schema migration", path, errbuf, errlen);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return RC_ERR_IO;
}

static double wall(void) { return lg_wall_s(); }

/* Binds and steps one row; 0 on failure. */
static int put_row(ck_store *s, sqlite3_stmt *put, sqlite3_stmt *del, row *r, double now) {
    if (r->op == OP_NONE) return 1;
    sqlite3_stmt *st = r->op == OP_DEL ? del : put;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, r->id, r->id_len, SQLITE_STATIC);
    if (r->op == OP_PUT) {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->model_hash);
        sqlite3_bind_double(st, 3, now);
        sqlite3_bind_blob(st, 4, row_blob(r), (int)s->blob_size, SQLITE_STATIC);
    }
    return sqlite3_step(st) == SQLITE_DONE;
}

/* Next queued chunk, waiting for the loop; -1 when the job is sealed and
 * drained (or the store is closing). mu held. */
static int next_chunk(ck_store *s) {
    while (!s->q_len && !s->sealed && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (!s->q_len) return -1;
    return s->queue[s->q_head];
}

/* Writes one job in ONE transaction: the ring first (evictions and
 * deletions are older than every snapshot row), then the snapshot chunks in
 * the order the loop queued them, as they arrive. Runs on the writer
 * thread with mu held on entry and exit. The transaction stays open while
 * chunks arrive; WAL readers (ck_fetch, restore) see the previous commit.
 * After a failure the remaining chunks are still consumed (and discarded)
 * so the loop never waits on a dead job. */
static void run_job(ck_store *s, const rowbuf *ring, ck_result *res) {
    sqlite3_stmt *put = NULL, *del = NULL;
    memset(res, 0, sizeof *res);
    res->started = wall();
    int64_t t0 = lg_mono_ns();
    sqlite3 *db = s->wdb;
    int ok = 0;
    pthread_mutex_unlock(&s->mu);
    /* The last job's ROLLBACK can itself fail (out of memory): then its
     * transaction is still open, and BEGIN would fail on every job after. */
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) goto ring_done;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO series(id, model_hash, updated, state) "
                               "VALUES(?1, ?2, ?3, ?4)", -1, &put, NULL) != SQLITE_OK) goto ring_done;
    if (sqlite3_prepare_v2(db, "DELETE FROM series WHERE id = ?1", -1, &del, NULL) != SQLITE_OK) goto ring_done;
    for (uint32_t i = 0; i < ring->n; i++) {
        if (!put_row(s, put, del, row_at(s, ring, i), res->started)) goto ring_done;
        res->rows++;
    }
    ok = 1;
ring_done:
    if (!ok) snprintf(res->error, sizeof res->error, "%s", sqlite3_errmsg(db));
    pthread_mutex_lock(&s->mu);
    int c;
    while ((c = next_chunk(s)) >= 0) {
        /* The chunk is frozen once queued, so write it unlocked. */
        pthread_mutex_unlock(&s->mu);
        const rowbuf *b = &s->chunk[c];
        for (uint32_t i = 0; ok && i < b->n; i++) {
            if (!put_row(s, put, del, row_at(s, b, i), res->started)) {
                ok = 0;
                snprintf(res->error, sizeof res->error, "%s", sqlite3_errmsg(db));
            } else {
                res->rows++;
            }
        }
        pthread_mutex_lock(&s->mu);
        s->chunk[c].n = 0;
        s->is_free[c] = 1;
        s->q_head = (s->q_head + 1) % CHUNKS;
        s->q_len--;
    }
    if (!s->sealed) {
        ok = 0; /* closing with the job open: never commit half a snapshot */
        snprintf(res->error, sizeof res->error, "Store closed during the checkpoint");
    }
    double cutoff = s->expire_job;
    pthread_mutex_unlock(&s->mu);
    if (ok && cutoff > 0) {
        /* After this job's rows, which all carry res->started: only rows
         * nobody wrote for series.idle_ttl go (series_updated index). */
        sqlite3_stmt *ex = NULL;
        if (sqlite3_prepare_v2(db, "DELETE FROM series WHERE updated < ?1", -1, &ex, NULL) != SQLITE_OK ||
            (sqlite3_bind_double(ex, 1, cutoff), sqlite3_step(ex)) != SQLITE_DONE) {
            ok = 0;
            snprintf(res->error, sizeof res->error, "%s", sqlite3_errmsg(db));
        } else {
            res->expired = (uint32_t)sqlite3_changes(db);
        }
        sqlite3_finalize(ex);
    }
    if (ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ok = 0;
        snprintf(res->error, sizeof res->error, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    if (!ok) {
        res->rc = RC_ERR_IO;
        if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        res->rows = 0;
        res->expired = 0;
    }
    res->duration = (double)(lg_mono_ns() - t0) * 1e-9;
    pthread_mutex_lock(&s->mu);
}

static void *writer(void *arg) {
    ck_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->job && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->job && s->stop) break;
        /* The job's ring is frozen until ck_poll. */
        const rowbuf *ring = &s->ring[1 - s->pend];
        ck_result res;
        run_job(s, ring, &res);
        s->res = res;
        s->job = 0;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static rc_err open_db(const char *path, sqlite3 **db, char *errbuf, size_t errlen) {
    /* The store holds every series' state: a new one is created 0600 here,
     * whatever the umask (SQLite would make it 0644), and its -wal and -shm
     * files take the same mode from it. An existing file keeps its mode. */
    if (path[0] != ':' && strncmp(path, "file:", 5) != 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
    }
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) return sqlfail(*db, "open", path, errbuf, errlen);
    sqlite3_busy_timeout(*db, 10000);
    /* Page size first: it only takes effect while the file is still empty
     * (WAL mode fixes it), so an existing store keeps its own. 16 KB pages
     * hold a whole series row (~3.7 KB for the default model) in the
     * table's leaf; with 4 KB pages every row spilled into an overflow page
     * (4.7 KB on disk per row, and a chain to follow on every read).
     * WAL: readers never block the writer; FULL fsyncs the WAL on each
     * commit, once per checkpoint, so a commit survives power loss too. */
    char *msg = NULL;
    if (sqlite3_exec(*db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        return sqlfail(*db, "PRAGMA journal_mode=WAL", path, errbuf, errlen);
    }
    return RC_OK;
}

static rc_err rowbuf_init(rowbuf *b, uint32_t cap, size_t stride) {
    b->cap = cap;
    b->n = 0;
    b->base = rc_malloc((size_t)cap * stride);
    return b->base ? RC_OK : RC_ERR_NOMEM;
}

ck_store *ck_open(const char *path, size_t blob_size, uint32_t chunk_rows, uint32_t evict_rows,
                  rc_err *err, char *errbuf, size_t errlen) {
    ck_store *s = rc_calloc(1, sizeof *s);
    if (errbuf && errlen) errbuf[0] = 0;
    *err = RC_ERR_NOMEM;
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->blob_size = blob_size;
    s->stride = (((sizeof(row) + 7) & ~(size_t)7) + blob_size + 7) & ~(size_t)7;
    if (rowbuf_init(&s->ring[0], evict_rows, s->stride) || rowbuf_init(&s->ring[1], evict_rows, s->stride))
        goto err;
    for (int c = 0; c < CHUNKS; c++) {
        if (rowbuf_init(&s->chunk[c], chunk_rows ? chunk_rows : 1, s->stride)) goto err;
        s->is_free[c] = 1;
    }
    s->fill = -1;
    if ((*err = open_db(path, &s->wdb, errbuf, errlen))) goto err;
    if ((*err = migrate(s->wdb, path, errbuf, errlen))) goto err;
    if ((*err = open_db(path, &s->rdb, errbuf, errlen))) goto err;
    if (sqlite3_prepare_v2(s->rdb, "SELECT model_hash, state FROM series WHERE id = ?1", -1,
                           &s->fetch, NULL) != SQLITE_OK) {
        *err = sqlfail(s->rdb, "prepare", path, errbuf, errlen);
        goto err;
    }
    if (pthread_create(&s->thr, NULL, writer, s) != 0) {
        *err = RC_ERR_NOMEM;
        goto err;
    }
    s->thr_started = 1;
    pthread_setname_np(s->thr, "rk-checkpoint");
    *err = RC_OK;
    return s;
err:
    ck_close(s);
    return NULL;
}

void ck_close(ck_store *s) {
    if (!s) return;
    if (s->thr_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thr, NULL);
    }
    sqlite3_finalize(s->fetch);
    sqlite3_close(s->rdb);
    sqlite3_close(s->wdb);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    for (int c = 0; c < CHUNKS; c++) rc_free(s->chunk[c].base);
    rc_free(s->ring[1].base);
    rc_free(s->ring[0].base);
    rc_free(s);
}

int ck_check(ck_store *s, char *msg, size_t msglen) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->rdb, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) {
        snprintf(msg, msglen, "%s", sqlite3_errmsg(s->rdb));
        return -1;
    }
    int rc = sqlite3_step(st), ok = -1;
    if (rc == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        ok = r && strcmp(r, "ok") == 0;
        snprintf(msg, msglen, "%.200s", r ? r : "no result");
    } else {
        /* A page too damaged to read at all fails the statement itself. */
        snprintf(msg, msglen, "%s", sqlite3_errmsg(s->rdb));
        ok = rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ? 0 : -1;
    }
    sqlite3_finalize(st);
    return ok;
}

long ck_restore(ck_store *s, ck_row_cb *cb, void *ctx) {
    sqlite3_stmt *st;
    long n = 0;
    /* Reading every page through the memory map saves a pread and a copy per
     * page (the kernel read path was a quarter of a 1M-series restore). The
     * map is dropped again afterwards: point reads do not need it. */
    sqlite3_exec(s->rdb, "PRAGMA mmap_size=" CK_RESTORE_MMAP, NULL, NULL, NULL);
    if (sqlite3_prepare_v2(s->rdb, "SELECT id, model_hash, state FROM series", -1, &st, NULL) != SQLITE_OK) {
        LOG(LG_WARNING, "ck", "Cannot read the checkpoint store: %s.", sqlite3_errmsg(s->rdb));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        int id_len = sqlite3_column_bytes(st, 0);
        uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
        const uint8_t *blob = sqlite3_column_blob(st, 2);
        int blen = sqlite3_column_bytes(st, 2);
        n++;
        if (!id || id_len <= 0 || id_len > CK_ID_MAX) continue;
        cb(ctx, id, (size_t)id_len, h, blob, (size_t)blen);
    }
    if (rc != SQLITE_DONE) {
        LOG(LG_WARNING, "ck", "Reading the checkpoint store stopped: %s.", sqlite3_errmsg(s->rdb));
        n = -1;
    }
    sqlite3_finalize(st);
    sqlite3_exec(s->rdb, "PRAGMA mmap_size=0", NULL, NULL, NULL);
    return n;
}

/* Newest matching row of b, or NULL. */
static row *find_in(const ck_store *s, const rowbuf *b, const char *id, size_t len) {
    for (uint32_t i = b->n; i-- > 0;) {
        row *r = row_at(s, b, i);
        if (r->op != OP_NONE && r->id_len == len && memcmp(r->id, id, len) == 0) return r;
    }
    return NULL;
}

/* ck_fetch (take = 1) and ck_peek (take = 0). */
static int read_state(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
                      size_t *len, uint64_t *model_hash, int take) {
    row *r = find_in(s, &s->ring[s->pend], id, id_len);
    int in_pending = r != NULL;
    /* The in-flight ring is frozen while busy, so reading it here is safe;
     * its snapshot chunks cannot hold a newer state of an absent series
     * (anything evicted or deleted after a row was snapshotted is in the
     * pending ring). */
    if (!r && s->busy) r = find_in(s, &s->ring[1 - s->pend], id, id_len);
    if (r) {
        int op = r->op;
        /* Taken back into memory: a pending row must not overwrite the
         * state the loop snapshots from now on (see checkpoint.h). */
        if (in_pending && take) r->op = OP_NONE;
        if (op == OP_DEL) return 0;
        size_t n = s->blob_size < cap ? s->blob_size : cap;
        memcpy(buf, row_blob(r), n);
        *len = n;
        *model_hash = r->model_hash;
        return 1;
    }
    sqlite3_reset(s->fetch);
    sqlite3_bind_text(s->fetch, 1, id, (int)id_len, SQLITE_STATIC);
    int rc = sqlite3_step(s->fetch);
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) {
        char esc[LG_ESCAPE_CAP(255)];
        LOG(LG_WARNING, "ck", "Cannot read series '%s' from the store: %s.", lg_escape(esc, sizeof esc, id, id_len),
            sqlite3_errmsg(s->rdb));
        sqlite3_reset(s->fetch);
        return -1;
    }
    *model_hash = (uint64_t)sqlite3_column_int64(s->fetch, 0);
    size_t n = (size_t)sqlite3_column_bytes(s->fetch, 1);
    const void *b = sqlite3_column_blob(s->fetch, 1);
    if (n > cap) n = cap;
    if (b) memcpy(buf, b, n);
    *len = n;
    sqlite3_reset(s->fetch);
    return 1;
}

int ck_fetch(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
             size_t *len, uint64_t *model_hash) {
    return read_state(s, id, id_len, buf, cap, len, model_hash, 1);
}

int ck_peek(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
            size_t *len, uint64_t *model_hash) {
    return read_state(s, id, id_len, buf, cap, len, model_hash, 0);
}

int ck_busy(const ck_store *s) { return s->busy; }

static row *add(ck_store *s, rowbuf *b, int op, const char *id, size_t len, uint64_t h) {
    if (b->n == b->cap || len == 0 || len > CK_ID_MAX) return NULL;
    row *r = row_at(s, b, b->n++);
    r->op = (uint8_t)op;
    r->id_len = (uint16_t)len;
    r->model_hash = h;
    memcpy(r->id, id, len);
    r->id[len] = 0;
    return r;
}

/* Queues the fill chunk for the writer (loop thread). */
static void queue_fill(ck_store *s) {
    pthread_mutex_lock(&s->mu);
    s->queue[(s->q_head + s->q_len) % CHUNKS] = s->fill;
    s->q_len++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->fill = -1;
}

/* Takes a free chunk as the fill chunk; 0 when all are in use. */
static int take_chunk(ck_store *s) {
    pthread_mutex_lock(&s->mu);
    for (int c = 0; c < CHUNKS && s->fill < 0; c++)
        if (s->is_free[c]) {
            s->is_free[c] = 0;
            s->fill = c;
        }
    pthread_mutex_unlock(&s->mu);
    return s->fill >= 0;
}

uint8_t *ck_snap_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash) {
    if (!s->busy || s->sealed) return NULL;
    if (s->fill >= 0 && s->chunk[s->fill].n == s->chunk[s->fill].cap) queue_fill(s);
    if (s->fill < 0 && !take_chunk(s)) return NULL;
    row *r = add(s, &s->chunk[s->fill], OP_PUT, id, id_len, model_hash);
    if (r) s->snap_rows++;
    return r ? row_blob(r) : NULL;
}

int ck_snap_room(ck_store *s) {
    if (!s->busy || s->sealed) return 0;
    if (s->fill >= 0 && s->chunk[s->fill].n < s->chunk[s->fill].cap) return 1;
    pthread_mutex_lock(&s->mu);
    int room = 0;
    for (int c = 0; c < CHUNKS; c++) room |= s->is_free[c];
    pthread_mutex_unlock(&s->mu);
    return room;
}

uint8_t *ck_evict_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash) {
    row *r = add(s, &s->ring[s->pend], OP_PUT, id, id_len, model_hash);
    return r ? row_blob(r) : NULL;
}

rc_err ck_delete(ck_store *s, const char *id, size_t id_len) {
    return add(s, &s->ring[s->pend], OP_DEL, id, id_len, 0) ? RC_OK : RC_ERR_LIMIT;
}

uint32_t ck_pending(const ck_store *s) { return s->ring[s->pend].n; }

rc_err ck_begin(ck_store *s) {
    if (s->busy) return RC_ERR_LIMIT;
    pthread_mutex_lock(&s->mu);
    s->pend = 1 - s->pend; /* the old pending ring travels with the job */
    s->ring[s->pend].n = 0;
    s->busy = 1;
    s->job = 1;
    s->sealed = 0;
    s->snap_rows = 0;
    s->expire_job = s->expire_next;
    s->expire_next = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return RC_OK;
}

void ck_expire_before(ck_store *s, double t) { s->expire_next = t; }

rc_err ck_seal(ck_store *s) {
    if (!s->busy || s->sealed) return RC_ERR_LIMIT;
    if (s->fill >= 0 && s->chunk[s->fill].n) queue_fill(s);
    pthread_mutex_lock(&s->mu);
    if (s->fill >= 0) s->is_free[s->fill] = 1; /* taken but empty */
    s->fill = -1;
    s->sealed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return RC_OK;
}

rc_err ck_submit(ck_store *s) {
    rc_err rc = ck_begin(s);
    return rc != RC_OK ? rc : ck_seal(s);
}

/* A failed job's ring rows go back in front of the pending ring: they are
 * older than anything queued since, so the writer's order (and find_in's
 * newest-first search) stays right. Rows taken back (OP_NONE) are skipped;
 * when both do not fit, the newest pending rows are kept whole and the
 * oldest failed rows are dropped. Loop thread, job collected. */
static void requeue(ck_store *s, ck_result *res) {
    rowbuf *f = &s->ring[1 - s->pend], *p = &s->ring[s->pend];
    uint32_t live = 0;
    for (uint32_t i = 0; i < f->n; i++) live += row_at(s, f, i)->op != OP_NONE;
    uint32_t room = p->cap - p->n, keep = live < room ? live : room;
    res->lost = live - keep;
    res->requeued = keep;
    if (!keep) return;
    memmove(p->base + (size_t)keep * s->stride, p->base, (size_t)p->n * s->stride);
    uint32_t j = keep;
    for (uint32_t i = f->n; i-- > 0 && j > 0;) {
        row *r = row_at(s, f, i);
        if (r->op == OP_NONE) continue;
        memcpy(row_at(s, p, --j), r, s->stride);
    }
    p->n += keep;
}

/* Collects a finished job; mu held. */
static int collect(ck_store *s, ck_result *r) {
    if (!s->busy || s->job) return 0;
    if (s->res.rc != RC_OK) requeue(s, &s->res);
    if (r) *r = s->res;
    s->busy = 0;
    s->ring[1 - s->pend].n = 0;
    return 1;
}

int ck_poll(ck_store *s, ck_result *r) {
    if (!s->busy) return 0;
    pthread_mutex_lock(&s->mu);
    int done = collect(s, r);
    pthread_mutex_unlock(&s->mu);
    return done;
}

int ck_wait(ck_store *s, double timeout, ck_result *r) {
    if (!s->busy) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double sec = floor(timeout);
    ts.tv_sec += (time_t)sec;
    ts.tv_nsec += (long)((timeout - sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&s->mu);
    while (s->job) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    }
    int done = collect(s, r);
    pthread_mutex_unlock(&s->mu);
    return done;
}

rc_err ck_test_max_pages(ck_store *s, long max_pages) {
    if (s->busy) return RC_ERR_LIMIT;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %ld", max_pages);
    /* The writer thread is idle (not busy), so its connection is free to use here. */
    return sqlite3_exec(s->wdb, sql, NULL, NULL, NULL) == SQLITE_OK ? RC_OK : RC_ERR_IO;
}
