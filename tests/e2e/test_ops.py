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
