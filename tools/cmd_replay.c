/*
 * cmd_replay.c: `rwkvcast replay [-m MODEL] [--horizon] INPUT.csv`, the
 * daemon's engine (daemon/engine.h) run offline over one series (docs/PROTOCOL.md §5).
 *
 * Input: CSV read by common/textin.h (',', ';' or tab, detected; RFC 4180
 * quotes; blank lines skipped) with a header naming the timestamp and value
 * columns (the names `send` knows, cli_util.h: timestamp, time, t, ...;
 * value, v, y; other columns ignored). A malformed record (an unterminated
 * quote, say) stops the replay with "Error: FILE:LINE:COL: ...", exit 1,
 * after the rows before it. Output on stdout, one row per input row, in order:
 *   timestamp,value,yhat,lo,hi,anomaly_score,level,flag[,yhat_1,lo_1,hi_1,...]
 * timestamp and value are echoed as read (without surrounding blanks, quoted
 * as CSV when they hold a comma, a quote or a line break). yhat/lo/hi on row i are the
 * one-step forecast of row i made from rows < i (the engine's en_result.prev,
 * empty before the first forecast); anomaly_score and level judge row i;
 * --horizon appends the full H-step forecast made after row i.
 *
 * Rows the engine cannot take still get their output row (the contract is
 * exactly one output row per input row), flagged and never fed to the engine:
 *   flag ok         normal row
 *   flag missing    empty/NaN value: fed as missing (the engine keeps its
 *                   state and forecasts on); score and level are the last ones
 *   flag bad_value  unparseable or infinite value: treated like missing
 *   flag bad_time   unparseable timestamp: not fed
 *   flag old_time   timestamp not after the last accepted one: not fed
 * A row that is not fed still carries numbers: anomaly_score 0 (it was not
 * judged), the series' current level, and as yhat/lo/hi (and the --horizon
 * columns) the forecast standing from the last row that was fed, empty only
 * before the first forecast exists. Real exports repeat a timestamp around
 * clock changes; the daemon drops and counts such samples (old_timestamp).
 * Strictly causal: each row is pushed and flushed before the next is read,
 * and nothing looks at the whole file, so appending rows never changes
 * earlier output.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base.h"
#include "common/textin.h"
#include "daemon/engine.h"
#include "model/rwkv.h"
#include "tools/cli_util.h"
#include "tools/cmd.h"
#include "tools/rp.h"

/* The last engine result, copied out of the callback (its pointers die). */
typedef struct rp_last {
    int have;                      /* a result arrived for the current row */
    int have_prev;                 /* prev was non-NULL */
    float prev[RK_MAX_QUANT];      /* (Q) one-step forecast v was judged against */
    float score;                   /* anomaly score */
    int level;                     /* 0/1/2 */
    int H;                         /* horizons */
    float *yhat, *lo, *hi;         /* (H) full forecast after the row, owned */
} rp_last;

typedef struct rp_ctx {
    rp_last last; /* most recent result */
    int Q;        /* quantiles of the model */
} rp_ctx;

static void on_result(void *vctx, const en_result *r) {
    rp_ctx *c = vctx;
    rp_last *l = &c->last;
    l->have = 1;
    l->have_prev = r->prev != NULL;
    if (r->prev) memcpy(l->prev, r->prev, sizeof(float) * (size_t)c->Q);
    l->score = r->score;
    l->level = r->level;
    int H = r->H < l->H ? r->H : l->H;
    if (l->yhat && r->yhat && r->lo && r->hi) {
        memcpy(l->yhat, r->yhat, sizeof(float) * (size_t)H);
        memcpy(l->lo, r->lo, sizeof(float) * (size_t)H);
        memcpy(l->hi, r->hi, sizeof(float) * (size_t)H);
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: rwkvcast replay [-m MODEL] [--horizon] INPUT.csv|-\n\n"
            "Runs the daemon's engine over one series offline and writes, for every\n"
            "input row, timestamp,value,yhat,lo,hi,anomaly_score,level,flag to stdout.\n"
            "yhat/lo/hi are the one-step forecast of the row made from earlier rows.\n\n"
            "INPUT.csv ('-' = stdin) has a header naming a timestamp column (timestamp|time|t|\n"
            "ts|date|datetime) and a value column (value|v|y); fields are separated by ',',\n"
            "';' or a tab (seen in the header) and may be in double quotes.\n"
            TI_TIME_HELP
            "Rows that cannot be used keep their output row, with flag missing, bad_value,\n"
            "bad_time or old_time instead of ok.\n\n"
            "  -m, --model MODEL  weights file (default: $RWKVCAST_MODEL, the installed model,\n"
            "                     or model/default.rwkv; a random model if none exists)\n"
            "      --horizon      also write the full forecast made after each row\n"
            "                     (yhat_h,lo_h,hi_h for h = 1..H)\n"
            "  -h, --help         this text\n");
}

