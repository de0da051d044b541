/*
 * train.c: the trainer (see train.h): data featurization, lane scheduling,
 * parallel forward/backward over lane groups, Adam, checkpoints. The math
 * lives in train_kernels.inc (shared with the double-precision gradient test).
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The kernels are plain loops written for auto-vectorization, which GCC
 * only does fully at -O3; the rest of the project stays at the default. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "model/train_kernels.inc"

#define TR_CK_MAGIC "RKTRCK01"
#define TR_CK_VERSION 1u

void tr_cfg_default(tr_cfg *c) {
    c->lanes = 32;
    c->window = 48;
    c->chunks = 8;
    c->warmup_rows = 72;
    c->steps = 3000;
    c->lr_warmup = 100;
    c->lr = 2e-3f;
    c->lr_final = 0.05f;
    c->beta1 = 0.9f;
    c->beta2 = 0.99f;
    c->eps = 1e-8f;
    c->clip = 1.0f;
    c->tgt_clip = 20.0f;
    c->ema = 0.999f;
    c->h_pow = 1.0f;
    c->seed = 1;
}

/* ---- data ---- */

struct tr_data {
    rk_dims d;      /* dims the targets are shaped for */
    int n_series;   /* series stored */
    int cap_series; /* allocated entries of off/len */
    long *off;      /* (n_series) first row of each series */
    int *len;       /* (n_series) rows */
    long rows, cap_rows; /* rows stored / allocated */
    float *feat;    /* (rows, F) */
    float *tgt;     /* (rows, H) NaN = none */
    float *w;       /* (rows) loss weight */
    rk_mslot *slot; /* (rows) medium slots (ft_medium_slot); NULL without mediums */
};

tr_data *tr_data_new(const rk_dims *d, rc_err *err) {
    tr_data *td = rc_calloc(1, sizeof *td);
    if (!td) {
        *err = RC_ERR_NOMEM;
        return NULL;
    }
    td->d = *d;
    *err = RC_OK;
    return td;
}

void tr_data_free(tr_data *td) {
    if (!td) return;
    rc_free(td->off);
    rc_free(td->len);
    rc_free(td->feat);
    rc_free(td->tgt);
    rc_free(td->w);
    rc_free(td->slot);
    rc_free(td);
}

int tr_data_count(const tr_data *td) { return td->n_series; }
long tr_data_rows(const tr_data *td) { return td->rows; }

static rc_err grow(void **p, size_t n) {
    void *q = rc_realloc(*p, n);
    if (!q) return RC_ERR_NOMEM;
    *p = q;
    return RC_OK;
}

rc_err tr_data_add(tr_data *td, const ft_cfg *fc, const double *t, const double *v, int n,
                   int loss_end, int warmup) {
    int F = (int)td->d.n_feat, H = (int)td->d.n_horizon;
    if (F != FT_NFEAT) return RC_ERR_SHAPE;
    if (td->n_series == td->cap_series) {
        int nc = td->cap_series ? 2 * td->cap_series : 256;
        if (grow((void **)&td->off, (size_t)nc * sizeof(long)) ||
            grow((void **)&td->len, (size_t)nc * sizeof(int)))
            return RC_ERR_NOMEM;
        td->cap_series = nc;
    }
    if (td->rows + n > td->cap_rows) {
        long nc = td->cap_rows ? 2 * td->cap_rows : 1 << 16;
        while (nc < td->rows + n) nc *= 2;
        if (grow((void **)&td->feat, (size_t)nc * F * sizeof(float)) ||
            grow((void **)&td->tgt, (size_t)nc * H * sizeof(float)) ||
            grow((void **)&td->w, (size_t)nc * sizeof(float)) ||
            (td->d.n_medium && grow((void **)&td->slot, (size_t)nc * sizeof(rk_mslot))))
            return RC_ERR_NOMEM;
        td->cap_rows = nc;
    }
    ft_state s;
    ft_init(&s, fc);
    float *feat = td->feat + (size_t)td->rows * F, *tgt = td->tgt + (size_t)td->rows * H;
    float *w = td->w + td->rows;
    int kept = 0;
    double *base = rc_malloc((size_t)H * sizeof *base);
    if (!base) return RC_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        if (ft_push(&s, fc, t[i], v[i], feat + (size_t)kept * F) != RC_OK) continue;
        if (td->slot) ft_medium_slot(&s, td->d.n_medium, &td->slot[td->rows + kept]);
        int any = 0;
        /* The target of every horizon (features.h), the baselines walked once. */
        ft_baselines(&s, H, base);
        for (int h = 1; h <= H; h++) {
            float y = NAN;
            if (i + h < loss_end && isfinite(v[i + h])) {
                y = (float)((v[i + h] - base[h - 1]) / s.scale);
                if (y > 20.0f) y = 20.0f;
                if (y < -20.0f) y = -20.0f;
                any = 1;
            }
            tgt[(size_t)kept * H + h - 1] = y;
        }
        w[kept] = (any && i >= warmup) ? 1.0f : 0.0f;
        kept++;
    }
    rc_free(base);
    td->off[td->n_series] = td->rows;
    td->len[td->n_series] = kept;
    td->n_series++;
    td->rows += kept;
    return RC_OK;
}

