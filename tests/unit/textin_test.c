/*
 * textin_test.c: the text-input layer (common/textin.h): the CSV reader
 * (quoting, separators and their detection, CRLF, BOM, blank and comment
 * lines, long lines, positions in messages, files and OOM), every timestamp
 * format and its rejections, and the strictness of numbers and option values.
 *
 * SPDX-License-Identifier: MIT
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "common/textin.h"
#include "tests/unit/harness.h"

/* A reader over len bytes of text (strlen when len is 0). */
static ti_csv *mem(const char *text, size_t len, const char *label, char sep, unsigned flags) {
    rc_err err = RC_OK;
    ti_csv *c = ti_csv_open_mem(text, len ? len : strlen(text), label, sep, flags, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(err, RC_OK);
    return c;
}

/* Reads every record of text into one string: fields joined by '|', records by '\n'. */
static char *dump(const char *text, char sep, unsigned flags) {
    ti_csv *c = mem(text, 0, "t.csv", sep, flags);
    static char out[4096];
    size_t k = 0;
    ti_row r;
    while (ti_csv_next(c, &r) == RC_OK && r.n > 0) {
        for (int i = 0; i < r.n; i++)
            k += (size_t)snprintf(out + k, sizeof out - k, "%s%s", i ? "|" : "", r.f[i].s);
        k += (size_t)snprintf(out + k, sizeof out - k, "\n");
    }
    out[k] = 0;
    ti_csv_close(c);
    return out;
}

/* The first error message reading text, or "" when it reads cleanly. */
static const char *first_error(const char *text, size_t len, char sep, size_t max) {
    ti_csv *c = mem(text, len, "t.csv", sep, 0);
    if (max) ti_csv_set_max(c, max);
    static char msg[512];
    msg[0] = 0;
    ti_row r;
    for (;;) {
        rc_err e = ti_csv_next(c, &r);
        if (e != RC_OK) {
            snprintf(msg, sizeof msg, "%s", ti_csv_error(c));
            break;
        }
        if (r.n == 0) break;
    }
    ti_csv_close(c);
    return msg;
}

TEST(csv_plain_fields_and_empty_ones) {
    ASSERT_STREQ(dump("a,b,c\n1,,3\n,\n", ',', 0), "a|b|c\n1||3\n|\n");
    /* No line end at the end of the input, and blanks kept in unquoted fields. */
    ASSERT_STREQ(dump("x, y ,z", ',', 0), "x| y |z\n");
}

TEST(csv_quotes_rfc4180) {
    ASSERT_STREQ(dump("\"a,b\",\"say \"\"hi\"\"\",\"\"\n", ',', 0), "a,b|say \"hi\"|\n");
    /* A line break inside quotes belongs to the field; the record goes on. */
    ASSERT_STREQ(dump("\"two\nlines\",x\nnext,y\n", ',', 0), "two\nlines|x\nnext|y\n");
    ASSERT_STREQ(dump("\"crlf\r\nkept\",x\r\n", ',', 0), "crlf\r\nkept|x\n");
    /* Blanks around a quoted field go; a quote inside an unquoted field stays. */
    ASSERT_STREQ(dump(" \"a\" ,5\" pipe\n", ',', 0), "a|5\" pipe\n");
}

TEST(csv_positions) {
    ti_csv *c = mem("h1,h2\n\n  \nab,\"c\nd\",e\n", 0, "p.csv", ',', 0);
    ti_row r;
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.line, 1);
    ASSERT_EQ(r.f[1].col, 4);
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.n, 3);
    ASSERT_EQ(r.line, 4);
    ASSERT_EQ(r.f[0].line, 4);
    ASSERT_EQ(r.f[0].col, 1);
    ASSERT_EQ(r.f[1].col, 4);
    ASSERT_EQ(r.f[1].quoted, 1);
    ASSERT_EQ(r.f[1].len, 3);
    ASSERT_EQ(r.f[2].line, 5);
    ASSERT_EQ(r.f[2].col, 4);
    ASSERT_STREQ(ti_csv_field_error(c, &r, 2, "number", "v", NULL), "p.csv:5:4: Invalid number in column 'v' (e).");
    ASSERT_STREQ(ti_csv_field_error(c, &r, 0, "timestamp", NULL, "day out of range"),
                 "p.csv:4:1: Invalid timestamp in column 1 (ab): day out of range.");
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.n, 0);
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK); /* the end stays the end */
    ASSERT_EQ(r.n, 0);
    ti_csv_close(c);
}

