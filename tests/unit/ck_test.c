/*
 * ck_test.c: the checkpoint store: a job round trip, eviction and deletion
 * ordering, fetch from the rings and the database, schema version checks,
 * and kill -9 of a writing child followed by PRAGMA integrity_check.
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

#include "daemon/ck.h"
#include "tests/unit/tt.h"

enum { BLOB = 64 };

static char path[256];

static void tmpdb(void) {
    char dir[] = "/tmp/ck_testXXXXXX";
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);
}

static ck_store *open_store(void) {
    rc_err err;
    char msg[512];
    ck_store *s = ck_open(path, BLOB, 100, 8, &err, msg, sizeof msg);
    if (!s) TT_FAIL_("ck_open: %s", msg);
    return s;
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

static void run(ck_store *s) {
    ck_result r;
    ASSERT_EQ(ck_submit(s), RC_OK);
    ASSERT(ck_busy(s));
    ASSERT_EQ(ck_submit(s), RC_ERR_LIMIT);
    ASSERT(ck_wait(s, 10, &r));
    ASSERT_EQ(r.rc, RC_OK);
    ASSERT(!ck_busy(s));
}

TEST(round_trip_and_order) {
    tmpdb();
    ck_store *s = open_store();
    fill(ck_snap_add(s, "a", 1, 7), 1);
    fill(ck_snap_add(s, "b", 1, 7), 2);
    fill(ck_evict_add(s, "c", 1, 7), 3);
    ASSERT_EQ(ck_pending(s), 3);
    run(s);
    /* An eviction of b and a newer snapshot of b in the same job: the snapshot wins. */
    fill(ck_evict_add(s, "b", 1, 7), 20);
    fill(ck_snap_add(s, "b", 1, 7), 21);
    ASSERT_EQ(ck_delete(s, "a", 1), RC_OK);
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
}

TEST(fetch_rings_then_db) {
    tmpdb();
    ck_store *s = open_store();
    uint8_t buf[BLOB];
    size_t n;
    uint64_t h;
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 0);
    fill(ck_evict_add(s, "x", 1, 9), 5);
    ASSERT_EQ(ck_fetch(s, "x", 1, buf, sizeof buf, &n, &h), 1);
    ASSERT_EQ(buf[0], 5);
    ASSERT_EQ(h, 9);
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
    /* The pending ring holds 8 rows. */
    for (int i = 1; i < 8; i++) ASSERT(ck_evict_add(s, "y", 1, 1));
    ASSERT(ck_evict_add(s, "z", 1, 1) == NULL);
    ASSERT_EQ(ck_delete(s, "z", 1), RC_ERR_LIMIT);
    ck_close(s);
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
}

TEST(kill9_during_checkpoints) {
    tmpdb();
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            ck_store *s = open_store();
            for (int k = 0;; k++) {
                for (int i = 0; i < 100; i++) {
                    char id[16];
                    int n = snprintf(id, sizeof id, "s%d", i);
                    uint8_t *b = ck_snap_add(s, id, (size_t)n, 1);
                    fill(b, k & 0xff);
                }
                ck_submit(s);
                ck_result r;
                ck_wait(s, 10, &r);
            }
        }
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
}

TT_MAIN(TEST_ENTRY(round_trip_and_order), TEST_ENTRY(fetch_rings_then_db), TEST_ENTRY(schema_version),
        TEST_ENTRY(kill9_during_checkpoints))