/* ---- trainer ---- */

struct tr_trainer {
    rk_model *m;          /* borrowed, trained in place */
    const tr_data *td;    /* borrowed */
    tr_cfg c;             /* settings */
    rk_dims d;            /* m's dims */
    size_t np;            /* parameters */
    size_t S;             /* state floats per lane */
    size_t act_n;         /* floats of one group's activations */
    int Bc;               /* lanes per group */
    trc_params p;         /* views into m->w */
    trc_wt wt;            /* transposed weights (views into wtmem) */
    float *wtmem;         /* (np) */
    float *grad;          /* (np) reduced gradient */
    float *gch;           /* (chunks, np) per-group gradients */
    float *am, *av;       /* (np) Adam moments */
    float *wema;          /* (np) weight average, or NULL */
    float *actmem;        /* (chunks, act_n) */
    trc_act *acts;        /* (chunks) */
    float *tgt;           /* (lanes*T, H) window targets */
    float *wrow;          /* (lanes*T) window row weights */
    rk_mslot *slot;       /* (lanes*T) window medium slots */
    float *hw;            /* (H) horizon loss weights, mean 1 */
    float *states;        /* (lanes, S) */
    int *lane_series;     /* (lanes) series index or -1 */
    int *lane_pos;        /* (lanes) next row of that series */
    int *order;           /* (n_series) shuffled visiting order */
    int cursor;           /* next index into order */
    uint64_t rng;         /* shuffle state */
    long step;            /* optimizer steps done */
    double *closs, *ccnt; /* (chunks) loss sums and counts of the last step */
};

static uint64_t tr_rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void shuffle(tr_trainer *tr) {
    int n = tr->td->n_series;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(tr_rnd(&tr->rng) % (uint64_t)(i + 1));
        int t = tr->order[i];
        tr->order[i] = tr->order[j];
        tr->order[j] = t;
    }
}

void tr_free(tr_trainer *tr) {
    if (!tr) return;
    rc_free(tr->wtmem);
    rc_free(tr->grad);
    rc_free(tr->gch);
    rc_free(tr->am);
    rc_free(tr->av);
    rc_free(tr->wema);
    rc_free(tr->actmem);
    rc_free(tr->acts);
    rc_free(tr->tgt);
    rc_free(tr->hw);
    rc_free(tr->wrow);
    rc_free(tr->slot);
    rc_free(tr->states);
    rc_free(tr->lane_series);
    rc_free(tr->lane_pos);
    rc_free(tr->order);
    rc_free(tr->closs);
    rc_free(tr->ccnt);
    rc_free(tr);
}

