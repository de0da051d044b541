/*
 * faults_test.c: fault injection over the daemon core's store paths, the
 * way SQLite tests itself (malloc_common.tcl, test_vfs.c): checkpoint,
 * restore, forget and bringing an evicted series back, each run again and
 * again with the Nth file operation failing (I/O error, fsync error, full
 * disk; once or from then on), with the Nth SQLite allocation failing,
 * and with the Nth rc_malloc failing, for N = 1, 2, ... until a run sees
 * no fault. After every run:
 *   - the store passes PRAGMA integrity_check and holds either the last
 *     committed checkpoint or the new one, never a mix;
 *   - a failed checkpoint is counted (ckpt_fail) and the next one, without
 *     faults, writes every series, so the store equals memory again;
 *   - a forget is never undone by a failed job;
 *   - a restore either fails cleanly (nothing leaked, the lock released)
 *     or restores every series intact;
 *   - an evicted series whose read fails is not restarted from scratch.
 * The core is dm_core_open's (random-weight model, engine, registry, store
 * in a temp dir), driven the way the event loop drives it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ingest.h"
#include "daemon/server_internal.h"
#include "daemon/snapshot.h"
#include "tests/unit/faultsim.h"
#include "tests/unit/harness.h"

enum { NSERIES = 12, MAX_N = 400 };

static dm *d;
static cf_config cfg;
static char dir[64];
static char db[1100];
static double t_next = 1000; /* sample time, s */
static uint8_t blob_mem[8192];

static void setup(uint32_t max_series, int policy) {
    setenv("RWKVCAST_MODEL", "/nonexistent/default.rwkv", 1);
    snprintf(dir, sizeof dir, "/tmp/fault_testXXXXXX");
    ASSERT(mkdtemp(dir));
    cf_default(&cfg);
    cfg.log_level = LG_WARNING + 1;
    cfg.max_series = max_series;
    cfg.policy = policy;
    cfg.threads = 1;
    cfg.pipeline = 0;
    snprintf(cfg.state_db, sizeof cfg.state_db, "%s/state.db", dir);
    snprintf(db, sizeof db, "%s", cfg.state_db);
    fs_install();
}

/* dm_core_open on cfg; the core is closed (and d freed) on failure. */
static rc_err core_open(void) {
    d = rc_calloc(1, sizeof *d);
    if (!d) return RC_ERR_NOMEM;
    rc_err rc = dm_core_open(d, &cfg);
    if (rc != RC_OK) {
        dm_core_close(d);
        rc_free(d);
        d = NULL;
    }
    return rc;
}

static void core_close(void) {
    dm_core_close(d);
    rc_free(d);
    d = NULL;
}

