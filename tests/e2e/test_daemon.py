# test_daemon.py: end-to-end tests of rwkvcastd (issue 5): round trip, the
# three payload shapes, every bad-input class, control commands, limits.
#
# SPDX-License-Identifier: MIT
import math
import os
import stat
import time

import msgpack
import zmq

from conftest import SLOW, check_forecast, pack


def test_round_trip_10x100(daemon):
    sub = daemon.subscriber(b"f.")
    sub.sync()
    for i in range(100):
        batch = [{"s": "rt%d" % k, "t": 1700000000 + 60 * i, "v": math.sin(i / 5.0 + k) * 10 + k}
                 for k in range(10)]
        daemon.send(batch)
    got = sub.collect(lambda g: len(g) >= 1000, timeout=60)
    assert len(got) == 1000
    per = {}
    H = len(got[0][1]["h"])
    assert H >= 1
    for topic, m in got:
        assert topic == "f." + m["s"]
        check_forecast(m, H)
        per.setdefault(m["s"], []).append(m["t"])
    assert sorted(per) == ["rt%d" % k for k in range(10)]
    for s, ts in per.items():
        assert ts == [1700000000 + 60 * i for i in range(100)], s
    # The period estimate converges to the 60 s spacing.
    assert abs(got[-1][1]["dt"] - 60) < 1.0
    st = daemon.stats()
    assert st["decoded"] >= 1000 and st["dropped_total"] == 0
    assert st["series"] == 11  # 10 + the sync probe


def test_payload_shapes_and_both_sockets(daemon):
    sub = daemon.subscriber(b"f.shape")
    sub.sync()
    t0 = 1700000000
    # One sample, one frame, on PULL (ipc).
    daemon.send({"s": "shape.single", "t": t0, "v": 1.5})
    # Topic + payload frames; a batch.
    daemon.send([{"s": "shape.batch", "t": t0 + i, "v": float(i)} for i in range(3)], topic=b"x")
    # Columnar, with a msgpack timestamp extension for t.
    ts = [msgpack.Timestamp(t0 + i, 500000000) for i in range(4)]
    daemon.send({"s": "shape.col", "t": ts, "v": [1, 2.5, float("nan"), 4]})
    got = sub.collect(lambda g: len(g) >= 8, timeout=20)
    by = {}
    for _, m in got:
        check_forecast(m)
        by.setdefault(m["s"], []).append(m)
    assert [m["t"] for m in by["shape.single"]] == [t0]
    assert [m["v"] for m in by["shape.batch"]] == [0.0, 1.0, 2.0]
    col = by["shape.col"]
    assert [m["t"] for m in col] == [t0 + i + 0.5 for i in range(4)]
    assert math.isnan(col[2]["v"])  # NaN is a missing value, still stepped
    # Receive time when t is absent; on the SUB (tcp) socket this time.
    pub = daemon.zctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.connect(daemon.sub)
    deadline = time.time() + 10 * SLOW
    seen_sub = []
    while time.time() < deadline and not seen_sub:
        pub.send_multipart([b"sensors", pack({"s": "shape.sub", "v": 3})])
        got = sub.collect(lambda g: len(g) >= 1, timeout=1) if sub.s.poll(200) else []
        seen_sub = [m for _, m in got if m["s"] == "shape.sub"]
        if not seen_sub:
            time.sleep(0.1)
    pub.close()
    assert seen_sub, daemon.logtext()
    assert abs(seen_sub[0]["t"] - time.time()) < 30
    st = daemon.stats()
    assert st["missing"] >= 1
    assert st["dropped_total"] == 0


