/*
 * synth.c: synthetic series (see synth.h). Parameter ranges are chosen to look
 * like hourly business data (M4 Hourly) and like machine/sensor metrics.
 *
 * SPDX-License-Identifier: MIT
 */
#include "model/synth.h"

#include <math.h>
#include <string.h>

#define SY_PI 3.14159265358979323846

static const char *const sy_names[SY_KIND_COUNT] = {"daily", "weekly", "trend",
                                                    "shifts", "ar", "spiky"};

const char *sy_kind_name(int kind) {
    return kind >= 0 && kind < SY_KIND_COUNT ? sy_names[kind] : "?";
}

int sy_kind_from_name(const char *name) {
    for (int i = 0; i < SY_KIND_COUNT; i++)
        if (strcmp(name, sy_names[i]) == 0) return i;
    return -1;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(rnd(s) >> 11) / 9007199254740992.0; }
static double urange(uint64_t *s, double a, double b) { return a + (b - a) * unif(s); }
/* Box-Muller; one draw per call keeps the stream simple. */
static double gauss(uint64_t *s) {
    double u1 = unif(s), u2 = unif(s);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2 * log(u1)) * cos(2 * SY_PI * u2);
}

void sy_draw(sy_params *p, int kind, uint64_t seed) {
    uint64_t s = seed * 0x2545f4914f6cdd1dULL + (uint64_t)kind;
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->level = exp(urange(&s, log(10.0), log(20000.0)));
    p->amp = p->level * urange(&s, 0.05, 0.6);
    p->harm_a[0] = 1.0;
    p->harm_a[1] = urange(&s, 0, 0.6);
    p->harm_a[2] = urange(&s, 0, 0.3);
    for (int i = 0; i < 3; i++) p->harm_p[i] = urange(&s, 0, 2 * SY_PI);
    p->weekend = 1.0;
    p->ar = urange(&s, 0.3, 0.9);
    p->noise = (p->amp + 0.05 * p->level) * urange(&s, 0.02, 0.12);
    p->p_missing = unif(&s) < 0.3 ? urange(&s, 0, 0.01) : 0;
    p->seed = rnd(&s);
    switch (kind) {
    case SY_WEEKLY:
        p->weekend = urange(&s, 0.2, 0.8);
        break;
    case SY_TREND:
        p->slope = p->level * urange(&s, -0.01, 0.015);
        break;
    case SY_SHIFTS:
        p->p_shift = urange(&s, 0.002, 0.008);
        break;
    case SY_AR:
        p->amp = 0;
        p->ar = urange(&s, 0.97, 0.998);
        p->noise = p->level * urange(&s, 0.005, 0.03);
        break;
    case SY_SPIKY:
        p->p_outlier = urange(&s, 0.003, 0.015);
        p->p_missing = urange(&s, 0.005, 0.03);
        p->p_gap = urange(&s, 0.002, 0.006);
        break;
    default:
        break;
    }
}

double sy_base(const sy_params *p, double t) {
    double day = t / 86400.0;
    double ph = 2 * SY_PI * (day - floor(day));
    double s = 0;
    for (int i = 0; i < 3; i++) s += p->harm_a[i] * sin((i + 1) * ph + p->harm_p[i]);
    /* Days 5 and 6 after the Monday-aligned week start are the weekend. */
    double wd = fmod(floor(day) + 3.0, 7.0);
    double mod = wd >= 5.0 ? p->weekend : 1.0;
    return p->level + p->amp * mod * s / 1.5 + p->slope * (t - p->t_ref) / 86400.0;
}

void sy_generate(const sy_params *p0, double t0, double dt, int n, double *t, double *v) {
    sy_params pp = *p0;
    const sy_params *p = &pp;
    if (pp.t_ref == 0) pp.t_ref = t0;
    uint64_t s = p->seed;
    double noise = 0, shift = 0, tt = t0;
    for (int i = 0; i < n; i++) {
        if (p->p_gap > 0 && unif(&s) < p->p_gap) tt += dt * (double)(2 + (int)(unif(&s) * 20));
        t[i] = tt;
        noise = p->ar * noise + p->noise * gauss(&s);
        if (p->p_shift > 0 && unif(&s) < p->p_shift)
            shift += (unif(&s) < 0.5 ? -1 : 1) * p->level * urange(&s, 0.1, 0.5);
        double x = sy_base(p, tt) + noise + shift;
        if (p->p_outlier > 0 && unif(&s) < p->p_outlier)
            x += (unif(&s) < 0.5 ? -1 : 1) * urange(&s, 4, 10) * (p->noise + 0.1 * p->amp);
        if (p->p_missing > 0 && unif(&s) < p->p_missing) x = NAN;
        v[i] = x;
        tt += dt;
    }
}
