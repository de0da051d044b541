# test_ops.py: the daemon in an operator's stack (issue 20): journald
# priorities on stderr, the HTTP endpoint (/metrics, /healthz, /series),
# retention of idle series.
#
# SPDX-License-Identifier: MIT
import os
import re
import subprocess

import pytest

from conftest import BINARY, SLOW, Daemon

PRIO_LINE = re.compile(r"^<([3-7])>\d+:D \d\d \w\w\w \d\d:\d\d:\d\d\.\d\d\d ([.\-*#!]) \w+: ")


def journal_env(d, ino_delta=0):
    # JOURNAL_STREAM is the device and inode of the stream systemd gave the
    # service as stderr (sd-daemon(3)); here, the daemon's log file.
    path = str(d.dir / "daemon.log")
    open(path, "ab").close()
    st = os.stat(path)
    return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino + ino_delta)}


def test_journal_priorities_when_stderr_is_the_journal(tmp_path):
    d = Daemon(tmp_path, "j")
    # An unusable WATCHDOG_USEC is a warning.
    d.start(env=dict(journal_env(d), WATCHDOG_USEC="abc"))
    # A second daemon on the same store cannot start: an error.
    d2 = Daemon(tmp_path, "j2")
    d2.cfg["state_db"] = d.db
    d2.log = open(str(d.dir / "daemon.log"), "ab")
    d2.write_config()
    r = subprocess.run([BINARY, "-c", d2.cfg_path], stdout=d2.log, stderr=d2.log,
                       env=dict(os.environ, **journal_env(d)), timeout=30 * SLOW)
    d2.log.close()
    assert r.returncode == 1
    assert d.stop() == 0
    lines = d.logtext().splitlines()
    prios = {}
    for ln in lines:
        m = PRIO_LINE.match(ln)
        assert m, "line without a priority prefix: %r" % ln
        # The level char and the priority agree.
        assert {"3": "!", "4": "#", "5": "*", "6": "-", "7": "."}[m.group(1)] == m.group(2), ln
        prios.setdefault(m.group(1), []).append(ln)
    assert any("WATCHDOG_USEC" in ln for ln in prios["4"])
    assert any("in use by another rwkvcastd" in ln for ln in prios["3"])
    assert any("ready" in ln for ln in prios["5"])


def test_no_priority_prefix_when_stderr_is_not_the_journal(tmp_path):
    # The variable is inherited by children whose stderr went elsewhere: a
    # stream that is not the one it names gets plain lines.
    d = Daemon(tmp_path, "p")
    d.start(env=journal_env(d, ino_delta=1))
    assert d.stop() == 0
    text = d.logtext()
    assert "ready" in text
    assert not re.search(r"^<\d>", text, re.M), text
    d = Daemon(tmp_path, "q")
    d.start(env={"JOURNAL_STREAM": "garbage:"})
    assert d.stop() == 0
    assert not re.search(r"^<\d>", d.logtext(), re.M)


# ---- HTTP ----

import http.client  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from conftest import ROOT, free_port  # noqa: E402

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NEED_PROM = "install Debian's 'prometheus' package (make deps) for the /metrics checks"

# Every family /metrics must have, with its type.
FAMILIES = {
    "rwkvcast_build_info": "gauge", "rwkvcast_start_time_seconds": "gauge",
    "rwkvcast_ingest_messages_total": "counter", "rwkvcast_ingest_bytes_total": "counter",
    "rwkvcast_samples_total": "counter", "rwkvcast_dropped_total": "counter",
    "rwkvcast_steps_total": "counter", "rwkvcast_forecasts_published_total": "counter",
    "rwkvcast_alert_events_total": "counter", "rwkvcast_series_active": "gauge",
    "rwkvcast_series_capacity": "gauge", "rwkvcast_series_created_total": "counter",
    "rwkvcast_series_evicted_total": "counter", "rwkvcast_series_refused_total": "counter",
    "rwkvcast_series_expired_total": "counter", "rwkvcast_store_rows_expired_total": "counter",
    "rwkvcast_checkpoints_total": "counter", "rwkvcast_checkpoint_failures_total": "counter",
    "rwkvcast_checkpoint_duration_seconds": "gauge", "rwkvcast_checkpoint_age_seconds": "gauge",
    "rwkvcast_engine_batch_size": "histogram", "rwkvcast_ingest_to_publish_seconds": "histogram",
    "rwkvcast_series_forecast": "gauge", "rwkvcast_series_forecast_lower": "gauge",
    "rwkvcast_series_forecast_upper": "gauge", "rwkvcast_series_anomaly_score": "gauge",
    "rwkvcast_series_alert_level": "gauge", "rwkvcast_http_requests_total": "counter",
}