def test_bad_inputs_counted_by_reason(daemon):
    sub = daemon.subscriber(b"f.good")
    sub.sync()
    t0 = 1700000000
    daemon.send({"s": "good", "t": t0, "v": 1.0})
    daemon.send({"s": "victim", "t": t0 + 100, "v": 1.0})
    sub.collect(lambda g: len(g) >= 1)
    bad = [
        ("msgpack", b"\xc1\x00garbage\xff"),
        ("msgpack", b"\x83\xa1s"),                         # truncated map
        ("type", pack({"s": "victim", "t": t0 + 101, "v": "high"})),
        ("type", pack({"s": 42, "v": 1})),
        ("type", pack("just a string")),
        ("missing_key", pack({"t": t0, "v": 1})),
        ("missing_key", pack({"s": "victim", "t": t0 + 102})),
        ("inf", pack({"s": "victim", "t": t0 + 103, "v": float("inf")})),
        ("bad_id", pack({"s": "x" * 300, "t": t0, "v": 1})),
        ("old_timestamp", pack({"s": "victim", "t": t0 + 50, "v": 1})),
        ("length", pack({"s": "victim", "t": [t0 + 104, t0 + 105], "v": [1]})),
        ("oversize", pack({"s": "victim", "t": t0 + 106, "v": 1, "pad": "p" * (10 * 1024 * 1024)})),
    ]
    want = {}
    for reason, data in bad:
        daemon.send(data)
        want[reason] = want.get(reason, 0) + 1
    # NaN is accepted as missing, not dropped.
    daemon.send({"s": "victim", "t": t0 + 107, "v": float("nan")})
    for i in range(1, 6):
        daemon.send({"s": "good", "t": t0 + i, "v": float(i)})
    got = sub.collect(lambda g: len(g) >= 5, timeout=30)
    assert [m["t"] for _, m in got] == [t0 + i for i in range(1, 6)]
    for _, m in got:
        check_forecast(m)
    st = daemon.wait_stats(lambda s: s["dropped_total"] >= len(bad))
    for reason, n in want.items():
        assert st["dropped"][reason] == n, (reason, st["dropped"])
    assert st["dropped_total"] == len(bad)
    assert st["missing"] == 1
    assert daemon.ctl("ping")["ok"]
    # The victim series kept its state: its last accepted time is the NaN sample's.
    g = daemon.ctl("get", s="victim")
    assert g["ok"] and g["last_t"] == t0 + 107
    assert "Dropped input" in daemon.logtext()


def test_values_beyond_float_range_are_dropped_not_learned(daemon):
    # A first value of 1e308 used to make every later forecast of its series
    # inf, and 3.5e38 kept yhat near 1e35: such values are infinite to the
    # float model, so they are dropped and counted like Inf.
    sub = daemon.subscriber(b"f.")
    sub.sync()
    t0 = 1700000000
    daemon.send({"s": "huge", "t": t0, "v": 1e308})
    daemon.send({"s": "big", "t": t0, "v": 1.0})
    daemon.send({"s": "big", "t": t0 + 1, "v": -3.5e38})
    for i in range(1, 40):
        daemon.send({"s": "huge", "t": t0 + i, "v": 10.0 + (i % 3)})
        daemon.send({"s": "big", "t": t0 + 1 + i, "v": 1.0 + (i % 2)})
    got = sub.collect(lambda g: sum(1 for _, m in g if m["s"] == "huge") >= 39 and
                      sum(1 for _, m in g if m["s"] == "big") >= 40, timeout=30)
    for _, m in got:
        check_forecast(m)
        assert all(abs(x) < 1e6 for x in m["yhat"] + m["lo"] + m["hi"]), m
    st = daemon.wait_stats(lambda s: s["dropped_total"] >= 2)
    assert st["dropped"]["inf"] == 2 and st["dropped_total"] == 2


def test_one_absurd_first_value_does_not_ruin_the_series(daemon):
    # A finite but absurd first value (1e30, then values near 50) set the
    # normalizer's level and scale and the seasonal memory: forecasts stayed
    # near 1e29 for thousands of samples. Now they recover at once.
    sub = daemon.subscriber(b"f.absurd")
    sub.sync()
    t0 = 1700000000
    daemon.send({"s": "absurd", "t": t0, "v": 1e30})
    for i in range(1, 40):
        daemon.send({"s": "absurd", "t": t0 + 300 * i, "v": 50.0 + (i % 5)})
    got = sub.collect(lambda g: len(g) >= 40, timeout=30)
    for _, m in got:
        check_forecast(m)
    # From the third sample on (the second replaces the first), every
    # forecast is near the values.
    for _, m in got[2:]:
        assert all(0 < x < 200 for x in m["yhat"]), m
        assert all(-100 < x < 300 for x in m["lo"] + m["hi"]), m


def test_far_future_timestamp_cannot_block_a_series(daemon_factory):
    # A sample stamped in nanoseconds (or 1e308) used to become the series'
    # last time, so every real sample after it was dropped as old_timestamp.
    d = daemon_factory(input={"max_age": 3600})
    d.start()
    sub = d.subscriber(b"f.clock")
    sub.sync()
    now = time.time()
    d.send({"s": "clock", "t": now * 1e9, "v": 1.0})
    d.send({"s": "clock", "t": 1e308, "v": 1.0})
    d.send({"s": "clock", "t": now - 7200, "v": 1.0})       # beyond max_age
    d.send({"s": "clock", "t": now + 60, "v": 2.0})          # clock skew: fine
    for i in range(1, 4):
        d.send({"s": "clock", "t": now + 60 + i, "v": 2.0 + i})
    got = sub.collect(lambda g: len(g) >= 4, timeout=20)
    assert [round(m["t"] - now) for _, m in got] == [60, 61, 62, 63]
    st = d.wait_stats(lambda s: s["dropped_total"] >= 3)
    assert st["dropped"]["time_range"] == 3 and st["dropped"]["old_timestamp"] == 0
    assert "Dropped input of series 'clock' (time_range)." in d.logtext()
    # max_age 0 (the default) accepts any age again after a reload: backfills.
    d.cfg["input"]["max_age"] = 0
    d.write_config()
    assert d.ctl("reload")["ok"]
    d.send({"s": "old", "t": 1000000000, "v": 1.0})
    d.wait_stats(lambda s: s["decoded"] >= 5)
    assert d.stop() == 0


