/*
 * cmd_plot.c: `rwkvcast plot [-o OUT.png] [-m MODEL] INPUT.csv ...`: a PNG
 * (cairo) of one or more series run through the daemon's engine as
 * `rwkvcast replay` runs them (tools/cmd_replay.c), or with -e ENDPOINT of
 * series a running daemon keeps a history of (tools/plot_daemon.c, the
 * same rows the daemon computed; plus the forecast after the last sample
 * as a band ahead of it): per series a panel with
 * the values, the one-step forecast and its interval as a band, warn and
 * alert spans shaded behind, and below it the anomaly score with the
 * configured thresholds, on a UTC time axis with ticks at round times.
 *
 * Colours are opaque so a test can find them in the decoded PNG
 * (tests/e2e/test_ops.py): band PL_BAND, alert spans PL_ALERT, warn spans
 * PL_WARN, values PL_VALUE.
 *
 * SPDX-License-Identifier: MIT
 */
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "common/base.h"
#include "common/textin.h"
#include "daemon/anomaly.h"
#include "daemon/engine.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"
#include "tools/plot.h"
#include "tools/rp.h"

/* RGB 0..255 */
#define PL_BAND 0xc6dbef  /* forecast interval */
#define PL_ALERT 0xfcd0d0 /* level 2 spans */
#define PL_WARN 0xfff0c0  /* level 1 spans */
#define PL_VALUE 0x08306b /* observed values */
#define PL_YHAT 0x2171b5  /* median forecast */
#define PL_SCORE 0xcb181d /* anomaly score */

typedef struct pl_last {
    int have, have_prev, Q, level;
    float prev[RK_MAX_QUANT], score;
} pl_last;

static void on_result(void *vctx, const en_result *r) {
    pl_last *l = vctx;
    l->have = 1;
    l->have_prev = r->prev != NULL;
    if (r->prev) memcpy(l->prev, r->prev, sizeof(float) * (size_t)l->Q);
    l->score = r->score;
    l->level = r->level;
}

/* Runs one CSV through a fresh engine (as replay does); 0 on error (printed). */
static int load(const char *path, rk_model *m, pl_series *s) {
    char errbuf[256] = "";
    rc_err err;
    ti_csv *in = ti_csv_open(path, 0, 0, &err, errbuf, sizeof errbuf);
    if (!in) { fprintf(stderr, "Error: %s\n", errbuf); return 0; }
    pl_last last = {.Q = (int)m->dims.n_quant};
    en_cfg cfg;
    en_cfg_default(&cfg);
    cfg.max_batch = 1;
    en_engine *e = en_new(m, &cfg, 1, on_result, &last, &err);
    int ok = 0, ct, cv;
    ti_row r;
    if (!e) { fprintf(stderr, "Error: Cannot create the engine (%s).\n", rc_strerror(err)); goto out; }
    if (ti_csv_next(in, &r) != RC_OK || r.n == 0) {
        fprintf(stderr, "Error: '%s' has no header (expected timestamp,value).\n", path);
        goto out;
    }
    if ((ct = cli_find_col(in, &r, cli_time_names, "timestamp")) == -2 ||
        (cv = cli_find_col(in, &r, cli_value_names, "value")) == -2)
        goto out;
    if (ct < 0 || cv < 0) {
        fprintf(stderr, "Error: %s:%ld:1: The header needs a timestamp and a value column (e.g. timestamp,value).\n",
                path, r.line);
        goto out;
    }
    rc_err re;
    while ((re = ti_csv_next(in, &r)) == RC_OK && r.n > 0) {
        double t, v = NAN;
        if (ti_parse_time(ct < r.n ? r.f[ct].s : "", &t, NULL) != RC_OK) continue;
        const char *vs = cv < r.n ? r.f[cv].s : "";
        if (!ti_is_missing(vs) && ti_parse_double(vs, &v) != RC_OK) v = NAN;
        last.have = 0;
        if (en_push(e, 0, t, v) != RC_OK) continue; /* old or bad time: not fed, not drawn */
        en_flush(e);
        if (!last.have) continue;
        if (!pl_grow(s)) { fprintf(stderr, "Error: Out of memory.\n"); goto out; }
        size_t i = s->n++;
        s->t[i] = t;
        s->v[i] = v;
        int Q = last.Q;
        s->yhat[i] = last.have_prev ? last.prev[Q / 2] : NAN;
        s->lo[i] = last.have_prev ? last.prev[0] : NAN;
        s->hi[i] = last.have_prev ? last.prev[Q - 1] : NAN;
        s->score[i] = last.score;
        s->level[i] = (int8_t)last.level;
    }
    if (re != RC_OK) { fprintf(stderr, "Error: %s\n", ti_csv_error(in)); goto out; }
    if (s->n < 2) { fprintf(stderr, "Error: '%s' has fewer than two usable rows to plot.\n", path); goto out; }
    an_cfg an;
    an_cfg_default(&an);
    s->warn = an.warn;
    s->alert = an.alert;
    ok = 1;
out:
    if (e) en_free(e);
    ti_csv_close(in);
    return ok;
}

