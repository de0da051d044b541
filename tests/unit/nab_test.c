/*
 * nab_test.c: the NAB scorer (bench/nab.h) against scores computed by hand
 * on small hand-made files. sigma(y) = 2 / (1 + e^(5y)) - 1 throughout.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "bench/nab.h"
#include "tests/unit/harness.h"

#define N 100
static const nab_profile *STD = &NAB_PROFILES[0];
static const nab_profile *LFP = &NAB_PROFILES[1];
static const nab_profile *LFN = &NAB_PROFILES[2];

/* One label at 50 in 100 samples: window length floor(0.1*100/1) = 10,
 * centred: start 50 - 5 = 45, end 54. */
static nab_window one_window(void) {
    long lab = 50;
    nab_window w;
    ASSERT_EQ(nab_windows_centered(&lab, 1, N, &w), 1);
    return w;
}

TEST(windows_centered_and_merged) {
    nab_window w = one_window();
    ASSERT_EQ(w.start, 45);
    ASSERT_EQ(w.end, 54);
    /* Two labels: length floor(10/2) = 5; [48,52] and [51,55] overlap -> [48,55]. */
    long labs[2] = {50, 53};
    nab_window m[2];
    ASSERT_EQ(nab_windows_centered(labs, 2, N, m), 1);
    ASSERT_EQ(m[0].start, 48);
    ASSERT_EQ(m[0].end, 55);
    /* Clipped at the file start: label 1 -> [0, 5]. */
    long lab0 = 1;
    ASSERT_EQ(nab_windows_centered(&lab0, 1, N, m), 1);
    ASSERT_EQ(m[0].start, 0);
    ASSERT_EQ(m[0].end, 5);
}

TEST(sigmoid_values) {
    /* sigma(0) = 2/2 - 1 = 0; sigma(-0.9) = 2/(1+e^-4.5) - 1
     * = 2/1.0111090 - 1 = 0.9780261; sigma(1) = 2/(1+e^5) - 1 = -0.9866143;
     * beyond y = 3 it is -1 by definition. */
    ASSERT_NEAR(nab_sigmoid(0.0), 0.0, 1e-12);
    ASSERT_NEAR(nab_sigmoid(-0.9), 0.9780261, 1e-6);
    ASSERT_NEAR(nab_sigmoid(1.0), -0.9866143, 1e-6);
    ASSERT_NEAR(nab_sigmoid(3.5), -1.0, 1e-12);
}

TEST(detection_at_window_start_is_perfect) {
    nab_window w = one_window();
    unsigned char det[N] = {0};
    det[45] = 1;
    det[46] = 1; /* later detections in the same window add nothing */
    /* y = -(54 - 45)/10 = -0.9 -> S = 0.9780261 = S_perfect; S_null = -1. */
    nab_result r = nab_score_file(det, N, &w, 1, 0, STD, NULL);
    ASSERT_NEAR(r.score, 0.9780261, 1e-6);
    ASSERT_EQ(r.tp, 1);
    ASSERT_EQ(r.fp, 0);
    ASSERT_NEAR(nab_perfect(&w, 1, STD), 0.9780261, 1e-6);
    ASSERT_NEAR(nab_normalize(r.score, nab_null(1, STD), nab_perfect(&w, 1, STD)), 100.0, 1e-9);
}

TEST(detection_at_window_end_is_half) {
    nab_window w = one_window();
    unsigned char det[N] = {0};
    det[54] = 1;
    /* y = 0 -> S = 0; normalized 100 * (0 + 1)/(0.9780261 + 1) = 50.55545. */
    nab_result r = nab_score_file(det, N, &w, 1, 0, STD, NULL);
    ASSERT_NEAR(r.score, 0.0, 1e-12);
    ASSERT_NEAR(nab_normalize(r.score, -1.0, nab_perfect(&w, 1, STD)), 50.55545, 1e-4);
}

TEST(false_positive_before_any_window) {
    nab_window w = one_window();
    unsigned char det[N] = {0};
    det[20] = 1; /* no window before it: -A_FP */
    det[47] = 1; /* y = -(54-47)/10 = -0.7: sigma = 2/(1+e^-3.5) - 1 = 0.9413755 */
    det[48] = 1;
    long first = 0;
    /* standard: -0.11 + 0.9413755 = 0.8313755; low FP: -0.22 + 0.9413755 = 0.7213755 */
    nab_result r = nab_score_file(det, N, &w, 1, 0, STD, &first);
    ASSERT_NEAR(r.score, 0.8313755, 1e-6);
    ASSERT_EQ(r.fp, 1);
    ASSERT_EQ(first, 47);
    r = nab_score_file(det, N, &w, 1, 0, LFP, NULL);
    ASSERT_NEAR(r.score, 0.7213755, 1e-6);
}

TEST(false_positive_after_window_and_miss) {
    nab_window w = one_window();
    unsigned char det[N] = {0};
    det[64] = 1; /* after the window: y = (64-54)/10 = 1 -> 0.11 * -0.9866143 = -0.1085276 */
    det[90] = 1; /* y = 3.6 > 3 -> sigma = -1 -> -0.11 */
    /* window missed: -A_FN. standard: -1 - 0.1085276 - 0.11 = -1.2185276;
     * low FN: -2 - 0.1085276 - 0.11 = -2.2185276 */
    nab_result r = nab_score_file(det, N, &w, 1, 0, STD, NULL);
    ASSERT_NEAR(r.score, -1.2185276, 1e-6);
    ASSERT_EQ(r.fn, 1);
    ASSERT_EQ(r.fp, 2);
    r = nab_score_file(det, N, &w, 1, 0, LFN, NULL);
    ASSERT_NEAR(r.score, -2.2185276, 1e-6);
    /* normalized (standard): 100 * (-1.2185276 + 1)/(0.9780261 + 1) = -11.04776 */
    ASSERT_NEAR(nab_normalize(-1.2185276, -1.0, 0.9780261), -11.04776, 1e-4);
}

TEST(probation_ignores_early_detections) {
    nab_window w = one_window();
    unsigned char det[N] = {0};
    det[10] = 1; /* inside probation (15 samples): ignored */
    det[50] = 1; /* y = -0.4: sigma = 2/(1+e^-2) - 1 = 0.7615942 (= tanh 1) */
    nab_result r = nab_score_file(det, N, &w, 1, 15, STD, NULL);
    ASSERT_NEAR(r.score, 0.7615942, 1e-6);
    ASSERT_EQ(r.fp, 0);
}

TEST(null_detector) {
    nab_window w = one_window();
    unsigned char det[N];
    memset(det, 0, sizeof det);
    nab_result r = nab_score_file(det, N, &w, 1, 0, LFN, NULL);
    ASSERT_NEAR(r.score, -2.0, 1e-12);
    ASSERT_NEAR(nab_normalize(r.score, nab_null(1, LFN), nab_perfect(&w, 1, LFN)), 0.0, 1e-9);
}

TT_MAIN(TEST_ENTRY(windows_centered_and_merged), TEST_ENTRY(sigmoid_values),
        TEST_ENTRY(detection_at_window_start_is_perfect),
        TEST_ENTRY(detection_at_window_end_is_half), TEST_ENTRY(false_positive_before_any_window),
        TEST_ENTRY(false_positive_after_window_and_miss),
        TEST_ENTRY(probation_ignores_early_detections), TEST_ENTRY(null_detector))