def test_log_lines_cannot_be_forged_by_ids(daemon):
    # The id of a dropped sample goes into the log: a newline and ESC
    # sequences in it must come out escaped, on the daemon's own line.
    t0 = 1700000000
    evil = "x\nC 01 Jan 00:00:00.000 # forged line\x1b[31m'\\"
    daemon.send({"s": evil, "t": t0, "v": "not a number"})
    daemon.wait_stats(lambda s: s["dropped_total"] >= 1)
    deadline = time.time() + 10
    while "Dropped input of series" not in daemon.logtext() and time.time() < deadline:
        time.sleep(0.05)
    log = daemon.logtext()
    assert "\x1b" not in log
    assert not any(l.startswith("C 01 Jan") for l in log.splitlines()), log
    want = "Dropped input of series 'x\\x0aC 01 Jan 00:00:00.000 # forged line\\x1b[31m\\'\\\\' (type)."
    assert want in log, log
    # Nothing was suppressed, so the line says nothing about suppression.
    assert "similar suppressed" not in log


def test_control_commands(daemon):
    assert daemon.ctl("ping")["pong"] is True
    mode = os.stat(daemon.ctl_ep[len("ipc://"):]).st_mode
    assert stat.S_IMODE(mode) == 0o600
    for k in range(25):
        daemon.send({"s": "c%02d" % k, "t": 1000, "v": float(k)})
    daemon.wait_stats(lambda s: s["steps"] >= 25)
    seen, cursor, pages = [], 0, 0
    while cursor is not None and pages < 10:
        r = daemon.ctl("series", cursor=cursor, limit=10)
        assert r["ok"] and r["total"] == 25
        seen += r["series"]
        cursor = r["next"]
        pages += 1
    assert sorted(seen) == ["c%02d" % k for k in range(25)] and pages == 3
    g = daemon.ctl("get", s="c07")
    assert g["ok"] and g["last_t"] == 1000
    check_forecast(g["forecast"])
    assert not daemon.ctl("get", s="nope")["ok"]
    r = daemon.ctl("checkpoint", wait=True)
    assert r["ok"] and r["rows"] == 25
    r = daemon.ctl("forget", s="c07")
    assert r["ok"] and r["was_loaded"]
    assert not daemon.ctl("get", s="c07")["ok"]
    assert daemon.ctl("checkpoint", wait=True)["ok"]
    st = daemon.stats()
    assert st["series"] == 24 and st["forgotten"] == 1
    assert st["checkpoint"]["count"] >= 2
    for key in ("received", "decoded", "dropped", "steps_per_s", "published", "queues"):
        assert key in st
    # reload: a good change applies, a bad file is refused and the daemon keeps running.
    daemon.cfg["log_level"] = "debug"
    daemon.write_config()
    assert daemon.ctl("reload")["ok"]
    with open(daemon.cfg_path, "a") as f:
        f.write("\nbogus_key: 1\n")
    r = daemon.ctl("reload")
    assert not r["ok"] and "rwkvcast.yaml:" in r["error"]
    daemon.cfg["bogus_key"] = 1
    daemon.write_config()
    r = daemon.ctl("reload")
    assert not r["ok"] and "Unknown key 'bogus_key'" in r["error"]
    assert daemon.ctl("nope")["error"] == "Unknown command 'nope'."
    s = daemon.zctx.socket(zmq.REQ)
    s.connect(daemon.ctl_ep)
    s.send(b"\xc1")
    assert s.poll(5000)
    assert msgpack.unpackb(s.recv())["ok"] is False
    s.close()
    assert daemon.stop() == 0


def test_max_series_refuse(daemon_factory):
    d = daemon_factory(series={"max": 3, "policy": "refuse"}).start()
    for k in range(5):
        d.send({"s": "m%d" % k, "t": 10, "v": 1.0})
    st = d.wait_stats(lambda s: s["steps"] + s["dropped_total"] >= 5)
    assert st["series"] == 3 and st["dropped"]["limit"] == 2
    assert d.stop() == 0


