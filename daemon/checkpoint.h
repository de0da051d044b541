/*
 * checkpoint.h: the SQLite checkpoint store (WAL mode) and its background writer.
 *
 * One row per series: id, the hash of the model that produced the state,
 * the time it was written, and the engine's slot blob. The schema version
 * lives in PRAGMA user_version; migrations are forward-only, and a file from
 * a newer version is refused (RC_ERR_VERSION), never guessed at.
 *
 * Handoff (why ingest never waits for the disk): a checkpoint is one job.
 * ck_begin opens it; the writer thread opens ONE transaction and writes the
 * pending ring. The event-loop thread then copies dirty slot blobs a few at
 * a time (ck_snap_add; the caller time-boxes each batch) into fixed-size
 * chunks; a full chunk goes to the writer, which writes it inside the same
 * transaction while the loop keeps ingesting and fills the next one. When
 * ck_snap_add returns NULL every chunk is busy: the loop retries on a later
 * iteration. ck_seal queues the last chunk; the writer commits after it.
 * Snapshot memory is thus 4 chunks of chunk_rows rows, not max_series rows,
 * and a crash at any point leaves the previous commit (kill -9 safe).
 *
 * Ordering: evicted states and deletions are queued in a pending ring
 * (ck_evict_add, ck_delete) that travels with the NEXT job, before its
 * snapshot rows. A row in the pending ring is always newer than any
 * snapshot row of the open job (a series is snapshotted at most once per
 * job, and evicting or forgetting it comes after). A series taken back
 * into memory with ck_fetch (brought back, or recreated after a
 * deletion) has its pending row neutralized, so the loop must then treat
 * the slot as dirty: from then on only snapshots write it. After a crash
 * before that snapshot commits, a recreated series may come back with its
 * stored pre-deletion state (within "one interval lost").
 * While a job is in flight its ring belongs to the writer (read-only for
 * the loop: ck_fetch may search it); ck_poll collects the result and gives
 * it back. When the job failed (rolled back), ck_poll puts the ring's rows
 * back in front of the pending ring, so a deletion ('forget') or an evicted
 * state is retried with the next job instead of being lost with the
 * transaction; only rows beyond the ring's capacity are dropped (counted
 * in ck_result.lost). All buffers are sized in ck_open; nothing is allocated per row.
 *
 * Threads: every function except the writer's internals is called from one
 * thread (the loop). Separate SQLite connections serve the writer and the
 * loop's point reads, so reads do not wait for a writing transaction (WAL).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

#define CK_SCHEMA_VERSION 2 /* PRAGMA user_version written by this code */
#define CK_ID_MAX 255       /* bytes */

typedef struct ck_store ck_store;

/*
 * Opens (creating if needed) the store at path, applies migrations, and
 * starts the writer. blob_size: bytes per state; chunk_rows: rows per
 * snapshot chunk (4 chunks are allocated); evict_rows: pending ring capacity.
 * NULL with *err (RC_ERR_IO with the sqlite3 message and path in errbuf,
 * RC_ERR_VERSION for a newer schema, RC_ERR_NOMEM).
 */
ck_store *ck_open(const char *path, size_t blob_size, uint32_t chunk_rows, uint32_t evict_rows,
                  rc_err *err, char *errbuf, size_t errlen);
/* Waits for the job in flight (if any), stops the writer, closes. NULL is a no-op. */
void ck_close(ck_store *s);

/*
 * SQLite's PRAGMA quick_check over the whole file (loop thread, before the
 * first job): 1 when it says ok, 0 with its first complaint in msg, -1 when
 * it could not run (the reason in msg). Reads every page once: about as long
 * as a restore.
 */
int ck_check(ck_store *s, char *msg, size_t msglen);

/* Called once per stored row by ck_restore; blob is borrowed for the call. */
typedef void ck_row_cb(void *ctx, const char *id, size_t id_len, uint64_t model_hash,
                       const uint8_t *blob, size_t blob_len);
/* Reads every row (loop thread, before or between jobs). Returns rows seen or -1. */
long ck_restore(ck_store *s, ck_row_cb *cb, void *ctx);

/*
 * Looks id up for bringing an evicted series back: the pending ring, then
 * the job in flight's ring, then the database, newest first. Returns 1 and
 * copies the blob into buf (cap bytes; *len its size, *model_hash) when
 * found, 0 when absent or deleted, -1 on a database error. A matching row
 * of the pending ring (state or deletion) is neutralized: the caller owns
 * the series again and must mark it dirty (see Ordering above).
 */
int ck_fetch(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
             size_t *len, uint64_t *model_hash);
/* The same read without taking the series back: the pending ring is left
 * as it is (for looking at a series that stays in the store, e.g. `get`). */
int ck_peek(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
            size_t *len, uint64_t *model_hash);

/* 1 from ck_begin until ck_poll collects the job's result. */
int ck_busy(const ck_store *s);

/* Opens a job (swaps the pending ring in). RC_ERR_LIMIT when busy. */
rc_err ck_begin(ck_store *s);
/* The next job (ck_begin or ck_submit) also deletes, after its own rows,
 * every row last written before wall time t (seconds since the epoch):
 * series idle longer than series.idle_ttl. 0 = none. Loop thread. */
void ck_expire_before(ck_store *s, double t);
/* Snapshot row of the open job: returns the blob area (blob_size bytes) to
 * fill, or NULL when no job is open, it is sealed, or every chunk is in use
 * (retry later). model_hash is stored with the row. */
uint8_t *ck_snap_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash);
/* 1 when ck_snap_add would return a row now. */
int ck_snap_room(ck_store *s);
/* Ends the open job's snapshot: the writer commits after the last chunk.
 * RC_ERR_LIMIT when no job is open or it is already sealed. */
rc_err ck_seal(ck_store *s);
/* Queues an evicted state (returns the blob area) or a deletion; NULL /
 * RC_ERR_LIMIT when the pending ring is full. Allowed while busy. */
uint8_t *ck_evict_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash);
rc_err ck_delete(ck_store *s, const char *id, size_t id_len);
/* Rows queued in the pending ring for the next job. */
uint32_t ck_pending(const ck_store *s);

/* ck_begin then ck_seal: a job of the pending ring only. RC_ERR_LIMIT when busy. */
rc_err ck_submit(ck_store *s);

typedef struct ck_result {
    rc_err rc;          /* RC_OK, or RC_ERR_IO when the transaction failed (rolled back) */
    uint32_t rows;      /* rows written */
    double started;     /* wall clock, seconds since the epoch */
    double duration;    /* seconds the transaction took */
    char error[256];    /* sqlite3_errmsg when rc != RC_OK */
    uint32_t requeued;  /* failed job: its evictions/deletions queued again for the next job */
    uint32_t lost;      /* failed job: those that did not fit in the pending ring (dropped) */
    uint32_t expired;   /* rows deleted as idle (ck_expire_before), in the same transaction */
} ck_result;

/* Returns 1 and fills *r when the job in flight finished (the store is then
 * idle again), else 0. */
int ck_poll(ck_store *s, ck_result *r);
/* Waits up to timeout seconds for the job in flight (which must be sealed
 * to finish); returns ck_poll's value. */
int ck_wait(ck_store *s, double timeout, ck_result *r);

/* Test hook: caps the database at max_pages pages (PRAGMA max_page_count,
 * min. the current size) to simulate a full disk. Only while not busy. */
rc_err ck_test_max_pages(ck_store *s, long max_pages);

#endif
