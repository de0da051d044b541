# test_control.py: end-to-end tests of the control socket's request framing:
# a request must be one frame; a multi-frame one is read whole and refused,
# and the socket keeps serving (it used to hang the daemon).
#
# SPDX-License-Identifier: MIT
import msgpack
import zmq

from conftest import SLOW, pack


def request(daemon, frames, timeout=5.0):
    """Sends frames as one multipart REQ request; returns the decoded reply."""
    s = daemon.zctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(daemon.ctl_ep)
    try:
        s.send_multipart(frames)
        assert s.poll(int(timeout * 1000 * SLOW)), "no reply to a %d-frame request:\n%s" % (
            len(frames), daemon.logtext())
        return msgpack.unpackb(s.recv(), raw=False)
    finally:
        s.close()


def test_multi_frame_request_is_refused(daemon):
    for frames in ([pack({"cmd": "ping"}), b"x"],
                   [pack({"cmd": "stats"}), b"", pack({"cmd": "ping"})]):
        r = request(daemon, frames)
        assert r["ok"] is False, r
        assert r["error"] == "Bad request: multi-frame requests are not accepted (%d frames)." % len(frames)
        # The next request on a new socket is served as usual.
        assert daemon.ctl("ping")["pong"] is True
    assert request(daemon, [pack({"cmd": "ping"})])["pong"] is True
    assert daemon.stop() == 0
