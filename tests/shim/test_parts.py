"""The shim's parts on their own, with real pipes, sockets and the shim's own event loop."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest

from runtime.errors import InvalidArgument
from runtime.shim import exitfile, paths
from runtime.rfc3339 import format_nano
from runtime.shim.events import Publisher
from runtime.shim.failpoints import Failpoint, from_config, parse_duration
from runtime.shim.logs import MAX_LINE, JsonFileWriter, LogCopier
from runtime.shim.loop import Loop
from runtime.jsonlog import Logger
from runtime.shim.task import parse_signal
from tests.shim.conftest import EventSink

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def test_rfc3339nano():
    assert format_nano(0) == "1970-01-01T00:00:00Z"
    assert format_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$", format_nano())


def test_failpoint_terms():
    fp = Failpoint("1*off->2*error(boom)->delay(250ms)")
    assert [fp.evaluate() for _ in range(5)] == [None, ("error", "boom"), ("error", "boom"),
                                                   ("delay", 0.25), ("delay", 0.25)]
    fp = Failpoint("1*delay(2s)")
    assert fp.evaluate() == ("delay", 2.0) and fp.evaluate() is None
    assert Failpoint("panic").evaluate() == ("panic", None)
    assert Failpoint("0%error(x)").evaluate() is None
    assert Failpoint("100%error(x)").evaluate() == ("error", "x")
    hits = sum(Failpoint("50%error(x)").evaluate() is not None for _ in range(400))
    assert 120 < hits < 280
    assert parse_duration("1.5") == 1.5 and parse_duration("20us") == pytest.approx(2e-5)
    for bad in ("sometimes", "1*explode", "delay(soon)", "x*off"):
        with pytest.raises(InvalidArgument):
            Failpoint(bad)
    points = from_config({"annotations": {"io.capsize.shim.failpoint.start": "1*delay(2s)", "other": "x"}})
    assert list(points) == ["start"]
    with pytest.raises(InvalidArgument, match="io.capsize.shim.failpoint.kill"):
        from_config({"annotations": {"io.capsize.shim.failpoint.kill": "nope("}})


def test_signals():
    assert parse_signal(9) == parse_signal("9") == parse_signal("KILL") == parse_signal("sigkill") == 9
    for bad in (0, 99, "SIGNOPE", None, True, 1.5):
        with pytest.raises(InvalidArgument):
            parse_signal(bad)


def test_socket_paths_and_layout(tmp_path):
    p = paths.socket_path("unix:///run/capsize/runtimed.sock", "default", "c1")
    assert p.startswith("/run/capsize/s/") and len(os.path.basename(p)) == 64
    assert p != paths.socket_path("unix:///run/capsize/runtimed.sock", "other", "c1")
    with pytest.raises(InvalidArgument, match="too long"):
        paths.socket_path("a", "b", "c", socket_dir="/" + "d" * 60)
    assert paths.default_runtime_root("/x/state/runtimed/tasks/ns1/c1", "ns1") == "/x/state/runc/ns1"
    assert paths.default_runtime_root("/somewhere/c1", "ns1") == "/run/capsize/runc/ns1"
    for bad in ("", "a/b", "-x", "x" * 200, "a b"):
        with pytest.raises(InvalidArgument):
            paths.check_id(bad, "id")


def test_exit_file_is_whole_or_absent(tmp_path):
    assert exitfile.read(str(tmp_path)) is None
    exitfile.write(str(tmp_path), 42, 137, "2026-01-01T00:00:00Z")
    assert exitfile.read(str(tmp_path)) == {"pid": 42, "exit_status": 137, "exited_at": "2026-01-01T00:00:00Z"}
    assert os.listdir(tmp_path) == ["exit"]
    (tmp_path / "exit").write_text("{garbage")
    assert exitfile.read(str(tmp_path)) is None


def _copy_through_pipe(tmp_path, chunks: list[bytes]) -> list[dict]:
    loop = Loop()
    r, w = os.pipe()
    writer = JsonFileWriter(str(tmp_path / "c.log"))
    copier = LogCopier(loop, r, "stdout", writer)
    for chunk in chunks:
        os.write(w, chunk)
        loop.run_once(0.1)
    os.close(w)
    while copier.fd >= 0:
        loop.run_once(0.1)
    writer.close()
    with open(tmp_path / "c.log") as f:
        return [json.loads(line) for line in f]


def test_json_file_log_lines_split_and_partial(tmp_path):
    entries = _copy_through_pipe(tmp_path, [b"one\ntw", b"o\n", b"x" * (MAX_LINE + 10) + b"\n", b"\xff\xfe tail"])
    assert [e["log"] for e in entries] == ["one\n", "two\n", "x" * MAX_LINE, "x" * 10 + "\n", "\ufffd\ufffd tail"]
    assert {e["stream"] for e in entries} == {"stdout"}
    assert all(set(e) == {"log", "stream", "time"} for e in entries)


def test_publisher_queues_in_order_with_bounded_queue_and_backoff(tmp_path, event_dir):
    loop = Loop()
    log_path = tmp_path / "shim.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT)
    sink = EventSink(os.path.join(event_dir, "rt.sock"))
    pub = Publisher(loop, sink.address, "ns1", Logger(fd=fd, level="debug", component="shim", journal=False), queue_max=4)
    for i in range(6):
        pub.publish("/tasks/test", {"container_id": "c", "n": i})
    assert pub.pending() == 4  # the two oldest were evicted
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        loop.run_once(0.05)
    sink.start()
    try:
        deadline = time.monotonic() + 5
        while pub.pending() and time.monotonic() < deadline:
            loop.run_once(0.05)
        assert pub.pending() == 0
        assert [e["event"]["n"] for e in sink.events] == [2, 3, 4, 5]
        assert [e["seq"] for e in sink.events] == [3, 4, 5, 6]
        assert all(e["namespace"] == "ns1" and e["timestamp"].endswith("Z") for e in sink.events)
        # the receiver goes away and comes back: later events still arrive, in order
        sink.stop()
        pub.publish("/tasks/test", {"container_id": "c", "n": 6})
        pub.publish("/tasks/test", {"container_id": "c", "n": 7})
        for _ in range(10):
            loop.run_once(0.05)
        sink.start()
        deadline = time.monotonic() + 5
        while pub.pending() and time.monotonic() < deadline:
            loop.run_once(0.05)
        assert [e["event"]["n"] for e in sink.events][-2:] == [6, 7]
    finally:
        pub.close()
        sink.stop()
        os.close(fd)
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["seq"] for e in log if e["msg"].startswith("evicting")] == [1, 2]


def test_publisher_does_not_block_on_a_silent_receiver(tmp_path, event_dir):
    """A receiver that accepts but never answers (a stopped daemon) costs the loop nothing."""
    loop = Loop()
    path = os.path.join(event_dir, "silent.sock")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(8)
    fd = os.open(tmp_path / "shim.log", os.O_WRONLY | os.O_CREAT)
    pub = Publisher(loop, path, "ns", Logger(fd=fd, level="debug", component="shim", journal=False))
    try:
        t0 = time.monotonic()
        pub.publish("/tasks/exit", {"container_id": "c"})
        loop.run_once(0)
        assert time.monotonic() - t0 < 0.1 and pub.pending() == 1
    finally:
        pub.close()
        silent.close()
        os.close(fd)
