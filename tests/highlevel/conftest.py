"""Fixtures for capsize-runtimed's tests: a real daemon per test, images, and a cleanup that proves itself.

* ``runtimed``: a factory of :class:`Runtimed` — the daemon as a real process
  (``.venv/bin/capsize-runtimed``) with a private root (under the test's tmp_path) and a private,
  short state dir under ``/run/capsize/hl-<hex>`` (unix socket paths are limited to 107 bytes,
  and mounts there are seen by the suite's leak check). It can be started, SIGTERMed,
  SIGKILLed and restarted on the same root and state. At teardown every task, container and
  image is removed through the API (the daemon is restarted if a test left it down, so that
  its recovery cleans up), the daemon is stopped, and the test fails if any task directory or
  mount is left under the state dir; a forced cleanup then removes whatever is left.
* ``busybox_image_tar``: the lab's busybox image as a docker-save tarball (session-scoped).
* Each daemon's shims put their sockets in ``<state>/s`` (``--shim-socket-dir``), so that what a
  test leaves there is its own (other sessions share /run/capsize/s): teardown fails on any file
  left in it, after giving an idle shim template a moment to leave.
* The suite's leak check (tests/leakcheck.py) knows this package's cgroups by their parent
  (every daemon here runs with ``--cgroup-parent /capsize/hlt-<pid>``, registered on the
  session's ``leak_scope``) and its mounts by the state dirs registered there; the empty parent
  is removed before each look.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from runtime import busybox
from runtime.errors import CapsizeError
from runtime.highlevel.client import RuntimeClient
from tests.conftest import VENV_BIN, reap_children, run
from tests.leakcheck import remove_empty_cgroup

RUNTIMED = os.path.join(VENV_BIN, "capsize-runtimed")
#: The cgroup parent of every task started by this session's daemons.
CGROUP_PARENT = f"/capsize/hlt-{os.getpid()}"
SHIM = os.path.join(VENV_BIN, "capsize-shim")


def mount_points(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=lambda p: -p.count("/"))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(cond, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        reap_children()
        time.sleep(interval)


class Runtimed:
    """One capsize-runtimed for a test (see the module docstring)."""

    def __init__(self, root: str, state: str, log_path: str, args=()):
        self.root, self.state, self.log_path, self.args = root, state, log_path, list(args)
        self.address = os.path.join(state, "runtimed.sock")
        self.proc: subprocess.Popen | None = None

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.state, "s")

    def argv(self, *extra: str) -> list[str]:
        return [RUNTIMED, "--root", self.root, "--state", self.state, "--log-file", self.log_path,
                "--log-level", "debug", "--shim-socket-dir", self.socket_dir, "--cgroup-parent", CGROUP_PARENT,
                *self.args, *extra]

    def start(self, *extra: str, timeout: float = 15.0) -> float:
        """Start the daemon and wait until its API answers; returns the seconds that took."""
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv(*extra), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path + ".stderr", "ab"))
        client = self.client()
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"capsize-runtimed exited with {self.proc.returncode}: "
                                     f"{open(self.log_path + '.stderr').read()[-500:]}")
            try:
                client.version(timeout=2)
                return time.monotonic() - t0
            except CapsizeError:
                if time.monotonic() - t0 > timeout:
                    raise
                time.sleep(0.005)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if not self.running:
            return None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the daemon (shims and containers live on)."""
        if self.running:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, namespace: str = "default", timeout: float | None = 60.0) -> RuntimeClient:
        return RuntimeClient(self.address, namespace, timeout)

    def log(self) -> list[dict]:
        entries = []
        try:
            with open(self.log_path) as f:
                for line in f:
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
        return entries

    def messages(self, **match) -> list[dict]:
        return [e for e in self.log() if all(e.get(k) == v for k, v in match.items())]

    def task_dirs(self) -> list[str]:
        base = os.path.join(self.state, "runtimed", "tasks")
        if not os.path.isdir(base):
            return []
        return sorted(os.path.join(ns, t) for ns in os.listdir(base) for t in os.listdir(os.path.join(base, ns)))

    # -- teardown ----------------------------------------------------------------------------
    def clean_through_api(self) -> list[str]:
        problems = []
        if not self.running:
            try:
                self.start()
            except (AssertionError, CapsizeError) as e:
                return [f"daemon would not start for the cleanup: {e}"]
        rt = self.client()
        # let background loads and cleanups (hung shims, dead shims) settle
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not any(t["status"] in ("unknown", "deleting") for ns in rt.namespaces()
                       for t in rt.with_namespace(ns).tasks()):
                break
            time.sleep(0.05)
        for ns in rt.namespaces():
            c = rt.with_namespace(ns)
            for t in c.tasks():
                try:
                    if t["status"] == "paused":
                        c.resume_task(t["id"])
                    c.delete_task(t["id"], force=True)
                except CapsizeError as e:
                    problems.append(f"task {ns}/{t['id']}: {e}")
            for ctr in c.containers():
                try:
                    c.delete_container(ctr["id"])
                except CapsizeError as e:
                    problems.append(f"container {ns}/{ctr['id']}: {e}")
            for img in c.images():
                try:
                    c.delete_image(img["name"])
                except CapsizeError as e:
                    problems.append(f"image {ns}/{img['name']}: {e}")
        try:
            rt.gc()
        except CapsizeError as e:
            problems.append(f"gc: {e}")
        if self.stop() != 0:
            problems.append(f"daemon exited with {self.proc.returncode} on SIGTERM")
        return problems

    def force_cleanup(self) -> None:
        """Whatever the API could not remove: shims, runtime state, mounts, directories."""
        import psutil
        self.kill()
        for p in psutil.process_iter(["pid", "cmdline"]):
            line = " ".join(p.info["cmdline"] or [])
            if "capsize-shim serve" in line and self.state + "/" in line:
                try:
                    p.kill()
                except psutil.Error:
                    pass
        reap_children()
        for rel in self.task_dirs():
            ns, tid = rel.split("/")
            run([SHIM, "delete", "--id", tid, "--namespace", ns, "--bundle",
                 os.path.join(self.state, "runtimed", "tasks", rel)])
        for point in mount_points(self.state):
            subprocess.run(["umount", "-l", point], check=False)
        reap_children()

    def teardown(self) -> list[str]:
        problems = self.clean_through_api()
        left = self.task_dirs()
        if left:
            problems.append(f"task directories left: {left}")
        mounts = mount_points(self.state)
        if mounts:
            problems.append(f"mounts left: {mounts}")
        if problems:
            self.force_cleanup()
        deadline = time.monotonic() + 3.0  # an idle shim template needs a moment to leave
        while os.path.isdir(self.socket_dir) and os.listdir(self.socket_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.isdir(self.socket_dir) and os.listdir(self.socket_dir):
            problems.append(f"shim sockets left in {self.socket_dir}: {sorted(os.listdir(self.socket_dir))}")
        shutil.rmtree(self.state, ignore_errors=True)
        return problems


@pytest.fixture
def runtimed(tmp_path, leak_scope):
    """Factory ``runtimed(*args)`` -> a started :class:`Runtimed` (``start=False`` to leave it stopped)."""
    made: list[Runtimed] = []

    def make(*args: str, start: bool = True) -> Runtimed:
        state = leak_scope.own_path(f"/run/capsize/hl-{uuid.uuid4().hex[:10]}")
        d = Runtimed(str(tmp_path / f"root{len(made)}"), state, str(tmp_path / f"runtimed{len(made)}.log"), args)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    problems = []
    for d in made:
        problems += d.teardown()
    reap_children()
    if problems:
        pytest.fail("runtimed teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _own_cgroup_parent(leak_scope):
    """Tasks of this session's daemons go under :data:`CGROUP_PARENT`: the leak check counts
    cgroups below it, and the parent itself once runc leaves it empty (it is removed first)."""
    leak_scope.own_cgroup(CGROUP_PARENT)
    leak_scope.add_tidy(lambda: remove_empty_cgroup(CGROUP_PARENT))


@pytest.fixture(scope="session")
def busybox_image_tar(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("image-save") / "busybox-save.tar")
    busybox.write_image_tar(path, "busybox:latest")
    return path


@pytest.fixture
def daemon(runtimed, busybox_image_tar):
    """A started daemon with busybox:latest imported in namespace ``default``."""
    d = runtimed()
    d.client().import_image(busybox_image_tar)
    return d


def run_task(rt: RuntimeClient, cid: str, args, runtime: str = "runc", image: str = "busybox:latest",
             start: bool = True) -> dict:
    """Create a container and its task (started unless *start* is False); returns the task."""
    rt.create_container(cid, image, runtime=runtime, args=list(args))
    task = rt.create_task(cid)
    if start:
        rt.start_task(cid)
    return task
