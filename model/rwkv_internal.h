/*
 * rwkv_internal.h: definitions shared by rwkv.c, rwkv_step.c and rwkv_file.c only:
 * the packed inference layout and the weights-file header codec.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RWKV_INTERNAL_H
#define RWKV_INTERNAL_H

#include "model/rwkv.h"

#define RK_PP_INIT (-1e30f) /* stands for log(0) in the WKV running max */
#define RK_NR 16            /* columns per packed weight panel */

/* Float offsets of every packed object inside rk_model.packed. */
typedef struct rk_pack_layer {
    size_t wk, wv, wr, wo;          /* (D x pad(D)) panels of the time-mixing matrices */
    size_t fk, fv, fr;              /* ffn panels: (D x pad(M)), (M x pad(D)), (D x pad(D)) */
    size_t wdecay;                  /* (D) w = -exp(decay) */
    size_t omu_ak, omu_av, omu_ar;  /* (D) 1 - mu for the time-mixing shifts */
    size_t omu_fk, omu_fr;          /* (D) 1 - mu for the channel-mixing shifts */
} rk_pack_layer;

typedef struct rk_pack {
    size_t in_w;   /* (F x pad(D)) input projection panels */
    size_t in_b;   /* (pad(D)) */
    size_t head_w; /* (D x pad(H*Q)) */
    size_t head_b; /* (pad(H*Q)) */
    rk_pack_layer layer[RK_MAX_LAYERS];
    size_t total;  /* floats */
} rk_pack;

static inline size_t rk_pad(size_t n) { return (n + RK_NR - 1) / RK_NR * RK_NR; }

void rk_pack_layout(const rk_dims *d, rk_pack *pk);
/* Fills m->packed (already allocated with rk_pack_layout's total) from m->w. */
void rk_pack_fill(const rk_model *m);

/* Weights file v1 header: fixed 432 bytes, see docs/FILE_FORMAT.md. */
#define RK_HDR_SIZE 432
#define RK_HDR_HASH_OFF 56
void rk_header_encode(const rk_model *m, uint8_t hdr[RK_HDR_SIZE], uint64_t hash);
/* Content hash: FNV-1a of the header (hash field zeroed) and the LE tensors. */
uint64_t rk_content_hash(const rk_model *m);

#endif
