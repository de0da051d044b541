/*
 * config.h: rwkvcastd's YAML configuration (libyaml), with validation.
 *
 * Every key, its default and its meaning are documented in
 * config/rwkvcast.example.yaml. Unknown keys are errors. A bad file is
 * reported as "FILE:LINE:COL: message naming 'the.key' (value)" followed by
 * the offending line echoed as ">>> '...'"; the daemon then exits with code 2
 * before binding any socket. No file at all means the defaults.
 *
 * Ownership: cf_config is a plain value (fixed-size strings, no heap), so
 * copying it with = is fine. Threads: no shared state; reentrant.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "daemon/anomaly.h"

#define CF_MAX_INPUTS 16 /* ingest endpoints */
#define CF_MAX_TOPICS 16 /* SUB prefixes per endpoint */
#define CF_STR 256       /* endpoint/topic buffer, bytes incl. NUL */
#define CF_PATH 1024     /* path buffer, bytes incl. NUL */
#define CF_MAX_HTTP_STEPS 8 /* http.horizons entries */
#define CF_HISTORY_LENGTH_MAX 100000 /* history.length: samples per series */
#define CF_HISTORY_BYTES_MAX (4.0 * (1 << 30)) /* history.max_series x length x 40 B, bytes */

enum { CF_SUB = 0, CF_PULL = 1, CF_MQTT = 2, CF_KAFKA = 3 };
enum { CF_FMT_JSON = 0, CF_FMT_MSGPACK = 1 };
enum { CF_POLICY_REFUSE = 0, CF_POLICY_EVICT = 1 };

typedef struct cf_input {
    int type;                            /* CF_SUB, CF_PULL, CF_MQTT or CF_KAFKA */
    char endpoint[CF_STR];               /* ZeroMQ endpoint, mqtt[s]://HOST[:PORT] or kafka://HOST:PORT[,...] */
    int bind;                            /* 1 bind, 0 connect (ZeroMQ only) */
    int n_topics;                        /* SUB prefixes / MQTT filters in topics (0 = everything) */
    char topics[CF_MAX_TOPICS][CF_STR];  /* SUB prefixes, MQTT topic filters (+, # wildcards), or the one Kafka topic */
    char curve_allow[CF_PATH];           /* CURVE allow-list file of client public keys; "" = no CURVE */
} cf_input;

/* The 'mqtt' section: settings of every MQTT connection (connectors/mqtt.h). */
typedef struct cf_mqtt {
    /* Session */
    char client_id[CF_STR];     /* MQTT client id; input i > 0 appends "-i", the output "-out" */
    int qos;                    /* subscription QoS, 0..2 */
    int clean_session;          /* 0: the broker keeps our subscriptions and QoS>0 messages while we are away */
    int keepalive;              /* seconds, 5..65535 */
    int reconnect_min;          /* first reconnect delay, seconds */
    int reconnect_max;          /* longest delay (doubling from reconnect_min), seconds */
    long queue_bytes;           /* broker thread -> loop queue per connection, bytes */
    /* Credentials and TLS */
    char username[CF_STR];      /* "" = none */
    char password[CF_STR];      /* "" = none */
    char tls_ca[CF_PATH];       /* CA file; "" with mqtts:// = the system CAs (/etc/ssl/certs) */
    char tls_cert[CF_PATH];     /* client certificate file, "" = none */
    char tls_key[CF_PATH];      /* its key file */
    int tls_insecure;           /* 1: do not check the broker's host name against its certificate */
    /* Topic -> series id */
    char strip_prefix[CF_STR];  /* removed from the topic; a topic without it is dropped ('bad_id') */
    char separator;             /* replaces '/' in the rest of the topic ('/' keeps it) */
    /* Output */
    char out_endpoint[CF_STR];  /* mqtt[s]://HOST[:PORT]; "" = no MQTT output */
    char out_prefix[CF_STR];    /* topics: PREFIX forecast/<series>, PREFIX level/<series> */
    int out_qos;                /* 0..2 */
    int out_format;             /* CF_FMT_JSON or CF_FMT_MSGPACK (the map of docs/PROTOCOL.md §2) */
} cf_mqtt;

/* The 'kafka' section (connectors/kafka.h, daemon/kgroup.h). */
typedef struct cf_kafka {
    char group_id[CF_STR];        /* consumer group: the daemons that share the input topic */
    char client_id[CF_STR];       /* Kafka client.id */
    char changelog_topic[CF_STR]; /* compacted topic of series states, as many partitions as the input */
    double session_timeout;       /* seconds without heartbeat before the group drops a daemon */
    double restore_timeout;       /* seconds allowed to read the changelog on assignment */
    char output_topic[CF_STR];    /* forecasts (JSON, key = series id); "" = none */
    char alert_topic[CF_STR];     /* the forecast of each level change; "" = none */
} cf_kafka;

