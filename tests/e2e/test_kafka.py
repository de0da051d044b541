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
    d = kafka_daemon(daemon_factory, cluster, "bad", "gbad", "rwkvcast-changelog")
    d.cfg["input"]["max_msg_size"] = 4096
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
    g = d.ctl("get", s="no-time")
    assert g["ok"] and abs(g["last_t"] - time.time()) < 600
    assert d.stop() == 0
