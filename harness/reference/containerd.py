"""A private containerd (Debian's 1.6), started beside capsize and removed without a trace.

:class:`ContainerdStack` owns one directory, *workdir*, and keeps everything it can there::

    <workdir>/config.toml        the config written below (version 2)
    <workdir>/containerd.sock    grpc address (.address); <workdir>/containerd.sock.ttrpc; debug.sock
    <workdir>/root/, state/      containerd's --root and --state
    <workdir>/opt/               the opt plugin's path (default /opt/containerd)
    <workdir>/runc/              a runc root for ``ctr run --runc-root`` (.runc_root)
    <workdir>/containerd.log     containerd's stdout+stderr, appended across restarts (.log_path)

The config disables the CRI plugin (as Docker's containerd.io package does: it needs CNI and
system paths) and the aufs/btrfs/zfs/devmapper snapshotters; the default overlayfs
snapshotter stays. The v1 runtime plugin cannot be disabled (the tasks service requires it),
so its runtime root is moved under *workdir* too.

Three things live outside *workdir* whatever the config says, and :meth:`close` removes ours:

* shim sockets: containerd 1.6's shims listen on ``/run/containerd/s/<hex>``, where ``<hex>`` is
  ``sha256(filepath.Join(<containerd address>, <namespace>, <id>))`` (``SocketAddress`` in
  containerd's runtime/v2/shim/util_unix.go; see :func:`shim_socket_path`). The shim does not
  always remove it (a SIGKILLed shim leaves it);
* runc state of tasks started without a runc root (``ctr run`` without ``--runc-root``):
  ``/run/containerd/runc/<namespace>/<id>``;
* cgroups: runc puts a task in ``<cgroupsPath>`` in every hierarchy (``/<namespace>/<id>`` for
  ``ctr run``, ``/docker/<id>`` for dockerd).

Shims outlive containerd (they are started detached, in containerd's session, and re-parented
to the nearest subreaper or PID 1), so :meth:`close` finds them by their ``-address <our
socket>`` argument. Errors: :class:`~runtime.errors.Unavailable` when containerd dies or is not
installed, :class:`~runtime.errors.DeadlineExceeded` when it does not answer in time,
:class:`~runtime.errors.FailedPrecondition` for a start while running, and a plain
:class:`~runtime.errors.CapsizeError` from :meth:`close` naming whatever could not be removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from harness.reference import cleanup
from runtime.errors import (AlreadyExists, CapsizeError, DeadlineExceeded, FailedPrecondition,
                            InvalidArgument, NotFound, Unavailable)
from runtime.runtimes import which

SHIM_SOCKET_DIR = "/run/containerd/s"
#: containerd-shim-runc-v2's runc root when the task's options name none.
DEFAULT_RUNC_ROOT = "/run/containerd/runc"
V2_TASKS = "io.containerd.runtime.v2.task"
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper")
#: Longest wait of one ``ctr version`` start probe (s); the probe is retried until the start's timeout.
PROBE_SECONDS = 5.0
#: Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


def shim_socket_path(address: str, namespace: str, task_id: str) -> str:
    """Where containerd 1.6's shim for (*namespace*, *task_id*) listens, given containerd's *address*.

    ``/run/containerd/s/`` + hex sha256 of Go's ``filepath.Join(address, namespace, id)``.
    """
    joined = os.path.normpath(os.path.join(address, namespace, task_id))
    return os.path.join(SHIM_SOCKET_DIR, hashlib.sha256(joined.encode()).hexdigest())


def normalize_reference(reference: str) -> str:
    """Docker's reference normalization: ``busybox:latest`` -> ``docker.io/library/busybox:latest``."""
    name = reference if ":" in reference.rsplit("/", 1)[-1] else reference + ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        return "docker.io/library/" + name
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + name
    return name


@dataclass(frozen=True)
class TaskRecord:
    """A task this stack's containerd ran: enough to find its leftovers after any fault."""

    namespace: str
    id: str
    cgroups_path: str | None = None  # the bundle's linux.cgroupsPath, when known
    runc_root: str | None = None     # the runtime's --root from the task's options, when known


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


