/*
 * config.c: the YAML loader (config.h). libyaml's document API builds the node tree
 * with a start mark per node, which gives FILE:LINE:COL for every error.
 * Each section is a table of keys walked by one generic mapping walker, so an
 * unknown or duplicate key is caught in one place.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/log.h"
#include "connectors/curve.h"
#include "daemon/engine.h"
#include "daemon/history.h"
#include "daemon/http.h"

/* ---- Defaults ---- */

void cf_default(cf_config *c) {
    memset(c, 0, sizeof *c);
    c->log_level = LG_NOTICE;
    const char *sd = getenv("STATE_DIRECTORY");
    if (sd && *sd) {
        /* systemd may pass several directories separated by ':'; use the first. */
        int n = (int)strcspn(sd, ":");
        snprintf(c->state_db, sizeof c->state_db, "%.*s/rwkvcast.db", n, sd);
    } else {
        snprintf(c->state_db, sizeof c->state_db, "./rwkvcast.db");
    }
    c->checkpoint_interval = 30;
    c->stats_interval = 60;
    c->shutdown_timeout = 20;
    c->n_inputs = 1;
    c->inputs[0].type = CF_SUB;
    snprintf(c->inputs[0].endpoint, CF_STR, "tcp://127.0.0.1:7701");
    c->inputs[0].bind = 1;
    c->max_msg_size = 1 << 20;
    c->max_future = 86400;
    c->max_age = 0;
    c->zmq_max_msg_size = 64L << 20;
    c->rcvhwm = 100000;
    snprintf(c->out_endpoint, CF_STR, "tcp://127.0.0.1:7702");
    c->out_bind = 1;
    c->sndhwm = 100000;
    c->max_series = 10000;
    /* Evict, so a churning stream of ids is never refused; idle_ttl bounds the store. */
    c->policy = CF_POLICY_EVICT;
    c->idle_ttl = 7 * 86400;
    c->evict_queue = 1024;
    c->max_batch = 256;
    c->threads = 1;
    c->pipeline = 1;
    an_cfg_default(&c->anomaly);
    snprintf(c->mqtt.client_id, CF_STR, "rwkvcastd");
    c->mqtt.qos = 1;
    c->mqtt.clean_session = 0;
    c->mqtt.keepalive = 30;
    c->mqtt.reconnect_min = 1;
    c->mqtt.reconnect_max = 30;
    c->mqtt.queue_bytes = 8L << 20;
    c->mqtt.separator = '/';
    snprintf(c->mqtt.out_prefix, CF_STR, "rwkvcast/");
    c->mqtt.out_qos = 0;
    c->mqtt.out_format = CF_FMT_JSON;
    snprintf(c->http_listen, CF_STR, "127.0.0.1:7703");
    c->http_series_max = 1000;
    c->http_n_horizons = 1;
    c->http_horizons[0] = 1;
    c->history_max_series = 100;
    c->history_length = 1440;
    snprintf(c->kafka.group_id, CF_STR, "rwkvcastd");
    snprintf(c->kafka.client_id, CF_STR, "rwkvcastd");
    snprintf(c->kafka.changelog_topic, CF_STR, "rwkvcast-changelog");
    c->kafka.session_timeout = 10;
    c->kafka.restore_timeout = 60;
    cf_resolve(c);
}

void cf_resolve(cf_config *c) {
    if (c->control_endpoint[0]) return;
    const char *rd = getenv("RUNTIME_DIRECTORY");
    if (rd && *rd) {
        int n = (int)strcspn(rd, ":");
        snprintf(c->control_endpoint, CF_STR, "ipc://%.*s/control.sock", n, rd);
        return;
    }
    const char *slash = strrchr(c->state_db, '/');
    if (!slash) {
        snprintf(c->control_endpoint, CF_STR, "ipc://rwkvcastd.sock");
    } else {
        int n = (int)(slash - c->state_db);
        snprintf(c->control_endpoint, CF_STR, "ipc://%.*s/rwkvcastd.sock", n ? n : 1, c->state_db);
    }
}

/* ---- Parser context ---- */

typedef struct px {
    const char *name;    /* file name for messages */
    const char *text;    /* whole file, for echoing lines */
    size_t len;          /* bytes */
    yaml_document_t *doc;
    cf_config *c;        /* being filled */
    char *err;           /* message out */
    size_t errlen;
    int curve_used;      /* a curve_allow key was given */
    yaml_mark_t curve_mark; /* where the first one was */
} px;

