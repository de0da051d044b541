# test_eval_live.py: end-to-end tests of `rwkvcast eval --live DIR`
# (tools/eval_live.c) through the real binary, on small generated CSVs in a
# tmp dir: the reference methods' numbers checked exactly where they are
# known in closed form (a constant slope, a pure daily sine, a gap, an
# irregular file), the summary's geometric means and flags against the
# per-file CSV, and malformed input (missing or empty dir, bad rows, a bad
# header, non-CSV files). Nothing is read outside the tmp dir but the model.
#
# SPDX-License-Identifier: MIT
import csv
import math
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("RWKVCAST") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "rwkvcast")
MODEL = os.path.join(ROOT, "model", "default.rwkv")
T0 = 1704067200  # 2024-01-01 00:00:00 UTC
DAY = 288  # rows per day at 5 min

pytestmark = pytest.mark.skipif(not os.path.exists(CLI) or not os.path.exists(MODEL),
                                reason="rwkvcast or the default model not built")


def stamp(t):
    days, s = divmod(int(t), 86400)
    y, m, d = civil(days)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


def civil(z):
    # Howard Hinnant's civil_from_days, the inverse of rp_days_from_civil.
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def write(path, rows, header="timestamp,value"):
    with open(path, "w") as f:
        f.write(header + "\n")
        for t, v in rows:
            f.write("%s,%s\n" % (stamp(t) if isinstance(t, int) else t, v))


