"""The reference OCI runtimes as drop-in binaries: runc, and crun through the hybrid-cgroup wrapper."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from harness.reference import cleanup
from runtime.errors import NotFound
from runtime.runtimes import CRUN_HYBRID, available, cgroup_layout, runtime_path, which
from tests.conftest import reap_children, run

pytestmark = pytest.mark.reference


def _cli(binary, root, log):
    def call(*args, **kw):
        return run([binary, "--root", root, "--log", log, "--log-format", "json", *args], **kw)
    return call


def _state(call, cid):
    p = call("state", cid)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _wait_status(call, cid, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        reap_children()  # the init is re-parented to this (subreaper) process once it dies
        st = _state(call, cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


@pytest.mark.parametrize("name", ["runc", "crun"])
@pytest.mark.privileged
def test_runtime_binary_lifecycle(name, make_bundle, runc_root, tmp_path):
    """create/start/state/kill/delete of a busybox bundle, exactly as a shim calls the runtime."""
    if not available(name):
        pytest.skip(f"{name} is not installed")
    binary = runtime_path(name)
    if name == "crun":
        assert binary == (CRUN_HYBRID if cgroup_layout() == "hybrid" else os.path.realpath(binary))
    cid = f"ref-{name}-{os.getpid()}"
    cgroup = f"/{cid}"
    host_cgroup_mounts = [m for m in cleanup.mountinfo() if m[1] in ("cgroup", "cgroup2")]
    bundle = make_bundle(["sleep", "100"], edit=lambda c: c["linux"].__setitem__("cgroupsPath", cgroup))
    call = _cli(binary, runc_root, str(tmp_path / "log.json"))
    pid_file = str(tmp_path / "init.pid")
    try:
        with open(tmp_path / "stdio", "w") as stdio:  # the init inherits create's stdio: no pipes
            p = subprocess.run([binary, "--root", runc_root, "--log", str(tmp_path / "log.json"), "--log-format",
                                "json", "create", "--bundle", bundle, "--pid-file", pid_file, cid],
                               stdin=subprocess.DEVNULL, stdout=stdio, stderr=stdio, timeout=60)
        assert p.returncode == 0, (tmp_path / "stdio").read_text() + (tmp_path / "log.json").read_text()
        pid = int(open(pid_file).read())
        st = _state(call, cid)
        assert (st["status"], st["pid"], st["id"]) == ("created", pid, cid)
        assert os.path.realpath(st["bundle"]) == os.path.realpath(bundle)

        assert call("start", cid).returncode == 0
        assert _wait_status(call, cid, "running")["status"] == "running"
        assert open(f"/proc/{pid}/cmdline").read().split("\0")[:2] == ["sleep", "100"]
        assert cleanup.cgroup_dirs(cgroup), "the init is not in its cgroupsPath"
        with open(f"/proc/{pid}/cgroup") as f:
            assert any(line.endswith(":" + cgroup) for line in f.read().splitlines() if ":memory:" in line)

        assert call("kill", cid, "KILL").returncode == 0
        assert _wait_status(call, cid, "stopped")["status"] == "stopped"
        d = call("delete", cid)
        assert d.returncode == 0, d.stderr
        assert call("state", cid).returncode != 0
        assert not cleanup.cgroup_dirs(cgroup)
        assert not os.path.exists(os.path.join(runc_root, cid))
    finally:
        call("delete", "--force", cid)
        cleanup.kill_cgroup(cgroup)
        reap_children()
    # the wrapper's private mount namespace never touched the host's cgroup mounts
    assert [m for m in cleanup.mountinfo() if m[1] in ("cgroup", "cgroup2")] == host_cgroup_mounts


@pytest.mark.skipif(cgroup_layout() != "hybrid", reason="the host's cgroup layout is not hybrid")
def test_plain_crun_refuses_hybrid_layout(make_bundle, runc_root, tmp_path):
    """Why the wrapper exists: plain crun fails on this host, naming the hybrid layout."""
    crun = which("crun")
    if not crun:
        pytest.skip("crun is not installed")
    cid = f"ref-plaincrun-{os.getpid()}"
    bundle = make_bundle(["true"], edit=lambda c: c["linux"].__setitem__("cgroupsPath", f"/{cid}"))
    try:
        p = run([crun, "--root", runc_root, "create", "--bundle", bundle, cid], stdin=subprocess.DEVNULL)
        assert p.returncode != 0
        assert "hybrid" in p.stderr
    finally:
        run([crun, "--root", runc_root, "delete", "--force", cid])
        cleanup.kill_cgroup(f"/{cid}")
    assert runtime_path("crun") == CRUN_HYBRID
    assert ("/sys/fs/cgroup/unified", "cgroup2") in cleanup.mountinfo()


def test_runtime_paths():
    if not available("runc"):
        pytest.skip("runc is not installed")
    assert os.path.basename(runtime_path("capsize-runc")) == "capsize-runc"
    assert os.access(runtime_path("capsize-runc"), os.X_OK)
    assert os.access(CRUN_HYBRID, os.X_OK)
    assert available("runc") and not available("no-such-runtime")
    with pytest.raises(NotFound, match="unknown runtime"):
        runtime_path("no-such-runtime")


@pytest.mark.parametrize("lines, want", [
    (["/sys/fs/cgroup cgroup2"], "v2"),
    (["/sys/fs/cgroup tmpfs", "/sys/fs/cgroup/memory cgroup", "/sys/fs/cgroup/unified cgroup2"], "hybrid"),
    (["/sys/fs/cgroup tmpfs", "/sys/fs/cgroup/memory cgroup", "/sys/fs/cgroup/cpu cgroup"], "v1"),
    (["/proc proc"], "none"),
])
def test_cgroup_layout_parsing(tmp_path, lines, want):
    path = tmp_path / "mountinfo"
    path.write_text("".join(f"{30 + i} 1 0:{i} / {point} rw,relatime shared:{i} - {fstype} {fstype} rw\n"
                            for i, (point, fstype) in enumerate(line.split() for line in lines)))
    assert cgroup_layout(str(path)) == want