/* Formats "NAME:L:C: msg" plus the echoed line; always returns RC_ERR_CONFIG. */
static rc_err fail(px *x, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rc_err fail(px *x, yaml_mark_t m, const char *fmt, ...) {
    if (!x->err || !x->errlen) return RC_ERR_CONFIG;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Find line m.line (0-based) in the text. */
    const char *p = x->text, *end = x->text + x->len;
    for (size_t l = 0; l < m.line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    const char *e = p;
    while (e < end && *e != '\n' && *e != '\r') e++;
    snprintf(x->err, x->errlen, "%s:%lu:%lu: %s\n>>> '%.*s'", x->name,
             (unsigned long)m.line + 1, (unsigned long)m.column + 1, msg,
             (int)(e - p > 200 ? 200 : e - p), p);
    return RC_ERR_CONFIG;
}

static yaml_node_t *node(px *x, int id) { return yaml_document_get_node(x->doc, id); }

static const char *scalar(yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static rc_err want_scalar(px *x, yaml_node_t *n, const char *key, const char **out) {
    *out = scalar(n);
    if (!*out) return fail(x, n->start_mark, "Invalid '%s' value: expected a scalar.", key);
    return RC_OK;
}

static rc_err get_bool(px *x, yaml_node_t *n, const char *key, int *out) {
    const char *s;
    if (want_scalar(x, n, key, &s)) return RC_ERR_CONFIG;
    static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, t[i])) { *out = 1; return RC_OK; }
        if (!strcasecmp(s, f[i])) { *out = 0; return RC_OK; }
    }
    return fail(x, n->start_mark, "Invalid '%s' value (%s): expected true or false.", key, s);
}

static rc_err get_long(px *x, yaml_node_t *n, const char *key, long lo, long hi, long *out) {
    const char *s;
    if (want_scalar(x, n, key, &s)) return RC_ERR_CONFIG;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return fail(x, n->start_mark, "Invalid '%s' value (%s): expected an integer in %ld..%ld.",
                    key, s, lo, hi);
    *out = v;
    return RC_OK;
}

static rc_err get_double(px *x, yaml_node_t *n, const char *key, double lo, double hi, double *out) {
    const char *s;
    if (want_scalar(x, n, key, &s)) return RC_ERR_CONFIG;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return fail(x, n->start_mark, "Invalid '%s' value (%s): expected a number in %g..%g.",
                    key, s, lo, hi);
    *out = v;
    return RC_OK;
}

static rc_err get_str(px *x, yaml_node_t *n, const char *key, int allow_empty, char *out, size_t cap) {
    const char *s;
    if (want_scalar(x, n, key, &s)) return RC_ERR_CONFIG;
    if (!allow_empty && !*s) return fail(x, n->start_mark, "Empty '%s' value.", key);
    if (strlen(s) >= cap)
        return fail(x, n->start_mark, "Invalid '%s' value: longer than %zu bytes.", key, cap - 1);
    memcpy(out, s, strlen(s) + 1);
    return RC_OK;
}

/* A ZeroMQ endpoint: a transport this daemon can use, then an address. */
static rc_err get_endpoint(px *x, yaml_node_t *n, const char *key, int allow_empty, char *out) {
    if (get_str(x, n, key, allow_empty, out, CF_STR)) return RC_ERR_CONFIG;
    if (!*out) return RC_OK;
    static const char *const tr[] = {"tcp://", "ipc://", "inproc://"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(tr[i]);
        if (!strncmp(out, tr[i], k) && out[k]) return RC_OK;
    }
    return fail(x, n->start_mark, "Invalid '%s' value (%s): expected tcp://HOST:PORT, ipc://PATH or inproc://NAME.",
                key, out);
}

/* ---- Generic mapping walker ---- */

typedef rc_err key_fn(px *x, yaml_node_t *v, const char *key, void *obj);
typedef struct key_def {
    const char *name; /* key */
    key_fn *fn;       /* parses the value into obj */
} key_def;

/* Walks mapping n, dispatching each key via defs; prefix is the dotted path. */
static rc_err walk(px *x, yaml_node_t *n, const char *prefix, const key_def *defs, int ndefs, void *obj) {
    if (n->type != YAML_MAPPING_NODE)
        return fail(x, n->start_mark, "Invalid '%s' value: expected a mapping.", *prefix ? prefix : "(top level)");
    uint64_t seen = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(x, p->key), *v = node(x, p->value);
        const char *ks = scalar(k);
        if (!ks) return fail(x, k->start_mark, "Invalid key in '%s': expected a name.", prefix);
        char full[128];
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", ks);
        int i = 0;
        while (i < ndefs && strcmp(defs[i].name, ks)) i++;
        if (i == ndefs) return fail(x, k->start_mark, "Unknown key '%s'.", full);
        if (seen >> i & 1) return fail(x, k->start_mark, "Duplicate key '%s'.", full);
        seen |= 1ull << i;
        if (defs[i].fn(x, v, full, obj)) return RC_ERR_CONFIG;
    }
    return RC_OK;
}

/* ---- Sections ---- */

#define CFG ((cf_config *)obj)

static rc_err k_log_level(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s;
    if (want_scalar(x, v, key, &s)) return RC_ERR_CONFIG;
    int l = lg_level_from_name(s);
    if (l < 0) return fail(x, v->start_mark, "Invalid '%s' value (%s): expected debug, verbose, notice or warning.", key, s);
    CFG->log_level = l;
    return RC_OK;
}
static rc_err k_model(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, CFG->model, sizeof CFG->model);
}
static rc_err k_state_db(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 0, CFG->state_db, sizeof CFG->state_db);
}
static rc_err k_ckpt(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 0.01, 86400, &CFG->checkpoint_interval);
}
static rc_err k_stats(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 0, 86400, &CFG->stats_interval);
}
static rc_err k_shutdown(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 0.1, 3600, &CFG->shutdown_timeout);
}

