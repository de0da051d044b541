/*
 * rwkv_file.c: the *.rwkv weights file (format v1, docs/FILE_FORMAT.md).
 *
 *   off  size  field
 *     0     8  magic "RWKVCAST"
 *     8     4  u32 version (1, or 2 when the model has mediums)
 *    12     4  u32 header size in bytes (432)
 *    16    24  u32 n_layer, d_model, n_feat, n_horizon, n_quant, ffn_mult
 *    40     4  u32 dtype (0 = float32)
 *    44     4  u32 number of tensors (checked against the table)
 *    48     8  u64 number of parameter floats
 *    56     8  u64 content hash (FNV-1a 64 of the whole file with this field zeroed)
 *    64    36  f32 quantiles[9]
 *   100     4  u32 feat_kind
 *   104    64  f32 feat_param[16]
 *   168     8  u64 seed
 *   176   256  info text, NUL-padded (v1)
 *   176   248  info text, NUL-padded (v2)
 *   424     8  u32 n_medium, med_dim (v2)
 *   432     -  float32 tensors in table order (rk_tensor_table), little-endian
 *
 * Everything is little-endian regardless of the host. The reader trusts
 * nothing: each field is range-checked before it sizes anything.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/rwkv.h"
#include "model/rwkv_internal.h"

void rk_header_encode(const rk_model *m, uint8_t hdr[RK_HDR_SIZE], uint64_t hash) {
    const rk_dims *d = &m->dims;
    memset(hdr, 0, RK_HDR_SIZE);
    memcpy(hdr, RK_FILE_MAGIC, 8);
    /* Version 1 whenever it can describe the model, so models without
     * mediums keep their bytes and content hash. */
    rc_put_u32(hdr + 8, d->n_medium ? 2 : 1);
    rc_put_u32(hdr + 12, RK_HDR_SIZE);
    rc_put_u32(hdr + 16, d->n_layer);
    rc_put_u32(hdr + 20, d->d_model);
    rc_put_u32(hdr + 24, d->n_feat);
    rc_put_u32(hdr + 28, d->n_horizon);
    rc_put_u32(hdr + 32, d->n_quant);
    rc_put_u32(hdr + 36, d->ffn_mult);
    rc_put_u32(hdr + 40, 0);
    rc_put_u32(hdr + 44, (uint32_t)rk_tensor_table(d, NULL, 0));
    rc_put_u64(hdr + 48, m->n_param);
    rc_put_u64(hdr + RK_HDR_HASH_OFF, hash);
    for (int i = 0; i < RK_MAX_QUANT; i++) rc_put_f32(hdr + 64 + 4 * i, m->meta.quantiles[i]);
    rc_put_u32(hdr + 100, m->meta.feat_kind);
    for (int i = 0; i < RK_FEAT_PARAMS; i++) rc_put_f32(hdr + 104 + 4 * i, m->meta.feat_param[i]);
    rc_put_u64(hdr + 168, m->meta.seed);
    size_t n = strnlen(m->meta.info, (d->n_medium ? RK_INFO_LEN - 8 : RK_INFO_LEN) - 1);
    memcpy(hdr + 176, m->meta.info, n);
    if (d->n_medium) {
        rc_put_u32(hdr + 424, d->n_medium);
        rc_put_u32(hdr + 428, d->med_dim);
    }
}

/* Hashes the tensors as their little-endian bytes, 1 KB at a time. */
static uint64_t hash_tensors(uint64_t h, const float *w, size_t n) {
    uint8_t buf[1024];
    size_t i = 0;
    while (i < n) {
        size_t c = n - i < 256 ? n - i : 256;
        for (size_t j = 0; j < c; j++) rc_put_f32(buf + 4 * j, w[i + j]);
        h = rc_hash64(h, buf, 4 * c);
        i += c;
    }
    return h;
}

uint64_t rk_content_hash(const rk_model *m) {
    uint8_t hdr[RK_HDR_SIZE];
    rk_header_encode(m, hdr, 0);
    return hash_tensors(rc_hash64(RC_HASH_INIT, hdr, RK_HDR_SIZE), m->w, m->n_param);
}