/* ---- Drawing ---- */

static void rgb(cairo_t *cr, unsigned c) {
    cairo_set_source_rgb(cr, (c >> 16 & 255) / 255.0, (c >> 8 & 255) / 255.0, (c & 255) / 255.0);
}

typedef struct pl_box {
    double x, y, w, h;    /* pixels */
    double t0, t1;        /* time range, s */
    double y0, y1;        /* value range */
} pl_box;

static double px(const pl_box *b, double t) { return b->x + (t - b->t0) / (b->t1 - b->t0) * b->w; }
static double py(const pl_box *b, double v) { return b->y + b->h - (v - b->y0) / (b->y1 - b->y0) * b->h; }

/* A round tick step (s) that gives about 6-10 ticks over span seconds. */
static double tick_step(double span) {
    static const double steps[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                                   43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400,
                                   365 * 86400.0};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / steps[i] <= 10) return steps[i];
    return 365 * 86400.0 * ceil(span / (365 * 86400.0 * 10));
}

static void time_axis(cairo_t *cr, const pl_box *b, int labels) {
    double step = tick_step(b->t1 - b->t0);
    const char *fmt = step >= 86400 ? "%Y-%m-%d" : step >= 60 ? "%m-%d %H:%M" : "%H:%M:%S";
    cairo_set_font_size(cr, 11);
    for (double t = ceil(b->t0 / step) * step; t <= b->t1; t += step) {
        double x = px(b, t);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, floor(x) + 0.5, b->y);
        cairo_line_to(cr, floor(x) + 0.5, b->y + b->h);
        cairo_stroke(cr);
        if (!labels) continue;
        char buf[32];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(buf, sizeof buf, fmt, &tm);
        cairo_text_extents_t ext;
        cairo_text_extents(cr, buf, &ext);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, x - ext.width / 2, b->y + b->h + 15);
        cairo_show_text(cr, buf);
    }
}

static void value_axis(cairo_t *cr, const pl_box *b, int n) {
    cairo_set_font_size(cr, 11);
    for (int i = 0; i <= n; i++) {
        double v = b->y0 + (b->y1 - b->y0) * i / n, y = py(b, v);
        cairo_set_source_rgb(cr, 0.92, 0.92, 0.92);
        cairo_move_to(cr, b->x, floor(y) + 0.5);
        cairo_line_to(cr, b->x + b->w, floor(y) + 0.5);
        cairo_stroke(cr);
        char buf[32];
        snprintf(buf, sizeof buf, "%.4g", v);
        cairo_text_extents_t ext;
        cairo_text_extents(cr, buf, &ext);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, b->x - ext.width - 6, y + 4);
        cairo_show_text(cr, buf);
    }
}

/* Shades the rows at level `lv` (2: alert; 1: warn) as vertical spans. */
static void spans(cairo_t *cr, const pl_box *b, const pl_series *s, int lv, unsigned color) {
    rgb(cr, color);
    for (size_t i = 0; i < s->n; i++) {
        if (s->level[i] != lv) continue;
        size_t j = i;
        while (j + 1 < s->n && s->level[j + 1] == lv) j++;
        double x0 = px(b, s->t[i]), x1 = j + 1 < s->n ? px(b, s->t[j + 1]) : px(b, s->t[j]) + 1;
        if (x1 - x0 < 2) x1 = x0 + 2;
        cairo_rectangle(cr, floor(x0), b->y, ceil(x1) - floor(x0), b->h);
        cairo_fill(cr);
        i = j;
    }
}