/* input.endpoints[i] */
static rc_err k_in_type(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s;
    if (want_scalar(x, v, key, &s)) return RC_ERR_CONFIG;
    if (!strcmp(s, "sub")) ((cf_input *)obj)->type = CF_SUB;
    else if (!strcmp(s, "pull")) ((cf_input *)obj)->type = CF_PULL;
    else if (!strcmp(s, "mqtt")) ((cf_input *)obj)->type = CF_MQTT;
    else if (!strcmp(s, "kafka")) ((cf_input *)obj)->type = CF_KAFKA;
    else return fail(x, v->start_mark, "Invalid '%s' value (%s): expected sub, pull, mqtt or kafka.", key, s);
    return RC_OK;
}
/* A broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]. */
static int is_mqtt_url(const char *s) {
    const char *h = !strncmp(s, "mqtt://", 7) ? s + 7 : !strncmp(s, "mqtts://", 8) ? s + 8 : NULL;
    return h && *h && *h != ':' && *h != '/';
}
/* The scheme says which kind it is; k_endpoints checks it against 'type'. */
static rc_err k_in_endpoint(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s = scalar(v);
    if (s && !strncmp(s, "kafka://", 8)) {
        if (get_str(x, v, key, 0, ((cf_input *)obj)->endpoint, CF_STR)) return RC_ERR_CONFIG;
        if (!s[8] || strpbrk(s + 8, " /"))
            return fail(x, v->start_mark, "Invalid '%s' value (%s): expected kafka://HOST:PORT[,HOST:PORT...].", key, s);
        return RC_OK;
    }
    if (s && !strncmp(s, "mqtt", 4)) {
        if (get_str(x, v, key, 0, ((cf_input *)obj)->endpoint, CF_STR)) return RC_ERR_CONFIG;
        if (!is_mqtt_url(s))
            return fail(x, v->start_mark, "Invalid '%s' value (%s): expected mqtt://HOST[:PORT] or "
                        "mqtts://HOST[:PORT].", key, s);
        return RC_OK;
    }
    return get_endpoint(x, v, key, 0, ((cf_input *)obj)->endpoint);
}

/* An MQTT topic filter: '+' a whole level, '#' a whole last level. */
static int mqtt_filter_ok(const char *f) {
    if (!*f) return 0;
    for (const char *p = f; *p; p++) {
        int level_start = p == f || p[-1] == '/';
        int level_end = p[1] == 0 || p[1] == '/';
        if (*p == '+' && !(level_start && level_end)) return 0;
        if (*p == '#' && !(level_start && p[1] == 0)) return 0;
    }
    return 1;
}
static rc_err k_in_bind(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_bool(x, v, key, &((cf_input *)obj)->bind);
}
/*
 * A CURVE allow-list file (connectors/curve.h): read now, so a missing or
 * malformed file is a config error naming the key (and --check-config
 * finds it), and read again by the daemon when it opens its sockets.
 */
static rc_err get_allow(px *x, yaml_node_t *v, const char *key, char *out) {
    if (get_str(x, v, key, 1, out, CF_PATH)) return RC_ERR_CONFIG;
    if (!*out) return RC_OK; /* "" = no CURVE on this endpoint */
    if (!cv_available())
        return fail(x, v->start_mark, "Invalid '%s': this libzmq has no CURVE support (built without libsodium).", key);
    cv_allow a = {0};
    char err[512];
    if (cv_read_allow(out, &a, err, sizeof err) != RC_OK) return fail(x, v->start_mark, "Invalid '%s' value: %s", key, err);
    cv_allow_free(&a);
    if (!x->curve_used) x->curve_mark = v->start_mark;
    x->curve_used = 1;
    return RC_OK;
}
static rc_err k_in_curve(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_allow(x, v, key, ((cf_input *)obj)->curve_allow);
}
static rc_err k_in_topics(px *x, yaml_node_t *v, const char *key, void *obj) {
    cf_input *in = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(x, v->start_mark, "Invalid '%s' value: expected a list of topic prefixes.", key);
    in->n_topics = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        if (in->n_topics == CF_MAX_TOPICS)
            return fail(x, node(x, *it)->start_mark, "Too many '%s' entries (max %d).", key, CF_MAX_TOPICS);
        if (get_str(x, node(x, *it), key, 1, in->topics[in->n_topics], CF_STR)) return RC_ERR_CONFIG;
        in->n_topics++;
    }
    return RC_OK;
}
static const key_def input_keys[] = {
    {"type", k_in_type}, {"endpoint", k_in_endpoint}, {"bind", k_in_bind}, {"topics", k_in_topics},
    {"curve_allow", k_in_curve}};

