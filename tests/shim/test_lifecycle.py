"""The shim with real containers: life cycle, detachment, exit status, events, logs, cleanup."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from runtime.host import HOST, MNT_DETACH, MS_BIND
from tests.shim.conftest import pid_alive, wait_gone

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def _stat(pid: int) -> tuple[int, int, int]:
    """(ppid, pgid, sid) of *pid*."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def _cgroup_dirs(name: str) -> list[str]:
    """*name* in every v1 hierarchy (and the hybrid unified one), or at the cgroup v2 root."""
    return [d for d in [os.path.join("/sys/fs/cgroup", name)] +
            [os.path.join("/sys/fs/cgroup", c, name) for c in os.listdir("/sys/fs/cgroup")] if os.path.isdir(d)]


def test_lifecycle_reports_exit_everywhere(shims, event_sink, runtime_bin):
    shim = shims.start(["sh", "-c", "echo out; echo err >&2; exit 3"], runtime=runtime_bin)
    created = shim.call("create")
    assert created["pid"] > 0
    assert shim.call("state")["status"] == "created"
    # the init waits on the exec FIFO as the shim's child: the shim is its subreaper
    assert _stat(created["pid"])[0] == shim.pid
    shim.call("start")
    result = shim.call("wait")
    assert result["exit_status"] == 3 and result["pid"] == created["pid"]
    state = shim.call("state")
    assert (state["status"], state["exit_status"], state["exited_at"]) == ("stopped", 3, result["exited_at"])
    with open(shim.file("exit")) as f:
        assert json.load(f) == {"pid": created["pid"], "exit_status": 3, "exited_at": result["exited_at"]}
    entries = shim.log_entries()
    assert {(e["log"], e["stream"]) for e in entries} == {("out\n", "stdout"), ("err\n", "stderr")}
    assert all(e["time"].endswith("Z") and "T" in e["time"] for e in entries)
    assert shim.call("delete")["exit_status"] == 3
    assert event_sink.wait_for(4, shim.id) == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    exit_event = [e for e in event_sink.events if e["topic"] == "/tasks/exit"][0]
    assert exit_event["event"]["exit_status"] == 3 and exit_event["event"]["exited_at"] == result["exited_at"]
    assert exit_event["namespace"] == "default"
    shim.call("shutdown")
    assert wait_gone(shim.pid)
    assert not os.path.exists(shim.address[len("unix://"):])
    assert not _cgroup_dirs(f"capsize-{shim.id}")


def test_shim_is_detached_and_outlives_its_starter(shims, runtime_bin):
    shim = shims.start(["sleep", "100"], runtime=runtime_bin)
    ppid, pgid, sid = _stat(shim.pid)
    # start has exited: the shim was re-parented to the nearest subreaper (this test process)
    assert ppid == os.getpid()
    assert pgid == shim.pid and sid == shim.pid
    assert sid != os.getsid(0)
    pid = shim.call("create")["pid"]
    shim.call("start")
    assert _stat(pid)[0] == shim.pid
    assert shim.call("connect") == {"shim_pid": shim.pid, "task_pid": pid, "version": 1}
    assert pid in shim.call("pids")["pids"]
    shim.call("kill", signal="SIGKILL")
    assert shim.call("wait")["exit_status"] == 137
    with pytest.raises(NotFound, match="already finished"):
        shim.call("kill", signal=9)


def test_exit_while_nobody_listens_is_kept_and_delivered_later(shims, event_sink, runtime_bin):
    event_sink.stop()  # the runtime daemon is down from the start
    shim = shims.start(["sh", "-c", "sleep 0.3; exit 7"], runtime=runtime_bin)
    shim.call("create")
    shim.call("start")
    shim.close()  # nobody is connected while the init exits
    deadline = time.monotonic() + 10
    while not os.path.exists(shim.file("exit")) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(shim.file("exit")) as f:
        assert json.load(f)["exit_status"] == 7
    with shim.new_client() as c:
        assert c.call("state")["exit_status"] == 7
        assert c.call("wait")["exit_status"] == 7
        assert c.call("delete")["exit_status"] == 7
    assert event_sink.topics() == []
    event_sink.start()  # the runtime daemon comes back
    topics = event_sink.wait_for(4, shim.id)
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    assert [e["seq"] for e in event_sink.events] == [1, 2, 3, 4]
    assert event_sink.events[2]["event"]["exit_status"] == 7


