/*
 * harness.h: the project's tiny test framework (libuv task.h style).
 *
 * A test file defines tests with TEST(name) and ends with
 *   TT_MAIN(TEST_ENTRY(a), TEST_ENTRY(b), ...)
 * Each test runs in its own forked process under a timeout (TT_TIMEOUT
 * seconds, default 300), so a crash or hang fails that test only. The
 * program prints "ok"/"FAIL" per test and ends with
 *   "<file>: N passed, N failed"
 * which tests/run.sh sums. TT_FILTER=substring runs only matching tests.
 * The ASSERT macros stay active under -DNDEBUG and print file:line, the
 * expression and both values.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct tt_entry {
    const char *name; /* test name */
    void (*fn)(void); /* body; returns on success, exits non-zero on failure */
} tt_entry;

#define TEST(n) static void test_##n(void)
#define TEST_ENTRY(n) {#n, test_##n}

#define TT_FAIL_(...)                                                 \
    do {                                                              \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);             \
        fprintf(stderr, __VA_ARGS__);                                 \
        fputc('\n', stderr);                                          \
        exit(1);                                                      \
    } while (0)

#define ASSERT(c)                                                     \
    do {                                                              \
        if (!(c)) TT_FAIL_("assertion failed: `%s`", #c);             \
    } while (0)
#define ASSERT_EQ(a, b)                                                             \
    do {                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        if (a_ != b_) TT_FAIL_("`%s == %s` (%lld vs %lld)", #a, #b, a_, b_);        \
    } while (0)
#define ASSERT_NE(a, b)                                                             \
    do {                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        if (a_ == b_) TT_FAIL_("`%s != %s` (both %lld)", #a, #b, a_);               \
    } while (0)
#define ASSERT_LE(a, b)                                                             \
    do {                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                  \
        if (!(a_ <= b_)) TT_FAIL_("`%s <= %s` (%.9g vs %.9g)", #a, #b, a_, b_);     \
    } while (0)
#define ASSERT_LT(a, b)                                                             \
    do {                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                  \
        if (!(a_ < b_)) TT_FAIL_("`%s < %s` (%.9g vs %.9g)", #a, #b, a_, b_);       \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                                      \
    do {                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                  \
        if (!(fabs(a_ - b_) <= (tol)))                                              \
            TT_FAIL_("`%s ~= %s` (%.9g vs %.9g, tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)
#define ASSERT_STREQ(a, b)                                                          \
    do {                                                                            \
        const char *a_ = (a), *b_ = (b);                                            \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                      \
            TT_FAIL_("`%s == %s` (\"%s\" vs \"%s\")", #a, #b, a_ ? a_ : "(null)",   \
                     b_ ? b_ : "(null)");                                           \
    } while (0)

static inline int tt_run_(const char *file, const tt_entry *t, int n) {
    const char *filter = getenv("TT_FILTER");
    const char *tmo = getenv("TT_TIMEOUT");
    unsigned timeout = tmo ? (unsigned)atoi(tmo) : 300;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char label[64];
    snprintf(label, sizeof label, "%.*s", (int)strcspn(base, "."), base);
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (filter && !strstr(t[i].name, filter)) continue;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(timeout);
            t[i].fn();
            fflush(stdout);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok   %s.%s\n", label, t[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(st))
                printf("FAIL %s.%s (signal %d%s)\n", label, t[i].name, WTERMSIG(st),
                       WTERMSIG(st) == SIGALRM ? ": timeout" : "");
            else
                printf("FAIL %s.%s (exit %d)\n", label, t[i].name, WEXITSTATUS(st));
            failed++;
        }
    }
    printf("%s: %d passed, %d failed\n", label, passed, failed);
    return failed ? 1 : 0;
}

#define TT_MAIN(...)                                                        \
    int main(void) {                                                        \
        static const tt_entry tt_all_[] = {__VA_ARGS__};                    \
        return tt_run_(__FILE__, tt_all_, (int)(sizeof tt_all_ / sizeof tt_all_[0])); \
    }

#endif
