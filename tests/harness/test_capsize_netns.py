"""The capsize engine runs capsized in a network namespace of its own (harness/engines/capsize.py),
as the docker engine runs dockerd: lo up and ip_forward on in it, the host's namespace untouched;
containers' sandboxes live under its exec-root, and a SIGKILL + restart leaves none of them."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from harness.reference import cleanup
from runtime import netns

pytestmark = pytest.mark.privileged


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _nsfs_under(path: str) -> list[str]:
    return [p for p, fstype in cleanup.mountinfo() if fstype == "nsfs" and p.startswith(path + "/")]


def test_capsized_runs_in_its_own_network_namespace(tmp_path):
    from harness.engines.capsize import CapsizeEngine
    host_ns = netns.inode()
    host_forward = _read("/proc/sys/net/ipv4/ip_forward")
    workdir = str(tmp_path / "eng")
    eng = CapsizeEngine(workdir, SimpleNamespace(live_restore=False, runtime=None))
    try:
        eng.start()
        daemon = eng.pids("daemon")[0]
        engine_ns = netns.inode(eng.netns_path)
        assert netns.inode(f"/proc/{daemon}/ns/net") == engine_ns != host_ns
        assert netns.inode(f"/proc/{eng.pids('runtime')[0]}/ns/net") == host_ns   # runtimed stays
        assert netns.run_in(eng.netns_path, _read, "/proc/sys/net/ipv4/ip_forward") == "1"
        assert _read("/proc/sys/net/ipv4/ip_forward") == host_forward
        assert "capsized runs in a network namespace of its own" in _read(os.path.join(eng.logs, "capsized.log"))
        client = eng.client()
        c = client.containers.run("busybox:latest", ["sleep", "100"], detach=True)
        key = os.path.join(eng.state, "daemon", "netns", c.id)
        c.reload()
        assert c.attrs["NetworkSettings"]["SandboxKey"] == key and netns.is_mounted(key)
        init = eng.pids("container", c.id)[0]
        assert netns.inode(f"/proc/{init}/ns/net") == netns.inode(key) not in (engine_ns, host_ns)
        assert eng.host_state([c.id]).netns == [key]        # cleanup.complete sees the sandbox, not the engine's ns
        client.close()
        eng.kill_component("daemon", signal.SIGKILL)
        assert netns.is_mounted(key), "capsized's SIGKILL does not remove the sandbox by itself"
        eng.start_component("daemon")                        # no live-restore: stopped, sandbox removed
        assert not os.path.lexists(key)
        client = eng.client()
        assert client.containers.get(c.id).status == "exited"
        client.close()
        assert eng.host_state([c.id]).netns == []
    finally:
        problems = eng.close()
    assert problems == []
    assert _nsfs_under(workdir) == [] and not os.path.exists(workdir)
    assert netns.inode() == host_ns