def get(d, path, method="GET", body=None, headers=None, timeout=10):
    u = urllib.parse.urlsplit(d.http)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout * SLOW)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def parse_metrics(text):
    """{name{labels}: value} and {family: type} of a Prometheus text page."""
    samples, types = {}, {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            types[name] = typ
        elif ln and not ln.startswith("#"):
            k, v = ln.rsplit(" ", 1)
            samples[k] = float(v)
    return samples, types


def feed(d, series, n=40, t0=1_700_000_000):
    for i in range(n):
        d.send([{"s": s, "t": t0 + 60 * i, "v": 10.0 + (i % 7) + k} for k, s in enumerate(series)])


def http_daemon(daemon_factory, **http):
    cfg = {"listen": "127.0.0.1:%d" % free_port(), "series": "pump-*", "series_max": 1000, "horizons": [1, 6]}
    cfg.update(http)
    d = daemon_factory(http=cfg).start()
    return d


def test_metrics_page_names_types_and_promtool(daemon_factory, tmp_path):
    d = http_daemon(daemon_factory)
    feed(d, ["pump-1", "pump-2", "fan-1"])
    d.wait_stats(lambda st: st["steps"] >= 120)
    d.send(b"\xc1")  # one bad message: a drop by reason
    d.wait_stats(lambda st: st["dropped_total"] >= 1)
    st, hdr, body = get(d, "/metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    samples, types = parse_metrics(text)
    for fam, typ in FAMILIES.items():
        assert types.get(fam) == typ, (fam, types.get(fam))
    assert samples['rwkvcast_samples_total{outcome="accepted"}'] == 120
    assert samples['rwkvcast_dropped_total{reason="msgpack"}'] == 1
    assert samples["rwkvcast_steps_total"] == 120
    assert samples["rwkvcast_series_active"] == 3
    assert samples["rwkvcast_ingest_to_publish_seconds_count"] == 120
    assert samples["rwkvcast_engine_batch_size_sum"] == 120
    # Only the series matching http.series, at the configured steps.
    exported = {k for k in samples if k.startswith("rwkvcast_series_forecast{")}
    assert exported == {'rwkvcast_series_forecast{series="%s",step="%d"}' % (s, h)
                        for s in ("pump-1", "pump-2") for h in (1, 6)}
    g = d.ctl("get", s="pump-1")["forecast"]
    assert samples['rwkvcast_series_forecast{series="pump-1",step="6"}'] == pytest.approx(g["yhat"][5], rel=1e-6)
    assert samples['rwkvcast_series_forecast_lower{series="pump-1",step="1"}'] == pytest.approx(g["lo"][0], rel=1e-6)
    assert samples['rwkvcast_series_alert_level{series="pump-2"}'] in (0, 1, 2)
    assert 'model_hash="' in text and 'version="' in text
    if not PROMTOOL:
        pytest.fail(NEED_PROM)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (r.stdout, r.stderr)
    d.stop()


def test_series_gauges_are_capped_and_reloadable(daemon_factory):
    d = http_daemon(daemon_factory, series="*", series_max=2, horizons=[1])
    feed(d, ["a-%d" % i for i in range(5)], n=3)
    d.wait_stats(lambda st: st["steps"] >= 15)
    samples, _ = parse_metrics(get(d, "/metrics")[2].decode())
    assert samples["rwkvcast_series_exported"] == 2 and samples["rwkvcast_series_matched"] == 5
    assert len([k for k in samples if k.startswith("rwkvcast_series_anomaly_score{")]) == 2
    # Pattern and cap change with a reload (SIGHUP), the listen address does not need to.
    d.cfg["http"]["series"] = "a-4"
    d.write_config()
    assert d.ctl("reload")["ok"]
    samples, _ = parse_metrics(get(d, "/metrics")[2].decode())
    assert [k for k in samples if k.startswith("rwkvcast_series_alert_level{")] == \
        ['rwkvcast_series_alert_level{series="a-4"}']
    d.stop()


def test_concurrent_scrapes_share_a_page_rendered_in_slices(daemon_factory):
    # /metrics is rendered in slices while its scrapes wait (suspended);
    # scrapes that come meanwhile get the same page, each complete; one
    # that hangs up while waiting costs nothing; ingest goes on between.
    import threading
    d = http_daemon(daemon_factory, series="*", series_max=5000, horizons=[1, 2, 3])
    ids = ["c-%d" % i for i in range(900)]
    feed(d, ids, n=2)
    d.wait_stats(lambda st: st["steps"] >= 1800)
    results = []

    def scrape(method):
        results.append(get(d, "/metrics", method=method, timeout=30))

    # A client that sends its request and hangs up before the page is ready.
    u = urllib.parse.urlsplit(d.http)
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    s.close()
    th = [threading.Thread(target=scrape, args=("HEAD" if i == 0 else "GET",)) for i in range(8)]
    for t in th:
        t.start()
    for t in th:
        t.join(60 * SLOW)
    assert len(results) == 8
    for status, hdrs, body in results:
        assert status == 200 and hdrs["Content-Type"].startswith("text/plain; version=0.0.4")
    bodies = [b for _, h, b in results if b]
    assert len(bodies) == 7  # HEAD has none
    for b in bodies:
        samples, _ = parse_metrics(b.decode())
        assert samples["rwkvcast_series_exported"] == 900
        assert len([k for k in samples if k.startswith("rwkvcast_series_forecast{")]) == 2700
        assert b.endswith(b"\n") and b"rwkvcast_http_requests_total" in b
    samples, _ = parse_metrics(get(d, "/metrics")[2].decode())
    assert samples["rwkvcast_http_metrics_render_slices"] >= 1
    assert 0 < samples["rwkvcast_http_metrics_render_seconds"] < 10
    assert get(d, "/healthz")[0] == 200
    d.stop()


def test_healthz_index_and_series_json(daemon_factory):
    d = http_daemon(daemon_factory)
    weird = 'we"ird/\\id \u00e9'
    feed(d, ["pump-1", weird], n=5)
    d.wait_stats(lambda st: st["steps"] >= 10)
    assert get(d, "/healthz")[:1] == (200,) and get(d, "/healthz")[2] == b"ok\n"
    st, _, body = get(d, "/")
    assert st == 200 and b"/metrics" in body
    st, hdr, body = get(d, "/series/pump-1")
    assert st == 200 and hdr["Content-Type"] == "application/json"
    j = json.loads(body)
    c = d.ctl("get", s="pump-1")
    assert j["ok"] is True and j["s"] == "pump-1" and j["last_t"] == c["last_t"]
    assert j["forecast"]["yhat"] == pytest.approx(c["forecast"]["yhat"], rel=1e-6)
    st, _, body = get(d, "/series/" + urllib.parse.quote(weird, safe=""))
    assert st == 200 and json.loads(body)["s"] == weird
    # The label value of an id with a quote, backslash: escaped, promtool-clean page.
    text = get(d, "/metrics")[2].decode()
    assert "rwkvcast_series_anomaly_score{series=\"pump-1\"}" in text
    st, _, body = get(d, "/series/nope")
    assert st == 404 and json.loads(body) == {"ok": False, "error": "Unknown series."}
    d.stop()


def raw(d, data, timeout=5):
    """Sends raw bytes, returns what came back before the server closed or went quiet."""
    u = urllib.parse.urlsplit(d.http)
    with socket.create_connection((u.hostname, u.port), timeout=timeout * SLOW) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, OSError):
            pass
        return out


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "X" * 200])
def test_http_methods_other_than_get_head_are_refused(daemon_factory, method):
    d = http_daemon(daemon_factory)
    st, hdr, _ = get(d, "/metrics", method=method)
    assert st in (405, 400, 501), st
    if st == 405:
        assert hdr["Allow"] == "GET, HEAD"
    st, hdr, body = get(d, "/metrics", method="HEAD")
    assert st == 200 and body == b""
    assert d.ctl("ping")["ok"]
    d.stop()


