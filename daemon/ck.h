/*
 * ck.h: the SQLite checkpoint store (WAL mode) and its background writer.
 *
 * One row per series: id, the hash of the model that produced the state,
 * the time it was written, and the engine's slot blob. The schema version
 * lives in PRAGMA user_version; migrations are forward-only, and a file from
 * a newer version is refused (RC_ERR_VERSION), never guessed at.
 *
 * Handoff (why ingest never waits for the disk): the event-loop thread
 * copies dirty slot blobs into the store's in-memory snapshot buffer
 * (ck_snap_add) and hands it over with ck_submit; a writer thread then
 * writes the whole job in ONE transaction while the loop keeps ingesting.
 * Evicted states and deletions are queued in a pending ring (ck_evict_add,
 * ck_delete) that travels with the next job, before its snapshot rows, so
 * the newest state of a series is always the last one written. While a job
 * is in flight, its buffers belong to the writer (read-only for the loop:
 * ck_fetch may search them); ck_poll collects the result and gives them back.
 * All buffers are sized in ck_open; nothing is allocated per row.
 *
 * Threads: every function except the writer's internals is called from one
 * thread (the loop). Separate SQLite connections serve the writer and the
 * loop's point reads, so reads do not wait for a writing transaction (WAL).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CK_H
#define CK_H

#include <stddef.h>
#include <stdint.h>

#include "common/rc.h"

#define CK_SCHEMA_VERSION 1 /* PRAGMA user_version written by this code */
#define CK_ID_MAX 255       /* bytes */

typedef struct ck_store ck_store;

/*
 * Opens (creating if needed) the store at path, applies migrations, and
 * starts the writer. blob_size: bytes per state; snap_rows: snapshot
 * capacity (the registry's max_series); evict_rows: pending ring capacity.
 * NULL with *err (RC_ERR_IO with the sqlite3 message and path in errbuf,
 * RC_ERR_VERSION for a newer schema, RC_ERR_NOMEM).
 */
ck_store *ck_open(const char *path, size_t blob_size, uint32_t snap_rows, uint32_t evict_rows,
                  rc_err *err, char *errbuf, size_t errlen);
/* Waits for the job in flight (if any), stops the writer, closes. NULL is a no-op. */
void ck_close(ck_store *s);

/* Called once per stored row by ck_restore; blob is borrowed for the call. */
typedef void ck_row_cb(void *ctx, const char *id, size_t id_len, uint64_t model_hash,
                       const uint8_t *blob, size_t blob_len);
/* Reads every row (loop thread, before or between jobs). Returns rows seen or -1. */
long ck_restore(ck_store *s, ck_row_cb *cb, void *ctx);

/*
 * Looks id up for bringing an evicted series back: the pending ring, then
 * the job in flight, then the database, newest first. Returns 1 and copies
 * the blob into buf (cap bytes; *len its size, *model_hash) when found, 0
 * when absent or deleted, -1 on a database error.
 */
int ck_fetch(ck_store *s, const char *id, size_t id_len, uint8_t *buf, size_t cap,
             size_t *len, uint64_t *model_hash);

/* 1 while a job is in flight and not yet collected by ck_poll. */
int ck_busy(const ck_store *s);

/* Snapshot rows of the next job: returns the blob area (blob_size bytes) to
 * fill, or NULL when full or busy. model_hash is stored with the row. */
uint8_t *ck_snap_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash);
/* Queues an evicted state (returns the blob area) or a deletion; NULL /
 * RC_ERR_LIMIT when the pending ring is full. Allowed while busy. */
uint8_t *ck_evict_add(ck_store *s, const char *id, size_t id_len, uint64_t model_hash);
rc_err ck_delete(ck_store *s, const char *id, size_t id_len);
/* Rows queued for the next job (pending ring + snapshot). */
uint32_t ck_pending(const ck_store *s);

/* Hands the pending ring and the snapshot to the writer. RC_ERR_LIMIT when busy. */
rc_err ck_submit(ck_store *s);

typedef struct ck_result {
    rc_err rc;          /* RC_OK, or RC_ERR_IO when the transaction failed (rolled back) */
    uint32_t rows;      /* rows written */
    double started;     /* wall clock, seconds since the epoch */
    double duration;    /* seconds the transaction took */
    char error[256];    /* sqlite3_errmsg when rc != RC_OK */
} ck_result;

/* Returns 1 and fills *r when the job in flight finished (the store is then
 * idle again), else 0. */
int ck_poll(ck_store *s, ck_result *r);
/* Waits up to timeout seconds for the job in flight; returns ck_poll's value. */
int ck_wait(ck_store *s, double timeout, ck_result *r);

/* Test hook: caps the database at max_pages pages (PRAGMA max_page_count,
 * min. the current size) to simulate a full disk. Only while not busy. */
rc_err ck_test_max_pages(ck_store *s, long max_pages);

#endif
