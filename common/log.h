/*
 * log.h: leveled logging to stderr (journald keeps it), optional syslog, and
 * a token-bucket rate limiter for per-message errors.
 *
 * Line format: "pid:role dd Mon HH:MM:SS.mmm <lvlchar> module: msg".
 * Level chars: '.' DEBUG, '-' VERBOSE, '*' NOTICE, '#' WARNING, '!' ERROR.
 * When stderr is the journal (systemd sets JOURNAL_STREAM to the device and
 * inode of the stream it connected, sd-daemon(3)), each line starts with
 * the sd-daemon priority "<N>" (7 debug, 6 info, 5 notice, 4 warning,
 * 3 err), so `journalctl -p warning` shows warnings and errors only.
 * stderr redirected anywhere else keeps the plain line.
 * LOG() tests the level before evaluating its arguments, so DEBUG calls on the
 * hot path cost one compare. All functions are thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>
#include <stdint.h>

/* LG_ERROR: the daemon cannot do what it was asked (a startup failure, a
 * checkpoint or state lost); it is never filtered out by log_level. */
enum { LG_DEBUG = 0, LG_VERBOSE = 1, LG_NOTICE = 2, LG_WARNING = 3, LG_ERROR = 4 };

extern int lg_verbosity; /* messages below this level are dropped; default LG_NOTICE */

#define LOG(l, ...)                           \
    do {                                      \
        if ((l) < lg_verbosity) break;        \
        lg_log_((l), __VA_ARGS__);            \
    } while (0)

/* Sets the role char ('D' daemon, 'C' command line) and whether to copy to
 * syslog, and looks at JOURNAL_STREAM and stderr once (see above). Call it
 * before the first line and before any thread starts. */
void lg_setup(char role, int use_syslog, const char *ident);
/* 1 when lines carry "<N>" priority prefixes (stderr is the journal). */
int lg_journal(void);
/* Parses "debug|verbose|notice|warning"; returns -1 when unknown. */
int lg_level_from_name(const char *name);

/* Writes one line; module is a short tag such as "ingest". */
void lg_log_(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies untrusted text (a series id, n bytes) into buf (cap >= 8 bytes,
 * always NUL-terminated) for a log line or a terminal: control bytes (below
 * 0x20, 0x7f), the C1 controls U+0080..U+009F in UTF-8, backslash and the
 * quote become \xNN (\\ and \'), so an id can neither forge a log line
 * nor send escape sequences to an operator's terminal. Other bytes,
 * printable UTF-8 included, are kept. Output that does not fit ends in
 * "...". Returns buf. Reentrant.
 */
const char *lg_escape(char *buf, size_t cap, const char *s, size_t n);
/* A cap with which n input bytes are never cut (4 per byte, "..." and NUL kept back). */
#define LG_ESCAPE_CAP(n) (4 * (n) + 4)

/*
 * Rate limiter: at most `burst` messages, refilled at `per_sec` per second.
 * lg_rl_allow returns 1 if the caller may log now; suppressed counts the
 * messages swallowed since the last allowed one (reported by the caller).
 */
typedef struct lg_ratelimit {
    double tokens;       /* current bucket level */
    double per_sec;      /* refill rate, messages per second */
    double burst;        /* bucket capacity */
    int64_t last_ns;     /* monotonic time of the last refill, ns */
    uint64_t suppressed; /* messages dropped since the last allowed one */
} lg_ratelimit;

void lg_rl_init(lg_ratelimit *rl, double per_sec, double burst);
/* Not thread-safe per limiter: each thread owns its limiters. */
int lg_rl_allow(lg_ratelimit *rl);

/* Monotonic clock in nanoseconds; wall clock in seconds since the epoch. */
int64_t lg_mono_ns(void);
double lg_wall_s(void);

#endif
