/*
 * control_fuzz.c: libFuzzer target for the control API's request path: the
 * bytes of one request frame through ct_handle (the parser, the command
 * table and every handler's argument checks) on a real daemon core (random
 * weights, a store in a temp dir), as ct_on_socket runs it for a
 * single-frame request, with history on and four series in memory.
 * Invariants: no crash, no leak, and a reply that is one msgpack map every
 * time (the socket must always answer a REQ client).
 * Seeds: tests/fuzz/corpus/control/. Run with `make fuzz`.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "connectors/wire.h"
#include "daemon/control.h"
#include "daemon/ingest.h"
#include "daemon/server_internal.h"

static dm *d;
static uint8_t reply[512 * 1024];
static char dir[64] = "/tmp/ct_fuzzXXXXXX";

/* libFuzzer ends with exit(): the store and its temp dir go with it. */
static void cleanup(void) {
    if (!d) return;
    dm_core_close(d);
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void setup(void) {
    /* No model file: random weights, which is all the commands need. */
    setenv("RWKVCAST_MODEL", "/nonexistent/default.rwkv", 1);
    if (!mkdtemp(dir)) abort();
    static cf_config cfg;
    cf_default(&cfg);
    cfg.log_level = LG_WARNING + 1;
    cfg.max_series = 64;
    cfg.threads = 1;
    cfg.pipeline = 0;
    snprintf(cfg.state_db, sizeof cfg.state_db, "%s/state.db", dir);
    /* History on, with series in each of its states: a ring (sa, sb), every
     * ring taken (sc), not matching (x). */
    snprintf(cfg.history_series, sizeof cfg.history_series, "s*");
    cfg.history_max_series = 2;
    cfg.history_length = 8;
    d = calloc(1, sizeof *d);
    if (!d || dm_core_open(d, &cfg) != RC_OK) abort();
    atexit(cleanup);
    static const char *const ids[] = {"sa", "sb", "sc", "x"};
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < 4; i++) {
            uint8_t b[64];
            mp_wr p;
            mp_wr_init(&p, b, sizeof b);
            mp_w_map(&p, 3);
            mp_w_kv_str(&p, "s", ids[i]);
            mp_w_kv_f64(&p, "t", 1000 + k);
            mp_w_kv_f64(&p, "v", k);
            ig_ingest_payload(d, p.buf, p.len);
        }
    en_flush(d->en);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!d) setup();
    mp_wr w;
    mp_wr_init(&w, reply, sizeof reply);
    ct_status st = ct_handle(d, data, size, &w);
    if (st == CT_REPLY) {
        /* Every answered request gets exactly one map. */
        mp_rd r;
        mp_obj o;
        mp_rd_init(&r, reply, w.len);
        if (w.overflow || mp_next(&r, &o) != RC_OK || o.type != MP_MAP) abort();
    }
    return 0;
}
