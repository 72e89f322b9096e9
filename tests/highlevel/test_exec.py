"""Exec processes through capsize-runtimed and the shim, on each low-level runtime: their own ids,
``/tasks/exec-added``, ``/tasks/exec-started`` and ``/tasks/exit`` (id = the exec id) events,
output through a FIFO, the exit status kept on disk, the shim reaping them (no zombie under it),
and the init never confused with them."""

from __future__ import annotations

import json
import os
import time

import pytest

from runtime.errors import AlreadyExists, CapsizeError, FailedPrecondition
from tests.highlevel.conftest import pid_alive, run_task, wait_until

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def proc(args, env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)):
    return {"args": list(args), "env": list(env), "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": False}


def zombies_of(pid: int) -> list[int]:
    """Children of *pid* that are zombies (state Z in /proc/<child>/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def events_until(events, pred, timeout=10.0):
    got = []
    while True:
        env = events.next(timeout=timeout)
        got.append(env)
        if pred(env):
            return got


@pytest.mark.parametrize("runtime", ["capsize-runc", "runc", "crun"])
def test_exec_runs_with_its_own_id_events_and_exit_file(daemon, tmp_path, runtime):
    rt = daemon.client()
    task = run_task(rt, "ex", ["sleep", "60"], runtime=runtime)
    fifo = str(tmp_path / "out")
    os.mkfifo(fifo)
    rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with rt.subscribe(topics=["/tasks/"], namespaces=["default"]) as events:
            ex = rt.exec_process("ex", "e1", proc(["sh", "-c", "echo hello from $$; exit 7"]), stdout=fifo)
            assert ex["exec_id"] == "e1" and ex["pid"] > 0 and ex["pid"] != task["pid"]
            got = events_until(events, lambda e: e["topic"] == "/tasks/exit")
        topics = [(e["topic"], e["event"].get("exec_id") or e["event"].get("id")) for e in got]
        assert topics == [("/tasks/exec-added", "e1"), ("/tasks/exec-started", "e1"), ("/tasks/exit", "e1")]
        exit_ev = got[-1]["event"]
        assert (exit_ev["container_id"], exit_ev["id"], exit_ev["exit_status"], exit_ev["pid"]) == \
            ("ex", "e1", 7, ex["pid"])
        os.set_blocking(rd, True)
        out = os.read(rd, 4096).decode()
        assert out.startswith("hello from ") and out.endswith("\n") and out.split()[-1].isdigit()
        st = rt.exec_state("ex", "e1")
        assert (st["status"], st["exit_status"]) == ("stopped", 7)
        with open(os.path.join(task["bundle"], "execs", "e1", "exit")) as f:
            on_disk = json.load(f)
        assert (on_disk["pid"], on_disk["exit_status"]) == (ex["pid"], 7)
        # the init is untouched: still running, same pid
        t = rt.task("ex")
        assert (t["status"], t["pid"], t["exit_status"]) == ("running", task["pid"], None)
        assert zombies_of(t["shim_pid"]) == []
        with pytest.raises(AlreadyExists):
            rt.exec_process("ex", "e1", proc(["true"]))
    finally:
        os.close(rd)
        rt.delete_task("ex", force=True)
        rt.delete_container("ex")


def test_exec_output_and_a_missing_command(daemon, tmp_path):
    rt = daemon.client()
    run_task(rt, "ex2", ["sleep", "60"])
    fifo = str(tmp_path / "out")
    os.mkfifo(fifo)
    rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        rt.exec_process("ex2", "out", proc(["echo", "hi", "there"]), stdout=fifo)
        os.set_blocking(rd, True)
        data = b""
        while True:
            chunk = os.read(rd, 4096)
            if not chunk:
                break
            data += chunk
        assert data == b"hi there\n"
        with pytest.raises(CapsizeError) as err:
            rt.exec_process("ex2", "missing", proc(["nosuch-command"]))
        assert "nosuch-command" in err.value.message and "not found" in err.value.message
        with pytest.raises(CapsizeError):
            rt.exec_state("ex2", "missing")   # a failed exec leaves no record
    finally:
        os.close(rd)
        rt.delete_task("ex2", force=True)
        rt.delete_container("ex2")


def test_exec_orphans_are_reaped_by_the_shim_and_never_taken_for_the_init(daemon):
    """Many short execs, each leaving a background child: the exec processes (re-parented to the
    shim by ``exec --detach``) are reaped at once; the init keeps running; no zombie under the shim."""
    rt = daemon.client()
    task = run_task(rt, "orph", ["sleep", "60"])
    try:
        with rt.subscribe(topics=["/tasks/exit"], namespaces=["default"]) as events:
            for i in range(5):
                rt.exec_process("orph", f"o{i}", proc(["sh", "-c", "sleep 0.3 & exit 0"]))
            seen = set()
            while len(seen) < 5:
                ev = events.next(timeout=10)["event"]
                assert ev["id"] != "orph", "an exec's exit was taken for the init's"
                seen.add(ev["id"])
        shim = rt.task("orph")["shim_pid"]
        time.sleep(0.5)   # the background sleeps end (they belong to the container's init)
        wait_until(lambda: zombies_of(shim) == [], timeout=3, what="no zombie under the shim")
        t = rt.task("orph")
        assert (t["status"], t["pid"]) == ("running", task["pid"]) and pid_alive(task["pid"])
    finally:
        rt.delete_task("orph", force=True)
        rt.delete_container("orph")


def test_exec_needs_a_running_task(daemon):
    rt = daemon.client()
    run_task(rt, "notyet", ["sleep", "60"], start=False)
    try:
        with pytest.raises(FailedPrecondition):
            rt.exec_process("notyet", "e", proc(["true"]))
    finally:
        rt.delete_task("notyet", force=True)
        rt.delete_container("notyet")