tr_trainer *tr_new(rk_model *m, const tr_data *td, const tr_cfg *c, rc_err *err) {
    rc_err e = RC_ERR_SHAPE;
    tr_trainer *tr = NULL;
    if (c->lanes < 1 || c->chunks < 1 || c->lanes % c->chunks || c->window < 1 ||
        td->n_series < 1 || c->lanes / c->chunks > TRC_MAX_B ||
        td->d.n_horizon != m->dims.n_horizon || m->dims.n_feat != FT_NFEAT)
        goto err;
    e = RC_ERR_NOMEM;
    tr = rc_calloc(1, sizeof *tr);
    if (!tr) goto err;
    tr->m = m;
    tr->td = td;
    tr->c = *c;
    tr->d = m->dims;
    tr->np = m->n_param;
    tr->S = rk_state_len(&m->dims);
    tr->Bc = c->lanes / c->chunks;
    int N = tr->Bc * c->window, G = c->chunks, B = c->lanes, T = c->window;
    int H = (int)m->dims.n_horizon;
    tr->act_n = trc_act_floats(&m->dims, N, tr->Bc);
    tr->wtmem = rc_malloc(trc_wt_floats(&m->dims) * sizeof(float));
    tr->grad = rc_calloc(tr->np, sizeof(float));
    tr->gch = rc_calloc((size_t)G * tr->np, sizeof(float));
    tr->am = rc_calloc(tr->np, sizeof(float));
    tr->av = rc_calloc(tr->np, sizeof(float));
    tr->actmem = rc_calloc((size_t)G * tr->act_n, sizeof(float));
    tr->acts = rc_calloc((size_t)G, sizeof(trc_act));
    tr->tgt = rc_calloc((size_t)B * T * H, sizeof(float));
    tr->wrow = rc_calloc((size_t)B * T, sizeof(float));
    tr->slot = rc_calloc((size_t)B * T, sizeof(rk_mslot));
    tr->states = rc_calloc((size_t)B * tr->S, sizeof(float));
    tr->lane_series = rc_calloc((size_t)B, sizeof(int));
    tr->lane_pos = rc_calloc((size_t)B, sizeof(int));
    tr->order = rc_calloc((size_t)td->n_series, sizeof(int));
    tr->closs = rc_calloc((size_t)G, sizeof(double));
    tr->hw = rc_malloc((size_t)H * sizeof(float));
    if (tr->hw) {
        double sum = 0;
        for (int h = 0; h < H; h++) sum += pow(h + 1.0, -(double)c->h_pow);
        for (int h = 0; h < H; h++) tr->hw[h] = (float)(pow(h + 1.0, -(double)c->h_pow) * H / sum);
    }
    tr->ccnt = rc_calloc((size_t)G, sizeof(double));
    if (c->ema > 0) {
        tr->wema = rc_malloc(tr->np * sizeof(float));
        if (!tr->wema) goto err;
        memcpy(tr->wema, m->w, tr->np * sizeof(float));
    }
    if (!tr->wtmem || !tr->grad || !tr->gch || !tr->am || !tr->av || !tr->actmem || !tr->acts ||
        !tr->tgt || !tr->wrow || !tr->slot || !tr->states || !tr->lane_series || !tr->lane_pos ||
        !tr->order || !tr->closs || !tr->ccnt || !tr->hw)
        goto err;
    for (int g = 0; g < G; g++) {
        trc_act_point(&tr->acts[g], &m->dims, N, tr->Bc, tr->actmem + (size_t)g * tr->act_n);
        tr->acts[g].slot = tr->slot + (size_t)g * N; /* group g's lanes, rows lane-major */
    }
    trc_point(&tr->p, &m->dims, m->w);
    for (int b = 0; b < B; b++) tr->lane_series[b] = -1;
    for (int i = 0; i < td->n_series; i++) tr->order[i] = i;
    tr->rng = c->seed;
    shuffle(tr);
    *err = RC_OK;
    return tr;
err:
    tr_free(tr);
    *err = e;
    return NULL;
}

long tr_steps_done(const tr_trainer *tr) { return tr->step; }

/* Gives every lane its next window of rows (a new series when one ends). */
static void fill_lanes(tr_trainer *tr) {
    const tr_data *td = tr->td;
    int T = tr->c.window, F = (int)tr->d.n_feat, H = (int)tr->d.n_horizon;
    for (int b = 0; b < tr->c.lanes; b++) {
        int si = tr->lane_series[b];
        if (si < 0 || tr->lane_pos[b] >= td->len[si]) {
            if (tr->cursor >= td->n_series) {
                shuffle(tr);
                tr->cursor = 0;
            }
            si = tr->order[tr->cursor++];
            tr->lane_series[b] = si;
            tr->lane_pos[b] = 0;
            rk_state_init(tr->m, tr->states + (size_t)b * tr->S);
        }
        int g = b / tr->Bc, bl = b % tr->Bc;
        trc_act *a = &tr->acts[g];
        for (int t = 0; t < T; t++) {
            long r = tr->lane_pos[b] + t;
            size_t row = (size_t)b * T + t; /* global row (lane-major) */
            size_t lrow = (size_t)bl * T + t;
            if (r < td->len[si]) {
                long gr = td->off[si] + r;
                memcpy(a->feat + lrow * F, td->feat + (size_t)gr * F, (size_t)F * sizeof(float));
                memcpy(tr->tgt + row * H, td->tgt + (size_t)gr * H, (size_t)H * sizeof(float));
                tr->wrow[row] = td->w[gr];
                tr->slot[row] = td->slot ? td->slot[gr] : (rk_mslot){-1, -1, -1, 0.0f};
            } else {
                memset(a->feat + lrow * F, 0, (size_t)F * sizeof(float));
                for (int h = 0; h < H; h++) tr->tgt[row * H + h] = NAN;
                tr->wrow[row] = 0;
                tr->slot[row] = (rk_mslot){-1, -1, -1, 0.0f};
            }
        }
        tr->lane_pos[b] += T;
    }
}