TEST(csv_separators_and_detection) {
    ASSERT_STREQ(dump("a;b\n1;2,5\n", ';', 0), "a|b\n1|2,5\n");
    ASSERT_STREQ(dump("a\tb\n1\t2\n", '\t', 0), "a|b\n1|2\n");
    static const struct {
        const char *text;
        char sep;
    } cases[] = {
        {"a,b;c\n", ','}, {"a;b\n", ';'}, {"a\tb;c\n", ';'}, {"a\tb\n", '\t'}, {"value\n", ','},
        {"\"x,y\";z\n", ';'}, /* a comma inside quotes does not count */
        {"\n\n\"a\";b\n", ';'},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ti_csv *c = mem(cases[i].text, 0, "d", 0, 0);
        ti_row r;
        ASSERT_EQ(ti_csv_sep(c), 0);
        ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
        if (ti_csv_sep(c) != cases[i].sep) TT_FAIL_("case %zu: sep '%c'", i, ti_csv_sep(c));
        ti_csv_close(c);
    }
}

TEST(csv_crlf_bom_blank_and_comment_lines) {
    ASSERT_STREQ(dump("\xEF\xBB\xBFtimestamp,value\r\n1,2\r\n\r\n   \r\n3,4\r\n", 0, 0), "timestamp|value\n1|2\n3|4\n");
    /* Only a BOM at the very start is one. */
    ASSERT_STREQ(dump("a\n\xEF\xBB\xBF" "b\n", ',', 0), "a\n\xEF\xBB\xBF" "b\n");
    ASSERT_STREQ(dump("#c\n a\n  # also\n#\n", ',', TI_CSV_COMMENTS), " a\n");
    ASSERT_STREQ(dump("#c\n", ',', 0), "#c\n");
    ASSERT_STREQ(dump("", ',', 0), "");
    ASSERT_STREQ(dump("\xEF\xBB\xBF", ',', 0), "");
}

TEST(csv_malformed_records_are_reported_and_skipped) {
    ASSERT_STREQ(first_error("a,\"open\n", 8, ',', 0), "t.csv:1:3: Unterminated quoted field.");
    ASSERT_STREQ(first_error("a\n\"x\"y,1\n", 9, ',', 0),
                 "t.csv:2:4: Unexpected 'y' after a closing quote (expected ',' or the line end).");
    ASSERT_STREQ(first_error("a\t\"x\" !\n", 8, '\t', 0),
                 "t.csv:1:7: Unexpected '!' after a closing quote (expected '\\t' or the line end).");
    ASSERT_STREQ(first_error("ok\nab\0c\n", 7, ',', 0), "t.csv:2:3: NUL byte (not a text file?).");
    /* After a bad record the reader goes on at the next line. */
    ti_csv *c = mem("\"x\"y\n1,2\n", 0, "t.csv", ',', 0);
    ti_row r;
    ASSERT_EQ(ti_csv_next(c, &r), RC_ERR_FORMAT);
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.n, 2);
    ASSERT_EQ(r.line, 2);
    ASSERT_STREQ(r.f[1].s, "2");
    ti_csv_close(c);
}

