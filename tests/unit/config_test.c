/*
 * config_test.c: the YAML loader: defaults, the example file, every section, and
 * error messages with FILE:LINE:COL, the key and the echoed line.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "config/config.h"
#include "tests/unit/harness.h"

static cf_config c;
static char err[1024];

static rc_err load(const char *text) {
    return cf_load_mem(&c, "t.yaml", text, strlen(text), err, sizeof err);
}

TEST(defaults) {
    unsetenv("STATE_DIRECTORY");
    unsetenv("RUNTIME_DIRECTORY");
    cf_default(&c);
    ASSERT_STREQ(c.state_db, "./rwkvcast.db");
    ASSERT_STREQ(c.control_endpoint, "ipc://./rwkvcastd.sock");
    ASSERT_EQ(c.n_inputs, 1);
    ASSERT_STREQ(c.inputs[0].endpoint, "tcp://127.0.0.1:7701");
    ASSERT_STREQ(c.out_endpoint, "tcp://127.0.0.1:7702");
    setenv("STATE_DIRECTORY", "/var/lib/rwkvcast:/other", 1);
    setenv("RUNTIME_DIRECTORY", "/run/rwkvcast", 1);
    cf_default(&c);
    ASSERT_STREQ(c.state_db, "/var/lib/rwkvcast/rwkvcast.db");
    ASSERT_STREQ(c.control_endpoint, "ipc:///run/rwkvcast/control.sock");
    ASSERT_EQ(load(""), RC_OK);
    ASSERT_EQ(load("# only a comment\n"), RC_OK);
    ASSERT_STREQ(c.state_db, "/var/lib/rwkvcast/rwkvcast.db");
}

TEST(example_file_equals_defaults) {
    unsetenv("STATE_DIRECTORY");
    unsetenv("RUNTIME_DIRECTORY");
    cf_config d;
    cf_default(&d);
    ASSERT_EQ(cf_load(&c, "config/rwkvcast.example.yaml", err, sizeof err), RC_OK);
    ASSERT_STREQ(c.path, "config/rwkvcast.example.yaml");
    memset(c.path, 0, sizeof c.path);
    ASSERT_STREQ(c.state_db, d.state_db);
    ASSERT_STREQ(c.control_endpoint, d.control_endpoint);
    /* anomaly.c's defaults move while the scorer is tuned; name the stale key. */
    const float *fa = (const float *)&c.anomaly, *fb = (const float *)&d.anomaly;
    for (size_t i = 0; i < sizeof(an_cfg) / 4; i++)
        if (memcmp(fa + i, fb + i, 4) != 0)
            TT_FAIL_("anomaly field #%zu: example %g vs an_cfg_default %g; update "
                     "config/rwkvcast.example.yaml, then /usr/bin/python3 tools/gen_yaml_man.py",
                     i, (double)fa[i], (double)fb[i]);
    ASSERT(memcmp(&c, &d, sizeof c) == 0);
}

/* Every an_cfg field (all 4 bytes wide) has a key in the 'anomaly' section;
 * when this fails, add the new field to config/config.c (an_floats, anomaly_keys)
 * and to config/rwkvcast.example.yaml (then regenerate the man page). */
TEST(every_anomaly_field_has_a_key) {
    ASSERT_EQ(sizeof(an_cfg), 4 * (size_t)cf_anomaly_keys());
}

TEST(full_file) {
    unsetenv("RUNTIME_DIRECTORY");
    const char *y =
        "log_level: debug\n"
        "state_db: /tmp/x/s.db\n"
        "checkpoint_interval: 0.5\n"
        "input:\n"
        "  endpoints:\n"
        "    - {type: pull, endpoint: 'ipc:///tmp/x/in', bind: false}\n"
        "    - type: sub\n"
        "      endpoint: tcp://127.0.0.1:9\n"
        "      topics: [a, 'b.']\n"
        "  max_msg_size: 2048\n"
        "output: {endpoint: 'tcp://127.0.0.1:10', bind: no, sndhwm: 5}\n"
        "series: {max: 7, policy: evict}\n"
        "engine: {max_batch: 3, threads: 2, pipeline: false}\n"
        "anomaly: {warn: 0.6, alert: 0.8, clear: 0.2, warmup: 5}\n";
    ASSERT_EQ(load(y), RC_OK);
    ASSERT_EQ(c.log_level, LG_DEBUG);
    ASSERT_NEAR(c.checkpoint_interval, 0.5, 0);
    ASSERT_EQ(c.n_inputs, 2);
    ASSERT_EQ(c.inputs[0].type, CF_PULL);
    ASSERT_EQ(c.inputs[0].bind, 0);
    ASSERT_EQ(c.inputs[1].bind, 1);
    ASSERT_EQ(c.inputs[1].n_topics, 2);
    ASSERT_STREQ(c.inputs[1].topics[1], "b.");
    ASSERT_EQ(c.max_msg_size, 2048);
    ASSERT_EQ(c.out_bind, 0);
    ASSERT_EQ(c.sndhwm, 5);
    ASSERT_EQ(c.max_series, 7);
    ASSERT_EQ(c.policy, CF_POLICY_EVICT);
    ASSERT_EQ(c.max_batch, 3);
    ASSERT_EQ(c.threads, 2);
    ASSERT_EQ(c.pipeline, 0);
    ASSERT_NEAR(c.anomaly.warn, 0.6, 1e-6);
    ASSERT_EQ(c.anomaly.warmup, 5);
    ASSERT_STREQ(c.control_endpoint, "ipc:///tmp/x/rwkvcastd.sock");
}

