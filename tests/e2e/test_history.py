# test_history.py: the daemon's opt-in recent history (history.series,
# daemon/history.h), the `history` control command and `rwkvcast plot -e`
# drawing a running daemon's series (issue 20, item 4).
#
# SPDX-License-Identifier: MIT
import csv
import io
import math
import os
import random
import subprocess

import pytest

from conftest import BINARY, ROOT, SLOW
from test_ops import ALERT, BAND, CLI, VALUE, decode_png

MODEL = os.path.join(ROOT, "model", "default.rwkv")
T0 = 1_700_000_000


def pump(n, seed=1, shift=(450, 470)):
    """n samples of a noisy daily wave with a shift the score must flag."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        v = 50 + 10 * math.sin(2 * math.pi * i / 96) + rnd.gauss(0, 2.5)
        if shift[0] <= i < shift[1]:
            v += 60
        rows.append((T0 + 900 * i, v))
    return rows


def hist_daemon(factory, name="h", **history):
    """A daemon (stopped by the factory's teardown, also when a test fails)
    keeping the history of pump-* series."""
    h = {"series": "pump-*", "max_series": 4, "length": 400}
    h.update(history)
    return factory(name, model=MODEL, history=h)


def send_rows(d, sid, rows, batch=50):
    for i in range(0, len(rows), batch):
        d.send([{"s": sid, "t": t, "v": v} for t, v in rows[i:i + batch]])


def test_plot_from_a_running_daemon(tmp_path, daemon_factory):
    d = hist_daemon(daemon_factory).start()
    rows = pump(600)
    send_rows(d, "pump-1", rows)
    send_rows(d, "pump-2", pump(100, seed=2))
    d.wait_stats(lambda st: st["steps"] >= 700)
    h = d.ctl("history", s="pump-1")
    assert h["ok"] and h["held"] == 400 and h["length"] == 400 and len(h["t"]) == 400, h.get("error")
    assert h["t"] == [float(t) for t, _ in rows[-400:]]
    assert {len(h[k]) for k in ("v", "yhat", "lo", "hi", "score", "level")} == {400}
    assert 2 in h["level"]  # the shift raised an alert
    # The same rows as `rwkvcast replay` computes for the same samples: the
    # daemon's one-step forecasts are the ones replay reports per row.
    csvf = tmp_path / "pump.csv"
    csvf.write_text("timestamp,value\n" + "".join("%d,%r\n" % r for r in rows))
    r = subprocess.run([CLI, "replay", "-m", MODEL, str(csvf)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = list(csv.DictReader(io.StringIO(r.stdout)))[-400:]
    for k, row in enumerate(rep):
        for key in ("yhat", "lo", "hi"):
            a, b = float(row[key]), h[key][k]
            assert abs(a - b) <= 1e-3 * max(1.0, abs(a)), (k, key, a, b)
        assert int(row["level"]) == h["level"][k], k
    # limit: the newest ones.
    h3 = d.ctl("history", s="pump-1", limit=3)
    assert h3["ok"] and h3["t"] == h["t"][-3:] and h3["held"] == 400

    out = tmp_path / "p.png"
    r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-o", str(out), "--width", "900", "pump-1", "pump-2"],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr
    w, hgt, img = decode_png(out.read_bytes())
    assert w == 900 and hgt > 700  # two panels
    top = img[:hgt // 2]
    count = {}
    for line in top:
        for px in line:
            count[px] = count.get(px, 0) + 1
    band_cols = {x for line in top for x, px in enumerate(line) if px == BAND}
    assert count.get(BAND, 0) > 300 and len(band_cols) > 0.5 * (w - 90), (count.get(BAND), len(band_cols))
    assert count.get(VALUE, 0) > 500, count.get(VALUE)
    assert count.get(ALERT, 0) > 0, "no alert span drawn"
    band_rows = [y for y, line in enumerate(top) if BAND in line]
    assert 30 < min(band_rows) and max(band_rows) < hgt // 2 - 20
    st = d.stats()["history"]
    assert st["series"] == 2 and st["requests"] == 4 and st["errors"] == 0, st
    assert st["bytes"] >= 2 * 400 * 40
    assert d.stop() == 0


def test_history_bad_requests_are_refused_and_counted(tmp_path, daemon_factory):
    d = hist_daemon(daemon_factory, max_series=2).start()
    for sid in ("pump-1", "pump-2", "pump-3", "other"):
        send_rows(d, sid, pump(20))
    d.wait_stats(lambda st: st["steps"] >= 80)
    cases = [
        (dict(s="nope"), "Unknown series 'nope'."),
        (dict(s="other"), "does not match 'history.series' (pump-*)"),
        (dict(s="pump-3"), "'history.max_series' (2) series already have one"),
        (dict(), "Missing 's'"),
        (dict(s=12), "Missing 's'"),
        (dict(s="x" * 60000), "Unknown series 'xxxx"),  # control requests are capped at 64 KiB
        (dict(s="bad\nid\x00"), "Unknown series 'bad\\x0aid\\x00'."),
    ]
    for kw, msg in cases:
        r = d.ctl("history", **kw)
        assert r["ok"] is False and msg in r["error"], (kw, r)
    # Absurd limits: too large means all, a negative or non-integer one is ignored.
    for lim in (2**64 - 1, -5, "ten", 1.5, None):
        r = d.ctl("history", s="pump-1", limit=lim)
        assert r["ok"] and len(r["t"]) == 20, (lim, r)
    assert d.ctl("history", s="pump-1", limit=0)["t"].__len__() == 20
    st = d.stats()["history"]
    assert st["errors"] == len(cases) and st["full"] == 1 and st["series"] == 2, st
    # The metrics count them too.
    from test_ops import metrics
    m = metrics(d)
    assert m['rwkvcast_history_requests_total{outcome="error"}'] == len(cases)
    assert m["rwkvcast_history_full_total"] == 1 and m["rwkvcast_history_series"] == 2
    # plot -e: each refusal is the daemon's message, exit 1; nothing is written.
    out = tmp_path / "o.png"
    for sid, msg in (("nope", "Unknown series 'nope'."), ("other", "does not match")):
        r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-o", str(out), sid], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 1 and msg in r.stderr and not out.exists(), r.stderr
    r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-o", str(out), "x" * 300], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "Invalid series id" in r.stderr, r.stderr
    r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-m", MODEL, "pump-1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "'--model' is for CSV input" in r.stderr, r.stderr
    # A series with one sample has too little to draw.
    d.send({"s": "pump-9", "t": T0, "v": 1.0})
    d.ctl("forget", s="pump-1")  # frees a ring for pump-9's next sample
    d.send({"s": "pump-9", "t": T0 + 1, "v": 1.0})
    d.wait_stats(lambda st: st["history"]["series"] == 2 and st["steps"] >= 82)
    h9 = d.ctl("history", s="pump-9")
    assert h9["ok"] and len(h9["t"]) == 1, h9
    r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-o", str(out), "pump-9"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "at least two are needed" in r.stderr, r.stderr
    assert d.alive()
    assert d.stop() == 0
    # No daemon there: a bounded wait and a clear message.
    r = subprocess.run([CLI, "plot", "-e", d.ctl_ep, "-t", "300", "-o", str(out), "pump-1"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "No reply from" in r.stderr, r.stderr


def test_history_off_by_default(daemon_factory):
    d = daemon_factory("off").start()
    d.send({"s": "pump-1", "t": T0, "v": 1.0})
    d.wait_stats(lambda st: st["steps"] >= 1)
    r = d.ctl("history", s="pump-1")
    assert r["ok"] is False and "History is off" in r["error"]
    st = d.stats()["history"]
    assert st["series"] == 0 and st["bytes"] == 0 and st["errors"] == 1
    assert d.stop() == 0


def test_history_rings_are_freed_when_series_leave_memory(daemon_factory):
    # Evicted (series.max 3, policy evict) and forgotten series give their
    # ring back: the heap returns to where it was, and a newcomer gets one.
    d = hist_daemon(daemon_factory, "e", max_series=2, length=1000)
    d.cfg["series"] = {"max": 3, "policy": "evict"}
    d.start()
    heap0 = d.stats()["heap_bytes"]
    send_rows(d, "pump-1", pump(10))
    send_rows(d, "pump-2", pump(10))
    st = d.wait_stats(lambda st: st["history"]["series"] == 2)
    assert st["heap_bytes"] >= heap0 + 2 * 1000 * 40
    # Two more series evict pump-1 and pump-2 (least recently seen); pump-3 takes a ring.
    send_rows(d, "other-1", pump(3))
    send_rows(d, "pump-3", pump(3))
    send_rows(d, "other-2", pump(3))
    d.wait_stats(lambda st: st["evicted"] >= 2 and st["steps"] >= 29)
    r = d.ctl("history", s="pump-1")
    assert r["ok"] is False and "not in memory" in r["error"], r
    h3 = d.ctl("history", s="pump-3")
    assert h3["ok"] and len(h3["t"]) == 3, h3
    assert d.stats()["history"]["series"] == 1
    assert d.ctl("forget", s="pump-3")["ok"]
    d.wait_stats(lambda st: st["history"]["series"] == 0 and st["heap_bytes"] == heap0)
    assert d.stop() == 0


@pytest.mark.parametrize("body,msg", [
    ("history:\n  length: 1\n", "2:11: Invalid 'history.length' value (1)"),
    ("history:\n  length: 100001\n", "Invalid 'history.length' value (100001)"),
    ("history:\n  max_series: 0\n", "Invalid 'history.max_series' value (0)"),
    ("history:\n  max_series: abc\n", "Invalid 'history.max_series' value (abc)"),
    ("history:\n  max_series: 100000\n  length: 100000\n",
     "2:3: Invalid 'history' settings: 'max_series' x 'length' x 40 B is 372.5 GiB"),
    ("history:\n  series: [a, b]\n", "'history.series'"),
    ("history:\n  serie: '*'\n", "Unknown key 'history.serie'"),
    ("history:\n  series: '*'\n  series: 'a*'\n", "history.series"),
    ("history: 5\n", "'history'"),
])
def test_history_config_errors(tmp_path, body, msg):
    p = tmp_path / "c.yaml"
    p.write_text(body)
    r = subprocess.run([BINARY, "-c", str(p), "--check-config"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and msg in r.stderr and r.stderr.startswith(str(p) + ":"), r.stderr
