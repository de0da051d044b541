/*
 * textin.c: CSV reader, timestamp and number parsers, option values (see
 * textin.h).
 *
 * The reader read(2)s up to 64 KiB at a time (or walks a memory buffer),
 * cuts that into physical lines with memchr and parses one record at a time
 * into three growing buffers (the line, the field texts, the field table)
 * that are reused for the next record: reading a file allocates only while
 * its longest record grows. read(2), not fread: fread waits for a full
 * block, and `send -` or `replay -` on a pipe must handle each line as it
 * comes.
 * Numbers are checked against a small grammar first and converted with
 * strtod/strtol after, so a value that parses is the value libc gives.
 *
 * SPDX-License-Identifier: MIT
 */
#include "common/textin.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TI_BLOCK 65536 /* bytes per read(2) */

struct ti_csv {
    /* Source */
    int fd;                    /* file source, -1 for memory */
    int close_fd;              /* 1: close(fd) in ti_csv_close (0 for stdin) */
    const unsigned char *mem;  /* memory source, borrowed; or block */
    size_t mem_len;            /* bytes at mem */
    size_t mem_pos;            /* bytes of mem consumed */
    unsigned char *block;      /* (TI_BLOCK) read buffer of a file source, after the label */
    int eof;                   /* the source has no more bytes */
    /* Settings */
    char sep;                  /* field separator, 0 until detected */
    unsigned flags;            /* TI_CSV_* */
    size_t max;                /* bound on one record, bytes */
    /* Current physical line */
    long lineno;               /* lines read so far; the current line's number */
    char *lb;                  /* (lb_cap) the line without its end, not NUL-terminated */
    size_t lb_len, lb_cap;     /* bytes */
    int lb_long;               /* the line was over max; its rest was skipped */
    char eol[3];               /* the line end taken off: "\n", "\r\n" or "" */
    /* Current record */
    char *tx;                  /* (tx_cap) field texts, each NUL-terminated */
    size_t tx_len, tx_cap;     /* bytes */
    ti_field *fl;              /* (fcap) field table */
    int fcap;                  /* fields allocated */
    char msg[400];             /* last error, "FILE:LINE:COL: ..." */
    char label[];              /* name in messages, then a file source's block, allocated with the struct */
};

static int is_blank(int ch) { return ch == ' ' || ch == '\t'; }

/* A reader with room for the label and `extra` more bytes after it (the read block). */
static ti_csv *csv_new(const char *label, size_t extra, char sep, unsigned flags, rc_err *err) {
    size_t ll = strlen(label) + 1;
    ti_csv *c = rc_calloc(1, sizeof *c + ll + extra);
    if (!c) {
        *err = RC_ERR_NOMEM;
        return NULL;
    }
    memcpy(c->label, label, ll);
    c->block = (unsigned char *)c->label + ll;
    c->fd = -1;
    c->sep = sep;
    c->flags = flags;
    c->max = TI_LINE_MAX;
    return c;
}

ti_csv *ti_csv_open(const char *path, char sep, unsigned flags, rc_err *err, char *errbuf, size_t errlen) {
    int is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errbuf, errlen, "Cannot open '%s' (%s).", path, strerror(errno));
        *err = RC_ERR_IO;
        return NULL;
    }
    ti_csv *c = csv_new(is_stdin ? "<stdin>" : path, TI_BLOCK, sep, flags, err);
    if (!c) {
        if (!is_stdin) close(fd);
        snprintf(errbuf, errlen, "Out of memory opening '%s'.", path);
        return NULL;
    }
    c->fd = fd;
    c->close_fd = !is_stdin;
    c->mem = c->block;
    return c;
}

ti_csv *ti_csv_open_mem(const void *data, size_t len, const char *label, char sep, unsigned flags, rc_err *err) {
    ti_csv *c = csv_new(label, 0, sep, flags, err);
    if (!c) return NULL;
    c->mem = data;
    c->mem_len = len;
    return c;
}

void ti_csv_close(ti_csv *c) {
    if (!c) return;
    if (c->close_fd) close(c->fd);
    /* Four blocks: the struct (with the label and read block), the line, the texts and the fields. */
    rc_free(c->lb);
    rc_free(c->tx);
    rc_free(c->fl);
    rc_free(c);
}

