"""A private Docker stack: Debian's dockerd 20.10 on a private containerd, removed without a trace.

:class:`DockerStack` runs ``dockerd --containerd <private containerd>`` with every path under
*workdir*::

    <workdir>/ctd/               the ContainerdStack (.containerd): socket, root, state, log
    <workdir>/docker.sock        the Engine API (.host = "unix://<workdir>/docker.sock")
    <workdir>/daemon.json        --config-file: storage-driver overlay2, live-restore, runtimes
    <workdir>/data/, exec/       --data-root, --exec-root (runc state in exec/runtime-<name>/moby)
    <workdir>/dockerd.pid        --pidfile
    <workdir>/dockerd.log        dockerd's stdout+stderr, appended across restarts
    <workdir>/netns              the stack's network namespace (a bind mount of nsfs)
    <workdir>/cli/               DOCKER_CONFIG for :meth:`cli`

**Network: dockerd runs in a network namespace of its own** (``network="netns"``, the default).
dockerd's default set-up creates the ``docker0`` bridge (172.17.0.1/16), iptables rules and
``ip_forward=1``. In a namespace the stack creates (``unshare --net=<workdir>/netns``; dockerd
is exec'd through ``nsenter --net``, so it keeps the host's mount namespace and its overlay
mounts stay visible to runc) all of that is private: the host's interfaces, routes, iptables
and sysctls are never touched, while containers get exactly what a default Docker install
gives them — a bridge network, a veth pair, and the ``libnetwork-setkey`` prestart hook in
their config.json, which is what capsize-runc has to run. ``network="none"`` instead runs
dockerd in the host's namespace with ``--bridge=none --iptables=false --ip6tables=false
--ip-forward=false --ip-masq=false`` (the flags the baseline measurements in
docker-baseline.md used): containers get a netns with only ``lo`` and no hook, and every
``docker run`` warns "IPv4 forwarding is disabled".

dockerd 20.10 also writes two things outside *workdir* that no flag moves: its trust key
``/etc/docker/key.json`` and an empty ``/run/docker/plugins``. :meth:`close` removes them when
this stack created them and no other dockerd is running; it also removes dockerd's
self-bind-mount of ``--data-root`` (left behind by a SIGKILLed dockerd), every container's
cgroup ``/docker/<id>`` and the ``docker`` cgroup parent when the stack created it.

Errors: :class:`~runtime.errors.Unavailable` (a daemon exits during start-up; its last log
line is in the message), :class:`~runtime.errors.DeadlineExceeded` (no answer in time),
:class:`~runtime.errors.FailedPrecondition`, :class:`~runtime.errors.NotFound` (binaries), and
:class:`~runtime.errors.CapsizeError` from :meth:`close` naming whatever was left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

from harness.reference import cleanup
from harness.reference.containerd import MAX_SOCKET_PATH, ContainerdStack, last_error_line
from runtime.errors import (CapsizeError, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                            NotFound, Unavailable)
from runtime.runtimes import which

#: Engine API version of dockerd 20.10 (and of capsized).
API_VERSION = "1.41"
#: dockerd's containerd namespace for containers.
NAMESPACE = "moby"
NETWORKS = ("netns", "none")
NO_NETWORK_FLAGS = ("--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                    "--ip-masq=false")
KEY_JSON = "/etc/docker/key.json"
RUN_DOCKER = "/run/docker"


def ping(socket_path: str, timeout: float = 1.0) -> bool:
    """True when an Engine API on unix socket *socket_path* answers ``GET /_ping`` with 200."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = s.recv(64)
        return head.split(b" ", 2)[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


def signal_and_wait(proc: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
    """Send *sig* to the daemon *proc* (None: not running) and reap it; SIGKILL after *timeout* s.
    Returns its exit status (negative: the signal), None when it was not running."""
    if proc is None:
        return None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def make_netns(path: str) -> int:
    """A new network namespace pinned at *path* (``unshare --net=<path>``) with ``lo`` up; its inode."""
    open(path, "a").close()
    r = subprocess.run([which("unshare"), f"--net={path}", which("ip"), "link", "set", "lo", "up"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise CapsizeError(f"cannot create the stack's network namespace: {r.stderr.strip()}")
    return os.stat(path).st_ino


class DockerStack:
    """A private dockerd + containerd under *workdir* (created if missing; removed by :meth:`close`).

    *live_restore*: dockerd's ``live-restore``. *runtimes*: extra OCI runtimes ``{name: path}``
    written to daemon.json ``runtimes`` (``docker run --runtime <name>``; dockerd drives them
    through containerd-shim-runc-v2 with ``BinaryName`` = path). *network*: ``"netns"`` or
    ``"none"`` (see the module docstring). *log_level*: both daemons'.

    Use as a context manager (starts containerd then dockerd; closes on exit), or call
    :meth:`start` and :meth:`close`. Raises InvalidArgument for a bad option or a *workdir*
    too long for its sockets, NotFound when dockerd/containerd/nsenter/unshare is missing.
    """

    def __init__(self, workdir: str, live_restore: bool = False, runtimes: dict[str, str] | None = None,
                 *, network: str = "netns", log_level: str = "info"):
        self.workdir = os.path.abspath(workdir)
        if network not in NETWORKS:
            raise InvalidArgument(f"network must be one of {', '.join(NETWORKS)}, not {network!r}")
        self.socket_path = os.path.join(self.workdir, "docker.sock")
        self.host = "unix://" + self.socket_path
        self.data_root = os.path.join(self.workdir, "data")
        self.exec_root = os.path.join(self.workdir, "exec")
        # dockerd's longest socket: <exec-root>/libnetwork/<12 hex>.sock
        if len(self.exec_root) + len("/libnetwork/0123456789ab.sock") > MAX_SOCKET_PATH:
            raise InvalidArgument(f"workdir {self.workdir} is too long for dockerd's unix sockets")
        self.binary = which("dockerd")
        if not self.binary:
            raise NotFound("dockerd not found: install Debian's docker.io (scripts/setup.sh does)")
        self.network = network
        self.netns_path = os.path.join(self.workdir, "netns") if network == "netns" else None
        for tool in (("nsenter", "unshare", "ip") if self.netns_path else ()):
            if not which(tool):
                raise NotFound(f"{tool} not found: install util-linux and iproute2")
        self.live_restore = bool(live_restore)
        self.runtimes = dict(runtimes or {})
        for name, path in self.runtimes.items():
            if not name or name in ("runc", "io.containerd.runc.v2") or not os.path.isabs(str(path)):
                raise InvalidArgument(f"runtime {name!r}: need a new name and an absolute path, got {path!r}")
        self.log_level = log_level
        self.config_path = os.path.join(self.workdir, "daemon.json")
        self.pidfile = os.path.join(self.workdir, "dockerd.pid")
        self.dockerd_log_path = os.path.join(self.workdir, "dockerd.log")
        self.cli_config = os.path.join(self.workdir, "cli")
        #: The docker CLI used by :meth:`cli`: the first ``docker`` on PATH.
        self.docker_cli = which("docker")
        #: Seconds from exec to the first answered ``/_ping``, for the last dockerd start.
        self.dockerd_start_seconds: float | None = None
        self._had_key = os.path.exists(KEY_JSON)
        self._run_before = cleanup.existing_tree(RUN_DOCKER, 2)
        self._cgroups_before = cleanup.top_cgroups()
        self._proc: subprocess.Popen | None = None
        self._netns_inode: int | None = None
        self._clients: list = []
        self._closed = False
        created = not os.path.exists(self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self.containerd = ContainerdStack(os.path.join(self.workdir, "ctd"), log_level=log_level)
        except BaseException:
            if created:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._write_config()

    def _write_config(self) -> None:
        # cgroupfs always: on a cgroup v2 host with systemd as PID 1 dockerd would default to the
        # systemd driver (moby's UsingSystemd: "On cgroup v2 hosts, default to systemd driver") and
        # put the private stack's containers in the host's system.slice as docker-<id>.scope units;
        # with cgroupfs they are /docker/<id> on v1 and v2 alike, and no unit is made on the host.
        config = {"storage-driver": "overlay2", "live-restore": self.live_restore, "log-level": self.log_level,
                  "exec-opts": ["native.cgroupdriver=cgroupfs"]}
        if self.runtimes:
            config["runtimes"] = {name: {"path": path} for name, path in sorted(self.runtimes.items())}
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        os.makedirs(self.cli_config, exist_ok=True)

    # -- properties --------------------------------------------------------------------------
    @property
    def dockerd_pid(self) -> int | None:
        return self._proc.pid if self.dockerd_running else None

    @property
    def dockerd_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def containerd_pid(self) -> int | None:
        return self.containerd.pid

    @property
    def containerd_log_path(self) -> str:
        return self.containerd.log_path

    @property
    def netns_inode(self) -> int | None:
        """Inode of the stack's network namespace (compare with ``/proc/<pid>/ns/net``), or None."""
        return self._netns_inode

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "DockerStack":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start whatever is not running: containerd first, then dockerd."""
        if not self.containerd.running:
            self.containerd.start()
        if not self.dockerd_running:
            self.start_dockerd()

    def _ensure_netns(self) -> None:
        if not self.netns_path or self._netns_mounted():
            return
        self._netns_inode = make_netns(self.netns_path)

    def _netns_mounted(self) -> bool:
        return bool(self.netns_path) and self.netns_path in cleanup.mounts_under(self.netns_path)

    def dockerd_argv(self) -> list[str]:
        """dockerd's command line (after ``nsenter --net=<netns> --`` in netns mode)."""
        argv = [self.binary, "--config-file", self.config_path, "--containerd", self.containerd.address,
                "-H", self.host, "--data-root", self.data_root, "--exec-root", self.exec_root,
                "--pidfile", self.pidfile]
        if self.network == "none":
            argv += list(NO_NETWORK_FLAGS)
        return argv

    def start_dockerd(self, wait: bool = True, timeout: float = 60.0, listen: str = "socket") -> float | None:
        """Start dockerd; with *wait*, until ``/_ping`` answers. Returns the seconds that took.

        dockerd waits up to 60 s for containerd, so with containerd down and *wait* this raises
        DeadlineExceeded (the baseline's E4c) after killing it; start it with ``wait=False``
        to observe that. A restart right after :meth:`kill_dockerd` works: the killed dockerd
        is reaped at once, so its stale pidfile does not block (E7's zombie window).
        Raises FailedPrecondition if it runs already, Unavailable if it exits during start-up.
        *listen*: ``socket`` (``-H unix://...``), ``activator`` (``systemd-socket-activate -l <socket>``
        holds the socket and execs dockerd ``-H fd://`` on the first connection: returns once the
        socket listens, dockerd not started yet) or ``fd`` (``-H fd://`` with no activator).
        """
        if self._closed:
            raise FailedPrecondition(f"docker stack {self.workdir} is closed")
        if self.dockerd_running:
            raise FailedPrecondition(f"dockerd is already running (pid {self._proc.pid})")
        self._ensure_netns()
        argv = self.dockerd_argv()
        if listen != "socket":
            i = argv.index("-H")
            argv[i + 1] = "fd://"
        if listen == "activator":
            act = which("systemd-socket-activate")
            if not act:
                raise Unavailable("systemd-socket-activate is not installed (package systemd)")
            if os.path.lexists(self.socket_path):
                os.unlink(self.socket_path)
            argv = [act, "-l", self.socket_path] + argv
        if self.netns_path:
            argv = [which("nsenter"), f"--net={self.netns_path}", "--"] + argv
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERD_"))}
        t0 = time.monotonic()
        with open(self.dockerd_log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.workdir, env=env, start_new_session=True)
        if not wait:
            return None
        while True:
            if self._proc.poll() is not None:
                raise Unavailable(f"dockerd exited with status {self._proc.returncode} during start-up: "
                                  f"{last_error_line(self.dockerd_log_path)}")
            if listen == "activator" and os.path.exists(self.socket_path):
                return time.monotonic() - t0   # the activator listens; dockerd starts on the first call
            if ping(self.socket_path):
                self.dockerd_start_seconds = time.monotonic() - t0
                return self.dockerd_start_seconds
            if time.monotonic() - t0 > timeout:
                self.kill_dockerd()
                raise DeadlineExceeded(f"dockerd did not answer within {timeout:g}s (killed): "
                                       f"{last_error_line(self.dockerd_log_path)}")
            time.sleep(0.02)

    def stop_dockerd(self, timeout: float = 30.0) -> int | None:
        """SIGTERM dockerd and wait (SIGKILL after *timeout* s); returns its exit status, None if not running.

        Without live-restore and with containerd down this takes about 16 s (baseline E4).
        """
        return self._signal(signal.SIGTERM, timeout)

    def kill_dockerd(self) -> int | None:
        """SIGKILL dockerd and reap it (its socket, pidfile and data-root bind mount stay, as in E7)."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int | None:
        return signal_and_wait(self._proc if self.dockerd_running else None, sig, timeout)

    def start_containerd(self, timeout: float = 10.0, wait: bool = True) -> float | None:
        """Start (restart) the stack's containerd; see :meth:`ContainerdStack.start`."""
        return self.containerd.start(timeout, wait=wait)

    def stop_containerd(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the stack's containerd (shims and containers run on)."""
        return self.containerd.stop(timeout)

    def kill_containerd(self) -> int | None:
        """SIGKILL the stack's containerd (shims and containers run on)."""
        return self.containerd.kill()

    # -- clients -----------------------------------------------------------------------------
    def client(self, timeout: float = 60.0):
        """A ``docker.DockerClient`` on this stack (API 1.41); closed by :meth:`close`."""
        import docker
        c = docker.DockerClient(base_url=self.host, version=API_VERSION, timeout=timeout)
        self._clients.append(c)
        return c

    def cli(self, *args: str, timeout: float = 60.0, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the real docker CLI (:attr:`docker_cli`) with ``DOCKER_HOST`` = :attr:`host`.

        Returns the CompletedProcess (text); never raises for a non-zero exit. Raises
        NotFound without a docker CLI and DeadlineExceeded after *timeout* seconds.
        """
        if not self.docker_cli:
            raise NotFound("docker CLI not found: install Debian's docker.io")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        full_env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=self.cli_config)
        full_env.update(env or {})
        try:
            return subprocess.run([self.docker_cli, *args], capture_output=True, text=True, timeout=timeout,
                                  input=input, stdin=None if input is not None else subprocess.DEVNULL,
                                  env=full_env)
        except subprocess.TimeoutExpired:
            raise DeadlineExceeded(f"docker {' '.join(args)}: no answer within {timeout:g}s") from None

    def import_busybox(self, reference: str = "busybox:latest") -> str:
        """Load the lab's busybox image (``runtime.busybox.write_image_tar``) as *reference*, offline.

        Uses ``POST /images/load`` (``docker load``). Returns the image ID (``sha256:<hex>``),
        the same on every run because the tarball is reproducible.
        """
        from runtime import busybox
        path = os.path.join(self.workdir, "images", "busybox.tar")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image_id = busybox.write_image_tar(path, reference)
        import docker
        import requests
        c = self.client()
        try:
            with open(path, "rb") as f:
                c.images.load(f.read())
            loaded = c.images.get(reference).id
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise Unavailable(f"docker load into {self.host}: {str(e).splitlines()[0][:300]}") from None
        if loaded != image_id:
            raise CapsizeError(f"docker load gave image {loaded}, expected {image_id}")
        return image_id

    def bundle_dir(self, container_id: str) -> str:
        """The OCI bundle containerd made for a container: ``<ctd state>/io.containerd.runtime.v2.task/moby/<id>``."""
        return os.path.join(self.containerd.state, "io.containerd.runtime.v2.task", NAMESPACE, container_id)

    def container_config(self, container_id: str) -> dict:
        """The config.json dockerd had containerd write for a running container (full 64-hex id)."""
        try:
            with open(os.path.join(self.bundle_dir(container_id), "config.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise NotFound(f"no bundle for container {container_id} (is it running? use the full id)") from None

    # -- teardown ----------------------------------------------------------------------------
    def _remember_containers(self) -> None:
        for cid in _listdir(os.path.join(self.data_root, "containers")):
            self.containerd.remember(NAMESPACE, cid, f"/docker/{cid}")

    def close(self) -> None:
        """Remove everything, even after faults: containers, dockerd, containerd, shims, sockets,
        mounts (the data-root bind mount too), cgroups, the netns, dockerd's files outside
        *workdir* that this stack created, and *workdir*.

        dockerd is SIGKILLed first (its state is deleted anyway, and a graceful stop can take
        10 s per container); then :meth:`ContainerdStack.close`'s steps delete the ``moby``
        tasks through containerd (restarted if it is down) and remove the rest by force.
        Raises CapsizeError naming whatever could not be removed. Calling it again does nothing.
        """
        if self._closed:
            return
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        # dockerd is SIGKILLed, not asked: everything it owns is deleted below, and a graceful
        # stop costs 10 s per running container that ignores SIGTERM (busybox sleep as PID 1),
        # or 10 s per `docker rm -f` while it re-subscribes to a restarted containerd.
        self.kill_dockerd()
        self._remember_containers()
        problems = self.containerd.teardown()
        if self._netns_inode and self._netns_mounted():
            # checked while the bind mount pins the namespace: afterwards its inode can be reused
            problems += cleanup.kill_netns_processes(self._netns_inode)
            problems += [f"process {pid} in the stack's netns" for pid in cleanup.processes_in_netns(self._netns_inode)]
        problems += cleanup.unmount_under(self.workdir)
        problems += self.containerd.finish()
        if "docker" in cleanup.top_cgroups() - self._cgroups_before:
            cleanup.remove_empty_cgroup_parent("docker")
        if not cleanup.find_processes(lambda argv, p: bool(argv) and os.path.basename(argv[0]) == "dockerd"):
            if not self._had_key and os.path.exists(KEY_JSON):
                os.unlink(KEY_JSON)
            cleanup.remove_new_empty_dirs(cleanup.new_entries(self._run_before, RUN_DOCKER, 2))
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._closed = True
        problems += self.leftovers()
        if problems:
            raise CapsizeError("docker stack close left: " + "; ".join(sorted(set(problems))))

    def leftovers(self) -> list[str]:
        """What of this stack still exists on the host, one line each (empty after a clean close)."""
        found = self.containerd.leftovers()
        if self.dockerd_running:
            found.append(f"dockerd pid {self._proc.pid}")
        if self._netns_inode and self._netns_mounted():
            found += [f"process {pid} in the stack's netns" for pid in cleanup.processes_in_netns(self._netns_inode)]
        found += [f"mount {m}" for m in cleanup.mounts_under(self.workdir)]
        if os.path.lexists(self.workdir):
            found.append(f"directory {self.workdir}")
        return sorted(set(found))


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
