"""What the engines under systemd share: ``systemctl``, unit properties, drop-ins, and the
:class:`SystemdUnits` mixin (roles -> units, faults on units, journald logs per unit).

The system's engines (``docker-systemd``, ``capsize-systemd``: the Vagrant VMs) are not started or
removed by the harness: their units belong to the system. The mixin maps the roles ``daemon`` and
``runtime`` to service units (and the daemon's socket unit), answers ``pids`` with each unit's
``MainPID``, stops/starts/kills components with ``systemctl``, reads logs from journald per unit
(systemd-python, :class:`harness.observe.logs.LogCollector`), and on :meth:`close` removes only the
containers the scenario made (:meth:`~harness.engines.base.Engine.track_container`).

Drop-ins (``fault.service.dropin``) are runtime drop-ins, ``/run/systemd/system/<unit>.d/*.conf``:
they vanish at reboot at the latest, and the ledger removes them (undo kind ``dropin``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from harness.engines.base import LogSource
from runtime.errors import InvalidArgument, Unavailable, Unimplemented
from runtime.runtimes import which

#: Where runtime drop-ins go (systemd.unit(5): "/run/systemd/system: runtime units").
DROPIN_ROOT = "/run/systemd/system"


def systemctl(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """``systemctl *args`` (text output); never raises for a non-zero exit."""
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def systemd_running() -> bool:
    """Whether systemd is PID 1 here (sd_booted(3): ``/run/systemd/system`` exists)."""
    return os.path.isdir("/run/systemd/system")


def show(unit: str, *props: str) -> dict[str, str]:
    """``systemctl show -p P1,P2 unit`` as ``{P: value}`` (values as systemctl prints them)."""
    r = systemctl("show", "-p", ",".join(props), unit)
    out = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def main_pid(unit: str) -> int | None:
    """The unit's ``MainPID`` (None when it has none: stopped, or a socket unit)."""
    try:
        pid = int(show(unit, "MainPID").get("MainPID") or 0)
    except ValueError:
        return None
    return pid or None


def listen_path(socket_unit: str, default: str) -> str:
    """The unix path a socket unit listens on (``Listen=/run/x.sock (Stream)``), else *default*."""
    if systemd_running() and which("systemctl"):
        listen = show(socket_unit, "Listen").get("Listen", "")
        m = re.match(r"^(/\S+) \(Stream\)", listen)
        if m:
            return m.group(1)
    return default


def unit_installed(unit: str) -> bool:
    return bool(which("systemctl")) and systemctl("cat", unit).returncode == 0


def unavailable_reason(engine: str, units: list[str], options=None) -> str | None:
    """Why an engine under systemd cannot run here (None: it can): systemd not PID 1, a unit not
    installed, or engine options asked for (these engines run the system's configuration)."""
    if not systemd_running():
        return f"engine unavailable: systemd is not PID 1 here ({engine} is for the VMs)"
    missing = [u for u in units if not unit_installed(u)]
    if missing:
        return f"engine unavailable: {', '.join(missing)} not installed"
    if options is not None and (options.live_restore or options.runtime is not None):
        return f"engine unavailable: {engine} runs the system's configuration (no engine options)"
    return None


def dropin_path(unit: str, name: str) -> str:
    """``/run/systemd/system/<unit>.d/<name>.conf``."""
    return os.path.join(DROPIN_ROOT, f"{unit}.d", f"{name}.conf")


def dropin_text(section: str, settings: dict, reset: list[str] | tuple = ()) -> str:
    """A drop-in's text (systemd.unit(5)): ``[section]``, then ``K=`` for each setting in *reset*
    (an empty assignment clears a list setting such as ``ExecStart=``, which a service must do
    before it gives a new one), then ``K=V`` per setting (a list value: one line per item, in order;
    booleans as yes/no)."""
    body = f"# written by the capsize harness (fault.service.dropin); removed by its undo\n[{section}]\n"
    body += "".join(f"{k}=\n" for k in reset)
    for k, v in settings.items():
        body += "".join(f"{k}={_unit_value(x)}\n" for x in (v if isinstance(v, list) else [v]))
    return body


