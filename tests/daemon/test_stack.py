"""The test engine itself cleans up: a closed Stack leaves no cgroup parent behind, also when no
leak-check tidy runs after it (the benchmarks use Stack outside the suite)."""

from __future__ import annotations

import os

from tests.daemon.stack import CGROUP_PARENT, Stack
from tests.leakcheck import CGROUP_ROOT


def _parent_dirs() -> list[str]:
    return [d for d in (os.path.join(CGROUP_ROOT, h, CGROUP_PARENT.strip("/")) for h in os.listdir(CGROUP_ROOT))
            if os.path.isdir(d)]


def test_a_closed_stack_leaves_no_cgroup_parent(tmp_path):
    s = Stack(tmp_path / "dm")
    try:
        s.start()
        s.load_busybox()
        s.ok("run", "-d", "--name", "c1", "busybox", "sleep", "100")
        s.ok("run", "-d", "--name", "c2", "busybox", "sleep", "100")
        assert _parent_dirs(), "the containers' cgroup parent was never made: the test proves nothing"
        s.ok("rm", "-f", "c1")   # removed first: capsize-runc made the parent for it, and keeps it for c2
    finally:
        s.close()
    assert _parent_dirs() == []
