/*
 * server.c: rwkvcastd's wiring (server.h). Builds the core (model, engine,
 * registry, store, event loop), opens the sockets, hooks the other three
 * files' handlers into the loop, and runs it until a stop signal:
 *
 *   ingest sockets -> ig_on_input        (ingest.c)
 *   engine results -> ig_on_result       (ingest.c: publishes on PUB)
 *   control socket -> ct_on_socket       (control.c)
 *   before sleep   -> en_poll, collect a finished store job, sn_advance
 *                                        (snapshot.c: one checkpoint slice)
 *   timers         -> checkpoint, stats log line, steps/s sampler, watchdog,
 *                     silence deadlines (alerts.c)
 *   self-pipe      -> SIGHUP reload, SIGTERM/SIGINT stop
 *
 * and the rest of a daemon's life: sd_notify, config reload, the final
 * checkpoint and cleanup.
 *
 * SPDX-License-Identifier: MIT
 */
#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/textin.h"
#include "connectors/mqtt.h"
#include "connectors/sockets.h"
#include "daemon/control.h"
#include "daemon/ingest.h"
#include "daemon/kgroup.h"
#include "daemon/server_internal.h"
#include "daemon/snapshot.h"
#include "model/features.h"

/* ---- sd_notify ---- */

static void notify(const char *msg) {
#ifdef HAVE_LIBSYSTEMD
    sd_notify(0, msg);
#else
    /* The notify protocol is one datagram to $NOTIFY_SOCKET ('@' = abstract). */
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path) return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
#endif
}

/* ---- Signals ---- */

/* The handler's only state: a signal handler cannot be given a context. */
static int sig_fd = -1;

static void on_signal(int sig) {
    int saved = errno;
    char c = sig == SIGHUP ? 'H' : 'T';
    if (sig_fd >= 0) (void)!write(sig_fd, &c, 1);
    errno = saved;
}

static void on_sigpipe(ev_loop *l, void *ctx) {
    dm *d = ctx;
    char buf[64];
    ssize_t n = read(d->sigpipe[0], buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'H') {
            char err[1024];
            LOG(LG_NOTICE, "daemon", "SIGHUP: reloading the configuration.");
            notify("RELOADING=1");
            dm_reload(d, err, sizeof err);
            notify("READY=1");
        } else if (!d->stopping) {
            LOG(LG_NOTICE, "daemon", "Stop signal: stopping intake, writing the final checkpoint.");
            d->stopping = 1;
            ev_stop(l);
        }
    }
}

static rc_err setup_signals(dm *d) {
    if (pipe(d->sigpipe) != 0) return RC_ERR_IO;
    for (int i = 0; i < 2; i++) {
        fcntl(d->sigpipe[i], F_SETFL, fcntl(d->sigpipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(d->sigpipe[i], F_SETFD, FD_CLOEXEC);
    }
    sig_fd = d->sigpipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return RC_OK;
}

/* ---- Loop hooks ---- */

/* A store job finished: book it, and answer a client waiting for it. */
static void checkpoint_done(dm *d, const ck_result *r) {
    if (sn_done(d, r)) ct_checkpoint_done(d, r);
}

/* A batch the engine stepped while the loop slept: deliver (publish) its
 * results and hand over what has queued since. */
static void on_engine(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    uint64_t n;
    ssize_t r = read(d->engine_fd, &n, sizeof n);
    (void)r; /* EAGAIN: already drained */
    en_poll(d->en);
}

static void before_sleep(ev_loop *l, void *ctx) {
    dm *d = ctx;
    /* Hands the queued samples over; with the pipeline, without waiting for
     * them: the engine steps while the loop sleeps, and on_engine publishes. */
    en_poll(d->en);
    ck_result r;
    if (ck_poll(d->ck, &r)) checkpoint_done(d, &r);
    ev_set_max_wait(l, sn_advance(d));
}

/* ---- Timers ---- */

static double ckpt_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    /* Kafka: changelog first, offsets committed once it is acknowledged. */
    kg_checkpoint(d);
    sn_start(d);
    return d->cfg.checkpoint_interval;
}

static void redial(dm *d);

static double rate_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    redial(d);
    int64_t now = lg_mono_ns();
    double dt = (double)(now - d->rate_ns) * 1e-9;
    if (dt > 0) d->rate = (double)(d->steps - d->rate_steps) / dt;
    d->rate_steps = d->steps;
    d->rate_ns = now;
    /* `systemctl status` shows this line; every 5 s is plenty. */
    static int tick;
    if (++tick % 5 == 0 && getenv("NOTIFY_SOCKET")) {
        char msg[160];
        snprintf(msg, sizeof msg, "STATUS=%u series, %.0f steps/s, %llu dropped, %llu checkpoints",
                 rg_count(d->rg), d->rate, (unsigned long long)ig_dropped_total(d),
                 (unsigned long long)d->ckpt_count);
        notify(msg);
    }
    return 1.0;
}

