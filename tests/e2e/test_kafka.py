# test_kafka.py: the Kafka consumer-group input end to end. The cluster is
# librdkafka's mock cluster hosted by tests/helpers/kafka_mock.c (Debian
# packages no Kafka broker); the daemons reach it over TCP on 127.0.0.1.
# Covers: two daemons in one group splitting the partitions, one SIGKILLed,
# the survivor restoring the revoked partitions' states from the changelog
# topic and publishing forecasts equal to those of a single daemon fed the
# same stream (to 1e-6); and bad keys and values. Every wait is bounded.
#
# SPDX-License-Identifier: MIT
import json
import math
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BINARY, SLOW

MOCK = os.path.join(os.path.dirname(BINARY), "tests", "kafka_mock")

pytestmark = pytest.mark.skipif(not os.path.exists(MOCK),
                                reason="built without librdkafka (make deps, then make build-tests)")


class Cluster:
    """The mock cluster helper process; produce() and flush() speak its stdin protocol."""

    def __init__(self, *topics):
        self.proc = subprocess.Popen([MOCK] + list(topics), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self._readline(20)
        assert line.startswith("BOOTSTRAP "), line
        self.bootstrap = line.split()[1]
        self.sent = 0

    def _readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout * SLOW)
        assert r, "kafka_mock did not answer: " + (self.proc.stderr.read1(4096).decode() if self.proc.poll() else "")
        return self.proc.stdout.readline().decode().strip()

    def produce(self, topic, key, value):
        self.proc.stdin.write(("P %s %s %s\n" % (topic, key, value)).encode())
        self.sent += 1

    def produce_raw(self, topic, key, value):
        k = "-" if key is None else key.hex() or "."
        self.proc.stdin.write(("X %s %s %s\n" % (topic, k, value.hex())).encode())
        self.sent += 1

    def flush(self):
        self.proc.stdin.write(b"F\n")
        self.proc.stdin.flush()
        line = self._readline(60)
        assert line == "OK %d" % self.sent, line

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cluster():
    c = Cluster("metrics:4", "rwkvcast-changelog:4", "changelog-ref:4", "forecasts:2")
    yield c
    c.close()


def kafka_daemon(daemon_factory, cluster, name, group, changelog, interval=1, **kafka):
    cfg = {"group_id": group, "client_id": name, "changelog_topic": changelog, "session_timeout": 6}
    cfg.update(kafka)
    d = daemon_factory(name, kafka=cfg, checkpoint_interval=interval)
    d.cfg["input"]["endpoints"].append({"type": "kafka", "endpoint": "kafka://" + cluster.bootstrap,
                                        "topics": ["metrics"]})
    return d


def value(s, i):
    return 10.0 + 3.0 * math.sin(i * 2 * math.pi / 24 + s) + 0.1 * ((i * 7 + s * 3) % 5)


def sample(t0, s, i):
    return json.dumps({"t": t0 + 300 * i, "v": value(s, i)})


def forecasts(sub, got):
    """Moves every queued forecast of a kafka series into got[(s, t)] (a list per key)."""
    import msgpack
    while sub.s.poll(0):
        topic, data = sub.s.recv_multipart()
        if topic.startswith(b"f.k"):
            m = msgpack.unpackb(data, raw=False)
            got.setdefault((m["s"], m["t"]), []).append(m)


