/*
 * checkpoint_test.c: the checkpoint store: a job round trip, eviction and deletion
 * ordering, fetch from the rings and the database (and taking pending rows
 * back), a job of many small chunks, schema version checks, and kill -9 of
 * a child writing multi-chunk jobs followed by PRAGMA integrity_check.
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/checkpoint.h"
#include "tests/unit/harness.h"

enum { BLOB = 64 };

static char path[256];
static char dir[64];

/* The store lives in a fresh temp dir, removed again by cleanup(). */
static void tmpdb(void) {
    snprintf(dir, sizeof dir, "/tmp/ck_testXXXXXX");
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);
}

static void cleanup(void) {
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[300];
        snprintf(f, sizeof f, "%s%s", path, suffix[i]);
        unlink(f);
    }
    rmdir(dir);
}

static ck_store *open_chunks(uint32_t chunk_rows) {
    rc_err err;
    char msg[512];
    ck_store *s = ck_open(path, BLOB, chunk_rows, 8, &err, msg, sizeof msg);
    if (!s) TT_FAIL_("ck_open: %s", msg);
    return s;
}
static ck_store *open_store(void) { return open_chunks(100); }

/* ck_snap_add, retrying (bounded) while every chunk is with the writer. */
static uint8_t *snap(ck_store *s, const char *id, uint64_t h) {
    uint8_t *b = NULL;
    for (int i = 0; i < 2000 && !(b = ck_snap_add(s, id, strlen(id), h)); i++) usleep(1000);
    return b;
}

static void fill(uint8_t *b, int v) { memset(b, v, BLOB); }

typedef struct seen { int n; char ids[64][16]; int first[64]; uint64_t hash[64]; } seen;
static void on_row(void *ctx, const char *id, size_t len, uint64_t h, const uint8_t *b, size_t n) {
    seen *s = ctx;
    ASSERT_EQ(n, BLOB);
    snprintf(s->ids[s->n], 16, "%.*s", (int)len, id);
    s->first[s->n] = b[0];
    s->hash[s->n] = h;
    s->n++;
}
static int lookup(const seen *s, const char *id) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->ids[i], id)) return s->first[i];
    return -1;
}

/* Seals the open job and waits for it, then runs an empty job. */
static void run(ck_store *s) {
    ck_result r;
    ASSERT(ck_busy(s));
    ASSERT_EQ(ck_seal(s), RC_OK);
    ASSERT(ck_busy(s));
    ASSERT_EQ(ck_seal(s), RC_ERR_LIMIT);
    ASSERT_EQ(ck_submit(s), RC_ERR_LIMIT);
    ASSERT_EQ(ck_begin(s), RC_ERR_LIMIT);
    ASSERT(ck_snap_add(s, "late", 4, 1) == NULL); /* sealed */
    ASSERT(!ck_snap_room(s));
    /* Poll the way the event loop does, bounded. */
    for (int i = 0; i < 1000 && !ck_poll(s, &r); i++) usleep(5000);
    ASSERT(!ck_busy(s));
    ASSERT_EQ(r.rc, RC_OK);
    ASSERT_EQ(ck_poll(s, &r), 0);
    ASSERT_EQ(ck_wait(s, 1, &r), 0);
    ASSERT_EQ(ck_submit(s), RC_OK); /* an empty job is fine */
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(r.rc, RC_OK);
    ASSERT(!ck_busy(s));
}

TEST(round_trip_and_order) {
    tmpdb();
    ck_store *s = open_store();
    ASSERT(ck_snap_add(s, "a", 1, 7) == NULL); /* no job open */
    fill(ck_evict_add(s, "c", 1, 7), 3);
    ASSERT_EQ(ck_pending(s), 1);
    ASSERT_EQ(ck_begin(s), RC_OK);
    ASSERT_EQ(ck_pending(s), 0); /* the ring travels with the job */
    ASSERT(ck_snap_room(s));
    fill(ck_snap_add(s, "a", 1, 7), 1);
    fill(ck_snap_add(s, "b", 1, 7), 2);
    run(s);
    /* An eviction of b and a newer snapshot of b in the same job: the snapshot wins. */
    fill(ck_evict_add(s, "b", 1, 7), 20);
    ASSERT_EQ(ck_delete(s, "a", 1), RC_OK);
    ASSERT_EQ(ck_begin(s), RC_OK);
    fill(ck_snap_add(s, "b", 1, 7), 21);
    run(s);
    ck_close(s);

    s = open_store();
    seen sn = {0};
    ASSERT_EQ(ck_restore(s, on_row, &sn), 2);
    ASSERT_EQ(lookup(&sn, "a"), -1);
    ASSERT_EQ(lookup(&sn, "b"), 21);
    ASSERT_EQ(lookup(&sn, "c"), 3);
    ASSERT_EQ(sn.hash[0], 7);
    ck_close(s);
    cleanup();
}