static double stats_tick(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    if (d->cfg.stats_interval <= 0) return 60; /* re-checked after a reload */
    LOG(LG_NOTICE, "stats", "series %u, received %llu, decoded %llu, dropped %llu, steps/s %.0f, "
        "published %llu, checkpoints %llu (%llu failed)", rg_count(d->rg), (unsigned long long)d->frames,
        (unsigned long long)d->samples, (unsigned long long)ig_dropped_total(d), d->rate,
        (unsigned long long)d->published, (unsigned long long)d->ckpt_count, (unsigned long long)d->ckpt_fail);
    return d->cfg.stats_interval;
}

/* series.idle_ttl: idle series leave memory, a bounded number per second. */
static double retention_tick(ev_loop *l, void *ctx) {
    (void)l;
    ig_expire_idle(ctx, 4096);
    return 1.0;
}

static double watchdog_tick(ev_loop *l, void *ctx) {
    (void)l;
    notify("WATCHDOG=1");
    return ((dm *)ctx)->wd_interval;
}

/* ---- Reload ---- */

/* 1 when a setting that only a restart applies differs between o and n. */
static int needs_restart(const cf_config *o, const cf_config *n) {
    return o->n_inputs != n->n_inputs || memcmp(o->inputs, n->inputs, sizeof o->inputs) != 0 ||
           o->max_msg_size != n->max_msg_size || o->zmq_max_msg_size != n->zmq_max_msg_size ||
           o->rcvhwm != n->rcvhwm || strcmp(o->out_endpoint, n->out_endpoint) ||
           o->out_bind != n->out_bind || o->sndhwm != n->sndhwm ||
           strcmp(o->control_endpoint, n->control_endpoint) || o->max_series != n->max_series ||
           o->policy != n->policy || o->evict_queue != n->evict_queue ||
           o->max_batch != n->max_batch || o->threads != n->threads || o->pipeline != n->pipeline ||
           strcmp(o->model, n->model) || strcmp(o->state_db, n->state_db) ||
           memcmp(&o->mqtt, &n->mqtt, sizeof o->mqtt) != 0 || strcmp(o->http_listen, n->http_listen) ||
           memcmp(&o->kafka, &n->kafka, sizeof o->kafka) != 0 ||
           strcmp(o->curve_server_key, n->curve_server_key) || strcmp(o->out_curve_allow, n->out_curve_allow) ||
           strcmp(o->control_curve_allow, n->control_curve_allow) ||
           strcmp(o->history_series, n->history_series) || o->history_max_series != n->history_max_series ||
           o->history_length != n->history_length;
}

rc_err dm_reload(dm *d, char *err, size_t errlen) {
    cf_config *nc = rc_malloc(sizeof *nc);
    if (!nc) { snprintf(err, errlen, "Out of memory."); return RC_ERR_NOMEM; }
    rc_err rc = RC_OK;
    if (d->cfg.path[0]) rc = cf_load(nc, d->cfg.path, err, errlen);
    else cf_default(nc);
    if (rc != RC_OK) {
        LOG(LG_WARNING, "config", "Reload failed, keeping the running configuration:");
        LOG(LG_WARNING, "config", "%s", err);
        rc_free(nc);
        return rc;
    }
    if (needs_restart(&d->cfg, nc))
        LOG(LG_WARNING, "config", "Reload: sockets, series, engine, model, state_db, http.listen or history settings changed; "
            "they take effect after a restart.");
    d->cfg.log_level = nc->log_level;
    lg_verbosity = nc->log_level;
    if (d->cfg.checkpoint_interval != nc->checkpoint_interval)
        ev_timer_reset(d->ev, d->ckpt_timer, nc->checkpoint_interval);
    d->cfg.checkpoint_interval = nc->checkpoint_interval;
    d->cfg.stats_interval = nc->stats_interval;
    d->cfg.shutdown_timeout = nc->shutdown_timeout;
    d->cfg.anomaly = nc->anomaly;
    d->cfg.max_future = nc->max_future;
    d->cfg.max_age = nc->max_age;
    d->cfg.idle_ttl = nc->idle_ttl;
    memcpy(d->cfg.http_series, nc->http_series, sizeof d->cfg.http_series);
    d->cfg.http_series_max = nc->http_series_max;
    d->cfg.http_n_horizons = nc->http_n_horizons;
    memcpy(d->cfg.http_horizons, nc->http_horizons, sizeof d->cfg.http_horizons);
    en_set_anomaly_cfg(d->en, &nc->anomaly);
    LOG(LG_NOTICE, "config", "Configuration reloaded%s%s.", d->cfg.path[0] ? " from " : " (defaults)",
        d->cfg.path);
    rc_free(nc);
    return RC_OK;
}

/* ---- Core ---- */

