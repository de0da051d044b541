/*
 * clicsv_fuzz.c: libFuzzer target for the CSV paths of `rwkvcast send` and
 * `rwkvcast replay`, run whole and in-process (cmd_send, cmd_replay): the
 * header and column layout detection, the per-row checks (series ids,
 * timestamps, values, column counts), batching, and for replay the rows fed
 * to the daemon's engine. The first byte picks the command and a few
 * options; the rest is the file, written to one scratch file.
 *   send: PUB to an ipc endpoint nobody listens on, --wait 0 (nothing
 *         blocks; ZeroMQ drops what no subscriber asked for); bit 1 adds
 *         --batch 7, bit 2 --topic, bit 3 --series.
 *   replay: a tiny random model written once at start (-m), bit 1 adds
 *         --horizon.
 * Invariants: the command returns 0, 1 or 2 (never crashes or hangs; the
 * harness's timeout catches a loop), and frees what it allocated (our heap
 * counter is back where it was; LeakSanitizer sees the rest). stdout goes
 * to /dev/null.
 * Seeds: tests/fuzz/corpus/clicsv/.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base.h"
#include "model/features.h"
#include "model/rwkv.h"
#include "tools/cmd.h"

static char csv[64], model[64], endpoint[96];

/* A 1-layer, 8-channel model: replay's per-row cost is then the CSV's. */
static void make_model(void) {
    rc_err err;
    rk_dims d = rk_dims_default(FT_NFEAT);
    d.n_layer = 1;
    d.d_model = 8;
    rk_model *m = rk_model_new(&d, &err);
    if (!m) abort();
    ft_cfg fc;
    ft_cfg_default(&fc);
    fc.n_quant = d.n_quant;
    ft_cfg_to_meta(&fc, &m->meta);
    rk_model_init_random(m, 1);
    if (rk_model_save(m, model) != RC_OK) abort();
    rk_model_free(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    int pid = (int)getpid();
    snprintf(csv, sizeof csv, "/dev/shm/clicsv_fuzz_%d.csv", pid);
    snprintf(model, sizeof model, "/tmp/clicsv_fuzz_%d.rwkv", pid);
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/clicsv_fuzz_%d.nobody", pid);
    make_model();
    if (!freopen("/dev/null", "w", stdout)) abort();
    return 0;
}

static int put_file(const uint8_t *data, size_t size) {
    FILE *f = fopen(csv, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || !put_file(data + 1, size - 1)) return 0;
    uint8_t mode = data[0];
    char *argv[16];
    int argc = 0;
    size_t heap = rc_mem_used();
    if (mode & 1) {
        argv[argc++] = "send";
        argv[argc++] = "-q";
        argv[argc++] = "-w";
        argv[argc++] = "0";
        argv[argc++] = "-e";
        argv[argc++] = endpoint;
        if (mode & 2) { argv[argc++] = "--batch"; argv[argc++] = "7"; }
        if (mode & 4) argv[argc++] = "--topic";
        if (mode & 8) { argv[argc++] = "--series"; argv[argc++] = "fuzz"; }
    } else {
        argv[argc++] = "replay";
        argv[argc++] = "-m";
        argv[argc++] = model;
        if (mode & 2) argv[argc++] = "--horizon";
    }
    argv[argc++] = csv;
    argv[argc] = NULL;
    optind = 0; /* a full getopt reset (glibc) before every command */
    int rc = (mode & 1) ? cmd_send(argc, argv) : cmd_replay(argc, argv);
    if (rc < 0 || rc > 2) abort();
    if (rc_mem_used() != heap) abort();
    return 0;
}
