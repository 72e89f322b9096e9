"""Suite-wide fixtures: the busybox rootfs, OCI bundles, and the leak check every test passes.

Tests that need the kernel's privileged parts (namespaces, mounts, cgroups, daemons) are marked
``privileged`` (per module with ``pytestmark``, per test elsewhere) and run as root on the real
kernel; as any other user they are skipped with the reason, and the pure tests (models, loader,
reports, argument parsing, RecordingHost, error mapping, ...) run: ``pytest -m "not privileged"``
is the non-root suite. The autouse ``no_leaks`` fixture compares the
host before and after each test — mounts, cgroup directories and processes, each only as far as
this pytest run owns it (tests/leakcheck.py: its descendants, names carrying ``SESSION_TAG``,
paths and cgroup parents registered on the ``leak_scope``) — and fails the test that leaves any
behind; other runs on the same machine are not this run's leaks.
The suite process is a child subreaper (as the shim and the harness are), so container inits
re-parented after ``create`` come to it and are reaped here instead of by a late PID 1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

from runtime import busybox
from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
from tests.leakcheck import LeakScope, reap_children, session_tag  # reap_children: re-exported for the suite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
CAPSIZE_RUNC = os.path.join(VENV_BIN, "capsize-runc")


IS_ROOT = os.geteuid() == 0
NOT_ROOT_REASON = "privileged: needs root (real namespaces, mounts, cgroups); run the suite as root"


def pytest_configure(config):
    # Any process may become a child subreaper (no privilege needed): orphans come to the suite.
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    """As a non-root user, skip the tests marked ``privileged`` (with the reason); the pure run."""
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason=NOT_ROOT_REASON)
    for item in items:
        if item.get_closest_marker("privileged"):
            item.add_marker(skip)


# -- leak check -----------------------------------------------------------------------------------

LEAK_SCOPE = pytest.StashKey[LeakScope]()


def leak_scope_of(config) -> LeakScope:
    """The session's :class:`~tests.leakcheck.LeakScope` (made on first use, base temp dir owned)."""
    scope = config.stash.get(LEAK_SCOPE, None)
    if scope is None:
        scope = config.stash[LEAK_SCOPE] = LeakScope()
        scope.own_path(str(config._tmp_path_factory.getbasetemp()))
    return scope


@pytest.fixture(scope="session")
def leak_scope(request) -> LeakScope:
    """What this run owns (register private dirs and cgroup parents with ``own_path``/``own_cgroup``)."""
    return leak_scope_of(request.config)


#: This session's name token: put it in the names of cgroups, cgroup parents and dirs a test makes
#: outside its tmp_path, so that the leak check knows them as this run's (tests/leakcheck.py).
SESSION_TAG = session_tag()


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail the test if it leaves mounts, cgroups or processes of this run behind (tests/leakcheck.py)."""
    if request.node.get_closest_marker("no_leak_check"):
        yield
        return
    scope = leak_scope_of(request.config)
    before = scope.snapshot()
    yield
    found = scope.leaks_since(before)
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
