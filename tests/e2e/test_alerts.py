# test_alerts.py: alert events that explain themselves, silence alerts,
# warm-up and backfill (issue 19 items 3-5), on a real daemon with real
# sockets: every "a." message carries kind, since, expected value and band;
# a series that stops sending raises a silence alert within
# anomaly.silence + 1 of its sampling periods and clears it with its next
# sample (also with two engine threads, after forget, eviction and a
# restart); a new series raises nothing during its warm-up; samples sent
# with "b": true (rwkvcast send --backfill) are learned but never alerted;
# malformed "b" fields are dropped and counted. Every wait is bounded.
#
# SPDX-License-Identifier: MIT
import math
import os
import subprocess
import time

import msgpack

from conftest import BINARY, SLOW, check_forecast

RWKVCAST = os.environ.get("RWKVCAST") or os.path.join(os.path.dirname(BINARY), "rwkvcast")
ALERT_KEYS = ("kind", "since", "expected", "expected_lo", "expected_hi")
KINDS = ("spike", "shift", "trend", "variance", "stuck", "silence")
PERIOD = 0.2


def send_live(d, series, n, t0=None, value=lambda i: 10.0 + math.sin(i / 3.0)):
    """Sends n samples of each series in real time, one every PERIOD seconds,
    stamped exactly PERIOD apart so the estimated period is PERIOD. Returns
    the time stamp of the last one."""
    t0 = time.time() if t0 is None else t0
    for i in range(n):
        t = t0 + PERIOD * i
        for s in series:
            d.send({"s": s, "t": t, "v": value(i)})
        left = t + PERIOD - time.time()
        if left > 0:
            time.sleep(left)
    return t0 + PERIOD * (n - 1)


def check_alert(m):
    check_forecast(m)
    for k in ALERT_KEYS:
        assert k in m, (k, m)
    assert m["kind"] in KINDS, m


def drain(sub, secs):
    """Every message (sync probe aside) arriving within secs seconds."""
    got = []
    end = time.time() + secs
    while time.time() < end:
        if sub.s.poll(50):
            topic, data = sub.s.recv_multipart()
            if not topic.endswith(b"__sync"):
                got.append((topic.decode(), msgpack.unpackb(data, raw=False)))
    return got


def wait_silence(sub, series, timeout):
    got = sub.collect(lambda g: any(t == "a." + series and m["kind"] == "silence" for t, m in g),
                      timeout=timeout)
    return [m for t, m in got if t == "a." + series][-1]


def test_silence_raised_in_time_and_cleared(daemon_factory):
    d = daemon_factory(anomaly={"warmup": 5, "silence": 5}).start()
    sub = d.subscriber(b"a.quiet")
    sub.sync()
    last = send_live(d, ["quiet"], 15)
    sent_at = time.time()
    m = wait_silence(sub, "quiet", timeout=10)
    arrived = time.time()
    check_alert(m)
    assert m["level"] == 2 and math.isnan(m["v"]), m
    assert m["since"] == last, (m["since"], last)
    assert abs(m["dt"] - PERIOD) < 1e-6, m["dt"]
    # Raised after silence periods, within silence + 1 (the daemon's own
    # clock in "t", and ours from the last send to the message's arrival).
    assert 5 * PERIOD * 0.9 <= m["t"] - last <= 6 * PERIOD, (m["t"] - last)
    assert arrived - sent_at <= 6 * PERIOD * SLOW + 0.1, arrived - sent_at
    lo, ex, hi = m["expected_lo"], m["expected"], m["expected_hi"]
    assert lo <= ex <= hi and math.isfinite(ex), m
    st = d.stats()
    assert st["silence"]["raised"] >= 1 and st["silence"]["silent"] >= 1, st["silence"]
    g = d.ctl("get", s="quiet")
    assert g["ok"] and g["silent"] is True and g["last_t"] == last, g
    # Once only while it stays silent.
    assert drain(sub, 10 * PERIOD) == []
    # The next sample clears it: one event of kind silence, with its map.
    d.send({"s": "quiet", "t": time.time(), "v": 10.0})
    got = sub.collect(lambda g: len(g) >= 1, timeout=10)
    topic, c = got[0]
    check_alert(c)
    assert topic == "a.quiet" and c["kind"] == "silence" and c["v"] == 10.0, c
    # Its level is the sample's own (after a gap of ~15 periods it may well be raised).
    assert c["since"] == last, c
    d.wait_stats(lambda s: s["silence"]["cleared"] == 1)
    assert d.ctl("get", s="quiet")["silent"] is False
    assert d.stop() == 0


