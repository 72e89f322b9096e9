"""DockerStack: Debian's dockerd on a private containerd, in a netns of its own; faults; a clean close.

One stack is shared by the module (started once, about 1 s); tests that break daemons make
their own. Every test removes its containers, so the suite's leak check holds per test, and
the shared stack's close is checked at module teardown.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time

import psutil
import pytest

from harness.reference import cleanup
from harness.reference.docker import DockerStack
from runtime import busybox
from runtime.errors import FailedPrecondition
from runtime.runtimes import available, runtime_path, which
from tests.conftest import reap_children

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.reference,
    pytest.mark.skipif(not all(which(b) for b in ("dockerd", "containerd", "ctr", "containerd-shim-runc-v2",
                                                  "runc", "docker", "nsenter", "unshare", "ip")),
                       reason="part of Debian's Docker stack (dockerd, containerd, runc, docker CLI) is missing"),
]

DATA = os.path.join(os.path.dirname(__file__), "data", "docker-config.json")
RUNC_ALIAS = "/usr/bin/runc" if os.path.exists("/usr/bin/runc") else (which("runc") or "/usr/bin/runc")


def _host_state(scope) -> dict:
    """What a stack must not leave: (leak-check snapshot, named netns, shim sockets, docker cgroups)."""
    return {
        "snapshot": scope.snapshot(),
        "netns": set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set(),
        "sockets": set(os.listdir("/run/containerd/s")) if os.path.isdir("/run/containerd/s") else set(),
        "docker_cgroups": set(cleanup.cgroup_dirs("docker")),
        "host_links": _links(),
    }


def _links(netns: str | None = None) -> str:
    argv = ["ip", "-o", "addr"] if netns is None else ["nsenter", f"--net={netns}", "ip", "-o", "addr"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _ip_forward(netns: str | None = None) -> str:
    argv = ["cat", "/proc/sys/net/ipv4/ip_forward"]
    if netns:
        argv = ["nsenter", f"--net={netns}"] + argv
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def _assert_nothing_left(before: dict, stack: DockerStack, scope) -> None:
    after = _host_state(scope)
    assert stack.leftovers() == []
    assert scope.leaks_since(before["snapshot"]) == []
    # The host-wide views (named netns, containerd 1.6's shared shim socket dir, the /docker cgroup
    # parent) are this stack's only while no other dockerd or containerd runs on the machine (a
    # concurrent test run's or a helper's): then nothing new may be there at all. With others
    # alive, stack.leftovers() above is the check (its shims' sockets and cgroups, by id).
    others = cleanup.find_processes(
        lambda argv, p: bool(argv) and os.path.basename(argv[0]) in ("dockerd", "containerd"))
    if not others:
        assert after["netns"] == before["netns"]
        assert after["sockets"] <= before["sockets"]
        assert after["docker_cgroups"] <= before["docker_cgroups"]
    if stack.netns_path:  # the namespace is unpinned: no bind mount, no dockerd (nothing else ran in it)
        assert not cleanup.mounts_under(stack.netns_path) and stack.dockerd_pid is None
    assert not os.path.exists(stack.workdir)


@pytest.fixture(scope="module")
def dk(tmp_path_factory, leak_scope):
    """The module's DockerStack (netns mode, runtimes runc-alias and capsize-runc), busybox loaded."""
    before = _host_state(leak_scope)
    runtimes = {"runc-alias": RUNC_ALIAS}
    for name in ("crun", "capsize-runc"):
        if available(name):
            runtimes[name] = runtime_path(name)
    stack = DockerStack(str(tmp_path_factory.mktemp("dk")), runtimes=runtimes)
    stack.host_ip_forward = _ip_forward()
    try:
        stack.start()
        stack.image_id = stack.import_busybox()
        warm = stack.cli("run", "--rm", "busybox", "true")  # creates the /docker cgroup parents once
        assert warm.returncode == 0, warm.stderr
        yield stack
    finally:
        stack.close()
        reap_children()
        _assert_nothing_left(before, stack, leak_scope)


