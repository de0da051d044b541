/*
 * faultsim.c: the shim VFS and the failing SQLite allocator (faultsim.h).
 *
 * The shim wraps the platform VFS: its sqlite3_file is a header followed
 * by the real VFS's file object in the same allocation (szOsFile is the
 * sum), and every method forwards to the real one unless the countdown
 * says this operation fails.
 *
 * SPDX-License-Identifier: MIT
 */
#include "tests/unit/faultsim.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- Countdowns ---- */

typedef struct fs_count {
    atomic_long left;       /* armed operations until the failing one; 0 disarmed */
    atomic_int failing;     /* 1 once the countdown reached zero */
    atomic_int persistent;  /* keep failing after the first */
} fs_count;

static fs_count io_count, mem_count;
static atomic_int io_kinds;  /* FS_ mask of armed operations */
static atomic_int io_full;   /* writes fail with SQLITE_FULL */
static atomic_long hits;

static void arm(fs_count *c, long n, int persistent) {
    atomic_store(&c->failing, 0);
    atomic_store(&c->persistent, persistent);
    atomic_store(&c->left, n);
}

/* 1 when this operation must fail. */
static int should_fail(fs_count *c) {
    if (atomic_load(&c->failing)) {
        if (!atomic_load(&c->persistent)) return 0;
        atomic_fetch_add(&hits, 1);
        return 1;
    }
    if (atomic_load(&c->left) <= 0) return 0;
    if (atomic_fetch_sub(&c->left, 1) == 1) {
        atomic_store(&c->failing, 1);
        atomic_fetch_add(&hits, 1);
        return 1;
    }
    return 0;
}

static int io_fails(int kind) { return (atomic_load(&io_kinds) & kind) && should_fail(&io_count); }

void fs_arm_io(int kinds, long n, int persistent, int full) {
    atomic_store(&hits, 0);
    atomic_store(&io_kinds, kinds);
    atomic_store(&io_full, full);
    arm(&io_count, n, persistent);
}

void fs_arm_malloc(long n, int persistent) {
    atomic_store(&hits, 0);
    arm(&mem_count, n, persistent);
}

void fs_disarm(void) {
    atomic_store(&io_kinds, 0);
    arm(&io_count, 0, 0);
    arm(&mem_count, 0, 0);
}

long fs_hits(void) { return atomic_load(&hits); }

/* ---- The shim file ---- */

typedef struct fs_file {
    sqlite3_file base;  /* pMethods = &shim_io (or NULL when the open failed) */
    sqlite3_file *real; /* the real VFS's file, right after this header */
} fs_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static sqlite3_io_methods shim_io;

#define REAL(f) (((fs_file *)(f))->real)
#define CALL(f, m, ...) (REAL(f)->pMethods->m(REAL(f), __VA_ARGS__))

static int x_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off) {
    if (io_fails(FS_READ)) return SQLITE_IOERR_READ;
    return CALL(f, xRead, b, n, off);
}
static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off) {
    if (io_fails(FS_WRITE)) return atomic_load(&io_full) ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    return CALL(f, xWrite, b, n, off);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 size) {
    if (io_fails(FS_WRITE)) return atomic_load(&io_full) ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
    return CALL(f, xTruncate, size);
}
static int x_sync(sqlite3_file *f, int flags) {
    if (io_fails(FS_SYNC)) return SQLITE_IOERR_FSYNC;
    return CALL(f, xSync, flags);
}
static int x_size(sqlite3_file *f, sqlite3_int64 *size) { return CALL(f, xFileSize, size); }
static int x_lock(sqlite3_file *f, int l) { return CALL(f, xLock, l); }
static int x_unlock(sqlite3_file *f, int l) { return CALL(f, xUnlock, l); }
static int x_reserved(sqlite3_file *f, int *out) { return CALL(f, xCheckReservedLock, out); }
static int x_fcntl(sqlite3_file *f, int op, void *arg) { return CALL(f, xFileControl, op, arg); }
static int x_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int x_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int x_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
    return CALL(f, xShmMap, pg, sz, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int off, int n, int flags) { return CALL(f, xShmLock, off, n, flags); }
static void x_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int x_shm_unmap(sqlite3_file *f, int del) { return CALL(f, xShmUnmap, del); }
/* No memory-mapped pages: SQLite then reads through xRead, where faults are. */
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    (void)f; (void)off; (void)n;
    *pp = NULL;
    return SQLITE_OK;
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { return CALL(f, xUnfetch, off, p); }

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    fs_file *p = (fs_file *)f;
    p->real = (sqlite3_file *)(p + 1);
    p->real->pMethods = NULL;
    int rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out);
    /* SQLite calls xClose whenever pMethods is set, even after a failed open. */
    p->base.pMethods = p->real->pMethods ? &shim_io : NULL;
    return rc;
}

/* ---- The allocator ---- */

static sqlite3_mem_methods real_mem;

static void *m_malloc(int n) { return should_fail(&mem_count) ? NULL : real_mem.xMalloc(n); }
static void *m_realloc(void *p, int n) { return should_fail(&mem_count) ? NULL : real_mem.xRealloc(p, n); }

void fs_install(void) {
    static sqlite3_mem_methods mem;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK) abort();
    mem = real_mem;
    mem.xMalloc = m_malloc;
    mem.xRealloc = m_realloc;
    /* Lookaside slots would serve small allocations without calling us. */
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK) {
        fprintf(stderr, "fs_install: cannot configure SQLite (already initialized?)\n");
        abort();
    }
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs) abort();
    shim_io = (sqlite3_io_methods){
        .iVersion = 3, .xClose = x_close, .xRead = x_read, .xWrite = x_write, .xTruncate = x_truncate,
        .xSync = x_sync, .xFileSize = x_size, .xLock = x_lock, .xUnlock = x_unlock,
        .xCheckReservedLock = x_reserved, .xFileControl = x_fcntl, .xSectorSize = x_sector,
        .xDeviceCharacteristics = x_devchar, .xShmMap = x_shm_map, .xShmLock = x_shm_lock,
        .xShmBarrier = x_shm_barrier, .xShmUnmap = x_shm_unmap, .xFetch = x_fetch, .xUnfetch = x_unfetch,
    };
    /* Every other VFS method (delete, access, paths, time, randomness) is
     * the real one's, with its own pAppData. */
    shim_vfs = *real_vfs;
    shim_vfs.pNext = NULL;
    shim_vfs.zName = "faultsim";
    shim_vfs.szOsFile = (int)sizeof(fs_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = x_open;
    if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK) abort();
    fs_disarm();
}
