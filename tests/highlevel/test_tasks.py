"""Containers and tasks through capsize-runtimed: the whole lifecycle with its events in order, on
each low-level runtime, and bad input answered with the right error and nothing left behind."""

from __future__ import annotations

import http.client
import json
import os
import socket

import pytest

from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.highlevel.conftest import CGROUP_PARENT, mount_points, pid_alive, run_task

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def topics_until(events, last: str, timeout: float = 10.0) -> list[dict]:
    """Envelopes from *events* up to and including the first with topic *last*."""
    got = []
    while True:
        env = events.next(timeout=timeout)
        got.append(env)
        if env["topic"] == last:
            return got


def in_cgroup(pid: int, path: str) -> bool:
    with open(f"/proc/{pid}/cgroup") as f:
        return any(line.rstrip().endswith(":" + path) for line in f)


def test_lifecycle_with_events_in_order(daemon):
    rt = daemon.client()
    with rt.subscribe(topics=["/containers/", "/tasks/"], namespaces=["default"]) as events:
        # a PID namespace's init gets only the signals it handles (pid_namespaces(7)): trap TERM
        c = rt.create_container("life", "busybox", labels={"lab": "capsize"},
                                args=["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.05; done"])
        assert (c["runtime"], c["snapshot_key"], c["labels"]) == ("capsize-runc", "life", {"lab": "capsize"})
        rt.update_container("life", labels={"lab": "capsize", "step": "2"})
        task = rt.create_task("life")
        assert task["status"] == "created" and task["pid"] > 0
        bundle = task["bundle"]
        assert bundle == os.path.join(daemon.state, "runtimed", "tasks", "default", "life")
        assert mount_points(bundle) == [bundle + "/rootfs"], "the snapshot is mounted for the task"
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
        assert config["root"] == {"path": "rootfs", "readonly": False}
        assert config["linux"]["cgroupsPath"] == f"{CGROUP_PARENT}/life"
        assert rt.start_task("life") == {"pid": task["pid"]}
        assert rt.task("life")["status"] == "running"
        assert rt.tasks()[0]["id"] == "life"
        assert task["pid"] in rt.pids("life")
        assert in_cgroup(task["pid"], f"{CGROUP_PARENT}/life")
        with pytest.raises(FailedPrecondition):
            rt.delete_task("life")  # running: kill it first
        rt.kill_task("life", "SIGTERM")
        exit_ = rt.wait_task("life", timeout=10)
        assert (exit_["exit_status"], exit_["exit_source"]) == (3, "shim")
        assert rt.task("life")["status"] == "stopped"
        with pytest.raises(NotFound, match="already finished"):
            rt.kill_task("life", 9)
        assert rt.delete_task("life")["exit_status"] == 3
        assert mount_points(bundle) == [] and not os.path.exists(bundle), "unmounted and removed"
        with pytest.raises(NotFound):
            rt.task("life")
        rt.delete_container("life")
        got = topics_until(events, "/containers/delete")
    assert [e["topic"] for e in got] == ["/containers/create", "/containers/update", "/tasks/create", "/tasks/start",
                                         "/tasks/exit", "/tasks/delete", "/containers/delete"]
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    assert all(e["namespace"] == "default" and e["timestamp"].endswith("Z") for e in got)
    by = {e["topic"]: e["event"] for e in got}
    assert by["/tasks/create"] == {"container_id": "life", "bundle": bundle, "pid": task["pid"]}
    assert by["/tasks/exit"]["exit_status"] == 3 and by["/tasks/exit"]["exit_source"] == "shim"
    assert by["/tasks/delete"]["exit_status"] == 3
    assert by["/containers/update"]["labels"] == {"lab": "capsize", "step": "2"}
    assert not pid_alive(task["pid"])


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_runtimes_pause_resume(daemon, runtime):
    rt = daemon.client()
    with rt.subscribe(topics=["/tasks/*"]) as events:
        task = run_task(rt, "pr", ["sleep", "100"], runtime=runtime)
        assert rt.task("pr")["runtime"].endswith(("runc", "crun", "crun-hybrid"))
        rt.pause_task("pr")
        assert rt.task("pr")["status"] == "paused"
        with open(f"/proc/{task['pid']}/status") as f:
            state = [line for line in f if line.startswith("State:")][0]
        assert "S" in state or "D" in state
        with pytest.raises(FailedPrecondition):
            rt.pause_task("pr")
        rt.resume_task("pr")
        assert rt.task("pr")["status"] == "running"
        rt.delete_task("pr", force=True)
        got = topics_until(events, "/tasks/delete")
    assert [e["topic"] for e in got] == ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed",
                                         "/tasks/exit", "/tasks/delete"]
    assert got[4]["event"]["exit_status"] == 137
    rt.delete_container("pr")