def test_silence_with_two_threads_forget_and_evict(daemon_factory):
    # Pipelined, two engine threads; four slots (the sync probe takes one).
    d = daemon_factory(anomaly={"warmup": 5, "silence": 5}, engine={"threads": 2, "pipeline": True},
                       series={"max": 4, "policy": "evict"}).start()
    sub = d.subscriber(b"a.")
    sub.sync()
    last = send_live(d, ["A", "B", "C"], 12)
    # B is forgotten; D takes the free slot, E evicts the probe, F evicts A
    # (the least recently seen of A and C): neither B nor A is watched now.
    assert d.ctl("forget", s="B")["was_loaded"] is True
    for s in ("D", "E", "F"):
        d.send({"s": s, "t": last, "v": 1.0})
    st = d.wait_stats(lambda s: s["evicted"] >= 2)
    assert st["forgotten"] == 1
    send_live(d, ["C"], 12, t0=last + PERIOD)
    got = sub.collect(lambda g: any(t == "a.C" for t, _ in g), timeout=15)
    silent = [t for t, m in got if m["kind"] == "silence"]
    # A's and B's deadlines passed long before C's.
    assert silent == ["a.C"], got
    assert d.stop() == 0


def test_silence_after_restart(daemon_factory):
    # 15 periods (3 s): time for the new subscriber to connect after the restart.
    d = daemon_factory(anomaly={"warmup": 5, "silence": 15}).start()
    last = send_live(d, ["R"], 12)
    d.wait_stats(lambda s: s["steps"] >= 12)
    assert d.stop() == 0
    # Restored series are watched from the restart on: R stays silent.
    d.start()
    started = time.time()
    sub = d.subscriber(b"a.R")
    sub.sync()
    m = wait_silence(sub, "R", timeout=10)
    check_alert(m)
    assert m["since"] == last and m["level"] == 2, m
    assert time.time() - started <= 16 * PERIOD * SLOW + 2.0
    assert d.stop() == 0


def model_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "model", "default.rwkv")


def spike_series():
    # The same series as `rwkvcast replay` would see: deterministic noise.
    import random
    rnd = random.Random(1)
    vals = []
    for i in range(400):
        v = 10 + math.sin(i / 5) + rnd.gauss(0, 0.1)
        vals.append(round(v + (8 if i == 300 else 0), 4))
    return vals


def test_alert_events_explain_themselves(daemon_factory):
    d = daemon_factory(model=model_path()).start()
    sub = d.subscriber(b"a.pump")
    sub.sync()
    vals = spike_series()
    t0 = 1700000000
    for i in range(0, 400, 50):
        d.send([{"s": "pump", "t": t0 + 60 * k, "v": vals[k]} for k in range(i, i + 50)])
    got = sub.collect(lambda g: len(g) >= 2, timeout=30)
    (t1, up), (t2, down) = got[:2]
    for m in (up, down):
        check_alert(m)
        assert m["kind"] == "spike", m
        assert m["since"] == t0 + 60 * 300, m
    g = d.ctl("get", s="pump")
    assert g["kind"] == "spike" and g["silent"] is False, g
    assert up["level"] == 2 and up["t"] == t0 + 60 * 300 and up["v"] == vals[300], up
    # What the spike was judged against: the forecast for it, near the series.
    assert up["expected_lo"] <= up["expected"] <= up["expected_hi"], up
    assert abs(up["expected"] - 10.0) < 2.5 and not up["expected_lo"] <= up["v"] <= up["expected_hi"], up
    assert down["level"] == 0 and down["t"] > up["t"], down
    assert d.stop() == 0


def test_warmup_raises_nothing(daemon_factory):
    # Thresholds at 0: every judged sample after the warm-up is an alert, so
    # the first alert event shows exactly where the warm-up ends.
    warm = 20
    d = daemon_factory(anomaly={"warmup": warm, "warn": 0, "alert": 0, "clear": 0, "silence": 5}).start()
    sub = d.subscriber(b"a.w")
    sub.sync()
    t0 = 1700000000
    # Wild values during the warm-up.
    d.send([{"s": "w", "t": t0 + i, "v": (1e6 if i % 2 else -1e6) * i} for i in range(warm + 1)])
    # Nor does a series in warm-up fall silent: "young" sends 10 samples
    # in real time and stops.
    send_live(d, ["wyoung"], 10)
    d.send({"s": "w", "t": t0 + warm + 1, "v": 0.0})
    got = sub.collect(lambda g: len(g) >= 1, timeout=10)
    topic, m = got[0]
    check_alert(m)
    # The first sample has no forecast; the next `warm` are the warm-up.
    assert topic == "a.w" and m["t"] == t0 + warm + 1 and m["level"] == 2, m
    # Nothing else: w stays at level 2, wyoung never alerts nor falls silent.
    assert drain(sub, 8 * PERIOD) == []
    assert d.stop() == 0


