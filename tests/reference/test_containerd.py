"""ContainerdStack: Debian's containerd started privately, faults, and a close that leaves nothing."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from harness.reference import cleanup
from harness.reference.containerd import ContainerdStack, shim_socket_path
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from runtime.runtimes import which
from tests.conftest import reap_children

pytestmark = [
    pytest.mark.reference,
    pytest.mark.skipif(not all(which(b) for b in ("containerd", "ctr", "containerd-shim-runc-v2", "runc")),
                       reason="Debian's containerd, ctr, containerd-shim-runc-v2 or runc is missing"),
]

NS = "default"
SFX = f"-{os.getpid()}"  # ids (and so cgroups /default/<id>) unique per test run
CID = "ref-sleep" + SFX


@pytest.fixture
def stack(tmp_path):
    """A started ContainerdStack with the busybox image imported; closed (and checked) after the test."""
    s = ContainerdStack(str(tmp_path / "ctd"))
    try:
        s.start()
        s.image = s.import_busybox()
        yield s
    finally:
        s.close()
        assert s.leftovers() == []
        reap_children()


def _run(stack, cid, *args):
    stack.ctr("run", "-d", "--null-io", "--runc-root", stack.runc_root, stack.image, cid, *args,
              namespace=NS, check=True)
    pid, status = stack.tasks(NS)[cid]
    assert status == "RUNNING"
    return pid


def _shim(stack, cid):
    found = [p for p in stack.shims() if p.cmdline()[p.cmdline().index("-id") + 1] == cid]
    assert len(found) == 1, [p.cmdline() for p in stack.shims()]
    return found[0]


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        reap_children()
        time.sleep(0.02)
    return True


@pytest.mark.privileged
def test_config_is_private(stack):
    """Every path is under the workdir; the CRI plugin is off; overlayfs and the tasks service are on."""
    text = open(stack.config_path).read()
    for line in text.splitlines():
        if line.strip().startswith(("root", "state", "address", "path", "runtime_root")):
            assert stack.workdir in line, line
    plugins = stack.ctr("plugins", "ls", check=True).stdout
    assert "io.containerd.grpc.v1.cri" not in plugins
    status = {(f[0], f[1]): f[-1] for f in (line.split() for line in plugins.splitlines()[1:])}
    assert status[("io.containerd.snapshotter.v1", "overlayfs")] == "ok"
    assert status[("io.containerd.grpc.v1", "tasks")] == "ok"
    assert stack.start_seconds < 10
    with pytest.raises(FailedPrecondition, match="already running"):
        stack.start()
    with pytest.raises(NotFound):
        stack.ctr("tasks", "kill", "no-such-task", namespace=NS, check=True)


@pytest.mark.privileged
def test_run_kill9_restart_close(stack):
    """ctr run; SIGKILL containerd: shim and container live on; restart: the task is still listed."""
    assert stack.image == "docker.io/library/busybox:latest"
    assert stack.image in stack.ctr("images", "ls", "-q", namespace=NS, check=True).stdout.split()
    pid = _run(stack, CID, "sleep", "100")
    shim = _shim(stack, CID)
    argv = shim.cmdline()
    assert argv[0].endswith("containerd-shim-runc-v2")
    assert argv[1:] == ["-namespace", NS, "-id", CID, "-address", stack.address]
    assert psutil.Process(pid).ppid() == shim.pid
    assert psutil.Process(pid).cmdline() == ["sleep", "100"]
    assert shim.pid not in [c.pid for c in psutil.Process(stack.pid).children()]  # detached from containerd
    # the shim socket is where containerd 1.6's hash says, and the bundle records it
    sock = stack.shim_socket(NS, CID)
    assert sock == shim_socket_path(stack.address, NS, CID) and os.path.exists(sock)
    bundle = os.path.join(stack.state, "io.containerd.runtime.v2.task", NS, CID)
    assert open(os.path.join(bundle, "address")).read().strip() == "unix://" + sock
    assert cleanup.cgroup_dirs(f"/{NS}/ref-sleep{SFX}")

    old = stack.pid
    assert stack.kill() == -9
    assert not cleanup.alive(old) and stack.pid is None
    assert cleanup.alive(shim.pid) and cleanup.alive(pid)
    stack.start()
    assert stack.tasks(NS) == {CID: (pid, "RUNNING")}
    # the stack fixture closes with the task running and checks nothing is left


@pytest.mark.privileged
def test_close_after_shim_sigkill(stack):
    """A SIGKILLed shim leaves its socket in /run/containerd/s (baseline E5); close removes it."""
    pid = _run(stack, "ref-shimkill" + SFX, "sleep", "100")
    shim = _shim(stack, "ref-shimkill" + SFX)
    shim.kill()
    assert _wait(lambda: not cleanup.alive(pid))
    assert _wait(lambda: "ref-shimkill" + SFX not in stack.tasks(NS))
    assert os.path.exists(stack.shim_socket(NS, "ref-shimkill" + SFX))  # containerd's cleanup leaves it
    stack.close()
    assert not os.path.exists(stack.shim_socket(NS, "ref-shimkill" + SFX))


@pytest.mark.privileged
def test_close_when_containerd_cannot_restart(stack):
    """containerd SIGKILLed and broken: close kills tasks and shims by force and removes everything."""
    pids = [_run(stack, f"ref-force{i}{SFX}", "sleep", "100") for i in range(2)]
    shims = [_shim(stack, f"ref-force{i}{SFX}").pid for i in range(2)]
    stack.kill()
    with open(stack.config_path, "w") as f:
        f.write("this is = not [toml\n")
    stack.close()
    assert not any(cleanup.alive(p) for p in pids + shims)
    assert not any(os.path.exists(stack.shim_socket(NS, f"ref-force{i}{SFX}")) for i in range(2))
    assert not any(cleanup.cgroup_dirs(f"/{NS}/ref-force{i}{SFX}") for i in range(2))
    assert not os.path.exists(stack.workdir)


def test_bad_workdir():
    with pytest.raises(InvalidArgument, match="too long"):
        ContainerdStack("/tmp/" + "x" * 100)


@pytest.mark.privileged
def test_start_probe_retries_within_timeout(tmp_path, monkeypatch):
    """A containerd that does not answer the first ``ctr version`` (frozen with SIGSTOP right
    before that first probe, for longer than one probe) is still a successful start within the
    timeout: the probe is retried, not the start failed at its first unanswered probe (issue #21)."""
    import signal
    import threading

    from harness.reference import containerd as mod
    monkeypatch.setattr(mod, "PROBE_SECONDS", 0.3)
    s = ContainerdStack(str(tmp_path / "ctd"))
    frozen, timers, real_ctr = [], [], s.ctr

    def ctr(*args, **kw):
        # freeze at the first probe itself (freezing "soon after the socket exists" raced the probe)
        if args[:1] == ("version",) and not frozen and s._proc and s._proc.poll() is None:
            os.kill(s._proc.pid, signal.SIGSTOP)
            frozen.append(time.monotonic())
            timers.append(threading.Timer(1.5, os.kill, (s._proc.pid, signal.SIGCONT)))
            timers[-1].start()
        return real_ctr(*args, **kw)

    monkeypatch.setattr(s, "ctr", ctr)
    try:
        seconds = s.start(timeout=20)
        assert frozen, "containerd was never frozen"
        assert seconds >= 1.0, seconds   # it answered only after the thaw, several probes later
        assert s.ctr("version").returncode == 0
    finally:
        for t in timers:
            t.join()
        if s._proc and s._proc.poll() is None:
            os.kill(s._proc.pid, signal.SIGCONT)
        s.close()
        assert s.leftovers() == []
        reap_children()


@pytest.mark.privileged
def test_start_without_wait_returns_at_once(tmp_path):
    """``start(wait=False)`` returns None before containerd answers (fault.start {wait: false})."""
    s = ContainerdStack(str(tmp_path / "ctd"))
    try:
        assert s.start(wait=False) is None
        assert s.running
        assert _wait(lambda: s.ctr("version", timeout=5).returncode == 0)
    finally:
        s.close()
        assert s.leftovers() == []
        reap_children()
