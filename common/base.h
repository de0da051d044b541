/*
 * base.h: project-wide error codes and the counting heap wrapper.
 *
 * Every fallible call in rwkvcast returns an rc_err; constructors return NULL
 * and store the reason in *err. All heap traffic goes through rc_malloc and
 * friends so tests can count bytes and inject allocation failures.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BASE_H
#define BASE_H

#include <stddef.h>
#include <stdint.h>

typedef enum rc_err {
    RC_OK = 0,
    RC_ERR_NOMEM,   /* allocation failed */
    RC_ERR_IO,      /* read/write/open failed; errno is kept by the caller */
    RC_ERR_CONFIG,  /* invalid configuration */
    RC_ERR_PROTO,   /* malformed wire message */
    RC_ERR_FORMAT,  /* malformed file or blob (magic, truncation, hash) */
    RC_ERR_VERSION, /* file or blob version outside [MIN, MAX] */
    RC_ERR_SHAPE,   /* dimensions do not match or do not add up */
    RC_ERR_NUMERIC, /* NaN/Inf where a finite number is required */
    RC_ERR_MODEL,   /* state belongs to another model (hash mismatch) */
    RC_ERR_LIMIT,   /* a configured limit was reached */
    RC_ERR__COUNT
} rc_err;

/* Returns a static, human-readable name for err; never NULL. */
const char *rc_strerror(rc_err err);

/*
 * Heap wrappers. Same contracts as the libc functions. Thread-safe.
 * rc_free(NULL) is a no-op. rc_calloc zero-fills and checks n*size overflow.
 */
void *rc_malloc(size_t size);
void *rc_calloc(size_t n, size_t size);
void *rc_realloc(void *p, size_t size);
/* Aligned allocation (align is a power of two); free with rc_free, never rc_realloc. */
void *rc_aligned_alloc(size_t align, size_t size);
void rc_free(void *p);
char *rc_strdup(const char *s);

/* Bytes currently allocated through the wrappers (approximate under races). */
size_t rc_mem_used(void);

/*
 * Fault injection for tests: the Nth allocation from now (1-based) fails;
 * with persistent != 0 every allocation after it fails too. n = 0 disarms.
 */
void rc_fail_after(long n, int persistent);

/* Portable little-endian helpers used by every blob reader and writer. */
static inline void rc_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff); p[1] = (uint8_t)(v >> 8);
}
static inline uint16_t rc_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline void rc_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t rc_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void rc_put_u64(uint8_t *p, uint64_t v) {
    rc_put_u32(p, (uint32_t)v); rc_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t rc_get_u64(const uint8_t *p) {
    return (uint64_t)rc_get_u32(p) | (uint64_t)rc_get_u32(p + 4) << 32;
}
/* Inline: state blobs are converted a float at a time (a call per float
 * was 15% of restoring 1M series). */
static inline void rc_put_f32(uint8_t *p, float v) {
    union { float f; uint32_t u; } x = {v};
    rc_put_u32(p, x.u);
}
static inline float rc_get_f32(const uint8_t *p) {
    union { uint32_t u; float f; } x = {rc_get_u32(p)};
    return x.f;
}
void rc_put_f64(uint8_t *p, double v);
double rc_get_f64(const uint8_t *p);

/* CRC-32C (Castagnoli) of n bytes: the check value of stored state blobs.
 * SSE4.2's crc32 instruction when built for it (~0.3 us for a 4 KB blob),
 * else a bytewise table (same values). */
uint32_t rc_crc32c(const void *data, size_t n);

/* 64-bit FNV-1a over n bytes, continuing from h (start with RC_HASH_INIT). */
#define RC_HASH_INIT 0xcbf29ce484222325ULL
uint64_t rc_hash64(uint64_t h, const void *data, size_t n);

/*
 * MurmurHash3's 64-bit finalizer: a bijection that spreads a counter-like
 * key (seed * k + index) over all 64 bits. The tools derive per-series seeds
 * and start times with it; changing it changes every generated data set.
 */
static inline uint64_t rc_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* Believed-true conditions that are still handled in release builds (SQLite style). */
#define ALWAYS(x) (x)
#define NEVER(x) (x)

#endif
