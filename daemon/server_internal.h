/*
 * server_internal.h: the daemon's state (struct dm), shared by the four
 * files that make up rwkvcastd. Not part of any public API: only
 * daemon/server.c, ingest.c, snapshot.c, control.c and their unit tests
 * include it.
 *
 *   server.c    dm_    startup, loop wiring, signals, sd_notify, timers,
 *                      reload, shutdown (server.h; this header's functions)
 *   ingest.c    ig_    samples in, forecasts out (ingest.h)
 *   snapshot.c  sn_    checkpoints copied to the store in slices (snapshot.h)
 *   control.c   ct_    the control socket and its command table (control.h)
 *
 * Ownership: dm_core_open creates every object in the "Core" section and
 * dm_core_close frees them; the sockets are opened and closed by dm_run.
 * Each later section names the file that writes its fields; any of the
 * four may read them (control's stats reads nearly all). Nothing here is
 * allocated after startup.
 *
 * Threads: one thread, the event loop's, reads and writes all of it. The
 * engine's workers and the store's writer see only their own objects.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SERVER_INTERNAL_H
#define SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "config/config.h"
#include "connectors/curve.h"
#include "connectors/hsmon.h"
#include "connectors/wire.h"
#include "daemon/alerts.h"
#include "daemon/checkpoint.h"
#include "daemon/engine.h"
#include "daemon/history.h"
#include "daemon/eventloop.h"
#include "daemon/http.h"
#include "daemon/ingest.h"
#include "daemon/registry.h"
#include "model/rwkv.h"

typedef struct dm dm;

#define DM_CURVE_OUT CF_MAX_INPUTS         /* ZAP domain of the output's allow-list */
#define DM_CURVE_CTL (CF_MAX_INPUTS + 1)   /* of the control socket's */
#define DM_CURVE_LISTS (CF_MAX_INPUTS + 2) /* allow-lists */

