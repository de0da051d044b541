/*
 * cmd_replay.c: `rwkvcast replay [-m MODEL] [--horizon] INPUT.csv`, the
 * daemon's engine (daemon/engine.h) run offline over one series (docs/PROTOCOL.md §5).
 *
 * Input: CSV with a header naming `timestamp` and `value` columns (',' or
 * ';' separated; other columns ignored). Output on stdout, one row per
 * input row, in order:
 *   timestamp,value,yhat,lo,hi,anomaly_score,level,flag[,yhat_1,lo_1,hi_1,...]
 * timestamp and value are echoed as read. yhat/lo/hi on row i are the
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
 *   flag bad_time   unparseable timestamp: skipped, forecast/score fields empty
 *   flag old_time   timestamp not after the last accepted one: skipped, empty
 * Strictly causal: each row is pushed and flushed before the next is read,
 * and nothing looks at the whole file, so appending rows never changes
 * earlier output.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base.h"
#include "daemon/engine.h"
#include "model/rwkv.h"
#include "tools/cmd.h"
#include "tools/rp.h"

#define RP_MAX_FIELDS 64

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
            "Usage: rwkvcast replay [-m MODEL] [--horizon] INPUT.csv\n\n"
            "Runs the daemon's engine over one series offline and writes, for every\n"
            "input row, timestamp,value,yhat,lo,hi,anomaly_score,level,flag to stdout.\n"
            "yhat/lo/hi are the one-step forecast of the row made from earlier rows.\n\n"
            "  -m MODEL    weights file (default: $RWKVCAST_MODEL, the installed model,\n"
            "              or model/default.rwkv; a random model if none exists)\n"
            "  --horizon   also write the full forecast made after each row\n"
            "              (yhat_h,lo_h,hi_h for h = 1..H)\n"
            "  -h, --help  this text\n");
}

static int find_col(char **f, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        const char *s = f[i];
        while (*s == ' ' || *s == '"') s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '"')) len--;
        if (len == strlen(name) && strncasecmp(s, name, len) == 0) return i;
    }
    return -1;
}

static void put_field(const char *s) {
    /* Echo as read, minus surrounding blanks; quote only if it needs it. */
    while (*s == ' ') s++;
    size_t len = strlen(s);
    while (len && s[len - 1] == ' ') len--;
    if (memchr(s, ',', len)) {
        putchar('"');
        for (size_t i = 0; i < len; i++)
            if (s[i] != '"') putchar(s[i]);
        putchar('"');
    } else {
        fwrite(s, 1, len, stdout);
    }
}

int cmd_replay(int argc, char **argv) {
    const char *model_path = NULL, *input = NULL;
    int horizon = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (!strcmp(argv[i], "--horizon")) {
            horizon = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != 0) {
            fprintf(stderr, "Error: Unknown option '%s'.\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!input) {
            input = argv[i];
        } else {
            fprintf(stderr, "Error: More than one input file ('%s').\n", argv[i]);
            return 2;
        }
    }
    if (!input) {
        usage(stderr);
        return 2;
    }

    FILE *in = NULL;
    rk_model *m = NULL;
    en_engine *e = NULL;
    char *line = NULL;
    size_t cap = 0;
    rp_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char errbuf[256] = "";
    int is_random = 0;

    in = strcmp(input, "-") ? fopen(input, "r") : stdin;
    if (!in) {
        fprintf(stderr, "Error: Cannot open '%s' (%s).\n", input, strerror(errno));
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

    /* Header: find the columns. */
    if (getline(&line, &cap, in) < 0) {
        fprintf(stderr, "Error: '%s' is empty (expected a header with timestamp,value).\n", input);
        goto err;
    }
    char sep = strchr(line, ',') ? ',' : strchr(line, ';') ? ';' : ',';
    char *f[RP_MAX_FIELDS];
    int nf = rp_split(line, sep, f, RP_MAX_FIELDS);
    int ct = find_col(f, nf, "timestamp"), cv = find_col(f, nf, "value");
    if (ct < 0 || cv < 0) {
        fprintf(stderr, "Error: '%s': the header needs 'timestamp' and 'value' columns.\n", input);
        goto err;
    }
    fputs("timestamp,value,yhat,lo,hi,anomaly_score,level,flag", stdout);
    if (horizon)
        for (int h = 1; h <= ctx.last.H; h++) printf(",yhat_%d,lo_%d,hi_%d", h, h, h);
    putchar('\n');

    int Q = ctx.Q;
    while (getline(&line, &cap, in) >= 0) {
        size_t ll = strlen(line);
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        nf = rp_split(line, sep, f, RP_MAX_FIELDS);
        const char *ts = ct < nf ? f[ct] : "";
        const char *vs = cv < nf ? f[cv] : "";
        double t, v;
        const char *flag = "ok";
        int fed = 0;
        ctx.last.have = 0;
        if (!rp_parse_time(ts, &t)) {
            flag = "bad_time";
        } else {
            int pv = rp_parse_value(vs, &v);
            if (pv == 0) {
                flag = "bad_value";
                v = NAN;
            } else if (pv == 2) {
                flag = "missing";
            }
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
        if (fed && ctx.last.have_prev)
            printf(",%.9g,%.9g,%.9g", ctx.last.prev[Q / 2], ctx.last.prev[0], ctx.last.prev[Q - 1]);
        else
            fputs(",,,", stdout);
        if (fed)
            printf(",%.6f,%d,%s", (double)ctx.last.score, ctx.last.level, flag);
        else
            printf(",,,%s", flag);
        if (horizon) {
            for (int h = 0; h < ctx.last.H; h++) {
                if (fed)
                    printf(",%.9g,%.9g,%.9g", ctx.last.yhat[h], ctx.last.lo[h], ctx.last.hi[h]);
                else
                    fputs(",,,", stdout);
            }
        }
        putchar('\n');
    }
    if (ferror(in)) {
        fprintf(stderr, "Error: Reading '%s' failed (%s).\n", input, strerror(errno));
        goto err;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "Error: Writing the output failed (%s).\n", strerror(errno));
        goto err;
    }
    rc = 0;
err:
    free(line); /* allocated by getline, not by us */
    if (e) en_free(e);
    rc_free(ctx.last.yhat);
    if (m) rk_model_free(m);
    if (in && in != stdin) fclose(in);
    return rc;
}
