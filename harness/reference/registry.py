"""A private registry peer: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, removed without a trace.

:class:`Registry` runs ``docker-registry serve <workdir>/config.yml`` with every path under
*workdir*::

    <workdir>/config.yml     distribution's configuration (format: /etc/docker/registry/config.yml;
                             the system's file and service are never used)
    <workdir>/data/          storage.filesystem.rootdirectory (delete enabled, upload purging off)
    <workdir>/htpasswd       with ``users={name: password}``: auth.htpasswd (bcrypt, ``htpasswd -B``)
    <workdir>/registry.log   the registry's stdout+stderr (logfmt), appended across restarts
    <workdir>/registry.pid   its pid (for :meth:`Registry.recover` after a harness crash)

It listens on ``127.0.0.1:<port>`` (a free port, or the one given), plain HTTP: every client
treats a 127.0.0.0/8 registry as insecure (dockerd's default insecure-registry CIDR, and
capsize-runtimed's rule, :mod:`runtime.highlevel.registry`).

**Network namespace.** The daemon that does the transfer must reach the registry on its
loopback. With *netns* (the path of a network namespace bind mount: the docker engine's
``<workdir>/dk/netns``, where dockerd runs) the registry is exec'd through ``nsenter
--net=<netns>`` and so listens on that namespace's ``lo``, as dockerd sees it; the readiness
probe joins the same namespace (:func:`runtime.netns.run_in`). Without it, the registry
listens on the host's loopback, which is where capsize-runtimed (the capsize engine's
transfer daemon; only capsized runs in the engine's namespace) connects. Nothing but
loopback is ever bound.

:meth:`Registry.start` waits until ``GET /v2/`` answers (200, or 401 with auth) and raises
:class:`~runtime.errors.Unavailable` (the registry exited; its last log line) or
:class:`~runtime.errors.DeadlineExceeded`. :meth:`Registry.stop` (SIGTERM, SIGKILL after 5 s),
:meth:`Registry.kill`, :meth:`Registry.pause`/:meth:`Registry.resume` (SIGSTOP/SIGCONT) act on
the one process; :meth:`Registry.close` stops it and removes *workdir*.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time

from runtime.errors import DeadlineExceeded, NotFound, Unavailable
from runtime.runtimes import which

BINARY = "docker-registry"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the host's loopback right now (also free in a fresh namespace)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def config_yaml(data_dir: str, addr: str, htpasswd: str | None, secret: str) -> str:
    """distribution 2.8's configuration (docs/configuration.md) for a private registry."""
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {data_dir}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {addr}",
        f"  secret: {secret}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: capsize-registry", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


def unavailable() -> str | None:
    """Why no registry can run here (None when it can)."""
    missing = [b for b in (BINARY, "nsenter") if not which(b)]
    if missing:
        return f"registry unavailable: {', '.join(missing)} not installed (scripts/setup.sh installs them)"
    return None


class Registry:
    """One private registry (see the module docstring). ``users``: ``{name: password}``."""

    def __init__(self, workdir: str, netns: str | None = None, users: dict | None = None,
                 port: int | None = None):
        self.workdir = os.path.abspath(workdir)
        self.netns = netns
        self.users = dict(users or {})
        self.port = port or free_port()
        self.data_dir = os.path.join(self.workdir, "data")
        self.config_path = os.path.join(self.workdir, "config.yml")
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.pid_path = os.path.join(self.workdir, "registry.pid")
        self.htpasswd = os.path.join(self.workdir, "htpasswd") if self.users else None
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT``, as image references name it (``127.0.0.1:5000/busybox:latest``)."""
        return f"{HOST}:{self.port}"

    def record(self) -> dict:
        """What :meth:`recover` needs after this process is gone."""
        return {"workdir": self.workdir, "pid": self.proc.pid if self.proc else None, "address": self.address}

    # -- life ---------------------------------------------------------------------------------
    def _write_config(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        if self.htpasswd:
            with open(self.htpasswd, "w") as f:
                for user, password in self.users.items():
                    out = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                                         capture_output=True, text=True).stdout.strip()
                    f.write(out + "\n")
        with open(self.config_path, "w") as f:
            f.write(config_yaml(self.data_dir, self.address, self.htpasswd, os.urandom(16).hex()))

    def start(self, timeout: float = 30.0) -> None:
        why = unavailable()
        if why:
            raise NotFound(why)
        if self.proc is not None and self.proc.poll() is None:
            raise Unavailable("the registry is already running")
        os.makedirs(self.workdir, exist_ok=True)
        if not os.path.exists(self.config_path):
            self._write_config()
        argv = [which(BINARY), "serve", self.config_path]
        if self.netns:
            argv = [which("nsenter"), f"--net={self.netns}", "--"] + argv
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        with open(self.pid_path, "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Unavailable(f"docker-registry exited with status {self.proc.returncode} during start-up: "
                                  f"{self._last_log_line()}")
            if self.probe() is not None:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise DeadlineExceeded(f"docker-registry did not answer GET /v2/ at {self.address} within {timeout:g}s")
            time.sleep(0.05)

    def probe(self, timeout: float = 1.0) -> int | None:
        """The status of ``GET /v2/`` (200; 401 with auth), or None when nothing answers."""
        def get():
            conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
            try:
                conn.request("GET", "/v2/")
                return conn.getresponse().status
            except OSError:
                return None
            finally:
                conn.close()
        if self.netns:
            from runtime import netns
            return netns.run_in(self.netns, get)
        return get()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (after a SIGCONT, in case it is paused), SIGKILL after *timeout*; its exit status."""
        if not self.running():
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        if self.running():
            self.proc.kill()
        return self.proc.wait() if self.proc is not None else None

    def pause(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the registry and remove its workdir."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _last_log_line(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [line.strip() for line in f if line.strip()]
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no log)"

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        """Kill a registry started by a process that is gone (its pid, if it is still this
        registry: ``docker-registry serve <workdir>/config.yml``) and remove its workdir."""
        problems = []
        pid = record.get("pid")
        config = os.path.join(record["workdir"], "config.yml")
        if pid:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if config.encode() in argv:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                    for _ in range(100):
                        if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                            break
                        time.sleep(0.05)
            except (FileNotFoundError, ProcessLookupError):
                pass
            except OSError as e:
                problems.append(f"cannot kill the registry (pid {pid}): {e}")
        shutil.rmtree(record["workdir"], ignore_errors=True)
        return problems


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
