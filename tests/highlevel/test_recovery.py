"""Restarts of capsize-runtimed with real shims and containers: adoption, dead-shim cleanup, exits
that happened while the daemon was down, hung shims, and SIGTERM that stops the daemon only."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest

from runtime.errors import CapsizeError, NotFound
from tests.conftest import reap_children
from tests.highlevel.conftest import mount_points, pid_alive, run_task, wait_until

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def replay(rt, **filters) -> list[dict]:
    """Every buffered event of the daemon's current run (a subscription from seq 0)."""
    got = []
    with rt.subscribe(since=0, **filters) as events:
        while True:
            try:
                got.append(events.next(timeout=0.3))
            except CapsizeError:
                return got


def of(events: list[dict], cid: str) -> list[tuple[str, dict]]:
    return [(e["topic"], e["event"]) for e in events if e["event"].get("container_id") == cid]


def test_sigkill_daemon_with_running_tasks_then_all_adopted(daemon):
    rt = daemon.client()
    before = {}
    for i, runtime in enumerate(["runc", "runc", "capsize-runc", "crun", "runc"]):
        before[f"run{i}"] = run_task(rt, f"run{i}", ["sleep", "100"], runtime=runtime)
    run_task(rt, "paused", ["sleep", "100"])
    rt.pause_task("paused")
    run_task(rt, "created", ["sleep", "100"], start=False)
    views = {t["id"]: t for t in rt.tasks()}
    daemon.kill()
    for t in views.values():
        assert pid_alive(t["shim_pid"]) and pid_alive(t["pid"]), "shims and containers outlive the daemon"
    seconds = daemon.start()
    after = {t["id"]: t for t in rt.tasks()}
    assert {k: after[k]["status"] for k in after} == {**{f"run{i}": "running" for i in range(5)},
                                                       "paused": "paused", "created": "created"}
    for k, t in views.items():
        assert (after[k]["pid"], after[k]["shim_pid"], after[k]["runtime"]) == (t["pid"], t["shim_pid"], t["runtime"])
    loaded = daemon.messages(msg="tasks loaded")[-1]
    assert (loaded["adopted"], loaded["cleaned"], loaded["tasks"]) == (7, 0, 7)
    assert seconds < 5
    # the adopted tasks are fully usable: exits reach the new daemon's event stream
    with rt.subscribe(topics=["/tasks/exit"]) as events:
        rt.kill_task("run0", 9)
        env = events.next(timeout=10)
    assert (env["event"]["container_id"], env["event"]["exit_status"]) == ("run0", 137)
    rt.resume_task("paused")
    rt.start_task("created")
    assert {t["id"]: t["status"] for t in rt.tasks()}["created"] == "running"


