/*
 * faultsim.h: fault injection for tests, SQLite's way (its test_vfs.c and
 * malloc_common.tcl): a shim VFS that makes the Nth file operation from now
 * fail with an I/O error or "disk full", and an SQLite allocator that makes
 * the Nth allocation fail. rc_malloc has its own (rc_fail_after, base.h).
 *
 * A test calls fs_install() once, before anything opens a database: the
 * shim becomes SQLite's default VFS (every connection the code under test
 * opens goes through it) and the allocator replaces SQLite's. Both start
 * disarmed and forward everything to the real ones. The shim never hands
 * out memory-mapped pages (xFetch returns none), so every read goes
 * through xRead, where it can fail.
 *
 * Counting: each armed operation of the chosen kinds decrements a shared
 * countdown; the one that reaches zero fails, and with persistent != 0 so
 * does every later one until fs_disarm. fs_hits() says how many failed:
 * the usual loop runs N = 1, 2, ... until an armed run sees no fault.
 *
 * Threads: callable from any thread (the store's writer uses the shim);
 * the counters are atomic. Test-only: never linked into the daemon.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef FAULTSIM_H
#define FAULTSIM_H

/* Operation kinds (bit mask for fs_arm_io). */
enum {
    FS_READ = 1,  /* xRead: fails with SQLITE_IOERR_READ */
    FS_WRITE = 2, /* xWrite, xTruncate: SQLITE_IOERR_WRITE (or SQLITE_FULL) */
    FS_SYNC = 4,  /* xSync: SQLITE_IOERR_FSYNC */
};

/* Registers the shim as the default VFS and the failing allocator; call
 * once per process before any sqlite3_open. Aborts the test on failure. */
void fs_install(void);

/* The nth armed operation from now fails (n >= 1); kinds is a FS_ mask.
 * full != 0: writes fail with SQLITE_FULL instead (a full disk). */
void fs_arm_io(int kinds, long n, int persistent, int full);
/* The nth SQLite allocation from now fails (n >= 1). */
void fs_arm_malloc(long n, int persistent);
/* Disarms both injectors. */
void fs_disarm(void);
/* Operations (I/O and allocations) failed since the last arm. */
long fs_hits(void);

#endif
