# test_systemd.py: the start errors an operator meets when the daemon runs
# as another user than the one that made its store (issue 22, item 8). The
# unit file's hardening score is checked in test_cli.py.
#
# SPDX-License-Identifier: MIT
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from conftest import BINARY, SLOW, Daemon



@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the daemon as another user")
def test_store_of_another_user_says_why(tmp_path):
    # A store made by root, then the daemon started as nobody: the start
    # error said "unable to open database file" and nothing more.
    base = tempfile.mkdtemp(prefix="rk_nonroot_")
    try:
        os.chmod(base, 0o777)
        bindir = os.path.join(base, "bin")
        os.mkdir(bindir, 0o755)
        binary = os.path.join(bindir, "rwkvcastd")
        shutil.copy(BINARY, binary)
        os.chmod(binary, 0o755)
        d = Daemon(tmp_path)
        d.dir = pathlib.Path(base) / "d"
        d.dir.mkdir()
        os.chmod(str(d.dir), 0o777)
        d.db = str(d.dir / "state.db")
        d.cfg["state_db"] = d.db
        d.ctl_ep = "ipc://%s/ctl.sock" % d.dir
        d.cfg["control"]["endpoint"] = d.ctl_ep
        d.cfg["input"]["endpoints"][0]["endpoint"] = "ipc://%s/in.sock" % d.dir
        d.cfg_path = str(d.dir / "rwkvcast.yaml")
        d.start()
        assert d.stop() == 0
        os.chmod(d.cfg_path, 0o644)
        os.unlink(d.db + ".lock")  # as if the operator had cleaned up
        p = subprocess.run([binary, "-c", d.cfg_path], capture_output=True, text=True, user=65534, group=65534,
                           extra_groups=[], cwd=str(d.dir), timeout=60 * SLOW)
        assert p.returncode == 1, p.stderr
        assert "Permission denied; rwkvcastd runs as uid 65534, gid 65534" in p.stderr, p.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
