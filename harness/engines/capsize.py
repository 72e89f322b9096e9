"""The ``capsize`` engine: capsize's own four tiers, started under a private root and state dir.

Roles (DESIGN.md):

=========  ==================================================================================
daemon     ``nsenter --net=<workdir>/netns -- capsized -H unix://<state>/capsized.sock
           --data-root <root> --exec-root <state>/daemon --runtime-address
           <state>/runtimed.sock`` (the Docker Engine API; its records land in
           ``<root>/daemon/``, DESIGN.md's layout)
runtime    ``capsize-runtimed --root <root> --state <state> --address <state>/runtimed.sock``
shim       ``capsize-shim serve --namespace NS --id ID ...`` (one per container)
container  the task's init (``<state>/runtimed/tasks/<ns>/<id>/init.pid``), cgroup ``capsize/<id>``
lowlevel   capsize-runc, runc or crun while it runs (``--runtime``; option ``runtime``)
=========  ==================================================================================

**Network: capsized runs in a network namespace of its own**, as the docker engine's dockerd:
``<workdir>/netns`` (an nsfs bind mount made with :func:`runtime.netns.create`, ``lo`` up,
``net.ipv4.ip_forward=1`` in it only), entered through ``nsenter --net`` so that capsized keeps
the host's mount namespace. Whatever capsized makes for networks (containers' sandboxes under
``<state>/daemon/netns/``, the ``capsize0`` bridge and the containers' veths) is then private to the run;
the unix sockets are paths, reachable from the host's namespace. The runtime and the shims stay
in the host's namespace (containers join their sandboxes by path). :meth:`CapsizeEngine.recover`
unmounts the namespace with the rest of the workdir.

Logs are JSON lines (``time, level, msg, component``); the runtime's events are its event
stream. :meth:`CapsizeEngine.unavailable` says why the engine cannot run here (a tier's
console script or the chosen low-level runtime missing); scenarios are then n/a with that reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from harness.engines.base import Engine, HostState, LogSource, still_activator
from harness.reference import cleanup
from runtime.errors import DeadlineExceeded, NotFound, Unavailable, Unimplemented
from runtime.runtimes import runtime_path

NAMESPACE = "capsize"  # capsized's runtime namespace (dockerd uses "moby")
#: tier -> (python module with ``main``, console script)
TIERS = {"daemon": ("runtime.daemon.cli", "capsized"), "runtime": ("runtime.highlevel.cli", "capsize-runtimed")}


def _tier_missing(role: str) -> bool:
    module = TIERS[role][0]
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def _script(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if not found:
        raise NotFound(f"{name} not found: install capsize (pip install -e .)")
    return found


class CapsizeEngine(Engine):
    name = "capsize"
    roles = ("daemon", "runtime", "shim", "container", "lowlevel")
    failpoints = True
    labels_exit_provenance = True
    default_bridge = "capsize0"

    def __init__(self, workdir: str, options):
        super().__init__(workdir, options)
        self.root = os.path.join(workdir, "root")
        self.state = os.path.join(workdir, "state")
        self.runtime_address = os.path.join(self.state, "runtimed.sock")
        self.socket = os.path.join(self.state, "capsized.sock")
        self.logs = os.path.join(workdir, "logs")
        self._procs: dict[str, subprocess.Popen] = {}
        #: the daemon's network namespace (module docstring)
        self.netns_path = os.path.join(workdir, "netns")

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        if _tier_missing("daemon"):
            return "engine unavailable: capsized not built yet (runtime/daemon has no cli)"
        if _tier_missing("runtime"):
            return "engine unavailable: capsize-runtimed not built yet (runtime/highlevel has no cli)"
        if os.geteuid() != 0:
            return "engine unavailable: the capsize engine needs root"
        runtime = getattr(options, "runtime", None) or "capsize-runc"
        try:
            runtime_path(runtime)
        except NotFound as e:
            return f"engine unavailable: {e}"
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def _argv(self, role: str) -> list[str]:
        if role == "runtime":
            return [_script("capsize-runtimed"), "--root", self.root, "--state", self.state,
                    "--address", self.runtime_address,
                    "--log-file", os.path.join(self.logs, "runtimed.log")]
        argv = [_nsenter(), f"--net={self.netns_path}", "--", _script("capsized"), "-H", "unix://" + self.socket, "--data-root", self.root,
                "--exec-root", os.path.join(self.state, "daemon"), "--runtime-address", self.runtime_address,
                "--log-file", os.path.join(self.logs, "capsized.log")]
        if self.options.live_restore:
            argv.append("--live-restore")
        return argv

    def record(self) -> dict:
        return {"engine": self.name, "workdir": self.workdir}

    def default_container_runtime(self) -> str | None:
        return self.options.runtime if self.options.runtime not in (None, "capsize-runc") else None

    def start(self) -> None:
        os.makedirs(self.logs, exist_ok=True)
        try:
            self.start_component("runtime")
            self.start_component("daemon")
            self.import_busybox("busybox:latest")
        except BaseException:
            self.close()
            raise

    def close(self) -> list[str]:
        problems = []
        for role in ("daemon", "runtime"):
            p = self._procs.pop(role, None)
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        problems += self.recover(self.record())
        return problems

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        """Kill every process naming the workdir, every container in its cgroups, the killed shims'
        sockets in the shared socket dir, unmount, remove."""
        workdir = record["workdir"]
        problems = cleanup.kill_processes(cleanup.find_processes(
            lambda argv, p: p.pid != os.getpid() and any(workdir + "/" in a for a in argv)))
        tasks = os.path.join(workdir, "state", "runtimed", "tasks")
        for ns in _listdir(tasks):
            for cid in _listdir(os.path.join(tasks, ns)):
                problems += cleanup.kill_cgroup(f"/capsize/{cid}")
                problems += _remove_shim_socket(os.path.join(tasks, ns, cid))
        problems += cleanup.unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        cleanup.remove_empty_cgroup_parent("capsize")  # capsize-runtimed's --cgroup-parent
        return problems

    # -- clients ------------------------------------------------------------------------------
    @property
    def docker_host(self) -> str:
        return "unix://" + self.socket

    def api_socket(self) -> str:
        return self.socket

    # -- components ---------------------------------------------------------------------------
    def pids(self, role: str, container_id: str | None = None) -> list[int]:
        if role in ("daemon", "runtime"):
            p = self._procs.get(role)
            return [p.pid] if p is not None and p.poll() is None and not still_activator(p.pid) else []
        if role == "shim":
            return [p.pid for p in cleanup.find_processes(
                lambda argv, p: "capsize-shim" in " ".join(argv[:2]) and "serve" in argv
                and _arg(argv, "--id") == container_id and any(self.state in a for a in argv))]
        if role == "container":
            try:
                with open(os.path.join(self.state, "runtimed", "tasks", NAMESPACE, container_id, "init.pid")) as f:
                    pid = int(f.read().strip())
                return [pid] if cleanup.alive(pid) else []
            except (OSError, ValueError, TypeError):
                return []
        if role == "lowlevel":
            return [p.pid for p in cleanup.find_processes(
                lambda argv, p: any(os.path.basename(a) in ("capsize-runc", "runc", "crun") for a in argv[:2])
                and any(self.state in a for a in argv))]
        raise Unimplemented(f"no role {role}")

    def owned_pids(self) -> set[int]:
        return {p.pid for p in self._procs.values()}

    def start_component(self, role: str, timeout: float = 60.0, wait: bool = True, listen: str = "socket") -> dict:
        if role not in TIERS:
            raise Unimplemented(f"a {role} cannot be started on its own")
        if self.pids(role):
            raise Unavailable(f"the {role} is already running")
        os.makedirs(self.logs, exist_ok=True)
        if role == "daemon":
            self._ensure_netns()
        argv = self._argv(role)
        if role == "daemon" and listen != "socket":
            argv[argv.index("-H") + 1] = "fd://"
            if listen == "activator":
                from runtime.runtimes import which
                act = which("systemd-socket-activate")
                if not act:
                    raise Unavailable("systemd-socket-activate is not installed (package systemd)")
                if os.path.lexists(self.socket):
                    os.unlink(self.socket)
                argv = [act, "-l", self.socket] + argv
        t0 = time.monotonic()
        with open(os.path.join(self.logs, f"{role}.out"), "ab") as out:
            self._procs[role] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        if not wait:
            return {"pid": self._procs[role].pid}
        sock = self.socket if role == "daemon" else self.runtime_address
        from harness.reference.docker import ping
        while True:
            if self._procs[role].poll() is not None:
                err = _last_error(os.path.join(self.logs, "capsized.log")) if role == "daemon" else ""
                raise Unavailable(f"{TIERS[role][1]} exited with status {self._procs[role].returncode} during start-up"
                                  + (f": {err}" if err else ""))
            if role == "daemon" and listen == "activator" and os.path.exists(sock):
                return {"pid": self._procs[role].pid, "ready_seconds": time.monotonic() - t0}
            if os.path.exists(sock) and (role != "daemon" or ping(sock)):
                return {"pid": self._procs[role].pid, "ready_seconds": time.monotonic() - t0}
            if time.monotonic() - t0 > timeout:
                raise DeadlineExceeded(f"{TIERS[role][1]} did not answer within {timeout:g}s")
            time.sleep(0.02)

    def _ensure_netns(self) -> None:
        from runtime import netns
        if not netns.is_mounted(self.netns_path):
            netns.create(self.netns_path)
            netns.set_sysctl(self.netns_path, "net.ipv4.ip_forward", "1")

    def stop_component(self, role: str, timeout: float = 30.0) -> dict:
        p = self._procs.get(role)
        if p is None or p.poll() is not None:
            raise Unavailable(f"the {role} is not running")
        p.send_signal(signal.SIGTERM)
        try:
            return {"pid": p.pid, "exit_status": p.wait(timeout)}
        except subprocess.TimeoutExpired:
            p.kill()
            return {"pid": p.pid, "exit_status": p.wait(), "killed": True}

    def kill_component(self, role: str, sig: int) -> dict:
        p = self._procs.get(role)
        if p is None or p.poll() is not None:
            raise Unavailable(f"the {role} is not running")
        p.send_signal(sig)
        if sig == signal.SIGKILL:
            return {"pid": p.pid, "exit_status": p.wait()}
        return {"pid": p.pid, "signal": sig}

    # -- observation --------------------------------------------------------------------------
    def classify(self, pid, ppid, cmdline, cgroup):
        for role, p in self._procs.items():
            if p.pid == pid:
                return ("activator" if still_activator(pid) else role), None
        line = " ".join(cmdline)
        if "capsize-shim" in line and "serve" in cmdline:
            return "shim", _arg(cmdline, "--id")
        if "capsize-shim" in line and "template" in line:
            return "shim-template", None
        if "/capsize/" in cgroup:
            return "container", cgroup.split("/capsize/", 1)[1].split("/")[0]
        # capsize-runc is a Python script: its argv[0] is the interpreter, argv[1] the script
        if any(os.path.basename(a) in ("capsize-runc", "runc", "crun") for a in cmdline[:2]):
            return "lowlevel", None
        return None, None

    def container_cgroup_pids(self, container_id: str) -> list[int]:
        return cleanup.cgroup_pids(f"/capsize/{container_id}")

    def log_sources(self) -> list[LogSource]:
        return [LogSource("daemon", os.path.join(self.logs, "capsized.log"), "jsonl"),
                LogSource("runtime", os.path.join(self.logs, "runtimed.log"), "jsonl")]

    def runtime_events_argv(self, after: str | None = None) -> list[str] | None:
        argv = [sys.executable, "-m", "harness.engines.capsize_events", "--address", self.runtime_address]
        return argv + ["--after", after] if after else argv

    def parse_runtime_event(self, line: str) -> dict | None:
        try:
            e = json.loads(line)
        except ValueError:
            return None
        attrs = e.get("event", {})
        cursor = f"{e['boot_id']}:{e['seq']}" if e.get("boot_id") and e.get("seq") else None
        return {"time": e.get("timestamp"), "namespace": e.get("namespace"), "action": e.get("topic"),
                "container": attrs.get("container_id") or attrs.get("id"), "attrs": attrs, "cursor": cursor}

    def runtime_view(self) -> dict[str, tuple[int, str]]:
        return {cid: (t["pid"], t["status"]) for cid, t in self.runtime_tasks().items()}

    def runtime_tasks(self) -> dict[str, dict]:
        """capsize-runtimed's own task view (``GET /tasks``), with its exit status and source."""
        from runtime.errors import CapsizeError
        from runtime.highlevel.client import RuntimeClient
        if not self.pids("runtime"):
            raise Unavailable("capsize-runtimed is not running")
        try:
            tasks = RuntimeClient(self.runtime_address, NAMESPACE, timeout=10).tasks()
        except CapsizeError as e:
            raise Unavailable(f"capsize-runtimed: {e}") from None
        return {t["id"]: {"pid": t.get("pid") or 0, "status": str(t.get("status", "unknown")).upper(),
                          **{k: t.get(k) for k in ("exit_status", "exit_source", "exit_reason")}} for t in tasks}

    def image_store(self) -> dict:
        from runtime.highlevel.fsck import verify
        return verify(self.root)

    def host_state(self, container_ids: list[str]) -> HostState:
        hs = HostState()
        tasks = os.path.join(self.state, "runtimed", "tasks", NAMESPACE)
        for cid in container_ids:
            hs.process += [f"pid {pid} in cgroup capsize/{cid}" for pid in self.container_cgroup_pids(cid)]
            hs.process += [f"shim pid {pid} of {cid[:12]}" for pid in self.pids("shim", cid)]
            hs.cgroup += cleanup.cgroup_dirs(f"/capsize/{cid}")
            for path in (os.path.join(tasks, cid), os.path.join(self.state, "runc", NAMESPACE, cid)):
                if os.path.lexists(path):
                    hs.state.append(path)
            hs.socket += [f"{sock} (shim socket of {cid[:12]})" for sock in self.shim_sockets(cid)
                          if os.path.lexists(sock)]
        for point, fstype in cleanup.mountinfo():
            if fstype == "overlay" and self._mount_of(point, container_ids):
                hs.mount.append(f"{point} (overlay)")
            elif fstype == "nsfs" and point.startswith(os.path.join(self.state, "daemon", "netns") + "/"):
                hs.netns.append(point)   # a container's sandbox (not <workdir>/netns, the engine's own)
        return hs

    def shim_sockets(self, container_id: str) -> list[str]:
        """Where the shim of *container_id* listens (in the shared socket dir, /run/capsize/s):
        the path keyed by the runtime's events address (``runtime.shim.paths.socket_path``, as
        the runtime starts its shims), and the one named in the task's ``address`` file while the
        task dir exists (the same path unless the runtime was given another socket dir)."""
        from runtime.highlevel.layout import Layout
        from runtime.shim import paths
        found = [paths.socket_path(Layout(self.root, self.state, self.runtime_address).events_address,
                                   NAMESPACE, container_id)]
        try:
            with open(os.path.join(self.state, "runtimed", "tasks", NAMESPACE, container_id, paths.ADDRESS)) as f:
                named = paths.path_of(f.read().strip())
        except OSError:
            named = None
        if named and named not in found:
            found.append(named)
        return found

    def _mount_of(self, point: str, container_ids: list[str]) -> bool:
        """Whether mount *point* belongs to this engine's containers *container_ids* (here: anything
        under the private workdir, which only this run's containers use)."""
        return point.startswith(self.workdir + "/")


def _nsenter() -> str:
    from runtime.runtimes import which
    path = which("nsenter")
    if not path:
        raise NotFound("nsenter not found: install util-linux")
    return path


def _arg(argv, flag):
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _last_error(path: str) -> str:
    """The ``msg`` of the last error line of a JSON-lines log ('' if none)."""
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()[-50:]
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("level") in ("error", "fatal"):
            return str(e.get("msg") or "")
    return ""


def _remove_shim_socket(task_dir: str) -> list[str]:
    """Remove the socket a SIGKILLed shim leaves in the shared socket dir (/run/capsize/s: outside
    the workdir), as named in the task's ``address`` file; returns the problems (one line each)."""
    from runtime.shim import paths
    try:
        with open(os.path.join(task_dir, paths.ADDRESS)) as f:
            path = paths.path_of(f.read().strip())
    except OSError:
        return []
    if os.path.dirname(path) != paths.SOCKET_DIR:
        return []
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        return [f"shim socket {path}: {e.strerror}"]
    return []