TEST(csv_long_lines_are_errors_not_truncation) {
    size_t n = 3 * TI_LINE_MAX;
    char *big = malloc(n + 16);
    ASSERT(big != NULL);
    memset(big, 'x', n);
    memcpy(big + n, "\nshort,1\n", 10);
    ti_csv *c = mem(big, 0, "big.csv", ',', 0);
    ti_row r;
    size_t before = rc_mem_used();
    ASSERT_EQ(ti_csv_next(c, &r), RC_ERR_FORMAT);
    ASSERT_STREQ(ti_csv_error(c), "big.csv:1:1: Line longer than 1048576 bytes.");
    /* The rest of the line was skipped, not buffered. */
    ASSERT_LE(rc_mem_used() - before, 2 * TI_LINE_MAX + 4096);
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.line, 2);
    ASSERT_STREQ(r.f[0].s, "short");
    ti_csv_close(c);
    free(big);
    /* Exactly at the bound is fine, with either line end; one more byte is not. */
    ASSERT_STREQ(first_error("0123456789abcdef\r\n", 18, ',', 16), "");
    ASSERT_STREQ(first_error("0123456789abcdef", 16, ',', 16), "");
    ASSERT_STREQ(first_error("0123456789abcdefg\n", 18, ',', 16), "t.csv:1:1: Line longer than 16 bytes.");
    /* A quote left open cannot swallow the file: the record bound stops it. */
    ASSERT_STREQ(first_error("\"0123456789\nabcdefgh\n", 21, ',', 16),
                 "t.csv:1:1: Record longer than 16 bytes (unterminated quote?).");
    /* Many fields on one line: the field table grows. */
    char many[8192];
    size_t k = 0;
    for (int i = 0; i < 2000; i++) k += (size_t)snprintf(many + k, sizeof many - k, "%d,", i % 10);
    c = mem(many, k, "m", ',', 0);
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.n, 2001);
    ASSERT_STREQ(r.f[1999].s, "9");
    ASSERT_STREQ(r.f[2000].s, "");
    ti_csv_close(c);
}

TEST(csv_files_and_open_errors) {
    char path[] = "/tmp/textin_test_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    /* Bigger than one read block, so records straddle block borders. */
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 20000; i++) fprintf(f, "%d,\"v%d\"\r\n", i, i);
    fclose(f);
    char eb[256];
    rc_err err;
    ti_csv *c = ti_csv_open(path, 0, 0, &err, eb, sizeof eb);
    ASSERT(c != NULL);
    ASSERT_STREQ(ti_csv_label(c), path);
    ti_row r;
    for (int i = 0; i < 20000; i++) {
        ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
        ASSERT_EQ(r.n, 2);
        ASSERT_EQ(r.line, i + 1);
        ASSERT_EQ(atoi(r.f[0].s), i);
        ASSERT_EQ(atoi(r.f[1].s + 1), i);
    }
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(r.n, 0);
    ti_csv_close(c);
    unlink(path);
    ASSERT(ti_csv_open(path, ',', 0, &err, eb, sizeof eb) == NULL);
    ASSERT_EQ(err, RC_ERR_IO);
    ASSERT(strstr(eb, "Cannot open '/tmp/textin_test_") == eb);
    ASSERT(strstr(eb, "(No such file or directory).") != NULL);
}

TEST(csv_out_of_memory_is_reported) {
    const char *text = "a,b,c\n1,2,3\n";
    for (long n = 1; n <= 8; n++) {
        rc_err err = RC_OK;
        rc_fail_after(n, 1);
        ti_csv *c = ti_csv_open_mem(text, strlen(text), "o", ',', 0, &err);
        ti_row r;
        rc_err e = RC_OK;
        int rows = 0;
        if (c)
            while ((e = ti_csv_next(c, &r)) == RC_OK && r.n > 0) rows++;
        rc_fail_after(0, 0);
        if (!c) ASSERT_EQ(err, RC_ERR_NOMEM);
        else if (e != RC_OK) ASSERT_EQ(e, RC_ERR_NOMEM);
        else ASSERT_EQ(rows, 2);
        ti_csv_close(c);
    }
}

TEST(row_find_and_helpers) {
    ti_csv *c = mem("Time, VALUE ,\"value\"\n", 0, "h", ',', 0);
    ti_row r;
    ASSERT_EQ(ti_csv_next(c, &r), RC_OK);
    ASSERT_EQ(ti_row_find(&r, "time", 0), 0);
    ASSERT_EQ(ti_row_find(&r, "value", 0), 1);
    ASSERT_EQ(ti_row_find(&r, "value", 2), 2);
    ASSERT_EQ(ti_row_find(&r, "timestamp", 0), -1);
    ti_csv_close(c);
    char s[] = " \t id 7\t ";
    ASSERT_STREQ(ti_trim(s), "id 7");
    ASSERT(ti_is_missing(""));
    ASSERT(ti_is_missing("  "));
    ASSERT(ti_is_missing("NaN"));
    ASSERT(ti_is_missing(" null "));
    ASSERT(ti_is_missing("NA"));
    ASSERT(!ti_is_missing("nano"));
    ASSERT(!ti_is_missing("0"));
}

