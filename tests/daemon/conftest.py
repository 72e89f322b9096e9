"""Fixtures for capsized's tests: one private engine (capsize-runtimed + capsized) per module."""

from __future__ import annotations

import pytest

from tests.daemon.stack import CGROUP_PARENT, Stack
from tests.leakcheck import remove_empty_cgroup


@pytest.fixture(autouse=True, scope="session")
def _own_cgroup_parent(leak_scope):
    """Every capsized here puts containers under this session's ``--cgroup-parent``: the leak
    check counts cgroups below it (and the parent itself, which capsize-runc leaves once empty)."""
    leak_scope.own_cgroup(CGROUP_PARENT)
    leak_scope.add_tidy(lambda: remove_empty_cgroup(CGROUP_PARENT))


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