void ti_csv_set_max(ti_csv *c, size_t max_bytes) { c->max = max_bytes < 16 ? 16 : max_bytes; }
const char *ti_csv_error(const ti_csv *c) { return c->msg; }
char ti_csv_sep(const ti_csv *c) { return c->sep; }
const char *ti_csv_label(const ti_csv *c) { return c->label; }

/*
 * Makes bytes available at c->mem + c->mem_pos. 1 some, 0 end of input, -1
 * read error (msg set; EINTR is one too, so that a signal stops a reader
 * blocked on a pipe).
 */
static int src_fill(ti_csv *c) {
    if (c->mem_pos < c->mem_len) return 1;
    if (c->fd < 0 || c->eof) return 0;
    ssize_t n = read(c->fd, c->block, TI_BLOCK);
    if (n < 0) {
        snprintf(c->msg, sizeof c->msg, "%s:%ld: Reading failed (%s).", c->label, c->lineno + 1, strerror(errno));
        return -1;
    }
    c->mem_len = (size_t)n;
    c->mem_pos = 0;
    c->eof = n == 0;
    return n > 0;
}

/* Makes room for need bytes in *p (cap bytes, doubled as needed). 0, or -1 when out of memory. */
static int grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    char *q = rc_realloc(*p, nc);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/*
 * Reads one physical line into lb without its end (kept in eol). A line
 * over c->max is marked lb_long and its rest is skipped, so memory stays
 * bounded by the limit whatever the input. Returns 1 for a line, 0 at the
 * end of the input, RC_ERR_IO or RC_ERR_NOMEM as a negative number (msg set).
 */
static int read_line(ti_csv *c) {
    int any = 0;
    c->lb_len = 0;
    c->lb_long = 0;
    for (;;) {
        int r = src_fill(c);
        if (r < 0) return -RC_ERR_IO;
        if (r == 0) break;
        any = 1;
        const unsigned char *p = c->mem + c->mem_pos;
        size_t n = c->mem_len - c->mem_pos;
        const unsigned char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        /* Room for the limit plus "\r\n": longer lines are known to be too long. */
        if (!c->lb_long && c->lb_len + take > c->max + 2) c->lb_long = 1;
        if (!c->lb_long) {
            if (grow(&c->lb, &c->lb_cap, c->lb_len + take)) {
                snprintf(c->msg, sizeof c->msg, "%s:%ld: Out of memory.", c->label, c->lineno + 1);
                return -RC_ERR_NOMEM;
            }
            memcpy(c->lb + c->lb_len, p, take);
            c->lb_len += take;
        }
        c->mem_pos += take;
        if (nl) break;
    }
    if (!any) return 0;
    c->lineno++;
    size_t n = c->lb_len;
    c->eol[0] = 0;
    if (!c->lb_long) {
        if (n && c->lb[n - 1] == '\n') n--;
        if (n && c->lb[n - 1] == '\r') n--;
        memcpy(c->eol, c->lb + n, c->lb_len - n);
        c->eol[c->lb_len - n] = 0;
        c->lb_len = n;
        if (n > c->max) c->lb_long = 1;
    }
    /* A UTF-8 byte order mark is an encoding marker, not data. */
    if (c->lineno == 1 && !c->lb_long && n >= 3 && memcmp(c->lb, "\xEF\xBB\xBF", 3) == 0) {
        memmove(c->lb, c->lb + 3, n - 3);
        c->lb_len = n - 3;
    }
    return 1;
}

/* Checks the line just read: too long or holding a NUL byte is RC_ERR_FORMAT (msg set). */
static rc_err check_line(ti_csv *c) {
    if (c->lb_long) {
        snprintf(c->msg, sizeof c->msg, "%s:%ld:1: Line longer than %zu bytes.", c->label, c->lineno, c->max);
        return RC_ERR_FORMAT;
    }
    const char *z = c->lb_len ? memchr(c->lb, 0, c->lb_len) : NULL;
    if (z) {
        snprintf(c->msg, sizeof c->msg, "%s:%ld:%ld: NUL byte (not a text file?).", c->label, c->lineno,
                 (long)(z - c->lb) + 1);
        return RC_ERR_FORMAT;
    }
    return RC_OK;
}

static int skip_line(const ti_csv *c) {
    size_t i = 0;
    while (i < c->lb_len && is_blank(c->lb[i])) i++;
    if (i == c->lb_len) return 1;
    return (c->flags & TI_CSV_COMMENTS) && c->lb[i] == '#';
}

