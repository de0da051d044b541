# test_threads.py: engine.threads and engine.pipeline (issue 7). A daemon
# stepping its series on two threads, or pipelined (engine threads step
# while the main thread does I/O), publishes exactly what a one-thread
# daemon stepping on its main thread publishes for the same input, bit for
# bit, per series in order; both shards get work.
#
# SPDX-License-Identifier: MIT
import math


def run(daemon_factory, name, threads, pipeline=True, n_series=200, n_steps=30):
    d = daemon_factory(name, engine={"max_batch": 256, "threads": threads, "pipeline": pipeline}).start()
    sub = d.subscriber(b"f.th")
    sub.sync()
    for i in range(n_steps):
        # One message per round: the daemon queues 200 samples before it
        # flushes, so the parallel path (>= 16 rows) is the one taken.
        d.send([{"s": "th%03d" % k, "t": 1700000000 + 60 * i,
                 "v": math.sin(i / 4.0 + k) * 5 + k + (25.0 if k == 7 and i > 20 else 0.0)}
                for k in range(n_series)])
    got = sub.collect(lambda g: len(g) >= n_series * n_steps, timeout=60)
    st = d.stats()
    assert d.stop() == 0
    sub.close()
    return got, st


def same_forecasts(one, two):
    assert len(one) == len(two) == 6000
    key = lambda m: (m["s"], m["t"])
    a = {key(m): m for _, m in one}
    b = {key(m): m for _, m in two}
    assert a.keys() == b.keys()
    for k, m in a.items():
        for f in ("yhat", "lo", "hi", "score", "level", "dt"):
            assert m[f] == b[k][f], (k, f, m[f], b[k][f])
    # Per series, results arrive in time order in the second run too.
    last = {}
    for _, m in two:
        assert m["t"] > last.get(m["s"], 0)
        last[m["s"]] = m["t"]


def test_pipeline_publishes_what_the_main_thread_does(daemon_factory):
    flat, st0 = run(daemon_factory, "flat", 1, pipeline=False)
    piped, st1 = run(daemon_factory, "piped", 1, pipeline=True)
    same_forecasts(flat, piped)
    assert st0["engine"]["pipeline"] is False and st1["engine"]["pipeline"] is True
    assert st1["engine"]["shard_steps"] == [st1["steps"]] and st1["engine"]["shard_busy_s"][0] > 0


def test_two_threads_publish_what_one_thread_does(daemon_factory):
    one, st1 = run(daemon_factory, "one", 1, pipeline=False)
    two, st2 = run(daemon_factory, "two", 2)
    same_forecasts(one, two)
    assert st1["engine"]["threads"] == 1 and len(st1["engine"]["shard_steps"]) == 1
    e = st2["engine"]
    assert e["threads"] == 2 and len(e["shard_steps"]) == 2 and len(e["shard_busy_s"]) == 2
    assert sum(e["shard_steps"]) == st2["steps"]
    # 200 series hashed into two shards: each gets a fair part.
    assert min(e["shard_steps"]) > 0.3 * st2["steps"], e
    assert all(x > 0 for x in e["shard_busy_s"]), e