typedef struct cf_config {
    /* General */
    char path[CF_PATH];         /* file this came from, "" for defaults */
    int salvage;                /* rwkvcastd --salvage: start on a store that fails its check */
    int log_level;              /* LG_DEBUG..LG_WARNING */
    char model[CF_PATH];        /* weights file, "" = en_default_model_path() */
    char state_db[CF_PATH];     /* SQLite checkpoint store */
    double checkpoint_interval; /* seconds between checkpoints, > 0 */
    double stats_interval;      /* seconds between stats log lines, 0 = off */
    double shutdown_timeout;    /* seconds allowed for the final checkpoint */
    /* Input */
    int n_inputs;                       /* used entries of inputs */
    cf_input inputs[CF_MAX_INPUTS];     /* ingest sockets */
    long max_msg_size;                  /* bytes; larger frames are dropped and counted */
    long zmq_max_msg_size;              /* ZMQ_MAXMSGSIZE, bytes, -1 = unlimited */
    int rcvhwm;                         /* ZMQ_RCVHWM, messages */
    double max_future;                  /* seconds a sample's t may lead the daemon's clock; 0 = no bound */
    double max_age;                     /* seconds it may lag the clock; 0 = no bound (backfills) */
    /* Output */
    char out_endpoint[CF_STR];  /* PUB endpoint */
    int out_bind;               /* 1 bind, 0 connect */
    int sndhwm;                 /* ZMQ_SNDHWM, messages */
    char out_curve_allow[CF_PATH]; /* CURVE allow-list file of subscriber keys; "" = no CURVE */
    /* Control */
    char control_endpoint[CF_STR]; /* REP endpoint; resolved by cf_resolve() */
    char control_curve_allow[CF_PATH]; /* CURVE allow-list file; required for a tcp:// endpoint */
    /* CURVE (connectors/curve.h) */
    char curve_server_key[CF_PATH]; /* the daemon's secret key file (rwkvcast keygen); needed by any curve_allow */
    /* Series */
    uint32_t max_series;        /* registry capacity */
    int policy;                 /* CF_POLICY_REFUSE or CF_POLICY_EVICT */
    uint32_t evict_queue;       /* evicted states waiting for the store, rows */
    double idle_ttl;            /* seconds without samples before a series leaves memory and its row expires; 0 = never */
    /* Engine */
    int max_batch;              /* series stepped together, 1..4096 */
    int threads;                /* engine threads (series shards), 1..64 */
    int pipeline;               /* 1: engine threads step while the main thread does I/O (engine.h) */
    an_cfg anomaly;             /* anomaly scoring (anomaly.h) */
    /* Connectors */
    cf_mqtt mqtt;               /* MQTT connections (inputs of type mqtt, output) */
    cf_kafka kafka;             /* the Kafka consumer group (input of type kafka) */
    /* HTTP (daemon/http.h) */
    char http_listen[CF_STR];   /* "HOST:PORT" of /metrics, /healthz, /series/<id>; "" = off */
    char http_series[CF_STR];   /* fnmatch(3) pattern of series given per-series gauges; "" = none */
    uint32_t http_series_max;   /* at most this many series get them per scrape */
    int http_n_horizons;        /* used entries of http_horizons */
    int http_horizons[CF_MAX_HTTP_STEPS]; /* forecast steps exported per series, 1-based */
    /* History (daemon/history.h) */
    char history_series[CF_STR];  /* fnmatch(3) pattern of series whose recent samples are kept; "" = none */
    uint32_t history_max_series;  /* at most this many series have a history */
    uint32_t history_length;      /* samples kept per series */
} cf_config;

/* Fills the defaults, including state_db from $STATE_DIRECTORY, and resolves. */
void cf_default(cf_config *c);

/*
 * Loads path over the defaults. Returns RC_OK; RC_ERR_IO when the file
 * cannot be read; RC_ERR_CONFIG for a syntax or validation error. On failure
 * errbuf (errlen bytes, may be NULL) receives the full message, possibly two
 * lines, without a trailing newline. c is fully written on success only.
 */
rc_err cf_load(cf_config *c, const char *path, char *errbuf, size_t errlen);
/* The same from memory; name is used in messages in place of a path. */
rc_err cf_load_mem(cf_config *c, const char *name, const char *text, size_t len,
                   char *errbuf, size_t errlen);

/*
 * Fills derived defaults: an empty control_endpoint becomes
 * ipc://$RUNTIME_DIRECTORY/control.sock when systemd set RUNTIME_DIRECTORY,
 * else ipc://<directory of state_db>/rwkvcastd.sock. Called by cf_default
 * and cf_load; idempotent.
 */
void cf_resolve(cf_config *c);

/* Number of keys in the 'anomaly' section. config_test checks it against
 * sizeof(an_cfg), so a new an_cfg field cannot go unconfigurable unnoticed. */
int cf_anomaly_keys(void);

#endif
