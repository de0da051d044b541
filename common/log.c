/*
 * log.c: the logging backend. One fprintf per line keeps lines whole under
 * concurrent writers (stdio locks the stream).
 *
 * SPDX-License-Identifier: MIT
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <syslog.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int lg_verbosity = LG_NOTICE;
static char lg_role = 'C';
static int lg_syslog;
static int lg_prio; /* stderr is the journal: "<N>" prefixes */

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it is
 * inherited by children whose stderr may have been redirected since, so
 * the prefix is used only when stderr is still that very stream. */
static int stderr_is_journal(void) {
    const char *js = getenv("JOURNAL_STREAM");
    if (!js || !*js) return 0;
    char *end;
    unsigned long long dev = strtoull(js, &end, 10);
    if (end == js || *end != ':') return 0;
    const char *p = end + 1;
    unsigned long long ino = strtoull(p, &end, 10);
    if (end == p || *end) return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0) return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int lg_journal(void) { return lg_prio; }

void lg_setup(char role, int use_syslog, const char *ident) {
    lg_role = role;
    lg_syslog = use_syslog;
    lg_prio = stderr_is_journal();
    if (use_syslog) openlog(ident ? ident : "rwkvcast", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int lg_level_from_name(const char *name) {
    static const char *const names[] = {"debug", "verbose", "notice", "warning"};
    for (int i = 0; i < 4; i++) /* not "error": errors are always logged */
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

void lg_log_(int level, const char *module, const char *fmt, ...) {
    static const char lvlchar[] = ".-*#!";
    static const int syslog_map[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
    if (level < 0) level = 0;
    if (level > LG_ERROR) level = LG_ERROR;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t secs = tv.tv_sec;
    localtime_r(&secs, &tm);
    char ts[32];
    size_t n = strftime(ts, sizeof ts, "%d %b %H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03d", (int)(tv.tv_usec / 1000));
    /* syslog.h's LOG_* values are the sd-daemon priorities journald reads. */
    char prio[8] = "";
    if (lg_prio) snprintf(prio, sizeof prio, "<%d>", syslog_map[level]);
    fprintf(stderr, "%s%d:%c %s %c %s: %s\n", prio, (int)getpid(), lg_role, ts, lvlchar[level], module, msg);
    if (lg_syslog) syslog(syslog_map[level], "%s: %s", module, msg);
}

int64_t lg_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double lg_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void lg_rl_init(lg_ratelimit *rl, double per_sec, double burst) {
    rl->tokens = burst;
    rl->per_sec = per_sec;
    rl->burst = burst;
    rl->last_ns = lg_mono_ns();
    rl->suppressed = 0;
}

int lg_rl_allow(lg_ratelimit *rl) {
    int64_t now = lg_mono_ns();
    rl->tokens += (double)(now - rl->last_ns) * 1e-9 * rl->per_sec;
    if (rl->tokens > rl->burst) rl->tokens = rl->burst;
    rl->last_ns = now;
    if (rl->tokens >= 1.0) {
        rl->tokens -= 1.0;
        return 1;
    }
    rl->suppressed++;
    return 0;
}

const char *lg_escape(char *buf, size_t cap, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* U+0080..U+009F are C2 80..C2 9F in UTF-8: 8-bit terminal controls. */
        int c1 = c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f;
        int esc = c < 0x20 || c == 0x7f || c == '\\' || c == '\'' || c1;
        size_t need = esc ? (c1 ? 8 : (c == '\\' || c == '\'') ? 2 : 4) : 1;
        if (o + need + 4 > cap) {
            /* Room for "..." and the NUL is kept back. */
            if (cap >= 4) memcpy(buf + (o < cap - 4 ? o : cap - 4), "...", 4);
            else if (cap) buf[0] = 0;
            return buf;
        }
        if (!esc) {
            buf[o++] = (char)c;
        } else if (c == '\\' || c == '\'') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else {
            for (int k = 0; k < (c1 ? 2 : 1); k++) {
                unsigned char b = (unsigned char)s[i + (size_t)k];
                buf[o++] = '\\';
                buf[o++] = 'x';
                buf[o++] = hex[b >> 4];
                buf[o++] = hex[b & 15];
            }
            if (c1) i++;
        }
    }
    if (cap) buf[o < cap ? o : cap - 1] = 0;
    return buf;
}