static rc_err k_endpoints(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(x, v->start_mark, "Invalid '%s' value: expected a list of endpoints.", key);
    int n = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = node(x, *it);
        if (n == CF_MAX_INPUTS) return fail(x, e->start_mark, "Too many '%s' entries (max %d).", key, CF_MAX_INPUTS);
        cf_input *in = &CFG->inputs[n];
        memset(in, 0, sizeof *in);
        in->type = CF_SUB;
        in->bind = 1;
        char pre[96];
        snprintf(pre, sizeof pre, "%s[%d]", key, n);
        if (walk(x, e, pre, input_keys, 5, in)) return RC_ERR_CONFIG;
        if (!in->endpoint[0]) return fail(x, e->start_mark, "Missing '%s.endpoint'.", pre);
        int url_mqtt = !strncmp(in->endpoint, "mqtt", 4), url_kafka = !strncmp(in->endpoint, "kafka://", 8);
        if (url_mqtt != (in->type == CF_MQTT) || url_kafka != (in->type == CF_KAFKA))
            return fail(x, e->start_mark, "Invalid '%s.endpoint' value (%s): %s.", pre, in->endpoint,
                        in->type == CF_MQTT ? "'type: mqtt' needs mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
                        : in->type == CF_KAFKA ? "'type: kafka' needs kafka://HOST:PORT[,HOST:PORT...]"
                        : url_mqtt ? "a broker URL needs 'type: mqtt'" : "a Kafka URL needs 'type: kafka'");
        if (in->type == CF_KAFKA) {
            /* One topic: its partition p maps to changelog partition p. */
            if (in->n_topics != 1 || !in->topics[0][0])
                return fail(x, e->start_mark, "Invalid '%s.topics' value: 'type: kafka' needs exactly one topic.", pre);
            for (int k = 0; k < n; k++)
                if (CFG->inputs[k].type == CF_KAFKA)
                    return fail(x, e->start_mark, "Invalid '%s': only one input of 'type: kafka' (one consumer group "
                                "membership per daemon).", pre);
        }
        if (in->type == CF_MQTT && in->curve_allow[0])
            return fail(x, e->start_mark, "Invalid '%s.curve_allow': CURVE is for ZeroMQ endpoints (MQTT has "
                        "'mqtt.tls_*' and 'mqtt.username').", pre);
        if (in->type == CF_KAFKA && in->curve_allow[0])
            return fail(x, e->start_mark, "Invalid '%s.curve_allow': CURVE is for ZeroMQ endpoints.", pre);
        if (in->type == CF_MQTT) {
            for (int t = 0; t < in->n_topics; t++)
                if (!mqtt_filter_ok(in->topics[t]))
                    return fail(x, e->start_mark, "Invalid '%s.topics' entry (%s): expected an MQTT topic filter "
                                "('+' and '#' only as whole levels, '#' last).", pre, in->topics[t]);
        }
        n++;
    }
    if (n == 0) return fail(x, v->start_mark, "Empty '%s' list: at least one input is needed.", key);
    CFG->n_inputs = n;
    return RC_OK;
}
static rc_err k_max_msg(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_long(x, v, key, 64, 1L << 30, &CFG->max_msg_size);
}
static rc_err k_zmq_max_msg(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_long(x, v, key, -1, 1L << 31, &CFG->zmq_max_msg_size);
}
static rc_err k_rcvhwm(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 100000000, &l)) return RC_ERR_CONFIG;
    CFG->rcvhwm = (int)l;
    return RC_OK;
}
static rc_err k_max_future(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 0, 1e10, &CFG->max_future);
}
static rc_err k_max_age(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 0, 1e10, &CFG->max_age);
}
static const key_def in_keys[] = {
    {"endpoints", k_endpoints}, {"max_msg_size", k_max_msg},
    {"zmq_max_msg_size", k_zmq_max_msg}, {"rcvhwm", k_rcvhwm},
    {"max_future", k_max_future}, {"max_age", k_max_age}};
static rc_err k_input(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, in_keys, 6, obj);
}

static rc_err k_out_endpoint(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_endpoint(x, v, key, 0, CFG->out_endpoint);
}
static rc_err k_out_bind(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_bool(x, v, key, &CFG->out_bind);
}
static rc_err k_sndhwm(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 100000000, &l)) return RC_ERR_CONFIG;
    CFG->sndhwm = (int)l;
    return RC_OK;
}
static rc_err k_out_curve(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_allow(x, v, key, CFG->out_curve_allow);
}
static const key_def out_keys[] = {
    {"endpoint", k_out_endpoint}, {"bind", k_out_bind}, {"sndhwm", k_sndhwm}, {"curve_allow", k_out_curve}};
static rc_err k_output(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, out_keys, 4, obj);
}

static rc_err k_ctl_endpoint(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_endpoint(x, v, key, 1, CFG->control_endpoint);
}
static rc_err k_ctl_curve(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_allow(x, v, key, CFG->control_curve_allow);
}
static const key_def ctl_keys[] = {{"endpoint", k_ctl_endpoint}, {"curve_allow", k_ctl_curve}};
static rc_err k_control(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (walk(x, v, key, ctl_keys, 2, obj)) return RC_ERR_CONFIG;
    /* forget, reload and checkpoint for anyone who can reach the port: a
     * tcp:// control endpoint must say whose keys it takes. So must an
     * abstract ipc://@NAME one: it has no file, so no mode keeps other
     * local users out (an ipc://PATH socket file is made 0600). */
    if (!strncmp(CFG->control_endpoint, "tcp://", 6) && !CFG->control_curve_allow[0])
        return fail(x, v->start_mark, "Invalid 'control.endpoint' value (%s): a tcp:// control endpoint needs "
                    "'control.curve_allow' (CURVE; see 'rwkvcast keygen'), or use ipc://.", CFG->control_endpoint);
    if (!strncmp(CFG->control_endpoint, "ipc://@", 7) && !CFG->control_curve_allow[0])
        return fail(x, v->start_mark, "Invalid 'control.endpoint' value (%s): an abstract ipc://@ socket has no "
                    "file mode, so any local user could connect; it needs 'control.curve_allow' (CURVE; see "
                    "'rwkvcast keygen'), or use ipc://PATH.", CFG->control_endpoint);
    return RC_OK;
}

