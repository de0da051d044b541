/*
 * textin.h: the one text-input layer of the `rwkvcast` command and the bench
 * programs: a streaming CSV reader, the timestamp parser, strict numbers, and
 * strict command-line option values. Every CSV file and every numeric or
 * time option the tools read goes through here, so `send`, `replay`, `eval`,
 * `train` and the benches accept the same formats and word their errors the
 * same way ("FILE:LINE:COL: ..." for files, "Invalid '--opt' value (x)" for
 * options). It lives in the static library because the bench programs link
 * only build/librwkvcast.a.
 *
 * Threads: a ti_csv belongs to one thread at a time; every other function is
 * reentrant. Errors: each function says what it returns; nothing here exits.
 * The ti_opt_* helpers print one "Error: ..." line to stderr (they exist for
 * command-line programs; the daemon never calls them). Heap: rc_malloc.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TEXTIN_H
#define TEXTIN_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base.h"

/* ---------------------------------------------------------------- CSV */

/* Default bound on one record (a line, or lines joined inside quotes), bytes. */
#define TI_LINE_MAX (1u << 20)
/* ti_csv_open flag: skip lines whose first non-blank byte is '#'. */
#define TI_CSV_COMMENTS 1u

typedef struct ti_field {
    const char *s; /* text, NUL-terminated, quotes and "" escapes removed; valid until the next ti_csv_next */
    size_t len;    /* bytes in s, without the NUL */
    long line;     /* 1-based line the field starts on */
    long col;      /* 1-based byte column of its first byte (the opening quote when quoted) */
    int quoted;    /* 1 when written in double quotes */
} ti_field;

typedef struct ti_row {
    int n;              /* fields; 0 at the end of the input */
    long line;          /* 1-based line the record starts on */
    const ti_field *f;  /* (n) fields, owned by the reader; valid until the next ti_csv_next */
} ti_row;

typedef struct ti_csv ti_csv;

/*
 * Opens path ("-" = stdin, shown as "<stdin>" in messages) for reading
 * records separated by sep; sep 0 picks it from the first record: ',' if
 * it has one outside quotes, else ';', else a tab, else ','. flags: 0 or
 * TI_CSV_COMMENTS. Returns the reader (free with ti_csv_close), or NULL
 * with *err = RC_ERR_IO (message "Cannot open 'PATH' (reason)." in errbuf,
 * errlen bytes) or RC_ERR_NOMEM.
 *
 * The reader follows RFC 4180: fields in double quotes may hold the
 * separator, line breaks and "" for a quote; blanks around a quoted field
 * are dropped, an unquoted field is kept as written (blanks too). It also
 * takes CRLF or LF line ends, skips a UTF-8 byte order mark and skips blank
 * lines (nothing but spaces and tabs). Records longer than TI_LINE_MAX
 * bytes (see ti_csv_set_max) are errors, never silently cut.
 */
ti_csv *ti_csv_open(const char *path, char sep, unsigned flags, rc_err *err, char *errbuf, size_t errlen);
/* The same over len bytes at data (borrowed; must outlive the reader); label names it in messages. */
ti_csv *ti_csv_open_mem(const void *data, size_t len, const char *label, char sep, unsigned flags, rc_err *err);
/* Closes the file (not stdin) and frees the reader; NULL is a no-op. */
void ti_csv_close(ti_csv *c);
/* Sets the bound on one record, bytes (>= 16). */
void ti_csv_set_max(ti_csv *c, size_t max_bytes);

/*
 * Reads the next record into *row. Returns RC_OK with row->n > 0 for a
 * record and row->n == 0 at the end of the input. On a malformed record
 * returns RC_ERR_FORMAT (unterminated quote, text after a closing quote, a
 * NUL byte, a record over the bound); its lines are consumed, so the caller
 * may report it and read on. RC_ERR_IO on a read error, RC_ERR_NOMEM. On
 * any error ti_csv_error() says "FILE:LINE:COL: What went wrong."
 */
rc_err ti_csv_next(ti_csv *c, ti_row *row);
/* Message of the last failure (see ti_csv_next), "" if none. Owned by c. */
const char *ti_csv_error(const ti_csv *c);
/* The separator in use (0 until the first record was read). */
char ti_csv_sep(const ti_csv *c);
/* The name used in messages: the path, "<stdin>" or the label. Owned by c. */
const char *ti_csv_label(const ti_csv *c);

/*
 * Formats a bad field into c's message buffer and returns it:
 *   "FILE:LINE:COL: Invalid WHAT in column 'NAME' (TEXT)."
 * with ": WHY." at the end when why is not NULL, and "column N" (1-based
 * index i) when name is NULL. TEXT is cut to 64 bytes plus "..." and control
 * bytes print as '?', so a huge or binary field gives a readable line.
 */
const char *ti_csv_field_error(ti_csv *c, const ti_row *row, int i, const char *what, const char *name,
                               const char *why);

/* Index >= from of the first field equal to name, ignoring ASCII case and surrounding blanks; -1 if none. */
int ti_row_find(const ti_row *row, const char *name, int from);

/* ------------------------------------------------------------ values */