static void line(cairo_t *cr, const pl_box *b, const pl_series *s, const float *f, const double *d, unsigned color,
                 double width) {
    rgb(cr, color);
    cairo_set_line_width(cr, width);
    int pen = 0;
    for (size_t i = 0; i < s->n; i++) {
        double v = f ? f[i] : d[i];
        if (!isfinite(v)) { pen = 0; continue; }
        if (pen) cairo_line_to(cr, px(b, s->t[i]), py(b, v));
        else cairo_move_to(cr, px(b, s->t[i]), py(b, v));
        pen = 1;
    }
    cairo_stroke(cr);
}

/* A band between lo and hi over points (t[i], lo[i], hi[i]), i < n, in runs
 * of finite bounds. */
static void band(cairo_t *cr, const pl_box *b, const double *t, const float *lo, const float *hi, size_t n) {
    for (size_t i = 0; i < n;) {
        while (i < n && !(isfinite(lo[i]) && isfinite(hi[i]))) i++;
        size_t j = i;
        while (j < n && isfinite(lo[j]) && isfinite(hi[j])) j++;
        if (j > i + 1) {
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
            cairo_move_to(cr, px(b, t[i]), py(b, lo[i]));
            for (size_t k = i + 1; k < j; k++) cairo_line_to(cr, px(b, t[k]), py(b, lo[k]));
            for (size_t k = j; k-- > i;) cairo_line_to(cr, px(b, t[k]), py(b, hi[k]));
            cairo_close_path(cr);
            cairo_fill(cr);
            cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
        }
        i = j;
    }
}

/* The forecast after the last row (from a daemon): its band from the last
 * row on, and its median dashed. */
static void ahead(cairo_t *cr, const pl_box *b, const pl_series *s) {
    if (s->n_ahead < 1) return;
    size_t n = (size_t)s->n_ahead + 1;
    double t[PL_AHEAD_MAX + 1];
    float lo[PL_AHEAD_MAX + 1], hi[PL_AHEAD_MAX + 1], y[PL_AHEAD_MAX + 1];
    /* Starts at the last value, so the band joins the line it continues. */
    t[0] = s->t[s->n - 1];
    lo[0] = hi[0] = y[0] = (float)s->v[s->n - 1];
    memcpy(t + 1, s->ahead_t, (n - 1) * sizeof *t);
    memcpy(lo + 1, s->ahead_lo, (n - 1) * sizeof *lo);
    memcpy(hi + 1, s->ahead_hi, (n - 1) * sizeof *hi);
    memcpy(y + 1, s->ahead_yhat, (n - 1) * sizeof *y);
    rgb(cr, PL_BAND);
    band(cr, b, t, lo, hi, n);
    rgb(cr, PL_YHAT);
    cairo_set_line_width(cr, 1.0);
    double dash[] = {4, 3};
    cairo_set_dash(cr, dash, 2, 0);
    int pen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) { pen = 0; continue; }
        if (pen) cairo_line_to(cr, px(b, t[i]), py(b, y[i]));
        else cairo_move_to(cr, px(b, t[i]), py(b, y[i]));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
}