static rc_err k_curve_key(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (get_str(x, v, key, 1, CFG->curve_server_key, CF_PATH)) return RC_ERR_CONFIG;
    if (!CFG->curve_server_key[0]) return RC_OK; /* "" = no CURVE */
    if (!cv_available())
        return fail(x, v->start_mark, "Invalid '%s': this libzmq has no CURVE support (built without libsodium).", key);
    uint8_t pub[CV_KEY], sec[CV_KEY];
    char err[512];
    rc_err rc = cv_read_secret(CFG->curve_server_key, pub, sec, err, sizeof err);
    memset(sec, 0, sizeof sec);
    if (rc != RC_OK) return fail(x, v->start_mark, "Invalid '%s' value: %s", key, err);
    return RC_OK;
}
static const key_def curve_keys[] = {{"server_key", k_curve_key}};
static rc_err k_curve(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, curve_keys, 1, obj);
}

static rc_err k_max_series(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 10000000, &l)) return RC_ERR_CONFIG;
    CFG->max_series = (uint32_t)l;
    return RC_OK;
}
static rc_err k_policy(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s;
    if (want_scalar(x, v, key, &s)) return RC_ERR_CONFIG;
    if (!strcmp(s, "refuse")) CFG->policy = CF_POLICY_REFUSE;
    else if (!strcmp(s, "evict")) CFG->policy = CF_POLICY_EVICT;
    else return fail(x, v->start_mark, "Invalid '%s' value (%s): expected refuse or evict.", key, s);
    return RC_OK;
}
static rc_err k_evict_queue(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 1000000, &l)) return RC_ERR_CONFIG;
    CFG->evict_queue = (uint32_t)l;
    return RC_OK;
}
static rc_err k_idle_ttl(px *x, yaml_node_t *v, const char *key, void *obj) {
    double t;
    if (get_double(x, v, key, 0, 3.2e9, &t)) return RC_ERR_CONFIG;
    if (t > 0 && t < 1) return fail(x, v->start_mark, "Invalid '%s' value (%g): expected 0 (never) or at least 1 second.", key, t);
    CFG->idle_ttl = t;
    return RC_OK;
}
static const key_def series_keys[] = {{"max", k_max_series}, {"policy", k_policy}, {"evict_queue", k_evict_queue},
                                      {"idle_ttl", k_idle_ttl}};
static rc_err k_series(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, series_keys, 4, obj);
}

static rc_err k_max_batch(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 4096, &l)) return RC_ERR_CONFIG;
    CFG->max_batch = (int)l;
    return RC_OK;
}
static rc_err k_threads(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, EN_MAX_THREADS, &l)) return RC_ERR_CONFIG;
    CFG->threads = (int)l;
    return RC_OK;
}
static rc_err k_pipeline(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_bool(x, v, key, &CFG->pipeline);
}
static const key_def engine_keys[] = {{"max_batch", k_max_batch}, {"threads", k_threads}, {"pipeline", k_pipeline}};
static rc_err k_engine(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, engine_keys, 3, obj);
}

/* anomaly.*: float fields of an_cfg by offset, plus warmup. */
/* Upper bounds: loose (an_cfg_check has the exact ranges); anchor_len counts samples. */
#define AF(f) {#f, offsetof(an_cfg, f), 100}
static const struct { const char *name; size_t off; double max; } an_floats[] = {
    AF(warn), AF(alert), AF(clear), AF(tail_rate), AF(short_rate), AF(long_rate), AF(stuck_weight),
    {"anchor_len", offsetof(an_cfg, anchor_len), 4096}, AF(anchor_rate), {"alarm_budget", offsetof(an_cfg, alarm_budget), 1e5},
    {"silence", offsetof(an_cfg, silence), 1e6}};
#define N_AF ((int)(sizeof an_floats / sizeof an_floats[0]))
static rc_err k_an_float(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *leaf = strrchr(key, '.') + 1;
    for (int i = 0; i < N_AF; i++) {
        if (strcmp(an_floats[i].name, leaf)) continue;
        double d;
        if (get_double(x, v, key, 0, an_floats[i].max, &d)) return RC_ERR_CONFIG;
        *(float *)((char *)&CFG->anomaly + an_floats[i].off) = (float)d;
    }
    return RC_OK;
}
static rc_err k_an_warmup(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 100000000, &l)) return RC_ERR_CONFIG;
    CFG->anomaly.warmup = (uint32_t)l;
    return RC_OK;
}
static const key_def anomaly_keys[] = {
    {"warn", k_an_float}, {"alert", k_an_float}, {"clear", k_an_float}, {"warmup", k_an_warmup},
    {"tail_rate", k_an_float}, {"short_rate", k_an_float}, {"long_rate", k_an_float},
    {"stuck_weight", k_an_float}, {"anchor_len", k_an_float}, {"anchor_rate", k_an_float},
    {"alarm_budget", k_an_float}, {"silence", k_an_float}};
