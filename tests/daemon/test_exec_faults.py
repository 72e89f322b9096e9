"""``docker exec`` across faults on capsize's engine (issue #15): an exec running when
capsize-runtimed is SIGKILLed keeps running and its real exit code is reported after the restart
(runtimed keeps exec records in the task's ``runtimed.json``); an exec whose shim is killed ends
with a labelled made-up code (``exec_die``'s ``exitCodeSource``); an exec that exited while both
runtimed and its shim were down gets its real status from the exit file the shim wrote."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from runtime.highlevel.client import RuntimeClient
from tests.daemon.test_faults import alive

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def runtime_client(stack) -> RuntimeClient:
    return RuntimeClient(os.path.join(stack.state, "runtimed.sock"), namespace="capsize")


def exec_detached(c, cid: str, script: str) -> str:
    eid = c.api.exec_create(cid, ["sh", "-c", script])["Id"]
    c.api.exec_start(eid, detach=True)
    return eid


def wait_exec(c, eid: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = c.api.exec_inspect(eid)
        if not info["Running"] and info["ExitCode"] is not None:
            return info
        time.sleep(0.1)
    raise AssertionError(f"exec {eid[:12]} still running after {timeout}s: {c.api.exec_inspect(eid)}")


def exec_dies(c, cid: str) -> list[dict]:
    events = c.api.events(since=0, until=int(time.time()) + 1, decode=True,
                          filters={"event": "exec_die", "container": cid})
    return [e["Actor"]["Attributes"] for e in events]


def reap_when_orphaned(*pids: int, timeout: float = 15.0) -> threading.Thread:
    """Reap *pids* once they are re-parented to this (subreaper) process and exit, as the
    harness or systemd would: a zombie keeps a cgroup v1 directory busy, so the dead-shim
    clean-up could not remove it."""
    def run():
        left, deadline = set(pids), time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for pid in list(left):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        left.discard(pid)
                except ChildProcessError:
                    if not os.path.exists(f"/proc/{pid}"):
                        left.discard(pid)
            time.sleep(0.005)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_exec_keeps_running_across_a_runtimed_kill9_and_reports_its_real_exit(fresh):
    c = fresh.client()
    box = c.containers.run("busybox", ["sleep", "1000"], detach=True)
    eid = exec_detached(c, box.id, "sleep 2; exit 7")
    pid = c.api.exec_inspect(eid)["Pid"]
    fresh.kill_runtime()
    assert alive(pid)                 # the exec process outlives the runtime daemon
    time.sleep(2.5)                   # it exits while runtimed is down
    fresh.start_runtime()
    info = wait_exec(c, eid)
    assert info["ExitCode"] == 7 and info["Pid"] == pid
    die = [a for a in exec_dies(c, box.id) if a["execID"] == eid]
    assert die and die[0]["exitCode"] == "7" and "exitCodeSource" not in die[0]   # real, like Docker's
    # runtimed's own record survives too
    assert runtime_client(fresh).exec_state(box.id, eid)["exit_status"] == 7
    box.remove(force=True)


def test_exec_whose_shim_is_killed_ends_with_a_labelled_made_up_code(fresh):
    c = fresh.client()
    box = c.containers.run("busybox", ["sleep", "1000"], detach=True)
    eid = exec_detached(c, box.id, "sleep 100")
    pid = c.api.exec_inspect(eid)["Pid"]
    reaper = reap_when_orphaned(pid, box.attrs["State"]["Pid"] or c.api.inspect_container(box.id)["State"]["Pid"])
    os.kill(runtime_client(fresh).task(box.id)["shim_pid"], signal.SIGKILL)
    info = wait_exec(c, eid)
    reaper.join()
    assert info["ExitCode"] == 137   # the dead-shim clean-up killed the live exec process
    die = [a for a in exec_dies(c, box.id) if a["execID"] == eid]
    assert die and die[0]["exitCodeSource"] == "cleanup-kill"
    assert not alive(pid)
    box.reload()
    assert box.status == "exited"
    box.remove(force=True)


def test_exec_exit_recorded_by_the_shim_survives_runtimed_and_shim_both_dying(fresh):
    """runtimed SIGKILLed; the exec exits (the shim writes its exit file); the shim is SIGKILLed
    too; runtimed restarts, finds the dead shim and its persisted exec record, and reports the
    exec's real status from the exit file (not a made-up one)."""
    c = fresh.client()
    box = c.containers.run("busybox", ["sleep", "1000"], detach=True)
    eid = exec_detached(c, box.id, "sleep 1; exit 5")
    task = runtime_client(fresh).task(box.id)
    fresh.kill_runtime()
    time.sleep(1.8)
    with open(os.path.join(task["bundle"], "runtimed.json")) as f:
        assert json.load(f)["execs"][eid]["status"] == "running"   # the record runtimed left
    assert os.path.exists(os.path.join(task["bundle"], "execs", eid, "exit"))
    reaper = reap_when_orphaned(task["pid"])
    os.kill(task["shim_pid"], signal.SIGKILL)
    fresh.start_runtime()
    info = wait_exec(c, eid)
    assert info["ExitCode"] == 5
    die = [a for a in exec_dies(c, box.id) if a["execID"] == eid]
    assert die and "exitCodeSource" not in die[0]
    reaper.join()
    box.remove(force=True)


def test_execs_end_when_their_container_dies(stack):
    """The init exits while an exec runs: the PID namespace goes, the kernel kills the exec, the
    live shim reports it (137, real) and capsized shows the exec ended (never Running forever)."""
    c = stack.client()
    box = c.containers.run("busybox", ["sh", "-c", "sleep 1.5"], detach=True)
    eid = exec_detached(c, box.id, "sleep 100")
    assert c.api.exec_inspect(eid)["Running"]
    info = wait_exec(c, eid)
    assert info["ExitCode"] == 137
    die = [a for a in exec_dies(c, box.id) if a["execID"] == eid]
    assert die and "exitCodeSource" not in die[0]
    box.remove(force=True)