/* The first separator outside quotes among ',' ';' and tab, in that order of preference. */
static char detect_sep(const ti_csv *c) {
    int seen[3] = {0, 0, 0}, inq = 0;
    for (size_t i = 0; i < c->lb_len; i++) {
        char ch = c->lb[i];
        if (ch == '"') inq = !inq;
        else if (!inq) seen[0] |= ch == ',', seen[1] |= ch == ';', seen[2] |= ch == '\t';
    }
    return seen[0] ? ',' : seen[1] ? ';' : seen[2] ? '\t' : ',';
}

/* Appends n bytes to the field texts, keeping room for the NUL that ends the field. */
static int tx_put(ti_csv *c, const char *p, size_t n) {
    if (grow(&c->tx, &c->tx_cap, c->tx_len + n + 1)) return -1;
    memcpy(c->tx + c->tx_len, p, n);
    c->tx_len += n;
    return 0;
}

static rc_err nomem(ti_csv *c) {
    snprintf(c->msg, sizeof c->msg, "%s:%ld: Out of memory.", c->label, c->lineno);
    return RC_ERR_NOMEM;
}

static rc_err fmt_err(ti_csv *c, long line, long col, const char *what) {
    snprintf(c->msg, sizeof c->msg, "%s:%ld:%ld: %s", c->label, line, col, what);
    return RC_ERR_FORMAT;
}

/*
 * Parses the rest of a quoted field, from *pos just after the opening
 * quote; pulls in more lines while the quote is open. On return *pos is
 * just after the closing quote in the (possibly new) current line.
 */
static rc_err quoted_field(ti_csv *c, size_t *pos, const ti_field *f, size_t *total) {
    size_t p = *pos;
    for (;;) {
        if (p >= c->lb_len) {
            /* A line break inside quotes belongs to the field, as written. */
            char eol[3];
            memcpy(eol, c->eol, sizeof eol);
            int r = read_line(c);
            if (r < 0) return (rc_err)-r;
            if (r == 0) return fmt_err(c, f->line, f->col, "Unterminated quoted field.");
            rc_err e = check_line(c);
            if (e != RC_OK) return e;
            *total += c->lb_len + strlen(eol);
            if (*total > c->max) {
                char what[96];
                snprintf(what, sizeof what, "Record longer than %zu bytes (unterminated quote?).", c->max);
                return fmt_err(c, f->line, f->col, what);
            }
            if (tx_put(c, eol, strlen(eol))) return RC_ERR_NOMEM;
            p = 0;
            continue;
        }
        const char *L = c->lb;
        if (L[p] == '"') {
            if (p + 1 < c->lb_len && L[p + 1] == '"') {
                if (tx_put(c, "\"", 1)) return RC_ERR_NOMEM;
                p += 2;
                continue;
            }
            *pos = p + 1;
            return RC_OK;
        }
        const char *q = memchr(L + p, '"', c->lb_len - p);
        size_t k = q ? (size_t)(q - (L + p)) : c->lb_len - p;
        if (tx_put(c, L + p, k)) return RC_ERR_NOMEM;
        p += k;
    }
}