def test_two_daemons_one_killed_survivor_restores_and_matches_a_single_daemon(daemon_factory, cluster):
    S, T, T1, T2 = 8, 240, 120, 160
    t0 = 1700000000
    keys = ["k%d" % s for s in range(S)]
    # Checkpoints every 4 s: b is killed right after it consumed the second
    # part, most likely before it committed it, so a replays those samples.
    a = kafka_daemon(daemon_factory, cluster, "a", "g", "rwkvcast-changelog", interval=4).start()
    b = kafka_daemon(daemon_factory, cluster, "b", "g", "rwkvcast-changelog", interval=4).start()
    ref = kafka_daemon(daemon_factory, cluster, "ref", "ref", "changelog-ref").start()
    subs = {}
    for d in (a, b, ref):
        subs[d] = d.subscriber(b"f.")
        subs[d].sync()
    got = {a: {}, b: {}, ref: {}}
    # Both members of g hold partitions before anything is produced.
    deadline = time.time() + 60 * SLOW
    while not (a.stats()["kafka"]["partitions"] >= 1 and b.stats()["kafka"]["partitions"] >= 1 and
               a.stats()["kafka"]["partitions"] + b.stats()["kafka"]["partitions"] == 4):
        assert time.time() < deadline, a.logtext() + b.logtext()
        time.sleep(0.1)

    def produce(lo, hi):
        for i in range(lo, hi):
            for s in range(S):
                cluster.produce("metrics", keys[s], sample(t0, s, i))
        cluster.flush()

    def wait_for(ds, n, timeout=60):
        deadline = time.time() + timeout * SLOW
        while sum(len(got[d]) for d in ds) < n:
            assert time.time() < deadline, "%d of %d forecasts\n%s" % (
                sum(len(got[d]) for d in ds), n, "".join(d.logtext() for d in ds))
            for d in ds:
                if d.alive():
                    forecasts(subs[d], got[d])
            time.sleep(0.02)

    produce(0, T1)
    wait_for([a, b], S * T1)
    # A checkpoint after the first part: the changelog holds those states, the offsets are committed.
    a.wait_stats(lambda st: st["kafka"]["uncommitted"] == 0 and st["kafka"]["commits"] >= 1)
    b.wait_stats(lambda st: st["kafka"]["uncommitted"] == 0 and st["kafka"]["commits"] >= 1)
    produce(T1, T2)
    wait_for([a, b], S * T2)
    b_series = {k for (k, _) in got[b]}
    assert b_series and len(b_series) < S
    t_kill = time.time()
    b.kill9()
    produce(T2, T)
    # The survivor takes b's partitions after the session timeout, restores
    # their states, replays from b's last committed offsets and goes on.
    deadline = time.time() + 90 * SLOW
    first_after = None
    while True:
        forecasts(subs[a], got[a])
        if first_after is None and any(k in b_series and m[-1]["t"] >= t0 + 300 * T2 for (k, _), m in got[a].items()):
            first_after = time.time()
        done = all((k, t0 + 300 * (T - 1)) in got[a] for k in keys)
        if done:
            break
        assert time.time() < deadline, a.logtext()
        time.sleep(0.02)
    st = a.stats()["kafka"]
    assert st["partitions"] == 4 and st["assigns"] >= 2 and st["restored"] >= len(b_series), st
    wait_for([ref], S * T)
    # Every (series, t) of the stream has a forecast from a or b, and every
    # forecast either published equals the single daemon's.
    worst, n = 0.0, 0
    for k in keys:
        for i in range(T):
            key = (k, t0 + 300 * i)
            mine = got[a].get(key, []) + got[b].get(key, [])
            assert mine, key
            r = got[ref][key][0]
            for m in mine:
                for f in ("yhat", "lo", "hi"):
                    for x, y in zip(m[f], r[f]):
                        worst = max(worst, abs(x - y))
                worst = max(worst, abs(m["score"] - r["score"]))
                n += 1
    assert worst <= 1e-6, worst
    replayed = sum(1 for k in got[a] if k in got[b])
    line = ("kafka rebalance: SIGKILL at 0.00 s; survivor assigned all 4 partitions at %.2f s, restored their "
            "states from the changelog in %.3f s (%d records over the run); first forecast of a taken-over series "
            "at %.2f s; %d forecasts compared with the single daemon's (%d of them replayed after the kill), "
            "largest difference %.3g" % (st["last_assign_t"] - t_kill, st["last_restore_s"], st["restored"],
                                         first_after - t_kill, n, replayed, worst))
    print(line)
    with open(os.path.join(os.path.dirname(BINARY), "kafka_rebalance.txt"), "w") as f:
        f.write(line + "\n")
    for d in (a, ref):
        assert d.stop() == 0


