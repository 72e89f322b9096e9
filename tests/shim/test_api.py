"""The shim's JSON-lines API under bad input, several clients, failpoints and a crash."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from runtime.errors import CapsizeError, DeadlineExceeded, InvalidArgument, NotFound, Unavailable, Unimplemented
from runtime.shim.client import ShimClient
from tests.shim.conftest import pid_alive, wait_gone

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def _raw(shim, payload: bytes, timeout: float = 5.0) -> list[dict]:
    """Send raw bytes on a fresh connection; return every reply line until the shim stops sending."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(shim.address[len("unix://"):])
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the shim hung up on an oversized line; its reply is still queued for us
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [json.loads(line) for line in data.splitlines()]


def test_bad_requests_get_errors_and_the_shim_keeps_serving(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    replies = _raw(shim, b"not json\n[1,2]\n{\"id\":1}\n{\"id\":2,\"method\":\"frobnicate\"}\n"
                         b"{\"id\":3,\"method\":\"state\",\"params\":[1]}\n\n{\"id\":4,\"method\":\"connect\"}\n")
    assert [r.get("error", {}).get("code") for r in replies] == [
        "invalid-argument", "invalid-argument", "invalid-argument", "unimplemented", "invalid-argument", None]
    assert replies[3]["id"] == 2 and "frobnicate" in replies[3]["error"]["message"]
    assert replies[5] == {"id": 4, "result": {"shim_pid": shim.pid, "task_pid": 0, "version": 1}}
    # an endless line: one error, the line is skipped, the connection goes on
    replies = _raw(shim, b"x" * (3 << 20) + b'\n{"id":5,"method":"connect"}\n')
    assert replies[0]["error"]["code"] == "invalid-argument" and "longer than" in replies[0]["error"]["message"]
    assert replies[1]["id"] == 5 and replies[1]["result"]["shim_pid"] == shim.pid
    with pytest.raises(Unimplemented):
        shim.call("checkpoint")
    with pytest.raises(NotFound, match="not created"):
        shim.call("exec", exec_id="e", process={"args": ["true"]})
    with pytest.raises(InvalidArgument, match="invalid signal"):
        shim.call("create")
        shim.call("kill", signal="SIGNOPE")
    with pytest.raises(InvalidArgument, match="log_path"):
        shims_second = shims.start(["true"], runtime=runc_bin)
        shims_second.call("create", log_path="relative.log")
    assert pid_alive(shim.pid) and shim.call("state")["status"] == "created"


def test_clients_abruptly_gone_do_not_hurt(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    shim.call("create")
    shim.call("start")
    for _ in range(20):  # connect, ask for a wait, vanish
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(shim.address[len("unix://"):])
        s.sendall(b'{"id":1,"method":"wait"}\n{"id":2,"method":"state"}\n')
        s.close()
    assert shim.call("state")["status"] == "running"


def test_several_clients_at_once(shims, runc_bin):
    shim = shims.start(["sh", "-c", "sleep 1; exit 4"], runtime=runc_bin)
    shim.call("create")
    shim.call("start")
    results, errors = [], []

    def waiter():
        try:
            with shim.new_client() as c:
                results.append(c.call("wait", timeout=20)["exit_status"])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for t in threads:
        t.start()
    # while eight clients wait, others are answered at once
    t0 = time.monotonic()
    for _ in range(20):
        with shim.new_client() as c:
            assert c.call("state")["status"] == "running"
    assert time.monotonic() - t0 < 1.0
    for t in threads:
        t.join(20)
    assert not errors and results == [4] * 8


def test_client_errors(shims, runc_bin, tmp_path):
    with pytest.raises(Unavailable, match="not reachable"):
        ShimClient.connect("unix://" + str(tmp_path / "nothing.sock"), timeout=1)
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    shim.call("create")
    shim.call("start")
    c = shim.new_client(timeout=0.3)
    with pytest.raises(DeadlineExceeded, match="wait"):
        c.call("wait")
    assert c.call("state")["status"] == "running"  # reconnects after a timed-out call
    c.close()


def _fds_on(pid: int, path: str) -> int:
    """How many of process *pid*'s descriptors are open on *path*."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == path
        except FileNotFoundError:
            pass   # closed meanwhile
    return n


@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "terminal"])
def test_bad_stdin_on_create_leaves_no_log_and_no_fd(shims, runc_bin, terminal):
    """A create refused for its stdin (not absolute, cannot be opened) makes no log file and
    keeps no descriptor; a retry leaks nothing either, and a good create holds the log once."""
    edit = (lambda c: c["process"].update(terminal=True)) if terminal else None
    shim = shims.start(["sleep", "100"], runtime=runc_bin, edit=edit)
    log = shim.file("container.log")
    for stdin, message in (("relative/fifo", "stdin must be an absolute path"),
                           (shim.file("no-such-fifo"), "cannot open stdin")):
        with pytest.raises(InvalidArgument, match=message):
            shim.call("create", stdin=stdin)
        assert not os.path.exists(log)
        assert _fds_on(shim.pid, log) == 0
        assert shim.call("connect")["task_pid"] == 0
    if not terminal:   # (the terminal case is created, with its pty, by tests/highlevel/test_tty.py)
        assert shim.call("create")["pid"] > 0
        assert os.path.exists(log) and _fds_on(shim.pid, log) == 1


def _annotate(**points):
    def edit(cfg):
        cfg["annotations"] = {f"io.capsize.shim.failpoint.{k}": v for k, v in points.items()}
    return edit


def test_failpoint_delay_holds_one_call_only(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin, edit=_annotate(start="1*delay(1s)"))
    shim.call("create")
    done = []
    t = threading.Thread(target=lambda: done.append(shim.new_client().call("start")))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.2)
    assert shim.call("state")["status"] == "created"  # the shim answers others meanwhile
    t.join(10)
    assert done and time.monotonic() - t0 >= 1.0
    assert shim.call("state")["status"] == "running"


def test_failpoint_sequence(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin, edit=_annotate(connect="1*off->1*error(boom)"))
    shim.call("connect")
    with pytest.raises(CapsizeError, match="boom"):
        shim.call("connect")
    shim.call("connect")


def test_failpoint_panic_is_a_shim_crash(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin, edit=_annotate(start="panic"))
    pid = shim.call("create")["pid"]
    with pytest.raises(Unavailable):
        shim.call("start")
    assert wait_gone(shim.pid)
    p, out = shim.delete_action()
    assert p.returncode == 0 and out["source"] == "cleanup-kill" and out["pid"] == pid
    assert out["exit_status"] == 137 and "created" in out["reason"]
    assert wait_gone(pid)


def test_bad_failpoint_fails_the_start(shims, runc_bin):
    bundle, cid = shims.bundle(["true"], edit=_annotate(start="sometimes"))
    p = shims.start_cli(bundle, cid, runc_bin)
    assert p.returncode != 0 and p.stderr.count("\n") == 1
    assert "io.capsize.shim.failpoint.start" in p.stderr and "sometimes" in p.stderr
    assert not os.path.exists(os.path.join(bundle, "address"))


def test_delete_action_after_an_unrecorded_exit_says_unknown(shims, runc_bin):
    """The shim dies, then its init exits on its own: no exit file, and the runtime's state says
    ``stopped`` — the delete action must not claim its kill (issue #21): 255, ``unknown``, why."""
    import signal
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    pid = shim.call("create")["pid"]
    shim.call("start")
    shim.close()
    os.kill(shim.pid, signal.SIGKILL)
    assert wait_gone(shim.pid)
    os.kill(pid, signal.SIGKILL)   # the init ends while nothing watches it (the reaper reaps it)
    assert wait_gone(pid, 5)
    p, out = shim.delete_action()
    assert p.returncode == 0, p.stderr
    assert (out["exit_status"], out["source"], out["pid"]) == (255, "unknown", pid), out
    assert "exited while its shim was dead" in out["reason"]
