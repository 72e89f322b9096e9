"""Attached clients across an engine-daemon SIGKILL (issue #15, "attached clients get EOF or an
error when the daemon goes away, never hang"): ``docker attach`` from both docker CLIs (Debian's
20.10 and the newer one on PATH) with their stdin held open, and the docker SDK's attach socket
(``attach_socket``, the hijacked ``POST /containers/{id}/attach``) on a TTY and a non-TTY
container, all end within seconds of capsized being SIGKILLed; after the restart (no
live-restore) the containers are Exited (137) and their logs still answer. The harness's
scenario ``lifecycle/attach-across-daemon-restart`` holds the same on dockerd."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.daemon.test_exec import CLIS

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

TALK = ["sh", "-c", "while :; do echo tick; sleep 0.2; done"]


def _drain_until_closed(sock: socket.socket, within: float) -> bytes:
    """What *sock* yields until EOF or a reset; fails when it is still open after *within* seconds."""
    deadline = time.monotonic() + within
    data = b""
    while True:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"attach socket still open {within:g}s after the daemon died") from None
        except OSError:
            return data       # reset: an error, not a hang
        if not chunk:
            return data
        data += chunk


def test_attached_clients_end_when_the_daemon_is_killed(fresh):
    cl = fresh.client()
    plain = cl.containers.run("busybox", TALK, detach=True, stdin_open=True)
    tty = cl.containers.run("busybox", TALK, detach=True, stdin_open=True, tty=True)
    clis = [subprocess.Popen([binary, "attach", plain.id], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=fresh.env()) for binary in CLIS]
    socks = []
    for c in (plain, tty):
        s = cl.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        socks.append(s._sock)
    try:
        time.sleep(1)
        assert all(p.poll() is None for p in clis)         # attached and following
        fresh.kill_daemon()
        t0 = time.monotonic()
        for s in socks:
            assert b"tick" in _drain_until_closed(s, within=10)
        for p in clis:
            out, err = p.communicate(timeout=max(1, 10 - (time.monotonic() - t0)))   # no hang
            assert b"tick" in out and p.returncode in (0, 1), (p.returncode, err)
            assert b"Traceback" not in err
    finally:
        for s in socks:
            s.close()
        for p in clis:
            if p.poll() is None:
                p.kill()
                p.wait()
    fresh.start_daemon()
    for c in (plain, tty):
        c.reload()
        deadline = time.monotonic() + 20
        while c.status != "exited" and time.monotonic() < deadline:
            time.sleep(0.2)
            c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        assert b"tick" in c.logs(tail=3)
        c.remove()
