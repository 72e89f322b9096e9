"""Socket activation (seed E2): systemd-socket-activate holds the socket, the first docker call
starts capsized with ``-H fd://``; with nothing listening the CLI says it cannot connect."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import run
from tests.daemon.stack import DOCKER, Stack

ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(not ACTIVATE, reason="systemd-socket-activate is not installed (package systemd)")
def test_first_docker_call_starts_capsized(tmp_path):
    s = Stack(tmp_path / "dm")
    act = None
    try:
        s.start_runtime()
        argv = [a for a in s.daemon_argv() if a not in ("-H", s.host)]
        act = subprocess.Popen([ACTIVATE, "-l", s.sock, argv[0], "-H", "fd://", *argv[1:]],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        end = time.monotonic() + 10
        while not os.path.exists(s.sock) and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.1)
        with open(f"/proc/{act.pid}/cmdline", "rb") as f:
            assert b"capsized" not in f.read().split(b"\0")[0]    # nothing started yet: only the activator
        t0 = time.monotonic()
        r = s.cli("ps")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("CONTAINER ID")
        assert time.monotonic() - t0 < 10
        with open(f"/proc/{act.pid}/cmdline", "rb") as f:
            assert b"capsized" in f.read()               # the activator exec()ed capsized: same pid
        with open(f"/proc/{act.pid}/environ", "rb") as f:
            assert b"LISTEN_FDS=1" in f.read().split(b"\0")
        act.send_signal(signal.SIGTERM)
        assert act.wait(30) == 0
        r = s.cli("ps")
        assert r.returncode == 1
        assert r.stderr.strip() == f"Cannot connect to the Docker daemon at {s.host}. Is the docker daemon running?"
    finally:
        if act is not None and act.poll() is None:
            act.kill()
            act.wait()
        s.close()


def test_fd_without_activation_fails_with_one_line(tmp_path):
    argv = Stack(tmp_path / "dm").daemon_argv()
    argv[argv.index("-H") + 1] = "fd://"
    r = run(argv, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == ("capsized: failed to start daemon: failed to load listeners: no sockets found via "
                                "socket activation: make sure the service was started by systemd")


def test_missing_socket_cli_error(tmp_path):
    host = f"unix://{tmp_path}/nonexistent.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = host
    r = run([DOCKER, "ps"], env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?"
