"""The podman engine: a private podman API service with conmon; roles, the service's restart, and a
close that leaves nothing (processes, mounts, storage, cgroups, netns, sockets, host caches)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from harness.engines.podman import PodmanEngine
from harness.reference import cleanup
from harness.reference.podman import CGROUP_PARENT, CNI_CACHE, IMAGE_CACHE, NETNS_DIR
from harness.scenario.models import EngineOptions
from tests.conftest import reap_children

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.reference,
    pytest.mark.skipif(PodmanEngine.unavailable(EngineOptions()) is not None,
                       reason=str(PodmanEngine.unavailable(EngineOptions()))),
]


def _host() -> dict:
    return {"netns": set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set(),
            "cni": os.path.lexists(CNI_CACHE), "image_cache": os.path.lexists(IMAGE_CACHE),
            "shm_lock": os.path.exists("/dev/shm/libpod_lock"),
            "cgroups": set(cleanup.cgroup_dirs(CGROUP_PARENT)),
            "system": [p for p in ("/run/libpod", "/run/containers", "/run/podman") if os.path.lexists(p)]}


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        reap_children()
        time.sleep(0.05)
    return True


@pytest.fixture
def engine(leak_scope):
    before = _host(), leak_scope.snapshot()
    workdir = tempfile.mkdtemp(prefix="pm-", dir="/tmp")
    eng = PodmanEngine(workdir, EngineOptions())
    eng.prepare()
    eng.start()
    try:
        yield eng
    finally:
        stack = eng.stack
        assert eng.close() == []
        reap_children()
        shutil.rmtree(workdir, ignore_errors=True)
        assert stack.leftovers() == []
        # the host-wide views (/run/netns, /var/lib/cni, /libpod_parent...) are this stack's only
        # while no other podman runs (a concurrent harness run's): then they must be as before
        others = cleanup.find_processes(lambda argv, p: bool(argv) and os.path.basename(argv[0]) in ("podman", "conmon"))
        if not others:
            assert _host() == before[0]
        assert leak_scope.leaks_since(before[1]) == []
        assert not cleanup.mounts_under(workdir) and not os.path.exists(workdir)
        assert not cleanup.processes_in_netns(stack.netns_inode or -1)


def _cli(eng, *args, binary="docker", timeout=60):
    return subprocess.run([shutil.which(binary) if binary == "docker" else binary, *args], env=eng.cli_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_roles_clients_and_a_clean_close(engine):
    st = engine.stack
    r = _cli(engine, "run", "-d", "--name", "web", "busybox:latest", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    # both docker CLIs and the SDK drive the service through DOCKER_HOST
    if os.path.exists("/usr/bin/docker"):
        old = _cli(engine, "ps", "--format", "{{.Names}}", binary="/usr/bin/docker")
        assert old.returncode == 0 and old.stdout.split() == ["web"], old.stderr
    c = engine.client()
    try:
        assert c.containers.get("web").status == "running"
        assert c.containers.get("web").exec_run(["echo", "hi"]).output == b"hi\n"
    finally:
        c.close()
    [daemon] = engine.pids("daemon")
    [shim] = engine.pids("shim", cid)
    [init] = engine.pids("container", cid)
    assert engine.classify(daemon, 0, [], "")[0] == "daemon"
    with open(f"/proc/{init}/cgroup") as f:
        assert f"/{CGROUP_PARENT}/libpod-{cid}" in f.read()
    import psutil
    assert psutil.Process(init).ppid() == shim and psutil.Process(shim).ppid() != daemon
    # the service, its conmon and the CNI bridge live in the stack's netns, not the host's
    assert cleanup.net_namespace_inode(daemon) == st.netns_inode == cleanup.net_namespace_inode(shim)
    assert cleanup.net_namespace_inode(daemon) != cleanup.net_namespace_inode()
    assert "cni-podman0" not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    links = subprocess.run(["nsenter", f"--net={st.netns_path}", "ip", "-o", "link"], capture_output=True, text=True)
    assert "cni-podman0" in links.stdout
    assert os.path.exists(os.path.join(st.conf_dir, "containers.conf")) and st.driver in ("overlay", "vfs")
    hs = engine.host_state([cid])
    assert hs.process and hs.cgroup and hs.netns and hs.state   # a running container is seen
    # runtime and lowlevel are n/a on podman with the reason
    from runtime.errors import Unimplemented
    with pytest.raises(Unimplemented, match="no runtime daemon"):
        engine.pids("runtime")


def test_service_comes_and_goes_containers_stay(engine):
    r = _cli(engine, "run", "-d", "--name", "web", "busybox:latest", "sleep", "1000")
    cid = r.stdout.strip()
    [init] = engine.pids("container", cid)
    facts = engine.kill_component("daemon", signal.SIGKILL)
    assert facts["exit_status"] == -9 and engine.pids("daemon") == []
    assert cleanup.alive(init) and engine.pids("shim", cid)
    gone = _cli(engine, "ps")
    assert gone.returncode == 1 and "Cannot connect to the Docker daemon" in gone.stderr
    assert engine.start_component("daemon")["ready_seconds"] < 30
    up = _cli(engine, "ps", "--format", "{{.ID}} {{.Status}}")
    assert up.returncode == 0 and up.stdout.startswith(cid[:12]) and "Up" in up.stdout
    assert engine.pids("container", cid) == [init]
    rm = _cli(engine, "rm", "-f", "web")
    assert rm.returncode == 0, rm.stderr
    assert _wait(lambda: not cleanup.alive(init) and not engine.pids("shim", cid))
    assert _wait(lambda: engine.host_state([cid]).as_dict() == {k: [] for k in engine.host_state([]).KINDS})