static void teardown(void) {
    const char *files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock"};
    char p[200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void sample(const char *s, double t, double v) {
    uint8_t b[512];
    mp_wr p;
    mp_wr_init(&p, b, sizeof b);
    mp_w_map(&p, 3);
    mp_w_kv_str(&p, "s", s);
    mp_w_kv_f64(&p, "t", t);
    mp_w_kv_f64(&p, "v", v);
    d->ingest_now = t;
    ig_ingest_payload(d, p.buf, p.len);
    en_flush(d->en);
}

/* One new sample for each of the first n series s0, s1, ... */
static void ingest_all(int n) {
    for (int k = 0; k < n; k++) {
        char s[16];
        snprintf(s, sizeof s, "s%d", k);
        sample(s, t_next, 10 + k + (double)((long)t_next % 7));
    }
    t_next += 60;
}

/* Drives a checkpoint to its end as the loop does (sn_start, slices,
 * polls), collecting eviction-only jobs on the way. */
static ck_result checkpoint(void) {
    ck_result r;
    sn_start(d);
    int64_t until = lg_mono_ns() + 30000000000LL;
    while (lg_mono_ns() < until) {
        if (ck_poll(d->ck, &r) && sn_done(d, &r)) return r;
        sn_advance(d);
        usleep(200);
    }
    TT_FAIL_("checkpoint did not finish within 30 s");
}

/* Waits for any job in flight (e.g. evictions sent on their own). */
static void settle(void) {
    ck_result r;
    int64_t until = lg_mono_ns() + 30000000000LL;
    while (ck_busy(d->ck) || ck_pending(d->ck)) {
        if (lg_mono_ns() > until) TT_FAIL_("store job did not finish within 30 s");
        if (ck_poll(d->ck, &r)) sn_done(d, &r);
        sn_advance(d);
        usleep(200);
    }
}

/* ---- Looking at the store from outside ---- */

typedef struct store_view {
    int ok;            /* PRAGMA integrity_check said ok */
    int rows;          /* rows in the series table */
    int same_as_mem;   /* rows whose blob equals the series' state in memory */
    uint64_t digest;   /* hash over (id, model_hash, state) in id order */
} store_view;

/* Reads the store through a connection of its own (the daemon keeps its
 * lock file, not a database lock, so this does not disturb it). */
static store_view look(void) {
    store_view v = {0, 0, 0, RC_HASH_INIT};
    sqlite3 *c;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(c, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) v.ok = !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_prepare_v2(c, "SELECT id, model_hash, state FROM series ORDER BY id", -1, &st, NULL),
              SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        int64_t h = sqlite3_column_int64(st, 1);
        const void *b = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        v.digest = rc_hash64(v.digest, id, len + 1);
        v.digest = rc_hash64(v.digest, &h, sizeof h);
        v.digest = rc_hash64(v.digest, b, n);
        v.rows++;
        uint32_t slot = d ? rg_find(d->rg, id, len) : RG_NONE;
        if (slot != RG_NONE && n == d->blob_size) {
            en_slot_save(d->en, slot, blob_mem);
            v.same_as_mem += memcmp(blob_mem, b, n) == 0;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(c);
    return v;
}

/* The store equals memory: every series in it with its current state. */
static void expect_store_is_memory(void) {
    store_view v = look();
    ASSERT(v.ok);
    ASSERT_EQ(v.rows, rg_count(d->rg));
    ASSERT_EQ(v.same_as_mem, v.rows);
}

/* ---- Checkpoints ---- */

typedef struct fault_kind {
    const char *name;
    int io;         /* FS_ mask, 0 for SQLite allocations */
    int persistent; /* failing from the Nth on, not just once */
    int full;       /* SQLITE_FULL instead of an I/O error */
} fault_kind;

static const fault_kind kinds[] = {
    {"write error, once", FS_WRITE, 0, 0},   {"write error, from then on", FS_WRITE, 1, 0},
    {"fsync error, once", FS_SYNC, 0, 0},    {"fsync error, from then on", FS_SYNC, 1, 0},
    {"disk full", FS_WRITE, 1, 1},           {"read error, from then on", FS_READ, 1, 0},
    {"SQLite out of memory, once", 0, 0, 0}, {"SQLite out of memory, from then on", 0, 1, 0},
};

static void arm(const fault_kind *k, long n) {
    if (k->io) fs_arm_io(k->io, n, k->persistent, k->full);
    else fs_arm_malloc(n, k->persistent);
}

/*
 * For each fault kind and N = 1, 2, ...: new samples for every series,
 * a checkpoint with the Nth operation failing, then the checks of the
 * file comment, then a checkpoint without faults. Stops at the first N
 * whose run met no fault (that checkpoint must have succeeded).
 */
TEST(checkpoint_under_faults) {
    setup(64, CF_POLICY_REFUSE);
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(NSERIES);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    long total_faults = 0, total_failed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        long n;
        for (n = 1; n <= MAX_N; n++) {
            ingest_all(NSERIES);
            store_view before = look();
            uint64_t fails = d->ckpt_fail;
            arm(&kinds[k], n);
            ck_result r = checkpoint();
            long hits = fs_hits();
            fs_disarm();
            store_view after = look();
            ASSERT(after.ok);
            if (r.rc == RC_OK) {
                /* Committed (a fault SQLite absorbed, or none at all). */
                ASSERT_EQ(d->ckpt_fail, fails);
                ASSERT_EQ(after.rows, NSERIES);
                ASSERT_EQ(after.same_as_mem, NSERIES);
            } else {
                /* Counted; the store holds the old checkpoint or, when the
                 * commit reached the disk before the error (an fsync that
                 * failed after the write), the new one: never a mix. */
                total_failed++;
                ASSERT_EQ(d->ckpt_fail, fails + 1);
                ASSERT_EQ(d->ckpt_full, 1);
                ASSERT(after.digest == before.digest || after.same_as_mem == NSERIES);
                ASSERT_EQ(after.rows, NSERIES);
                ASSERT_EQ(checkpoint().rc, RC_OK);
                expect_store_is_memory();
            }
            total_faults += hits;
            if (hits == 0) break;
        }
        if (n > MAX_N) TT_FAIL_("%s: still meeting faults after %d runs", kinds[k].name, MAX_N);
        printf("  checkpoint, %s: %ld runs\n", kinds[k].name, n);
    }
    printf("  %ld faults injected, %ld checkpoints failed and were counted\n", total_faults, total_failed);
    ASSERT(total_failed > 0);
    core_close();
    teardown();
}

/* The checkpoint path, a forget and bringing a series back allocate
 * nothing: with every rc_malloc failing they all still work. */
TEST(store_paths_do_not_allocate) {
    setup(4, CF_POLICY_EVICT);
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(4);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    rc_fail_after(1, 1);
    ingest_all(8); /* four evicted, four brought back, over and over */
    ingest_all(8);
    ASSERT_EQ(ck_delete(d->ck, "s7", 2), RC_OK);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    settle();
    ASSERT(rc_malloc(1) == NULL); /* still armed */
    rc_fail_after(0, 0);
    ASSERT(d->brought_back >= 4);
    ASSERT_EQ(d->ckpt_fail, 0);
    core_close();
    teardown();
}

/* ---- Forget ---- */

/* A forgotten series stays forgotten when the job carrying its deletion
 * fails: the deletion goes with the next job. Before, a failed job lost
 * it and the series came back at the next restart. */
TEST(forget_survives_failed_jobs) {
    setup(64, CF_POLICY_REFUSE);
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(NSERIES);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    long n;
    int forgotten = 0;
    for (n = 1; n <= MAX_N && forgotten < NSERIES - 1; n++) {
        char s[16];
        snprintf(s, sizeof s, "s%d", forgotten);
        uint32_t slot = rg_find(d->rg, s, strlen(s));
        ASSERT(slot != RG_NONE);
        /* What the 'forget' command does (control.c). */
        ASSERT_EQ(ck_delete(d->ck, s, strlen(s)), RC_OK);
        rg_remove(d->rg, slot);
        en_slot_reset(d->en, slot);
        forgotten++;
        fs_arm_io(FS_WRITE | FS_SYNC, n, 0, 0);
        ck_result r = checkpoint();
        long hits = fs_hits();
        fs_disarm();
        if (r.rc != RC_OK) ASSERT_EQ(checkpoint().rc, RC_OK);
        settle();
        expect_store_is_memory();
        if (hits == 0) break;
    }
    printf("  forget: %ld runs, %d series forgotten\n", n, forgotten);
    core_close();
    /* And after a restart too. */
    ASSERT_EQ(core_open(), RC_OK);
    ASSERT_EQ(rg_count(d->rg), NSERIES - forgotten);
    ASSERT_EQ(d->restored, NSERIES - forgotten);
    core_close();
    teardown();
}

/* A deletion sent on its own (no checkpoint due) whose job fails, once or
 * persistently, is retried with the next job. */
TEST(forget_alone_survives_failed_job) {
    setup(64, CF_POLICY_REFUSE);
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(3);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    ASSERT_EQ(ck_delete(d->ck, "s1", 2), RC_OK);
    fs_arm_io(FS_WRITE, 1, 1, 1);
    ck_result r;
    sn_advance(d); /* sends the deletion on its own */
    ASSERT(ck_busy(d->ck));
    ASSERT(ck_wait(d->ck, 30, &r));
    ASSERT_EQ(sn_done(d, &r), 0);
    ASSERT_EQ(r.rc, RC_ERR_IO);
    ASSERT_EQ(d->ckpt_fail, 1);
    fs_disarm();
    ASSERT_EQ(ck_pending(d->ck), 1); /* queued again */
    settle();
    store_view v = look();
    ASSERT_EQ(v.rows, 2);
    core_close();
    teardown();
}

/* ---- Restore ---- */

/* Builds a store of NSERIES series and returns its digest. */
static uint64_t stored_series(void) {
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(NSERIES);
    ingest_all(NSERIES);
    ASSERT_EQ(checkpoint().rc, RC_OK);
    core_close();
    return look().digest;
}

/* Each restored series holds exactly its stored state. */
static void expect_memory_is_store(uint64_t digest) {
    store_view v = look();
    ASSERT(v.ok);
    ASSERT_EQ(v.digest, digest);
    ASSERT_EQ(rg_count(d->rg), NSERIES);
    ASSERT_EQ(d->restored, NSERIES);
    ASSERT_EQ(v.same_as_mem, NSERIES);
}

/* Startup (store open, integrity check, restore) with the Nth read, the
 * Nth SQLite allocation or the Nth rc_malloc failing: the daemon either
 * refuses to start, leaking nothing and leaving the store as it was and
 * unlocked, or starts with every series restored. Before, a read error in
 * the middle of the restore started the daemon with the series read so far. */
TEST(restore_under_faults) {
    setup(64, CF_POLICY_REFUSE);
    uint64_t digest = stored_series();
    size_t base = rc_mem_used();
    const char *names[] = {"read error, once", "read error, from then on", "SQLite out of memory, once",
                           "rc_malloc out of memory, once"};
    for (int k = 0; k < 4; k++) {
        long n, refused = 0;
        for (n = 1; n <= 4 * MAX_N; n++) {
            if (k == 0 || k == 1) fs_arm_io(FS_READ, n, k == 1, 0);
            else if (k == 2) fs_arm_malloc(n, 0);
            else rc_fail_after(n, 0);
            rc_err rc = core_open();
            long hits = fs_hits();
            fs_disarm();
            rc_fail_after(0, 0);
            if (rc != RC_OK) {
                refused++;
                ASSERT_EQ(rc_mem_used(), base);
                continue;
            }
            expect_memory_is_store(digest);
            core_close();
            if (k < 3 ? hits == 0 : 1) break;
        }
        if (n > 4 * MAX_N) TT_FAIL_("%s: still failing after %d runs", names[k], 4 * MAX_N);
        printf("  restore, %s: %ld runs, %ld refused to start\n", names[k], n, refused);
        ASSERT(refused > 0);
    }
    /* The store came through unchanged. */
    ASSERT_EQ(core_open(), RC_OK);
    expect_memory_is_store(digest);
    core_close();
    teardown();
}

/* ---- Bringing an evicted series back ---- */

/* A read error while bringing an evicted series back drops that sample
 * (counted as 'store') instead of starting the series afresh, which the
 * next checkpoint would have written over its stored state. */
TEST(bring_back_read_error_keeps_the_state) {
    setup(4, CF_POLICY_EVICT);
    ASSERT_EQ(core_open(), RC_OK);
    ingest_all(8); /* s0..s3 evicted by s4..s7 */
    settle();
    ASSERT_EQ(rg_find(d->rg, "s0", 2), RG_NONE);
    uint64_t fresh = d->new_series, back = d->brought_back;
    fs_arm_io(FS_READ, 1, 1, 0);
    sample("s0", t_next, 1);
    fs_disarm();
    ASSERT_EQ(d->dropped[IG_DROP_STORE], 1);
    ASSERT_EQ(d->new_series, fresh);
    ASSERT_EQ(rg_find(d->rg, "s0", 2), RG_NONE);
    /* Without the fault the series comes back with its own history: a
     * sample older than its stored last one is refused (a fresh series
     * would take it). */
    sample("s0", t_next - 200, 1);
    ASSERT_EQ(d->brought_back, back + 1);
    ASSERT_EQ(d->dropped[IG_DROP_OLD], 1);
    ASSERT(rg_find(d->rg, "s0", 2) != RG_NONE);
    ASSERT_EQ(d->new_series, fresh);
    core_close();
    teardown();
}

TT_MAIN(TEST_ENTRY(checkpoint_under_faults), TEST_ENTRY(store_paths_do_not_allocate),
        TEST_ENTRY(forget_survives_failed_jobs), TEST_ENTRY(forget_alone_survives_failed_job),
        TEST_ENTRY(restore_under_faults), TEST_ENTRY(bring_back_read_error_keeps_the_state))