static double T(const char *s) {
    double t = -1;
    const char *why = NULL;
    if (ti_parse_time(s, &t, &why) != RC_OK) TT_FAIL_("'%s' rejected: %s", s, why ? why : "?");
    return t;
}

static const char *T_bad(const char *s) {
    double t = 12345;
    const char *why = NULL;
    if (ti_parse_time(s, &t, &why) == RC_OK) TT_FAIL_("'%s' accepted as %.17g", s, t);
    ASSERT(why != NULL);
    ASSERT_EQ(t, 12345); /* untouched */
    return why;
}

TEST(time_every_format) {
    ASSERT_EQ(T("2024-01-01 00:00:00"), 1704067200);
    ASSERT_EQ(T("2024-01-01T00:00:00"), 1704067200);
    ASSERT_EQ(T("2024-01-01t00:00:00"), 1704067200);
    ASSERT_EQ(T("2024-01-01T00:00:00Z"), 1704067200);
    ASSERT_EQ(T("2024-01-01T00:00:00z"), 1704067200);
    ASSERT_EQ(T("2024-01-01"), 1704067200);
    ASSERT_EQ(T("2024-01-01Z"), 1704067200);
    ASSERT_EQ(T("2024-01-01 01:00"), 1704070800);
    ASSERT_EQ(T("2024-01-01T01:00Z"), 1704070800);
    ASSERT_EQ(T("2024-01-01T02:00:00+01:00"), 1704070800);
    ASSERT_EQ(T("2024-01-01T02:00:00+0100"), 1704070800);
    ASSERT_EQ(T("2024-01-01T02:00:00+01"), 1704070800);
    ASSERT_EQ(T("2024-01-01 02:00:00+01:00"), 1704070800);
    ASSERT_EQ(T("2023-12-31T19:30:00-05:30"), 1704070800);
    ASSERT_EQ(T("2024-01-01+01:00"), 1704067200 - 3600);
    ASSERT_NEAR(T("2024-01-01 00:00:00.25"), 1704067200.25, 1e-6);
    ASSERT_NEAR(T("2024-01-01T00:00:00,5Z"), 1704067200.5, 1e-6);
    ASSERT_NEAR(T("2024-01-01T00:00:00.123456789012345678901234567890123456789012345+00:00"),
                1704067200.123456789, 1e-6);
    ASSERT_EQ(T("2024-02-29 12:00:00"), 1709208000);   /* leap day */
    ASSERT_EQ(T("2000-02-29"), 951782400);             /* 400-year leap */
    ASSERT_EQ(T("2024-01-01 23:59:60"), 1704153600);   /* leap second */
    ASSERT_EQ(T("2024-01-01 24:00:00"), 1704153600);   /* end of the day */
    ASSERT_EQ(T("2024-01-01 24:00"), 1704153600);
    ASSERT_EQ(T("1970-01-01"), 0);
    ASSERT_EQ(T("1969-12-31 23:59:59"), -1);
    ASSERT_EQ(T("0000-01-01"), -62167219200.0);
    ASSERT_EQ(T("9999-12-31 23:59:59"), 253402300799.0);
    ASSERT_EQ(T("  2024-01-01 00:00:00\t"), 1704067200); /* blanks around */
    /* Epoch seconds. */
    ASSERT_EQ(T("1700000000"), 1700000000);
    ASSERT_EQ(T("1700000000.5"), 1700000000.5);
    ASSERT_EQ(T("+1700000000"), 1700000000);
    ASSERT_EQ(T("-86400"), -86400);
    ASSERT_EQ(T("1.7e9"), 1.7e9);
    ASSERT_EQ(T("0"), 0);
    ASSERT_EQ(T("2024"), 2024); /* four digits without '-' are seconds */
    ASSERT_EQ(T(" 42 "), 42);
}