def run(args, cwd=ROOT, timeout=300):
    return subprocess.run([CLI, "eval", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def evaluate(d, *extra):
    out = d.parent / ("%s.out.csv" % d.name)
    p = run(["--live", str(d), "-m", MODEL, "--csv", str(out), *extra])
    rows = {}
    if out.exists():
        with open(out) as f:
            rows = {r["file"]: r for r in csv.DictReader(f)}
    return p, rows


def num(r, k):
    return float(r[k]) if r[k] != "" else None


def slope_rows(n, skip=()):
    return [(T0 + 300 * i, 100 + 2 * i) for i in range(n) if i not in skip]


def test_help_states_the_definitions():
    p = run(["--live", "--help"])
    assert p.returncode == 0
    assert "Usage: rwkvcast eval --live [DIR]" in p.stdout
    for words in ("Scored rows: i >= n/2", "one day (86400 s)", "origins o = n/2 + 24k", "cov80",
                  "pinball", "geometric means"):
        assert words in p.stdout, words
    p = run(["--help"])
    assert "rwkvcast eval --live [DIR]" in p.stdout


def test_constant_slope_reference_numbers_are_exact(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    n = 700
    write(d / "slope.csv", slope_rows(n))
    p, rows = evaluate(d)
    assert p.returncode == 0, p.stderr
    r = rows["slope.csv"]
    assert (r["rows"], r["dropped"], r["dt"], r["snaive_lag"], r["alpha"]) == ("700", "0", "300", "288", "1.00")
    # One step: rows 350..699; naive misses by the slope, snaive by a day of it,
    # ses with a = 1 is naive; naive's interval is y itself (all its errors are 2).
    assert (r["one_n"], r["one_n_snaive"]) == ("350", "350")
    assert num(r, "one_mae_naive") == 2 and num(r, "one_mae_ses") == 2
    assert num(r, "one_mae_snaive_s") == 576 and num(r, "one_mae_naive_s") == 2
    assert num(r, "one_r_snaive_naive") == 288 and num(r, "one_r_ses_naive") == 1
    assert num(r, "one_cov_naive") == 1 and num(r, "one_cov_snaive") == 1 and num(r, "one_cov_ses") == 1
    assert num(r, "one_pinball_naive") == pytest.approx(2 / 6, rel=1e-9)
    assert num(r, "one_pinball_snaive") == pytest.approx(576 / 6, rel=1e-9)
    assert num(r, "one_r_model_naive") == pytest.approx(num(r, "one_mae_model") / 2, rel=1e-8)
    # 1..48 steps from origins 350, 374, ..., 686: naive misses by 2h, snaive by 576.
    hs = [h for o in range(n // 2, n - 1, 24) for h in range(1, 49) if o + h < n]
    assert r["origins"] == "15" and r["multi_n"] == str(len(hs)) == "674"
    assert num(r, "multi_mae_naive") == pytest.approx(2 * sum(hs) / len(hs), rel=1e-9)
    assert num(r, "multi_mae_ses") == num(r, "multi_mae_naive")
    assert num(r, "multi_mae_snaive_s") == 576
    assert num(r, "multi_r_snaive_naive") == pytest.approx(576 * len(hs) / (2 * sum(hs)), rel=1e-8)
    assert num(r, "multi_cov_naive") == 1 and num(r, "multi_cov_snaive") == 1
    for k in ("one_cov_model", "multi_cov_model"):
        assert 0 <= num(r, k) <= 1
    assert "slope " in p.stdout and "One step ahead" in p.stdout and "1..48 steps ahead" in p.stdout


def test_daily_sine_seasonal_naive_is_exact(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    n = 3 * DAY
    ys = [repr(50 + 10 * math.sin(2 * math.pi * (i % DAY) / DAY)) for i in range(n)]
    write(d / "sine.csv", [(T0 + 300 * i, ys[i]) for i in range(n)])
    p, rows = evaluate(d)
    assert p.returncode == 0, p.stderr
    r = rows["sine.csv"]
    y = [float(v) for v in ys]
    one = range(n // 2, n)
    assert r["one_n"] == r["one_n_snaive"] == str(len(one))
    assert num(r, "one_mae_snaive_s") == 0 and num(r, "one_r_snaive_naive") == 0
    # Nothing beats a perfect snaive: ratios against it are n/a, not infinite.
    assert r["one_r_model_snaive"] == "" and r["one_r_ses_snaive"] == ""
    assert num(r, "one_mae_naive") == pytest.approx(sum(abs(y[i] - y[i - 1]) for i in one) / len(one), rel=1e-9)
    # ses: a from the grid 0.01..1 by the first half's one-step MAE, then run causally.
    def ses(a):
        lev, out = y[0], [y[0]]
        for v in y[1:]:
            lev = a * v + (1 - a) * lev
            out.append(lev)
        return out
    def fit_mae(a):
        lev = ses(a)
        return sum(abs(y[i] - lev[i - 1]) for i in range(1, n // 2)) / (n // 2 - 1)
    a = min((k / 100 for k in range(100, 0, -1)), key=fit_mae)
    assert num(r, "alpha") == pytest.approx(a)
    lev = ses(a)
    assert num(r, "one_mae_ses") == pytest.approx(sum(abs(y[i] - lev[i - 1]) for i in one) / len(one), rel=1e-6)
    assert num(r, "multi_mae_snaive_s") == 0
    assert "n/a" in p.stdout


def test_gap_pairs_are_aligned_in_time(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    rows = slope_rows(700, skip=range(500, 510))  # 50 minutes missing in the second half
    write(d / "gap.csv", rows)
    p, out = evaluate(d)
    assert p.returncode == 0, p.stderr
    r = out["gap.csv"]
    n = len(rows)
    assert r["rows"] == str(n) and r["snaive_lag"] == "288"
    # The row after the gap is 11 steps after the one before it.
    assert r["one_n"] == r["one_n_snaive"] == str(n - n // 2)
    assert num(r, "one_mae_naive") == pytest.approx((2 * (n - n // 2 - 1) + 22) / (n - n // 2), rel=1e-12)
    assert num(r, "one_mae_snaive_s") == 576
    t = [x[0] for x in rows]
    errs = [rows[o + h][1] - rows[o][1] for o in range(n // 2, n - 1, 24) for h in range(1, 49)
            if o + h < n and t[o + h] - t[o] == 300 * h]
    assert set(errs) == {2 * h for h in range(1, 49)}
    assert r["multi_n"] == str(len(errs))
    assert num(r, "multi_mae_naive") == pytest.approx(sum(errs) / len(errs), rel=1e-12)


def test_irregular_sampling_has_no_seasonal_naive(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    t, rows = T0, []
    for i in range(600):
        rows.append((t, 10 + (i % 7)))
        t += 200 if i % 2 else 400
    write(d / "irregular.csv", rows)
    p, out = evaluate(d)
    assert p.returncode == 0, p.stderr
    r = out["irregular.csv"]
    assert r["snaive_lag"] == "0" and r["one_n_snaive"] == "0"
    assert r["one_mae_snaive_s"] == "" and r["one_r_snaive_naive"] == "" and r["one_r_model_snaive"] == ""
    assert num(r, "one_mae_naive") > 0 and num(r, "one_r_model_naive") > 0


def summary_row(stdout, block, name):
    text = stdout.split("Summary:", 1)[1]
    if block == "one step":
        text = text.split("1..", 1)[0]
    else:
        text = "1.." + text.split("1..", 1)[1]
    m = re.search(r"^.{12} %s\s+(\S+)\s+(?:\[\s*\d+\])?\s*(\S+)\s+(?:\[\s*\d+\])?\s*(\S+)" % re.escape(name),
                  text, re.M)
    assert m, (name, text)
    return [float(x) if x != "n/a" else None for x in m.groups()]


def test_summary_groups_and_flags_follow_the_per_file_numbers(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    n = 2 * DAY + 100
    write(d / "google_a.csv", [(T0 + 300 * i, repr(5 + math.sin(i / 9) + 0.01 * i)) for i in range(n)])
    write(d / "other.csv", slope_rows(n))
    write(d / "third.csv", [(T0 + 300 * i, repr(20 + 3 * math.cos(i / 30))) for i in range(n)])
    p, rows = evaluate(d)
    assert p.returncode == 0, p.stderr
    assert "all (3)" in p.stdout and "google_* (1)" in p.stdout and "others (2)" in p.stdout
    for block, pre in (("one step", "one_"), ("1..48 steps", "multi_")):
        r = {k: num(v, pre + "r_model_naive") for k, v in rows.items()}
        allg, goog, others = summary_row(p.stdout, block, "model/naive")
        assert allg == pytest.approx((r["google_a.csv"] * r["other.csv"] * r["third.csv"]) ** (1 / 3), abs=6e-4)
        assert goog == pytest.approx(r["google_a.csv"], abs=6e-4)
        assert others == pytest.approx(math.sqrt(r["other.csv"] * r["third.csv"]), abs=6e-4)
    # Flags: '>1.05' exactly where model/naive exceeds 1.05 (one step table).
    table = p.stdout.split("One step ahead", 1)[1].split("1..48 steps ahead", 1)[0]
    for name, v in rows.items():
        line = next(x for x in table.splitlines() if x.startswith(name[:-4] + " "))
        assert (">1.05" in line) == (num(v, "one_r_model_naive") > 1.05), line
        cov = num(v, "one_cov_model")
        assert ("cov" in line.split("|")[-1]) == (int(v["one_n"]) >= 1000 and not 0.77 <= cov <= 0.83)


def test_bad_rows_are_reported_with_the_file_and_line(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    rows = [(stamp(t), v) for t, v in slope_rows(300)]
    rows.insert(10, ("yesterday", 5))        # line 12: bad timestamp
    rows.insert(20, (rows[19][0], 7))        # line 22: repeats the previous timestamp
    rows[30] = (rows[30][0], "abc")          # line 32: bad value, fed as missing
    write(d / "bad.csv", rows)
    (d / "notes.txt").write_text("not data\n")
    (d / "sub").mkdir()
    p, out = evaluate(d)
    assert p.returncode == 0, p.stderr
    path = str(d / "bad.csv")
    assert "Warning: '%s': 1 row with an unparseable timestamp skipped (first: line 12)." % path in p.stderr
    assert ("Warning: '%s': 1 row whose timestamp is not after the previous row's skipped, as the daemon"
            " refuses them (first: line 22)." % path) in p.stderr
    assert "Warning: '%s': 1 unparseable value taken as missing (first: line 32)." % path in p.stderr
    r = out["bad.csv"]
    assert (r["rows"], r["dropped"], r["bad_values"]) == ("300", "2", "1")
    assert "ignored (not a regular .csv file): notes.txt sub" in p.stdout


def test_unreadable_files_fail_by_name_and_the_rest_is_scored(tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    write(d / "good.csv", slope_rows(100))
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("time,val\n2024-01-01 00:00:00,1\n")
    write(d / "short.csv", slope_rows(5))
    p, rows = evaluate(d)
    assert p.returncode == 1
    err = p.stderr
    assert "Error: '%s': The file is empty (expected a header with timestamp,value)." % (d / "empty.csv") in err
    assert "Error: '%s': The header needs 'timestamp' and 'value' columns." % (d / "header.csv") in err
    assert "Error: '%s': Too few rows with a valid timestamp (5; at least 8 needed)." % (d / "short.csv") in err
    assert "Error: 3 of 4 files in '%s' could not be evaluated." % d in err
    assert list(rows) == ["good.csv"] and "good " in p.stdout


def test_missing_or_empty_dir(tmp_path):
    missing = tmp_path / "nope"
    p = run(["--live", str(missing), "-m", MODEL])
    assert p.returncode == 1
    assert "Error: Cannot open the live-metrics directory '%s' (No such file or directory)" % missing in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("x\n")
    p = run(["--live", str(empty), "-m", MODEL])
    assert p.returncode == 1 and "Error: No .csv file in '%s'." % empty in p.stderr
    # Without DIR: ../shared/data/live-metrics from the working directory, kept inside tmp_path.
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    p = run(["--live", "-m", MODEL], cwd=str(cwd))
    assert p.returncode == 1
    assert "Error: Cannot open the live-metrics directory '../shared/data/live-metrics'" in p.stderr
    p = run(["--live", str(empty), "--bogus"])
    assert p.returncode == 2 and "Error: Unknown option '--bogus'." in p.stderr
    p = run(["--live", str(empty), str(empty)])
    assert p.returncode == 2 and "Error: Unexpected argument '%s'." % empty in p.stderr
    p = run(["--live", str(empty), "--csv"])
    assert p.returncode == 2 and "Error: Option '--csv' needs a value." in p.stderr
