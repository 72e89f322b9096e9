"""``docker stats``' cgroup v2 reading (runtime/daemon/stats.py) on the real kernel: a busy
process in a cgroup of a private cgroup2 mount (tests/lowlevel/test_cgroups.py's
``in_private_cgroup2``), whatever controllers this host gives that hierarchy."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from runtime.daemon import stats
from runtime.lowlevel.cgroups import Cgroup
from tests.lowlevel.test_cgroups import BUSYBOX, WAIT, _gate, cgname, in_private_cgroup2  # noqa: F401 - cgname: a fixture

pytestmark = pytest.mark.privileged


def _v2_sample(root: str) -> None:
    cg = Cgroup.for_container("s1", "/ctr/s1")
    assert cg.layout == "v2"
    cg.create()
    p = subprocess.Popen([BUSYBOX, "sh", "-c", WAIT + "while :; do :; done"], stdin=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)
        _gate(p)
        time.sleep(0.5)
        s = stats.sample(cg, "s1", "box")
        usage = s["cpu_stats"]["cpu_usage"]
        assert usage["total_usage"] >= 0.2e9 and usage["usage_in_usermode"] > 0   # cpu.stat's usage_usec, in ns
        assert "percpu_usage" not in usage and s["cpu_stats"]["system_cpu_usage"] > usage["total_usage"]
        controllers = open(os.path.join(root, "cgroup.controllers")).read().split()
        if "pids" in controllers and os.path.exists(os.path.join(cg.dirs[""], "pids.current")):
            assert s["pids_stats"]["current"] == 1
        else:
            assert s["pids_stats"] == {}
        if os.path.exists(os.path.join(cg.dirs[""], "memory.current")):
            assert s["memory_stats"]["usage"] > 0 and "max_usage" not in s["memory_stats"]
        else:
            assert s["memory_stats"] == {}
        assert s["name"] == "/box" and s["blkio_stats"]["io_service_bytes_recursive"] == []
        cg.kill_all(9)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cg.destroy()
    os.rmdir(os.path.join(root, "ctr"))


def test_stats_read_a_cgroup2_cgroup(tmp_path, cgname):  # noqa: F811 - the imported fixture
    in_private_cgroup2(tmp_path, cgname, _v2_sample)