def test_shims_killed_while_daemon_down_are_cleaned_up(daemon):
    rt = daemon.client()
    for cid in ("keep", "dead1", "dead2"):
        run_task(rt, cid, ["sleep", "100"])
    views = {t["id"]: t for t in rt.tasks()}
    daemon.kill()
    for cid in ("dead1", "dead2"):
        os.kill(views[cid]["shim_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(views["dead1"]["shim_pid"]) and not pid_alive(views["dead2"]["shim_pid"]),
               what="shims to die")
    assert pid_alive(views["dead1"]["pid"]), "the container outlives its killed shim (re-parented)"
    daemon.start()
    assert [t["id"] for t in rt.tasks()] == ["keep"]
    with pytest.raises(NotFound):
        rt.task("dead1")
    events = replay(rt)
    for cid in ("dead1", "dead2"):
        assert [t for t, _ in of(events, cid)] == ["/tasks/exit", "/tasks/delete"]
        exit_ = of(events, cid)[0][1]
        assert (exit_["exit_status"], exit_["exit_source"]) == (137, "cleanup-kill"), \
            "the live init was killed by the clean-up, and labelled so"
        assert "delete --force" in exit_["exit_reason"]
        assert exit_["pid"] == views[cid]["pid"]
        wait_until(lambda: not pid_alive(views[cid]["pid"]), what="the orphaned container to be killed")
        assert not os.path.exists(views[cid]["bundle"])
        assert rt.container(cid)["id"] == cid, "the container record stays"
    assert mount_points(daemon.state) == [os.path.join(views["keep"]["bundle"], "rootfs")]
    warned = {e["id"] for e in daemon.messages(msg="cleaning up after shim disconnected")}
    cleaned = {e["id"] for e in daemon.messages(msg="cleaning up dead shim")}
    assert warned == cleaned == {"dead1", "dead2"}
    assert daemon.messages(msg="cleaning up after shim disconnected")[0]["level"] == "warning"


WAIT_FOR_GO = "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit {code}"


def test_exit_while_daemon_down_is_reported_with_its_real_status(daemon):
    rt = daemon.client()
    for cid, code in (("alive-shim", 7), ("dead-shim", 9)):
        run_task(rt, cid, ["sh", "-c", WAIT_FOR_GO.format(code=code)])
    views = {t["id"]: t for t in rt.tasks()}
    daemon.kill()
    for t in views.values():  # the rootfs is the task's overlay mount: this reaches the container
        open(os.path.join(t["bundle"], "rootfs", "tmp", "go"), "w").close()
    # the shim reaps the init and writes the exit file before it reports the exit to anyone
    wait_until(lambda: all(os.path.exists(os.path.join(t["bundle"], "exit")) for t in views.values()),
               what="the shims to record the exits")
    os.kill(views["dead-shim"]["shim_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(views["dead-shim"]["shim_pid"]), what="the shim to die")
    daemon.start()
    task = rt.task("alive-shim")
    assert (task["status"], task["exit_status"], task["exit_source"]) == ("stopped", 7, "shim")
    time.sleep(1.5)  # the shim redelivers its queued /tasks/exit (backoff <= 1 s): it must not repeat
    events = replay(rt)
    assert of(events, "alive-shim") == [("/tasks/exit", {
        "container_id": "alive-shim", "id": "alive-shim", "pid": views["alive-shim"]["pid"], "exit_status": 7,
        "exited_at": task["exited_at"], "exit_source": "shim"})]
    dead = of(events, "dead-shim")
    assert [t for t, _ in dead] == ["/tasks/exit", "/tasks/delete"]
    assert (dead[0][1]["exit_status"], dead[0][1]["exit_source"]) == (9, "exit-file"), "the real status, from disk"
    assert rt.wait_task("alive-shim", timeout=5)["exit_status"] == 7
    assert rt.delete_task("alive-shim")["exit_status"] == 7
    daemon.kill()
    daemon.start()
    assert replay(rt, topics=["/tasks/exit"]) == [], "a published exit is not published again after a restart"


def test_shim_disconnect_while_daemon_runs(daemon):
    rt = daemon.client()
    task = run_task(rt, "victim", ["sleep", "100"])
    shim_pid = rt.task("victim")["shim_pid"]
    with rt.subscribe(topics=["/tasks/"]) as events:
        os.kill(shim_pid, signal.SIGKILL)
        got = [events.next(timeout=10), events.next(timeout=10)]
    assert [e["topic"] for e in got] == ["/tasks/exit", "/tasks/delete"]
    assert (got[0]["event"]["exit_status"], got[0]["event"]["exit_source"]) == (137, "cleanup-kill")
    wait_until(lambda: not pid_alive(task["pid"]), what="the container to be killed")
    with pytest.raises(NotFound):
        rt.task("victim")
    assert mount_points(daemon.state) == []
    msgs = [e["msg"] for e in daemon.log() if e.get("id") == "victim"]
    assert msgs.index("shim disconnected") < msgs.index("cleaning up after shim disconnected") \
        < msgs.index("cleaning up dead shim")
    rt.create_task("victim")  # the container can get a new task
    rt.delete_task("victim")


def test_hung_shim_does_not_stall_start_up(runtimed, busybox_image_tar):
    d = runtimed("--load-timeout", "1")
    rt = d.client()
    rt.import_image(busybox_image_tar)
    run_task(rt, "hung", ["sleep", "100"])
    run_task(rt, "fine", ["sleep", "100"])
    hung = rt.task("hung")
    d.kill()
    os.kill(hung["shim_pid"], signal.SIGSTOP)
    try:
        seconds = d.start()
        assert seconds < 4, "one load timeout, not one per shim"
        states = {t["id"]: t["status"] for t in rt.tasks()}
        assert states == {"hung": "unknown", "fine": "running"}
        assert d.messages(msg="tasks loaded")[-1]["still_loading"] == 1
        with pytest.raises(CapsizeError, match="not responding"):
            rt.kill_task("hung", 9)
        wait_until(lambda: d.messages(msg="shim not responding: task state unknown, retrying"), timeout=10,
                   what="the load of the hung shim to time out")
    finally:
        os.kill(hung["shim_pid"], signal.SIGCONT)
    wait_until(lambda: rt.task("hung")["status"] == "running", timeout=15, what="the shim to be adopted")
    assert rt.task("hung")["pid"] == hung["pid"]
    assert d.messages(msg="shim answers again: task adopted")


def test_sigterm_stops_the_daemon_only(daemon):
    rt = daemon.client()
    task = run_task(rt, "survivor", ["sh", "-c", WAIT_FOR_GO.format(code=4)])
    shim_pid = rt.task("survivor")["shim_pid"]
    t0 = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - t0 < 3
    assert not os.path.exists(daemon.address), "the API socket is removed"
    assert pid_alive(shim_pid) and pid_alive(task["pid"])
    open(os.path.join(task["bundle"], "rootfs", "tmp", "go"), "w").close()
    wait_until(lambda: not pid_alive(task["pid"]), what="the container to exit")
    daemon.start()
    assert rt.wait_task("survivor", timeout=5)["exit_status"] == 4
    assert [t for t, _ in of(replay(rt), "survivor")] == ["/tasks/exit"]
    assert daemon.messages(msg="capsize-runtimed stopping: shims and containers keep running")


def test_second_daemon_on_the_same_root_is_refused(runtimed):
    from tests.conftest import run
    d = runtimed()
    other_state = d.state + "-2"
    p = run(d.argv()[:1] + ["--root", d.root, "--state", other_state])
    assert not os.path.exists(other_state), "a refused start makes nothing"
    assert p.returncode == 5
    assert p.stderr.strip() == (f"capsize-runtimed: root {d.root} is in use by capsize-runtimed "
                                f"(pid {d.proc.pid}): another daemon holds {d.root}/runtimed/lock")
    p = run(d.argv()[:1] + ["--root", d.root + "-2", "--state", d.state])
    assert p.returncode == 5 and f"state {d.state} is in use by capsize-runtimed (pid {d.proc.pid})" in p.stderr
    import shutil
    shutil.rmtree(d.root + "-2", ignore_errors=True)
    assert d.client().version()["pid"] == d.proc.pid, "the first daemon is untouched"


def test_sigkill_during_imports_leaves_a_sound_store(runtimed, busybox_image_tar, tmp_path):
    from tests.highlevel.layers import docker_save, layer_tar
    d = runtimed()
    rt = d.client()
    archives = []
    for i in range(4):
        path = str(tmp_path / f"img{i}.tar")
        docker_save(path, [{"tags": [f"img{i}:latest"],
                            "layers": [layer_tar([("file", f"f{j}", os.urandom(64 << 10)) for j in range(160)])]}])
        archives.append(path)
    errors = []

    def importer():
        for path in archives:
            try:
                rt.import_image(path)
            except CapsizeError as e:
                errors.append(e)
                return
    t = threading.Thread(target=importer)
    t.start()
    wait_until(lambda: rt.images(), what="a first image")  # then kill it in the middle of the next
    time.sleep(0.05)
    d.kill()
    t.join(30)
    assert errors, "the daemon died during the imports"
    db = sqlite3.connect(os.path.join(d.root, "runtimed", "metadata.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    d.start()
    for img in rt.images():  # what was recorded is whole: its snapshots are there
        rt.create_container("check-" + img["name"].split(":")[0], img["name"], args=["true"])
    for c in rt.containers():
        rt.delete_container(c["id"])
    for img in rt.images():
        rt.delete_image(img["name"])
    rt.gc()
    root = os.path.join(d.root, "runtimed")
    assert os.listdir(os.path.join(root, "content", "blobs", "sha256")) == []
    assert os.listdir(os.path.join(root, "snapshots")) == []
    assert os.listdir(os.path.join(root, "content", "ingest")) == []
    reap_children()


def test_half_created_tasks_are_removed_at_start(daemon):
    """What a SIGKILL during a task create leaves: a mounted rootfs and no shim, or a shim whose
    task was never created. Recovery removes both; the containers stay."""
    import json
    from runtime.lowlevel.spec import default_spec
    from tests.conftest import run
    from tests.highlevel.conftest import SHIM
    rt = daemon.client()
    for cid in ("no-shim", "no-task"):
        rt.create_container(cid, "busybox", args=["sleep", "100"], runtime="runc")
    daemon.kill()
    tasks = os.path.join(daemon.state, "runtimed", "tasks", "default")
    mounted = os.path.join(tasks, "no-shim")
    os.makedirs(os.path.join(mounted, "rootfs"))
    with open(os.path.join(mounted, "runtimed.json"), "w") as f:
        json.dump({"id": "no-shim", "namespace": "default", "runtime": "/usr/sbin/runc"}, f)
    assert run(["mount", "-t", "tmpfs", "tmpfs", os.path.join(mounted, "rootfs")]).returncode == 0
    started = os.path.join(tasks, "no-task")
    os.makedirs(os.path.join(started, "rootfs"))
    spec = default_spec()
    spec["process"]["args"] = ["sleep", "100"]
    with open(os.path.join(started, "config.json"), "w") as f:
        json.dump(spec, f)
    p = run([SHIM, "start", "--id", "no-task", "--namespace", "default", "--bundle", started, "--runtime", "runc",
             "--address", "unix://" + os.path.join(daemon.state, "runtimed", "events.sock"),
             "--socket-dir", daemon.socket_dir])
    assert p.returncode == 0, p.stderr
    with open(os.path.join(started, "shim.pid")) as f:
        shim_pid = int(f.read())
    daemon.start()
    assert rt.tasks() == []
    assert daemon.task_dirs() == [] and mount_points(daemon.state) == []
    wait_until(lambda: not pid_alive(shim_pid), what="the idle shim to be shut down")
    assert daemon.messages(msg="removing half-created task: no shim was started")[0]["id"] == "no-shim"
    assert daemon.messages(msg="removing half-created task: the shim has no task")[0]["id"] == "no-task"
    assert sorted(c["id"] for c in rt.containers()) == ["no-shim", "no-task"]
    rt.create_task("no-task")  # and the containers can run
    rt.delete_task("no-task")
