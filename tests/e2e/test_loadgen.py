# test_loadgen.py: functional tests of build/bench/loadgen (the C load
# generator behind `make bench-e2e`), first against a Python echo peer that
# plays the daemon (SUB or PULL ingest -> "f.<series>" forecasts carrying the
# sample's s and t), then against the real rwkvcastd with a few series.
# Small N, low rates, every run and wait bounded in time.
#
# SPDX-License-Identifier: MIT
import json
import os
import subprocess
import threading
import time

import msgpack
import pytest
import zmq

from conftest import ROOT, SLOW, free_port

LOADGEN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "bench", "loadgen")

pytestmark = pytest.mark.skipif(not os.access(LOADGEN, os.X_OK), reason="build/bench/loadgen not built")


class Echo:
    """A fake daemon: decodes every payload shape of docs/PROTOCOL.md §1 and publishes one
    forecast per sample on "f.<series>". Counts samples by shape."""

    def __init__(self, ingest_type, ingest, out):
        self.ctx = zmq.Context.instance()
        self.inp = self.ctx.socket(ingest_type)
        if ingest_type == zmq.SUB:
            self.inp.setsockopt(zmq.SUBSCRIBE, b"")
        self.inp.bind(ingest)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 0)
        self.pub.bind(out)
        self.samples = 0
        self.arrivals = []  # time.monotonic() of every message
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def samples_of(self, obj):
        if isinstance(obj, list):
            for m in obj:
                yield m["s"], m["t"]
        elif isinstance(obj["t"], list):
            assert len(obj["t"]) == len(obj["v"])
            for t in obj["t"]:
                yield obj["s"], t
        else:
            yield obj["s"], obj["t"]

    def loop(self):
        while not self.stop.is_set():
            if not self.inp.poll(50):
                continue
            frames = self.inp.recv_multipart()
            self.arrivals.append(time.monotonic())
            for s, t in self.samples_of(msgpack.unpackb(frames[-1], raw=False)):
                self.samples += 1
                self.pub.send_multipart([b"f." + s.encode(), msgpack.packb({"s": s, "t": t, "yhat": [1.0] * 4})])

    def close(self):
        self.stop.set()
        self.t.join(5)
        self.inp.close(0)
        self.pub.close(0)


def loadgen(*args, timeout=30):
    p = subprocess.run([LOADGEN] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout * SLOW)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return p.returncode, (json.loads(lines[-1]) if lines else None), p.stderr


@pytest.mark.parametrize("shape,batch", [("single", 1), ("batch", 16), ("columnar", 5)])
def test_echo_every_shape_matched(tmp_path, shape, batch):
    ing, out = "tcp://127.0.0.1:%d" % free_port(), "tcp://127.0.0.1:%d" % free_port()
    e = Echo(zmq.SUB, ing, out)
    try:
        rc, r, err = loadgen("--in", ing, "--out", out, "-n", 40, "--shape", shape, "--batch", batch,
                             "--rate", 2000, "--duration", 0.5, "--drain", 3, "--label", "t-" + shape)
    finally:
        e.close()
    assert rc == 0, err
    assert r["label"] == "t-" + shape and r["shape"] == shape and r["series"] == 40
    assert 500 <= r["sent"] <= 1300, r
    assert r["matched"] == r["sent"] and r["lost"] == 0 and r["late"] == 0 and r["dup"] == 0, r
    assert r["unmatched"] == 0, r
    # The echo saw every sample plus the probe(s).
    assert e.samples >= r["sent"] + 1
    lat = r["lat_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"] * 1.02 + 1, lat
    assert r["next_t0"] > r["t0"]
    assert "latency publish -> forecast" in err