def test_http_malformed_huge_and_absurd_requests(daemon_factory):
    d = http_daemon(daemon_factory)
    cases = [
        ("/series/", 400), ("/series/%", 400), ("/series/%zz", 400), ("/series/%ff%fe", 400),
        ("/series/" + "a" * 256, 400), ("/series/" + "%41" * 255, 404), ("/series/a%00b", 404),
        ("/../../etc/passwd", 404), ("/metrics/", 404), ("//metrics", 404), ("/METRICS", 404),
        ("/metrics?x=1&" + "y" * 1000, 200), ("/healthz#frag", 404), ("/series/pump-1?x", 404),
    ]
    for path, want in cases:
        st, _, _ = get(d, path)
        assert st == want, (path, st)
    # A body on a GET is refused (413), never read; the server closes at
    # once, so the unread body may turn the close into a reset first.
    for body in (b"x" * 10, b"x" * 100000):
        out = raw(d, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert out == b"" or out.startswith(b"HTTP/1.1 413"), out[:80]
    # Huge header and path: answered with an error or closed, never a crash.
    for req in (b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 100000 + b"\r\n\r\n",
                b"\x00\xff\x16\x03\x01garbage\r\n\r\n",
                b"GET /metrics HTTP/9.9\r\n\r\n",
                b"GET\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"):
        out = raw(d, req)
        assert out == b"" or out.startswith(b"HTTP/1."), out[:80]
    # Many connections at once, some left idle: the loop goes on.
    port = urllib.parse.urlsplit(d.http).port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]
    feed(d, ["pump-1"], n=3)
    d.wait_stats(lambda st: st["steps"] >= 3)
    for s in idle:
        s.close()
    # Beyond the connection limits new ones were refused; once the idle
    # ones are closed (and seen closed) the endpoint answers again.
    deadline = time.time() + 15 * SLOW
    while True:
        try:
            if get(d, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "HTTP did not recover after the idle connections closed"
        time.sleep(0.2)
    assert d.ctl("ping")["ok"] and d.alive()
    assert d.stop() == 0


def test_http_off_and_config_errors(daemon_factory, tmp_path):
    port = free_port()
    d = daemon_factory(http={"listen": ""}).start()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert d.stop() == 0
    for bad, msg in (('"nope"', "Invalid 'http.listen' value (nope)"), ('"1.2.3.4:0"', "Invalid 'http.listen'"),
                     ('"[::1:80"', "Invalid 'http.listen'"), ("[0]", "Invalid 'http.horizons' value (0)"),
                     ("[1, 1]", "Duplicate 'http.horizons' entry (1)"), ("-1", "Invalid 'http.series_max'")):
        key = "horizons" if "horizons" in msg else "series_max" if "series_max" in msg else "listen"
        p = tmp_path / ("bad_%s.yaml" % key)
        p.write_text("log_level: notice\nhttp:\n  %s: %s\n" % (key, bad))
        r = subprocess.run([BINARY, "-c", str(p), "--check-config"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and ("%s:3:" % p) in r.stderr and msg in r.stderr, r.stderr
    # The address taken: the daemon says so and exits 1 before serving.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        d2 = Daemon(tmp_path, "busy")
        d2.cfg["http"] = {"listen": "127.0.0.1:%d" % s.getsockname()[1]}
        d2.write_config()
        r = subprocess.run([BINARY, "-c", d2.cfg_path], capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 1 and "Cannot listen for HTTP" in r.stderr, r.stderr


def test_alert_rules_pass_promtool():
    if not PROMTOOL:
        pytest.fail(NEED_PROM)
    mon = os.path.join(ROOT, "docs", "monitoring")
    r = subprocess.run([PROMTOOL, "check", "rules", "rwkvcast.rules.yml"], cwd=mon, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([PROMTOOL, "test", "rules", "rwkvcast.rules.test.yml"], cwd=mon, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(mon, "rwkvcast.grafana.json")) as f:
        dash = json.load(f)
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for fam in ("rwkvcast_series_forecast", "rwkvcast_series_forecast_lower", "rwkvcast_series_forecast_upper",
                "rwkvcast_series_anomaly_score", "rwkvcast_dropped_total"):
        assert fam in exprs and fam in FAMILIES


def test_real_prometheus_scrapes_the_daemon(daemon_factory, tmp_path):
    # A real Prometheus server on loopback scrapes /metrics every second;
    # its query API then has the forecast gauge of a series we fed.
    if not PROMETHEUS:
        pytest.fail(NEED_PROM)
    d = http_daemon(daemon_factory)
    feed(d, ["pump-7"], n=30)
    d.wait_stats(lambda st: st["steps"] >= 30)
    want = d.ctl("get", s="pump-7")["forecast"]["yhat"][0]
    port = free_port()
    target = urllib.parse.urlsplit(d.http).netloc
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: rwkvcast\n    static_configs:\n"
                   "      - targets: ['%s']\n" % target)
    log = open(str(tmp_path / "prometheus.log"), "wb")
    p = subprocess.Popen([PROMETHEUS, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                          "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-lifecycle"],
                         stdout=log, stderr=log, cwd=str(tmp_path))
    try:
        q = urllib.parse.urlencode({"query": 'rwkvcast_series_forecast{series="pump-7",step="1"}'})
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, q)
        deadline = time.time() + 60 * SLOW
        res = []
        while time.time() < deadline and not res:
            assert p.poll() is None, open(str(tmp_path / "prometheus.log")).read()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    res = json.loads(r.read())["data"]["result"]
            except OSError:
                pass
            if not res:
                time.sleep(0.5)
        assert res, "no sample in Prometheus:\n" + open(str(tmp_path / "prometheus.log")).read()[-3000:]
        assert res[0]["metric"]["job"] == "rwkvcast"
        assert float(res[0]["value"][1]) == pytest.approx(want, rel=1e-6)
        # and Prometheus saw the target healthy
        q = urllib.parse.urlencode({"query": 'up{job="rwkvcast"}'})
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?%s" % (port, q), timeout=5) as r:
            assert json.loads(r.read())["data"]["result"][0]["value"][1] == "1"
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
    d.stop()


# ---- Retention ----

import sqlite3  # noqa: E402


def store_rows(d):
    con = sqlite3.connect("file:%s?mode=ro" % d.db, uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM series").fetchone()[0]
    finally:
        con.close()


def metrics(d):
    return parse_metrics(get(d, "/metrics")[2].decode())[0]


def wait_metrics(d, pred, timeout=30):
    deadline = time.time() + timeout * SLOW
    m = metrics(d)
    while not pred(m):
        assert time.time() < deadline, {k: v for k, v in m.items() if "series" in k or "rows" in k}
        time.sleep(0.2)
        m = metrics(d)
    return m


def test_churning_ids_three_times_series_max_with_the_default_policy(daemon_factory):
    # The default series.policy (evict) with a short series.idle_ttl: a
    # stream of new ids, 6 x series.max in waves, is accepted whole; memory
    # holds at most series.max, the store only the ids of the last few
    # seconds, and every eviction and expiry is on /metrics.
    mx, ttl = 50, 2
    d = daemon_factory(series={"max": mx, "idle_ttl": ttl}, checkpoint_interval=0.5)
    del d.cfg["series"]["policy"]  # the default
    d.start()
    heap0 = d.stats()["heap_bytes"]
    sent, peak_rows, t = 0, 0, 1_700_000_000
    for wave in range(6):
        ids = ["churn-%d-%d" % (wave, i) for i in range(mx)]
        for k in range(3):
            d.send([{"s": s, "t": t + k, "v": float(k)} for s in ids])
        sent += 3 * mx
        d.wait_stats(lambda st: st["steps"] >= sent)
        m = metrics(d)
        assert m["rwkvcast_series_active"] <= mx
        peak_rows = max(peak_rows, store_rows(d))
        time.sleep(1.0)
    m = metrics(d)
    assert m['rwkvcast_samples_total{outcome="accepted"}'] == sent
    assert m['rwkvcast_dropped_total{reason="limit"}'] == 0 and m["rwkvcast_series_refused_total"] == 0
    assert m["rwkvcast_series_evicted_total"] + m["rwkvcast_series_expired_total"] >= 5 * mx
    # Rows: what was evicted or checkpointed within about idle_ttl, never all 300 ids.
    assert peak_rows <= 4 * mx, peak_rows
    # Idle: every series leaves memory, then every row expires.
    m = wait_metrics(d, lambda m: m["rwkvcast_series_active"] == 0 and m["rwkvcast_store_rows_expired_total"] > 0)
    deadline = time.time() + 30 * SLOW
    while store_rows(d) > 0:
        assert time.time() < deadline, store_rows(d)
        time.sleep(0.3)
    m = metrics(d)
    assert m["rwkvcast_series_expired_total"] >= mx
    # Nothing per sample or per series stays allocated (a page MHD still
    # holds is freed once its connection is done).
    d.wait_stats(lambda st: st["heap_bytes"] == heap0)
    # An expired id that comes back starts afresh (its row is gone) and is counted as new.
    created = m["rwkvcast_series_created_total"]
    d.send({"s": "churn-0-0", "t": t + 100, "v": 1.0})
    wait_metrics(d, lambda m: m["rwkvcast_series_created_total"] == created + 1)
    assert d.stop() == 0


def test_refuse_policy_accepts_new_series_once_idle_ones_expire(daemon_factory):
    mx = 20
    d = daemon_factory(series={"max": mx, "policy": "refuse", "idle_ttl": 1}, checkpoint_interval=0.5).start()
    d.send([{"s": "old-%d" % i, "t": 1.7e9, "v": 1.0} for i in range(mx)])
    d.send([{"s": "new-%d" % i, "t": 1.7e9, "v": 1.0} for i in range(mx)])
    m = wait_metrics(d, lambda m: m["rwkvcast_series_refused_total"] == mx)
    assert m['rwkvcast_dropped_total{reason="limit"}'] == mx and m["rwkvcast_series_active"] == mx
    wait_metrics(d, lambda m: m["rwkvcast_series_expired_total"] >= mx and m["rwkvcast_series_active"] == 0)
    d.send([{"s": "new-%d" % i, "t": 1.7e9, "v": 1.0} for i in range(mx)])
    m = wait_metrics(d, lambda m: m["rwkvcast_series_active"] == mx)
    assert m["rwkvcast_series_refused_total"] == mx
    assert d.stop() == 0


def test_idle_ttl_config_errors(tmp_path):
    for bad, msg in (("-1", "Invalid 'series.idle_ttl' value (-1)"), ("0.5", "Invalid 'series.idle_ttl' value (0.5)"),
                     ("abc", "Invalid 'series.idle_ttl' value (abc)")):
        p = tmp_path / "c.yaml"
        p.write_text("series:\n  idle_ttl: %s\n" % bad)
        r = subprocess.run([BINARY, "-c", str(p), "--check-config"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and ("%s:2:" % p) in r.stderr and msg in r.stderr, r.stderr


# ---- rwkvcast plot ----

import math  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402

from conftest import ROOT as _ROOT  # noqa: E402,F811

CLI = os.environ.get("RWKVCAST") or os.path.join(_ROOT, os.environ.get("BUILD", "build"), "rwkvcast")
BAND, ALERT, VALUE = (0xc6, 0xdb, 0xef), (0xfc, 0xd0, 0xd0), (0x08, 0x30, 0x6b)


def decode_png(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def test_plot_draws_the_band_values_and_alert_spans(tmp_path):
    csv = tmp_path / "pump.csv"
    import random
    rnd = random.Random(1)
    lines = ["timestamp,value"]
    for i in range(600):
        # Noise the forecast cannot follow: a band wider than the values' line.
        v = 50 + 10 * math.sin(2 * math.pi * i / 96) + rnd.gauss(0, 2.5)
        if 450 <= i < 470:
            v += 60  # a shift the score must flag
        lines.append("%d,%.3f" % (1_700_000_000 + 900 * i, v))
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.png"
    model = os.path.join(_ROOT, "model", "default.rwkv")
    r = subprocess.run([CLI, "plot", "-m", model, "-o", str(out), "--width", "900", str(csv), str(csv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    w, h, rows = decode_png(out.read_bytes())
    assert w == 900 and h > 700  # two panels
    top = rows[:h // 2]
    count = {}
    for row in top:
        for px in row:
            count[px] = count.get(px, 0) + 1
    # The interval band: along most of the plot's width.
    band_cols = {x for row in top for x, px in enumerate(row) if px == BAND}
    assert count.get(BAND, 0) > 300 and len(band_cols) > 0.5 * (w - 90), (count.get(BAND), len(band_cols))
    assert count.get(VALUE, 0) > 500, count.get(VALUE)         # the values line
    assert count.get(ALERT, 0) > 0, "no alert span drawn"       # the shift's alert span
    # The band lies between the values' extremes: its rows are inside the plot box.
    band_rows = [y for y, row in enumerate(top) if BAND in row]
    assert 30 < min(band_rows) and max(band_rows) < h // 2 - 20


@pytest.mark.parametrize("args,body,code,msg", [
    ([], None, 2, "Usage: rwkvcast plot"),
    (["--width", "10"], "timestamp,value\n1,1\n2,2\n", 2, "Invalid '--width' value (10)"),
    ([], "nothing,here\n1,2\n", 1, "needs a timestamp and a value column"),
    ([], "", 1, "has no header"),
    ([], "timestamp,value\n1,1\n", 1, "fewer than two usable rows"),
    ([], "timestamp,value\nx,1\ny,2\n1,nan\n", 1, "fewer than two usable rows"),
    ([], 'timestamp,value\n1,"unterminated\n', 1, "Error: "),
    (["-o", "/nonexistent-dir/x.png"], "timestamp,value\n1,1\n2,2\n3,1e300\n", 1, "Cannot write"),
])
def test_plot_bad_input(tmp_path, args, body, code, msg):
    files = []
    if body is not None:
        f = tmp_path / "in.csv"
        f.write_text(body)
        files = [str(f)]
    model = os.path.join(_ROOT, "model", "default.rwkv")
    r = subprocess.run([CLI, "plot", "-m", model, "-o", str(tmp_path / "o.png")] + args + files,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == code and msg in r.stderr, (r.returncode, r.stderr)


def test_plot_too_many_series(tmp_path):
    f = tmp_path / "in.csv"
    f.write_text("timestamp,value\n1,1\n2,2\n")
    r = subprocess.run([CLI, "plot", "-o", str(tmp_path / "o.png")] + [str(f)] * 17, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "At most 16 series" in r.stderr


def test_bash_completion_lists_commands_and_options():
    script = os.path.join(_ROOT, "tools", "rwkvcast.bash")
    bindir = os.path.dirname(os.path.abspath(CLI))

    def complete(*words):
        cmd = ('PATH=%s:$PATH; source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _rwkvcast; printf "%%s\\n" "${COMPREPLY[@]}"'
               % (bindir, script, " ".join(words), len(words) - 1))
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30).stdout.split()

    assert "plot" in complete("rwkvcast", "pl") and "--version" in complete("rwkvcast", "--v")
    assert {"--out", "--width"} <= set(complete("rwkvcast", "plot", "--"))
    assert complete("rwkvcast", "ctl", "che") == ["checkpoint"]
