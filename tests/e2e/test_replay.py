# test_replay.py: end-to-end tests of `rwkvcast replay` (tools/cmd_replay.c)
# through the real binary: one output row per input row, scores in [0,1],
# strict causality (appending rows never changes earlier output), and the
# documented handling of bad rows.
#
# SPDX-License-Identifier: MIT
import csv
import io
import math
import os
import random
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
BIN = os.environ.get("RWKVCAST") or os.path.join(ROOT, BUILD, "rwkvcast")
HEADER = ["timestamp", "value", "yhat", "lo", "hi", "anomaly_score", "level", "flag"]


def series(n, seed=1, start=1_700_000_000, dt=300):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        v = 10 + math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.1)
        if i == int(n * 0.7):
            v += 5  # a spike
        rows.append((start + i * dt, v))
    return rows


def write_csv(path, rows, header="timestamp,value"):
    with open(path, "w") as f:
        f.write(header + "\n")
        for t, v in rows:
            f.write(f"{t},{v}\n")


def replay(path, *args):
    p = subprocess.run([BIN, "replay", *args, str(path)], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert p.returncode == 0, p.stderr
    out = list(csv.reader(io.StringIO(p.stdout)))
    return out[0], out[1:]


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not os.path.exists(BIN):
        pytest.skip(f"{BIN} not built")


def test_one_row_per_input_row_and_scores_in_range(tmp_path):
    rows = series(600)
    path = tmp_path / "in.csv"
    write_csv(path, rows)
    head, out = replay(path)
    assert head == HEADER
    assert len(out) == len(rows)
    for (t, v), r in zip(rows, out):
        assert r[0] == str(t)
        assert float(r[1]) == pytest.approx(v)
        s = float(r[5])
        assert 0.0 <= s <= 1.0
        assert r[6] in ("0", "1", "2")
        assert r[7] == "ok"
    # No forecast before the first row; one-step forecasts from then on, ordered.
    assert out[0][2:5] == ["", "", ""]
    for r in out[1:]:
        lo, yhat, hi = float(r[3]), float(r[2]), float(r[4])
        assert lo <= yhat <= hi


def test_appending_rows_never_changes_earlier_rows(tmp_path):
    rows = series(700, seed=2)
    short, full = tmp_path / "short.csv", tmp_path / "full.csv"
    write_csv(short, rows[:400])
    write_csv(full, rows)
    _, a = replay(short)
    _, b = replay(full)
    assert len(a) == 400 and len(b) == 700
    assert a == b[:400]


def test_causal_future_values_do_not_leak(tmp_path):
    # Same first 300 rows, wildly different futures: identical first 300 outputs.
    rows = series(300, seed=3)
    fut1 = [(rows[-1][0] + 300 * (i + 1), 1e6) for i in range(100)]
    fut2 = [(rows[-1][0] + 300 * (i + 1), -1e6 * (i % 2)) for i in range(100)]
    p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(p1, rows + fut1)
    write_csv(p2, rows + fut2)
    _, a = replay(p1)
    _, b = replay(p2)
    assert a[:300] == b[:300]
    for r in a + b:
        assert 0.0 <= float(r[5]) <= 1.0


def test_bad_rows_keep_one_row_each(tmp_path):
    path = tmp_path / "bad.csv"
    with open(path, "w") as f:
        f.write("value,timestamp,other\n")
        f.write("1.0,2024-01-01 00:00:00,x\n")
        f.write("1.1,2024-01-01T00:05:00Z,x\n")
        f.write(",2024-01-01 00:10:00,x\n")        # missing value
        f.write("abc,2024-01-01 00:15:00,x\n")     # bad value
        f.write("1.2,not-a-time,x\n")              # bad time
        f.write("1.3,2024-01-01 00:15:00,x\n")     # not after the last accepted time
        f.write("1.4,1704068400,x\n")              # epoch seconds, 00:20:00
        f.write("inf,2024-01-01 00:25:00,x\n")     # infinite value
    head, out = replay(path)
    assert len(out) == 8
    flags = [r[7] for r in out]
    assert flags == ["ok", "ok", "missing", "bad_value", "bad_time", "old_time", "ok", "bad_value"]
    # Every row carries a score and a level.
    for r in out:
        assert 0.0 <= float(r[5]) <= 1.0 and r[6] in ("0", "1", "2")
    # Rows not fed: score 0 (not judged), the series' level, and the forecast
    # standing from the last row fed (row 3, the bad value, was fed as missing).
    for i in (4, 5):
        assert float(out[i][5]) == 0.0
        assert out[i][6] == out[3][6]
        lo, yhat, hi = float(out[i][3]), float(out[i][2]), float(out[i][4])
        assert lo <= yhat <= hi
    assert out[4][2:5] == out[5][2:5]
    # The row after them is judged against that same standing forecast.
    assert out[6][2:5] == out[5][2:5]
    # Before any forecast exists there is none to stand, but still a score.
    path2 = tmp_path / "first.csv"
    with open(path2, "w") as f:
        f.write("timestamp,value\nnot-a-time,1\n2024-01-01 00:00:00,1\n")
    head, out2 = replay(path2, "--horizon")
    assert out2[0][2:8] == ["", "", "", "0.000000", "0", "bad_time"]
    assert all(x == "" for x in out2[0][8:])


def test_horizon_columns(tmp_path):
    path = tmp_path / "in.csv"
    write_csv(path, series(50))
    head, out = replay(path, "--horizon")
    assert head[:8] == HEADER
    nh = (len(head) - 8) // 3
    assert nh >= 1 and head[8:11] == ["yhat_1", "lo_1", "hi_1"]
    assert all(len(r) == len(head) for r in out)


def test_usage_errors(tmp_path):
    p = subprocess.run([BIN, "replay"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert p.returncode == 2
    bad = tmp_path / "nohdr.csv"
    bad.write_text("a,b\n1,2\n")
    p = subprocess.run([BIN, "replay", str(bad)], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert p.returncode == 1
    assert "timestamp" in p.stderr