def _shim_of(stack, cid):
    shims = [p for p in stack.containerd.shims() if p.cmdline()[p.cmdline().index("-id") + 1] == cid]
    assert len(shims) == 1
    return shims[0]


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        reap_children()
        time.sleep(0.02)
    return True


def _check_running_container(stack, cid):
    """The E1 process tree and on-disk state of a running `sleep 100` container; returns its pid."""
    info = json.loads(stack.cli("inspect", cid).stdout)[0]
    pid = info["State"]["Pid"]
    assert info["State"]["Running"] and pid > 0
    shim = _shim_of(stack, cid)
    argv = shim.cmdline()
    assert argv[1:] == ["-namespace", "moby", "-id", cid, "-address", stack.containerd.address]
    container = psutil.Process(pid)
    assert container.ppid() == shim.pid and container.cmdline() == ["sleep", "100"]
    with open(f"/proc/{pid}/status") as f:
        assert [line.split()[1:] for line in f if line.startswith("NSpid:")] == [[str(pid), "1"]]
    with open(f"/proc/{pid}/cgroup") as f:
        assert all(line.rstrip().endswith(f"/docker/{cid}") for line in f if ":memory:" in line or ":pids:" in line)
    with open(f"/proc/{shim.pid}/cgroup") as f:
        assert f"/docker/{cid}" not in f.read()  # the shim is not in the container's cgroups
    assert os.path.exists(stack.containerd.shim_socket("moby", cid))
    assert stack.containerd.tasks("moby")[cid] == (pid, "RUNNING")
    # dockerd and containerd are separate daemons: neither is the other's (or the shim's) parent
    daemons = {stack.dockerd_pid, stack.containerd_pid}
    assert shim.ppid() not in daemons
    assert not daemons & {c.pid for d in daemons for c in psutil.Process(d).children()}
    return pid


def _check_removed(stack, cid, pid):
    assert _wait(lambda: not cleanup.alive(pid))
    assert _wait(lambda: not [p for p in stack.containerd.shims() if cid in p.cmdline()])
    assert not os.path.exists(stack.containerd.shim_socket("moby", cid))
    assert not cleanup.cgroup_dirs(f"/docker/{cid}")


