"""The ``podman`` engine: Debian's podman 4.3 API service with conmon and runc, private.

Built on :class:`harness.reference.podman.PodmanStack` (every path under the engine's workdir,
the service in a network namespace of its own). The harness's docker SDK and both docker CLIs
drive it through ``DOCKER_HOST`` (podman's Docker-compatible API, version 1.41). Roles:

=========  ===========================================================================
daemon     ``podman system service --time=0 unix://<workdir>/pm/podman.sock`` (log
           ``pm/service.log``, logrus text = logfmt; events through the API, which streams
           podman's own event log ``pm/events.log``)
runtime    n/a: Podman has no runtime daemon (no containerd): the service forks conmon itself
shim       conmon of the container (``conmon ... -c <id> -u <id> ... --exit-dir pm/tmp/exits``),
           double-forked, so re-parented to the harness; an exec's conmon is ``exec-shim``
container  the container's init (``<runroot>/overlay-containers/<id>/userdata/pidfile``),
           cgroup ``/libpod_parent/libpod-<id>``
lowlevel   n/a: runc exits after create/start (as on docker)
=========  ===========================================================================

The containers never depend on the service: it can be stopped, killed and started again while
they run (what dockerd calls live-restore is how Podman always works), so ``live_restore`` is
accepted and changes nothing. Options: ``runtime`` (runc, the default, or crun), ``network``
(``netns`` only: the CNI bridge must stay out of the host's namespace).
"""

from __future__ import annotations

import os
import shutil
import signal

from harness.engines.base import Engine, HostState, LogSource, still_activator
from harness.reference import cleanup
from harness.reference.podman import CGROUP_PARENT, CNI_CACHE, IMAGE_CACHE, REQUIRED, PodmanStack
from runtime.errors import CapsizeError, Unavailable, Unimplemented
from runtime.runtimes import which

#: Why Podman lacks a role (the loader makes a scenario that needs it n/a here, with this reason).
ROLE_NOTES = {
    "role:runtime": "Podman has no runtime daemon: the API service forks conmon per container itself",
    "role:lowlevel": "runc exits after create/start",
}


def _stack_dir(workdir: str) -> str:
    return os.path.join(workdir, "pm")


