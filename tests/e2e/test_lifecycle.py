# test_lifecycle.py: end-to-end lifecycle tests of rwkvcastd (issue 5):
# restart equivalence, kill -9 during ingest and checkpoints, SIGTERM,
# SIGHUP, config errors, sd_notify.
#
# SPDX-License-Identifier: MIT
import math
import os
import random
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time

from conftest import BINARY, SLOW, check_forecast


def integrity_ok(path):
    con = sqlite3.connect(path, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def feed(d, series, t_values, value_fn):
    for t in t_values:
        d.send([{"s": s, "t": t, "v": value_fn(s, t)} for s in series])


def value(s, t):
    k = int(s[-1])
    return 20 + 5 * math.sin(t / 3600.0 * 2 * math.pi + k) + 0.1 * k


def test_restart_gives_same_forecasts(daemon_factory):
    series = ["rs0", "rs1", "rs2"]
    t_all = [1700000000 + 300 * i for i in range(90)]
    first, second = t_all[:60], t_all[60:]

    # A: 60 samples, checkpoint, clean stop, restart, 30 more.
    a = daemon_factory("a").start()
    feed(a, series, first, value)
    a.wait_stats(lambda s: s["steps"] >= 180)
    r = a.ctl("checkpoint", wait=True)
    assert r["ok"] and r["rows"] == 3
    assert a.stop() == 0
    a.start()
    st = a.stats()
    assert st["restored"] == 3 and st["model_reset"] == 0
    sub = a.subscriber(b"f.rs")
    sub.sync()
    feed(a, series, second, value)
    got_a = sub.collect(lambda g: len(g) >= 90)

    # B: never stopped, all 90 samples.
    b = daemon_factory("b").start()
    feed(b, series, first, value)
    b.wait_stats(lambda s: s["steps"] >= 180)
    sub_b = b.subscriber(b"f.rs")
    sub_b.sync()
    feed(b, series, second, value)
    got_b = sub_b.collect(lambda g: len(g) >= 90)

    key = lambda g: {(m["s"], m["t"]): m for _, m in g}
    ka, kb = key(got_a), key(got_b)
    assert set(ka) == set(kb) and len(ka) == 90
    worst = 0.0
    for k in ka:
        check_forecast(ka[k])
        for f in ("yhat", "lo", "hi"):
            for x, y in zip(ka[k][f], kb[k][f]):
                worst = max(worst, abs(x - y) / max(1.0, abs(y)))
        assert abs(ka[k]["score"] - kb[k]["score"]) < 1e-4
        assert ka[k]["dt"] == kb[k]["dt"]
    print("restart vs never-stopped: max relative forecast difference %.3g" % worst)
    assert worst < 1e-4, worst
    assert a.stop() == 0 and b.stop() == 0


def test_checkpoint_in_chunks_while_ingesting(daemon_factory):
    """3000 dirty series span 12 snapshot chunks (256 rows each, 4 kept): the
    'checkpoint' command answers at once, ingest goes on while the snapshot is
    copied in slices, and one transaction holds every row (wait=true)."""
    n = 3000
    d = daemon_factory(checkpoint_interval=3600, series={"max": 4000}).start()
    names = ["ck%04d" % k for k in range(n)]
    for j in range(0, n, 500):
        feed(d, names[j:j + 500], [1000], lambda s, t: 1.0)
    d.wait_stats(lambda s: s["steps"] >= n)
    st = d.stats()
    for key in ("restore_s", "startup_s", "loop_max_s"):
        assert key in st and st[key] >= 0
    r = d.ctl("checkpoint")
    assert r["ok"] and r["started"] is True and "rows" not in r
    # Samples sent while the snapshot is in progress are stepped meanwhile.
    feed(d, names[:200], [1001], lambda s, t: 2.0)
    st = d.wait_stats(lambda s: s["checkpoint"]["count"] >= 1 and s["steps"] >= n + 200)
    assert st["checkpoint"]["last_rows"] == n, st["checkpoint"]
    assert st["checkpoint"]["last_snapshot_s"] > 0
    # The longest slice is the checkpoint's worst hold on the loop (no timing
    # bound here: speed is a benchmark's business, bench/RESULTS.md).
    assert 0 < st["checkpoint"]["last_slice_max_s"] <= st["checkpoint"]["last_snapshot_s"]
    assert st["checkpoint"]["snapshotting"] is False
    print("checkpoint of %d series: snapshot %.4f s on the loop, writer %.4f s, loop max %.4f s"
          % (n, st["checkpoint"]["last_snapshot_s"], st["checkpoint"]["last_duration"], st["loop_max_s"]))
    # The 200 updated series (if the cursor had passed them) are in the next one.
    r = d.ctl("checkpoint", wait=True)
    assert r["ok"] and r["rows"] <= 200
    con = sqlite3.connect(d.db)
    assert con.execute("SELECT count(*) FROM series").fetchone()[0] == n
    con.close()
    assert d.stop(signal.SIGKILL) != 0
    assert integrity_ok(d.db)
    d.start()
    st = d.stats()
    assert st["restored"] == n and st["restore_s"] > 0
    assert d.ctl("get", s="ck0007")["last_t"] == 1001
    assert d.ctl("get", s="ck2999")["last_t"] == 1000
    assert d.stop() == 0


def test_sigterm_writes_final_checkpoint(daemon_factory):
    d = daemon_factory(checkpoint_interval=3600).start()
    series = ["st%d" % k for k in range(20)]
    feed(d, series, [1000 + i for i in range(10)], value)
    d.wait_stats(lambda s: s["steps"] >= 200)
    t0 = time.time()
    assert d.stop(signal.SIGTERM) == 0
    assert time.time() - t0 < 10 * SLOW
    assert "Final checkpoint: 20 rows" in d.logtext()
    assert integrity_ok(d.db)
    con = sqlite3.connect(d.db)
    assert con.execute("SELECT count(*) FROM series").fetchone()[0] == 20
    assert con.execute("PRAGMA user_version").fetchone()[0] >= 1
    con.close()
    d.start()
    assert d.stats()["restored"] == 20
    assert d.ctl("get", s="st3")["last_t"] == 1009
    assert d.stop(signal.SIGINT) == 0


def test_kill9_during_ingest_and_checkpoints(daemon_factory):
    interval = 0.3
    d = daemon_factory(checkpoint_interval=interval, series={"max": 2000}).start()
    series = ["k%03d" % i for i in range(200)]
    rng = random.Random(5)
    for rnd in range(10):
        stop = threading.Event()

        def producer():
            # Wall-clock timestamps: the restored state's time says how much was lost.
            while not stop.is_set():
                t = time.time()
                try:
                    d.send([{"s": s, "t": t, "v": math.sin(t) + i} for i, s in enumerate(series)])
                except Exception:
                    return
                time.sleep(0.002)

        th = threading.Thread(target=producer, daemon=True)
        th.start()
        time.sleep((0.6 + rng.random() * 0.8) * SLOW)
        before = d.ctl("get", s="k007")
        assert before["ok"], before
        d.proc.kill()  # SIGKILL, no warning
        d.proc.wait(timeout=10)
        stop.set()
        th.join(timeout=5)
        d.kill9() if d.proc else None
        d.close_push()
        assert integrity_ok(d.db), "round %d" % rnd
        d.start()
        after = d.ctl("get", s="k007")
        assert after["ok"], (rnd, after, d.logtext())
        lost = before["last_t"] - after["last_t"]
        print("kill -9 round %d: lost %.3f s of updates (interval %.1f s)" % (rnd, lost, interval))
        # At most one interval plus the writer's own time to commit.
        assert lost <= interval + 1.0 * SLOW, (rnd, lost)
        st = d.stats()
        assert st["model_reset"] == 0 and st["restored"] >= 1
    assert d.stop() == 0


def test_config_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_level: notice\noutput:\n  sndhwm: -5\n")
    p = subprocess.run([BINARY, "-c", str(bad)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert lines[0] == ("%s:3:11: Invalid 'output.sndhwm' value (-5): expected an integer in 0..100000000."
                        % bad), p.stderr
    assert lines[1] == ">>> '  sndhwm: -5'"
    bad.write_text("series:\n  max: 10\n  polcy: evict\n")
    p = subprocess.run([BINARY, "-c", str(bad), "--check-config"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and p.stderr.startswith("%s:3:3: Unknown key 'series.polcy'." % bad)
    bad.write_text("input:\n  endpoints: [ {type: sub, endpoint: 'tcp://127.0.0.1:1'\n")
    p = subprocess.run([BINARY, "-c", str(bad)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and p.stderr.startswith("%s:3:1: YAML syntax error" % bad), p.stderr
    # Nothing was bound or created before the error.
    assert sorted(os.listdir(str(tmp_path))) == ["bad.yaml"]
    p = subprocess.run([BINARY, "-c", str(tmp_path / "missing.yaml")], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "Cannot open config file" in p.stderr
    good = tmp_path / "good.yaml"
    good.write_text("log_level: debug\n")
    p = subprocess.run([BINARY, "-c", str(good), "--check-config"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    example = os.path.join(os.path.dirname(BINARY), "..", "config", "rwkvcast.example.yaml")
    if os.path.exists(example):
        p = subprocess.run([BINARY, "-c", example, "--check-config"], capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, p.stderr


def test_command_line_errors_exit_2(tmp_path):
    # rwkvcastd's options go through getopt_long like every rwkvcast command.
    cases = [
        (["--bogus"], "Error: Unknown option '--bogus'."),
        (["-c"], "Error: Option '-c' needs a value."),
        (["--config"], "Error: Option '--config' needs a value."),
        (["extra"], "Error: Unexpected argument 'extra'."),
        (["--check-config", "x", "y"], "Error: Unexpected argument 'x'."),
        (["--version=3"], "Error: Option '--version' takes no value."),
    ]
    for args, msg in cases:
        p = subprocess.run([BINARY] + args, capture_output=True, text=True, timeout=20, cwd=str(tmp_path))
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.splitlines()[0] == msg, (args, p.stderr)
    # Nothing was bound or created.
    assert os.listdir(str(tmp_path)) == []
    p = subprocess.run([BINARY, "--config=%s" % (tmp_path / "none.yaml"), "--check-config"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "Cannot open config file" in p.stderr
    p = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stdout.startswith("rwkvcastd ")


def test_no_config_runs_on_defaults_in_state_directory(tmp_path):
    # Defaults bind 7701/7702/7703 on 127.0.0.1; skip when something else holds them.
    for port in (7701, 7702, 7703):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                import pytest
                pytest.skip("port %d in use" % port)
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ, STATE_DIRECTORY=str(state))
    env.pop("RUNTIME_DIRECTORY", None)
    env.pop("NOTIFY_SOCKET", None)
    p = subprocess.Popen([BINARY], cwd=str(tmp_path), env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 15 * SLOW
    while time.time() < deadline and not (state / "rwkvcastd.sock").exists() and p.poll() is None:
        time.sleep(0.05)
    if p.poll() is not None:
        err = p.stderr.read().decode()
        if "Address already in use" in err or "Cannot listen for HTTP" in err:
            import pytest
            pytest.skip("default ports taken by another process")
        raise AssertionError(err)
    assert (state / "rwkvcastd.sock").exists()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert (state / "rwkvcast.db").exists()
    assert not (state / "rwkvcastd.sock").exists()


def stopped_daemon_with_series(daemon_factory, n, max_series):
    """A daemon that stored n series (one sample each) and stopped cleanly."""
    d = daemon_factory(series={"max": max_series, "policy": "refuse"})
    d.start()
    for i in range(n):
        d.send({"s": "series-%03d" % i, "t": 1700000000, "v": float(i)})
    d.wait_stats(lambda s: s["series"] >= n)
    assert d.stop() == 0
    return d


def test_lowering_series_max_says_where_the_rest_is(daemon_factory):
    # Restarting with a smaller series.max used to leave the other stored
    # series unloaded without a word.
    d = stopped_daemon_with_series(daemon_factory, 12, 20)
    d.cfg["series"]["max"] = 5
    d.start()
    log = d.logtext()
    assert ("The store holds 12 series but 'series.max' is 5: 7 stay in the store. With 'series.policy: refuse' "
            "their samples are dropped ('limit')") in log, log
    assert d.stop() == 0


def test_damaged_store_is_refused_unless_salvaged(daemon_factory):
    # One overwritten b-tree page used to give "ready" with part of the
    # series restored and every later checkpoint failing.
    d = stopped_daemon_with_series(daemon_factory, 200, 500)
    size = os.path.getsize(d.db)
    assert size >= 8 * 16384, size
    with open(d.db, "r+b") as f:
        f.seek(4 * 16384)
        f.write(bytes(random.Random(7).randrange(256) for _ in range(16384)))
    p = subprocess.run([BINARY, "-c", d.cfg_path], capture_output=True, text=True, timeout=60 * SLOW)
    assert p.returncode == 1, p.stderr
    assert "failed its integrity check" in p.stderr and "mv '%s' '%s.damaged'" % (d.db, d.db) in p.stderr, p.stderr
    assert "--salvage" in p.stderr
    # The operator asks for what can be read.
    p = subprocess.Popen([BINARY, "-c", d.cfg_path, "--salvage"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30 * SLOW
    while time.time() < deadline and not os.path.exists(d.ctl_ep[len("ipc://"):]) and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, p.stderr.read()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60 * SLOW)
    assert "salvaging what can be read" in err, err


def test_tampered_state_row_is_reset_not_loaded(daemon_factory):
    # A state blob edited in the store (one float changed, still finite) used
    # to be restored silently; its check value now refuses it.
    d = daemon_factory()
    d.start()
    for i in range(30):
        d.send([{"s": "a", "t": 1700000000 + i, "v": float(i)}, {"s": "b", "t": 1700000000 + i, "v": float(i)}])
    d.wait_stats(lambda s: s["decoded"] >= 60)
    assert d.stop() == 0
    con = sqlite3.connect(d.db)
    blob = bytearray(con.execute("SELECT state FROM series WHERE id = 'a'").fetchone()[0])
    blob[len(blob) // 2] ^= 0x01
    con.execute("UPDATE series SET state = ? WHERE id = 'a'", (bytes(blob),))
    con.commit()
    con.close()
    d.start()
    st = d.ctl("stats")
    assert st["model_reset"] == 1, st
    assert "State of series 'a' was unreadable" in d.logtext()
    assert d.ctl("get", s="b")["last_t"] == 1700000000 + 29
    assert d.stop() == 0


def test_one_daemon_per_store(daemon_factory, tmp_path):
    first = daemon_factory(name="first")
    first.start()
    first.send({"s": "mine", "t": 1700000000, "v": 1.0})
    assert first.ctl("checkpoint", wait=True)["ok"]
    # Same state_db, its own sockets: refused before anything is bound.
    second = daemon_factory(name="second", state_db=first.db)
    second.write_config()
    p = subprocess.run([BINARY, "-c", second.cfg_path], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1, p.stderr
    assert ("Store '%s' is in use by another rwkvcastd (pid %d)" % (first.db, first.proc.pid)) in p.stderr, p.stderr
    assert not os.path.exists(second.ctl_ep[len("ipc://"):])
    # The first one runs on, with its store and its series.
    assert first.ctl("get", s="mine")["ok"]
    assert first.stop() == 0
    # Once it has stopped (or died: kill -9 drops the lock too) the store is free.
    second.start()
    assert second.ctl("get", s="mine")["ok"]
    second.kill9()
    first.start()
    assert first.ctl("ping")["ok"]
    assert first.stop() == 0


def test_failed_start_leaves_the_running_control_socket_alone(daemon_factory, tmp_path):
    first = daemon_factory(name="first")
    first.start()
    # Another store, but the first one's ingest port (taken) and control path:
    # it fails to bind and must not unlink the socket it never bound.
    second = daemon_factory(name="second")
    second.cfg["input"]["endpoints"] = [{"type": "sub", "endpoint": first.sub, "bind": True, "topics": []}]
    second.cfg["control"]["endpoint"] = first.ctl_ep
    second.write_config()
    p = subprocess.run([BINARY, "-c", second.cfg_path], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode != 0, p.stderr
    assert os.path.exists(first.ctl_ep[len("ipc://"):])
    assert first.ctl("ping")["ok"]
    assert first.stop() == 0


def test_new_store_is_private_whatever_the_umask(daemon_factory, tmp_path):
    # Outside systemd (no StateDirectory mode) the store was created 0644:
    # every local user could read every series' state.
    old = os.umask(0o022)
    try:
        d = daemon_factory()
        d.start()
    finally:
        os.umask(old)
    d.send({"s": "a", "t": 1700000000, "v": 1.0})
    assert d.ctl("checkpoint", wait=True)["ok"]
    assert os.path.exists(d.db + ".lock")  # the one-daemon-per-store lock (issue 22)
    for suffix in ("", "-wal", "-shm", ".lock"):
        path = d.db + suffix
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))
    assert d.stop() == 0
    # An existing store keeps the mode its operator gave it.
    os.chmod(d.db, 0o640)
    d.start()
    assert stat.S_IMODE(os.stat(d.db).st_mode) == 0o640
    assert d.stop() == 0


def test_sd_notify_and_sighup(daemon_factory, tmp_path):
    path = str(tmp_path / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(0.2)
    msgs = []

    def drain(until, timeout):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline and not any(until in m for m in msgs):
            try:
                msgs.append(ns.recv(4096).decode())
            except socket.timeout:
                pass
        return any(until in m for m in msgs)

    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert drain("READY=1", 10)
    assert drain("WATCHDOG=1", 5)
    # SIGHUP re-reads the file: a new checkpoint interval applies at once.
    d.cfg["checkpoint_interval"] = 0.2
    d.write_config()
    d.proc.send_signal(signal.SIGHUP)
    d.send({"s": "hup", "t": 1, "v": 1.0})
    d.wait_stats(lambda s: s["checkpoint"]["interval"] == 0.2 and s["checkpoint"]["count"] >= 1)
    assert "Configuration reloaded" in d.logtext()
    assert d.stop() == 0
    assert drain("STOPPING=1", 5)
    ns.close()


def test_unusable_watchdog_usec_is_ignored_with_a_warning(daemon_factory):
    # A WATCHDOG_USEC that is not a positive number must not become a
    # watchdog timer of atof's choosing (0 or a prefix): warn and run on.
    for bad in ("12abc", "-5", "nan"):
        d = daemon_factory()
        d.start(env={"WATCHDOG_USEC": bad})
        assert d.ctl("ping")["ok"]
        assert "Ignoring 'WATCHDOG_USEC' (%s): not a positive number." % bad in d.logtext()
        assert d.stop() == 0


def test_state_from_other_model_is_reset_and_counted(daemon_factory):
    d = daemon_factory().start()
    for k in range(4):
        for i in range(5):
            d.send({"s": "mh%d" % k, "t": 100 + i, "v": float(i)})
    d.wait_stats(lambda s: s["steps"] >= 20)
    assert d.stop() == 0
    con = sqlite3.connect(d.db)
    # Another model's hash on one row; a damaged blob (with the right hash) on another.
    con.execute("UPDATE series SET model_hash = model_hash + 1 WHERE id = 'mh0'")
    con.execute("UPDATE series SET state = zeroblob(length(state)) WHERE id = 'mh1'")
    con.commit()
    con.close()
    d.start()
    st = d.stats()
    assert st["restored"] == 4 and st["model_reset"] == 2
    # Reset series start afresh (no last time); the others kept theirs.
    assert d.ctl("get", s="mh0")["last_t"] == 0
    assert d.ctl("get", s="mh1")["last_t"] == 0
    assert d.ctl("get", s="mh2")["last_t"] == 104
    sub = d.subscriber(b"f.mh0")
    sub.sync()
    d.send({"s": "mh0", "t": 50, "v": 1.0})
    got = sub.collect(lambda g: len(g) >= 1)
    check_forecast(got[0][1])
    assert d.stop() == 0
    # The final checkpoint rewrote both rows under this model: counted once,
    # not on every restart.
    d.start()
    st = d.stats()
    assert st["restored"] == 5 and st["model_reset"] == 0, st  # + the sync probe
    assert d.ctl("get", s="mh1")["last_t"] == 0
    assert d.ctl("get", s="mh0")["last_t"] == 50
    assert d.stop() == 0


def test_sigterm_during_flood_is_bounded_and_clean(daemon_factory):
    d = daemon_factory(checkpoint_interval=3600).start()
    series = ["fl%03d" % i for i in range(100)]
    stop = threading.Event()

    def producer():
        while not stop.is_set():
            t = time.time()
            try:
                d.send([{"s": s, "t": t, "v": 1.0} for s in series])
            except Exception:
                return

    th = threading.Thread(target=producer, daemon=True)
    th.start()
    time.sleep(1.0 * SLOW)
    before = d.ctl("get", s="fl042")
    assert before["ok"]
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=20 * SLOW)
    took = time.time() - t0
    stop.set()
    th.join(timeout=5)
    d.proc = None
    d.log.close()
    d.close_push()
    assert rc == 0 and took < 10 * SLOW, (rc, took, d.logtext())
    assert integrity_ok(d.db)
    d.start()
    after = d.ctl("get", s="fl042")
    # Nothing processed before the signal was lost.
    assert after["last_t"] >= before["last_t"]
    assert d.stop() == 0


def test_torture_short_variant():
    # `make torture` (100 rounds) in small: three kill -9s under load, each
    # restart with an intact store, every series restored and at most one
    # checkpoint interval lost (tests/torture.py says how it checks).
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run(["/usr/bin/python3", os.path.join(here, "..", "torture.py"), "--daemon", BINARY,
                        "--rounds", "3", "--series", "200", "--slack", str(1.0 * SLOW)],
                       capture_output=True, text=True, timeout=300 * SLOW)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "torture: 3/3 restarts with an intact store, 3/3 with every series restored, 3/3 with at most " \
           "one interval lost" in p.stdout, p.stdout
