"""runtime.jsonlog and runtime.journald: the JSON-lines log every engine component writes (no root)."""

import json
import os
import re
import socket

import pytest

from runtime import journald, jsonlog
from runtime.errors import InvalidArgument

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_entry_shape_and_order(tmp_path):
    path = tmp_path / "log"
    log = jsonlog.Logger(str(path), component="runtimed", journal=True, id="c1")  # a file wins over journald
    log.info("shim started", pid=42, obj=object())
    log.close()
    (e,) = lines(path)
    assert list(e)[:5] == ["time", "level", "msg", "component", "id"] and TIME.match(e["time"])
    assert (e["level"], e["msg"], e["component"], e["id"], e["pid"]) == ("info", "shim started", "runtimed", "c1", 42)
    assert e["obj"].startswith("<object object")  # not JSON: written as str()
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_levels_threshold_and_fields(tmp_path):
    path = tmp_path / "log"
    log = jsonlog.Logger(str(path), "warning", component="daemon")
    child = log.with_fields(namespace="ns", id="x")
    log.debug("no"), log.info("no"), log.warning("w"), child.error("e", id="y")
    assert [(e["level"], e["msg"], e.get("namespace"), e.get("id")) for e in lines(path)] == \
        [("warning", "w", None, None), ("error", "e", "ns", "y")]
    assert child.fields == {"component": "daemon", "namespace": "ns", "id": "x"} and log.fields == {"component": "daemon"}
    with pytest.raises(InvalidArgument, match="invalid log level 'loud'"):
        jsonlog.Logger(level="loud", component="daemon")


def test_fd_output_and_never_raising(tmp_path):
    r, w = os.pipe()
    log = jsonlog.Logger(fd=w, level="debug", component="shim", journal=False, id="c")
    log.debug("d")
    os.close(w)
    assert json.loads(os.read(r, 4096))["msg"] == "d"
    os.close(r)
    log.info("the fd is closed: dropped, not raised")
    closed = jsonlog.Logger(str(tmp_path / "l"), component="x")
    closed.close()
    closed.info("after close: dropped")
    assert (tmp_path / "l").read_text() == ""


def test_tier_loggers_keep_their_component_and_identifier():
    from runtime.daemon.log import Logger as DaemonLogger
    from runtime.highlevel.log import Logger as RuntimedLogger
    d, r = DaemonLogger(), RuntimedLogger(journal=False, namespace="n")
    assert (d.fields, d.identifier) == ({"component": "daemon"}, "capsized")
    assert (r.fields, r.identifier, r.to_stderr) == ({"component": "runtimed", "namespace": "n"}, "capsize-runtimed", True)
    assert type(r.with_fields(id="x")) is RuntimedLogger


class FakeJournal:
    """Stands in for python3-systemd's module (the kernel is not involved: journald is a peer)."""

    def __init__(self, refuse=False):
        self.sent, self.refuse = [], refuse

    def send(self, msg, **fields):
        if self.refuse:
            raise OSError("journald refused")
        self.sent.append((msg, fields))


def test_journal_fields_and_fallback():
    r, w = os.pipe()
    log = jsonlog.Logger(fd=w, component="runtimed", identifier="capsize-runtimed", journal=False, id="c")
    log._journal = FakeJournal()
    log.warning("cleaning up dead shim", pid=7, **{"exit-status": 137, "_hidden": "x"})
    assert log._journal.sent == [("cleaning up dead shim", {
        "PRIORITY": "4", "SYSLOG_IDENTIFIER": "capsize-runtimed", "COMPONENT": "runtimed", "ID": "c",
        "PID": "7", "EXIT_STATUS": "137", "HIDDEN": "x"})]
    log._journal = FakeJournal(refuse=True)
    log.error("journald is down")
    os.close(w)
    assert json.loads(os.read(r, 4096))["msg"] == "journald is down"
    os.close(r)


def test_journal_stream_detection(monkeypatch):
    a, b = socket.socketpair()
    try:
        st = os.fstat(a.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert journald.stream_connected(a.fileno())
        assert not journald.stream_connected(b.fileno())  # inherited variable, redirected fd
        monkeypatch.setenv("JOURNAL_STREAM", "garbage:x")
        assert not journald.stream_connected(a.fileno())
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not journald.stream_connected(a.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert not journald.stream_connected(9999)  # not open: False, no error
    finally:
        a.close(), b.close()


def test_journal_field_names():
    assert journald.field_name("id") == "ID" and journald.field_name("exit-status") == "EXIT_STATUS"
    assert journald.field_name("_x") == "X" and journald.field_name("--") == "FIELD"
    assert journald.field_name("ü") == "FIELD" and journald.field_name("a.b") == "A_B"