def test_echo_push_over_ipc_rounds_and_timeline(tmp_path):
    ing, out = "ipc://%s/in.sock" % tmp_path, "ipc://%s/out.sock" % tmp_path
    e = Echo(zmq.PULL, ing, out)
    try:
        rc, r, err = loadgen("--in", ing, "--out", out, "--sock", "push", "-n", 100, "--rounds", 3,
                             "--rate", 0, "--duration", 5, "--timeline", "--t0", 1000, "--dt", 60)
    finally:
        e.close()
    assert rc == 0, err
    assert r["sock"] == "push" and r["sent"] == 300 and r["matched"] == 300 and r["lost"] == 0, r
    # Three rounds of dt = 60 s from t0 = 1000: the next run starts at 1180.
    assert r["t0"] == 1000 and r["next_t0"] == 1180
    assert isinstance(r["max_us_by_100ms"], list) and len(r["max_us_by_100ms"]) >= 1


def test_loss_is_counted(tmp_path):
    # An echo that ignores series 0..9 (but answers the probe): 10 of 50 lost per round.
    ing, out = "tcp://127.0.0.1:%d" % free_port(), "tcp://127.0.0.1:%d" % free_port()
    e = Echo(zmq.SUB, ing, out)
    orig = e.samples_of
    e.samples_of = lambda obj: ((s, t) for s, t in orig(obj) if not s.startswith("lg.0"))
    try:
        rc, r, err = loadgen("--in", ing, "--out", out, "-n", 50, "--rounds", 2, "--rate", 1000,
                             "--duration", 5, "--drain", 1)
    finally:
        e.close()
    assert rc == 0, err
    assert r["sent"] == 100 and r["matched"] == 80 and r["lost"] == 20, r


def test_tick_sends_the_rate_in_bursts(tmp_path):
    # 2000 samples/s in messages of 10: one message every 5 ms without a tick;
    # with --tick 100000 (100 ms) they leave in bursts of about 20, so the
    # echo sees about 10 groups separated by long gaps, and still every sample.
    ing, out = "tcp://127.0.0.1:%d" % free_port(), "tcp://127.0.0.1:%d" % free_port()
    e = Echo(zmq.SUB, ing, out)
    try:
        rc, r, err = loadgen("--in", ing, "--out", out, "-n", 50, "--batch", 10, "--rate", 2000,
                             "--duration", 1.0, "--drain", 3, "--tick", 100000)
    finally:
        e.close()
    assert rc == 0, err
    assert 1500 <= r["sent"] <= 2600 and r["matched"] == r["sent"] and r["lost"] == 0, r
    arr = e.arrivals[-r["sent_msgs"]:]  # the probe came first
    gaps = [b - a for a, b in zip(arr, arr[1:])]
    long_gaps = sum(1 for g in gaps if g > 0.04)
    assert 5 <= long_gaps <= 14, (long_gaps, len(arr))
    assert len(arr) >= 5 * (long_gaps + 1), (long_gaps, len(arr))


def test_bad_options_exit_2():
    for args in (["--shape", "cube"], ["-n", "0"], ["--duration", "0"], ["--tick", "-1"], ["--bogus"]):
        rc, r, err = loadgen(*args)
        assert rc == 2 and "Error:" in err, (args, err)


def test_against_the_daemon(daemon_factory):
    d = daemon_factory(series={"max": 100}).start()
    rc, r, err = loadgen("--in", d.sub, "--out", d.out, "-n", 20, "--rate", 400, "--duration", 1,
                         "--drain", 5, timeout=60)
    assert rc == 0, err
    assert r["sent"] >= 200 and r["matched"] == r["sent"] and r["lost"] == 0, r
    st = d.stats()
    # 20 series plus the probe series; nothing dropped.
    assert st["series"] == 21 and st["dropped_total"] == 0, st
    # A second run continues the series' times, so nothing is an old timestamp.
    rc, r2, err = loadgen("--in", d.pull, "--sock", "push", "--out", d.out, "-n", 20, "--rounds", 2,
                          "--rate", 400, "--duration", 2, "--t0", r["next_t0"], timeout=60)
    assert rc == 0, err
    assert r2["sent"] == 40 and r2["matched"] == 40, r2
    assert d.stats()["dropped_total"] == 0
