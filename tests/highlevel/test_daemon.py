"""The capsize-runtimed process itself: its sockets, systemd readiness, logs, command line, the
event stream's filters and replay, and the client's errors."""

from __future__ import annotations

import os
import socket
import stat
import uuid

import pytest

from runtime.errors import CapsizeError, Unavailable
from runtime.highlevel.client import RuntimeClient
from tests.conftest import run
from tests.highlevel.conftest import RUNTIMED


@pytest.mark.privileged
def test_sockets_logs_and_version(runtimed):
    d = runtimed()
    assert stat.S_IMODE(os.stat(d.address).st_mode) == 0o660
    events_sock = os.path.join(d.state, "runtimed", "events.sock")
    assert stat.S_ISSOCK(os.stat(events_sock).st_mode) and stat.S_IMODE(os.stat(events_sock).st_mode) == 0o600
    v = d.client().version()
    assert (v["pid"], v["root"], v["state"], v["api_version"]) == (d.proc.pid, d.root, d.state, 1)
    assert v["recovery"]["tasks"] == 0
    booted = d.messages(msg="capsize-runtimed successfully booted")
    assert booted and booted[0]["component"] == "runtimed" and booted[0]["level"] == "info"
    assert all({"time", "level", "msg", "component"} <= set(e) for e in d.log())
    assert d.client().namespaces() == ["default"]
    assert d.stop() == 0
    assert not os.path.exists(d.address) and not os.path.exists(events_sock)


@pytest.mark.privileged
def test_notifies_systemd_when_ready(runtimed, tmp_path):
    path = f"/run/capsize/hl-notify-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        d = runtimed(start=False)
        d.start()
        messages = sock.recv(4096).decode()
    finally:
        del os.environ["NOTIFY_SOCKET"]
        sock.close()
        os.unlink(path)
    assert "READY=1" in messages.split("\n") and f"MAINPID={d.proc.pid}" in messages


def test_command_line_errors_are_one_line(tmp_path):
    p = run([RUNTIMED, "--no-such-flag"])
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stderr.startswith("capsize-runtimed: ")
    long_state = "/run/capsize/hl-" + "x" * 100
    p = run([RUNTIMED, "--root", str(tmp_path / "r"), "--state", long_state])
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "too long for a unix socket" in p.stderr
    assert not os.path.exists(long_state) and not os.path.exists(tmp_path / "r"), "a refused start makes nothing"
    p = run([RUNTIMED, "--root", str(tmp_path / "r"), "--state", str(tmp_path / "s"), "--cgroup-parent", "rel"])
    assert p.returncode == 2 and "--cgroup-parent" in p.stderr


@pytest.mark.privileged
def test_client_errors(runtimed, tmp_path):
    rt = RuntimeClient(str(tmp_path / "nobody.sock"))
    with pytest.raises(Unavailable, match=r"capsize-runtimed is not reachable at unix://.*nobody.sock"):
        rt.version()
    d = runtimed()
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    s.settimeout(10)
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 400 Bad Request") and b"malformed HTTP request" in reply
    assert d.client().version()["pid"] == d.proc.pid, "the daemon keeps serving"


@pytest.mark.privileged
def test_event_stream_filters_and_since(daemon, busybox_image_tar):
    rt = daemon.client()
    other = rt.with_namespace("other")
    with rt.subscribe(topics=["/containers/create"], namespaces=["default"]) as mine, \
            rt.subscribe(topics=["/containers/*"]) as every, \
            rt.subscribe(namespaces=["other"]) as others:
        rt.create_container("a", "busybox", args=["true"])
        other.import_image(busybox_image_tar)
        assert others.next(timeout=5)["topic"] == "/images/create"
        with pytest.raises(CapsizeError):
            other.create_container("a", "nothing-here", args=["true"])  # refused: no event
        rt.update_container("a", labels={"k": "v"})
        rt.delete_container("a")
        assert mine.next(timeout=5)["event"]["id"] == "a"
        assert [every.next(timeout=5)["topic"] for _ in range(3)] == \
               ["/containers/create", "/containers/update", "/containers/delete"]
        with pytest.raises(CapsizeError):
            mine.next(timeout=0.2)
    seqs = [e["seq"] for e in _all(rt.subscribe(since=0))]
    assert seqs == list(range(1, len(seqs) + 1)), "the replay holds the whole run, in order"
    assert [e["topic"] for e in _all(rt.subscribe(since=seqs[-2]))] == ["/containers/delete"]
    boot = rt.version()["boot_id"]
    assert all(e["boot_id"] == boot for e in _all(rt.subscribe(since=0)))
    with pytest.raises(CapsizeError, match="must start with"):
        rt.subscribe(topics=["tasks"])
    other.delete_image("busybox:latest")


def _all(stream) -> list[dict]:
    got = []
    with stream:
        while True:
            try:
                got.append(stream.next(timeout=0.3))
            except CapsizeError:
                return got