TEST(fetch_rings_then_db) {
    tmpdb();
    ck_store *s = open_store();
    uint8_t buf[BLOB];
    size_t n;
    uint64_t h;
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    ASSERT_EQ(ck_peek(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    fill(ck_evict_add(s, "x", 1, 9), 5);
    /* A peek reads the pending row and leaves it there, as often as asked. */
    for (int i = 0; i < 2; i++) {
        memset(buf, 0, sizeof buf);
        ASSERT_EQ(ck_peek(s, "x", 1, buf, sizeof buf, &n, &h), 1);
        ASSERT_EQ(buf[0], 5);
        ASSERT_EQ(h, 9);
    }
    ASSERT_EQ(ck_pending(s), 1);
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 1);
    ASSERT_EQ(buf[0], 5);
    ASSERT_EQ(h, 9);
    /* Taken back from the pending ring: not found there a second time. */
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    fill(ck_evict_add(s, "x", 1, 9), 5);
    ASSERT_EQ(ck_submit(s), RC_OK);
    /* Found while in flight (ring) and after (database). */
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 1);
    ASSERT_EQ(buf[0], 5);
    ck_result r;
    ASSERT(ck_wait(s, 10, &r));
    memset(buf, 0, sizeof buf);
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 1);
    ASSERT_EQ(buf[0], 5);
    ASSERT_EQ(n, BLOB);
    ASSERT_EQ(ck_delete(s, "x", 1), RC_OK);
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    /* The deletion was taken back too (the series lives again in memory):
     * the database row stays until a snapshot overwrites it. */
    ASSERT_EQ(ck_submit(s), RC_OK);
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 1);
    ASSERT_EQ(ck_delete(s, "x", 1), RC_OK);
    ASSERT_EQ(ck_submit(s), RC_OK);
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    /* The pending ring holds 8 rows. */
    for (int i = 0; i < 8; i++) ASSERT(ck_evict_add(s, "y", 1, 1));
    ASSERT(ck_evict_add(s, "z", 1, 1) == NULL);
    ASSERT_EQ(ck_delete(s, "z", 1), RC_ERR_LIMIT);
    ck_close(s);
    cleanup();
}

TEST(many_chunks_one_job) {
    tmpdb();
    ck_store *s = open_chunks(3);
    ASSERT_EQ(ck_begin(s), RC_OK);
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%02d", i);
        uint8_t *b = snap(s, id, 5);
        ASSERT(b);
        fill(b, i);
    }
    ck_result r;
    ASSERT_EQ(ck_seal(s), RC_OK);
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(r.rc, RC_OK);
    ASSERT_EQ(r.rows, 50);
    seen sn = {0};
    ASSERT_EQ(ck_restore(s, on_row, &sn), 50);
    ASSERT_EQ(lookup(&sn, "m00"), 0);
    ASSERT_EQ(lookup(&sn, "m49"), 49);
    /* Closing with a job open (never sealed) rolls it back, without hanging. */
    ASSERT_EQ(ck_begin(s), RC_OK);
    for (int i = 0; i < 10; i++) fill(snap(s, "late", 5), 99);
    ck_close(s);
    s = open_store();
    sn.n = 0;
    ASSERT_EQ(ck_restore(s, on_row, &sn), 50);
    ASSERT_EQ(lookup(&sn, "late"), -1);
    ck_close(s);
    cleanup();
}

TEST(schema_version) {
    tmpdb();
    ck_store *s = open_store();
    ck_close(s);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(st, 0), CK_SCHEMA_VERSION);
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rc_err err;
    char msg[512];
    ASSERT(ck_open(path, BLOB, 10, 2, &err, msg, sizeof msg) == NULL);
    ASSERT_EQ(err, RC_ERR_VERSION);
    ASSERT(strstr(msg, "(99)"));
    ASSERT(ck_open("/nonexistent/dir/s.db", BLOB, 10, 2, &err, msg, sizeof msg) == NULL);
    ASSERT_EQ(err, RC_ERR_IO);
    ASSERT(strstr(msg, "/nonexistent/dir/s.db"));
    cleanup();
}