static void draw_series(cairo_t *cr, const pl_series *s, double top, double W, double ph, double sh) {
    double lm = 70, rm = 20;
    double t1 = s->n_ahead > 0 ? fmax(s->t[s->n - 1], s->ahead_t[s->n_ahead - 1]) : s->t[s->n - 1];
    pl_box b = {lm, top + 28, W - lm - rm, ph, s->t[0], t1, INFINITY, -INFINITY};
    if (!(b.t1 > b.t0)) b.t1 = b.t0 + 1;
    for (size_t i = 0; i < s->n; i++) {
        double xs[3] = {s->v[i], s->lo[i], s->hi[i]};
        for (int k = 0; k < 3; k++)
            if (isfinite(xs[k])) { b.y0 = fmin(b.y0, xs[k]); b.y1 = fmax(b.y1, xs[k]); }
    }
    for (int i = 0; i < s->n_ahead; i++) {
        double xs[2] = {s->ahead_lo[i], s->ahead_hi[i]};
        for (int k = 0; k < 2; k++)
            if (isfinite(xs[k])) { b.y0 = fmin(b.y0, xs[k]); b.y1 = fmax(b.y1, xs[k]); }
    }
    if (!(b.y1 > b.y0)) { b.y0 -= 1; b.y1 += 1; }
    double pad = (b.y1 - b.y0) * 0.05;
    b.y0 -= pad;
    b.y1 += pad;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 14);
    cairo_move_to(cr, lm, top + 18);
    char title[512];
    size_t alerts = 0;
    for (size_t i = 0; i < s->n; i++) alerts += s->level[i] == 2 && (i == 0 || s->level[i - 1] != 2);
    const char *base = strrchr(s->name, '/');
    if (s->from_daemon)
        snprintf(title, sizeof title, "%.255s: last %zu samples (daemon history), %zu alert span%s; band: one-step "
                 "80%% interval%s", s->name, s->n, alerts, alerts == 1 ? "" : "s",
                 s->n_ahead ? ", then the forecast ahead" : "");
    else
        snprintf(title, sizeof title, "%.255s: %zu samples, %zu alert span%s; band: one-step 80%% interval",
                 base ? base + 1 : s->name, s->n, alerts, alerts == 1 ? "" : "s");
    cairo_show_text(cr, title);
    /* Clip to the plot box: a wild forecast never paints over the axes. */
    cairo_save(cr);
    cairo_rectangle(cr, b.x, b.y, b.w, b.h);
    cairo_clip(cr);
    spans(cr, &b, s, 1, PL_WARN);
    spans(cr, &b, s, 2, PL_ALERT);
    time_axis(cr, &b, 0);
    /* The band: lo forward, hi backward, over each run of rows that has one. */
    rgb(cr, PL_BAND);
    band(cr, &b, s->t, s->lo, s->hi, s->n);
    ahead(cr, &b, s);
    line(cr, &b, s, s->yhat, NULL, PL_YHAT, 1.0);
    line(cr, &b, s, NULL, s->v, PL_VALUE, 1.4);
    cairo_restore(cr);
    value_axis(cr, &b, 4);
    time_axis(cr, &b, 1);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, b.x + 0.5, b.y + 0.5, b.w - 1, b.h - 1);
    cairo_stroke(cr);

    /* Score panel, 0..1, with the warn and alert thresholds. */
    pl_box c = {lm, b.y + b.h + 26, b.w, sh, b.t0, b.t1, 0, 1};
    cairo_save(cr);
    cairo_rectangle(cr, c.x, c.y, c.w, c.h);
    cairo_clip(cr);
    spans(cr, &c, s, 1, PL_WARN);
    spans(cr, &c, s, 2, PL_ALERT);
    double th[2] = {s->warn, s->alert};
    for (int k = 0; k < 2; k++) {
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        double dash[] = {4, 3};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, c.x, py(&c, th[k]));
        cairo_line_to(cr, c.x + c.w, py(&c, th[k]));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    line(cr, &c, s, s->score, NULL, PL_SCORE, 1.0);
    cairo_restore(cr);
    value_axis(cr, &c, 2);
    time_axis(cr, &c, 1);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    cairo_rectangle(cr, c.x + 0.5, c.y + 0.5, c.w - 1, c.h - 1);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_move_to(cr, 8, c.y + 12);
    cairo_set_font_size(cr, 11);
    cairo_show_text(cr, "score");
}

static void usage(FILE *f) {
    fprintf(f, "Usage: rwkvcast plot [-o OUT.png] [-m MODEL] [--width PX] INPUT.csv [INPUT.csv ...]\n"
               "       rwkvcast plot -e ENDPOINT [-t MS] [-o OUT.png] [--width PX] SERIES [SERIES ...]\n\n"
               "Runs each timestamp,value CSV through the daemon's engine (as `rwkvcast replay`\n"
               "does) and draws one panel per series into a PNG: the values, the one-step\n"
               "forecast and its 80%% interval as a band, warn and alert spans shaded, and below\n"
               "it the anomaly score with the warn and alert thresholds; time axis in UTC.\n"
               "With -e, the series are read from a running rwkvcastd instead: the recent\n"
               "samples it keeps of series matching its 'history.series' pattern (control\n"
               "command 'history'), as the daemon scored them, and the forecast it made after\n"
               "the last one (command 'get') as a band ahead.\n\n"
               "  -o, --out FILE       PNG to write (default plot.png)\n"
               "  -m, --model MODEL    weights file (default: as for replay; CSV mode only)\n"
               "      --width PX       image width in pixels, 400..8000 (default 1200)\n"
               "  -e, --endpoint EP    the daemon's control endpoint (e.g. ipc:///run/rwkvcast/control.sock);\n"
               "                       the operands are then series ids\n"
               "  -t, --timeout MS     with -e: give up on a reply after MS milliseconds (default 5000)\n"
               CLI_CURVE_HELP
               "  -h, --help           this text\n");
}