int cf_anomaly_keys(void) { return (int)(sizeof anomaly_keys / sizeof anomaly_keys[0]); }

static rc_err k_anomaly(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (walk(x, v, key, anomaly_keys, (int)(sizeof anomaly_keys / sizeof anomaly_keys[0]), obj))
        return RC_ERR_CONFIG;
    if (an_cfg_check(&CFG->anomaly))
        return fail(x, v->start_mark, "Invalid '%s' settings: need 0 <= clear <= warn <= alert <= 1, "
                    "rates in (0,1], stuck_weight in 0..1, anchor_len 0 or 2..4096, alarm_budget in 0..1e5, "
                    "silence 0 or 0.5..1e6.", key);
    return RC_OK;
}

/* mqtt.* (connectors/mqtt.h) */
#define MQ (&CFG->mqtt)
static rc_err k_mq_client_id(px *x, yaml_node_t *v, const char *key, void *obj) {
    /* MQTT 3.1.1 servers must accept 23 bytes; most take more. Room for "-out". */
    return get_str(x, v, key, 0, MQ->client_id, CF_STR - 8);
}
static rc_err k_mq_qos(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 2, &l)) return RC_ERR_CONFIG;
    MQ->qos = (int)l;
    return RC_OK;
}
static rc_err k_mq_clean(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_bool(x, v, key, &MQ->clean_session);
}
static rc_err k_mq_keepalive(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 5, 65535, &l)) return RC_ERR_CONFIG;
    MQ->keepalive = (int)l;
    return RC_OK;
}
static rc_err k_mq_rmin(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 3600, &l)) return RC_ERR_CONFIG;
    MQ->reconnect_min = (int)l;
    return RC_OK;
}
static rc_err k_mq_rmax(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 3600, &l)) return RC_ERR_CONFIG;
    MQ->reconnect_max = (int)l;
    return RC_OK;
}
static rc_err k_mq_queue(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_long(x, v, key, 65536, 1L << 30, &MQ->queue_bytes);
}
static rc_err k_mq_user(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->username, CF_STR);
}
static rc_err k_mq_pass(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->password, CF_STR);
}
static rc_err k_mq_ca(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->tls_ca, CF_PATH);
}
static rc_err k_mq_cert(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->tls_cert, CF_PATH);
}
static rc_err k_mq_key(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->tls_key, CF_PATH);
}
static rc_err k_mq_insecure(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_bool(x, v, key, &MQ->tls_insecure);
}
static rc_err k_mq_strip(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, MQ->strip_prefix, CF_STR);
}
static rc_err k_mq_sep(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s;
    if (want_scalar(x, v, key, &s)) return RC_ERR_CONFIG;
    if (strlen(s) != 1 || (unsigned char)s[0] < 0x20 || (unsigned char)s[0] > 0x7e)
        return fail(x, v->start_mark, "Invalid '%s' value (%s): expected one printable ASCII character.", key, s);
    MQ->separator = s[0];
    return RC_OK;
}
static rc_err k_mq_out_endpoint(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (get_str(x, v, key, 1, MQ->out_endpoint, CF_STR)) return RC_ERR_CONFIG;
    if (MQ->out_endpoint[0] && !is_mqtt_url(MQ->out_endpoint))
        return fail(x, v->start_mark, "Invalid '%s' value (%s): expected mqtt://HOST[:PORT], mqtts://HOST[:PORT] "
                    "or \"\" (off).", key, MQ->out_endpoint);
    return RC_OK;
}
static rc_err k_mq_out_prefix(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (get_str(x, v, key, 1, MQ->out_prefix, 64)) return RC_ERR_CONFIG;
    if (strpbrk(MQ->out_prefix, "+#"))
        return fail(x, v->start_mark, "Invalid '%s' value (%s): '+' and '#' are not allowed in a topic.", key,
                    MQ->out_prefix);
    return RC_OK;
}
static rc_err k_mq_out_qos(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 2, &l)) return RC_ERR_CONFIG;
    MQ->out_qos = (int)l;
    return RC_OK;
}
static rc_err k_mq_out_format(px *x, yaml_node_t *v, const char *key, void *obj) {
    const char *s;
    if (want_scalar(x, v, key, &s)) return RC_ERR_CONFIG;
    if (!strcmp(s, "json")) MQ->out_format = CF_FMT_JSON;
    else if (!strcmp(s, "msgpack")) MQ->out_format = CF_FMT_MSGPACK;
    else return fail(x, v->start_mark, "Invalid '%s' value (%s): expected json or msgpack.", key, s);
    return RC_OK;
}
static const key_def mq_out_keys[] = {
    {"endpoint", k_mq_out_endpoint}, {"prefix", k_mq_out_prefix}, {"qos", k_mq_out_qos},
    {"format", k_mq_out_format}};
