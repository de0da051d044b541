/*
 * nab.h: our implementation of the NAB scoring method, written from its
 * published description (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly
 * Detection Algorithms - the Numenta Anomaly Benchmark"). Header-only, so
 * bench/anomaly_bench.c and tests/unit/nab_test.c share it (every bench/ source
 * is its own program).
 *
 * Method as implemented:
 *  - Windows: each labelled anomaly point gets a window of
 *    floor(0.1 * n / n_labels) samples centred on it (clipped to the file;
 *    overlapping windows are merged). Other window rules (e.g. SKAB's 60 s
 *    to the right of each change point) are built by the caller.
 *  - Scaled sigmoid sigma(y) = 2 / (1 + e^(5y)) - 1, and -1 for y > 3.
 *  - In a window [s, e] of length L = e - s + 1 only the first detection
 *    counts: A_TP * sigma(y) with y = -(e - i) / L (about -1 at the window
 *    start, so ~0.987 * A_TP; 0 at its last sample). Later detections in
 *    the same window add nothing.
 *  - A window without a detection: -A_FN.
 *  - A detection outside every window, after the end e of the latest
 *    preceding window (length L): A_FP * sigma((i - e) / L), which is in
 *    (-A_FP, 0): a late detection costs less than a random one. With no
 *    preceding window: -A_FP. True negatives add nothing (A_TN unused, as
 *    in the paper's tables).
 *  - Detections in the probationary period (first 15% of a file) are
 *    ignored, as NAB does, since every detector is still learning there.
 *  - Normalization over a data set: 100 * (S - S_null) / (S_perfect - S_null)
 *    with S_null = -A_FN * windows (never detects) and S_perfect = the sum
 *    of A_TP * sigma(y) at each window's first sample.
 *  - Profiles: standard (A_TP 1, A_FP 0.11, A_FN 1, A_TN 1), reward_low_FP
 *    (A_FP 0.22), reward_low_FN (A_FN 2.0). The detection threshold is
 *    optimized per profile over the whole data set (nab_best_threshold).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef NAB_H
#define NAB_H

#include <math.h>
#include <stdlib.h>

typedef struct nab_profile {
    const char *name; /* "standard", "reward_low_FP", "reward_low_FN" */
    double a_tp;      /* weight of a true positive */
    double a_fp;      /* weight of a false positive */
    double a_fn;      /* weight of a missed window */
    double a_tn;      /* weight of a true negative (unused by the score) */
} nab_profile;

static const nab_profile NAB_PROFILES[3] = {
    {"standard", 1.0, 0.11, 1.0, 1.0},
    {"reward_low_FP", 1.0, 0.22, 1.0, 1.0},
    {"reward_low_FN", 1.0, 0.11, 2.0, 1.0},
};

typedef struct nab_window {
    long start; /* first sample index inside the window */
    long end;   /* last sample index inside the window (inclusive) */
} nab_window;

static inline double nab_sigmoid(double y) {
    if (y > 3.0) return -1.0;
    return 2.0 / (1.0 + exp(5.0 * y)) - 1.0;
}

/*
 * Builds NAB windows for n_labels labelled points (sample indices,
 * ascending) in a file of n samples. out must hold n_labels windows.
 * Returns the number of windows after merging overlaps.
 */
static inline int nab_windows_centered(const long *labels, int n_labels, long n, nab_window *out) {
    if (n_labels <= 0 || n <= 0) return 0;
    long len = (long)(0.1 * (double)n / (double)n_labels);
    if (len < 1) len = 1;
    int nw = 0;
    for (int k = 0; k < n_labels; k++) {
        long s = labels[k] - len / 2, e = s + len - 1;
        if (s < 0) s = 0;
        if (e > n - 1) e = n - 1;
        if (nw > 0 && s <= out[nw - 1].end + 1) {
            if (e > out[nw - 1].end) out[nw - 1].end = e;
            continue;
        }
        out[nw].start = s;
        out[nw].end = e;
        nw++;
    }
    return nw;
}

/* Per-file outcome at one threshold. */
typedef struct nab_result {
    double score; /* raw NAB score S */
    int tp;       /* windows detected */
    int fn;       /* windows missed */
    long fp;      /* detections outside every window */
} nab_result;

/*
 * Scores one file: det[i] != 0 marks a detection at sample i (n samples);
 * windows ascending and disjoint; detections before `probation` ignored.
 * first_det (nw entries, may be NULL) receives each window's first
 * detection index or -1.
 */
static inline nab_result nab_score_file(const unsigned char *det, long n, const nab_window *w,
                                        int nw, long probation, const nab_profile *p,
                                        long *first_det) {
    nab_result r = {0.0, 0, 0, 0};
    int k = 0; /* first window whose end is >= i */
    for (int j = 0; j < nw; j++)
        if (first_det) first_det[j] = -1;
    long last_tp_win = -1;
    for (long i = probation > 0 ? probation : 0; i < n; i++) {
        while (k < nw && w[k].end < i) k++;
        if (!det[i]) continue;
        if (k < nw && i >= w[k].start) {
            if (last_tp_win != k) {
                long L = w[k].end - w[k].start + 1;
                r.score += p->a_tp * nab_sigmoid(-(double)(w[k].end - i) / (double)L);
                r.tp++;
                if (first_det) first_det[k] = i;
                last_tp_win = k;
            }
            continue;
        }
        r.fp++;
        if (k > 0) {
            long L = w[k - 1].end - w[k - 1].start + 1;
            r.score += p->a_fp * nab_sigmoid((double)(i - w[k - 1].end) / (double)L);
        } else {
            r.score -= p->a_fp;
        }
    }
    r.fn = nw - r.tp;
    r.score -= p->a_fn * r.fn;
    return r;
}

/* Best possible raw score: every window detected at its first sample. */
static inline double nab_perfect(const nab_window *w, int nw, const nab_profile *p) {
    double s = 0.0;
    for (int k = 0; k < nw; k++) {
        long L = w[k].end - w[k].start + 1;
        s += p->a_tp * nab_sigmoid(-(double)(L - 1) / (double)L);
    }
    return s;
}

/* Raw score of the detector that never fires. */
static inline double nab_null(int nw, const nab_profile *p) { return -p->a_fn * nw; }

static inline double nab_normalize(double s, double s_null, double s_perfect) {
    double d = s_perfect - s_null;
    return d > 0.0 ? 100.0 * (s - s_null) / d : 0.0;
}

#endif