def test_shim_survives_runtime_daemon_restarts(shims, event_sink, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    shim.call("create")
    shim.call("start")
    assert event_sink.wait_for(2, shim.id) == ["/tasks/create", "/tasks/start"]
    for _ in range(2):  # the runtime daemon is killed and restarted twice
        event_sink.stop()
        time.sleep(0.2)
        event_sink.start()
    assert pid_alive(shim.pid)
    event_sink.stop()
    shim.call("kill", signal=9)
    assert shim.call("wait")["exit_status"] == 137
    event_sink.start()
    assert event_sink.wait_for(3, shim.id)[2] == "/tasks/exit"


def test_orphans_in_a_pid_namespace_do_not_confuse_exit(shims, runtime_bin):
    shim = shims.start(["sh", "-c", "(sleep 5; exit 5) & (sleep 5; exit 6) & sleep 0.2; exit 3"], runtime=runtime_bin)
    shim.call("create")
    shim.call("start")
    assert shim.call("wait")["exit_status"] == 3
    time.sleep(0.2)  # the kernel kills the namespace's other processes; the shim reaps them
    assert shim.call("state")["exit_status"] == 3


def test_orphans_in_the_host_pid_namespace_do_not_confuse_exit(shims, runtime_bin):
    # an orphan is re-parented to the shim and exits (5) before the init (3); another outlives it (6)
    script = 'sh -c "(sleep 0.1; exit 5) &"; sh -c "(sleep 0.6; exit 6) &"; sleep 0.4; exit 3'
    shim = shims.start(["sh", "-c", script], runtime=runtime_bin, host_pid=True)
    shim.call("create")
    shim.call("start")
    assert shim.call("wait")["exit_status"] == 3
    time.sleep(0.5)
    assert shim.call("state")["exit_status"] == 3
    log = [json.loads(line) for line in shim.shim_log().splitlines() if line.startswith("{")]
    orphans = sorted(e["exit_status"] for e in log if e["msg"] == "reaped re-parented process")
    assert 5 in orphans and 6 in orphans
    with open(shim.file("exit")) as f:
        assert json.load(f)["exit_status"] == 3


def test_wrong_states_are_clear_errors(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    with pytest.raises(NotFound, match="not created"):
        shim.call("start")
    with pytest.raises(NotFound, match="not created"):
        shim.call("state")
    shim.call("create")
    with pytest.raises(AlreadyExists):
        shim.call("create")
    shim.call("start")
    with pytest.raises(FailedPrecondition, match="running"):
        shim.call("start")
    with pytest.raises(FailedPrecondition, match="running"):
        shim.call("delete")
    with pytest.raises(FailedPrecondition, match="delete it before shutdown"):
        shim.call("shutdown")
    shim.call("kill", signal=9)
    shim.call("wait")
    shim.call("delete")
    with pytest.raises(NotFound, match="deleted"):
        shim.call("state")
    shim.call("shutdown")
    assert wait_gone(shim.pid)


def test_delete_of_a_created_task_kills_its_init(shims, event_sink, runtime_bin):
    shim = shims.start(["sleep", "100"], runtime=runtime_bin)
    pid = shim.call("create")["pid"]
    result = shim.call("delete")
    assert result["exit_status"] == 137 and result["pid"] == pid
    assert event_sink.wait_for(3, shim.id) == ["/tasks/create", "/tasks/exit", "/tasks/delete"]
    assert not pid_alive(pid)


def test_create_failure_reaches_the_caller_and_leaves_nothing(shims, runtime_bin, runtime_name):
    shim = shims.start(["/no/such/binary"], runtime=runtime_bin)
    with pytest.raises(Exception) as err:
        shim.call("create")
    text = str(err.value)
    assert "did not terminate successfully" in text and "/no/such/binary" in text, text
    assert "\n" not in text
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(shim.bundle)))),
                        "runc", "default")
    assert not os.path.exists(os.path.join(root, shim.id))
    assert not os.path.exists(shim.file("init.pid")) and not os.path.exists(shim.file("container.log"))
    assert not _cgroup_dirs(f"capsize-{shim.id}")
    assert shim.call("connect")["task_pid"] == 0
    shim.call("shutdown")
    assert wait_gone(shim.pid)