/* Fills s[0..n) from the daemon at endpoint; 0 or -1 (printed). */
static int fetch_all(const char *endpoint, long timeout, pl_series *s, int n) {
    void *ctx = NULL;
    void *sock = cli_socket_open(&ctx, ZMQ_REQ, endpoint, 0, 0);
    int rc = sock ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t len = strlen(s[i].name);
        if (len == 0 || len > 255) {
            fprintf(stderr, "Error: Invalid series id '%.64s%s': 1..255 bytes.\n", s[i].name, len > 64 ? "..." : "");
            rc = -1;
            break;
        }
        rc = pl_fetch(sock, endpoint, timeout, &s[i]);
    }
    cli_socket_close(ctx, sock, 0);
    return rc;
}

int cmd_plot(int argc, char **argv) {
    ti_getopt g;
    const char *out = "plot.png", *model_path = NULL, *endpoint = NULL;
    long width = 1200, timeout = 5000;
    int c;
    if (ti_getopt_init(&g, "o|out= m|model= W/width= e|endpoint= t|timeout= " CLI_CURVE_SPEC "h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        if (cli_curve_option(c, optarg)) continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': model_path = optarg; break;
        case 'e': endpoint = optarg; break;
        case 't':
            if (ti_opt_long("--timeout", optarg, 1, INT_MAX, &timeout)) return 2;
            break;
        case 'W':
            if (ti_opt_long("--width", optarg, 400, 8000, &width)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    int n = argc - optind;
    if (n < 1) { usage(stderr); return 2; }
    if (n > 16) { fprintf(stderr, "Error: At most 16 series per plot (%d given).\n", n); return 2; }
    if (endpoint && model_path) {
        fprintf(stderr, "Error: '--model' is for CSV input; with '--endpoint' the daemon's model made the rows.\n");
        return 2;
    }
    char errbuf[256] = "";
    int is_random = 0, rc = 1;
    rk_model *m = NULL;
    if (!endpoint) {
        m = rp_open_model(model_path, &is_random, errbuf, sizeof errbuf);
        if (!m) { fprintf(stderr, "Error: %s\n", errbuf[0] ? errbuf : "Cannot load the model."); return 1; }
        if (is_random)
            fprintf(stderr, "Warning: No model file at '%s'; using a randomly initialized model (seed 1).\n",
                    en_default_model_path());
    }
    pl_series s[16];
    memset(s, 0, sizeof s);
    cairo_surface_t *sf = NULL;
    cairo_t *cr = NULL;
    for (int i = 0; i < n; i++) s[i].name = argv[optind + i];
    if (endpoint) {
        if (fetch_all(endpoint, timeout, s, n)) goto out;
    } else {
        for (int i = 0; i < n; i++)
            if (!load(s[i].name, m, &s[i])) goto out;
    }
    double ph = 260, sh = 80, per = 28 + ph + 26 + sh + 30;
    int H = (int)(per * n + 10);
    sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)width, H);
    cr = cairo_create(sf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int i = 0; i < n; i++) draw_series(cr, &s[i], 5 + per * i, (double)width, ph, sh);
    cairo_surface_flush(sf);
    cairo_status_t st = cairo_surface_write_to_png(sf, out);
    if (st != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "Error: Cannot write '%s': %s.\n", out, cairo_status_to_string(st));
        goto out;
    }
    fprintf(stderr, "plot: %d series, %ld x %d px, written to '%s'\n", n, width, H, out);
    rc = 0;
out:
    if (cr) cairo_destroy(cr);
    if (sf) cairo_surface_destroy(sf);
    for (int i = 0; i < n; i++) pl_series_free(&s[i]);
    rk_model_free(m);
    /* cairo keeps the font it looked up (and fontconfig's pattern) cached
     * for the process; release them so leak checkers see a clean exit. */
    cairo_debug_reset_static_data();
    FcFini();
    return rc;
}