TEST(time_rejections) {
    ASSERT_STREQ(T_bad("2024-13-01"), "month out of range");
    ASSERT_STREQ(T_bad("2024-00-10"), "month out of range");
    ASSERT_STREQ(T_bad("2024-02-30"), "day out of range");
    ASSERT_STREQ(T_bad("2023-02-29"), "day out of range");
    ASSERT_STREQ(T_bad("1900-02-29"), "day out of range");
    ASSERT_STREQ(T_bad("2024-04-31 00:00:00"), "day out of range");
    ASSERT_STREQ(T_bad("2024-01-00"), "day out of range");
    ASSERT_STREQ(T_bad("2024-01-01 25:00:00"), "hour out of range");
    ASSERT_STREQ(T_bad("2024-01-01 24:00:01"), "hour out of range");
    ASSERT_STREQ(T_bad("2024-01-01 24:30"), "hour out of range");
    ASSERT_STREQ(T_bad("2024-01-01 12:60:00"), "minute out of range");
    ASSERT_STREQ(T_bad("2024-01-01 12:00:61"), "second out of range");
    ASSERT_STREQ(T_bad("2024-01-01T00:00:00+24:00"), "zone offset out of range");
    ASSERT_STREQ(T_bad("2024-01-01T00:00:00+01:60"), "zone offset out of range");
    ASSERT_STREQ(T_bad("1e12"), "epoch seconds out of range (years 0000-9999)");
    ASSERT_STREQ(T_bad("-1e11"), "epoch seconds out of range (years 0000-9999)");
    static const char *const syntax[] = {
        "", "   ", "yesterday", "2024-01-01x", "2024-01-01 00:00:00 junk", "2024-01-01 00:00:00Zjunk",
        "2024-1-1", "24-01-01", "2024/01/01", "2024-01-01 0:00:00", "2024-01-01 00:00:0", "2024-01-01 00",
        "2024-01-01T", "2024-01-01 00:00:00.", "2024-01-01 00:00:00+1", "2024-01-01 00:00:00+01:",
        "2024-01-01 00:00:00+01:0", "2024-01-01  00:00:00", "20240-01-01", "2024-01-01T00:00:00 Z", "1700000000x",
        "0x10", "inf", "nan", "1,5", "1e", "--1", "+", ".", "1 2", "\"2024-01-01\"", "2024-01-01\n00:00",
        "2024-01-01 00:00:05e1",
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++)
        ASSERT_STREQ(T_bad(syntax[i]), "expected YYYY-MM-DD[ HH:MM[:SS[.fff]]][Z|+HH:MM] or epoch seconds");
}

TEST(time_matches_the_calendar_every_day) {
    /* Every day of 1960..2100 against a day counter, and a time of day on each. */
    double expect = -3653.0 * 86400.0;
    for (int y = 1960; y <= 2100; y++)
        for (int m = 1; m <= 12; m++) {
            int dim = m == 2 ? ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28)
                             : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
            for (int d = 1; d <= 31; d++) {
                char s[64];
                snprintf(s, sizeof s, "%04d-%02d-%02dT13:07:09", y, m, d);
                double t;
                rc_err rc = ti_parse_time(s, &t, NULL);
                if (d > dim) {
                    ASSERT_EQ(rc, RC_ERR_FORMAT);
                    continue;
                }
                ASSERT_EQ(rc, RC_OK);
                if (t != expect + 13 * 3600 + 7 * 60 + 9) TT_FAIL_("%s -> %.0f", s, t);
                expect += 86400.0;
            }
        }
}