size_t rk_model_save_mem(const rk_model *m, uint8_t *buf, size_t cap) {
    size_t total = RK_HDR_SIZE + 4 * m->n_param;
    if (!buf) return total;
    if (cap < total) return 0;
    rk_header_encode(m, buf, rk_content_hash(m));
    for (size_t i = 0; i < m->n_param; i++) rc_put_f32(buf + RK_HDR_SIZE + 4 * i, m->w[i]);
    return total;
}

/*
 * Writes to PATH.tmp, fsyncs by closing, then renames over PATH, so a crash
 * never leaves a half-written model where the daemon looks for one.
 */
rc_err rk_model_save(const rk_model *m, const char *path) {
    size_t n = rk_model_save_mem(m, NULL, 0);
    uint8_t *buf = rc_malloc(n);
    char tmp[4096];
    FILE *f = NULL;
    rc_err e = RC_ERR_NOMEM;
    if (!buf) goto err;
    rk_model_save_mem(m, buf, n);
    e = RC_ERR_IO;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) goto err;
    f = fopen(tmp, "wb");
    if (!f) goto err;
    if (fwrite(buf, 1, n, f) != n) goto err;
    if (fclose(f) != 0) {
        f = NULL;
        goto err;
    }
    f = NULL;
    if (rename(tmp, path) != 0) goto err;
    rc_free(buf);
    return RC_OK;
err:
    if (f) fclose(f);
    rc_free(buf);
    return e;
}

