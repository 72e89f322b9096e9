"""Fixtures for capsized's tests: one private engine (capsize-runtimed + capsized) per module."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests import conftest as top
from tests.daemon.stack import Stack

_OURS = re.compile(r"/(capsize|docker)/[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def no_leaks(request):
    """The suite's leak check, scoped to what capsized makes: mounts under this session's temp
    dir, cgroups ``capsize/<64-hex id>`` (capsized's container ids; other suites running at the same
    time use other names), and this test process's descendants."""
    if request.node.get_closest_marker("no_leak_check"):
        yield
        return
    if not top._BASETEMP:
        top._BASETEMP.append(str(request.config._tmp_path_factory.getbasetemp()) + "/")
    base = top._BASETEMP[0]

    def snap():
        top.reap_children()
        return {"mounts": {m for m in top._mounts() if m.startswith(base)},
                "cgroups": {c for c in top._cgroups() if _OURS.search(c) and "/capsize/" in c},
                "processes": top._processes()}

    before = snap()
    yield
    deadline = time.monotonic() + 3.0
    while True:
        now = snap()
        found = [f"mount {m}" for m in sorted(now["mounts"] - before["mounts"])]
        found += [f"cgroup {c}" for c in sorted(now["cgroups"] - before["cgroups"])]
        found += [f"process {p}: {c}" for p, c in sorted(now["processes"].items()) if p not in before["processes"]]
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if found:
        pytest.fail("test leaked:\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A running engine with busybox:latest loaded, shared by the module; removed afterwards."""
    s = Stack(tmp_path_factory.mktemp("dm"))
    try:
        s.start()
        s.image_id = s.load_busybox()
        yield s
    finally:
        s.close()


@pytest.fixture
def fresh(tmp_path):
    """A stack of the test's own (for tests that kill or restart daemons), started; closed afterwards."""
    s = Stack(tmp_path / "dm")
    try:
        s.start()
        s.image_id = s.load_busybox()
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def _clean_containers(request):
    """Containers a test made in the shared stack are removed after it (before the leak check)."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").remove_all()