def test_sigkill_of_the_shim_then_delete_action_cleans_up(shims, runtime_bin):
    shim = shims.start(["sleep", "100"], runtime=runtime_bin)
    rootfs = shim.file("rootfs")
    HOST.mount(rootfs, rootfs, None, MS_BIND)  # stands for the snapshot mount of a real engine
    try:
        pid = shim.call("create")["pid"]
        shim.call("start")
        shim.close()
        os.kill(shim.pid, signal.SIGKILL)
        assert wait_gone(shim.pid)
        assert pid_alive(pid)  # the container runs on, re-parented
        p, out = shim.delete_action()
        assert p.returncode == 0, p.stderr
        assert out["exit_status"] == 137 and out["source"] == "cleanup-kill" and out["pid"] == pid
        assert wait_gone(pid, 5)
        with open("/proc/self/mountinfo") as f:
            assert os.path.realpath(rootfs) not in {line.split()[4] for line in f}
        assert not _cgroup_dirs(f"capsize-{shim.id}")
        runc_state = os.path.join(shim.bundle, "..", "..", "..", "..", "runc", "default", shim.id)
        assert not os.path.exists(runc_state)
        assert not os.path.exists(shim.address[len("unix://"):])
    finally:
        with open("/proc/self/mountinfo") as f:
            if os.path.realpath(rootfs) in {line.split()[4] for line in f}:
                HOST.umount(rootfs, MNT_DETACH)


def test_delete_action_recovers_the_real_exit_status(shims, runtime_bin):
    shim = shims.start(["sh", "-c", "exit 42"], runtime=runtime_bin)
    shim.call("create")
    shim.call("start")
    shim.call("wait")
    shim.close()
    os.kill(shim.pid, signal.SIGKILL)
    assert wait_gone(shim.pid)
    p, out = shim.delete_action()
    assert p.returncode == 0, p.stderr
    assert (out["exit_status"], out["source"]) == (42, "exit-file")


def test_delete_action_refuses_a_live_shim(shims, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    p, out = shim.delete_action()
    assert p.returncode == 5 and out is None
    assert "is alive" in p.stderr and p.stderr.count("\n") == 1


def test_start_twice_gives_the_same_shim(shims, event_sink, runc_bin):
    shim = shims.start(["sleep", "100"], runtime=runc_bin)
    p = shims.start_cli(shim.bundle, shim.id, runc_bin)
    assert p.returncode == 0 and p.stdout.strip() == shim.address
    with open(shim.file("shim.pid")) as f:
        assert int(f.read()) == shim.pid


def test_start_errors_are_one_line(shims, runc_bin, tmp_path):
    p = shims.start_cli(str(tmp_path / "nope"), "shimnope", runc_bin)
    assert p.returncode == 3 and p.stderr.startswith("capsize-shim: ") and p.stderr.count("\n") == 1
    bundle, cid = shims.bundle(["true"])
    p = shims.start_cli(bundle, cid, "/no/such/runtime")
    assert p.returncode == 3 and "not found" in p.stderr
    p = shims.start_cli(bundle, "bad/id", runc_bin)
    assert p.returncode == 2 and "invalid id" in p.stderr


def test_memory_stays_bounded_whatever_the_container_writes(shims, runc_bin):
    # 40 MB of output without a newline, then 20000 short lines
    script = "head -c 40000000 /dev/zero | tr '\\0' x; echo; seq 1 20000"
    shim = shims.start(["sh", "-c", script], runtime=runc_bin)
    shim.call("create")
    shim.call("start")
    peak = 0
    while shim.call("state")["status"] != "stopped":
        with open(f"/proc/{shim.pid}/status") as f:
            peak = max(peak, int([line for line in f if line.startswith("VmRSS")][0].split()[1]))
        time.sleep(0.05)
    assert shim.call("wait")["exit_status"] == 0
    assert peak < 40_000, f"shim RSS peaked at {peak} kB"
    with open(shim.file("container.log")) as f:
        sizes, total, lines = [], 0, 0
        for line in f:
            e = json.loads(line)
            sizes.append(len(e["log"]))
            if e["log"].startswith("x"):
                total += len(e["log"].rstrip("\n"))
            else:
                lines += 1
    assert max(sizes) == 16 * 1024
    assert total == 40_000_000 and lines == 20000


def test_kill_all_reaches_every_process(shims, runtime_bin):
    # host pid namespace: the init's death alone would not end the other processes
    shim = shims.start(["sh", "-c", "sleep 100 & sleep 100 & wait"], runtime=runtime_bin, host_pid=True)
    shim.call("create")
    shim.call("start")
    deadline = time.monotonic() + 5
    while len(shim.call("pids")["pids"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = shim.call("pids")["pids"]
    assert len(pids) == 3
    shim.call("kill", signal="KILL", all=True)
    assert shim.call("wait")["exit_status"] == 137
    for pid in pids:
        assert wait_gone(pid, 5)
    assert shim.call("pids")["pids"] == []