static rk_model *load_model(const cf_config *c) {
    const char *path = c->model[0] ? c->model : en_default_model_path();
    rc_err err;
    char msg[512] = "";
    if (!c->model[0] && access(path, F_OK) != 0) {
        LOG(LG_WARNING, "model", "Default model '%s' not found; running on RANDOM weights (seed 1). "
            "Forecasts are meaningless until a trained model is installed.", path);
        rk_dims dims = rk_dims_default(FT_NFEAT);
        rk_model *m = rk_model_new(&dims, &err);
        if (!m) return NULL;
        rk_model_init_random(m, 1);
        return m;
    }
    rk_model *m = rk_model_load(path, &err, msg, sizeof msg);
    if (!m) LOG(LG_ERROR, "model", "Cannot load model '%s': %s (%s).", path, msg, rc_strerror(err));
    else LOG(LG_NOTICE, "model", "Model '%s' loaded (hash %016llx).", path, (unsigned long long)m->hash);
    return m;
}

/* The engine, and with the pipeline the eventfd its workers wake the loop with. */
static rc_err open_engine(dm *d, const cf_config *cfg) {
    rc_err err;
    en_cfg ec;
    en_cfg_default(&ec);
    ec.max_batch = cfg->max_batch;
    ec.threads = cfg->threads;
    ec.pipeline = cfg->pipeline;
    ec.anomaly = cfg->anomaly;
    ec.caller_inits_slots = 1; /* ingest.c resets or loads every slot it hands out */
    if (!(d->en = en_new(d->model, &ec, cfg->max_series, ig_on_result, d, &err))) {
        LOG(LG_ERROR, "engine", "Cannot create the engine: %s.", rc_strerror(err));
        return err;
    }
    if (cfg->pipeline) {
        /* The loop does not wait for a batch before it sleeps: the engine
         * wakes it when the batch is done (en_poll in before_sleep). */
        if ((d->engine_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
            LOG(LG_WARNING, "daemon", "Cannot create the engine's eventfd: %s.", strerror(errno));
            return RC_ERR_IO;
        }
        en_set_notify_fd(d->en, d->engine_fd);
    }
    return RC_OK;
}

/*
 * Takes an exclusive flock on STATE_DB.lock (created 0600, never removed, so
 * two daemons can never hold locks on two different files of the same name)
 * and writes this pid into it. The lock goes with the process, also on
 * kill -9. RC_ERR_IO with the reason logged when another process holds it or
 * the file cannot be made.
 */
static rc_err lock_store(dm *d, const char *db) {
    char path[4096], pid[32] = "?";
    if ((size_t)snprintf(path, sizeof path, "%s.lock", db) >= sizeof path) {
        LOG(LG_WARNING, "store", "State path '%.64s...' is too long.", db);
        return RC_ERR_IO;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        LOG(LG_ERROR, "store", "Cannot open the store's lock file '%s': %s.", path, strerror(errno));
        return RC_ERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (e == EWOULDBLOCK)
            LOG(LG_ERROR, "store", "Store '%s' is in use by another rwkvcastd (pid %s): one daemon per "
                "'state_db'. Stop that one, or give this one its own 'state_db'.", db, pid[0] ? pid : "?");
        else
            LOG(LG_ERROR, "store", "Cannot lock '%s': %s.", path, strerror(e));
        close(fd);
        return RC_ERR_IO;
    }
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        LOG(LG_WARNING, "store", "Cannot write the pid into '%s': %s.", path, strerror(errno));
    d->lock_fd = fd;
    return RC_OK;
}

rc_err dm_core_open(dm *d, const cf_config *cfg) {
    rc_err err = RC_ERR_NOMEM;
    char msg[1024];
    d->cfg = *cfg;
    d->engine_fd = d->rep_h = d->ckpt_timer = d->stats_timer = -1;
    d->lock_fd = -1;
    d->started = lg_wall_s();
    lg_rl_init(&d->rl_curve, 1.0, 10.0);
    lg_verbosity = cfg->log_level;
    ig_init(d);
    if (!(d->model = load_model(cfg))) return RC_ERR_IO;
    if ((err = open_engine(d, cfg)) != RC_OK) return err;
    if (!(d->rg = rg_new(cfg->max_series, &err))) return err;
    d->blob_size = en_blob_size(d->en);
    d->fetch_buf = rc_malloc(d->blob_size);
    /* A forecast map, plus the keys of an alert event (mp_encode_alert). */
    d->pub_cap = 256 + MP_ID_MAX + 16 * (size_t)d->model->dims.n_horizon;
    d->pub_buf = rc_malloc(d->pub_cap);
    /* Room for the longest `history` reply: 39 B of msgpack per sample. */
    d->ctl_cap = 512 * 1024;
    if (cfg->history_series[0] && d->ctl_cap < 4096 + 40 * (size_t)cfg->history_length)
        d->ctl_cap = 4096 + 40 * (size_t)cfg->history_length;
    d->ctl_buf = rc_malloc(d->ctl_cap);
    if (!d->fetch_buf || !d->pub_buf || !d->ctl_buf) return RC_ERR_NOMEM;
    /* Before the restore, which sets up each restored series' alert state. */
    if ((err = al_open(&d->al, cfg->max_series)) != RC_OK) return err;
    d->start_ns = lg_mono_ns();
    if (!(d->seen = rc_calloc(cfg->max_series, sizeof *d->seen))) return RC_ERR_NOMEM;
    /* The latency histogram's per-slot receive times, only when /metrics can show it. */
    if (cfg->http_listen[0] && !(d->recv_t = rc_calloc(cfg->max_series, sizeof *d->recv_t))) return RC_ERR_NOMEM;
    if (cfg->history_series[0]) {
        d->hs = hs_new(cfg->history_series, cfg->history_max_series, cfg->history_length, cfg->max_series,
                       (int)d->model->dims.n_quant, &err);
        if (!d->hs) { LOG(LG_ERROR, "history", "Cannot set up the history: %s.", rc_strerror(err)); return err; }
    }

    /* One daemon per store: a second one on the same state_db would restore
     * the same series and delete or overwrite the other's rows. */
    if ((err = lock_store(d, cfg->state_db)) != RC_OK) return err;
    uint32_t chunk = cfg->max_series < SN_CHUNK_ROWS ? (uint32_t)cfg->max_series : SN_CHUNK_ROWS;
    d->ck = ck_open(cfg->state_db, d->blob_size, chunk, cfg->evict_queue, &err, msg, sizeof msg);
    if (!d->ck) { LOG(LG_ERROR, "store", "%s", msg); return err; }
    int64_t t_restore = lg_mono_ns();
    /* A damaged store used to start anyway, restore what it could and fail
     * every checkpoint after: refuse it unless the operator says salvage. */
    int ok = ck_check(d->ck, msg, sizeof msg);
    if (ok != 1 && !cfg->salvage) {
        LOG(LG_ERROR, "store", "Store '%s' failed its integrity check (%s). To start afresh, move it aside: "
            "mv '%s' '%s.damaged' (and its -wal and -shm files); to load the series that can still be read, "
            "start once with --salvage.", cfg->state_db, msg, cfg->state_db, cfg->state_db);
        return RC_ERR_FORMAT;
    }
    if (ok != 1)
        LOG(LG_WARNING, "store", "Store '%s' failed its integrity check (%s); salvaging what can be read.",
            cfg->state_db, msg);
    long rows = ck_restore(d->ck, ig_restore_row, d);
    d->restore_s = (double)(lg_mono_ns() - t_restore) * 1e-9;
    /* A read that failed half-way would start the daemon with part of its
     * series; the rest would restart from scratch on their next sample and
     * the next checkpoint would overwrite their stored states. */
    if (rows < 0 && !cfg->salvage) {
        LOG(LG_ERROR, "store", "Cannot read every series from '%s' (see above); not starting. If the error "
            "persists, start once with --salvage to keep the series that can be read.", cfg->state_db);
        return RC_ERR_IO;
    }
    LOG(LG_NOTICE, "store", "Restored %llu of %ld stored series from '%s' in %.3f s (%llu reset: other model "
        "or damaged).", (unsigned long long)d->restored, rows, cfg->state_db, d->restore_s,
        (unsigned long long)d->model_reset);
    /* series.max lowered below what the store holds: say where the rest is. */
    if (rows > 0 && (uint64_t)rows > d->restored)
        LOG(LG_WARNING, "store", "The store holds %ld series but 'series.max' is %lu: %llu stay in the store. %s",
            rows, (unsigned long)cfg->max_series, (unsigned long long)((uint64_t)rows - d->restored),
            cfg->policy == CF_POLICY_EVICT ? "Each is brought back (evicting the least recently seen) when it sends again."
                                    : "With 'series.policy: refuse' their samples are dropped ('limit'); raise "
                                      "'series.max' or use 'evict'.");
    /* Every socket and fd the loop watches, and its timers. */
    /* Inputs, control, ZAP, the signal pipe, the engine's eventfd, HTTP,
     * and a handshake monitor per CURVE socket. */
    if (!(d->ev = ev_new(CF_MAX_INPUTS + 5 + DM_CURVE_LISTS, 9, &err))) return err;
    return RC_OK;
}

void dm_core_close(dm *d) {
    ck_close(d->ck);
    /* After the store is closed: the next daemon may take it from here. */
    if (d->lock_fd >= 0) close(d->lock_fd);
    d->lock_fd = -1;
    ev_free(d->ev);
    en_free(d->en);
    /* After en_free: the engine's workers write it until they stop. */
    if (d->engine_fd >= 0) close(d->engine_fd);
    rg_free(d->rg);
    al_close(&d->al);
    rk_model_free(d->model);
    rc_free(d->ctl_buf);
    rc_free(d->pub_buf);
    rc_free(d->fetch_buf);
    rc_free(d->recv_t);
    rc_free(d->seen);
    hs_free(d->hs);
    d->hs = NULL;
    d->recv_t = NULL;
    d->seen = NULL;
    d->ck = NULL;
    d->ev = NULL;
    d->en = NULL;
    d->engine_fd = -1;
    d->rg = NULL;
    d->model = NULL;
    d->ctl_buf = d->pub_buf = d->fetch_buf = NULL;
}

/* ---- Sockets and wiring ---- */

/* Loads one endpoint's allow-list into d->allow[k]; its zq_curve into cv. */
static int curve_list(dm *d, int k, const char *path, const uint8_t *sec, zq_curve *cv) {
    char err[600];
    if (cv_read_allow(path, &d->allow[k], err, sizeof err) != RC_OK) {
        LOG(LG_ERROR, "curve", "%s", err);
        return 0;
    }
    cv->sec = sec;
    cv->domain = k;
    cv->mon = &d->hsmon[k];
    return 1;
}

/* The daemon's key and the ZAP handler, before any CURVE socket binds:
 * libzmq sends a socket's handshakes to whatever handler exists then. */
static int open_curve(dm *d, uint8_t sec[CV_KEY]) {
    char err[600];
    uint8_t pub[CV_KEY];
    if (cv_read_secret(d->cfg.curve_server_key, pub, sec, err, sizeof err) != RC_OK) {
        LOG(LG_ERROR, "curve", "%s", err);
        return 0;
    }
    d->zap = zmq_socket(d->zctx, ZMQ_REP);
    int zero = 0;
    if (!d->zap || zmq_setsockopt(d->zap, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_bind(d->zap, "inproc://zeromq.zap.01")) {
        LOG(LG_ERROR, "curve", "Cannot start the ZAP handler: %s.", zmq_strerror(zmq_errno()));
        return 0;
    }
    char z[CV_Z85 + 1];
    zmq_z85_encode(z, pub, CV_KEY);
    LOG(LG_NOTICE, "curve", "CURVE server key '%s' (public %s).", d->cfg.curve_server_key, z);
    return 1;
}

const char *dm_curve_socket(const dm *d, int k, const char **kind) {
    if (k == DM_CURVE_OUT) { *kind = "output"; return d->cfg.out_endpoint; }
    if (k == DM_CURVE_CTL) { *kind = "control"; return d->cfg.control_endpoint; }
    *kind = "input";
    return k >= 0 && k < d->cfg.n_inputs ? d->cfg.inputs[k].endpoint : "?";
}

static int open_sockets(dm *d) {
    char err[512];
    d->zctx = zmq_ctx_new();
    if (!d->zctx) { LOG(LG_ERROR, "zmq", "Cannot create a ZeroMQ context."); return 0; }
    uint8_t sec[CV_KEY];
    zq_curve cv_in[CF_MAX_INPUTS], cv_out, cv_ctl;
    const zq_curve *use_in[CF_MAX_INPUTS] = {0}, *use_out = NULL, *use_ctl = NULL;
    int ok = 0;
    if (d->cfg.curve_server_key[0]) {
        if (!open_curve(d, sec)) goto done;
        for (int i = 0; i < d->cfg.n_inputs; i++)
            if (d->cfg.inputs[i].curve_allow[0]) {
                if (!curve_list(d, i, d->cfg.inputs[i].curve_allow, sec, &cv_in[i])) goto done;
                use_in[i] = &cv_in[i];
            }
        if (d->cfg.out_curve_allow[0]) {
            if (!curve_list(d, DM_CURVE_OUT, d->cfg.out_curve_allow, sec, &cv_out)) goto done;
            use_out = &cv_out;
        }
        if (d->cfg.control_curve_allow[0]) {
            if (!curve_list(d, DM_CURVE_CTL, d->cfg.control_curve_allow, sec, &cv_ctl)) goto done;
            use_ctl = &cv_ctl;
        }
    }
    int n_mqtt = 0;
    const cf_mqtt *m = &d->cfg.mqtt;
    for (int i = 0; i < d->cfg.n_inputs; i++) {
        const cf_input *in = &d->cfg.inputs[i];
        if (in->type == CF_MQTT) {
            /* Each connection needs its own client id (the broker drops
             * the older of two sessions with the same one). */
            char id[CF_STR + 16];
            snprintf(id, sizeof id, n_mqtt ? "%s-%d" : "%s", m->client_id, n_mqtt);
            static const char all[1][CF_STR] = {"#"}; /* no topics: everything */
            d->mq_in[i] = mq_open(in->endpoint, m, id, in->n_topics ? in->topics : all,
                                  in->n_topics ? in->n_topics : 1, d->cfg.max_msg_size, err, sizeof err);
            if (!d->mq_in[i]) { LOG(LG_ERROR, "mqtt", "%s", err); goto done; }
            LOG(LG_NOTICE, "mqtt", "Ingest MQTT '%s' as '%s', %d topic filter(s) at QoS %d.", in->endpoint, id,
                in->n_topics ? in->n_topics : 1, m->qos);
            n_mqtt++;
            continue;
        }
        if (in->type == CF_KAFKA) {
            if (kg_open(d, in, err, sizeof err) != RC_OK) { LOG(LG_ERROR, "kafka", "%s", err); goto done; }
            LOG(LG_NOTICE, "kafka", "Ingest Kafka '%s' topic '%s', group '%s', changelog '%s'.", in->endpoint,
                in->topics[0], d->cfg.kafka.group_id, d->cfg.kafka.changelog_topic);
            continue;
        }
        d->in[i] = zq_open_input(d->zctx, &d->cfg.inputs[i], d->cfg.rcvhwm, d->cfg.zmq_max_msg_size, use_in[i], err,
                                 sizeof err);
        if (!d->in[i]) { LOG(LG_ERROR, "zmq", "%s", err); goto done; }
        LOG(LG_NOTICE, "zmq", "Ingest %s %s '%s'%s.", d->cfg.inputs[i].type == CF_SUB ? "SUB" : "PULL",
            d->cfg.inputs[i].bind ? "bound on" : "connected to", d->cfg.inputs[i].endpoint,
            use_in[i] ? " (CURVE)" : "");
    }
    if (m->out_endpoint[0]) {
        char id[CF_STR + 16];
        snprintf(id, sizeof id, "%s-out", m->client_id);
        /* The JSON forecast map (id escaped up to 6 bytes a byte, 64 per
         * horizon), plus 256 for an alert event's keys (pl_json_alert). */
        d->mq_cap = 256 + 256 + 6 * MP_ID_MAX + 64 * (size_t)d->model->dims.n_horizon;
        if (!(d->mq_buf = rc_malloc(d->mq_cap))) goto done;
        d->mq_out = mq_open(m->out_endpoint, m, id, NULL, 0, 0, err, sizeof err);
        if (!d->mq_out) { LOG(LG_ERROR, "mqtt", "%s", err); goto done; }
        LOG(LG_NOTICE, "mqtt", "Output MQTT '%s' under '%s' as '%s' (QoS %d, %s).", m->out_endpoint, m->out_prefix, id,
            m->out_qos, m->out_format == CF_FMT_JSON ? "json" : "msgpack");
    }
    d->pub = zq_open_pub(d->zctx, d->cfg.out_endpoint, d->cfg.out_bind, d->cfg.sndhwm, use_out, err, sizeof err);
    if (!d->pub) { LOG(LG_ERROR, "zmq", "%s", err); goto done; }
    LOG(LG_NOTICE, "zmq", "Output PUB %s '%s'%s.", d->cfg.out_bind ? "bound on" : "connected to", d->cfg.out_endpoint,
        use_out ? " (CURVE)" : "");
    d->rep = zq_open_rep(d->zctx, d->cfg.control_endpoint, use_ctl, err, sizeof err);
    if (!d->rep) { LOG(LG_ERROR, "zmq", "%s", err); goto done; }
    LOG(LG_NOTICE, "zmq", "Control REP bound on '%s'%s.", d->cfg.control_endpoint, use_ctl ? " (CURVE)" : "");
    rc_err rc;
    d->ht = ht_open(d, &rc, err, sizeof err);
    if (rc != RC_OK) { LOG(LG_ERROR, "http", "%s", err); goto done; }
    if (d->ht) LOG(LG_NOTICE, "http", "HTTP on 'http://%s' (/metrics, /healthz, /series/<id>).", d->cfg.http_listen);
    ok = 1;
done:
    memset(sec, 0, sizeof sec);
    return ok;
}

/* Answers the CURVE handshakes' ZAP requests (connectors/curve.h). A
 * refusal is counted and logged by the socket's monitor (on_hsmon); only
 * a request of no known domain, which libzmq should never send, is logged
 * here. */
static void on_zap(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    uint64_t before = d->curve_rejected[DM_CURVE_LISTS];
    cv_zap_serve(d->zap, d->allow, DM_CURVE_LISTS, d->curve_rejected);
    if (d->curve_rejected[DM_CURVE_LISTS] > before)
        LOG(LG_WARNING, "curve", "Refused a ZAP request of no known domain (%llu so far).",
            (unsigned long long)d->curve_rejected[DM_CURVE_LISTS]);
}

/* 1 when the socket of allow-list k connects rather than binds. */
static int connects(const dm *d, int k) {
    if (k == DM_CURVE_CTL) return 0;
    return k == DM_CURVE_OUT ? !d->cfg.out_bind : !d->cfg.inputs[k].bind;
}

/* libzmq 4.3 ends a connecting socket's session for good when the peer's
 * handshake fails with a protocol error (no CURVE, another server key, a
 * key refused, not ZeroMQ): the input would stay dead after the producer
 * is fixed. on_hsmon schedules a fresh dial a second later; this makes it
 * (disconnect first, so a session still alive is not doubled). Loop
 * thread, from rate_tick. */
static void redial(dm *d) {
    int64_t now = lg_mono_ns();
    for (int k = 0; k < DM_CURVE_LISTS; k++) {
        if (!d->redial_ns[k] || now < d->redial_ns[k] || !d->hsmon[k].sock) continue;
        d->redial_ns[k] = 0;
        const char *kind, *ep = dm_curve_socket(d, k, &kind);
        zmq_disconnect(d->hsmon[k].sock, ep);
        if (zmq_connect(d->hsmon[k].sock, ep) != 0)
            LOG(LG_WARNING, "curve", "Cannot dial the %s '%s' again: %s.", kind, ep, zmq_strerror(zmq_errno()));
    }
}

/* Counts the refused handshakes of every CURVE socket (connectors/hsmon.h);
 * one handler for all monitors, as any of them may be the one ready. At
 * most 256 events per monitor and round, so a flood of connections cannot
 * hold the loop. */
static void on_hsmon(ev_loop *l, void *ctx) {
    (void)l;
    dm *d = ctx;
    for (int k = 0; k < DM_CURVE_LISTS; k++) {
        hm_monitor *m = &d->hsmon[k];
        uint64_t final = hm_final_total(m);
        if (!m->pair || !hm_drain(m, 256)) continue;
        if (hm_final_total(m) > final && connects(d, k) && !d->redial_ns[k])
            d->redial_ns[k] = lg_mono_ns() + 1000000000; /* at most once a second */
        if (!lg_rl_allow(&d->rl_curve)) continue;
        const char *kind, *ep = dm_curve_socket(d, k, &kind);
        LOG(LG_WARNING, "curve",
            "Refused client(s) on the %s '%s' (so far: %llu no CURVE, %llu wrong server key, %llu protocol, "
            "%llu key not allowed, %llu no detail, %llu closed before a handshake).",
            kind, ep, (unsigned long long)m->failed[HM_MECHANISM], (unsigned long long)m->failed[HM_CRYPTO],
            (unsigned long long)m->failed[HM_PROTOCOL], (unsigned long long)m->failed[HM_AUTH],
            (unsigned long long)m->failed[HM_NO_DETAIL], (unsigned long long)m->failed[HM_CLOSED]);
    }
}

static void close_sockets(dm *d) {
    ht_close(d->ht);
    d->ht = NULL;
    /* Before their sockets: stopping a monitor needs the socket. */
    for (int k = 0; k < DM_CURVE_LISTS; k++) hm_close(&d->hsmon[k]);
    for (int i = 0; i < CF_MAX_INPUTS; i++) {
        if (d->in[i]) zmq_close(d->in[i]);
        mq_close(d->mq_in[i]);
        d->mq_in[i] = NULL;
    }
    mq_close(d->mq_out);
    d->mq_out = NULL;
    kg_close(d);
    rc_free(d->mq_buf);
    d->mq_buf = NULL;
    if (d->pub) zmq_close(d->pub);
    if (d->rep) zmq_close(d->rep);
    if (d->zap) zmq_close(d->zap);
    d->zap = NULL;
    for (int k = 0; k < DM_CURVE_LISTS; k++) cv_allow_free(&d->allow[k]);
    if (d->zctx) zmq_ctx_term(d->zctx);
    /* Only a socket this daemon bound: one that failed to start (a port in
     * use, say) must not delete the control socket of the daemon running. */
    if (d->rep && !strncmp(d->cfg.control_endpoint, "ipc://", 6) && d->cfg.control_endpoint[6] != '@')
        unlink(d->cfg.control_endpoint + 6);
}

/* Registers every handler, timer and the before-sleep hook with the loop. */
static int wire_loop(dm *d) {
    for (int i = 0; i < d->cfg.n_inputs; i++) {
        d->in_ctx[i][0] = d;
        if (d->cfg.inputs[i].type == CF_KAFKA) {
            d->in_h[i] = ev_add_io(d->ev, NULL, kg_fd(d), kg_on_input, d);
            continue;
        }
        if (d->mq_in[i]) {
            d->in_ctx[i][1] = d->mq_in[i];
            d->in_h[i] = ev_add_io(d->ev, NULL, mq_fd(d->mq_in[i]), ig_on_mqtt, d->in_ctx[i]);
            continue;
        }
        d->in_ctx[i][1] = d->in[i];
        d->in_h[i] = ev_add_io(d->ev, d->in[i], -1, ig_on_input, d->in_ctx[i]);
    }
    d->rep_h = ev_add_io(d->ev, d->rep, -1, ct_on_socket, d);
    if (d->zap && ev_add_io(d->ev, d->zap, -1, on_zap, d) < 0) return 0;
    for (int k = 0; k < DM_CURVE_LISTS; k++)
        if (d->hsmon[k].pair && ev_add_io(d->ev, d->hsmon[k].pair, -1, on_hsmon, d) < 0) return 0;
    ev_add_io(d->ev, NULL, d->sigpipe[0], on_sigpipe, d);
    if (d->engine_fd >= 0 && ev_add_io(d->ev, NULL, d->engine_fd, on_engine, d) < 0) {
        LOG(LG_WARNING, "daemon", "Cannot create the engine's eventfd: %s.", strerror(errno));
        return 0;
    }
    d->ckpt_timer = ev_add_timer(d->ev, d->cfg.checkpoint_interval, ckpt_tick, d);
    d->stats_timer = ev_add_timer(d->ev, d->cfg.stats_interval > 0 ? d->cfg.stats_interval : 60, stats_tick, d);
    d->rate_ns = lg_mono_ns();
    ev_add_timer(d->ev, 1.0, rate_tick, d);
    ev_add_timer(d->ev, 1.0, retention_tick, d);
    ev_add_timer(d->ev, AL_TICK_S, al_tick, d);
    /* systemd's WatchdogSec: ping at half the period from the loop thread,
     * so a stuck loop (not just a live process) trips the watchdog. */
    const char *wd = getenv("WATCHDOG_USEC");
    double wd_us = 0;
    d->wd_interval = 0;
    if (wd && (ti_parse_double(wd, &wd_us) != RC_OK || !(wd_us > 0)))
        LOG(LG_WARNING, "daemon", "Ignoring 'WATCHDOG_USEC' (%.32s): not a positive number.", wd);
    else if (wd)
        d->wd_interval = wd_us * 1e-6 / 2;
    if (d->wd_interval > 0) ev_add_timer(d->ev, d->wd_interval, watchdog_tick, d);
    if (d->ht && !ht_wire(d->ht, d->ev)) {
        LOG(LG_ERROR, "http", "Cannot add the HTTP server to the event loop.");
        return 0;
    }
    ev_set_before_sleep(d->ev, before_sleep, d);
    return 1;
}

/* ---- Shutdown ---- */

/* Copies the rest of the open snapshot without slicing (intake is
 * stopped), waiting on the writer for chunks, for at most tmo seconds. */
static void finish_snapshot(dm *d, double tmo) {
    int64_t until = lg_mono_ns() + (int64_t)(tmo * 1e9);
    while (d->snap_active && lg_mono_ns() < until)
        if (!sn_slice(d, INT64_MAX / 2)) usleep(500);
}

/* Final checkpoint; returns 1 when it was written. */
static int shutdown_checkpoint(dm *d) {
    ck_result r;
    double tmo = d->cfg.shutdown_timeout;
    if (ck_busy(d->ck)) {
        /* A snapshot in progress is finished first (it is one transaction). */
        finish_snapshot(d, tmo);
        if (!d->snap_active && ck_wait(d->ck, tmo, &r)) checkpoint_done(d, &r);
        else return 0;
    }
    d->ckpt_full = d->ckpt_full || d->ckpt_fail > 0;
    sn_start(d);
    finish_snapshot(d, tmo);
    if (d->snap_active || !ck_wait(d->ck, tmo, &r)) return 0;
    checkpoint_done(d, &r);
    if (r.rc != RC_OK) return 0;
    LOG(LG_NOTICE, "store", "Final checkpoint: %u rows in %.3f s.", r.rows, r.duration);
    return 1;
}

int dm_run(const cf_config *cfg) {
    int code = 1;
    char msg[256];
    int64_t t_start = lg_mono_ns();
    dm *d = rc_calloc(1, sizeof *d);
    if (!d) return 1;
    d->sigpipe[0] = d->sigpipe[1] = -1;
    d->engine_fd = -1;
    /* Signals first: a SIGTERM during a long restore is then queued on the
     * self-pipe and handled (with the final checkpoint) once the loop runs. */
    if (setup_signals(d) != RC_OK) goto err;
    if (dm_core_open(d, cfg) != RC_OK) goto err;
    if (!open_sockets(d) || !wire_loop(d)) goto err;

    d->startup_s = (double)(lg_mono_ns() - t_start) * 1e-9;
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=Serving %u series\nMAINPID=%d", rg_count(d->rg), (int)getpid());
    notify(msg);
    LOG(LG_NOTICE, "daemon", "rwkvcastd %s ready (pid %d, %u series, config %s).", DM_VERSION, (int)getpid(),
        rg_count(d->rg), cfg->path[0] ? cfg->path : "(defaults)");

    if (ev_run(d->ev) != RC_OK) LOG(LG_ERROR, "daemon", "Event loop failed; stopping.");

    /* Shutdown: no more intake, then the final checkpoint. */
    for (int i = 0; i < cfg->n_inputs; i++) ev_io_enable(d->ev, d->in_h[i], 0);
    notify("STOPPING=1");
    /* Every accepted sample is stepped before the last snapshot (a slice
     * saves a slot whose sample is only queued without it). */
    en_flush(d->en);
    code = shutdown_checkpoint(d) ? 0 : 1;
    if (code) LOG(LG_ERROR, "store", "Final checkpoint not written within %.1f s.", cfg->shutdown_timeout);
err:
    if (d->ck && ck_busy(d->ck) && code) {
        /* The writer is stuck (disk?); do not hang on join. SQLite keeps the file consistent. */
        LOG(LG_ERROR, "daemon", "Exiting with the checkpoint writer still busy.");
        _exit(code);
    }
    close_sockets(d);
    dm_core_close(d);
    sig_fd = -1;
    if (d->sigpipe[0] >= 0) close(d->sigpipe[0]);
    if (d->sigpipe[1] >= 0) close(d->sigpipe[1]);
    rc_free(d);
    if (code == 0) LOG(LG_NOTICE, "daemon", "Stopped.");
    return code;
}
