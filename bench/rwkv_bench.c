/*
 * rwkv_bench.c: model-only speed of the RWKV-4 step (`make bench`).
 *
 * For three model sizes it measures steps/s of one series at a time
 * (rk_step, B = 1: every weight is streamed per series) against batches of
 * B = 1 ... 4096 series stepped together (rk_step_batch), the achieved
 * GFLOP/s as a fraction of this core's FMA peak, measured in the same run by
 * a register-only FMA kernel compiled with the same flags, and the per-series
 * state size. One thread; results are printed as Markdown for
 * bench/RESULTS.md. Options: --quick (shorter runs), --seconds S.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/textin.h"
#include "daemon/engine.h"
#include "model/features.h"
#include "model/rwkv.h"

typedef float v8 __attribute__((vector_size(32)));
#if defined(__AVX512F__)
typedef float v16 __attribute__((vector_size(64)));
#endif

static double now_s(void) { return (double)lg_mono_ns() * 1e-9; }

/*
 * FMA peak: 12 independent accumulator chains hide the FMA latency (4-5
 * cycles x 2 ports), all in registers, so only the FMA units limit it.
 * Twelve named accumulators: an array would be kept in memory by GCC and
 * measure store forwarding instead. The multiplier is read through a
 * volatile so nothing is folded. VT is the vector type, W its width.
 */
#define FMA_PEAK_FN(name, VT, W)                                                              \
    static double name(double seconds) {                                                      \
        volatile float seed = 0.999f;                                                         \
        VT a = (VT){0} + seed, b = (VT){0} + (1.0f - seed) * 0.5f;                            \
        VT c0 = a, c1 = a + 1, c2 = a + 2, c3 = a + 3, c4 = a + 4, c5 = a + 5;                \
        VT c6 = a + 6, c7 = a + 7, c8 = a + 8, c9 = a + 9, c10 = a + 10, c11 = a + 11;        \
        double best = 0;                                                                      \
        for (int rep = 0; rep < 5; rep++) {                                                   \
            long iters = 0;                                                                   \
            double t0 = now_s(), t1;                                                          \
            do {                                                                              \
                for (int k = 0; k < 4096; k++) {                                              \
                    c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;       \
                    c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;       \
                    c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;   \
                }                                                                             \
                iters += 4096;                                                                \
                t1 = now_s();                                                                 \
            } while (t1 - t0 < seconds / 5);                                                  \
            double gf = (double)iters * 12 * (W) * 2 / (t1 - t0) * 1e-9;                      \
            if (gf > best) best = gf;                                                         \
        }                                                                                     \
        VT sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;                 \
        if (sum[0] == 12345.0f) printf("!");                                                  \
        return best;                                                                          \
    }

FMA_PEAK_FN(fma_peak_v8, v8, 8)
#if defined(__AVX512F__)
FMA_PEAK_FN(fma_peak_v16, v16, 16)
#endif

static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = '\0';
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    fclose(f);
}

typedef struct setup {
    rk_model *m;
    size_t SL;
    int S;          /* series */
    float *states;  /* (S, SL) */
    float **ptrs;   /* (S) */
    float *feat;    /* (S, F) */
    float *out;     /* (S, H*Q) */
} setup;

