"""capsized's network sandboxes (runtime/daemon/sandbox.py): one netns per container, made before
the task, joined by path, removed after the task is deleted, swept after a SIGKILL + restart;
and where capsized runs (its own namespace through the harness's engine, the host's here)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from runtime import netns

pytestmark = pytest.mark.privileged


def _key(stack, cid: str) -> str:
    return os.path.join(stack.state, "netns", cid)


def _sandboxes(stack) -> list[str]:
    d = os.path.join(stack.state, "netns")
    return sorted(n for n in (os.listdir(d) if os.path.isdir(d) else []) if netns.is_mounted(os.path.join(d, n)))


def _init_pid(stack, cid: str) -> int:
    return json.loads(stack.ok("inspect", cid))[0]["State"]["Pid"]


def _wait(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_a_container_runs_in_the_sandbox_capsized_made(stack):
    cid = stack.ok("run", "-d", "busybox", "sleep", "100")
    key = _key(stack, cid)
    assert netns.is_mounted(key), "no sandbox bind mount"
    pid = _init_pid(stack, cid)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == netns.inode(key), "the task is not in its sandbox"
    assert os.stat(f"/proc/{pid}/ns/net").st_ino != netns.inode("/proc/self/ns/net")
    assert json.loads(stack.ok("inspect", cid))[0]["NetworkSettings"]["SandboxKey"] == key
    config = json.load(open(os.path.join(stack.state, "runtimed", "tasks", "capsize", cid, "config.json")))
    assert {"type": "network", "path": key} in config["linux"]["namespaces"]
    # lo is up in the sandbox (capsize-runc leaves a joined namespace as it is)
    assert int(stack.ok("exec", cid, "cat", "/sys/class/net/lo/flags"), 16) & 1, "lo is down"
    stack.ok("stop", "-t", "1", cid)
    assert not os.path.lexists(key), "the sandbox outlived the task"
    assert json.loads(stack.ok("inspect", cid))[0]["NetworkSettings"]["SandboxKey"] == ""
    stack.ok("start", cid)
    assert netns.is_mounted(key)
    stack.ok("rm", "-f", cid)
    assert not os.path.lexists(key)


def test_a_container_that_exits_by_itself_leaves_no_sandbox(stack):
    out = stack.ok("run", "--rm", "busybox", "cat", "/proc/net/dev")
    assert "lo:" in out and "eth0" not in out
    assert _sandboxes(stack) == []


def test_host_and_container_network_modes(stack):
    r = stack.ok("run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net")
    assert r == os.readlink("/proc/self/ns/net")
    assert _sandboxes(stack) == []
    a = stack.ok("run", "-d", "--name", "netowner", "busybox", "sleep", "100")
    joined = stack.ok("run", "--rm", "--network", "container:netowner", "busybox", "readlink", "/proc/self/ns/net")
    assert joined == f"net:[{netns.inode(_key(stack, a))}]"
    assert _sandboxes(stack) == [a]   # the joiner had no sandbox of its own
    stack.ok("stop", "-t", "1", a)
    r = stack.cli("run", "--rm", "--network", "container:netowner", "busybox", "true")
    assert r.returncode == 126 or r.returncode == 125, r
    assert "cannot join network of a non running container" in r.stderr, r
    assert _sandboxes(stack) == []


def test_in_the_host_namespace_capsized_says_so(stack):
    log = open(os.path.join(stack.logs, "capsized.log")).read()
    assert "capsized runs in the host's network namespace" in log


@pytest.mark.slow
def test_sandboxes_after_a_daemon_sigkill(fresh):
    """capsized SIGKILLed with two running containers, one of which dies meanwhile: at restart
    (no live-restore) both are stopped or found dead, and no sandbox is left."""
    a = fresh.ok("run", "-d", "busybox", "sleep", "100")
    b = fresh.ok("run", "-d", "busybox", "sleep", "100")
    pid_b = _init_pid(fresh, b)
    assert _sandboxes(fresh) == sorted([a, b])
    fresh.kill_daemon()
    os.kill(pid_b, 9)                       # b dies while capsized is down
    assert _wait(lambda: not os.path.exists(f"/proc/{pid_b}/stat") or "Z" in open(f"/proc/{pid_b}/stat").read().split()[2])
    assert _sandboxes(fresh) == sorted([a, b]), "the sandboxes stay while capsized is down"
    fresh.start_daemon()
    assert _wait(lambda: _sandboxes(fresh) == []), _sandboxes(fresh)
    states = {c: json.loads(fresh.ok("inspect", c))[0]["State"]["Status"] for c in (a, b)}
    assert states == {a: "exited", b: "exited"}


@pytest.mark.slow
def test_live_restore_keeps_the_sandbox_of_a_running_container(tmp_path):
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "lr", live_restore=True)
    try:
        s.start()
        s.load_busybox()
        a = s.ok("run", "-d", "busybox", "sleep", "100")
        b = s.ok("run", "-d", "busybox", "sleep", "100")
        ino, pid_b = netns.inode(_key(s, a)), _init_pid(s, b)
        s.kill_daemon()
        os.kill(pid_b, 9)
        s.start_daemon()   # a is adopted with its sandbox; b died meanwhile: its sandbox goes
        assert _wait(lambda: _sandboxes(s) == [a]), _sandboxes(s)
        assert netns.inode(_key(s, a)) == ino
        assert os.stat(f"/proc/{_init_pid(s, a)}/ns/net").st_ino == ino
        s.ok("rm", "-f", a)
        assert _sandboxes(s) == []
    finally:
        s.close()


def test_a_sandbox_the_kernel_refuses_fails_the_start_and_leaves_nothing(tmp_path, monkeypatch):
    """mount(2) of the sandbox fails (injected EPERM at capsized's host seam): the start fails with
    one line naming the sandbox, the container stays created, no file or mount is left."""
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "fp")
    try:
        s.start_runtime()
        monkeypatch.setenv("CAPSIZE_HOST_FAILPOINTS", "mount=error(EPERM)")
        s.start_daemon()
        monkeypatch.delenv("CAPSIZE_HOST_FAILPOINTS")
        s.load_busybox()
        r = s.cli("run", "-d", "--name", "nons", "busybox", "sleep", "100")
        assert r.returncode != 0 and "failed to create the network sandbox" in r.stderr, r
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert json.loads(s.ok("inspect", "nons"))[0]["State"]["Status"] == "created"
        assert os.listdir(os.path.join(s.state, "netns")) == [] and _sandboxes(s) == []
        assert s.ok("run", "--rm", "--network", "host", "busybox", "true") == ""   # no sandbox needed
        s.ok("rm", "nons")
    finally:
        s.close()


def test_a_stack_in_a_network_namespace_of_its_own(tmp_path):
    """Stack(netns=True), the fixture networked tests use: capsized in W/netns says so; its
    containers' sandboxes are neither its namespace nor the host's; close leaves no nsfs mount."""
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "ns", netns=True)
    try:
        s.start()
        s.load_busybox()
        assert netns.inode(f"/proc/{s.daemon.pid}/ns/net") == netns.inode(s.netns_path) != netns.inode()
        assert "capsized runs in a network namespace of its own" in open(os.path.join(s.logs, "capsized.log")).read()
        cid = s.ok("run", "-d", "busybox", "sleep", "100")
        ino = os.stat(f"/proc/{_init_pid(s, cid)}/ns/net").st_ino
        assert ino == netns.inode(_key(s, cid)) not in (netns.inode(s.netns_path), netns.inode())
        s.ok("rm", "-f", cid)
        assert _sandboxes(s) == []
    finally:
        s.close()
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if str(tmp_path) in line]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_runc_and_crun_join_the_sandbox_by_path(tmp_path, runtime):
    """The sandbox is handed over as linux.namespaces' network path: the reference runtimes (on
    PATH here, from Debian) join it too (capsized --default-runtime)."""
    import shutil
    from tests.daemon.stack import Stack
    if not shutil.which(runtime):
        pytest.skip(f"{runtime} is not installed")
    s = Stack(tmp_path / runtime)
    try:
        s.start_runtime()
        s.start_daemon("--default-runtime", runtime)
        s.load_busybox()
        cid = s.ok("run", "-d", "busybox", "sleep", "100")
        from runtime.highlevel.client import RuntimeClient
        row = RuntimeClient(os.path.join(s.state, "runtimed.sock"), "capsize", timeout=10).container(cid)
        assert os.path.basename(str(row["runtime"])) == runtime, row["runtime"]
        assert os.stat(f"/proc/{_init_pid(s, cid)}/ns/net").st_ino == netns.inode(_key(s, cid))
        assert int(s.ok("exec", cid, "cat", "/sys/class/net/lo/flags"), 16) & 1
        s.ok("rm", "-f", cid)
        assert _sandboxes(s) == []
    finally:
        s.close()


def test_the_default_bridge_in_a_namespace_of_its_own(tmp_path):
    """capsized in W/netns makes capsize0 (172.17.0.1/16); two containers get eth0 with an
    address, Docker's MAC and a default route, and reach each other; rm leaves no veth and frees
    the addresses; the host's namespace has no capsize0."""
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "br", netns=True)

    def links():
        return [n for _, n in netns.run_in(s.netns_path, socket.if_nameindex)]

    try:
        s.start()
        s.load_busybox()
        a = s.ok("run", "-d", "busybox", "sleep", "100")
        b = s.ok("run", "-d", "busybox", "sleep", "100")
        na = json.loads(s.ok("inspect", a))[0]["NetworkSettings"]
        nb = json.loads(s.ok("inspect", b))[0]["NetworkSettings"]
        assert (na["IPAddress"], nb["IPAddress"]) == ("172.17.0.2", "172.17.0.3")
        assert na["Gateway"] == "172.17.0.1" and na["IPPrefixLen"] == 16 and na["MacAddress"] == "02:42:ac:11:00:02"
        assert na["Networks"]["bridge"]["IPAddress"] == "172.17.0.2" and "HostIfName" not in na["Networks"]["bridge"]
        assert s.ok("exec", a, "cat", "/sys/class/net/eth0/address") == "02:42:ac:11:00:02"
        assert "default via 172.17.0.1" in s.ok("exec", a, "ip", "route")
        assert "0% packet loss" in s.ok("exec", a, "ping", "-c", "1", "-W", "2", "172.17.0.3")
        names = links()
        assert "capsize0" in names and "veth" + a[:7] in names and "veth" + b[:7] in names
        assert "capsize0" not in [n for _, n in socket.if_nameindex()]
        s.ok("rm", "-f", a)
        assert [n for n in links() if n.startswith("veth")] == ["veth" + b[:7]]
        s.kill_daemon()                       # SIGKILL with b running, then a restart (no live-restore)
        s.start_daemon()
        assert [n for n in links() if n.startswith("veth")] == [] and _sandboxes(s) == []
        ipam = json.load(open(os.path.join(s.root, "daemon", "network", "ipam.json")))
        assert ipam["pools"]["bridge"]["allocated"] == []
        host_mode = s.ok("run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net")
        assert host_mode == f"net:[{netns.inode(s.netns_path)}]"    # the engine's namespace is its host
        c = s.ok("run", "-d", "busybox", "sleep", "100")   # the bridge found again after the restart
        assert json.loads(s.ok("inspect", c))[0]["NetworkSettings"]["IPAddress"] == "172.17.0.4"
        s.ok("rm", "-f", c)
    finally:
        s.close()