def test_task_exits_by_itself_with_its_output(daemon, tmp_path):
    rt = daemon.client()
    log_path = str(tmp_path / "ctr.log")
    rt.create_container("self", "busybox", args=["sh", "-c", "echo out; echo err >&2; exit 5"], runtime="runc")
    rt.create_task("self", log_path=log_path)
    rt.start_task("self")
    assert rt.wait_task("self", timeout=10)["exit_status"] == 5
    rt.delete_task("self")
    with open(log_path) as f:
        lines = [json.loads(line) for line in f]
    assert {(x["stream"], x["log"]) for x in lines} == {("stdout", "out\n"), ("stderr", "err\n")}
    rt.create_task("self")  # the container can run again
    rt.start_task("self")
    rt.wait_task("self", timeout=10)
    rt.delete_task("self")
    rt.delete_container("self")


def test_failed_create_leaves_nothing(daemon):
    rt = daemon.client()
    rt.create_container("broken", "busybox", args=["/no/such/binary"], runtime="runc")
    with pytest.raises(Exception, match="no such file or directory|not found") as info:
        rt.create_task("broken")
    assert "runc" in str(info.value), "the low-level runtime's own words reach the user"
    assert rt.tasks() == []
    assert daemon.task_dirs() == []
    assert mount_points(daemon.state) == []
    assert rt.container("broken")["id"] == "broken", "the container stays"
    rt.delete_container("broken")


def _raw(d, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(d.address)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def test_bad_input(daemon):
    rt = daemon.client()
    with pytest.raises(NotFound, match="container 'nope' not found"):
        rt.create_task("nope")
    for call in (rt.start_task, rt.wait_task, rt.delete_task, rt.pause_task, rt.resume_task, rt.pids, rt.task):
        with pytest.raises(NotFound):
            call("nope")
    with pytest.raises(NotFound, match="image 'missing:latest' not found"):
        rt.create_container("c", "missing")
    with pytest.raises(NotFound, match="runtime"):
        rt.create_container("c", "busybox", args=["true"], runtime="no-such-runtime")
    with pytest.raises(InvalidArgument, match="invalid id"):
        rt.create_container("../escape", "busybox", args=["true"])
    with pytest.raises(InvalidArgument, match="invalid namespace"):
        rt.with_namespace("bad/ns").containers()
    assert rt.containers() == [] and daemon.task_dirs() == []
    run_task(rt, "c", ["sleep", "100"], start=False)
    with pytest.raises(AlreadyExists):
        rt.create_container("c", "busybox", args=["true"])
    with pytest.raises(AlreadyExists):
        rt.create_task("c")
    with pytest.raises(FailedPrecondition, match="has a task"):
        rt.delete_container("c")
    with pytest.raises(FailedPrecondition):
        rt.pause_task("c")  # created, not running
    with pytest.raises(InvalidArgument, match="invalid signal"):
        rt.kill_task("c", "SIGNOPE")
    rt.start_task("c")
    with pytest.raises(FailedPrecondition, match="only a created task starts"):
        rt.start_task("c")
    status, body = _raw(daemon, "POST", "/v1/namespaces/default/containers", b"{not json")
    assert status == 400 and body["code"] == "invalid-argument" and "malformed JSON" in body["message"]
    status, body = _raw(daemon, "POST", "/v1/namespaces/default/tasks", b"[1, 2]")
    assert status == 400
    status, body = _raw(daemon, "GET", "/v1/nowhere")
    assert status == 404 and body["code"] == "not-found"
    status, body = _raw(daemon, "POST", "/v1/namespaces/default/tasks/nope/kill", b'{"signal": 9}')
    assert (status, body["code"]) == (404, "not-found")
    rt.delete_task("c", force=True)
    rt.delete_container("c")


def test_a_stray_task_directory_is_refused_and_left_alone(daemon):
    rt = daemon.client()
    rt.create_container("stray", "busybox", args=["true"], runtime="runc")
    stray = os.path.join(daemon.state, "runtimed", "tasks", "default", "stray")
    os.makedirs(os.path.join(stray, "rootfs"))
    with open(os.path.join(stray, "shim.pid"), "w") as f:
        f.write(str(os.getpid()))  # a pid the undo path must never touch
    with pytest.raises(FailedPrecondition, match="exists"):
        rt.create_task("stray")
    assert os.path.isdir(os.path.join(stray, "rootfs")) and rt.tasks() == []
    import shutil
    shutil.rmtree(stray)
    rt.create_task("stray")
    rt.delete_task("stray")
    rt.delete_container("stray")