TEST(numbers_are_strict) {
    double d;
    ASSERT_EQ(ti_parse_double("1.5", &d), RC_OK);
    ASSERT_EQ(d, 1.5);
    ASSERT_EQ(ti_parse_double(" -2e3\t", &d), RC_OK);
    ASSERT_EQ(d, -2000);
    ASSERT_EQ(ti_parse_double(".5", &d), RC_OK);
    ASSERT_EQ(d, 0.5);
    ASSERT_EQ(ti_parse_double("5.", &d), RC_OK);
    ASSERT_EQ(d, 5);
    ASSERT_EQ(ti_parse_double("+7E-1", &d), RC_OK);
    ASSERT_EQ(d, 0.7);
    ASSERT_EQ(ti_parse_double("6135515.87712279", &d), RC_OK);
    ASSERT_EQ(d, strtod("6135515.87712279", NULL)); /* the very value libc gives */
    ASSERT_EQ(ti_parse_double("1e-400", &d), RC_OK);  /* underflow rounds to zero */
    ASSERT_EQ(d, 0);
    static const char *const bad[] = {"", " ", "x", "1x", "1.5.2", "0x10", "inf", "-inf", "nan", "infinity",
                                      "1e", "1e+", "e5", ".", "+", "-", "1,5", "1 000", "--1", "1e5.5", "\"1\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = 42;
        if (ti_parse_double(bad[i], &d) != RC_ERR_FORMAT) TT_FAIL_("'%s' accepted", bad[i]);
        ASSERT_EQ(d, 42);
    }
    ASSERT_EQ(ti_parse_double("1e999", &d), RC_ERR_LIMIT);
    ASSERT_EQ(ti_parse_double("-1e400", &d), RC_ERR_LIMIT);
    char huge[5000];
    memset(huge, '9', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    ASSERT_EQ(ti_parse_double(huge, &d), RC_ERR_LIMIT); /* 4999 nines: heap path */
    huge[0] = '.';
    ASSERT_EQ(ti_parse_double(huge, &d), RC_OK);
    ASSERT_EQ(d, 1.0);

    long l;
    ASSERT_EQ(ti_parse_long("42", 0, 100, &l), RC_OK);
    ASSERT_EQ(l, 42);
    ASSERT_EQ(ti_parse_long(" -5 ", -10, 10, &l), RC_OK);
    ASSERT_EQ(l, -5);
    ASSERT_EQ(ti_parse_long("101", 0, 100, &l), RC_ERR_LIMIT);
    ASSERT_EQ(ti_parse_long("-1", 0, 100, &l), RC_ERR_LIMIT);
    ASSERT_EQ(ti_parse_long("99999999999999999999", 0, LONG_MAX, &l), RC_ERR_LIMIT);
    static const char *const badl[] = {"", "x", "5x", "1.0", "1e3", "0x10", " ", "+", "1 2"};
    for (size_t i = 0; i < sizeof badl / sizeof badl[0]; i++)
        if (ti_parse_long(badl[i], LONG_MIN, LONG_MAX, &l) != RC_ERR_FORMAT) TT_FAIL_("'%s' accepted", badl[i]);
    ASSERT_EQ(ti_parse_long(huge + 1, 0, LONG_MAX, &l), RC_ERR_LIMIT);

    uint64_t u;
    ASSERT_EQ(ti_parse_u64("18446744073709551615", &u), RC_OK);
    ASSERT(u == UINT64_MAX);
    ASSERT_EQ(ti_parse_u64("+7", &u), RC_OK);
    ASSERT_EQ(u, 7);
    ASSERT_EQ(ti_parse_u64("18446744073709551616", &u), RC_ERR_LIMIT);
    ASSERT_EQ(ti_parse_u64("-1", &u), RC_ERR_FORMAT);
    ASSERT_EQ(ti_parse_u64("1.5", &u), RC_ERR_FORMAT);
}

/* Runs fn with stderr sent to a temp file; returns what it printed. */
static const char *captured(int (*fn)(void), int *ret) {
    static char buf[1024];
    fflush(stderr);
    FILE *tmp = tmpfile();
    ASSERT(tmp != NULL);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    *ret = fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    return buf;
}

static long g_l;
static double g_d;
static uint64_t g_u;
static int opt_steps_x(void) { return ti_opt_long("--steps", "x", 1, LONG_MAX, &g_l); }
static int opt_batch_0(void) { return ti_opt_long("--batch", "0", 1, 100000, &g_l); }
static int opt_rate_neg(void) { return ti_opt_double("--rate", "-5", 0, 1, HUGE_VAL, &g_d); }
static int opt_rate_big(void) { return ti_opt_double("--rate", "1e5", 0, 1, 10000, &g_d); }
static int opt_seed_neg(void) { return ti_opt_u64("--seed", "-1", &g_u); }
static int opt_ok(void) {
    int i;
    return ti_opt_long("--count", "12", 0, 20, &g_l) || ti_opt_double("--lr", "2e-3", 0, 1, 1, &g_d) ||
           ti_opt_u64("--seed", "18446744073709551615", &g_u) || ti_opt_int("--n", "3", 1, 3, &i) || i != 3;
}

TEST(option_values_name_the_option_and_value) {
    int ret;
    ASSERT_STREQ(captured(opt_steps_x, &ret), "Error: Invalid '--steps' value (x): expected an integer >= 1.\n");
    ASSERT_EQ(ret, -1);
    ASSERT_STREQ(captured(opt_batch_0, &ret),
                 "Error: Invalid '--batch' value (0): expected an integer in 1..100000.\n");
    ASSERT_STREQ(captured(opt_rate_neg, &ret), "Error: Invalid '--rate' value (-5): expected a number > 0.\n");
    ASSERT_STREQ(captured(opt_rate_big, &ret),
                 "Error: Invalid '--rate' value (1e5): expected a number > 0 and <= 10000.\n");
    ASSERT_STREQ(captured(opt_seed_neg, &ret),
                 "Error: Invalid '--seed' value (-1): expected an integer in 0..18446744073709551615.\n");
    ASSERT_STREQ(captured(opt_ok, &ret), "");
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(g_l, 12);
    ASSERT_EQ(g_d, 2e-3);
    ASSERT(g_u == UINT64_MAX);
}

TEST(getopt_spec_builds_both_tables) {
    ti_getopt g;
    ASSERT_EQ(ti_getopt_init(&g, " e|endpoint= P/pull\th|help  T/train=\n", 0), 0);
    ASSERT_STREQ(g.shortopts, ":e:h");
    ASSERT_STREQ(g.longopts[0].name, "endpoint");
    ASSERT_EQ(g.longopts[0].has_arg, required_argument);
    ASSERT_EQ(g.longopts[0].val, 'e');
    ASSERT_STREQ(g.longopts[1].name, "pull");
    ASSERT_EQ(g.longopts[1].has_arg, no_argument);
    ASSERT_EQ(g.longopts[1].val, 'P');
    ASSERT_STREQ(g.longopts[3].name, "train");
    ASSERT_EQ(g.longopts[3].val, 'T');
    ASSERT(g.longopts[4].name == NULL);
    ASSERT_EQ(ti_getopt_init(&g, "t|timeout= j|json", 1), 0);
    ASSERT_STREQ(g.shortopts, "+:t:j");
    char *argv[] = {"ctl", "--timeout=5", "-j", "get", "-x", NULL};
    int c;
    ASSERT_EQ(getopt_long(5, argv, g.shortopts, g.longopts, NULL), 't');
    ASSERT_STREQ(optarg, "5");
    ASSERT_EQ(getopt_long(5, argv, g.shortopts, g.longopts, NULL), 'j');
    c = getopt_long(5, argv, g.shortopts, g.longopts, NULL);
    ASSERT_EQ(c, -1); /* '+': options end at the operand "get" */
    ASSERT_EQ(optind, 3);
}

static int bad_spec(void) {
    ti_getopt g;
    return ti_getopt_init(&g, "e|endpoint= ee|x", 0);
}
static int bad_spec_empty_name(void) {
    ti_getopt g;
    return ti_getopt_init(&g, "e|", 0);
}
static int bad_spec_too_many(void) {
    char spec[2048] = "";
    for (int i = 0; i <= TI_OPT_MAX; i++) snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "x/o%d ", i);
    ti_getopt g;
    return ti_getopt_init(&g, spec, 0);
}