def test_docker_update_of_a_stopped_container_keeps_its_sandbox_path(stack):
    cid = stack.ok("create", "busybox", "sleep", "100")
    stack.ok("start", cid)
    stack.ok("stop", "-t", "1", cid)
    stack.ok("update", "--memory", "64m", "--memory-swap", "128m", cid)
    stack.ok("start", cid)
    assert os.stat(f"/proc/{_init_pid(stack, cid)}/ns/net").st_ino == netns.inode(_key(stack, cid))
    stack.ok("rm", "-f", cid)
    assert _sandboxes(stack) == []


def test_an_address_saved_by_a_start_capsized_did_not_finish_is_freed_at_restart(tmp_path):
    """The bridge saves an address before the container's record names it: a capsized killed in
    between (here: the address added to ipam.json while it is down, as that kill leaves it) frees
    it at the next start; the address of a container still running (live-restore) is kept."""
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "ka", netns=True, live_restore=True)
    try:
        s.start()
        s.load_busybox()
        a = s.ok("run", "-d", "busybox", "sleep", "100")
        s.kill_daemon()
        path = os.path.join(s.root, "daemon", "network", "ipam.json")
        with open(path) as f:
            state = json.load(f)
        assert state["pools"]["bridge"]["allocated"] == ["172.17.0.2"]
        state["pools"]["bridge"]["allocated"].append("172.17.0.3")   # the start killed midway
        state["pools"]["bridge"]["last"] = "172.17.0.3"
        with open(path, "w") as f:
            json.dump(state, f)
        s.start_daemon()
        with open(path) as f:
            assert json.load(f)["pools"]["bridge"]["allocated"] == ["172.17.0.2"]
        assert json.loads(s.ok("inspect", a))[0]["NetworkSettings"]["IPAddress"] == "172.17.0.2"
        s.ok("rm", "-f", a)
    finally:
        s.close()