static rc_err k_mq_output(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, mq_out_keys, 4, obj);
}
static const key_def mqtt_keys[] = {
    {"client_id", k_mq_client_id}, {"qos", k_mq_qos}, {"clean_session", k_mq_clean},
    {"keepalive", k_mq_keepalive}, {"reconnect_min", k_mq_rmin}, {"reconnect_max", k_mq_rmax},
    {"queue_bytes", k_mq_queue}, {"username", k_mq_user}, {"password", k_mq_pass},
    {"tls_ca", k_mq_ca}, {"tls_cert", k_mq_cert}, {"tls_key", k_mq_key}, {"tls_insecure", k_mq_insecure},
    {"strip_prefix", k_mq_strip}, {"separator", k_mq_sep}, {"output", k_mq_output}};
static rc_err k_mqtt(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (walk(x, v, key, mqtt_keys, (int)(sizeof mqtt_keys / sizeof mqtt_keys[0]), obj)) return RC_ERR_CONFIG;
    if (MQ->reconnect_max < MQ->reconnect_min)
        return fail(x, v->start_mark, "Invalid '%s' settings: 'reconnect_max' (%d) is below 'reconnect_min' (%d).",
                    key, MQ->reconnect_max, MQ->reconnect_min);
    if (!MQ->tls_cert[0] != !MQ->tls_key[0])
        return fail(x, v->start_mark, "Invalid '%s' settings: 'tls_cert' and 'tls_key' go together.", key);
    return RC_OK;
}
#undef MQ
static rc_err k_http_listen(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (get_str(x, v, key, 1, CFG->http_listen, CF_STR)) return RC_ERR_CONFIG;
    if (CFG->http_listen[0] && !ht_listen_valid(CFG->http_listen))
        return fail(x, v->start_mark, "Invalid '%s' value (%s): expected IPv4:PORT or [IPv6]:PORT, "
                    "or \"\" to switch HTTP off.", key, CFG->http_listen);
    return RC_OK;
}
static rc_err k_http_series(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, CFG->http_series, CF_STR);
}
static rc_err k_http_series_max(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 0, 1000000, &l)) return RC_ERR_CONFIG;
    CFG->http_series_max = (uint32_t)l;
    return RC_OK;
}
static rc_err k_http_horizons(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(x, v->start_mark, "Invalid '%s' value: expected a list of forecast steps.", key);
    int n = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = node(x, *it);
        if (n == CF_MAX_HTTP_STEPS) return fail(x, e->start_mark, "Too many '%s' entries (max %d).", key, CF_MAX_HTTP_STEPS);
        long h;
        if (get_long(x, e, key, 1, 4096, &h)) return RC_ERR_CONFIG;
        for (int j = 0; j < n; j++)
            if (CFG->http_horizons[j] == h) return fail(x, e->start_mark, "Duplicate '%s' entry (%ld).", key, h);
        CFG->http_horizons[n++] = (int)h;
    }
    CFG->http_n_horizons = n;
    return RC_OK;
}
static const key_def http_keys[] = {{"listen", k_http_listen}, {"series", k_http_series},
                                    {"series_max", k_http_series_max}, {"horizons", k_http_horizons}};
static rc_err k_http(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, http_keys, 4, obj);
}

/* history.* (daemon/history.h) */
static rc_err k_history_series(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, CFG->history_series, CF_STR);
}
static rc_err k_history_max_series(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 1, 100000, &l)) return RC_ERR_CONFIG;
    CFG->history_max_series = (uint32_t)l;
    return RC_OK;
}
static rc_err k_history_length(px *x, yaml_node_t *v, const char *key, void *obj) {
    long l;
    if (get_long(x, v, key, 2, CF_HISTORY_LENGTH_MAX, &l)) return RC_ERR_CONFIG;
    CFG->history_length = (uint32_t)l;
    return RC_OK;
}
static const key_def history_keys[] = {{"series", k_history_series}, {"max_series", k_history_max_series},
                                       {"length", k_history_length}};
static rc_err k_history(px *x, yaml_node_t *v, const char *key, void *obj) {
    if (walk(x, v, key, history_keys, 3, obj)) return RC_ERR_CONFIG;
    /* Rings are allocated as series match, so the bound is on the worst case. */
    double bytes = (double)CFG->history_max_series * CFG->history_length * sizeof(hs_entry);
    if (bytes > CF_HISTORY_BYTES_MAX)
        return fail(x, v->start_mark, "Invalid '%s' settings: 'max_series' x 'length' x %zu B is %.1f GiB, above "
                    "the limit of %.0f GiB; keep fewer series or fewer samples.", key, sizeof(hs_entry),
                    bytes / (1 << 30), CF_HISTORY_BYTES_MAX / (1 << 30));
    return RC_OK;
}