static void say(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *errbuf, size_t errlen, const char *fmt, ...) {
    if (!errbuf || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static rk_model *load_fail(rk_model *m, rc_err e, rc_err *err) {
    rk_model_free(m);
    if (err) *err = e;
    return NULL;
}

rk_model *rk_model_load_mem(const uint8_t *buf, size_t len, rc_err *err, char *errbuf, size_t errlen) {
    if (len < 16 || memcmp(buf, RK_FILE_MAGIC, 8) != 0) {
        say(errbuf, errlen, "Bad magic: not an rwkvcast weights file");
        return load_fail(NULL, RC_ERR_FORMAT, err);
    }
    uint32_t version = rc_get_u32(buf + 8);
    if (version < RK_FILE_VERSION_MIN || version > RK_FILE_VERSION_MAX) {
        say(errbuf, errlen, "Unsupported weights file version (%u), this build reads %d..%d", version,
            RK_FILE_VERSION_MIN, RK_FILE_VERSION_MAX);
        return load_fail(NULL, RC_ERR_VERSION, err);
    }
    if (len < RK_HDR_SIZE) {
        say(errbuf, errlen, "Truncated header (%zu bytes, need %d)", len, RK_HDR_SIZE);
        return load_fail(NULL, RC_ERR_FORMAT, err);
    }
    if (rc_get_u32(buf + 12) != RK_HDR_SIZE) {
        say(errbuf, errlen, "Bad header size (%u), expected %d", rc_get_u32(buf + 12), RK_HDR_SIZE);
        return load_fail(NULL, RC_ERR_FORMAT, err);
    }
    rk_dims d = {rc_get_u32(buf + 16), rc_get_u32(buf + 20), rc_get_u32(buf + 24),
                 rc_get_u32(buf + 28), rc_get_u32(buf + 32), rc_get_u32(buf + 36),
                 version >= 2 ? rc_get_u32(buf + 424) : 0, version >= 2 ? rc_get_u32(buf + 428) : 0};
    if (rk_dims_check(&d) != RC_OK || (version >= 2 && d.n_medium == 0)) {
        say(errbuf, errlen, "Invalid dims (L=%u D=%u F=%u H=%u Q=%u ffn_mult=%u mediums=%u x %u)", d.n_layer,
            d.d_model, d.n_feat, d.n_horizon, d.n_quant, d.ffn_mult, d.n_medium, d.med_dim);
        return load_fail(NULL, RC_ERR_SHAPE, err);
    }
    if (rc_get_u32(buf + 40) != 0) {
        say(errbuf, errlen, "Unsupported dtype (%u), only float32 (0)", rc_get_u32(buf + 40));
        return load_fail(NULL, RC_ERR_FORMAT, err);
    }
    size_t n_param = rk_param_count(&d);
    uint32_t n_tensors = (uint32_t)rk_tensor_table(&d, NULL, 0);
    if (rc_get_u32(buf + 44) != n_tensors || rc_get_u64(buf + 48) != n_param) {
        say(errbuf, errlen, "Dims do not add up: header says %u tensors / %llu floats, dims give %u / %zu",
            rc_get_u32(buf + 44), (unsigned long long)rc_get_u64(buf + 48), n_tensors, n_param);
        return load_fail(NULL, RC_ERR_SHAPE, err);
    }
    size_t want = RK_HDR_SIZE + 4 * n_param;
    if (len != want) {
        say(errbuf, errlen, "%s: %zu bytes, expected %zu", len < want ? "Truncated file" : "Trailing bytes", len, want);
        return load_fail(NULL, RC_ERR_FORMAT, err);
    }
    rc_err e;
    rk_model *m = rk_model_new(&d, &e);
    if (!m) {
        say(errbuf, errlen, "Cannot allocate the model: %s", rc_strerror(e));
        return load_fail(NULL, e, err);
    }
    for (int i = 0; i < RK_MAX_QUANT; i++) m->meta.quantiles[i] = rc_get_f32(buf + 64 + 4 * i);
    m->meta.feat_kind = rc_get_u32(buf + 100);
    for (int i = 0; i < RK_FEAT_PARAMS; i++) m->meta.feat_param[i] = rc_get_f32(buf + 104 + 4 * i);
    m->meta.seed = rc_get_u64(buf + 168);
    memcpy(m->meta.info, buf + 176, version >= 2 ? RK_INFO_LEN - 8 : RK_INFO_LEN);
    m->meta.info[(version >= 2 ? RK_INFO_LEN - 8 : RK_INFO_LEN) - 1] = '\0';
    for (uint32_t j = 0; j < d.n_quant; j++) {
        float q = m->meta.quantiles[j];
        if (!(q > 0.0f && q < 1.0f) || (j > 0 && !(q > m->meta.quantiles[j - 1]))) {
            say(errbuf, errlen, "Quantile levels must be ascending in (0,1) (level %u is %g)", j, (double)q);
            return load_fail(m, RC_ERR_FORMAT, err);
        }
    }
    for (size_t i = 0; i < n_param; i++) {
        m->w[i] = rc_get_f32(buf + RK_HDR_SIZE + 4 * i);
        if (!isfinite(m->w[i])) {
            say(errbuf, errlen, "Non-finite weight at float %zu", i);
            return load_fail(m, RC_ERR_NUMERIC, err);
        }
    }
    /* The hash covers the file's own bytes (hash field zeroed), so even
     * padding after the info text's NUL is protected. */
    uint64_t stored = rc_get_u64(buf + RK_HDR_HASH_OFF);
    static const uint8_t zero8[8] = {0};
    uint64_t actual = rc_hash64(RC_HASH_INIT, buf, RK_HDR_HASH_OFF);
    actual = rc_hash64(actual, zero8, 8);
    actual = rc_hash64(actual, buf + RK_HDR_HASH_OFF + 8, len - RK_HDR_HASH_OFF - 8);
    if ((e = rk_model_prepare(m)) != RC_OK) {
        say(errbuf, errlen, "Cannot prepare the model: %s", rc_strerror(e));
        return load_fail(m, e, err);
    }
    if (actual != stored) {
        say(errbuf, errlen, "Content hash mismatch (file says %016llx, content is %016llx): corrupted file",
            (unsigned long long)stored, (unsigned long long)actual);
        return load_fail(m, RC_ERR_FORMAT, err);
    }
    if (err) *err = RC_OK;
    return m;
}

rk_model *rk_model_load(const char *path, rc_err *err, char *errbuf, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(errbuf, errlen, "Cannot open model '%s': %s", path, strerror(errno));
        if (err) *err = RC_ERR_IO;
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    rk_model *m = NULL;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            uint8_t *nb = rc_realloc(buf, ncap);
            if (!nb) {
                say(errbuf, errlen, "Out of memory reading model '%s'", path);
                if (err) *err = RC_ERR_NOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        say(errbuf, errlen, "Cannot read model '%s': %s", path, strerror(errno));
        if (err) *err = RC_ERR_IO;
        goto out;
    }
    char inner[512] = "";
    m = rk_model_load_mem(buf, len, err, inner, sizeof inner);
    if (!m) say(errbuf, errlen, "Model '%s': %s", path, inner);
out:
    fclose(f);
    rc_free(buf);
    return m;
}
