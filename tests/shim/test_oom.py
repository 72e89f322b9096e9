"""/tasks/oom from the container's memory cgroup (cgroup v1 eventfd; cgroup v2 memory.events)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def _memory_controller() -> bool:
    """v1's memory hierarchy (this host), or cgroup2 at /sys/fs/cgroup offering memory (the cgv2 VM)."""
    if os.path.exists("/sys/fs/cgroup/memory/cgroup.event_control"):
        return True
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return "memory" in f.read().split()
    except OSError:
        return False


@pytest.mark.skipif(not _memory_controller(), reason="needs a memory controller (cgroup v1 memory, or cgroup v2's)")
def test_oom_kill_is_published_before_the_exit(shims, event_sink, runc_bin):
    def limit(cfg):
        cfg["linux"]["resources"]["memory"] = {"limit": 16 << 20}
    # tail keeps the whole (newline-free) /dev/zero "line" in memory until the OOM killer stops it
    shim = shims.start(["tail", "/dev/zero"], runtime=runc_bin, edit=limit)
    shim.call("create")
    shim.call("start")
    assert shim.call("wait")["exit_status"] == 137
    shim.call("delete")
    topics = event_sink.wait_for(5, shim.id)
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit", "/tasks/delete"]


def test_no_oom_event_without_an_oom(shims, event_sink, runc_bin):
    def limit(cfg):
        cfg["linux"]["resources"]["memory"] = {"limit": 16 << 20}
    shim = shims.start(["sh", "-c", "exit 0"], runtime=runc_bin, edit=limit)
    shim.call("create")
    shim.call("start")
    shim.call("wait")
    shim.call("delete")  # removing the cgroup fires the eventfd too: it must not count as an OOM
    assert event_sink.wait_for(4, shim.id) == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