struct dm {
    /* Core (server.c: dm_core_open / dm_core_close) */
    cf_config cfg;          /* active settings; dm_reload updates the reloadable ones */
    rk_model *model;        /* owned */
    en_engine *en;          /* owned; its result callback is ig_on_result */
    rg_registry *rg;        /* owned: series id <-> engine slot */
    ck_store *ck;           /* owned: the SQLite store and its writer thread */
    int lock_fd;            /* STATE_DB.lock, flock'd while this daemon owns the store; -1 none */
    ev_loop *ev;            /* owned */
    size_t blob_size;       /* bytes of one slot blob, en_blob_size */
    uint8_t *fetch_buf;     /* (blob_size) a blob read back from the store (ingest, `get`) */
    al_alerts al;           /* alert state per slot and silence deadlines (alerts.c) */
    /* Sockets (server.c: dm_run) */
    void *zctx;             /* ZeroMQ context, NULL until opened */
    void *in[CF_MAX_INPUTS];         /* ingest SUB/PULL sockets */
    void *in_ctx[CF_MAX_INPUTS][2];  /* (d, in[i]): ig_on_input's ctx for input i */
    int in_h[CF_MAX_INPUTS];         /* their ev handles */
    struct mq_client *mq_in[CF_MAX_INPUTS]; /* MQTT inputs (type mqtt), NULL for ZeroMQ ones */
    uint64_t mq_qfull_seen[CF_MAX_INPUTS];  /* their queue_full counts already booked as drops */
    struct mq_client *mq_out; /* MQTT output connection, NULL when mqtt.output.endpoint is "" */
    struct kg_state *kg;    /* Kafka group membership (kgroup.c), NULL without a kafka input */
    void *pub;              /* output PUB */
    void *rep;              /* control REP */
    int rep_h;              /* its ev handle; -1 without the socket (unit tests) */
    int sigpipe[2];         /* self-pipe: signal handler -> loop; -1 when closed */
    int engine_fd;          /* eventfd: a pipelined batch finished; -1 without a pipeline */
    /* CURVE (server.c; connectors/curve.h). Allow-list k is ZAP domain k:
     * input i is i, the output DM_CURVE_OUT, control DM_CURVE_CTL. */
    void *zap;              /* ZAP handler: REP on inproc://zeromq.zap.01; NULL without CURVE */
    cv_allow allow[DM_CURVE_LISTS];            /* per endpoint; n == 0: plain endpoint */
    uint64_t curve_rejected[DM_CURVE_LISTS + 1]; /* ZAP refusals per list; the last: unknown domain */
    hm_monitor hsmon[DM_CURVE_LISTS]; /* refused handshakes of each CURVE socket, all reasons; pair NULL: plain */
    int64_t redial_ns[DM_CURVE_LISTS]; /* monotonic ns to dial a connecting CURVE socket's peer again; 0 none */
    lg_ratelimit rl_curve;  /* log rate limit of the refusals */
    /* Ingest and publishing (ingest.c) */
    uint8_t *pub_buf;       /* (pub_cap) one encoded forecast */
    size_t pub_cap;         /* bytes */
    char topic[2 + MP_ID_MAX + 1]; /* "f.<series>" or "a.<series>" */
    double ingest_now;      /* wall clock when the payload being ingested was read, s */
    uint64_t frames;        /* ingest messages received */
    uint64_t bytes;         /* their payload bytes */
    uint64_t samples;       /* samples accepted into the engine */
    uint64_t missing;       /* of those, NaN values */
    uint64_t steps;         /* results the engine delivered */
    uint64_t published;     /* "f." messages ZeroMQ accepted */
    uint64_t alerts;        /* "a." messages sent (level changes) */
    uint64_t mq_published;  /* MQTT forecast messages the library took */
    char *mq_buf;           /* (mq_cap) one JSON forecast for the MQTT output; owned, dm_run */
    size_t mq_cap;          /* bytes */
    char mq_topic[64 + 16 + MP_ID_MAX + 1]; /* PREFIX KIND/<series> */
    uint64_t dropped[IG_DROP__COUNT]; /* inputs dropped, per reason (index 0 unused) */
    lg_ratelimit rl[IG_DROP__COUNT];  /* log rate limit per drop reason */
    uint64_t new_series;    /* series created fresh */
    uint64_t evicted;       /* series moved to the store to free a slot */
    uint64_t brought_back;  /* evicted series read back on their next sample */
    uint64_t model_reset;   /* stored states restarted: other model or unreadable */
    uint64_t restored;      /* series loaded from the store at startup */
    uint64_t expired;       /* series that left memory after series.idle_ttl */
    uint64_t rows_expired;  /* store rows deleted after series.idle_ttl */
    uint32_t *seen;         /* (max_series) seconds after start_ns a sample of the slot was last read */
    uint32_t seen_now;      /* that clock for the payload being ingested */
    int64_t start_ns;       /* monotonic ns at start: the seen clock's zero */
    /* Decoded samples whose registry lookup is under way (ingest.c's
     * look-ahead ring). Their ids point into the frame, so the ring is
     * emptied before the frame is closed. */
    mp_sample la[IG_LOOKAHEAD];     /* the samples, oldest at la_first */
    uint64_t la_hash[IG_LOOKAHEAD]; /* rg_hash of each id */
    unsigned la_first;      /* index of the oldest */
    unsigned la_n;          /* samples in the ring */
    /* Checkpoints (snapshot.c) */
    uint64_t ckpt_count;    /* checkpoints committed */
    uint64_t ckpt_fail;     /* jobs that failed (checkpoints and eviction-only jobs) */
    ck_result ckpt_last;    /* the last finished checkpoint */
    int ckpt_have_last;     /* ckpt_last is set */
    double ckpt_ok_at;      /* wall clock the last committed checkpoint ended, s; 0 before the first */
    int ckpt_want;          /* a checkpoint waits for the writer to be idle */
    int ckpt_full;          /* the next checkpoint writes every series (after a failure) */
    uint64_t ckpt_gen;      /* checkpoints begun so far (the in-flight one's number) */
    int job_is_ckpt;        /* the job in flight carries a snapshot (else only evictions) */
    int64_t flush_after_ns; /* monotonic ns before which evictions are not sent on their own (after a failure) */
    int snap_active;        /* a snapshot is being copied (between ck_begin and ck_seal) */
    uint32_t snap_cursor;   /* next slot to look at */
    int64_t snap_wait_ns;   /* monotonic ns when the cursor first stopped at a slot in flight, 0 if not */
    uint32_t snap_rows;     /* rows copied so far */
    int64_t snap_ns;        /* loop time spent copying this snapshot, ns */
    int64_t snap_slice_max_ns; /* longest slice of this snapshot, ns */
    double last_snapshot_s; /* loop time the last finished snapshot took, seconds */
    double last_slice_max_s;/* its longest slice (its worst ingest stall), seconds */
    /* Control (control.c) */
    uint8_t *ctl_buf;       /* (ctl_cap) one control reply; allocated by dm_core_open */
    size_t ctl_cap;         /* bytes */
    int ckpt_reply;         /* a client waits for checkpoint number reply_gen (REP paused) */
    uint64_t reply_gen;     /* the checkpoint that client waits for */
    uint64_t forgotten;     /* series dropped by `forget` while in memory */
    /* HTTP (http.c; recv_t and the histogram are written by ingest.c) */
    ht_server *ht;          /* owned; NULL when http.listen is "" */
    double *recv_t;         /* (max_series) wall clock the slot's last queued sample was read, s; NULL without HTTP */
    uint64_t lat_count[HT_LAT_BUCKETS + 1]; /* ingest-to-publish latencies per ht_lat_bounds bucket (last: above) */
    double lat_sum;         /* their sum, seconds */
    /* History (history.h; written by ingest.c, read by control.c) */
    hs_history *hs;         /* owned; NULL when history.series is "" */
    uint64_t hist_requests; /* `history` requests answered with ok */
    uint64_t hist_errors;   /* `history` requests refused (unknown series, no history, history off) */
    /* Daemon (server.c) */
    double started;         /* wall clock at start, seconds since the epoch */
    double restore_s;       /* reading the store at startup, seconds */
    double startup_s;       /* start to READY=1, seconds */
    double rate;            /* steps per second over the last sampling window */
    uint64_t rate_steps;    /* steps at the last sample */
    int64_t rate_ns;        /* monotonic time of the last sample, ns */
    int ckpt_timer;         /* ev timer id of the checkpoint tick; -1 when not armed */
    int stats_timer;        /* ev timer id of the stats log line; -1 when not armed */
    int stopping;           /* SIGTERM/SIGINT seen */
    double wd_interval;     /* seconds between WATCHDOG=1, 0 = off */
};

/*
 * Builds the core of a daemon in d (zero-filled by the caller): the model,
 * the engine, the registry, the store with every stored state restored into
 * the registry, the reply and staging buffers and the event loop (no
 * handlers yet). No sockets and no signals, so the unit tests can run the
 * control commands on a real core. Returns RC_OK, or the error of the
 * first step that failed (logged); d is then half built, and
 * dm_core_close frees whatever was made.
 */
rc_err dm_core_open(dm *d, const cf_config *cfg);
/* Frees what dm_core_open made (waits for the store's writer); d itself stays. */
void dm_core_close(dm *d);

/*
 * Reloads the configuration from d->cfg.path (the defaults when it is
 * empty) and applies the settings that can change while running: log
 * level, intervals, shutdown timeout, anomaly scoring. The others are
 * logged as needing a restart. On failure the running configuration is
 * kept and err (errlen bytes) holds the loader's message. Loop thread.
 */
rc_err dm_reload(dm *d, char *err, size_t errlen);

/* The socket of allow-list k (0 .. DM_CURVE_LISTS-1): its endpoint, and in
 * *kind "input", "output" or "control". Any thread that may read cfg. */
const char *dm_curve_socket(const dm *d, int k, const char **kind);

#endif