/* kafka.* (connectors/kafka.h) */
#define KF (&CFG->kafka)
static rc_err k_kf_group(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 0, KF->group_id, CF_STR);
}
static rc_err k_kf_client(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 0, KF->client_id, CF_STR);
}
static rc_err k_kf_changelog(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 0, KF->changelog_topic, CF_STR);
}
static rc_err k_kf_session(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 1, 3600, &KF->session_timeout);
}
static rc_err k_kf_restore(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_double(x, v, key, 1, 86400, &KF->restore_timeout);
}
static rc_err k_kf_out(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, KF->output_topic, CF_STR);
}
static rc_err k_kf_alert(px *x, yaml_node_t *v, const char *key, void *obj) {
    return get_str(x, v, key, 1, KF->alert_topic, CF_STR);
}
static const key_def kafka_keys[] = {
    {"group_id", k_kf_group}, {"client_id", k_kf_client}, {"changelog_topic", k_kf_changelog},
    {"session_timeout", k_kf_session}, {"restore_timeout", k_kf_restore}, {"output_topic", k_kf_out},
    {"alert_topic", k_kf_alert}};
static rc_err k_kafka(px *x, yaml_node_t *v, const char *key, void *obj) {
    return walk(x, v, key, kafka_keys, (int)(sizeof kafka_keys / sizeof kafka_keys[0]), obj);
}
#undef KF

static const key_def top_keys[] = {
    {"log_level", k_log_level}, {"model", k_model}, {"state_db", k_state_db},
    {"checkpoint_interval", k_ckpt}, {"stats_interval", k_stats}, {"shutdown_timeout", k_shutdown},
    {"input", k_input}, {"output", k_output}, {"control", k_control}, {"series", k_series},
    {"engine", k_engine}, {"anomaly", k_anomaly}, {"mqtt", k_mqtt}, {"http", k_http},
    {"kafka", k_kafka}, {"curve", k_curve}, {"history", k_history}};

/* ---- Entry points ---- */

rc_err cf_load_mem(cf_config *c, const char *name, const char *text, size_t len,
                   char *errbuf, size_t errlen) {
    if (errbuf && errlen) errbuf[0] = 0;
    rc_err rc = RC_ERR_CONFIG;
    cf_config *tmp = rc_malloc(sizeof *tmp);
    if (!tmp) return RC_ERR_NOMEM;
    cf_default(tmp);
    tmp->control_endpoint[0] = 0; /* re-resolved after the file is read */
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0;
    px x = {name, text, len, &doc, tmp, errbuf, errlen, 0, {0, 0, 0}};
    if (!yaml_parser_initialize(&parser)) { rc = RC_ERR_NOMEM; goto err; }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        fail(&x, m, "YAML syntax error: %s%s%s.", parser.problem ? parser.problem : "unknown",
             parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        goto err;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    /* An empty file, or one holding only comments or "~", means the defaults. */
    if (root && !(root->type == YAML_SCALAR_NODE && (root->data.scalar.length == 0 ||
                  !strcmp((const char *)root->data.scalar.value, "~")))) {
        if (walk(&x, root, "", top_keys, (int)(sizeof top_keys / sizeof top_keys[0]), tmp)) {
            yaml_parser_delete(&parser);
            goto err;
        }
        if (x.curve_used && !tmp->curve_server_key[0]) {
            fail(&x, x.curve_mark, "A 'curve_allow' list needs the daemon's own key: set 'curve.server_key' "
                 "(a secret key file made by 'rwkvcast keygen').");
            yaml_parser_delete(&parser);
            goto err;
        }
    }
    /* yaml_parser_load stops after the first document; anything after it
     * must not be silently ignored (a stray line would otherwise vanish). */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
        fail(&x, parser.problem_mark, "YAML syntax error: %s%s%s.", parser.problem ? parser.problem : "unknown",
             parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        goto err;
    }
    yaml_node_t *extra = yaml_document_get_root_node(&next);
    yaml_mark_t em = extra ? extra->start_mark : parser.mark;
    yaml_document_delete(&next);
    if (extra) {
        fail(&x, em, "More than one YAML document; the configuration must be one mapping.");
        yaml_parser_delete(&parser);
        goto err;
    }
    yaml_parser_delete(&parser);
    snprintf(tmp->path, sizeof tmp->path, "%s", name);
    cf_resolve(tmp);
    *c = *tmp;
    rc = RC_OK;
err:
    if (have_doc) yaml_document_delete(&doc);
    rc_free(tmp);
    return rc;
}

rc_err cf_load(cf_config *c, const char *path, char *errbuf, size_t errlen) {
    rc_err rc = RC_ERR_IO;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errbuf) snprintf(errbuf, errlen, "%s: Cannot open config file: %s.", path, strerror(errno));
        goto err;
    }
    size_t cap = 4096, len = 0;
    buf = rc_malloc(cap);
    if (!buf) { rc = RC_ERR_NOMEM; goto err; }
    for (;;) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        if (cap >= (16u << 20)) {
            if (errbuf) snprintf(errbuf, errlen, "%s: Config file larger than 16 MiB.", path);
            rc = RC_ERR_CONFIG;
            goto err;
        }
        char *nb = rc_realloc(buf, cap * 2);
        if (!nb) { rc = RC_ERR_NOMEM; goto err; }
        buf = nb;
        cap *= 2;
    }
    if (ferror(f)) {
        if (errbuf) snprintf(errbuf, errlen, "%s: Cannot read config file: %s.", path, strerror(errno));
        goto err;
    }
    rc = cf_load_mem(c, path, buf, len, errbuf, errlen);
err:
    if (f) fclose(f);
    rc_free(buf);
    return rc;
}