def test_daemons_and_network_are_private(dk):
    """dockerd runs in the stack's netns with --containerd <private socket>; docker0 is not on the host."""
    argv = psutil.Process(dk.dockerd_pid).cmdline()
    assert argv[0].endswith("dockerd") and argv[argv.index("--containerd") + 1] == dk.containerd.address
    assert argv[argv.index("--data-root") + 1].startswith(dk.workdir)
    assert cleanup.net_namespace_inode(dk.dockerd_pid) == dk.netns_inode != cleanup.net_namespace_inode()
    assert cleanup.net_namespace_inode(dk.containerd_pid) == cleanup.net_namespace_inode()
    inner = _links(dk.netns_path)
    assert " docker0 " in inner and "172.17.0.1/16" in inner
    assert " docker0 " not in _links() and "172.17.0.1" not in _links()
    info = json.loads(dk.cli("info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == "overlay2" and info["LiveRestoreEnabled"] is False
    # cgroupfs on every host (a cgroup v2 host with systemd would default to the systemd driver)
    assert info["CgroupDriver"] == "cgroupfs"
    assert {"runc", "runc-alias"} <= set(info["Runtimes"])
    assert info["Runtimes"]["runc-alias"]["path"] == RUNC_ALIAS
    # dockerd turned ip_forward on in its own namespace only
    assert _ip_forward(dk.netns_path) == "1" and _ip_forward() == dk.host_ip_forward
    with pytest.raises(FailedPrecondition):
        dk.start_dockerd()


def test_run_with_cli(dk):
    """`docker run -d busybox sleep 100` through the real CLI: process tree, config.json, removal."""
    r = dk.cli("run", "-d", "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        pid = _check_running_container(dk, cid)
        config = dk.container_config(cid)
        saved = json.load(open(DATA))
        assert config["linux"]["cgroupsPath"] == f"/docker/{cid}"
        assert [n["type"] for n in config["linux"]["namespaces"]] == \
            [n["type"] for n in saved["linux"]["namespaces"]]
        assert not any("path" in n for n in config["linux"]["namespaces"])
        assert [m["destination"] for m in config["mounts"]] == [m["destination"] for m in saved["mounts"]]
        hook = config["hooks"]["prestart"][0]
        assert hook["path"] == f"/proc/{dk.dockerd_pid}/exe" and hook["args"][:2] == \
            ["libnetwork-setkey", f"-exec-root={dk.exec_root}"] and hook["args"][2] == cid
        assert config["linux"]["seccomp"]["defaultAction"] == saved["linux"]["seccomp"]["defaultAction"]
        assert config["process"]["capabilities"] == saved["process"]["capabilities"]
        assert config["root"]["path"].startswith(os.path.join(dk.data_root, "overlay2"))
    finally:
        rm = dk.cli("rm", "-f", cid)
    assert rm.returncode == 0, rm.stderr
    _check_removed(dk, cid, pid)


def test_run_with_sdk(dk):
    """The same through the docker SDK (the harness's client)."""
    client = dk.client()
    container = client.containers.run("busybox", ["sleep", "100"], detach=True)
    try:
        container.reload()
        assert container.status == "running"
        assert client.images.get("busybox:latest").id == dk.image_id
        pid = _check_running_container(dk, container.id)
        result = container.exec_run(["cat", "/proc/1/cmdline"])
        assert result.exit_code == 0 and result.output == b"sleep\x00100\x00"
    finally:
        container.remove(force=True)
    _check_removed(dk, container.id, pid)


def test_loaded_image_is_the_lab_busybox(dk):
    """docker load of write_image_tar gives the same image ID every time; the image runs."""
    assert dk.image_id == busybox.write_image_tar(io.BytesIO())
    images = dk.cli("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
    assert f"busybox:latest {dk.image_id}" in images
    r = dk.cli("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_add_runtime_plumbing(dk):
    """daemon.json runtimes reach the shim: --runtime runc-alias runs with BinaryName /usr/bin/runc."""
    r = dk.cli("run", "--rm", "--runtime", "runc-alias", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = dk.cli("run", "-d", "--runtime", "runc-alias", "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        pid = _check_running_container(dk, cid)
        options = json.load(open(os.path.join(dk.bundle_dir(cid), "options.json")))
        # dockerd 20.10 gives every runc-v2 runtime the same root, <exec-root>/runtime-runc
        assert options == {"binary_name": RUNC_ALIAS, "root": os.path.join(dk.exec_root, "runtime-runc")}
        listed = subprocess.run([RUNC_ALIAS, "--root", os.path.join(options["root"], "moby"), "list", "-q"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listed == [cid]
    finally:
        dk.cli("rm", "-f", cid)
    _check_removed(dk, cid, pid)


def test_crun_wrapper_under_dockerd(dk):
    """runtime_path("crun") (the hybrid wrapper here) is a drop-in BinaryName for the real shim: run, exec."""
    if "crun" not in dk.runtimes:
        pytest.skip("crun is not installed")
    r = dk.cli("run", "-d", "--runtime", "crun", "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        pid = _check_running_container(dk, cid)
        assert json.load(open(os.path.join(dk.bundle_dir(cid), "options.json")))["binary_name"] == dk.runtimes["crun"]
        e = dk.cli("exec", cid, "cat", "/proc/1/cmdline")
        assert (e.returncode, e.stdout) == (0, "sleep\x00100\x00"), e.stderr
    finally:
        dk.cli("rm", "-f", cid)
    _check_removed(dk, cid, pid)


def test_capsize_runc_under_dockerd(dk):
    """The real stack drives capsize-runc: dockerd + containerd + containerd-shim-runc-v2 -> capsize-runc.

    dockerd's config.json carries its default seccomp profile, the libnetwork-setkey prestart
    hook (the container gets eth0 on docker0), a /docker/<id> cgroup and 14 capabilities.
    """
    if "capsize-runc" not in dk.runtimes:
        pytest.skip("capsize-runc is not installed")
    name = f"ref-capsize-{os.getpid()}"
    try:
        r = dk.cli("run", "--rm", "--name", name, "--runtime", "capsize-runc", "busybox", "echo", "hi", timeout=60)
        assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
        r = dk.cli("run", "-d", "--name", name, "--runtime", "capsize-runc", "busybox", "sleep", "100", timeout=60)
        assert r.returncode == 0, r.stderr
        cid = r.stdout.strip()
        pid = _check_running_container(dk, cid)
        status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
                      if ":\t" in line)
        assert status["Seccomp"].strip() == "2"  # Docker's default profile, loaded by capsize-runc
        e = dk.cli("exec", name, "sh", "-c", "ls /sys/class/net; cat /proc/1/cmdline")
        assert e.returncode == 0, e.stderr
        assert "eth0" in e.stdout.split() and e.stdout.endswith("sleep\x00100\x00"), e.stdout
        r = dk.cli("kill", name)
        assert r.returncode == 0, r.stderr
        w = dk.cli("wait", name, timeout=30)
        assert w.stdout.strip() == "137", (w.stdout, w.stderr)
    finally:
        dk.cli("rm", "-f", name)
        reap_children()


# -- stacks of their own: faults, and the baseline's network-less mode --------------------------------

def test_close_after_containerd_sigkill(tmp_path, leak_scope):
    """network="none" (the baseline's flags); containerd SIGKILLed with containers running; close."""
    before = _host_state(leak_scope)
    stack = DockerStack(str(tmp_path / "dk"), network="none")
    try:
        stack.start()
        stack.import_busybox()
        r = stack.cli("run", "-d", "busybox", "sleep", "100")
        assert r.returncode == 0, r.stderr
        assert "IPv4 forwarding is disabled" in r.stderr  # what --ip-forward=false costs
        cid = r.stdout.strip()
        pid = _check_running_container(stack, cid)
        assert "hooks" not in stack.container_config(cid) or not stack.container_config(cid)["hooks"]
        assert stack.netns_inode is None
        assert cleanup.net_namespace_inode(stack.dockerd_pid) == cleanup.net_namespace_inode()
        stack.kill_containerd()
        assert cleanup.alive(pid) and cleanup.alive(_shim_of(stack, cid).pid)
        assert stack.cli("ps", "-q", "--no-trunc").stdout.split() == [cid]  # docker still says Up
    finally:
        stack.close()
        reap_children()
    assert not cleanup.alive(pid)
    _assert_nothing_left(before, stack, leak_scope)


def test_close_after_both_daemons_sigkilled(tmp_path, leak_scope):
    """dockerd and containerd SIGKILLed: the data-root bind mount stays (baseline E7); close removes all."""
    before = _host_state(leak_scope)
    stack = DockerStack(str(tmp_path / "dk"))
    try:
        stack.start()
        stack.import_busybox()
        cids = [stack.cli("run", "-d", "busybox", "sleep", "100").stdout.strip() for _ in range(2)]
        pids = [_check_running_container(stack, c) for c in cids]
        stack.kill_dockerd()
        stack.kill_containerd()
        assert stack.data_root in cleanup.mounts_under(stack.data_root)
        assert all(cleanup.alive(p) for p in pids)
        assert "Cannot connect to the Docker daemon" in stack.cli("ps").stderr
    finally:
        stack.close()
        reap_children()
    assert not any(cleanup.alive(p) for p in pids)
    _assert_nothing_left(before, stack, leak_scope)


def test_live_restore_survives_dockerd_restart(tmp_path, leak_scope):
    """With live-restore, stopping and starting dockerd leaves the container running, same pid (E7)."""
    before = _host_state(leak_scope)
    stack = DockerStack(str(tmp_path / "dk"), live_restore=True)
    try:
        stack.start()
        stack.import_busybox()
        cid = stack.cli("run", "-d", "busybox", "sleep", "100").stdout.strip()
        pid = _check_running_container(stack, cid)
        old = stack.dockerd_pid
        assert stack.stop_dockerd() == 0
        assert not cleanup.alive(old) and cleanup.alive(pid)
        assert stack.start_dockerd() < 30
        info = json.loads(stack.cli("inspect", cid).stdout)[0]
        assert info["State"]["Running"] and info["State"]["Pid"] == pid
    finally:
        stack.close()
        reap_children()
    _assert_nothing_left(before, stack, leak_scope)