/* Runs one getopt_long pass of argv (argc words; getopt permutes them, so
 * they must be writable) and returns what the error helpers printed. */
static char **g_argv;
static int g_argc;
static int opt_pass(void) {
    ti_getopt g;
    int c, ret = 0;
    ASSERT_EQ(ti_getopt_init(&g, "n|count= P/pull h|help", 0), 0);
    while ((c = getopt_long(g_argc, g_argv, g.shortopts, g.longopts, NULL)) != -1)
        if (c == '?' || c == ':') ret = ti_opt_error(c, g_argv);
    return ret ? ret : ti_opt_operands(g_argc, g_argv, 1);
}
static const char *opt_run(int argc, char **argv, int *ret) {
    g_argc = argc;
    g_argv = argv;
    return captured(opt_pass, ret);
}

TEST(getopt_errors_name_the_option) {
    int ret;
    ASSERT_STREQ(captured(bad_spec, &ret), "Error: Bad option spec at 'ee|x' (a bug).\n");
    ASSERT_EQ(ret, -1);
    ASSERT_STREQ(captured(bad_spec_empty_name, &ret), "Error: Bad option spec at 'e|' (a bug).\n");
    captured(bad_spec_too_many, &ret);
    ASSERT_EQ(ret, -1);
    char *a1[] = {"x", "--bogus=1", NULL}, *a2[] = {"x", "--count", NULL}, *a3[] = {"x", "--pull=1", NULL},
         *a4[] = {"x", "-Z", NULL}, *a5[] = {"x", "-n", NULL}, *a6[] = {"x", "a", "-n5", "b", NULL},
         *a7[] = {"x", "a", "--count=5", "--pull", NULL};
    ASSERT_STREQ(opt_run(2, a1, &ret), "Error: Unknown option '--bogus'.\n");
    ASSERT_EQ(ret, 2);
    ASSERT_STREQ(opt_run(2, a2, &ret), "Error: Option '--count' needs a value.\n");
    ASSERT_STREQ(opt_run(2, a3, &ret), "Error: Option '--pull' takes no value.\n");
    ASSERT_STREQ(opt_run(2, a4, &ret), "Error: Unknown option '-Z'.\n");
    ASSERT_STREQ(opt_run(2, a5, &ret), "Error: Option '-n' needs a value.\n");
    ASSERT_STREQ(opt_run(4, a6, &ret), "Error: Unexpected argument 'b'.\n"); /* operands are permuted last */
    ASSERT_EQ(ret, 2);
    ASSERT_STREQ(opt_run(4, a7, &ret), "");
    ASSERT_EQ(ret, 0);
}