def test_max_series_evict_and_bring_back(daemon_factory):
    d = daemon_factory(series={"max": 3, "policy": "evict"}).start()
    for i in range(4):
        for k in range(5):
            d.send({"s": "e%d" % k, "t": 100 + i, "v": float(i + k)})
    st = d.wait_stats(lambda s: s["steps"] >= 20)
    assert st["series"] == 3
    assert st["evicted"] >= 17 and st["brought_back"] >= 15
    assert st["dropped_total"] == 0
    # An evicted series is still answered by 'get', from the store, without
    # being brought back (the series count stays at the limit).
    held = set(d.ctl("series", limit=10)["series"])
    out = [k for k in range(5) if "e%d" % k not in held]
    assert out, held
    g = d.ctl("get", s="e%d" % out[0])
    assert g["ok"] and g["stored"] is True and g["last_t"] == 103, g
    check_forecast(g["forecast"])
    assert d.stats()["series"] == 3
    g = d.ctl("get", s="never-seen")
    assert not g["ok"] and "Unknown" in g["error"]
    # e0 was evicted and brought back with its state: an older time is refused.
    d.send({"s": "e0", "t": 101, "v": 0.0})
    d.send({"s": "e0", "t": 104, "v": 0.0})
    st = d.wait_stats(lambda s: s["steps"] >= 21)
    assert st["dropped"]["old_timestamp"] == 1
    assert d.stop() == 0


def test_alert_topic_on_level_change(daemon_factory):
    # Thresholds at 0 make every judged sample after the warm-up an alert, so
    # this checks the daemon's "a." path, not the anomaly scorer's tuning.
    d = daemon_factory(anomaly={"warmup": 5, "warn": 0, "alert": 0, "clear": 0}).start()
    sub = d.subscriber(b"a.lvl")
    sub.sync()
    t0 = 1700000000
    for i in range(30):
        d.send({"s": "lvl", "t": t0 + 60 * i, "v": 10 + math.sin(i / 4.0)})
    got = sub.collect(lambda g: len(g) >= 1, timeout=30)
    topic, m = got[0]
    assert topic == "a.lvl" and m["level"] == 2, m
    check_forecast(m)
    time.sleep(0.3)
    st = d.stats()
    # Sent once, on the change, not for every later sample.
    assert st["alerts"] == 1, st
    assert d.stop() == 0


def test_connect_mode_and_topic_filter(daemon_factory, tmp_path):
    """The daemon connects out (SUB with a topic filter, PUB) instead of binding."""
    import zmq as z
    from conftest import free_port
    ctx = z.Context.instance()
    src = ctx.socket(z.PUB)
    src.setsockopt(z.LINGER, 0)
    src_ep = "tcp://127.0.0.1:%d" % free_port()
    src.bind(src_ep)
    sink = ctx.socket(z.SUB)
    sink.setsockopt(z.LINGER, 0)
    sink.setsockopt(z.SUBSCRIBE, b"f.")
    sink_ep = "ipc://%s/sink.sock" % tmp_path
    sink.bind(sink_ep)
    d = daemon_factory(input={"endpoints": [{"type": "sub", "endpoint": src_ep, "bind": False,
                                             "topics": ["keep."]}]},
                       output={"endpoint": sink_ep, "bind": False}).start()
    deadline = time.time() + 15 * SLOW
    t = 1000
    got = []
    while time.time() < deadline and not got:
        t += 1
        src.send_multipart([b"drop.x", pack({"s": "dropped", "t": t, "v": 1.0})])
        src.send_multipart([b"keep.x", pack({"s": "kept", "t": t, "v": 1.0})])
        if sink.poll(200):
            topic, data = sink.recv_multipart()
            got.append((topic, msgpack.unpackb(data)))
    assert got and got[0][0] == b"f.kept", d.logtext()
    check_forecast(got[0][1])
    r = d.ctl("series")
    assert r["series"] == ["kept"]
    assert d.stop() == 0
    src.close()
    sink.close()


def test_heap_flat_while_ingesting(daemon):
    """No allocation on the per-sample path: our heap does not grow with samples."""
    series = ["hp%d" % k for k in range(10)]
    for i in range(20):
        daemon.send([{"s": s, "t": 100 + i, "v": float(i)} for s in series])
    daemon.wait_stats(lambda s: s["steps"] >= 200)
    heap0 = daemon.stats()["heap_bytes"]
    for i in range(20, 520):
        daemon.send([{"s": s, "t": 100 + i, "v": float(i % 7)} for s in series])
    daemon.send({"s": "hp0", "t": 50, "v": 1})   # and a few drops
    daemon.send(b"\xc1")
    st = daemon.wait_stats(lambda s: s["steps"] >= 5200 and s["dropped_total"] >= 2)
    assert st["heap_bytes"] == heap0, (heap0, st["heap_bytes"])