/* Splits the record starting in the current line into c's field table. */
static rc_err parse_record(ti_csv *c, ti_row *row) {
    int nf = 0;
    size_t pos = 0, total = c->lb_len;
    long first_line = c->lineno;
    c->tx_len = 0;
    for (;;) {
        if (nf == c->fcap) {
            /* At most max + 1 fields fit in a record, so an int count is enough. */
            int nc = c->fcap ? 2 * c->fcap : 64;
            ti_field *fl = rc_realloc(c->fl, (size_t)nc * sizeof *fl);
            if (!fl) return nomem(c);
            c->fl = fl;
            c->fcap = nc;
        }
        ti_field *f = &c->fl[nf];
        size_t q = pos;
        while (q < c->lb_len && is_blank(c->lb[q]) && c->lb[q] != c->sep) q++;
        f->line = c->lineno;
        f->col = (long)pos + 1;
        f->quoted = 0;
        size_t start = c->tx_len;
        if (q < c->lb_len && c->lb[q] == '"') {
            f->quoted = 1;
            f->col = (long)q + 1;
            pos = q + 1;
            rc_err e = quoted_field(c, &pos, f, &total);
            if (e == RC_ERR_NOMEM) return nomem(c);
            if (e != RC_OK) return e;
            while (pos < c->lb_len && is_blank(c->lb[pos]) && c->lb[pos] != c->sep) pos++;
            if (pos < c->lb_len && c->lb[pos] != c->sep) {
                char what[96], sep[3] = {c->sep, 0, 0};
                unsigned char ch = (unsigned char)c->lb[pos];
                if (c->sep == '\t') memcpy(sep, "\\t", 3);
                snprintf(what, sizeof what, "Unexpected '%c' after a closing quote (expected '%s' or the line end).",
                         ch >= 0x20 && ch < 0x7f ? ch : '?', sep);
                return fmt_err(c, c->lineno, (long)pos + 1, what);
            }
        } else {
            const char *e = memchr(c->lb + pos, c->sep, c->lb_len - pos);
            size_t k = e ? (size_t)(e - (c->lb + pos)) : c->lb_len - pos;
            if (tx_put(c, c->lb + pos, k)) return nomem(c);
            pos += k;
        }
        /* tx_put keeps a byte free; an empty quoted field may not have called it yet. */
        if (tx_put(c, "", 0)) return nomem(c);
        c->tx[c->tx_len++] = 0;
        f->len = c->tx_len - 1 - start;
        nf++;
        if (pos < c->lb_len && c->lb[pos] == c->sep) {
            pos++;
            continue;
        }
        break;
    }
    /* tx may have moved while growing: point the fields only now. They lie
     * back to back, each followed by its NUL. */
    for (size_t i = 0, at = 0; i < (size_t)nf; at += c->fl[i].len + 1, i++) c->fl[i].s = c->tx + at;
    row->n = nf;
    row->line = first_line;
    row->f = c->fl;
    return RC_OK;
}

rc_err ti_csv_next(ti_csv *c, ti_row *row) {
    row->n = 0;
    row->line = c->lineno;
    row->f = c->fl;
    c->msg[0] = 0;
    for (;;) {
        int r = read_line(c);
        if (r < 0) return (rc_err)-r;
        if (r == 0) return RC_OK;
        rc_err e = check_line(c);
        if (e != RC_OK) return e;
        if (skip_line(c)) continue;
        if (!c->sep) c->sep = detect_sep(c);
        return parse_record(c, row);
    }
}

/* Appends s to buf (size n, at *k) cut to 64 bytes, control bytes as '?'. */
static void put_echo(char *buf, size_t n, size_t *k, const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i < len && i < 64 && *k + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[(*k)++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (len > 64)
        for (int i = 0; i < 3 && *k + 1 < n; i++) buf[(*k)++] = '.';
    buf[*k] = 0;
}

const char *ti_csv_field_error(ti_csv *c, const ti_row *row, int i, const char *what, const char *name,
                               const char *why) {
    const ti_field *f = &row->f[i];
    char col[96];
    if (name) snprintf(col, sizeof col, "'%.80s'", name);
    else snprintf(col, sizeof col, "%d", i + 1);
    int w = snprintf(c->msg, sizeof c->msg, "%s:%ld:%ld: Invalid %s in column %s (", c->label, f->line, f->col,
                     what, col);
    size_t k = w < 0 ? 0 : (size_t)w < sizeof c->msg ? (size_t)w : sizeof c->msg - 1;
    put_echo(c->msg, sizeof c->msg, &k, f->s);
    if (why) snprintf(c->msg + k, sizeof c->msg - k, "): %s.", why);
    else snprintf(c->msg + k, sizeof c->msg - k, ").");
    return c->msg;
}

/* Bounds of s without surrounding blanks. */
static void span(const char *s, const char **b, const char **e) {
    while (is_blank(*s)) s++;
    const char *t = s + strlen(s);
    while (t > s && is_blank(t[-1])) t--;
    *b = s;
    *e = t;
}

int ti_row_find(const ti_row *row, const char *name, int from) {
    size_t nl = strlen(name);
    for (int i = from < 0 ? 0 : from; i < row->n; i++) {
        const char *b, *e;
        span(row->f[i].s, &b, &e);
        if ((size_t)(e - b) == nl && strncasecmp(b, name, nl) == 0) return i;
    }
    return -1;
}

char *ti_trim(char *s) {
    const char *b, *e;
    span(s, &b, &e);
    s[e - s] = 0;
    return s + (b - s);
}

int ti_is_missing(const char *s) {
    const char *b, *e;
    span(s, &b, &e);
    size_t n = (size_t)(e - b);
    return n == 0 || (n == 3 && strncasecmp(b, "nan", 3) == 0) || (n == 4 && strncasecmp(b, "null", 4) == 0) ||
           (n == 2 && strncasecmp(b, "na", 2) == 0);
}

/* ------------------------------------------------------------ numbers */

static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }

