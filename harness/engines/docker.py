"""The ``docker`` engine: Debian's dockerd + containerd + containerd-shim-runc-v2 + runc, private.

Built on :class:`harness.reference.docker.DockerStack` (every path under the engine's workdir,
dockerd in a network namespace of its own). Roles:

=========  ===========================================================================
daemon     dockerd (``<workdir>/dk/docker.sock``, log ``dk/dockerd.log``, logfmt)
runtime    containerd (``dk/ctd/containerd.sock``, log ``dk/ctd/containerd.log``; events
           through ``ctr events``; tasks through ``ctr -n moby tasks ls``)
shim       ``containerd-shim-runc-v2 -namespace moby -id <id> -address <containerd.sock>``
container  the task's init (``<bundle>/init.pid``), cgroup ``/docker/<id>``
lowlevel   n/a: runc exits after create/start
=========  ===========================================================================

Options: ``live_restore``, ``runtime`` (runc, the default; crun and capsize-runc are added as
dockerd ``runtimes`` and passed with every container create), ``network`` (netns|none).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal

from harness.engines.base import Engine, HostState, LogSource, still_activator
from harness.reference import cleanup
from harness.reference.containerd import shim_socket_path
from runtime.errors import CapsizeError, NotFound, Unavailable, Unimplemented
from runtime.runtimes import runtime_path, which

NAMESPACE = "moby"
V2_TASKS = "io.containerd.runtime.v2.task"
REQUIRED = ("dockerd", "containerd", "ctr", "containerd-shim-runc-v2", "runc", "docker", "nsenter", "unshare", "ip")


def _stack_dir(workdir: str) -> str:
    return os.path.join(workdir, "dk")


class DockerEngine(Engine):
    name = "docker"
    roles = ("daemon", "runtime", "shim", "container")

    def __init__(self, workdir: str, options):
        super().__init__(workdir, options)
        self.stack = None

    @classmethod
    def unavailable(cls, options=None) -> str | None:
        if os.geteuid() != 0:
            return "engine unavailable: the docker engine needs root"
        missing = [b for b in REQUIRED if not which(b)]
        if missing:
            return f"engine unavailable: {', '.join(missing)} not installed (scripts/setup.sh installs them)"
        runtime = getattr(options, "runtime", None)
        if runtime and runtime != "runc":
            try:
                runtime_path(runtime)
            except NotFound as e:
                return f"engine unavailable: {e}"
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def _runtimes(self) -> dict[str, str]:
        rt = self.options.runtime
        return {rt: runtime_path(rt)} if rt and rt != "runc" else {}

    def default_container_runtime(self) -> str | None:
        rt = self.options.runtime
        return rt if rt and rt != "runc" else None

    def record(self) -> dict:
        return {"engine": self.name, "workdir": self.workdir, **self._before}

    def prepare(self) -> dict:
        """What existed before the engine starts (for :meth:`record`); call before :meth:`start`."""
        self._before = {
            "had_key": os.path.exists("/etc/docker/key.json"),
            "cgroup_parents": sorted(cleanup.top_cgroups() & {"docker", "moby"}),
            "run_before": sorted(cleanup.existing_tree("/run/containerd", 3) | cleanup.existing_tree("/run/docker", 2)),
        }
        return self.record()

    def start(self) -> None:
        from harness.reference.docker import DockerStack
        if not hasattr(self, "_before"):
            self.prepare()
        self.stack = DockerStack(_stack_dir(self.workdir), live_restore=self.options.live_restore,
                                 runtimes=self._runtimes(), network=self.options.network)
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
        """Kill the dead harness's dockerd/containerd (found by their command lines naming the
        workdir), then let a DockerStack on the same workdir remove the rest."""
        from harness.reference.docker import KEY_JSON, DockerStack
        workdir = record["workdir"]
        stackdir = _stack_dir(workdir)
        problems: list[str] = []
        if not os.path.isdir(stackdir):
            return problems
        daemons = cleanup.find_processes(
            lambda argv, p: bool(argv) and os.path.basename(argv[0]) in ("dockerd", "containerd", "ctr", "nsenter")
            and any(stackdir + "/" in a for a in argv))
        problems += cleanup.kill_processes(daemons)
        try:
            DockerStack(stackdir).close()
        except CapsizeError as e:
            problems.append(str(e))
        if not record.get("had_key") and os.path.exists(KEY_JSON) and not cleanup.find_processes(
                lambda argv, p: bool(argv) and os.path.basename(argv[0]) == "dockerd"):
            os.unlink(KEY_JSON)
        for parent in ("docker", "moby"):
            if parent not in record.get("cgroup_parents", []):
                cleanup.remove_empty_cgroup_parent(parent)
        before = set(record.get("run_before", []))
        if not cleanup.find_processes(lambda argv, p: bool(argv) and "containerd-shim" in argv[0]):
            cleanup.remove_new_empty_dirs(cleanup.new_entries(before, "/run/containerd", 3))
        cleanup.remove_new_empty_dirs(cleanup.new_entries(before, "/run/docker", 2))
        shutil.rmtree(workdir, ignore_errors=True)
        return problems

    # -- clients ------------------------------------------------------------------------------
    @property
    def docker_host(self) -> str:
        return "unix://" + os.path.join(_stack_dir(self.workdir), "docker.sock")

    def cli_env(self) -> dict[str, str]:
        env = super().cli_env()
        env["DOCKER_CONFIG"] = os.path.join(_stack_dir(self.workdir), "cli")
        return env

    def api_socket(self) -> str:
        return os.path.join(_stack_dir(self.workdir), "docker.sock")

    @property
    def netns_path(self) -> str | None:
        """dockerd's network namespace (``dk/netns``; None with option ``network: none``)."""
        return self.stack.netns_path if self.stack is not None else None

    # -- components ---------------------------------------------------------------------------
    def _live(self):
        if self.stack is None:
            raise Unavailable("the docker engine is not started")
        return self.stack

    def pids(self, role: str, container_id: str | None = None) -> list[int]:
        st = self._live()
        if role == "daemon":
            return [st.dockerd_pid] if st.dockerd_pid and not still_activator(st.dockerd_pid) else []
        if role == "runtime":
            return [st.containerd_pid] if st.containerd_pid else []
        if role == "shim":
            return [p.pid for p in st.containerd.shims() if _arg(p.info["cmdline"], "-id") == container_id]
        if role == "container":
            if not container_id:
                return []
            try:
                with open(os.path.join(st.bundle_dir(container_id), "init.pid")) as f:
                    pid = int(f.read().strip())
                if cleanup.alive(pid):
                    return [pid]
            except (OSError, ValueError):
                pass
            return []
        raise Unimplemented(f"engine docker has no {role} process (runc exits after create and start)")

    def owned_pids(self) -> set[int]:
        st = self.stack
        if st is None:
            return set()
        return {p._proc.pid for p in (st, st.containerd) if p._proc is not None}

    def stop_component(self, role: str, timeout: float = 30.0) -> dict:
        st = self._live()
        pid = self._daemon_pid(role)
        status = st.stop_dockerd(timeout) if role == "daemon" else st.stop_containerd(timeout)
        return {"pid": pid, "exit_status": status}

    def kill_component(self, role: str, sig: int) -> dict:
        st = self._live()
        pid = self._daemon_pid(role)
        if sig == signal.SIGKILL:
            status = st.kill_dockerd() if role == "daemon" else st.kill_containerd()
            return {"pid": pid, "exit_status": status}
        os.kill(pid, sig)
        return {"pid": pid, "signal": sig}

    def start_component(self, role: str, timeout: float = 60.0, wait: bool = True, listen: str = "socket") -> dict:
        st = self._live()
        if role == "daemon":
            seconds = st.start_dockerd(wait=wait, timeout=timeout, listen=listen)
        elif role == "runtime":
            seconds = st.start_containerd(timeout, wait=wait)
        else:
            raise Unimplemented(f"a {role} cannot be started on its own")
        return {"pid": self._daemon_pid(role, must=False), "ready_seconds": seconds}

    def _daemon_pid(self, role: str, must: bool = True) -> int | None:
        if role not in ("daemon", "runtime"):
            raise Unimplemented(f"only the daemon and the runtime can be stopped/started as a whole, not {role}")
        pids = self.pids(role)
        if not pids and must:
            raise Unavailable(f"the {role} ({'dockerd' if role == 'daemon' else 'containerd'}) is not running")
        return pids[0] if pids else None

    # -- observation --------------------------------------------------------------------------
    def classify(self, pid, ppid, cmdline, cgroup):
        st = self.stack
        if st is None:
            return None, None
        if pid == st.dockerd_pid:
            return ("activator" if still_activator(pid) else "daemon"), None
        if pid == st.containerd_pid:
            return "runtime", None
        if cmdline and os.path.basename(cmdline[0]).startswith("containerd-shim") and \
                _arg(cmdline, "-address") == st.containerd.address:
            return "shim", _arg(cmdline, "-id")
        marker = "/docker/"
        if marker in cgroup:
            cid = cgroup.split(marker, 1)[1].split("/")[0]
            if len(cid) == 64:
                return "container", cid
        if cmdline and os.path.basename(cmdline[0]) in ("runc", "crun") or cmdline[:2] == ["runc", "init"]:
            return "lowlevel", None
        return None, None

    def container_cgroup_pids(self, container_id: str) -> list[int]:
        return cleanup.cgroup_pids(f"/docker/{container_id}")

    def log_sources(self) -> list[LogSource]:
        d = _stack_dir(self.workdir)
        return [LogSource("daemon", os.path.join(d, "dockerd.log"), "logfmt"),
                LogSource("runtime", os.path.join(d, "ctd", "containerd.log"), "logfmt")]

    def runtime_events_argv(self, after: str | None = None) -> list[str] | None:
        """``ctr events`` (containerd has no replay: *after* is not used)."""
        st = self._live()
        return [st.containerd.ctr_binary, "--address", st.containerd.address, "events"]

    def parse_runtime_event(self, line: str) -> dict | None:
        # "2026-11-29 12:02:51.608562254 +0000 UTC moby /tasks/exit {json}"
        parts = line.strip().split(" ", 6)
        if len(parts) < 6 or not parts[5].startswith("/"):
            return None
        attrs = {}
        if len(parts) == 7:
            try:
                attrs = json.loads(parts[6])
            except ValueError:
                attrs = {"raw": parts[6]}
        cid = attrs.get("container_id") or attrs.get("id")
        return {"time": f"{parts[0]}T{parts[1]}", "namespace": parts[4], "action": parts[5],
                "container": cid, "attrs": attrs}

    def runtime_view(self) -> dict[str, tuple[int, str]]:
        st = self._live()
        if not st.containerd.running:
            raise Unavailable("containerd is not running")
        try:
            return st.containerd.tasks(NAMESPACE)
        except CapsizeError as e:
            raise Unavailable(f"containerd: {e}") from None

    def image_store(self) -> dict:
        from harness.reference.docker_store import verify
        return verify(os.path.join(_stack_dir(self.workdir), "data"))

    def host_state(self, container_ids: list[str]) -> HostState:
        d = _stack_dir(self.workdir)
        data_root, exec_root = os.path.join(d, "data"), os.path.join(d, "exec")
        ctd_state = os.path.join(d, "ctd", "state")
        ctd_address = os.path.join(d, "ctd", "containerd.sock")
        hs = HostState()
        shims = cleanup.find_processes(lambda argv, p: bool(argv) and "containerd-shim" in argv[0]
                                       and _arg(argv, "-address") == ctd_address)
        for cid in container_ids:
            hs.process += [f"pid {pid} in cgroup /docker/{cid}" for pid in self.container_cgroup_pids(cid)]
            hs.process += [f"shim pid {p.pid} of {cid[:12]}" for p in shims if _arg(p.info["cmdline"], "-id") == cid]
            hs.cgroup += cleanup.cgroup_dirs(f"/docker/{cid}")
            sock = shim_socket_path(ctd_address, NAMESPACE, cid)
            if os.path.lexists(sock):
                hs.socket.append(f"{sock} (shim socket of {cid[:12]})")
            for path in [os.path.join(ctd_state, V2_TASKS, NAMESPACE, cid), os.path.join(data_root, "containers", cid),
                         *glob.glob(os.path.join(exec_root, "runtime-*", NAMESPACE, cid)),
                         os.path.join(exec_root, "containerd", cid)]:
                if os.path.lexists(path):
                    hs.state.append(path)
        for point, fstype in cleanup.mountinfo():
            if fstype == "overlay" and point.startswith(data_root + "/"):
                hs.mount.append(f"{point} (overlay)")
            elif fstype == "nsfs" and point.startswith(os.path.join(exec_root, "netns") + "/"):
                hs.netns.append(point)
        return hs


def _arg(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None
