"""The ``capsize-systemd`` engine: capsize's own tiers as the system's units (the Vagrant VMs).

Roles map to the units in ``vagrant/units/`` (installed by ``vagrant/provision.sh``):

=========  ==================================================================================
daemon     ``capsized.service`` (``Type=notify``, ``-H fd://``), API socket from
           ``capsized.socket`` (``ListenStream=/run/capsize/capsized.sock``; asked of systemd)
runtime    ``capsize-runtimed.service`` (``KillMode=process``, ``Delegate=yes``; address
           ``/run/capsize/runtimed.sock``)
shim       ``capsize-shim serve --id ID ...`` naming the state dir ``/run/capsize``
container  the task's init (``/run/capsize/runtimed/tasks/capsize/<id>/init.pid``), cgroup
           ``capsize/<id>``
lowlevel   capsize-runc while it runs
=========  ==================================================================================

Shims, containers, the runtime's events and view are found as on the ``capsize`` engine
(:class:`~harness.engines.capsize.CapsizeEngine`, with the system's root ``/var/lib/capsize``
and state dir ``/run/capsize`` instead of a private workdir); the daemons, their faults
(``fault.service.*``, and ``fault.stop|start|restart|kill`` through systemctl) and their logs
(journald, per unit) as on ``docker-systemd`` (:class:`~harness.engines.systemd.SystemdUnits`).
The engine is not started or removed by the harness: :meth:`close` removes only the scenario's
containers. Available only where systemd is PID 1 and the three units are installed.
"""

from __future__ import annotations

import os

from harness.engines.capsize import CapsizeEngine, _tier_missing
from harness.engines.systemd import SystemdUnits, unavailable_reason

UNITS = {"daemon": "capsized.service", "runtime": "capsize-runtimed.service", "socket": "capsized.socket"}
#: ``ListenStream=`` of vagrant/units/capsized.socket (used when systemd cannot be asked).
SOCKET = "/run/capsize/capsized.sock"
ROOT = "/var/lib/capsize"    # capsize-runtimed's and capsized's default --root / --data-root
STATE = "/run/capsize"       # capsize-runtimed's default --state (capsized's --exec-root)


class CapsizeSystemdEngine(SystemdUnits, CapsizeEngine):
    name = "capsize-systemd"
    UNITS = UNITS
    SOCKET_DEFAULT = SOCKET

    def __init__(self, workdir: str, options):
        super().__init__(workdir, options)
        self.root = ROOT
        self.state = STATE
        self.runtime_address = os.path.join(STATE, "runtimed.sock")
        self.socket = self.api_socket()
        self.logs = workdir  # nothing is written there: the units log to journald

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        why = unavailable_reason(cls.name, [UNITS["socket"], UNITS["daemon"], UNITS["runtime"]], options)
        if why:
            return why
        for role in ("daemon", "runtime"):
            if _tier_missing(role):
                return f"engine unavailable: {UNITS[role]} is installed but this capsize has no {role} tier yet"
        return None

    def pids(self, role: str, container_id: str | None = None) -> list[int]:
        if role in ("daemon", "runtime"):
            return self.unit_pids(role)
        return super().pids(role, container_id)

    def classify(self, pid, ppid, cmdline, cgroup):
        role = self.role_of_pid(pid)
        if role:
            return role, None
        return super().classify(pid, ppid, cmdline, cgroup)

    def _mount_of(self, point: str, container_ids: list[str]) -> bool:
        # the system's root and state dir hold every container's mounts: only this scenario's count
        return point.startswith((ROOT + "/", STATE + "/")) and any(cid in point for cid in container_ids)
