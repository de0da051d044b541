/*
 * base.c: error names, the counting heap wrapper with fault injection, LE helpers.
 *
 * Each block carries a 16-byte header holding its size so rc_mem_used() is
 * exact; 16 keeps malloc's alignment for SIMD loads of float data.
 *
 * SPDX-License-Identifier: MIT
 */
#include "base.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *const rc_names[RC_ERR__COUNT] = {
    [RC_OK] = "ok",
    [RC_ERR_NOMEM] = "out of memory",
    [RC_ERR_IO] = "I/O error",
    [RC_ERR_CONFIG] = "invalid configuration",
    [RC_ERR_PROTO] = "malformed message",
    [RC_ERR_FORMAT] = "malformed file or blob",
    [RC_ERR_VERSION] = "unsupported version",
    [RC_ERR_SHAPE] = "dimension mismatch",
    [RC_ERR_NUMERIC] = "non-finite number",
    [RC_ERR_MODEL] = "state belongs to another model",
    [RC_ERR_LIMIT] = "limit reached",
};

const char *rc_strerror(rc_err err) {
    if ((unsigned)err >= RC_ERR__COUNT) return "unknown error";
    return rc_names[err];
}

#define RC_HDR 16

static atomic_size_t rc_used;
static atomic_long rc_fail_countdown;
static atomic_int rc_fail_persistent;
static atomic_int rc_failing;

void rc_fail_after(long n, int persistent) {
    atomic_store(&rc_failing, 0);
    atomic_store(&rc_fail_persistent, persistent);
    atomic_store(&rc_fail_countdown, n);
}

/* Returns 1 when this allocation must fail. */
static int rc_should_fail(void) {
    if (atomic_load(&rc_failing)) return atomic_load(&rc_fail_persistent);
    long n = atomic_load(&rc_fail_countdown);
    if (n <= 0) return 0;
    if (atomic_fetch_sub(&rc_fail_countdown, 1) == 1) {
        atomic_store(&rc_failing, 1);
        return 1;
    }
    return 0;
}

void *rc_malloc(size_t size) {
    if (rc_should_fail() || size > SIZE_MAX - RC_HDR) return NULL;
    unsigned char *p = malloc(size + RC_HDR);
    if (!p) return NULL;
    size_t off = RC_HDR;
    memcpy(p, &size, sizeof size);
    memcpy(p + 8, &off, sizeof off);
    atomic_fetch_add(&rc_used, size);
    return p + RC_HDR;
}

void *rc_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = rc_malloc(n * size);
    if (!p) return NULL;
#ifdef MADV_HUGEPAGE
    /* Large blocks (the engine's per-series slabs: GBs at 1M series) are
     * zeroed, i.e. faulted in, right here: with transparent huge pages that
     * is one fault per 2 MB instead of per 4 KB (seconds at startup with
     * THP in 'madvise' mode, Debian's default), and series met in any
     * order cost no TLB miss per slab touched. Best effort. */
    if (n * size >= ((size_t)4 << 20)) {
        uintptr_t a = ((uintptr_t)p + 0x1fffff) & ~(uintptr_t)0x1fffff;
        uintptr_t e = ((uintptr_t)p + n * size) & ~(uintptr_t)0x1fffff;
        if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    memset(p, 0, n * size);
    return p;
}

void *rc_realloc(void *old, size_t size) {
    if (!old) return rc_malloc(size);
    if (rc_should_fail() || size > SIZE_MAX - RC_HDR) return NULL;
    unsigned char *base = (unsigned char *)old - RC_HDR;
    size_t oldsize;
    memcpy(&oldsize, base, sizeof oldsize);
    unsigned char *p = realloc(base, size + RC_HDR);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size); /* the offset word moves with the block */
    atomic_fetch_sub(&rc_used, oldsize);
    atomic_fetch_add(&rc_used, size);
    return p + RC_HDR;
}

/*
 * Aligned blocks keep the same header convention: the header sits right
 * before the returned pointer and also records the offset back to the raw
 * malloc pointer, so rc_free handles both kinds.
 */
void *rc_aligned_alloc(size_t align, size_t size) {
    if (align < RC_HDR) align = RC_HDR;
    if (rc_should_fail() || size > SIZE_MAX - align - RC_HDR) return NULL;
    unsigned char *raw = malloc(size + align + RC_HDR);
    if (!raw) return NULL;
    uintptr_t u = ((uintptr_t)raw + RC_HDR + align - 1) & ~(uintptr_t)(align - 1);
    unsigned char *p = (unsigned char *)u;
    size_t off = (size_t)(p - raw);
    memcpy(p - RC_HDR, &size, sizeof size);
    memcpy(p - RC_HDR + 8, &off, sizeof off);
    atomic_fetch_add(&rc_used, size);
    return p;
}

void rc_free(void *p) {
    if (!p) return;
    unsigned char *q = (unsigned char *)p;
    size_t size, off;
    memcpy(&size, q - RC_HDR, sizeof size);
    memcpy(&off, q - RC_HDR + 8, sizeof off);
    atomic_fetch_sub(&rc_used, size);
    free(q - off);
}

char *rc_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rc_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

size_t rc_mem_used(void) { return atomic_load(&rc_used); }

void rc_put_f64(uint8_t *p, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    rc_put_u64(p, u);
}
double rc_get_f64(const uint8_t *p) {
    uint64_t u = rc_get_u64(p);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

#if defined(__SSE4_2__)
#include <nmmintrin.h>
uint32_t rc_crc32c(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t c = 0xffffffffu;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--, p++) c32 = _mm_crc32_u8(c32, *p);
    return c32 ^ 0xffffffffu;
}
#else
uint32_t rc_crc32c(const void *data, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* benign race: every thread writes the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}
#endif

uint64_t rc_hash64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