/*
 * Copies [b, e) to a NUL-terminated buffer for strtod/strtol: buf (n bytes)
 * when it fits, else a heap copy (*heap, freed by the caller). NULL on OOM.
 */
static char *dup_span(const char *b, const char *e, char *buf, size_t n, char **heap) {
    size_t len = (size_t)(e - b);
    char *d = buf;
    *heap = NULL;
    if (len >= n) {
        d = *heap = rc_malloc(len + 1);
        if (!d) return NULL;
    }
    memcpy(d, b, len);
    d[len] = 0;
    return d;
}

/* 1 if [b, e) is [+-]digits[.digits][e[+-]digits] (a side of '.' may be empty, not both). */
static int decimal_syntax(const char *b, const char *e, int allow_frac) {
    const char *p = b;
    int digits = 0;
    if (p < e && (*p == '+' || *p == '-')) p++;
    while (p < e && is_digit(*p)) p++, digits++;
    if (allow_frac && p < e && *p == '.') {
        p++;
        while (p < e && is_digit(*p)) p++, digits++;
    }
    if (!digits) return 0;
    if (allow_frac && p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || !is_digit(*p)) return 0;
        while (p < e && is_digit(*p)) p++;
    }
    return p == e;
}

static rc_err parse_double_span(const char *b, const char *e, double *out) {
    if (!decimal_syntax(b, e, 1)) return RC_ERR_FORMAT;
    char buf[64], *heap;
    const char *d = dup_span(b, e, buf, sizeof buf, &heap);
    if (!d) return RC_ERR_NOMEM;
    double v = strtod(d, NULL);
    rc_free(heap);
    /* Overflow gives +-HUGE_VAL; an underflow (ERANGE with a tiny result)
     * is a value that rounds to (almost) zero, which is fine. */
    if (!isfinite(v)) return RC_ERR_LIMIT;
    *out = v;
    return RC_OK;
}

rc_err ti_parse_double(const char *s, double *out) {
    const char *b, *e;
    span(s, &b, &e);
    return parse_double_span(b, e, out);
}

rc_err ti_parse_long(const char *s, long lo, long hi, long *out) {
    const char *b, *e;
    span(s, &b, &e);
    if (!decimal_syntax(b, e, 0)) return RC_ERR_FORMAT;
    char buf[64], *heap;
    const char *d = dup_span(b, e, buf, sizeof buf, &heap);
    if (!d) return RC_ERR_NOMEM;
    errno = 0;
    long v = strtol(d, NULL, 10);
    int range = errno == ERANGE;
    rc_free(heap);
    if (range || v < lo || v > hi) return RC_ERR_LIMIT;
    *out = v;
    return RC_OK;
}

rc_err ti_parse_u64(const char *s, uint64_t *out) {
    const char *b, *e;
    span(s, &b, &e);
    /* strtoull would take "-1" as 2^64-1: a sign other than '+' is not a u64. */
    if (b < e && *b == '-') return RC_ERR_FORMAT;
    if (!decimal_syntax(b, e, 0)) return RC_ERR_FORMAT;
    char buf[64], *heap;
    const char *d = dup_span(b, e, buf, sizeof buf, &heap);
    if (!d) return RC_ERR_NOMEM;
    errno = 0;
    unsigned long long v = strtoull(d, NULL, 10);
    int range = errno == ERANGE;
    rc_free(heap);
    if (range) return RC_ERR_LIMIT;
    *out = (uint64_t)v;
    return RC_OK;
}

/* --------------------------------------------------------- timestamps */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so parsing never depends on the TZ environment. */
static long days_from_civil(long y, long m, long d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(long y, long m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly n digits at *p (before e) into *out and advances; 0 if they are not there. */
static int digits(const char **p, const char *e, int n, long *out) {
    long v = 0;
    if (e - *p < n) return 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i])) return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