def write_dropin(unit: str, name: str, section: str, settings: dict, reset: list[str] | tuple = ()) -> str:
    """Write a runtime drop-in (:func:`dropin_text`) for *unit*, ``daemon-reload``; returns its path.
    Several drop-ins of one unit live side by side (each its own *name*).

    Raises Unavailable when the reload fails (the drop-in is removed again)."""
    path = dropin_path(unit, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    body = dropin_text(section, settings, reset)
    with open(path, "w") as f:
        f.write(body)
    r = systemctl("daemon-reload")
    if r.returncode != 0:
        remove_dropin(path)
        raise Unavailable(f"systemctl daemon-reload: {r.stderr.strip()}")
    return path


def remove_dropin(path: str) -> str:
    """Remove a drop-in written by :func:`write_dropin` (and its directory when empty), reload."""
    if not os.path.exists(path):
        return f"{path} is gone: nothing to do"
    os.unlink(path)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # other drop-ins are there
    r = systemctl("daemon-reload")
    return f"removed {path}; daemon-reload exit {r.returncode}"


def _started_after(pid: int, wall: float) -> bool:
    """Whether process *pid* was started after *wall* (epoch s; 1 s of slack for clock ticks)."""
    import psutil
    try:
        return psutil.Process(pid).create_time() > wall - 1.0
    except psutil.Error:
        return False


def _unit_value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


class SystemdUnits:
    """Mixin for :class:`~harness.engines.base.Engine` subclasses whose daemons are systemd units.

    Subclasses set :attr:`UNITS` (``daemon``, ``runtime``: service units; ``socket``: the
    daemon's socket unit) and :attr:`SOCKET_DEFAULT` (the API socket when the socket unit cannot
    be asked). Start order is runtime, socket, daemon."""

    UNITS: dict[str, str] = {}
    SOCKET_DEFAULT = ""
    #: Capability (:meth:`harness.engines.base.Engine.capabilities`): the daemons are units.
    systemd = True

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        return unavailable_reason(cls.name, [cls.UNITS["socket"], cls.UNITS["daemon"], cls.UNITS["runtime"]],
                                  options)

    # -- units ---------------------------------------------------------------------------------
    def unit_of(self, role: str, socket: bool = False) -> str:
        """The unit of *role* (``daemon``, ``runtime``); ``socket``: the daemon's socket unit."""
        if socket:
            if role != "daemon":
                raise InvalidArgument("only the daemon has a socket unit")
            return self.UNITS["socket"]
        if role not in ("daemon", "runtime"):
            raise Unimplemented(f"engine {self.name} has no unit for {role}")
        return self.UNITS[role]

    def unit_properties(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show -p ...`` of *unit* as ``{property: value}`` (:func:`show`)."""
        return show(unit, *props)

    def add_dropin(self, unit: str, name: str, section: str, settings: dict, reset: list[str] | tuple = ()) -> str:
        """A runtime drop-in for *unit* (:func:`write_dropin`, then daemon-reload); returns its
        path. The ledger removes it (:func:`remove_dropin`)."""
        return write_dropin(unit, name, section, settings, reset)

    def service(self, verb: str, unit: str) -> dict:
        """``systemctl <verb> <unit>``; returns ``{unit, verb, main_pid_before, main_pid, active}``.
        Raises Unavailable when systemctl fails (the journal's last line says why)."""
        before = main_pid(unit)
        t0 = time.monotonic()
        r = systemctl(verb, unit)
        if r.returncode != 0:
            raise Unavailable(f"systemctl {verb} {unit}: {r.stderr.strip()}")
        props = show(unit, "ActiveState", "MainPID")
        return {"unit": unit, "verb": verb, "main_pid_before": before, "main_pid": main_pid(unit),
                "active": props.get("ActiveState"), "seconds": round(time.monotonic() - t0, 3)}

    # -- lifecycle: the system's engine stays -------------------------------------------------
    def start(self) -> None:
        for unit in (self.UNITS["runtime"], self.UNITS["socket"], self.UNITS["daemon"]):
            r = systemctl("start", unit)
            if r.returncode != 0:
                raise Unavailable(f"systemctl start {unit}: {r.stderr.strip()}")
        self.import_busybox("busybox:latest")

    def close(self) -> list[str]:
        """Remove the containers the scenario made (force); the units stay as they are."""
        problems = []
        ids = sorted(getattr(self, "tracked", set()))
        if not ids:
            return problems
        try:
            client = self.client(timeout=60)
        except Exception as e:  # noqa: BLE001
            return [f"removing the scenario's containers: {e}"]
        try:
            for cid in ids:
                try:
                    client.api.remove_container(cid, force=True)
                except Exception as e:  # noqa: BLE001
                    import docker
                    if not isinstance(e, docker.errors.NotFound):
                        problems.append(f"docker rm -f {cid[:12]}: {e}")
        finally:
            client.close()
        return problems

    def record(self) -> dict:
        return {"engine": self.name, "workdir": self.workdir}

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        """Start the units again (the ledger's undo removed drop-ins and restarted stopped units)."""
        problems = []
        for unit in (cls.UNITS["runtime"], cls.UNITS["socket"], cls.UNITS["daemon"]):
            r = systemctl("start", unit)
            if r.returncode != 0:
                problems.append(f"systemctl start {unit}: {r.stderr.strip()}")
        return problems

    # -- components ----------------------------------------------------------------------------
    @property
    def docker_host(self) -> str:
        return "unix://" + self.api_socket()

    def api_socket(self) -> str:
        return listen_path(self.UNITS["socket"], self.SOCKET_DEFAULT)

    def unit_pids(self, role: str) -> list[int]:
        pid = main_pid(self.UNITS[role])
        return [pid] if pid else []

    def role_of_pid(self, pid: int) -> str | None:
        """``daemon`` / ``runtime`` when *pid* is that unit's MainPID. For classifying every process
        of a snapshot: the MainPIDs are asked once per 0.5 s, not once per process -- and again
        for a process started after they were asked (a daemon that was just (re)started)."""
        cache = getattr(self, "_main_pids", None)
        if cache is None or time.monotonic() - cache[0] > 0.5 or (
                pid not in cache[2] and _started_after(pid, cache[1])):
            cache = (time.monotonic(), time.time(), {main_pid(self.UNITS[r]): r for r in ("daemon", "runtime")})
            self._main_pids = cache
        return cache[2].get(pid)

    def stop_component(self, role, timeout=30.0):
        return self.service("stop", self.unit_of(role))

    def start_component(self, role, timeout=60.0, wait=True, listen="socket"):
        if listen != "socket":
            raise Unimplemented(f"engine {self.name}: the daemon's socket is the system's "
                                f"({self.UNITS['socket']}): use fault.service.* on it")
        return self.service("start", self.unit_of(role))

    def kill_component(self, role, sig):
        unit = self.unit_of(role)
        r = systemctl("kill", "--kill-who=main", f"--signal={signal.Signals(sig).name}", unit)
        if r.returncode != 0:
            raise Unavailable(f"systemctl kill {unit}: {r.stderr.strip()}")
        return {"unit": unit, "signal": sig}

    def owned_pids(self) -> set[int]:
        return set()

    def log_sources(self) -> list[LogSource]:
        return [LogSource("daemon", self.UNITS["daemon"], "journald"),
                LogSource("runtime", self.UNITS["runtime"], "journald")]