def test_bad_kafka_input_is_counted_never_fatal(daemon_factory, cluster):
    d = kafka_daemon(daemon_factory, cluster, "bad", "gbad", "rwkvcast-changelog", output_topic="forecasts")
    d.cfg["input"]["max_msg_size"] = 4096
    # One series in memory: "good" and "no-time" evict each other, and each
    # evicted state goes to the changelog as well as to the store.
    d.cfg["series"] = {"max": 1, "policy": "evict"}
    d.start()
    d.wait_stats(lambda st: st["kafka"]["partitions"] == 4, timeout=60)
    t0 = 1700000000
    bad = [
        ("bad_id", None, b"1.0"),                       # no key
        ("bad_id", b"", b"1.0"),                        # empty key
        ("bad_id", b"x" * 300, b"1.0"),                 # key over 255 bytes
        ("bad_id", b"\xff\xfe", b"1.0"),                # key not UTF-8
        ("payload", b"good", b"not a number"),
        ("payload", b"good", b"{" * 2000),
        ("payload", b"good", b"\x81\xa1s\xa1x"),        # msgpack: not a Kafka value
        ("type", b"good", b'{"v": "x"}'),
        ("missing_key", b"good", b'{"t": 5}'),
        ("inf", b"good", b"1e999"),
        ("oversize", b"good", b"1" * 10000),
        ("old_timestamp", b"good", json.dumps({"t": t0, "v": 1.0}).encode()),   # duplicate of the first
        ("time_range", b"good", json.dumps({"t": 1e15, "v": 1.0}).encode()),
    ]
    cluster.produce_raw("metrics", b"good", json.dumps({"t": t0, "v": 1.0}).encode())
    want = {}
    for reason, k, v in bad:
        cluster.produce_raw("metrics", k, v)
        want[reason] = want.get(reason, 0) + 1
    cluster.produce_raw("metrics", b"good", json.dumps({"t": t0 + 60, "v": 2.0}).encode())
    cluster.produce_raw("metrics", b"no-time", b"5.5")   # the message timestamp stands in for t
    cluster.flush()
    # The same partition keeps message order, so "good"'s samples come in order around the bad ones.
    st = d.wait_stats(lambda st: st["dropped_total"] >= len(bad) and st["kafka"]["commits"] >= 1, timeout=60)
    for reason, n in want.items():
        assert st["dropped"][reason] == n, (reason, str(sorted(st["dropped"].items())))
    assert st["dropped_total"] == len(bad)
    assert d.ctl("get", s="good")["last_t"] == t0 + 60
    st = d.wait_stats(lambda st: st["kafka"]["uncommitted"] == 0, timeout=30)
    # (How often depends on how the consumer interleaves the two partitions.)
    assert st["evicted"] >= 1 and st["kafka"]["changelog_records"] >= st["evicted"], st
    g = d.ctl("get", s="no-time")
    assert g["ok"] and abs(g["last_t"] - time.time()) < 600
    # The output topic got one JSON forecast per accepted sample, keyed by series.
    kcat = shutil.which("kcat")
    if kcat:
        deadline = time.time() + 30 * SLOW
        while True:
            r = subprocess.run([kcat, "-C", "-b", cluster.bootstrap, "-t", "forecasts", "-e", "-q", "-f", "%k %s\n"],
                               capture_output=True, timeout=30 * SLOW)
            lines = r.stdout.decode().splitlines()
            if len(lines) >= 3 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert sorted(l.split(" ", 1)[0] for l in lines) == ["good", "good", "no-time"], r.stdout
        for l in lines:
            m = json.loads(l.split(" ", 1)[1])
            assert m["s"] == l.split(" ", 1)[0] and len(m["yhat"]) == len(m["h"])
    assert d.stop() == 0


def test_kafka_config_errors_name_the_key(tmp_path):
    cases = [
        ("input:\n  endpoints:\n    - {type: kafka, endpoint: 'kafka://h:9092'}\n",
         "Invalid 'input.endpoints[0].topics' value: 'type: kafka' needs exactly one topic."),
        ("input:\n  endpoints:\n    - {type: kafka, endpoint: 'tcp://h:1', topics: [a]}\n",
         "'type: kafka' needs kafka://HOST:PORT"),
        ("input:\n  endpoints:\n    - {type: kafka, endpoint: 'kafka://', topics: [a]}\n",
         "Invalid 'input.endpoints[0].endpoint' value (kafka://)"),
        ("input:\n  endpoints:\n    - {type: kafka, endpoint: 'kafka://h:1', topics: [a]}\n"
         "    - {type: kafka, endpoint: 'kafka://h:2', topics: [b]}\n",
         "only one input of 'type: kafka'"),
        ("kafka:\n  session_timeout: 0\n", "Invalid 'kafka.session_timeout' value (0)"),
        ("kafka:\n  group_id: ''\n", "Empty 'kafka.group_id' value."),
    ]
    for i, (text, msg) in enumerate(cases):
        p = tmp_path / ("c%d.yaml" % i)
        p.write_text(text)
        r = subprocess.run([BINARY, "-c", str(p), "--check-config"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (text, r.stderr)
        assert str(p) + ":" in r.stderr and msg in r.stderr, (msg, r.stderr)