static setup make_setup(const rk_dims *d, int S) {
    setup s = {0};
    s.m = rk_model_new(d, NULL);
    if (!s.m) {
        fprintf(stderr, "Error: cannot create model\n");
        exit(1);
    }
    rk_model_init_random(s.m, 1);
    s.SL = rk_state_len(d);
    s.S = S;
    s.states = malloc((size_t)S * s.SL * sizeof(float));
    s.ptrs = malloc((size_t)S * sizeof(float *));
    s.feat = malloc((size_t)S * d->n_feat * sizeof(float));
    s.out = malloc((size_t)S * d->n_horizon * d->n_quant * sizeof(float));
    if (!s.states || !s.ptrs || !s.feat || !s.out) {
        fprintf(stderr, "Error: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < S; i++) {
        s.ptrs[i] = s.states + (size_t)i * s.SL;
        rk_state_init(s.m, s.ptrs[i]);
    }
    for (size_t i = 0; i < (size_t)S * d->n_feat; i++) s.feat[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    return s;
}

static void free_setup(setup *s) {
    rk_model_free(s->m);
    free(s->states);
    free(s->ptrs);
    free(s->feat);
    free(s->out);
}

/* Steps all S series in groups of B (B = 0: one at a time with rk_step) until
 * `seconds` passed; returns series-steps per second. */
static double run(setup *s, int B, double seconds) {
    const rk_dims *d = &s->m->dims;
    int bmax = B > 0 ? B : 1;
    rk_ws *ws = rk_ws_new(s->m, bmax, NULL);
    size_t F = d->n_feat, HQ = (size_t)d->n_horizon * d->n_quant;
    long steps = 0;
    double t0 = now_s(), t1;
    do {
        if (B == 0) {
            for (int i = 0; i < s->S; i++) rk_step(s->m, ws, s->feat + i * F, NULL, s->ptrs[i], s->out + i * HQ);
        } else {
            for (int i = 0; i < s->S; i += B) {
                int n = s->S - i < B ? s->S - i : B;
                rk_step_batch(s->m, ws, n, s->feat + i * F, NULL, s->ptrs + i, s->out + i * HQ);
            }
        }
        steps += s->S;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    rk_ws_free(ws);
    return (double)steps / (t1 - t0);
}

typedef struct engine_ctx {
    long results; /* callbacks seen */
} engine_ctx;

static void count_result(void *ctx, const en_result *r) {
    (void)r;
    ((engine_ctx *)ctx)->results++;
}

/* The whole engine path for the default model: featurize, judge, step,
 * denormalize, on `threads` engine threads (series sharded by slot hash). */
static double run_engine(const rk_dims *d, int S, int B, int threads, double seconds) {
    rk_model *m = rk_model_new(d, NULL);
    rk_model_init_random(m, 1);
    en_cfg c;
    en_cfg_default(&c);
    c.max_batch = B;
    c.threads = threads;
    engine_ctx ctx = {0};
    en_engine *e = en_new(m, &c, (uint32_t)S, count_result, &ctx, NULL);
    if (!e) {
        fprintf(stderr, "Error: cannot create engine\n");
        exit(1);
    }
    long steps = 0;
    double t = 1.7e9, t0 = now_s(), t1;
    do {
        t += 60;
        for (int i = 0; i < S; i++) en_push(e, (uint32_t)i, t, 100.0 + (double)((i * 7 + steps) % 13));
        en_flush(e);
        steps += S;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    en_free(e);
    rk_model_free(m);
    return (double)steps / (t1 - t0);
}

int main(int argc, char **argv) {
    double seconds = 0.6;
    ti_getopt g;
    int c;
    if (ti_getopt_init(&g, "q/quick s/seconds= h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'q': seconds = 0.15; break;
        case 's': if (ti_opt_double("--seconds", optarg, 0, 1, 3600, &seconds)) return 2; break;
        case 'h':
            printf("Usage: rwkv_bench [--quick] [--seconds S]\n"
                   "Model-only RWKV step speed: unbatched vs batched, vs this core's FMA peak.\n"
                   "  --quick      0.15 s per measurement\n"
                   "  --seconds S  seconds per measurement (default 0.6)\n"
                   "  -h, --help   this text\n");
            return 0;
        default: return ti_opt_error(c, argv);
        }
    }
    if (ti_opt_operands(argc, argv, 0)) return 2;
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    /* The peak is the better of 8- and 16-wide FMA: some cores split 512-bit
     * operations in two, others have more 512-bit throughput. */
    double p8 = fma_peak_v8(seconds * 2);
#if defined(__AVX512F__)
    double p16 = fma_peak_v16(seconds * 2);
    double peak = p8 > p16 ? p8 : p16;
    printf("# rwkv_bench\n\nCPU: %s, 1 thread. FMA peak measured by this binary: %.1f GFLOP/s "
           "(8-wide %.1f, 16-wide %.1f)\n\n", cpu, peak, p8, p16);
#else
    /* Without AVX-512, 12 chains of 16 floats need 24 of the 16 registers
     * and would time spills, not FMAs: the 8-wide kernel is the peak. */
    double peak = p8;
    printf("# rwkv_bench\n\nCPU: %s, 1 thread. FMA peak measured by this binary: %.1f GFLOP/s "
           "(8-wide; no AVX-512)\n\n", cpu, peak);
#endif

    struct { const char *name; rk_dims d; } cfgs[] = {
        {"small  (L=1, D=32)", {1, 32, FT_NFEAT, 48, 3, 4, 0, 0}},
        {"default (L=2, D=64)", {2, 64, FT_NFEAT, 48, 3, 4, 0, 0}},
        {"large  (L=4, D=128)", {4, 128, FT_NFEAT, 48, 3, 4, 0, 0}},
    };
    int batches[] = {1, 4, 16, 64, 256, 1024, 4096};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        const rk_dims *d = &cfgs[c].d;
        double flops = 2.0 * rk_macs_per_step(d);
        setup s = make_setup(d, 4096);
        printf("## %s: %.0f kFLOP/step, state %zu bytes/series\n\n", cfgs[c].name, flops / 1e3,
               rk_state_len(d) * sizeof(float));
        printf("| mode | steps/s | ns/step | GFLOP/s | %% of FMA peak | vs unbatched |\n");
        printf("|---|---:|---:|---:|---:|---:|\n");
        double base = run(&s, 0, seconds);
        printf("| unbatched (rk_step) | %.0f | %.0f | %.2f | %.1f%% | 1.00x |\n", base, 1e9 / base,
               base * flops * 1e-9, 100 * base * flops * 1e-9 / peak);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            double r = run(&s, batches[b], seconds);
            printf("| batched B=%d | %.0f | %.0f | %.2f | %.1f%% | %.2fx |\n", batches[b], r, 1e9 / r,
                   r * flops * 1e-9, 100 * r * flops * 1e-9 / peak, r / base);
        }
        free_setup(&s);
        printf("\n");
    }
    rk_dims d = rk_dims_default(FT_NFEAT);
    double eng = run_engine(&d, 4096, 256, 1, seconds * 2);
    double eng2 = run_engine(&d, 4096, 256, 2, seconds * 2);
    rk_dims dm = d; /* the default dims with RRWKV mediums, as `train --mediums 12` */
    dm.n_medium = 12;
    dm.med_dim = 1;
    double engm = run_engine(&dm, 4096, 256, 1, seconds * 2);
    setup s = make_setup(&d, 4096);
    double model_only = run(&s, 256, seconds);
    free_setup(&s);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("## Engine path, default model, 4096 series, B=256\n\n"
           "| path | steps/s | ns/step | ratio |\n|---|---:|---:|---:|\n"
           "| model only (rk_step_batch), 1 thread | %.0f | %.0f | 1.00 |\n"
           "| engine (featurize + score + step + denormalize), threads: 1 | %.0f | %.0f | %.2f |\n"
           "| engine, threads: 2 (%ld cores online) | %.0f | %.0f | %.2f |\n\n"
           "Engine threads 2 vs 1: %.2fx.\n\n"
           "With RRWKV mediums (12 x 1 per layer, `train --mediums 12`), engine, 1 thread: %.0f steps/s, "
           "%.0f ns/step, %.3fx the time of the default model; +%zu bytes of state per series.\n",
           model_only, 1e9 / model_only, eng, 1e9 / eng, eng / model_only, cores, eng2, 1e9 / eng2,
           eng2 / model_only, eng2 / eng, engm, 1e9 / engm, eng / engm,
           (rk_state_len(&dm) - rk_state_len(&d)) * sizeof(float));
    return 0;
}