double tr_step(tr_trainer *tr) {
    const tr_cfg *c = &tr->c;
    int G = c->chunks, T = c->window, Bc = tr->Bc, H = (int)tr->d.n_horizon;
    fill_lanes(tr);
    trc_wt_build(&tr->wt, tr->wtmem, &tr->p, &tr->d);
    const float *quant = tr->m->meta.quantiles;
#pragma omp parallel for schedule(dynamic, 1)
    for (int g = 0; g < G; g++) {
        trc_act *a = &tr->acts[g];
        float *sp[TRC_MAX_B];
        for (int b = 0; b < Bc; b++) sp[b] = tr->states + (size_t)(g * Bc + b) * tr->S;
        trc_forward(a, &tr->p, &tr->wt, &tr->d, sp, Bc, T);
        size_t r0 = (size_t)g * Bc * T;
        tr->ccnt[g] = 0;
        tr->closs[g] = trc_loss(a, &tr->d, quant, tr->tgt + r0 * H, tr->wrow + r0, tr->hw, Bc * T,
                                &tr->ccnt[g]);
        float *gg = tr->gch + (size_t)g * tr->np;
        memset(gg, 0, tr->np * sizeof(float));
        if (tr->ccnt[g] > 0) {
            trc_params gp;
            trc_point(&gp, &tr->d, gg);
            trc_backward(a, &gp, &tr->p, &tr->d, Bc, T);
        }
    }
    double loss = 0, cnt = 0;
    for (int g = 0; g < G; g++) {
        loss += tr->closs[g];
        cnt += tr->ccnt[g];
    }
    tr->step++;
    if (!(cnt > 0)) return NAN;
    int Q = (int)tr->d.n_quant;
    /* Sum in group order (deterministic), scale to the mean loss per
     * (row, horizon) summed over quantiles, clip by global norm. */
    double norm2 = 0, sc = 1.0 / cnt;
    for (size_t i = 0; i < tr->np; i++) {
        double s = 0;
        for (int g = 0; g < G; g++) s += tr->gch[(size_t)g * tr->np + i];
        tr->grad[i] = (float)(s * sc);
        norm2 += (double)tr->grad[i] * tr->grad[i];
    }
    double norm = sqrt(norm2), gs = norm > c->clip ? c->clip / norm : 1.0;
    double prog = (double)tr->step / (double)(c->steps > 0 ? c->steps : 1);
    if (prog > 1) prog = 1;
    double lr = c->lr * (c->lr_final + (1 - c->lr_final) * 0.5 * (1 + cos(3.14159265358979 * prog)));
    if (tr->step < c->lr_warmup) lr *= (double)tr->step / (double)c->lr_warmup;
    double b1 = c->beta1, b2 = c->beta2;
    double bc1 = 1 - pow(b1, (double)tr->step), bc2 = 1 - pow(b2, (double)tr->step);
    float *w = tr->m->w;
    for (size_t i = 0; i < tr->np; i++) {
        double g = tr->grad[i] * gs;
        tr->am[i] = (float)(b1 * tr->am[i] + (1 - b1) * g);
        tr->av[i] = (float)(b2 * tr->av[i] + (1 - b2) * g * g);
        double mh = tr->am[i] / bc1, vh = tr->av[i] / bc2;
        w[i] -= (float)(lr * mh / (sqrt(vh) + c->eps));
    }
    if (tr->wema) {
        /* Early steps use a shorter average so the init does not linger. */
        double k = 1.0 - c->ema, k0 = 1.0 / (double)tr->step;
        if (k0 > k) k = k0;
        for (size_t i = 0; i < tr->np; i++) tr->wema[i] += (float)(k * (w[i] - tr->wema[i]));
    }
    rk_model_prepare(tr->m);
    return loss / cnt / Q;
}

