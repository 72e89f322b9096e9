"""Suite-wide fixtures: the busybox rootfs, OCI bundles, and the leak check every test passes.

Every test runs as root on the real kernel. The autouse ``no_leaks`` fixture compares the
host before and after each test — mounts, cgroup directories named after capsize, and processes
whose command line mentions capsize or a runtime — and fails the test that leaves any behind.
The suite process is a child subreaper (as the shim and the harness are), so container inits
re-parented after ``create`` come to it and are reaped here instead of by a late PID 1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from runtime import busybox
from runtime.host import HOST, PR_SET_CHILD_SUBREAPER

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
CAPSIZE_RUNC = os.path.join(VENV_BIN, "capsize-runc")


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("capsize's tests need root: they use real namespaces, mounts and cgroups")
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def reap_children() -> None:
    """Reap every exited child (re-parented orphans included) without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- leak check -----------------------------------------------------------------------------------

_BASETEMP: list[str] = []  # this session's pytest base temp dir, set by the first no_leaks


def _mounts() -> set[str]:
    """Mount points tests can make: under this session's temp dir and capsize's/containerd's run dirs.

    Other pytest sessions running at the same time have their own base temp dirs, so their
    mounts do not count as ours.
    """
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    prefixes = tuple(_BASETEMP) + ("/run/capsize", "/run/containerd", "/var/lib/capsize")
    return {m for m in points if m.startswith(prefixes)}


def _cgroups() -> set[str]:
    """Container cgroups (``capsize/<id>``, ``docker/<id>``) and test cgroups (``capsize-test*``)."""
    found = set()
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        depth = dirpath.count("/") - 3
        if depth >= 3:
            dirnames[:] = []
        base = os.path.basename(dirpath)
        found.update(os.path.join(dirpath, d) for d in dirnames
                     if base in ("capsize", "docker", "moby", "default") or d.startswith("capsize-test"))
    return found


def _processes() -> dict[int, str]:
    """Live descendants of this test process (the suite is a subreaper, so orphans count too)."""
    import psutil
    procs = {}
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                procs[p.pid] = " ".join(p.cmdline())[:200]
        except psutil.Error:
            continue
    return procs


def host_snapshot() -> dict:
    reap_children()
    return {"mounts": _mounts(), "cgroups": _cgroups(), "processes": _processes()}


def leaks_since(before: dict, settle: float = 3.0) -> list[str]:
    """What exists now that did not in *before*; waits up to *settle* seconds for it to go away."""
    deadline = time.monotonic() + settle
    while True:
        now = host_snapshot()
        found = [f"mount {m}" for m in sorted(now["mounts"] - before["mounts"])]
        found += [f"cgroup {c}" for c in sorted(now["cgroups"] - before["cgroups"])]
        found += [f"process {p}: {c}" for p, c in sorted(now["processes"].items())
                  if p not in before["processes"]]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail the test if it leaves mounts, capsize cgroups or runtime processes behind."""
    if request.node.get_closest_marker("no_leak_check"):
        yield
        return
    if not _BASETEMP:
        _BASETEMP.append(str(request.config._tmp_path_factory.getbasetemp()) + "/")
    before = host_snapshot()
    yield
    found = leaks_since(before)
    if found:
        pytest.fail("test leaked:\n  " + "\n  ".join(found), pytrace=False)


# -- images and bundles ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    """A read-only-by-convention busybox rootfs directory shared by the session (copy before writing)."""
    return busybox.write_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    """The reproducible busybox rootfs tar (``docker import``-able)."""
    path = str(tmp_path_factory.mktemp("image-tar") / "busybox.tar")
    busybox.write_rootfs_tar(path)
    return path


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs):
    """Factory: ``make_bundle(args, **overrides)`` -> bundle dir with config.json and a rootfs copy.

    The config is ``capsize-runc spec``'s default with ``process.args`` = *args*; *overrides* is
    a function ``edit(config) -> None`` given as ``edit=...`` to change anything else.
    """
    from runtime.lowlevel.spec import default_spec

    counter = [0]

    def make(args=("true",), edit=None, name=None) -> str:
        counter[0] += 1
        bundle = tmp_path / (name or f"bundle{counter[0]}")
        bundle.mkdir()
        shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
        config = default_spec()
        config["process"]["args"] = list(args)
        if edit:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return str(bundle)

    return make


@pytest.fixture
def runc_root(tmp_path) -> str:
    """A private --root state directory for a low-level runtime."""
    d = tmp_path / "runc-root"
    d.mkdir()
    return str(d)


def run(argv, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run *argv* with stdout/stderr captured through files, bounded by *timeout* seconds.

    Files, not pipes: a container's init inherits ``create``'s stdio and keeps it open long
    after ``create`` returns, so reading a pipe to EOF would wait for the container to exit.
    Returns a CompletedProcess with text ``stdout`` and ``stderr``.
    """
    import tempfile
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(argv, stdout=out, stderr=err, timeout=timeout, **kw)
        out.seek(0), err.seek(0)
        proc.stdout = out.read().decode(errors="replace")
        proc.stderr = err.read().decode(errors="replace")
    return proc
