"""A private capsize engine for tests: capsize-runtimed + capsized under one work directory.

:class:`Stack` starts ``capsize-runtimed --root W/root --state W/state`` and ``capsized -H
unix://W/state/capsized.sock --data-root W/root --exec-root W/state``, gives the real docker CLI
(Debian's 20.10, :data:`DOCKER`) and the docker SDK on it, and :meth:`Stack.close` removes
every container (through the API, so shims, mounts and cgroups go), stops both daemons,
kills whatever process still names the work directory and removes the emptied cgroup parent.
Benchmarks use it too (benchmarks/daemon_bench.py ...), outside the suite's leak check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from tests.conftest import SESSION_TAG, VENV_BIN, reap_children, run
from tests.leakcheck import remove_empty_cgroup

#: capsized's ``--cgroup-parent`` for every Stack of this session (its default is ``/capsize``):
#: containers go to ``/capsize/<SESSION_TAG>/<id>``, which the suite's leak check knows as this
#: run's, and other runs' ``/capsize/<id>`` cgroups are not mistaken for ours.
CGROUP_PARENT = f"/capsize/{SESSION_TAG}"

DOCKER = "/usr/bin/docker"   # Debian's docker.io CLI (20.10), what a fresh machine has


def ping(path: str, timeout: float = 1.0) -> bool:
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b" ", 2)[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


class Stack:
    def __init__(self, workdir: str, live_restore: bool = False, netns: bool = False):
        self.workdir = str(workdir)
        self.root = os.path.join(self.workdir, "root")
        self.state = os.path.join(self.workdir, "state")
        self.logs = os.path.join(self.workdir, "logs")
        for d in (self.root, self.state, self.logs, os.path.join(self.workdir, "cli")):
            os.makedirs(d, exist_ok=True)
        self.sock = os.path.join(self.state, "capsized.sock")
        self.host = "unix://" + self.sock
        self.pidfile = os.path.join(self.state, "capsized.pid")
        self.live_restore = live_restore
        #: with *netns*, capsized runs in ``W/netns``, a network namespace of its own (as the
        #: harness's capsize engine runs it): what networked tests need; else in the host's
        self.netns_path = os.path.join(self.workdir, "netns") if netns else None
        self.runtimed: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self._clients = []

    # -- processes ---------------------------------------------------------------------------
    def start_runtime(self, timeout: float = 20) -> None:
        out = open(os.path.join(self.logs, "runtimed.out"), "ab")
        self.runtimed = subprocess.Popen(
            [os.path.join(VENV_BIN, "capsize-runtimed"), "--root", self.root, "--state", self.state,
             "--log-file", os.path.join(self.logs, "runtimed.log")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        out.close()
        sock = os.path.join(self.state, "runtimed.sock")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.runtimed.poll() is not None:
                raise RuntimeError(f"capsize-runtimed exited {self.runtimed.returncode}: "
                                   + open(os.path.join(self.logs, "runtimed.out")).read()[-500:])
            if os.path.exists(sock):
                r = subprocess.run(["curl", "-s", "-m", "1", "--unix-socket", sock, "http://x/v1/version"],
                                   capture_output=True)
                if r.returncode == 0 and r.stdout:
                    return
            time.sleep(0.02)
        raise RuntimeError("capsize-runtimed did not answer")

    def daemon_argv(self, *extra: str) -> list[str]:
        argv = [os.path.join(VENV_BIN, "capsized"), "-H", self.host, "--data-root", self.root,
                "--exec-root", self.state, "--pidfile", self.pidfile, "--cgroup-parent", CGROUP_PARENT,
                "--log-file", os.path.join(self.logs, "capsized.log"), *extra]
        if self.live_restore:
            argv.append("--live-restore")
        if self.netns_path:
            from runtime import netns
            if not netns.is_mounted(self.netns_path):
                netns.create(self.netns_path)
                netns.set_sysctl(self.netns_path, "net.ipv4.ip_forward", "1")
            argv = ["nsenter", f"--net={self.netns_path}", "--"] + argv
        return argv

    def start_daemon(self, *extra: str, timeout: float = 30) -> float:
        out = open(os.path.join(self.logs, "capsized.out"), "ab")
        t0 = time.monotonic()
        self.daemon = subprocess.Popen(self.daemon_argv(*extra), stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=out, start_new_session=True)
        out.close()
        while time.monotonic() - t0 < timeout:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"capsized exited {self.daemon.returncode}: "
                                   + open(os.path.join(self.logs, "capsized.out")).read()[-500:])
            if ping(self.sock):
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError("capsized did not answer")

    def _signal(self, proc, sig, timeout=30):
        if proc is None or proc.poll() is not None:
            return None
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_daemon(self, timeout=40):
        return self._signal(self.daemon, signal.SIGTERM, timeout)

    def kill_daemon(self):
        return self._signal(self.daemon, signal.SIGKILL)

    def stop_runtime(self):
        return self._signal(self.runtimed, signal.SIGTERM)

    def kill_runtime(self):
        return self._signal(self.runtimed, signal.SIGKILL)

    def start(self) -> "Stack":
        self.start_runtime()
        self.start_daemon()
        return self

    # -- clients -----------------------------------------------------------------------------
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=os.path.join(self.workdir, "cli"))
        return env

    def cli(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """The real docker CLI on this stack (stdout/stderr through files, bounded)."""
        return run([DOCKER, *args], timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL, **kw)

    def ok(self, *args: str, timeout: float = 60) -> str:
        r = self.cli(*args, timeout=timeout)
        assert r.returncode == 0, f"docker {' '.join(args)}: rc {r.returncode}: {r.stderr}"
        return r.stdout.strip()

    def client(self):
        import docker
        c = docker.DockerClient(base_url=self.host, version="1.41", timeout=60)
        self._clients.append(c)
        return c

    def load_busybox(self, ref: str = "busybox:latest") -> str:
        from runtime import busybox
        path = os.path.join(self.workdir, "busybox.tar")
        image_id = busybox.write_image_tar(path, ref)
        self.ok("load", "-i", path)
        return image_id

    # -- teardown ----------------------------------------------------------------------------
    def remove_all(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None or self.runtimed is None \
                or self.runtimed.poll() is not None:
            return
        ids = self.ok("ps", "-aq").split()
        if ids:
            self.cli("rm", "-f", *ids, timeout=120)

    def close(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            if self.runtimed is not None and self.runtimed.poll() is not None:
                self.start_runtime()
            if self.daemon is not None and self.daemon.poll() is not None:
                self.start_daemon()
            self.remove_all()
        finally:
            self.kill_daemon()
            self.stop_runtime()
            kill_named(self.workdir)
            unmount_under(self.workdir)
            reap_children()
            # capsize-runc makes the parents of a container's cgroup and removes only those it made
            # itself, when empty: the last container of a shared parent leaves it. The session's
            # parent and capsized's default top (/capsize) go when empty (another Stack's or
            # engine's containers keep them: rmdir fails with EBUSY)
            remove_empty_cgroup(CGROUP_PARENT)
            remove_empty_cgroup("/capsize")


@contextlib.contextmanager
def booted(workdir: str, **kw):
    """A started :class:`Stack` (keyword arguments as its constructor's) with busybox loaded,
    closed on exit whatever happened."""
    s = Stack(str(workdir), **kw)
    try:
        s.start()
        s.load_busybox()
        yield s
    finally:
        s.close()


def veth_between(near_ns: str, near: tuple[str, str], far_ns: str, far: tuple[str, str],
                 prefixlen: int = 30) -> None:
    """A veth pair from netns *near_ns* to *far_ns* (bind-mount paths), both ends up:
    *near* and *far* are ``(ifname, address)``. Deleting the near end deletes both."""
    def near_side():
        from pyroute2 import IPRoute
        with IPRoute() as ip:
            ip.link("add", ifname=near[0], kind="veth", peer={"ifname": far[0]})
            i = ip.link_lookup(ifname=near[0])[0]
            ip.addr("add", index=i, address=near[1], prefixlen=prefixlen)
            ip.link("set", index=i, state="up")
            with open(far_ns) as ns:
                ip.link("set", index=ip.link_lookup(ifname=far[0])[0], net_ns_fd=ns.fileno())

    def far_side():
        from pyroute2 import IPRoute
        with IPRoute() as ip:
            i = ip.link_lookup(ifname=far[0])[0]
            ip.addr("add", index=i, address=far[1], prefixlen=prefixlen)
            ip.link("set", index=i, state="up")

    from runtime import netns
    netns.run_in(near_ns, near_side)
    netns.run_in(far_ns, far_side)


def kill_named(text: str) -> None:
    """SIGKILL every process whose command line mentions *text* (shims of this stack included)."""
    import psutil
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and text in " ".join(p.info["cmdline"] or []):
                p.kill()
        except psutil.Error:
            pass


def unmount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for m in sorted((p for p in points if p.startswith(path)), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