/* Epoch seconds of 0000-01-01 and 10000-01-01: the span the date forms can write. */
#define TI_T_MIN (-62167219200.0)
#define TI_T_END 253402300800.0

static const char TI_TIME_SYNTAX[] = "expected YYYY-MM-DD[ HH:MM[:SS[.fff]]][Z|+HH:MM] or epoch seconds";

static rc_err time_fail(const char **why, const char *reason) {
    if (why) *why = reason;
    return RC_ERR_FORMAT;
}

/* The time-of-day and zone after "YYYY-MM-DD"; p is just past the day. */
static rc_err parse_clock(const char *p, const char *e, long *sec, double *frac, double *off, const char **why) {
    long h = 0, mi = 0, se = 0;
    *frac = 0.0;
    *off = 0.0;
    if (p < e && (*p == ' ' || *p == 'T' || *p == 't')) {
        p++;
        if (!digits(&p, e, 2, &h) || p == e || *p++ != ':' || !digits(&p, e, 2, &mi)) return time_fail(why, TI_TIME_SYNTAX);
        if (p < e && *p == ':') {
            p++;
            if (!digits(&p, e, 2, &se)) return time_fail(why, TI_TIME_SYNTAX);
            if (p < e && (*p == '.' || *p == ',')) {
                /* The fraction goes through strtod as "0.ddd": exact to the last bit;
                 * digits past the 40th cannot change a double of a second's fraction. */
                char buf[48] = "0.";
                size_t k = 2;
                p++;
                if (p == e || !is_digit(*p)) return time_fail(why, TI_TIME_SYNTAX);
                for (; p < e && is_digit(*p); p++)
                    if (k < 42) buf[k++] = *p;
                buf[k] = 0;
                *frac = strtod(buf, NULL);
            }
        }
        if (h > 24) return time_fail(why, "hour out of range");
        if (mi > 59) return time_fail(why, "minute out of range");
        if (se > 60) return time_fail(why, "second out of range");
        if (h == 24 && (mi || se || *frac > 0)) return time_fail(why, "hour out of range");
    }
    if (p < e && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < e && (*p == '+' || *p == '-')) {
        int sign = *p == '-' ? -1 : 1;
        long oh, om = 0;
        p++;
        if (!digits(&p, e, 2, &oh)) return time_fail(why, TI_TIME_SYNTAX);
        if (p < e && *p == ':') {
            p++;
            if (!digits(&p, e, 2, &om)) return time_fail(why, TI_TIME_SYNTAX);
        } else if (p < e && is_digit(*p) && !digits(&p, e, 2, &om)) {
            return time_fail(why, TI_TIME_SYNTAX);
        }
        if (oh > 23 || om > 59) return time_fail(why, "zone offset out of range");
        *off = sign * (double)(oh * 3600 + om * 60);
    }
    if (p != e) return time_fail(why, TI_TIME_SYNTAX);
    *sec = h * 3600 + mi * 60 + se;
    return RC_OK;
}

rc_err ti_parse_time(const char *s, double *out, const char **why) {
    const char *b, *e;
    span(s, &b, &e);
    const char *p = b;
    long y, mo, d;
    if (e - b >= 5 && digits(&p, e, 4, &y) && *p == '-') {
        p++;
        if (!digits(&p, e, 2, &mo) || p == e || *p++ != '-' || !digits(&p, e, 2, &d))
            return time_fail(why, TI_TIME_SYNTAX);
        if (mo < 1 || mo > 12) return time_fail(why, "month out of range");
        if (d < 1 || d > days_in_month(y, mo)) return time_fail(why, "day out of range");
        long sec;
        double frac, off;
        rc_err rc = parse_clock(p, e, &sec, &frac, &off, why);
        if (rc != RC_OK) return rc;
        *out = (double)days_from_civil(y, mo, d) * 86400.0 + (double)sec + frac - off;
        return RC_OK;
    }
    double v;
    rc_err rc = parse_double_span(b, e, &v);
    if (rc == RC_ERR_NOMEM) return time_fail(why, "out of memory");
    if (rc != RC_OK) return time_fail(why, TI_TIME_SYNTAX);
    if (!(v >= TI_T_MIN && v < TI_T_END)) return time_fail(why, "epoch seconds out of range (years 0000-9999)");
    *out = v;
    return RC_OK;
}

/* ------------------------------------------------------ option values */

