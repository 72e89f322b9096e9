"""Terminals through capsize-runtimed and the shim, on each low-level runtime: the pty master
handed over ``--console-socket`` and held by the shim, the init's terminal output in the log as
one ``stdout`` stream, input from the stdin FIFO typed into the terminal, an exec process with a
terminal (output to its stdout FIFO), and ``resize`` reaching the pty (``stty size``)."""

from __future__ import annotations

import json
import os
import select
import time

import pytest

from runtime.errors import FailedPrecondition
from tests.highlevel.conftest import wait_until

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

RUNTIMES = ["capsize-runc", "runc", "crun"]


def tty_spec(args):
    from runtime.highlevel.containers import build_spec
    spec = build_spec({}, args)
    spec["process"]["terminal"] = True
    return spec


def log_text(path: str) -> tuple[str, set]:
    """The log's text and the set of its streams."""
    text, streams = "", set()
    try:
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                text += e["log"]
                streams.add(e["stream"])
    except FileNotFoundError:
        pass
    return text, streams


def read_until(fd: int, needle: str, timeout: float = 10.0) -> str:
    """Read *fd* (non-blocking) until *needle* appears; what was read."""
    out, deadline = b"", time.monotonic() + timeout
    while needle.encode() not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tty_init_log_input_resize_and_tty_exec(daemon, tmp_path, runtime):
    rt = daemon.client()
    stdin = str(tmp_path / "stdin")
    os.mkfifo(stdin)
    wr = os.open(stdin, os.O_RDWR | os.O_NONBLOCK)
    script = 'tty; while read line; do [ "$line" = size ] && stty size; echo "typed:$line"; done'
    rt.create_container("tt", "busybox:latest", runtime=runtime, spec=tty_spec(["sh", "-c", script]))
    out_fifo = str(tmp_path / "exec-out")
    os.mkfifo(out_fifo)
    rd = os.open(out_fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        task = rt.create_task("tt", stdin=stdin)
        rt.start_task("tt")
        log = os.path.join(task["bundle"], "container.log")
        os.write(wr, b"hello\n")
        assert wait_until(lambda: "typed:hello" in log_text(log)[0], 10), log_text(log)
        rt.resize("tt", 33, 111)
        os.write(wr, b"size\n")
        assert wait_until(lambda: "33 111" in log_text(log)[0], 10), log_text(log)
        text, streams = log_text(log)
        assert streams == {"stdout"}              # a TTY's log is one stream
        assert "/dev/pts/0" in text               # the container's own devpts
        assert "\r\n" in text                     # the terminal's line discipline (onlcr)
        # an exec process with a terminal of its own
        proc = dict(tty_spec(["sh", "-c", "tty; stty size; read x; stty size; echo got:$x"])["process"])
        proc["consoleSize"] = {"height": 20, "width": 70}
        in2 = str(tmp_path / "exec-in")
        os.mkfifo(in2)
        wr2 = os.open(in2, os.O_RDWR | os.O_NONBLOCK)
        try:
            ex = rt.exec_process("tt", "t1", proc, stdin=in2, stdout=out_fifo)
            first = read_until(rd, "20 70")
            assert "/dev/pts/1" in first and "20 70" in first, first
            rt.resize("tt", 21, 71, exec_id="t1")
            os.write(wr2, b"x\n")
            rest = read_until(rd, "got:x")
            assert "got:x" in rest and "21 71" in rest, rest   # the resize reached the exec's pty
            assert wait_until(lambda: rt.exec_state("tt", "t1")["status"] == "stopped", 10)
            assert ex["pid"] > 0
        finally:
            os.close(wr2)
    finally:
        os.close(rd)
        os.close(wr)
        rt.delete_task("tt", force=True)
        rt.delete_container("tt")
    assert not [d for d in os.listdir("/tmp") if d.startswith("pty") and
                os.path.exists(os.path.join("/tmp", d, "pty.sock"))]


def test_resize_without_a_terminal_is_refused(daemon):
    from tests.highlevel.conftest import run_task
    rt = daemon.client()
    run_task(rt, "nt", ["sleep", "60"])
    try:
        with pytest.raises(FailedPrecondition) as err:
            rt.resize("nt", 10, 10)
        assert "no terminal" in err.value.message
    finally:
        rt.delete_task("nt", force=True)
        rt.delete_container("nt")