def test_backfill_learns_but_publishes_no_alerts(daemon_factory, tmp_path):
    d = daemon_factory(anomaly={"warmup": 5, "warn": 0, "alert": 0, "clear": 0, "silence": 5}).start()
    sub = d.subscriber(b"")
    sub.sync()
    t0 = 1700000000
    # Every judged sample after the warm-up would be an alert; as backfill none is.
    d.send([{"s": "bf", "t": t0 + 60 * i, "v": 5.0 + i % 4, "b": True} for i in range(40)])
    # Columnar, through the CSV sender too.
    csv = tmp_path / "bf2.csv"
    csv.write_text("timestamp,value\n" + "".join("%d,%g\n" % (t0 + 60 * i, 3.0 + i % 3) for i in range(40)))
    r = subprocess.run([RWKVCAST, "send", "--pull", "-e", d.pull, "--backfill", "-q", str(csv)],
                       capture_output=True, timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
    got = sub.collect(lambda g: sum(t.startswith("f.bf") for t, _ in g) >= 80, timeout=30)
    assert not [t for t, _ in got if t.startswith("a.")], got
    fs = [m for t, m in got if t.startswith("f.bf")]
    assert all(m["backfill"] is True for m in fs), fs[0]
    assert fs[-1]["level"] == 2  # scored as usual
    st = d.stats()
    assert st["backfill"]["samples"] == 80 and st["backfill"]["held_back"] == 2, st["backfill"]
    assert st["steps"] >= 80
    # The state was updated: the store answers with the last backfilled sample.
    g = d.ctl("get", s="bf")
    assert g["ok"] and g["last_t"] == t0 + 60 * 39 and g["level"] == 2, g
    # The first live sample is compared with what subscribers were told (0).
    d.send({"s": "bf", "t": t0 + 60 * 40, "v": 6.0})
    got = sub.collect(lambda g: any(t == "a.bf" for t, _ in g), timeout=10)
    m = [m for t, m in got if t == "a.bf"][0]
    check_alert(m)
    assert m["level"] == 2 and "backfill" not in m and m["since"] == t0 + 60 * 40, m
    # A backfill does not arm the silence timer, nor end a silence.
    time.sleep(0.5)
    assert d.stats()["silence"]["raised"] == 0
    assert d.stop() == 0


def test_malformed_backfill_field_dropped_and_counted(daemon):
    d = daemon
    t0 = 1700000000
    bad = [
        {"s": "m", "t": t0, "v": 1.0, "b": "yes"},
        {"s": "m", "t": t0 + 1, "v": 1.0, "b": 1},
        {"s": "m", "t": t0 + 2, "v": 1.0, "b": [True]},
        {"s": "m", "t": t0 + 3, "v": 1.0, "b": {"b": True}},
        {"s": "m", "t": t0 + 4, "v": 1.0, "b": b"\x01"},
        {"s": "m", "t": t0 + 5, "v": 1.0, "b": 1.5},
        {"s": "m", "t": t0 + 6, "v": 1.0, "b": "x" * 100000},
        {"s": "m", "t": [t0 + 7, t0 + 8], "v": [1.0, 2.0], "b": "no"},
    ]
    for m in bad:
        d.send(m)
    # Duplicated keys: the last one counts.
    dup_ok = b"\x85" + b"".join(msgpack.packb(x) for x in ("s", "m", "t", t0 + 9, "v", 1.0, "b", "bad", "b", True))
    dup_bad = b"\x85" + b"".join(msgpack.packb(x) for x in ("s", "m", "t", t0 + 10, "v", 1.0, "b", True, "b", 7))
    d.send(dup_ok)
    d.send(dup_bad)
    # Well-formed ones pass: true, false, nil.
    for i, b in enumerate((True, False, None)):
        d.send({"s": "m", "t": t0 + 20 + i, "v": 1.0, "b": b})
    st = d.wait_stats(lambda s: s["steps"] >= 4 and s["dropped"]["type"] >= len(bad) + 1)
    assert st["dropped"]["type"] == len(bad) + 1, st["dropped"]
    assert st["decoded"] == 4 and st["backfill"]["samples"] == 2, st
    assert d.alive()
    assert d.stop() == 0


def test_tail_alerts_one_line_each(daemon_factory):
    d = daemon_factory(anomaly={"warmup": 5, "warn": 0, "alert": 0, "clear": 0, "silence": 5}).start()
    tail = subprocess.Popen([RWKVCAST, "tail", "-e", d.out, "--alerts", "--count", "2", "--duration", "30",
                             "--no-color"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The id holds an escape sequence and a newline: printed escaped.
        sid = "t\x1b[2Jx\ny"
        time.sleep(0.5 * SLOW)  # a subscriber's connection takes a moment
        last = send_live(d, [sid], 12)
        out, err = tail.communicate(timeout=30 * SLOW)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 2, out
    assert all(ln.startswith(">>> ") for ln in lines), lines
    assert all("t\\x1b[2Jx\\x0ay" in ln for ln in lines), lines
    assert " ALERT " in lines[0] and "since " in lines[0] and "expected " in lines[0] and "v=" in lines[0], lines
    assert any(" ALERT silence: no sample for " in ln for ln in lines), lines
    assert d.stop() == 0
