"""The ``docker-systemd`` engine: the system's own Docker under systemd (the Vagrant VMs).

Roles map to units: ``daemon`` = ``docker.service`` (API socket ``/run/docker.sock`` from
``docker.socket``), ``runtime`` = ``containerd.service``; shims and containers are found as on
the ``docker`` engine (``containerd-shim-runc-v2 -id <id>``, cgroup ``/docker/<id>`` or
``system.slice/docker-<id>.scope``). Logs come from journald (systemd-python), per unit.
``fault.service.stop|start|restart`` act on units with systemctl. The engine is not started or
removed by the harness (it is the system's): :meth:`close` removes only the scenario's containers.

Available only where systemd is PID 1 and docker.service exists; elsewhere every scenario on
it is n/a with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess

from harness.engines.base import Engine, HostState, LogSource
from harness.engines.docker import _arg
from harness.reference import cleanup
from harness.reference.runtimes import which
from runtime.errors import Unavailable, Unimplemented

UNITS = {"daemon": "docker.service", "runtime": "containerd.service", "socket": "docker.socket"}
SOCKET = "/run/docker.sock"


def systemctl(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """``systemctl *args`` (text output); never raises for a non-zero exit."""
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def main_pid(unit: str) -> int | None:
    r = systemctl("show", "-p", "MainPID", "--value", unit)
    try:
        pid = int(r.stdout.strip() or 0)
    except ValueError:
        return None
    return pid or None


class DockerSystemdEngine(Engine):
    name = "docker-systemd"
    roles = ("daemon", "runtime", "shim", "container")

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        if not os.path.isdir("/run/systemd/system"):
            return "engine unavailable: systemd is not PID 1 here (docker-systemd is for the VMs)"
        if not which("systemctl") or systemctl("cat", UNITS["daemon"]).returncode != 0:
            return "engine unavailable: docker.service is not installed"
        if options is not None and (options.live_restore or (options.runtime not in (None, "runc"))):
            return "engine unavailable: docker-systemd runs the system's configuration (no engine options)"
        return None

    def start(self) -> None:
        for unit in (UNITS["runtime"], UNITS["socket"], UNITS["daemon"]):
            r = systemctl("start", unit)
            if r.returncode != 0:
                raise Unavailable(f"systemctl start {unit}: {r.stderr.strip()}")
        from harness.actions import import_busybox
        import_busybox(self, "busybox:latest")

    def close(self) -> list[str]:
        return []  # the system's engine stays; the scenario's teardown removes its containers

    def record(self) -> dict:
        return {"engine": self.name, "workdir": self.workdir}

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        problems = []
        for unit in (UNITS["runtime"], UNITS["socket"], UNITS["daemon"]):
            r = systemctl("start", unit)
            if r.returncode != 0:
                problems.append(f"systemctl start {unit}: {r.stderr.strip()}")
        return problems

    @property
    def docker_host(self) -> str:
        return "unix://" + SOCKET

    def api_socket(self) -> str:
        return SOCKET

    def pids(self, role, container_id=None):
        if role in ("daemon", "runtime"):
            pid = main_pid(UNITS[role])
            return [pid] if pid else []
        if role == "shim":
            return [p.pid for p in cleanup.find_processes(
                lambda argv, p: bool(argv) and "containerd-shim" in argv[0] and _arg(argv, "-id") == container_id)]
        if role == "container":
            return [pid for pid in self.container_cgroup_pids(container_id)][:1]
        raise Unimplemented(f"engine docker-systemd has no {role} process")

    def service(self, verb: str, unit: str) -> dict:
        r = systemctl(verb, unit)
        if r.returncode != 0:
            raise Unavailable(f"systemctl {verb} {unit}: {r.stderr.strip()}")
        return {"unit": unit, "main_pid": main_pid(unit)}

    def stop_component(self, role, timeout=30.0):
        return self.service("stop", UNITS[role])

    def start_component(self, role, timeout=60.0, wait=True):
        return self.service("start", UNITS[role])

    def kill_component(self, role, sig):
        r = systemctl("kill", "--kill-who=main", f"--signal={signal.Signals(sig).name}", UNITS[role])
        if r.returncode != 0:
            raise Unavailable(f"systemctl kill {UNITS[role]}: {r.stderr.strip()}")
        return {"unit": UNITS[role], "signal": sig}

    def classify(self, pid, ppid, cmdline, cgroup):
        for role in ("daemon", "runtime"):
            if pid in self.pids(role):
                return role, None
        if cmdline and "containerd-shim" in cmdline[0]:
            return "shim", _arg(cmdline, "-id")
        for marker in ("/docker/", "/docker-"):
            if marker in cgroup:
                cid = cgroup.split(marker, 1)[1][:64]
                return "container", cid
        return None, None

    def container_cgroup_pids(self, container_id):
        return cleanup.cgroup_pids(f"/docker/{container_id}", f"/system.slice/docker-{container_id}.scope")

    def log_sources(self):
        return [LogSource("daemon", UNITS["daemon"], "journald"), LogSource("runtime", UNITS["runtime"], "journald")]

    def runtime_events_argv(self):
        return [which("ctr") or "ctr", "events"]

    def parse_runtime_event(self, line):
        from harness.engines.docker import DockerEngine
        return DockerEngine.parse_runtime_event(self, line)

    def runtime_view(self):
        r = subprocess.run([which("ctr") or "ctr", "-n", "moby", "tasks", "ls"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise Unavailable(f"ctr tasks ls: {r.stderr.strip()}")
        out = {}
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3:
                out[f[0]] = (int(f[1]), f[2])
        return out

    def host_state(self, container_ids):
        hs = HostState()
        for cid in container_ids:
            hs.process += [f"pid {pid} of {cid[:12]}" for pid in self.container_cgroup_pids(cid)]
            hs.process += [f"shim pid {pid} of {cid[:12]}" for pid in self.pids("shim", cid)]
            hs.cgroup += cleanup.cgroup_dirs(f"/docker/{cid}")
            for path in (f"/run/containerd/io.containerd.runtime.v2.task/moby/{cid}", f"/var/lib/docker/containers/{cid}"):
                if os.path.lexists(path):
                    hs.state.append(path)
        return hs
