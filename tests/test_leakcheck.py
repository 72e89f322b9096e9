"""The leak check itself: it catches what a run leaves, and only what that run owns.

* A real pytest run (a subprocess, with tests/conftest.py as its plugin) whose tests leave a
  process, a mount under their tmp_path and a cgroup named with the session tag fails exactly
  those tests (an error at teardown), naming each leak; its clean test passes.
* A check running in another process (another "run") does not count a process, a cgroup or a
  mount that this process made, and does count its own.
Everything crafted here is removed again before the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from runtime.host import HOST
from tests.conftest import REPO, reap_children
from tests.leakcheck import LeakScope, cgroup_dirs, remove_empty_cgroup, session_tag

CONTROLLER = "/sys/fs/cgroup/pids"


def _kill_from_file(path: str) -> None:
    if os.path.exists(path):
        for pid in open(path).read().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.1)
    reap_children()


def _umount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(path)), key=len, reverse=True):
        HOST.umount(p)


LEAKY = '''
import os, subprocess, time
from runtime.host import HOST

def test_leaves_a_process(tmp_path_factory):
    p = subprocess.Popen(["sleep", "300"])
    with open(os.environ["LEAK_PIDS"], "a") as f:
        f.write(f"{p.pid}\\n")

def test_leaves_a_mount(tmp_path):
    (tmp_path / "m").mkdir()
    HOST.mount("tmpfs", str(tmp_path / "m"), "tmpfs", 0, "size=1m")

def test_leaves_a_cgroup():
    from tests.conftest import SESSION_TAG
    os.mkdir(f"/sys/fs/cgroup/pids/capsize-test-{SESSION_TAG}-leak")

def test_is_clean(tmp_path):
    (tmp_path / "m").mkdir()
    HOST.mount("tmpfs", str(tmp_path / "m"), "tmpfs", 0, "size=1m")
    HOST.umount(str(tmp_path / "m"))
    subprocess.run(["true"], check=True)
'''


@pytest.mark.privileged
def test_the_check_fails_the_tests_that_leak(tmp_path):
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    pids = tmp_path / "pids"
    base = tmp_path / "base"
    env = dict(os.environ, LEAK_PIDS=str(pids), PYTHONPATH=REPO)
    proc = None
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
             "--basetemp", str(base), "--rootdir", str(tmp_path), "-o", "timeout=60", str(tmp_path / "test_leaky.py")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "4 passed, 3 errors" in out, out   # failed at teardown
        errors = sorted(line.split("::")[1].split()[0] for line in out.splitlines() if line.startswith("ERROR "))
        assert errors == ["test_leaves_a_cgroup", "test_leaves_a_mount", "test_leaves_a_process"], out
        assert "cgroup /sys/fs/cgroup/pids/capsize-test-ts" in out and "process " in out and "sleep 300" in out
        assert f"mount {base}/test_leaves_a_mount0/m" in out, out
    finally:
        _kill_from_file(str(pids))
        _umount_under(str(base))
        for d in cgroup_dirs():
            if os.path.basename(d).startswith("capsize-test-ts") and d.endswith("-leak"):
                os.rmdir(d)


OTHER_RUN = '''
import json, os, subprocess, sys, time
from tests.leakcheck import LeakScope
scope = LeakScope()
scope.own_path(sys.argv[1])
scope.own_cgroup(sys.argv[2])
before = scope.snapshot()
print("ready", flush=True)
sys.stdin.readline()                        # the test makes its own things meanwhile
mine = subprocess.Popen(["sleep", "300"])   # and this "run" leaks a process of its own
found = scope.new_since(before)
mine.kill(); mine.wait()
print(json.dumps(found), flush=True)
'''


@pytest.mark.privileged
def test_another_runs_things_are_not_ours(tmp_path):
    """The check in a second process (a second run): the first's process, cgroup and mount under
    /run/capsize are not its leaks; its own registered cgroup and path and its own process are."""
    tag = uuid.uuid4().hex[:8]
    theirs_mount = f"/run/capsize/leakcheck-{tag}"           # another run's private state dir
    mine_mount = f"/run/capsize/leakcheck-own-{tag}"
    theirs_cg = f"{CONTROLLER}/capsize-other-{tag}"           # not named after the inner session
    mine_cg = f"/capsize-own-{tag}"
    child = subprocess.Popen([sys.executable, "-c", OTHER_RUN, mine_mount, mine_cg], cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=REPO), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    sleeper = None
    made = []
    try:
        assert child.stdout.readline().strip() == "ready"
        sleeper = subprocess.Popen(["sleep", "300"])          # a sibling, not the child's descendant
        for d in (theirs_mount, mine_mount):
            os.makedirs(d)
            HOST.mount("tmpfs", d, "tmpfs", 0, "size=1m")
            made.append(d)
        os.mkdir(theirs_cg)
        os.mkdir(CONTROLLER + mine_cg)
        with open(os.path.join(theirs_cg, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))                         # a cgroup with someone else's process
        child.stdin.write("go\n")
        child.stdin.flush()
        found = json.loads(child.stdout.readline())
        assert f"mount {mine_mount}" in found and f"cgroup {CONTROLLER}{mine_cg}" in found, found
        assert any(f.startswith("process ") and "sleep 300" in f for f in found), found
        assert not [f for f in found if theirs_mount in f or theirs_cg in f or f"process {sleeper.pid}:" in f], found
        assert len(found) == 3, found
    finally:
        child.kill()
        child.wait()
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for d in made:
            HOST.umount(d)
            os.rmdir(d)
        for d in (theirs_cg, CONTROLLER + mine_cg):
            if os.path.isdir(d):
                os.rmdir(d)


def test_ownership_rules(tmp_path):
    """Pure rules: the tag as a token, registered paths and cgroups, and a cgroup's processes."""
    scope = LeakScope(tag=session_tag(4242), cgroup_root=str(tmp_path))
    scope.own_path(str(tmp_path / "state"))
    scope.own_cgroup("/capsize/hlt-9/")
    assert scope.names_session("/capsize-test-ts4242-cg") and not scope.names_session("/capsize-test-ts42421")
    assert not scope.names_session("/capsize/ats4242")
    assert scope.owns_mount(str(tmp_path / "state")) and scope.owns_mount(str(tmp_path / "state" / "x"))
    assert not scope.owns_mount(str(tmp_path / "statefile"))
    assert scope.owns_cgroup(f"{tmp_path}/memory/capsize/hlt-9/abc", set())
    assert scope.owns_cgroup(f"{tmp_path}/memory/capsize/hlt-9", set())
    assert not scope.owns_cgroup(f"{tmp_path}/memory/capsize/hlt-90", set())
    procs = tmp_path / "pids" / "capsize" / "x" / "sub"
    procs.mkdir(parents=True)
    (procs / "cgroup.procs").write_text("77\n78\n")
    assert scope.owns_cgroup(f"{tmp_path}/pids/capsize/x", {78})
    assert not scope.owns_cgroup(f"{tmp_path}/pids/capsize/x", {79})
    assert f"{tmp_path}/pids/capsize/x/sub" in cgroup_dirs(str(tmp_path))
    (tmp_path / "pids" / "capsize" / "empty").mkdir()
    remove_empty_cgroup("/capsize/empty", str(tmp_path))
    remove_empty_cgroup("/capsize/x", str(tmp_path))      # has a child: stays
    assert not (tmp_path / "pids" / "capsize" / "empty").exists() and procs.is_dir()