def _arg(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None


class PodmanEngine(Engine):
    name = "podman"
    roles = ("daemon", "shim", "container")
    #: Capabilities Podman lacks by design, with the reason (see :data:`ROLE_NOTES`).
    missing = ROLE_NOTES
    #: The CNI bridge of podman's default network (in the engine's own netns).
    default_bridge = "cni-podman0"
    #: The service streams events by tailing its event log file (polled): measured ~0.25 s late.
    event_latency = 1.0

    def __init__(self, workdir: str, options):
        super().__init__(workdir, options)
        self.stack: PodmanStack | None = None

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        if os.geteuid() != 0:
            return "engine unavailable: the podman engine needs root"
        missing = [b for b in REQUIRED if not which(b)]
        if missing:
            return f"engine unavailable: {', '.join(missing)} not installed (scripts/setup.sh installs them)"
        runtime = getattr(options, "runtime", None) or "runc"
        if runtime not in ("runc", "crun"):
            return f"engine unavailable: podman drives runc or crun, not {runtime}"
        if not which(runtime):
            return f"engine unavailable: {runtime} not installed"
        if getattr(options, "network", "netns") != "netns":
            return "engine unavailable: the podman engine runs with network netns only"
        from harness.reference.podman import cni_plugin_dir
        if not cni_plugin_dir():
            return "engine unavailable: the CNI plugins are not installed (containernetworking-plugins)"
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def prepare(self) -> dict:
        self._before = {
            "netns_before": sorted(cleanup.existing_tree("/run/netns", 1)),
            "had_cni_cache": os.path.lexists(CNI_CACHE),
            "had_image_cache": os.path.lexists(IMAGE_CACHE),
            "cgroup_parents": sorted(cleanup.top_cgroups() & {CGROUP_PARENT}),
        }
        return self.record()

    def record(self) -> dict:
        return {"engine": self.name, "workdir": self.workdir, **getattr(self, "_before", {})}

    def start(self) -> None:
        if not hasattr(self, "_before"):
            self.prepare()
        self.stack = PodmanStack(_stack_dir(self.workdir), runtime=self.options.runtime or "runc")
        try:
            self.stack.start()
            self.stack.import_busybox("busybox:latest")
        except BaseException:
            self.close()
            raise

    def close(self) -> list[str]:
        if self.stack is None:
            return []
        try:
            self.stack.close()
        except CapsizeError as e:
            return [str(e)]
        finally:
            self.stack = None
        return []

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        """Kill the dead harness's service, conmons and cleanup commands (their command lines
        name the workdir), then let a PodmanStack on the same workdir remove the rest."""
        workdir = record["workdir"]
        stackdir = _stack_dir(workdir)
        problems: list[str] = []
        if not os.path.isdir(stackdir):
            return problems
        problems += cleanup.kill_processes(cleanup.find_processes(
            lambda argv, p: bool(argv) and os.path.basename(argv[0]) in ("podman", "conmon", "nsenter")
            and any(stackdir + "/" in a for a in argv)))
        try:
            stack = PodmanStack(stackdir)
            stack.adopt(record.get("netns_before", []), record.get("had_cni_cache", True),
                        record.get("cgroup_parents", [CGROUP_PARENT]), record.get("had_image_cache", True))
            stack.close()
        except CapsizeError as e:
            problems.append(str(e))
        shutil.rmtree(workdir, ignore_errors=True)
        return problems

    # -- clients ------------------------------------------------------------------------------
    @property
    def docker_host(self) -> str:
        return "unix://" + self.api_socket()

    def cli_env(self) -> dict[str, str]:
        env = super().cli_env()
        env["DOCKER_CONFIG"] = os.path.join(_stack_dir(self.workdir), "cli")
        return env

    @property
    def netns_path(self) -> str | None:
        """The stack's network namespace (where the CNI bridge is), while the engine runs."""
        return self.stack.netns_path if self.stack is not None else None

    def api_socket(self) -> str:
        return os.path.join(_stack_dir(self.workdir), "podman.sock")

    # -- components ---------------------------------------------------------------------------
    def _live(self) -> PodmanStack:
        if self.stack is None:
            raise Unavailable("the podman engine is not started")
        return self.stack

    def conmon_of(self, container_id: str | None) -> list:
        """The container's own conmon (psutil processes): ``-c <id>`` and ``-u <id>`` (an exec's
        conmon has ``-u <exec id>``)."""
        return [p for p in self._live().conmons()
                if _arg(p.info["cmdline"], "-c") == container_id and _arg(p.info["cmdline"], "-u") == container_id]

    def pids(self, role: str, container_id: str | None = None) -> list[int]:
        st = self._live()
        if role == "daemon":
            return [st.service_pid] if st.service_pid and not still_activator(st.service_pid) else []
        if role == "shim":
            return [p.pid for p in self.conmon_of(container_id)]
        if role == "container":
            if not container_id:
                return []
            try:
                with open(os.path.join(st.userdata(container_id, run=True), "pidfile")) as f:
                    pid = int(f.read().strip())
                if cleanup.alive(pid):
                    return [pid]
            except (OSError, ValueError):
                pass
            return []
        raise Unimplemented(f"engine podman has no {role} process ({ROLE_NOTES.get('role:' + role, 'no such role')})")

    def owned_pids(self) -> set[int]:
        st = self.stack
        return {st._proc.pid} if st is not None and st._proc is not None else set()

    def _service_pid(self, role: str, must: bool = True) -> int | None:
        if role != "daemon":
            raise Unimplemented(f"only the daemon (the podman API service) can be stopped/started as a whole, "
                                f"not {role}" + (f" ({ROLE_NOTES['role:runtime']})" if role == "runtime" else ""))
        pids = self.pids(role)
        if not pids and must:
            raise Unavailable("the daemon (podman system service) is not running")
        return pids[0] if pids else None

    def stop_component(self, role: str, timeout: float = 30.0) -> dict:
        pid = self._service_pid(role)
        return {"pid": pid, "exit_status": self._live().stop_service(timeout)}

    def kill_component(self, role: str, sig: int) -> dict:
        pid = self._service_pid(role)
        if sig == signal.SIGKILL:
            return {"pid": pid, "exit_status": self._live().kill_service()}
        os.kill(pid, sig)
        return {"pid": pid, "signal": sig}

    def start_component(self, role: str, timeout: float = 60.0, wait: bool = True, listen: str = "socket") -> dict:
        self._service_pid(role, must=False)
        if listen == "fd":
            raise Unimplemented("podman system service has no -H fd:// (without a URI it serves LISTEN_FDS "
                                "or its default socket, never a misconfiguration)")
        seconds = self._live().start_service(wait=wait, timeout=timeout, listen=listen)
        return {"pid": self._service_pid(role, must=False), "ready_seconds": seconds}

    # -- observation --------------------------------------------------------------------------
    def classify(self, pid, ppid, cmdline, cgroup):
        st = self.stack
        if st is None:
            return None, None
        if pid == st.service_pid:
            return ("activator" if still_activator(pid) else "daemon"), None
        base = os.path.basename(cmdline[0]) if cmdline else ""
        if base == "conmon" and any(a.startswith(st.root + "/") for a in cmdline):
            cid = _arg(cmdline, "-c")
            return ("shim" if _arg(cmdline, "-u") == cid else "exec-shim"), cid
        marker = f"/{CGROUP_PARENT}/libpod-"
        if marker in cgroup:
            cid = cgroup.split(marker, 1)[1].split("/")[0]
            if len(cid) == 64:
                return "container", cid
        if base == "podman" and "cleanup" in cmdline and st.root in cmdline:
            return "cleanup", cmdline[-1] if len(cmdline[-1]) == 64 else None
        if base in ("runc", "crun") or cmdline[:2] == ["runc", "init"]:
            return "lowlevel", None
        return None, None

    def container_cgroup_pids(self, container_id: str) -> list[int]:
        return cleanup.cgroup_pids(f"/{CGROUP_PARENT}/libpod-{container_id}")

    def log_sources(self) -> list[LogSource]:
        return [LogSource("daemon", os.path.join(_stack_dir(self.workdir), "service.log"), "logfmt")]

    def lifecycle_actions(self, source: str) -> dict[str, tuple[str, ...]]:
        if source != "daemon":
            raise Unimplemented(f"engine podman has no {source} event source ({ROLE_NOTES['role:runtime']})")
        # Podman 4.3's compat event stream says "remove" where dockerd says "destroy"; it adds
        # "init" (between create and start) and "cleanup" (after die)
        return {"create": ("create",), "start": ("start",), "exit": ("die",), "delete": ("remove", "destroy")}

    def host_state(self, container_ids: list[str]) -> HostState:
        st = self._live()
        hs = HostState()
        for cid in container_ids:
            hs.process += [f"pid {pid} in cgroup /{CGROUP_PARENT}/libpod-{cid}" for pid in self.container_cgroup_pids(cid)]
            hs.process += [f"conmon pid {p.pid} of {cid[:12]}" for p in st.conmons() if _arg(p.info["cmdline"], "-c") == cid]
            hs.cgroup += cleanup.cgroup_dirs(f"/{CGROUP_PARENT}/libpod-{cid}")
            for path in (os.path.dirname(st.userdata(cid)), os.path.dirname(st.userdata(cid, run=True)),
                         st.exit_file(cid)):
                if os.path.lexists(path):
                    hs.state.append(path)
            results = os.path.join(CNI_CACHE, "results")
            hs.state += [os.path.join(results, n) for n in _listdir(results) if cid in n]
            attach = os.path.join(st.userdata(cid, run=True), "attach")
            if os.path.lexists(attach):
                hs.socket.append(f"{attach} (conmon attach socket of {cid[:12]})")
        layers = {st.container_layer(cid) for cid in container_ids} - {None}
        live_layers = {st.container_layer(cid) for cid in st.container_ids()} - {None}
        mounts = cleanup.mountinfo()
        for point, fstype in mounts:
            if not point.startswith(st.root + "/"):
                continue
            layer = point[len(st.root) + 1:].split("/")[1] if point.count("/") > st.root.count("/") + 1 else ""
            # a container's own mounts (shm under its userdata), its rootfs (overlay/<layer>/merged),
            # and any rootfs whose container podman no longer knows (an orphaned mount)
            if any(cid in point for cid in container_ids) or layer in layers or (
                    fstype == "overlay" and layer not in live_layers):
                hs.mount.append(f"{point} ({fstype})")
        nsfs = {m for m, t in mounts if t == "nsfs"}
        hs.netns += [p for p in st.new_netns() if p in nsfs]
        return hs


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