/* Echoes a field as read minus surrounding blanks, quoted as CSV if it needs it. */
static void put_field(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (strcspn(s, ",\"\r\n") >= len) {
        fwrite(s, 1, len, stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') putchar('"');
        putchar(s[i]);
    }
    putchar('"');
}

/* Reads the header: the timestamp and value columns into *ct, *cv. 0, or -1 (printed). */
static int read_header(ti_csv *in, int *ct, int *cv) {
    ti_row r;
    rc_err e = ti_csv_next(in, &r);
    if (e != RC_OK) {
        fprintf(stderr, "Error: %s\n", ti_csv_error(in));
        return -1;
    }
    if (r.n == 0) {
        fprintf(stderr, "Error: '%s' is empty (expected a header with timestamp,value).\n", ti_csv_label(in));
        return -1;
    }
    if ((*ct = cli_find_col(in, &r, cli_time_names, "timestamp")) == -2 ||
        (*cv = cli_find_col(in, &r, cli_value_names, "value")) == -2)
        return -1;
    if (*ct < 0 || *cv < 0) {
        fprintf(stderr, "Error: %s:%ld:1: The header needs a timestamp and a value column (e.g. timestamp,value).\n",
                ti_csv_label(in), r.line);
        return -1;
    }
    return 0;
}

int cmd_replay(int argc, char **argv) {
    ti_getopt g;
    const char *model_path = NULL, *input = NULL;
    int horizon = 0, rc = 1, c;
    if (ti_getopt_init(&g, "m|model= H/horizon h|help", 0)) return 2;
    while ((c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'H': horizon = 1; break;
        case 'h': usage(stdout); return 0;
        default: ti_opt_error(c, argv); usage(stderr); return 2;
        }
    }
    if (ti_opt_operands(argc, argv, 1)) return 2;
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    input = argv[optind];

    ti_csv *in = NULL;
    rk_model *m = NULL;
    en_engine *e = NULL;
    rp_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char errbuf[256] = "";
    int is_random = 0;

    rc_err oerr;
    in = ti_csv_open(input, 0, 0, &oerr, errbuf, sizeof errbuf);
    if (!in) {
        fprintf(stderr, "Error: %s\n", errbuf);
        goto err;
    }
    m = rp_open_model(model_path, &is_random, errbuf, sizeof errbuf);
    if (!m) {
        fprintf(stderr, "Error: %s\n", errbuf[0] ? errbuf : "Cannot load the model.");
        goto err;
    }
    if (is_random)
        fprintf(stderr,
                "Warning: No model file at '%s'; using a randomly initialized model "
                "(seed 1): forecasts are not trained.\n",
                en_default_model_path());
    ctx.Q = (int)m->dims.n_quant;
    ctx.last.H = (int)m->dims.n_horizon;
    ctx.last.yhat = rc_calloc((size_t)ctx.last.H * 3, sizeof(float));
    if (!ctx.last.yhat) {
        fprintf(stderr, "Error: Out of memory.\n");
        goto err;
    }
    ctx.last.lo = ctx.last.yhat + ctx.last.H;
    ctx.last.hi = ctx.last.lo + ctx.last.H;

    en_cfg cfg;
    en_cfg_default(&cfg);
    cfg.max_batch = 1;
    rc_err err = RC_OK;
    e = en_new(m, &cfg, 1, on_result, &ctx, &err);
    if (!e) {
        fprintf(stderr, "Error: Cannot create the engine (%s).\n", rc_strerror(err));
        goto err;
    }

    int ct, cv;
    if (read_header(in, &ct, &cv) != 0) goto err;
    fputs("timestamp,value,yhat,lo,hi,anomaly_score,level,flag", stdout);
    if (horizon)
        for (int h = 1; h <= ctx.last.H; h++) printf(",yhat_%d,lo_%d,hi_%d", h, h, h);
    putchar('\n');

    int Q = ctx.Q;
    ti_row r;
    rc_err re;
    while ((re = ti_csv_next(in, &r)) == RC_OK && r.n > 0) {
        const char *ts = ct < r.n ? r.f[ct].s : "";
        const char *vs = cv < r.n ? r.f[cv].s : "";
        double t, v = NAN;
        const char *flag = "ok";
        int fed = 0;
        ctx.last.have = 0;
        if (ti_parse_time(ts, &t, NULL) != RC_OK) {
            flag = "bad_time";
        } else {
            if (ti_is_missing(vs)) flag = "missing";
            else if (ti_parse_double(vs, &v) != RC_OK) flag = "bad_value", v = NAN;
            rc_err pe = en_push(e, 0, t, v);
            if (pe == RC_OK) {
                en_flush(e);
                fed = ctx.last.have;
            } else {
                flag = pe == RC_ERR_PROTO ? "old_time" : "bad_value";
            }
        }
        put_field(ts);
        putchar(',');
        put_field(vs);
        /* Not fed: the forecast standing from the last row that was. */
        const en_result *st = fed ? NULL : en_slot_last(e, 0);
        if (fed && ctx.last.have_prev)
            printf(",%.9g,%.9g,%.9g", ctx.last.prev[Q / 2], ctx.last.prev[0], ctx.last.prev[Q - 1]);
        else if (st)
            printf(",%.9g,%.9g,%.9g", st->yhat[0], st->lo[0], st->hi[0]);
        else
            fputs(",,,", stdout);
        if (fed)
            printf(",%.6f,%d,%s", (double)ctx.last.score, ctx.last.level, flag);
        else
            printf(",%.6f,%d,%s", 0.0, st ? st->level : 0, flag);
        if (horizon) {
            for (int h = 0; h < ctx.last.H; h++) {
                if (fed)
                    printf(",%.9g,%.9g,%.9g", ctx.last.yhat[h], ctx.last.lo[h], ctx.last.hi[h]);
                else if (st)
                    printf(",%.9g,%.9g,%.9g", st->yhat[h], st->lo[h], st->hi[h]);
                else
                    fputs(",,,", stdout);
            }
        }
        putchar('\n');
    }
    if (re != RC_OK) {
        /* The rows before it are out; a broken record ends the replay (see the top of the file). */
        fflush(stdout);
        fprintf(stderr, "Error: %s\n", ti_csv_error(in));
        goto err;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "Error: Writing the output failed (%s).\n", strerror(errno));
        goto err;
    }
    rc = 0;
err:
    if (e) en_free(e);
    rc_free(ctx.last.yhat);
    if (m) rk_model_free(m);
    ti_csv_close(in);
    return rc;
}