void tr_finish(tr_trainer *tr) {
    if (!tr->wema) return;
    memcpy(tr->m->w, tr->wema, tr->np * sizeof(float));
    rk_model_prepare(tr->m);
}

/* ---- checkpoints ---- */

static rc_err wr(FILE *f, const void *p, size_t n) {
    return fwrite(p, 1, n, f) == n ? RC_OK : RC_ERR_IO;
}

static rc_err wr_u64(FILE *f, uint64_t v) {
    uint8_t b[8];
    rc_put_u64(b, v);
    return wr(f, b, 8);
}

static rc_err wr_f32s(FILE *f, const float *x, size_t n) {
    uint8_t b[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof b / 4 && i < n; k++, i++) rc_put_f32(b + 4 * k, x[i]);
        if (wr(f, b, 4 * k)) return RC_ERR_IO;
    }
    return RC_OK;
}

static rc_err rd(FILE *f, void *p, size_t n) {
    return fread(p, 1, n, f) == n ? RC_OK : RC_ERR_FORMAT;
}

static rc_err rd_u64(FILE *f, uint64_t *v) {
    uint8_t b[8];
    if (rd(f, b, 8)) return RC_ERR_FORMAT;
    *v = rc_get_u64(b);
    return RC_OK;
}

static rc_err rd_f32s(FILE *f, float *x, size_t n) {
    uint8_t b[4096];
    for (size_t i = 0; i < n;) {
        size_t k = n - i < sizeof b / 4 ? n - i : sizeof b / 4;
        if (rd(f, b, 4 * k)) return RC_ERR_FORMAT;
        for (size_t j = 0; j < k; j++, i++) x[i] = rc_get_f32(b + 4 * j);
    }
    return RC_OK;
}

/*
 * Layout (little-endian): magic[8], u64 version, u64 np, lanes, window,
 * chunks, n_series, step, cursor, rng; order (n_series u64), lane_series
 * and lane_pos (lanes u64 each), states, am, av, [ema] (f32); u64 model bytes;
 * the model in weights-file format. Written to PATH.tmp, then renamed.
 */
rc_err tr_save(const tr_trainer *tr, const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    uint8_t *mb = NULL;
    rc_err e = RC_ERR_IO;
    if (!f) goto err;
    int B = tr->c.lanes, n = tr->td->n_series;
    const uint64_t hdr[9] = {TR_CK_VERSION, tr->np, (uint64_t)B, (uint64_t)tr->c.window,
                             (uint64_t)tr->c.chunks, (uint64_t)n, (uint64_t)tr->step,
                             (uint64_t)tr->cursor, tr->rng};
    e = wr(f, TR_CK_MAGIC, 8);
    for (int i = 0; i < 9 && !e; i++) e = wr_u64(f, hdr[i]);
    for (int i = 0; i < n && !e; i++) e = wr_u64(f, (uint64_t)tr->order[i]);
    for (int i = 0; i < B && !e; i++) e = wr_u64(f, (uint64_t)(int64_t)tr->lane_series[i]);
    for (int i = 0; i < B && !e; i++) e = wr_u64(f, (uint64_t)tr->lane_pos[i]);
    if (!e) e = wr_f32s(f, tr->states, (size_t)B * tr->S);
    if (!e) e = wr_f32s(f, tr->am, tr->np);
    if (!e) e = wr_f32s(f, tr->av, tr->np);
    if (!e && tr->wema) e = wr_f32s(f, tr->wema, tr->np);
    size_t ms = rk_model_save_mem(tr->m, NULL, 0);
    mb = rc_malloc(ms);
    if (!e && !mb) e = RC_ERR_NOMEM;
    if (!e) {
        rk_model_save_mem(tr->m, mb, ms);
        e = wr_u64(f, ms);
        if (!e) e = wr(f, mb, ms);
    }
    if (fclose(f) != 0 && !e) e = RC_ERR_IO;
    f = NULL;
    if (e) goto err;
    if (rename(tmp, path) != 0) {
        e = RC_ERR_IO;
        goto err;
    }
    rc_free(mb);
    return RC_OK;
err:
    if (f) fclose(f);
    rc_free(mb);
    return e;
}