/*
 * Every parser below ignores blanks (spaces, tabs) around s and requires
 * the rest to be exactly one value: no empty string, no trailing text.
 *
 * Numbers are decimal: [+-]digits[.digits][e[+-]digits] (".5" and "5."
 * too). Hex, "inf", "nan" and thousands separators are not numbers.
 * Returns RC_OK, RC_ERR_FORMAT (not such a number) or RC_ERR_LIMIT (does
 * not fit, or outside [lo, hi]). *out is written only on RC_OK.
 */
rc_err ti_parse_double(const char *s, double *out);
rc_err ti_parse_long(const char *s, long lo, long hi, long *out);
rc_err ti_parse_u64(const char *s, uint64_t *out);

/*
 * Parses a timestamp into seconds since 1970-01-01 00:00:00 UTC. Accepted:
 *   YYYY-MM-DD                        midnight UTC
 *   YYYY-MM-DD HH:MM[:SS[.fff]]       UTC ('T' or 't' may replace the space;
 *   YYYY-MM-DDTHH:MM[:SS[.fff]]       ',' may replace the '.')
 *   any of these + Z | z | +HH | -HH | +HH:MM | -HH:MM | +HHMM | -HHMM
 *   epoch seconds, integer or decimal (1700000000, 1700000000.25)
 * Fields are checked: month 01-12, day within the month (leap years
 * counted), hour 00-23 (24:00:00 = the next midnight), minute 00-59,
 * second 00-60, zone hour 00-23 and minute 00-59; years 0000-9999, epoch
 * seconds likewise. Returns RC_OK, or RC_ERR_FORMAT with *why (if why is
 * not NULL) set to a static reason such as "day out of range".
 */
rc_err ti_parse_time(const char *s, double *out, const char **why);
/* The formats above as --help lines (every command that reads timestamps prints them). */
#define TI_TIME_HELP                                                                       \
    "Timestamps: 'YYYY-MM-DD HH:MM:SS[.fff]', ISO-8601 'YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]'\n" \
    "(also -HH:MM, +HHMM, +HH), 'YYYY-MM-DD', or epoch seconds (integer or decimal).\n"      \
    "Seconds may be left out (HH:MM); a time without a zone is UTC.\n"

/* 1 if s marks a missing value: empty or blank, "nan", "null" or "na" in any case; else 0. */
int ti_is_missing(const char *s);
/* Removes blanks (spaces, tabs) around s in place; returns the first non-blank byte. */
char *ti_trim(char *s);

/* ----------------------------------------------------- option values */

/*
 * Strict values of command-line options, for getopt_long loops. name is the
 * option as documented ("--steps"), arg its value. On success store into
 * *out and return 0. Otherwise print
 *   Error: Invalid '--steps' value (x): expected an integer >= 1.
 * to stderr and return -1 (the caller exits with status 2). Ranges are
 * inclusive; ti_opt_double's lo is exclusive when lo_open is 1.
 */
int ti_opt_long(const char *name, const char *arg, long lo, long hi, long *out);
int ti_opt_int(const char *name, const char *arg, int lo, int hi, int *out);
int ti_opt_u64(const char *name, const char *arg, uint64_t *out);
int ti_opt_double(const char *name, const char *arg, double lo, int lo_open, double hi, double *out);
/* A timestamp (ti_parse_time); the error ends in the parser's reason, e.g. ": day out of range." */
int ti_opt_time(const char *name, const char *arg, double *out);

/*
 * getopt_long's two tables from one spec string, so each program declares an
 * option's short form, long form and value once. The spec is a blank-separated
 * list of:
 *   x|name    -x and --name, a flag; getopt_long returns 'x'
 *   x|name=   the same taking a value (-x V, --name V, --name=V)
 *   X/name    --name only; getopt_long returns 'X' (any letter not used as x|)
 *   X/name=   --name only, taking a value
 * Example: "e|endpoint= P/pull h|help". ti_getopt_init fills *g and resets
 * optind; the loop is then the usual
 *   while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1)
 * The optstring starts with ':' (with '+' before it when stop_at_operand is
 * 1: options end at the first operand), so getopt prints nothing and the
 * default case hands '?' and ':' to ti_opt_error. Returns 0, or -1 for a
 * malformed spec (a bug; printed as "Error: Bad option spec ..."). *g must
 * not be copied: longopts and shortopts point into it.
 */
#define TI_OPT_MAX 40 /* options per program */
typedef struct ti_getopt {
    struct option *longopts;              /* = table, for getopt_long */
    const char *shortopts;                /* = shortbuf, for getopt_long */
    struct option table[TI_OPT_MAX + 1];  /* long options, NULL-terminated */
    char shortbuf[3 * TI_OPT_MAX + 3];    /* "+:e:P..." */
    char names[TI_OPT_MAX * 32];          /* long names, NUL-separated */
} ti_getopt;
int ti_getopt_init(ti_getopt *g, const char *spec, int stop_at_operand);

/*
 * For the '?' and ':' results of getopt_long with an optstring that starts
 * with ':' (so getopt itself prints nothing): prints "Error: Unknown option
 * '--x'." or "Error: Option '--x' needs a value." and returns 2, the usage
 * exit status. argv is the vector given to getopt_long.
 */
int ti_opt_error(int c, char **argv);
/* After the getopt_long loop: 0 when at most max operands are left, else
 * prints "Error: Unexpected argument 'X'." for the first extra one and returns 2. */
int ti_opt_operands(int argc, char **argv, int max);

#endif