static int opt_bad(const char *name, const char *arg, const char *expect) {
    fprintf(stderr, "Error: Invalid '%s' value (%s): expected %s.\n", name, arg, expect);
    return -1;
}

int ti_opt_long(const char *name, const char *arg, long lo, long hi, long *out) {
    if (ti_parse_long(arg, lo, hi, out) == RC_OK) return 0;
    char expect[96];
    if (hi == LONG_MAX) snprintf(expect, sizeof expect, "an integer >= %ld", lo);
    else snprintf(expect, sizeof expect, "an integer in %ld..%ld", lo, hi);
    return opt_bad(name, arg, expect);
}

int ti_opt_int(const char *name, const char *arg, int lo, int hi, int *out) {
    long v;
    if (ti_opt_long(name, arg, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int ti_opt_u64(const char *name, const char *arg, uint64_t *out) {
    if (ti_parse_u64(arg, out) == RC_OK) return 0;
    return opt_bad(name, arg, "an integer in 0..18446744073709551615");
}

int ti_opt_double(const char *name, const char *arg, double lo, int lo_open, double hi, double *out) {
    double v;
    if (ti_parse_double(arg, &v) == RC_OK && (lo_open ? v > lo : v >= lo) && v <= hi) {
        *out = v;
        return 0;
    }
    char expect[96];
    if (isinf(hi)) snprintf(expect, sizeof expect, "a number %s %g", lo_open ? ">" : ">=", lo);
    else if (lo_open) snprintf(expect, sizeof expect, "a number > %g and <= %g", lo, hi);
    else snprintf(expect, sizeof expect, "a number in %g..%g", lo, hi);
    return opt_bad(name, arg, expect);
}

int ti_opt_time(const char *name, const char *arg, double *out) {
    const char *why = NULL;
    if (ti_parse_time(arg, out, &why) == RC_OK) return 0;
    fprintf(stderr, "Error: Invalid '%s' value (%s): %s.\n", name, arg, why);
    return -1;
}

int ti_opt_error(int c, char **argv) {
    /* A long option is the word getopt just passed, argv[optind - 1] (cut at
     * '='); a short one is in optopt (getopt puts a long option's val there
     * too, which is why the word is looked at first). */
    const char *tok = argv[optind - 1];
    int is_long = strncmp(tok, "--", 2) == 0;
    int n = is_long ? (int)strcspn(tok, "=") : 2;
    char shortopt[3] = {'-', (char)optopt, 0};
    if (!is_long) tok = shortopt;
    if (c == ':') fprintf(stderr, "Error: Option '%.*s' needs a value.\n", n, tok);
    else if (is_long && optopt && tok[n] == '=') fprintf(stderr, "Error: Option '%.*s' takes no value.\n", n, tok);
    else fprintf(stderr, "Error: Unknown option '%.*s'.\n", n, tok);
    return 2;
}

int ti_opt_operands(int argc, char **argv, int max) {
    if (argc - optind <= max) return 0;
    fprintf(stderr, "Error: Unexpected argument '%s'.\n", argv[optind + max]);
    return 2;
}

int ti_getopt_init(ti_getopt *g, const char *spec, int stop_at_operand) {
    size_t sk = 0, nk = 0;
    int n = 0;
    const char *p = spec;
    memset(g, 0, sizeof *g);
    if (stop_at_operand) g->shortbuf[sk++] = '+';
    g->shortbuf[sk++] = ':';
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        /* One item: key, '|' or '/', name, optional '='. */
        const char *item = p, *name = p + 2;
        size_t len = strcspn(name, "= \t\n");
        int arg = name[len] == '=';
        if (!isalnum((unsigned char)p[0]) || (p[1] != '|' && p[1] != '/') || len == 0 || n == TI_OPT_MAX ||
            nk + len + 1 > sizeof g->names) {
            fprintf(stderr, "Error: Bad option spec at '%s' (a bug).\n", item);
            return -1;
        }
        memcpy(g->names + nk, name, len);
        g->table[n] = (struct option){g->names + nk, arg ? required_argument : no_argument, NULL, p[0]};
        nk += len + 1;
        n++;
        if (p[1] == '|') {
            g->shortbuf[sk++] = p[0];
            if (arg) g->shortbuf[sk++] = ':';
        }
        p = name + len + arg;
    }
    g->longopts = g->table;
    g->shortopts = g->shortbuf;
    optind = 1;
    return 0;
}