class ContainerdStack:
    """A private containerd under *workdir* (created if missing; removed by :meth:`close`).

    Use as a context manager (``with ContainerdStack(d) as ctd:`` starts it and closes it), or
    call :meth:`start` and :meth:`close`. *log_level* is containerd's (``info`` as the baseline
    measurements used; ``debug`` logs every request). Raises InvalidArgument when *workdir* is
    so long that a socket path would exceed 107 bytes, NotFound without Debian's containerd.
    """

    def __init__(self, workdir: str, *, log_level: str = "info"):
        self.workdir = os.path.abspath(workdir)
        self.address = os.path.join(self.workdir, "containerd.sock")
        self.ttrpc_address = self.address + ".ttrpc"
        self.debug_address = os.path.join(self.workdir, "debug.sock")
        if len(self.ttrpc_address) > MAX_SOCKET_PATH:
            raise InvalidArgument(f"workdir {self.workdir} is too long: socket path {self.ttrpc_address} "
                                  f"exceeds {MAX_SOCKET_PATH} bytes")
        self.binary = which("containerd")
        self.ctr_binary = which("ctr")
        if not self.binary or not self.ctr_binary:
            raise NotFound("containerd or ctr not found: install Debian's containerd (scripts/setup.sh does)")
        self.root = os.path.join(self.workdir, "root")
        self.state = os.path.join(self.workdir, "state")
        self.runc_root = os.path.join(self.workdir, "runc")
        self.config_path = os.path.join(self.workdir, "config.toml")
        self.log_path = os.path.join(self.workdir, "containerd.log")
        self.log_level = log_level
        #: Seconds from exec to the first successful ``ctr version``, for the last start.
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._records: dict[tuple[str, str], TaskRecord] = {}
        self._closed = False
        # What existed before, so that close() removes only what this stack created.
        self._cgroups_before = cleanup.top_cgroups()
        self._run_before = cleanup.existing_tree("/run/containerd", 3)
        os.makedirs(self.workdir, exist_ok=True)
        self._write_config()

    # -- configuration ----------------------------------------------------------------------
    def _write_config(self) -> None:
        q = _toml_str
        text = "\n".join([
            "version = 2",
            f"root = {q(self.root)}",
            f"state = {q(self.state)}",
            "disabled_plugins = [" + ", ".join(q(p) for p in DISABLED_PLUGINS) + "]",
            "",
            "[grpc]",
            f"  address = {q(self.address)}",
            "[ttrpc]",
            f"  address = {q(self.ttrpc_address)}",
            "[debug]",
            f"  address = {q(self.debug_address)}",
            f"  level = {q(self.log_level)}",
            "",
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {q(os.path.join(self.workdir, 'opt'))}",
            '[plugins."io.containerd.runtime.v1.linux"]',
            f"  runtime_root = {q(os.path.join(self.workdir, 'runc-v1'))}",
            '[plugins."io.containerd.snapshotter.v1.overlayfs"]',
            f"  root_path = {q(os.path.join(self.root, 'io.containerd.snapshotter.v1.overlayfs'))}",
            "",
        ])
        with open(self.config_path, "w") as f:
            f.write(text)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """containerd's PID while it runs, else None."""
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "ContainerdStack":
        if not self.running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, timeout: float = 10.0, wait: bool = True) -> float | None:
        """Start containerd (again) on the same root and state; with *wait*, until ``ctr version`` answers.

        The probe is retried until *timeout* (each ``ctr version`` bounded by what is left of it,
        at most :data:`PROBE_SECONDS`): a containerd slow to load its plugins answers late, and
        one unanswered probe is not a failed start. Returns the seconds that took (also in
        :attr:`start_seconds`; None without *wait*). Raises FailedPrecondition if it runs already
        or the stack is closed, Unavailable if containerd exits during start-up (with its last
        log line), DeadlineExceeded after *timeout* seconds (containerd is then killed).
        """
        if self._closed:
            raise FailedPrecondition(f"containerd stack {self.workdir} is closed")
        if self.running:
            raise FailedPrecondition(f"containerd is already running (pid {self._proc.pid})")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([self.binary, "--config", self.config_path],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.workdir, env=env, start_new_session=True)
        if not wait:
            return None
        while True:
            if self._proc.poll() is not None:
                raise Unavailable(f"containerd exited with status {self._proc.returncode} during start-up: "
                                  f"{last_error_line(self.log_path)}")
            left = timeout - (time.monotonic() - t0)
            try:
                answered = left > 0 and self.ctr("version", timeout=min(PROBE_SECONDS, max(left, 0.1))).returncode == 0
            except DeadlineExceeded:
                answered = False   # slow to load: probe again while the start's timeout lasts
            if answered:
                self.start_seconds = time.monotonic() - t0
                return self.start_seconds
            if time.monotonic() - t0 > timeout:
                self.kill()
                raise DeadlineExceeded(f"containerd did not answer within {timeout:g}s: "
                                       f"{last_error_line(self.log_path)}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM containerd and wait (SIGKILL after *timeout* s). Returns its exit status, None if not running."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL containerd and reap it. Shims and containers live on. Returns its exit status."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int | None:
        if not self.running:
            return None
        self._proc.send_signal(sig)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    # -- clients ----------------------------------------------------------------------------
    def ctr(self, *args: str, namespace: str | None = None, check: bool = False, timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``ctr --address <ours> [--namespace ns] *args`` (text output, bounded by *timeout*).

        With *check*, a non-zero exit raises NotFound / AlreadyExists / Unavailable /
        CapsizeError with ctr's last stderr line.
        """
        argv = [self.ctr_binary, "--address", self.address]
        if namespace:
            argv += ["--namespace", namespace]
        argv += list(args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                                    stdin=None if input is not None else subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired:
            raise DeadlineExceeded(f"ctr {' '.join(args)}: no answer within {timeout:g}s") from None
        if check and result.returncode != 0:
            raise _ctr_error(args, result.stderr)
        return result

    def import_busybox(self, reference: str = "busybox:latest", namespace: str = "default") -> str:
        """Import the lab's busybox image (``runtime.busybox.write_image_tar``) with ``ctr images import``.

        Offline and unpacked for the overlayfs snapshotter. Returns the normalized image name
        (``docker.io/library/busybox:latest``) to give ``ctr run``.
        """
        from runtime import busybox
        path = os.path.join(self.workdir, "images", "busybox.tar")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        busybox.write_image_tar(path, reference)
        self.ctr("images", "import", path, namespace=namespace, check=True, timeout=60)
        return normalize_reference(reference)

    def tasks(self, namespace: str = "default") -> dict[str, tuple[int, str]]:
        """``{task id: (pid, STATUS)}`` from ``ctr tasks ls`` (STATUS: RUNNING, STOPPED, CREATED...)."""
        out = self.ctr("tasks", "ls", namespace=namespace, check=True).stdout.splitlines()
        result = {}
        for line in out[1:]:
            fields = line.split()
            if len(fields) >= 3:
                result[fields[0]] = (int(fields[1]), fields[2])
        return result

    def shims(self) -> list:
        """Live shim processes (psutil) of this containerd: cmdline has ``-address <our socket>``."""
        return cleanup.find_processes(lambda argv, p: _arg_after(argv, "-address") == self.address)

    def shim_socket(self, namespace: str, task_id: str) -> str:
        """The path of the shim socket for (*namespace*, *task_id*); see :func:`shim_socket_path`."""
        return shim_socket_path(self.address, namespace, task_id)

    def remember(self, namespace: str, task_id: str, cgroups_path: str | None = None) -> None:
        """Record a task this containerd ran, so that :meth:`close` looks for its leftovers too."""
        key = (namespace, task_id)
        old = self._records.get(key)
        if old is None or (cgroups_path and not old.cgroups_path):
            self._records[key] = TaskRecord(namespace, task_id, cgroups_path or (old and old.cgroups_path),
                                            old.runc_root if old else None)

    # -- finding our tasks -------------------------------------------------------------------
    def _collect_records(self) -> None:
        """Learn every task of ours: bundles in the state dir, live shims, the log's shim starts."""
        tasks_dir = os.path.join(self.state, V2_TASKS)
        for ns in _listdir(tasks_dir):
            for tid in _listdir(os.path.join(tasks_dir, ns)):
                bundle = os.path.join(tasks_dir, ns, tid)
                cgroups_path = _json(os.path.join(bundle, "config.json")).get("linux", {}).get("cgroupsPath")
                options = _json(os.path.join(bundle, "options.json"))
                root = options.get("root") or options.get("Root")
                key = (ns, tid)
                old = self._records.get(key)
                self._records[key] = TaskRecord(ns, tid, cgroups_path or (old and old.cgroups_path),
                                                root or (old and old.runc_root))
        for p in self.shims():
            try:
                argv = p.cmdline()
            except Exception:  # noqa: BLE001 - gone meanwhile
                continue
            ns, tid = _arg_after(argv, "-namespace"), _arg_after(argv, "-id")
            if ns and tid:
                self.remember(ns, tid)
        # containerd logs each shim start: msg="starting signal loop" namespace=<ns> path=<bundle> pid=<shim>
        prefix = os.path.join(self.state, V2_TASKS) + "/"
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if "starting signal loop" not in line:
                        continue
                    m = re.search(r'\bpath="?([^\s"]+)', line)
                    if m and m.group(1).startswith(prefix):
                        parts = m.group(1)[len(prefix):].split("/")
                        if len(parts) == 2:
                            self.remember(parts[0], parts[1])
        except FileNotFoundError:
            pass

    def records(self) -> list[TaskRecord]:
        """Every task this stack knows it ran (see :meth:`remember`), after a fresh look."""
        if os.path.isdir(self.workdir):
            self._collect_records()
        return sorted(self._records.values(), key=lambda r: (r.namespace, r.id))

    def _cgroup_candidates(self, rec: TaskRecord) -> list[str]:
        # The bundle's cgroupsPath when it was seen; else the defaults of ctr (/<ns>/<id>) and
        # dockerd (/docker/<id>). A guess only matters for a task whose bundle is gone, i.e.
        # one containerd already deleted (killing its processes): then the cgroup is gone too.
        if rec.cgroups_path and rec.cgroups_path.startswith("/") and ":" not in rec.cgroups_path:
            return [rec.cgroups_path]
        cands = [f"/{rec.namespace}/{rec.id}"]
        if rec.namespace == "moby":
            cands.append(f"/docker/{rec.id}")
        return cands

    # -- teardown ---------------------------------------------------------------------------
    def delete_all(self) -> list[str]:
        """Through the API: kill and delete every task, then delete every container, in every namespace.

        Needs containerd running. Returns problems (one line each) instead of raising.
        """
        problems = []
        nss = self.ctr("namespaces", "ls", "-q", timeout=15)
        if nss.returncode != 0:
            return [f"ctr namespaces ls: {_last_line(nss.stderr)}"]
        for ns in nss.stdout.split():
            for tid in self.ctr("tasks", "ls", "-q", namespace=ns, timeout=15).stdout.split():
                r = self.ctr("tasks", "delete", "--force", tid, namespace=ns, timeout=30)
                if r.returncode != 0 and "not found" not in r.stderr:
                    problems.append(f"ctr -n {ns} tasks delete --force {tid}: {_last_line(r.stderr)}")
            for cid in self.ctr("containers", "ls", "-q", namespace=ns, timeout=15).stdout.split():
                r = self.ctr("containers", "delete", cid, namespace=ns, timeout=30)
                if r.returncode != 0 and "not found" not in r.stderr:
                    problems.append(f"ctr -n {ns} containers delete {cid}: {_last_line(r.stderr)}")
        return problems

    def force_cleanup(self) -> list[str]:
        """Without containerd: kill every task's processes (by cgroup) and shims; remove sockets and state.

        Call with containerd stopped (else it would react to the dying shims). Idempotent.
        """
        problems = []
        records = self.records()
        for rec in records:
            for rel in self._cgroup_candidates(rec):
                problems += cleanup.kill_cgroup(rel)
        problems += cleanup.kill_processes(self.shims())
        for rec in records:
            sock = self.shim_socket(rec.namespace, rec.id)
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"cannot remove shim socket {sock}: {e.strerror}")
            for root in {rec.runc_root or DEFAULT_RUNC_ROOT, DEFAULT_RUNC_ROOT}:
                state_dir = os.path.join(root, rec.namespace, rec.id)
                if not state_dir.startswith(self.workdir + "/") and _mentions(state_dir, self.workdir):
                    shutil.rmtree(state_dir, ignore_errors=True)
        return problems

    def close(self) -> None:
        """Remove everything: tasks, containers, containerd, shims, sockets, mounts, cgroups, workdir.

        Works after any fault: a stopped or killed containerd is started again so that it
        deletes its tasks through its own API (reconnecting to the shims), and whatever is
        left is then removed by force. Raises CapsizeError naming what could not be removed
        (after removing everything else). Calling it again does nothing.
        """
        if self._closed:
            return
        problems = self.teardown()
        problems += self.finish()
        if problems:
            raise CapsizeError("containerd stack close left: " + "; ".join(problems))

    def teardown(self) -> list[str]:
        """The first half of :meth:`close`: tasks and processes gone, containerd stopped."""
        problems: list[str] = []
        self._collect_records()
        if not self.running and os.path.isdir(self.workdir):
            try:
                self.start()
            except CapsizeError:
                pass  # the force cleanup below covers it; close() reports whatever is left then
        if self.running:
            self._collect_records()
            problems += self.delete_all()
            self.stop()
        problems += self.force_cleanup()
        return problems

    def finish(self) -> list[str]:
        """The second half of :meth:`close`: mounts, cgroup parents, /run/containerd dirs, workdir.

        Marks the stack closed; returns problems, :meth:`leftovers` included.
        """
        self._closed = True
        problems = cleanup.unmount_under(self.workdir)
        new_top = cleanup.top_cgroups() - self._cgroups_before
        for ns in {r.namespace for r in self._records.values()} & new_top:
            cleanup.remove_empty_cgroup_parent(ns)
        if not cleanup.find_processes(lambda argv, p: bool(argv) and "containerd-shim" in argv[0]):
            cleanup.remove_new_empty_dirs(cleanup.new_entries(self._run_before, "/run/containerd", 3))
        shutil.rmtree(self.workdir, ignore_errors=True)
        if os.path.lexists(self.workdir):
            problems.append(f"cannot remove {self.workdir}")
        return problems + self.leftovers()

    def leftovers(self) -> list[str]:
        """What of this stack still exists on the host, one line each (empty after a clean close)."""
        found = []
        if self.running:
            found.append(f"containerd pid {self._proc.pid}")
        found += [f"shim pid {p.pid}" for p in self.shims()]
        found += [f"process {p.pid}: {' '.join(p.info['cmdline'])[:120]}"
                  for p in cleanup.find_processes(lambda argv, p: p.pid != os.getpid()
                                                  and any(self.workdir + "/" in a or a == self.workdir
                                                          for a in argv))
                  if not self.running or p.pid != self._proc.pid]
        found += [f"mount {m}" for m in cleanup.mounts_under(self.workdir)]
        for rec in self._records.values():
            sock = self.shim_socket(rec.namespace, rec.id)
            if os.path.lexists(sock):
                found.append(f"shim socket {sock} ({rec.namespace}/{rec.id})")
            for rel in self._cgroup_candidates(rec):
                found += [f"cgroup {d}" for d in cleanup.cgroup_dirs(rel)]
        if os.path.lexists(self.workdir):
            found.append(f"directory {self.workdir}")
        return sorted(set(found))


# -- helpers --------------------------------------------------------------------------------------

def last_error_line(log_path: str) -> str:
    """The last error/fatal line of a logrus log (its msg and error), else its last line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()[-200:]
    except FileNotFoundError:
        return "no log"
    for line in reversed(lines):
        if "level=fatal" in line or "level=error" in line or line.startswith("failed"):
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else "empty log"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def _ctr_error(args, stderr: str) -> CapsizeError:
    msg = f"ctr {' '.join(args[:3])}: {_last_line(stderr)}"
    low = stderr.lower()
    if "not found" in low:
        return NotFound(msg)
    if "already exists" in low:
        return AlreadyExists(msg)
    if "connection refused" in low or "no such file" in low or "unavailable" in low:
        return Unavailable(msg)
    return CapsizeError(msg)


def _arg_after(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == flag or a == "-" + flag:
            return argv[i + 1]
    for a in argv:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _mentions(state_dir: str, text: str) -> bool:
    """True when a regular file in runtime state dir *state_dir* mentions *text* (its bundle path).

    Only regular files are read: runc's state dir holds ``exec.fifo`` while a container is
    created but not started, and opening that FIFO blocks until its init opens the other end,
    forever if the init is gone (and starts the container if it is not)."""
    import stat
    for name in _listdir(state_dir):
        path = os.path.join(state_dir, name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            with open(path, errors="replace") as f:
                if text in f.read(1 << 20):
                    return True
        except OSError:
            continue
    return False