static void expect_err(const char *y, const char *first_line) {
    cf_config before;
    cf_default(&before);
    c = before;
    ASSERT_EQ(load(y), RC_ERR_CONFIG);
    if (strncmp(err, first_line, strlen(first_line)) != 0)
        TT_FAIL_("got \"%s\", want prefix \"%s\"", err, first_line);
    ASSERT(strstr(err, "\n>>> '"));
    ASSERT(memcmp(&c, &before, sizeof c) == 0); /* untouched on failure */
}

TEST(errors) {
    expect_err("log_level: loud\n", "t.yaml:1:12: Invalid 'log_level' value (loud)");
    expect_err("nope: 1\n", "t.yaml:1:1: Unknown key 'nope'.");
    expect_err("output:\n  sndhwm: -5\n", "t.yaml:2:11: Invalid 'output.sndhwm' value (-5)");
    expect_err("input:\n  endpoints:\n    - type: sub\n      endpoint: \"\"\n",
               "t.yaml:4:17: Empty 'input.endpoints[0].endpoint' value.");
    expect_err("input:\n  endpoints:\n    - type: push\n      endpoint: x\n",
               "t.yaml:3:13: Invalid 'input.endpoints[0].type' value (push)");
    expect_err("input:\n  endpoints:\n    - bind: true\n", "t.yaml:3:7: Missing 'input.endpoints[0].endpoint'.");
    expect_err("series:\n  policy: lru\n", "t.yaml:2:11: Invalid 'series.policy' value (lru)");
    expect_err("series:\n  max: 5\n  max: 6\n", "t.yaml:3:3: Duplicate key 'series.max'.");
    expect_err("anomaly:\n  warn: 0.9\n  alert: 0.8\n", "t.yaml:2:3: Invalid 'anomaly' settings");
    expect_err("output: [1, 2]\n", "t.yaml:1:9: Invalid 'output' value: expected a mapping.");
    expect_err("checkpoint_interval: 0\n", "t.yaml:1:22: Invalid 'checkpoint_interval' value (0)");
    expect_err("output:\n  bind: maybe\n", "t.yaml:2:9: Invalid 'output.bind' value (maybe)");
    expect_err("a: [\n", "t.yaml:2:1: YAML syntax error");
    expect_err("output: {endpoint: 'localhost:7702'}\n",
               "t.yaml:1:20: Invalid 'output.endpoint' value (localhost:7702): expected tcp://");
    expect_err("control:\n  endpoint: 'ipc://'\n", "t.yaml:2:13: Invalid 'control.endpoint' value (ipc://)");
    expect_err("{\"log_level\": \"debug\"}\nbogus: 1\n", "t.yaml:2:");
    expect_err("log_level: debug\n---\nbogus: 1\n", "t.yaml:3:1: More than one YAML document");
    expect_err("input:\n  endpoints:\n    - {endpoint: 'tcp://a:1', topics: x}\n",
               "t.yaml:3:39: Invalid 'input.endpoints[0].topics' value: expected a list");
    expect_err("input:\n  endpoints: {a: 1}\n", "t.yaml:2:14: Invalid 'input.endpoints' value: expected a list");
    expect_err("input:\n  endpoints: []\n", "t.yaml:2:14: Empty 'input.endpoints' list");
    expect_err("input:\n  endpoints:\n    - {endpoint: 'tcp://a:1', topics: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]}\n",
               "t.yaml:3:72: Too many 'input.endpoints[0].topics' entries (max 16).");
    expect_err("engine:\n  threads: 0\n", "t.yaml:2:12: Invalid 'engine.threads' value (0)");
    expect_err("engine:\n  threads: 65\n", "t.yaml:2:12: Invalid 'engine.threads' value (65)");
    expect_err("anomaly:\n  tail_rate: lots\n", "t.yaml:2:14: Invalid 'anomaly.tail_rate' value (lots)");
    expect_err("hello\n", "t.yaml:1:1: Invalid '(top level)' value: expected a mapping.");
    expect_err("? [a]\n: 1\n", "t.yaml:1:3: Invalid key in");
    char longp[1200] = "model: ";
    memset(longp + 7, 'm', 1100);
    longp[1107] = 0;
    expect_err(longp, "t.yaml:1:8: Invalid 'model' value: longer than 1023 bytes.");
    ASSERT_EQ(load("~\n"), RC_OK);
    ASSERT_EQ(load("log_level: notice\n...\n"), RC_OK);
    ASSERT_EQ(cf_load(&c, "/nonexistent/x.yaml", err, sizeof err), RC_ERR_IO);
    ASSERT(strstr(err, "/nonexistent/x.yaml: Cannot open"));
}

TEST(oom) {
    for (long n = 1; n < 8; n++) {
        rc_fail_after(n, 0);
        rc_err rc = cf_load(&c, "config/rwkvcast.example.yaml", err, sizeof err);
        rc_fail_after(0, 0);
        ASSERT(rc == RC_OK || rc == RC_ERR_NOMEM);
    }
}

TT_MAIN(TEST_ENTRY(defaults), TEST_ENTRY(oom), TEST_ENTRY(example_file_equals_defaults), TEST_ENTRY(every_anomaly_field_has_a_key), TEST_ENTRY(full_file),
        TEST_ENTRY(errors))