rc_err tr_load(tr_trainer *tr, const char *path) {
    FILE *f = fopen(path, "rb");
    uint8_t *mb = NULL;
    rk_model *lm = NULL;
    rc_err e = RC_ERR_IO;
    if (!f) goto err;
    char magic[8];
    uint64_t h[9];
    e = rd(f, magic, 8);
    if (!e && memcmp(magic, TR_CK_MAGIC, 8) != 0) e = RC_ERR_FORMAT;
    for (int i = 0; i < 9 && !e; i++) e = rd_u64(f, &h[i]);
    if (e) goto err;
    int B = tr->c.lanes, n = tr->td->n_series;
    if (h[0] != TR_CK_VERSION) {
        e = RC_ERR_VERSION;
        goto err;
    }
    if (h[1] != tr->np || h[2] != (uint64_t)B || h[3] != (uint64_t)tr->c.window ||
        h[4] != (uint64_t)tr->c.chunks || h[5] != (uint64_t)n) {
        e = RC_ERR_SHAPE;
        goto err;
    }
    tr->step = (long)h[6];
    tr->cursor = (int)h[7];
    tr->rng = h[8];
    uint64_t u = 0;
    for (int i = 0; i < n && !e; i++) {
        e = rd_u64(f, &u);
        tr->order[i] = (int)u;
    }
    for (int i = 0; i < B && !e; i++) {
        e = rd_u64(f, &u);
        tr->lane_series[i] = (int)(int64_t)u;
    }
    for (int i = 0; i < B && !e; i++) {
        e = rd_u64(f, &u);
        tr->lane_pos[i] = (int)u;
    }
    if (!e) e = rd_f32s(f, tr->states, (size_t)B * tr->S);
    if (!e) e = rd_f32s(f, tr->am, tr->np);
    if (!e) e = rd_f32s(f, tr->av, tr->np);
    if (!e && tr->wema) e = rd_f32s(f, tr->wema, tr->np);
    if (!e) e = rd_u64(f, &u);
    if (e) goto err;
    if (u > ((uint64_t)1 << 32)) {
        e = RC_ERR_FORMAT;
        goto err;
    }
    mb = rc_malloc((size_t)u);
    if (!mb) {
        e = RC_ERR_NOMEM;
        goto err;
    }
    if ((e = rd(f, mb, (size_t)u))) goto err;
    lm = rk_model_load_mem(mb, (size_t)u, &e, NULL, 0);
    if (!lm) goto err;
    if (lm->n_param != tr->np) {
        e = RC_ERR_SHAPE;
        goto err;
    }
    memcpy(tr->m->w, lm->w, tr->np * sizeof(float));
    tr->m->meta = lm->meta;
    rk_model_prepare(tr->m);
    rk_model_free(lm);
    rc_free(mb);
    fclose(f);
    return RC_OK;
err:
    rk_model_free(lm);
    rc_free(mb);
    if (f) fclose(f);
    return e;
}

rc_err tr_forward_window(const rk_model *m, int B, int T, const float *feat, const rk_mslot *slots,
                         float *const *states, float *out) {
    if (B < 1 || B > TRC_MAX_B || T < 1) return RC_ERR_SHAPE;
    const rk_dims *d = &m->dims;
    size_t HQ = (size_t)d->n_horizon * d->n_quant;
    float *mem = rc_malloc(trc_act_floats(d, B * T, B) * sizeof(float));
    float *wtm = rc_malloc(m->n_param * sizeof(float));
    if (!mem || !wtm) {
        rc_free(mem);
        rc_free(wtm);
        return RC_ERR_NOMEM;
    }
    trc_act a;
    trc_params p;
    trc_wt wt;
    trc_act_point(&a, d, B * T, B, mem);
    a.slot = slots;
    trc_point(&p, d, m->w);
    trc_wt_build(&wt, wtm, &p, d);
    memcpy(a.feat, feat, (size_t)B * T * d->n_feat * sizeof(float));
    trc_forward(&a, &p, &wt, d, states, B, T);
    memcpy(out, a.q, (size_t)B * T * HQ * sizeof(float));
    rc_free(mem);
    rc_free(wtm);
    return RC_OK;
}
