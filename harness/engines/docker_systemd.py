"""The ``docker-systemd`` engine: the system's own Docker under systemd (the Vagrant VMs).

Roles map to units: ``daemon`` = ``docker.service`` (API socket from ``docker.socket``,
``/run/docker.sock``), ``runtime`` = ``containerd.service``; shims and containers are found as on
the ``docker`` engine (``containerd-shim-runc-v2 -id <id>``, cgroup ``/docker/<id>`` or
``system.slice/docker-<id>.scope``). Logs come from journald (systemd-python), per unit.
``fault.service.*`` act on units with systemctl. The engine is not started or removed by the
harness (it is the system's): :meth:`close` removes only the scenario's containers
(:class:`~harness.engines.systemd.SystemdUnits`).

Available only where systemd is PID 1 and the units are installed; elsewhere every scenario on
it is n/a with the reason.
"""

from __future__ import annotations

import os
import subprocess

from harness.engines.base import Engine, HostState
from harness.engines.docker import DockerEngine, _arg
from harness.engines.systemd import SystemdUnits
from harness.reference import cleanup
from runtime.errors import Unavailable, Unimplemented
from runtime.runtimes import which

UNITS = {"daemon": "docker.service", "runtime": "containerd.service", "socket": "docker.socket"}
SOCKET = "/run/docker.sock"


class DockerSystemdEngine(SystemdUnits, Engine):
    name = "docker-systemd"
    UNITS = UNITS
    SOCKET_DEFAULT = SOCKET

    def pids(self, role, container_id=None):
        if role in ("daemon", "runtime"):
            return self.unit_pids(role)
        if role == "shim":
            return [p.pid for p in cleanup.find_processes(
                lambda argv, p: bool(argv) and "containerd-shim" in argv[0] and _arg(argv, "-id") == container_id)]
        if role == "container":
            return [pid for pid in self.container_cgroup_pids(container_id)][:1]
        raise Unimplemented(f"engine docker-systemd has no {role} process")

    def classify(self, pid, ppid, cmdline, cgroup):
        role = self.role_of_pid(pid)
        if role:
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

    def runtime_events_argv(self, after: str | None = None) -> list[str]:
        """``ctr events`` on the system's containerd (it has no replay: *after* is not used)."""
        return [which("ctr") or "ctr", "events"]

    def parse_runtime_event(self, line):
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
            hs.cgroup += cleanup.cgroup_dirs(f"/system.slice/docker-{cid}.scope")
            for path in (f"/run/containerd/io.containerd.runtime.v2.task/moby/{cid}", f"/var/lib/docker/containers/{cid}"):
                if os.path.lexists(path):
                    hs.state.append(path)
        return hs