static double g_t;
static int opt_time_bad(void) { return ti_opt_time("--t0", "2024-02-30", &g_t); }
static int opt_time_ok(void) { return ti_opt_time("--t0", "2024-01-01T00:00:00Z", &g_t); }

TEST(option_timestamps) {
    int ret;
    ASSERT_STREQ(captured(opt_time_bad, &ret), "Error: Invalid '--t0' value (2024-02-30): day out of range.\n");
    ASSERT_EQ(ret, -1);
    ASSERT_STREQ(captured(opt_time_ok, &ret), "");
    ASSERT_EQ(g_t, 1704067200);
}

TT_MAIN(TEST_ENTRY(csv_plain_fields_and_empty_ones), TEST_ENTRY(csv_quotes_rfc4180), TEST_ENTRY(csv_positions),
        TEST_ENTRY(csv_separators_and_detection), TEST_ENTRY(csv_crlf_bom_blank_and_comment_lines),
        TEST_ENTRY(csv_malformed_records_are_reported_and_skipped), TEST_ENTRY(csv_long_lines_are_errors_not_truncation),
        TEST_ENTRY(csv_files_and_open_errors), TEST_ENTRY(csv_out_of_memory_is_reported),
        TEST_ENTRY(row_find_and_helpers), TEST_ENTRY(time_every_format), TEST_ENTRY(time_rejections),
        TEST_ENTRY(time_matches_the_calendar_every_day), TEST_ENTRY(numbers_are_strict),
        TEST_ENTRY(option_values_name_the_option_and_value), TEST_ENTRY(getopt_spec_builds_both_tables),
        TEST_ENTRY(getopt_errors_name_the_option), TEST_ENTRY(option_timestamps))