TEST(kill9_during_checkpoints) {
    tmpdb();
    for (int round = 0; round < 5; round++) {
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
            /* 7-row chunks: each job is 15 chunks in one transaction. */
            ck_store *s = open_chunks(7);
            (void)!write(ready[1], "r", 1);
            for (int k = 0;; k++) {
                ck_begin(s);
                for (int i = 0; i < 100; i++) {
                    char id[16];
                    snprintf(id, sizeof id, "s%d", i);
                    uint8_t *b = snap(s, id, 1);
                    if (!b) _exit(3);
                    fill(b, k & 0xff);
                }
                ck_seal(s);
                ck_result r;
                ck_wait(s, 10, &r);
            }
        }
        char c;
        ASSERT_EQ(read(ready[0], &c, 1), 1); /* killed while checkpointing, not while opening */
        close(ready[0]);
        close(ready[1]);
        struct timespec ts = {0, 30000000L + 17000000L * round};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        sqlite3 *db;
        ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *q;
        ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
        ASSERT_STREQ((const char *)sqlite3_column_text(q, 0), "ok");
        sqlite3_finalize(q);
        /* All-or-nothing: every stored row carries the same checkpoint number. */
        ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(DISTINCT substr(state,1,1)), count(*) FROM series",
                                     -1, &q, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
        ASSERT_LE(sqlite3_column_int(q, 0), 1);
        int rows = sqlite3_column_int(q, 1);
        ASSERT(rows == 0 || rows == 100);
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
    cleanup();
}

TEST(oom_at_open) {
    tmpdb();
    for (long n = 1; n < 10; n++) {
        rc_err err;
        char msg[256];
        rc_fail_after(n, 0);
        ck_store *s = ck_open(path, BLOB, 10, 2, &err, msg, sizeof msg);
        rc_fail_after(0, 0);
        if (s) { ck_close(s); continue; }
        ASSERT_EQ(err, RC_ERR_NOMEM);
    }
    cleanup();
}

TEST(disk_full_fails_job_then_recovers) {
    tmpdb();
    ck_store *s = open_chunks(10);
    ASSERT_EQ(ck_begin(s), RC_OK);
    fill(ck_snap_add(s, "a", 1, 7), 1);
    run(s);
    /* A full disk, simulated by capping the file at its current size. The
     * job spans 100 chunks (~100 KB of rows, more than the free space of the
     * store's pages at any page size); the failure comes early, the rest is
     * consumed. */
    ASSERT_EQ(ck_test_max_pages(s, 1), RC_OK);
    ASSERT_EQ(ck_begin(s), RC_OK);
    for (int i = 0; i < 1000; i++) {
        char id[16];
        snprintf(id, sizeof id, "full%d", i);
        uint8_t *b = snap(s, id, 7);
        ASSERT(b);
        fill(b, 2);
    }
    ck_result r;
    ASSERT_EQ(ck_seal(s), RC_OK);
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(r.rc, RC_ERR_IO);
    ASSERT(strstr(r.error, "full"));
    ASSERT_EQ(r.rows, 0);
    /* Rolled back: the old row is intact, none of the new ones exist. */
    seen sn = {0};
    ASSERT_EQ(ck_restore(s, on_row, &sn), 1);
    ASSERT_EQ(lookup(&sn, "a"), 1);
    ASSERT_EQ(ck_test_max_pages(s, 1000000), RC_OK);
    ASSERT_EQ(ck_begin(s), RC_OK);
    fill(ck_snap_add(s, "b", 1, 7), 3);
    run(s);
    ck_close(s);
    cleanup();
}

TT_MAIN(TEST_ENTRY(round_trip_and_order), TEST_ENTRY(oom_at_open), TEST_ENTRY(disk_full_fails_job_then_recovers), TEST_ENTRY(fetch_rings_then_db), TEST_ENTRY(schema_version), TEST_ENTRY(many_chunks_one_job),
        TEST_ENTRY(kill9_during_checkpoints))
