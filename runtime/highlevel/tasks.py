"""Tasks: one running (or stopped) container per container record, each served by its own shim.

Create, as containerd's runtime v2 task manager does it: make the task directory
``<state>/runtimed/tasks/<namespace>/<id>/``, record the task (``runtimed.json``, written
atomically), mount the container's active snapshot at ``rootfs/``, write ``config.json`` (the
container's spec with ``root.path = "rootfs"`` and, unless it names one, ``linux.cgroupsPath =
<cgroup parent>/<id>``), run ``capsize-shim start`` (detached: the shim
outlives this daemon), connect to the shim and call ``create``. Any failure undoes every step.
Start, kill, pause, resume and pids are the shim's methods; delete calls the shim's ``delete``
and ``shutdown``, waits for the shim to exit, unmounts the rootfs and removes the directory.

Status: ``creating``, ``created``, ``running``, ``paused``, ``stopped``, ``deleting``, or
``unknown`` (the shim does not answer). It moves on the shim's replies and events, forward only
(``paused`` <-> ``running`` excepted), through ``Task.move`` and the table
:data:`runtime.api.states.RUNTIMED`.

Events: the shim publishes ``/tasks/create``, ``/tasks/start``, ``/tasks/paused``,
``/tasks/resumed``, ``/tasks/oom``, ``/tasks/exit`` and ``/tasks/delete`` to the daemon's
events socket; :meth:`TaskManager.handle_shim_event` relays them to the bus, in the shim's
order, dropping repeats (by the shim's pid and ``seq``), events of any other shim than the task's
(the sender's pid, SO_PEERCRED) and anything but ``/tasks/delete`` after the task's exit was
published (runtime v2's order: create, start, exit, delete). Every
``/tasks/exit`` carries ``exit_source`` (:mod:`runtime.api.exits`): ``shim`` (reported by the
live shim), ``exit-file`` (recovered by the shim's ``delete`` action from the exit file the shim
wrote: the real status), ``cleanup-kill`` (137: the shim was dead, the init alive, and the
clean-up's ``delete --force`` killed it) or ``unknown`` (255, made up: the init exited while its
shim was dead, or the clean-up itself failed); a made-up one also carries ``exit_reason``. Where
containerd's ``cleanupAfterDeadShim`` reports 137 for all of these, capsize tells them apart. Whether the exit was published
is recorded in ``runtimed.json``, so a restart does not publish it twice.

A shim that goes away (its connection closes without a ``shutdown``) is cleaned up: log
``shim disconnected``, ``cleaning up after shim disconnected``, run ``capsize-shim delete``
(``cleaning up dead shim``: the low-level runtime's ``delete --force``, the rootfs unmounted),
publish ``/tasks/exit`` (unless already published) and ``/tasks/delete``, remove the directory
and forget the task. The container stays. Recovery (:mod:`runtime.highlevel.recovery`) does
the same for shims found dead at start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time

from runtime.api import failpoints
from runtime.api import exits, topics
from runtime.api.states import RUNTIMED
from runtime.errors import (AlreadyExists, CapsizeError, DeadlineExceeded, FailedPrecondition,
                            InvalidArgument, NotFound, Unavailable, error_for_exit_code)
from runtime.highlevel.fsutil import read_json, write_json_atomic
from runtime.highlevel.shimconn import ShimConnection
from runtime.rfc3339 import format_nano
from runtime.runtimes import capsize_command
from runtime.shim import paths as shim_paths

RECORD = "runtimed.json"


def _unknown_exit(task, reason: str) -> dict:
    """A made-up exit (255, ``unknown``) for *task*, saying why, as the delete action prints one."""
    return {"pid": task.pid, "exit_status": exits.UNKNOWN_STATUS, "exited_at": format_nano(),
            "source": exits.UNKNOWN, "reason": reason}

#: Seconds allowed for ``capsize-shim start`` and for the shim's create/start/delete.
SHIM_START_TIMEOUT = 20.0
LONG_CALL_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
#: Seconds a shim has to exit after ``shutdown`` before it is killed.
SHUTDOWN_TIMEOUT = 3.0


def shim_binary() -> str:
    """capsize-shim's path (:func:`runtime.runtimes.capsize_command`); NotFound if missing."""
    found = capsize_command("capsize-shim")
    if not found:
        raise NotFound("capsize-shim not found (next to this Python or on PATH)")
    return found


class Task:
    """What the daemon knows about one task (see the module docstring)."""

    def __init__(self, namespace: str, task_id: str, directory: str):
        self.namespace, self.id, self.dir = namespace, task_id, directory
        self.status = RUNTIMED.initial
        self.pid = 0
        self.shim_pid = 0
        self.shim_address = ""
        self.runtime = ""
        self.runtime_name = ""
        self.log_path = ""
        self.cgroups_path = ""
        self.created_at = format_nano()
        self.exit_status: int | None = None
        self.exited_at: str | None = None
        self.exit_source: str | None = None
        self.exit_reason: str | None = None
        self.exit_published = False
        self.delete_published = False
        self.conn: ShimConnection | None = None
        self.exited = asyncio.Event()
        self.ready = asyncio.Event()   # loaded (recovery) or created: events may be applied
        self.lock = asyncio.Lock()     # create/start/pause/resume/delete, one at a time
        self.last_seq: dict[int, int] = {}
        self.expect_close = False      # a shutdown was asked for: the connection closing is no failure
        self.gone = False              # deleted or cleaned up: forgotten
        self.execs: dict[str, dict] = {}   # exec id -> the Exec view (runtime.highlevel: Exec)

    def move(self, status: str) -> None:
        """The one way the status changes (:data:`runtime.api.states.RUNTIMED`); FailedPrecondition
        naming both states when the table forbids it."""
        RUNTIMED.move(self, status, what=f"task {self.id}", id=self.id)

    def advance(self, status: str) -> None:
        """Move to *status* unless that would go back (``paused`` <-> ``running`` is allowed)."""
        if RUNTIMED.can(self.status, status):
            self.move(status)

    def exit_info(self) -> dict:
        return {"pid": self.pid, "exit_status": self.exit_status, "exited_at": self.exited_at,
                "exit_source": self.exit_source, "exit_reason": self.exit_reason}

    def view(self) -> dict:
        return {"id": self.id, "container_id": self.id, "namespace": self.namespace, "pid": self.pid,
                "status": self.status, "exit_status": self.exit_status, "exited_at": self.exited_at,
                "exit_source": self.exit_source, "exit_reason": self.exit_reason, "shim_pid": self.shim_pid, "shim_address": self.shim_address,
                "runtime": self.runtime, "bundle": self.dir, "log_path": self.log_path,
                "created_at": self.created_at}

    def record(self) -> dict:
        return {"id": self.id, "namespace": self.namespace, "runtime": self.runtime,
                "runtime_name": self.runtime_name, "log_path": self.log_path, "created_at": self.created_at,
                "cgroups_path": self.cgroups_path, "exit_published": self.exit_published, "execs": self.execs}

    def load_record(self, rec: dict) -> None:
        self.runtime = rec.get("runtime") or ""
        self.runtime_name = rec.get("runtime_name") or ""
        self.log_path = rec.get("log_path") or ""
        self.created_at = rec.get("created_at") or self.created_at
        self.cgroups_path = rec.get("cgroups_path") or ""
        self.exit_published = bool(rec.get("exit_published"))
        execs = rec.get("execs")
        if isinstance(execs, dict):
            self.execs = {k: v for k, v in execs.items() if isinstance(v, dict) and v.get("exec_id") == k}

    def save_record(self) -> None:
        write_json_atomic(os.path.join(self.dir, RECORD), self.record())
        failpoints.hit("runtimed.task.record.after-write")


class TaskManager:
    """All tasks of all namespaces, keyed by (namespace, id)."""

    def __init__(self, layout, metadata, snapshotter, bus, log, spawn_mode: str = "template",
                 socket_dir: str | None = None, cgroup_parent: str = "/capsize"):
        self.layout, self.md, self.snapshots, self.bus, self.log = layout, metadata, snapshotter, bus, log
        self.spawn_mode, self.socket_dir, self.cgroup_parent = spawn_mode, socket_dir, cgroup_parent
        self.tasks: dict[tuple[str, str], Task] = {}
        self.recovered = asyncio.Event()
        self.closing = False
        self._cleanup_slots = asyncio.Semaphore(4)
        self._background: set[asyncio.Task] = set()

    # -- lookup ------------------------------------------------------------------------------
    def find(self, namespace: str, task_id: str) -> Task | None:
        task = self.tasks.get((namespace, task_id))
        return None if task is None or task.gone else task

    def get(self, namespace: str, task_id: str) -> Task:
        task = self.find(namespace, task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} not found in namespace {namespace}", namespace=namespace, id=task_id)
        return task

    def list(self, namespace: str) -> list[dict]:
        return [t.view() for (ns, _), t in sorted(self.tasks.items()) if ns == namespace and not t.gone]

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    # -- create ------------------------------------------------------------------------------
    async def create(self, namespace: str, task_id: str, log_path: str | None = None,
                     stdin: str | None = None) -> dict:
        """*stdin*: a FIFO the init reads as its stdin (the shim opens it for reading; default /dev/null)."""
        from runtime.highlevel.containers import resolve_runtime
        container = self.md.get_container(namespace, task_id)
        if log_path is not None and (not isinstance(log_path, str) or not os.path.isabs(log_path)):
            raise InvalidArgument(f"log_path must be an absolute path, not {log_path!r}", field="log_path")
        if stdin is not None and (not isinstance(stdin, str) or not os.path.isabs(stdin)):
            raise InvalidArgument(f"stdin must be an absolute path, not {stdin!r}", field="stdin")
        if self.find(namespace, task_id) is not None:
            raise AlreadyExists(f"task {task_id!r} already exists in namespace {namespace}",
                                namespace=namespace, id=task_id)
        spec = json.loads(json.dumps(container["spec"]))
        linux = spec.setdefault("linux", {})
        cgroups = linux.get("cgroupsPath") or f"{self.cgroup_parent.rstrip('/')}/{task_id}"
        linux["cgroupsPath"] = cgroups
        for other in self.tasks.values():
            if not other.gone and other.cgroups_path == cgroups and (other.namespace, other.id) != (namespace, task_id):
                raise FailedPrecondition(f"cgroup {cgroups} is in use by task {other.namespace}/{other.id}",
                                         cgroups_path=cgroups)
        runtime = resolve_runtime(container["runtime"])
        task = Task(namespace, task_id, self.layout.task_dir(namespace, task_id))
        task.runtime, task.runtime_name, task.cgroups_path = runtime, container["runtime"], cgroups
        task.log_path = log_path or os.path.join(task.dir, shim_paths.CONTAINER_LOG)
        self.tasks[(namespace, task_id)] = task
        async with task.lock:
            made_dir = False
            try:
                os.makedirs(os.path.dirname(task.dir), mode=0o711, exist_ok=True)
                try:
                    os.mkdir(task.dir, 0o711)
                except FileExistsError:
                    raise FailedPrecondition(f"task directory {task.dir} exists (left by a crash?)",
                                             id=task_id) from None
                made_dir = True
                task.save_record()
                failpoints.hit("runtimed.task.create.after-task-dir")
                rootfs = os.path.join(task.dir, "rootfs")
                os.mkdir(rootfs, 0o755)
                self.snapshots.mount(namespace, container["snapshot_key"], rootfs)
                failpoints.hit("runtimed.task.create.after-snapshot-mount")
                root = spec.get("root") if isinstance(spec.get("root"), dict) else {}
                spec["root"] = {"path": "rootfs", "readonly": bool(root.get("readonly", False))}
                write_json_atomic(os.path.join(task.dir, shim_paths.CONFIG), spec)
                failpoints.hit("runtimed.task.create.after-bundle-write")
                t_shim = time.monotonic()
                failpoints.hit("runtimed.task.create.before-shim-start")
                task.shim_address = await self._shim_start(task)
                failpoints.hit("runtimed.task.create.after-shim-start")
                t_create = time.monotonic()
                task.conn = await ShimConnection.connect(task.shim_address)
                info = await task.conn.call("connect", timeout=CALL_TIMEOUT)
                task.shim_pid = int(info.get("shim_pid") or 0)
                task.ready.set()
                params = {"log_path": log_path} if log_path else {}
                if stdin:
                    params["stdin"] = stdin
                reply = await task.conn.call("create", timeout=LONG_CALL_TIMEOUT, **params)
                task.pid = int(reply.get("pid") or 0)
                t_done = time.monotonic()
                task.advance("created")
                self._watch(task)
            except BaseException as e:
                self.log.warning("task create failed, undoing it", id=task_id, namespace=namespace,
                                 error=getattr(e, "message", repr(e)))
                await self._undo_create(task, made_dir)
                raise
        self.log.info("task created", id=task_id, namespace=namespace, pid=task.pid, shim_pid=task.shim_pid,
                      runtime=task.runtime, shim_start_ms=round((t_create - t_shim) * 1000, 1),
                      create_ms=round((t_done - t_create) * 1000, 1))
        return task.view()

    async def _shim_start(self, task: Task) -> str:
        argv = [shim_binary(), "start", "--id", task.id, "--namespace", task.namespace, "--bundle", task.dir,
                "--address", self.layout.events_address, "--runtime", task.runtime,
                "--runtime-root", self.layout.runtime_root(task.namespace), "--spawn", self.spawn_mode]
        if self.socket_dir:
            argv += ["--socket-dir", self.socket_dir]
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), SHIM_START_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise DeadlineExceeded(f"capsize-shim start for {task.namespace}/{task.id} did not finish "
                                   f"within {SHIM_START_TIMEOUT:g}s") from None
        text = err.decode(errors="replace").strip()
        for line in text.splitlines():
            if "warning" in line:
                self.log.warning("shim start", id=task.id, namespace=task.namespace, message=line)
        if proc.returncode != 0:
            message = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
            message = message.removeprefix("capsize-shim: ")
            raise error_for_exit_code(proc.returncode, f"cannot start shim: {message}", id=task.id)
        return out.decode().strip().splitlines()[-1]

    async def _undo_create(self, task: Task, made_dir: bool) -> None:
        """Undo a failed create; a task directory this create did not make is left alone."""
        task.expect_close = True
        if made_dir:
            try:
                await self._stop_shim(task)
            except Exception as e:  # noqa: BLE001 - undo as much as possible
                self.log.error("cannot stop the shim of a failed create", id=task.id, error=repr(e))
            self._remove_dir(task)
        task.gone = True
        if self.tasks.get((task.namespace, task.id)) is task:
            del self.tasks[(task.namespace, task.id)]

    async def _stop_shim(self, task: Task) -> None:
        """Make a live shim delete its task (killed if needed) and exit; kill it if it will not."""
        conn = task.conn
        if conn is None and task.shim_address:
            try:
                conn = task.conn = await ShimConnection.connect(task.shim_address, timeout=2)
            except CapsizeError:
                conn = None
        if conn is not None and not conn.is_closed:
            try:
                state = await conn.call("state", timeout=5)
                if state.get("status") in ("created", "running", "paused"):
                    if state.get("status") != "created":
                        try:
                            await conn.call("kill", timeout=5, signal=9, all=True)
                        except NotFound:
                            pass
                        for _ in range(50):
                            if (await conn.call("state", timeout=5)).get("status") == "stopped":
                                break
                            await asyncio.sleep(0.1)
                if state.get("status") not in ("unknown",):
                    await conn.call("delete", timeout=LONG_CALL_TIMEOUT)
            except NotFound:
                pass  # no task in the shim (create failed or never ran)
            except CapsizeError as e:
                self.log.warning("cannot delete the task in its shim", id=task.id, error=e.message)
            try:
                await conn.call("shutdown", timeout=5)
            except CapsizeError:
                pass
            if await conn.wait_closed(SHUTDOWN_TIMEOUT):
                self._remove_dead_shim_socket(task)
                return
        pid = self._kill_shim(task)
        for _ in range(100):
            if not pid or not self._shim_pid_from_dir(task):
                break
            await asyncio.sleep(0.02)
        if task.shim_address or os.path.exists(os.path.join(task.dir, shim_paths.SHIM_PID)):
            await self._delete_action(task, readopt=False)

    def _remove_dead_shim_socket(self, task: Task) -> None:
        """A shim that died during its shutdown (crash point shim.shutdown.*) leaves its socket in
        the shared socket dir; remove it once no shim of the task lives (a live one removes its own)."""
        if not task.shim_address or self._shim_pid_from_dir(task):
            return
        try:
            os.unlink(shim_paths.path_of(task.shim_address))
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warning("cannot remove a dead shim's socket", id=task.id, error=str(e))

    def _shim_pid_from_dir(self, task: Task) -> int:
        """The live shim's pid from ``shim.pid``, checked by its working directory (not a reused pid)."""
        try:
            with open(os.path.join(task.dir, shim_paths.SHIM_PID)) as f:
                pid = int(f.read().strip())
            if os.readlink(f"/proc/{pid}/cwd") != os.path.realpath(task.dir):
                return 0
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return 0
            return pid
        except (OSError, ValueError, IndexError):
            return 0

    def _kill_shim(self, task: Task) -> int:
        """SIGKILL the task's shim (found through ``shim.pid``); returns its pid, 0 if none lives."""
        pid = self._shim_pid_from_dir(task)
        if pid:
            self.log.warning("killing unresponsive shim", id=task.id, namespace=task.namespace, shim_pid=pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pid

    def _remove_dir(self, task: Task) -> None:
        """Unmount the task's rootfs and remove its directory (kept if the rootfs stays mounted)."""
        rootfs = os.path.join(task.dir, "rootfs")
        failpoints.hit("runtimed.task.delete.before-rootfs-unmount")
        try:
            self.snapshots.unmount(rootfs)
        except OSError as e:
            self.log.error("cannot unmount task rootfs", id=task.id, path=rootfs, error=str(e))
            return
        from runtime.mountinfo import is_mount_point
        if os.path.isdir(rootfs) and is_mount_point(rootfs):
            self.log.error("task rootfs still mounted: directory kept", id=task.id, path=rootfs)
            return
        shutil.rmtree(task.dir, ignore_errors=True)
        failpoints.hit("runtimed.task.delete.after-task-dir-remove")

    # -- the shim's connection ---------------------------------------------------------------
    def _watch(self, task: Task) -> None:
        conn = task.conn

        def closed(_fut):
            if conn is not task.conn or conn.closed_by_us or task.expect_close or task.gone or self.closing:
                return
            self.log.info("shim disconnected", id=task.id, namespace=task.namespace, shim_pid=task.shim_pid)
            self._spawn(self.cleanup_dead_shim(task))
        conn.closed.add_done_callback(closed)

    async def cleanup_dead_shim(self, task: Task) -> None:
        """Clean up after a shim that is gone (see the module docstring)."""
        async with task.lock:
            if task.gone:
                return
            task.move("deleting")
            self.log.warning("cleaning up after shim disconnected", id=task.id, namespace=task.namespace)
            alive = self._execs_alive(task)
            result = await self._delete_action(task)
            if result is None:
                return  # the shim turned out to be alive: adopted again
            self._finish_execs(task, alive)
            self._on_exit(task, result["pid"], result["exit_status"], result["exited_at"], result["source"],
                          reason=result.get("reason"))
            self._publish_delete(task)
            self._remove_dir(task)
            self._forget(task)
            self.log.info("dead shim cleaned up", id=task.id, namespace=task.namespace,
                          exit_status=task.exit_status, exit_source=task.exit_source)

    async def _delete_action(self, task: Task, readopt: bool = True) -> dict | None:
        """``capsize-shim delete`` for a dead shim: ``{"pid", "exit_status", "exited_at", "source",
        "reason"}`` (255/``unknown`` when the action fails); None when the shim is alive after all and was
        adopted again (with *readopt*)."""
        self.log.info("cleaning up dead shim", id=task.id, namespace=task.namespace)
        argv = [shim_binary(), "delete", "--id", task.id, "--namespace", task.namespace, "--bundle", task.dir]
        if task.runtime:
            argv += ["--runtime", task.runtime]
        argv += ["--runtime-root", self.layout.runtime_root(task.namespace)]
        async with self._cleanup_slots:
            try:
                proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                            stdout=asyncio.subprocess.PIPE,
                                                            stderr=asyncio.subprocess.PIPE)
                out, err = await asyncio.wait_for(proc.communicate(), 30)
            except (OSError, asyncio.TimeoutError) as e:
                self.log.error("failed to clean up after shim disconnected", id=task.id, error=repr(e))
                return _unknown_exit(task, f"the clean-up of the dead shim failed: {e!r}")
        text = err.decode(errors="replace").strip()
        warnings = [line.split("warning: ", 1)[-1] for line in text.splitlines() if "warning" in line]
        if warnings:
            self.log.warning("cleanup warnings", id=task.id, namespace=task.namespace, warnings=warnings)
        if proc.returncode == FailedPrecondition.exit_code and readopt and await self._readopt(task):
            return None
        try:
            result = json.loads(out.decode().strip().splitlines()[-1])
            source = result.get("source")
            if source not in exits.EXIT_SOURCES:
                return _unknown_exit(task, f"the clean-up reported an unknown source {source!r}")
            return {"pid": int(result.get("pid") or task.pid), "exit_status": int(result["exit_status"]),
                    "exited_at": result.get("exited_at") or format_nano(), "source": source,
                    "reason": result.get("reason")}
        except (ValueError, KeyError, IndexError, TypeError):
            self.log.warning("failed to clean up after shim disconnected", id=task.id, namespace=task.namespace,
                             error=text.splitlines()[-1] if text else f"exit status {proc.returncode}")
            return _unknown_exit(task, "the clean-up of the dead shim failed: "
                                 + (text.splitlines()[-1] if text else f"exit status {proc.returncode}"))

    async def _readopt(self, task: Task) -> bool:
        """The delete action found the shim alive: connect to it again."""
        try:
            await self.adopt(task, task.shim_address or _read(os.path.join(task.dir, shim_paths.ADDRESS)),
                             timeout=3)
            return True
        except CapsizeError:
            return False

    async def adopt(self, task: Task, address: str, timeout: float) -> None:
        """Connect to a live shim and take its task's state (raises Unavailable if it is dead)."""
        task.shim_address = address
        conn = await ShimConnection.connect(address, timeout=min(timeout, 2.0))
        try:
            state = await conn.call("state", timeout=timeout)
        except BaseException:
            conn.close()
            raise
        task.conn = conn
        task.shim_pid = self._shim_pid_from_dir(task) or task.shim_pid
        task.pid = int(state.get("pid") or 0)
        status = state.get("status") or "unknown"
        if task.status == "deleting":   # a shim taken for dead answered: adopted again
            task.move("unknown")
        task.move(status)
        if state.get("log_path"):
            task.log_path = state["log_path"]
        if status == "stopped":
            self._on_exit(task, task.pid, state.get("exit_status"), state.get("exited_at"), "shim")
        task.ready.set()
        self._watch(task)

    def _forget(self, task: Task) -> None:
        task.gone = True
        task.exited.set()
        task.ready.set()
        if task.conn is not None:
            task.conn.close()
        if self.tasks.get((task.namespace, task.id)) is task:
            del self.tasks[(task.namespace, task.id)]

    # -- exits and events --------------------------------------------------------------------
    def _on_exit(self, task: Task, pid, exit_status, exited_at, source: str, timestamp: str | None = None,
                 reason: str | None = None) -> None:
        """Record and publish the task's exit once; *source* is an ``exit_source``
        (:data:`runtime.api.exits.EXIT_SOURCES`), *reason* why a made-up status is made up."""
        known = isinstance(exit_status, int)
        if not known:
            exit_status, source = exits.UNKNOWN_STATUS, exits.UNKNOWN
            reason = reason or "the shim reported the exit without a status"
        if exits.provenance(source) == exits.REAL:
            reason = None
        if task.exit_published:
            if task.exit_status is None and known:
                task.exit_status, task.exited_at, task.exit_source, task.exit_reason = \
                    exit_status, exited_at, source, reason
            task.exited.set()
            return
        task.pid = int(pid or task.pid or 0)
        task.exit_status = int(exit_status)
        task.exited_at = exited_at or format_nano()
        task.exit_source = source
        task.exit_reason = reason
        task.exit_published = True
        if task.status != "deleting":
            task.move("stopped")
        self.bus.publish(topics.TASK_EXIT, task.namespace,
                         topics.task_exit(task.id, task.pid, task.exit_status, task.exited_at, source, reason),
                         timestamp)
        self.log.info("task exited", id=task.id, namespace=task.namespace, pid=task.pid,
                      exit_status=task.exit_status, exit_source=source)
        try:
            task.save_record()
        except OSError:
            pass  # the directory may be going away (a cleanup)
        task.exited.set()

    def _publish_delete(self, task: Task, timestamp: str | None = None) -> None:
        if task.delete_published:
            return
        task.delete_published = True
        self.bus.publish(topics.TASK_DELETE, task.namespace,
                         topics.task_exit(task.id, task.pid, task.exit_status, task.exited_at,
                                          task.exit_source, task.exit_reason), timestamp)

    async def handle_shim_event(self, msg: dict, shim_pid: int) -> None:
        """Apply and relay one event a shim sent (see the module docstring)."""
        await self.recovered.wait()
        topic, namespace = msg.get("topic"), msg.get("namespace") or "default"
        event = msg.get("event") if isinstance(msg.get("event"), dict) else {}
        task = self.tasks.get((namespace, event.get("container_id")))
        if task is None or task.gone:
            self.log.debug("event for an unknown task dropped", topic=topic, namespace=namespace,
                           id=event.get("container_id"))
            return
        await task.ready.wait()
        if shim_pid and task.shim_pid and shim_pid != task.shim_pid:
            self.log.debug("event from a previous shim dropped", topic=topic, id=task.id, shim_pid=shim_pid)
            return
        seq = msg.get("seq")
        if isinstance(seq, int) and shim_pid:
            if seq <= task.last_seq.get(shim_pid, 0):
                return
            task.last_seq[shim_pid] = seq
        ts = msg.get("timestamp")
        if topic in (topics.TASK_EXEC_ADDED, topics.TASK_EXEC_STARTED) or (
                topic == topics.TASK_EXIT and topics.is_exec_exit(event)):
            self._on_exec_event(task, topic, event, ts)
            return
        if topic == topics.TASK_EXIT:
            self._on_exit(task, event.get("pid"), event.get("exit_status"), event.get("exited_at"), "shim", ts)
            return
        if topic == topics.TASK_DELETE:
            if task.exit_status is None and isinstance(event.get("exit_status"), int):
                self._on_exit(task, event.get("pid"), event["exit_status"], event.get("exited_at"), "shim", ts)
            self._publish_delete(task, ts)
            return
        if task.exit_published:
            self.log.debug("stale event after exit dropped", topic=topic, id=task.id)
            return
        if topic == topics.TASK_CREATE:
            task.pid = int(event.get("pid") or task.pid)
            task.advance("created")
        elif topic == topics.TASK_START:
            task.advance("running")
        elif topic == topics.TASK_PAUSED:
            if task.status == "running":
                task.move("paused")
        elif topic == topics.TASK_RESUMED:
            if task.status == "paused":
                task.move("running")
        self.bus.publish(topic, namespace, event, ts)

    # -- operations --------------------------------------------------------------------------
    def _live(self, task: Task) -> ShimConnection:
        if task.status == "creating":
            raise FailedPrecondition(f"task {task.id} is being created", id=task.id, status=task.status)
        if task.status == "deleting":
            raise FailedPrecondition(f"task {task.id} is being deleted", id=task.id, status=task.status)
        if task.conn is None or task.conn.is_closed or task.status == "unknown":
            raise Unavailable(f"the shim of task {task.id} is not responding", id=task.id)
        return task.conn

    async def start(self, namespace: str, task_id: str) -> dict:
        task = self.get(namespace, task_id)
        async with task.lock:
            conn = self._live(task)
            if task.status != "created":
                raise FailedPrecondition(f"task {task_id} is {task.status}: only a created task starts",
                                         id=task_id, status=task.status)
            reply = await conn.call("start", timeout=LONG_CALL_TIMEOUT)
            task.advance("running")
            return {"pid": int(reply.get("pid") or task.pid)}

    async def kill(self, namespace: str, task_id: str, sig=signal.SIGTERM, all_processes: bool = False) -> dict:
        task = self.get(namespace, task_id)
        conn = self._live(task)
        if task.status == "stopped":
            raise NotFound(f"process already finished: task {task_id}", id=task_id)
        await conn.call("kill", timeout=CALL_TIMEOUT, signal=sig, all=bool(all_processes))
        return {}

    async def pause(self, namespace: str, task_id: str) -> dict:
        return await self._freeze(namespace, task_id, "pause", "running", "paused")

    async def resume(self, namespace: str, task_id: str) -> dict:
        return await self._freeze(namespace, task_id, "resume", "paused", "running")

    async def _freeze(self, namespace: str, task_id: str, method: str, want: str, becomes: str) -> dict:
        task = self.get(namespace, task_id)
        async with task.lock:
            conn = self._live(task)
            if task.status != want:
                raise FailedPrecondition(f"task {task_id} is {task.status}: {method} needs a {want} task",
                                         id=task_id, status=task.status)
            await conn.call(method, timeout=LONG_CALL_TIMEOUT)
            if task.status == want:
                task.move(becomes)
        return {}

    async def update(self, namespace: str, task_id: str, resources) -> dict:
        """Apply OCI ``linux.resources`` *resources* to a created, running or paused task's cgroup
        (the shim's ``update``, the low-level runtime's ``update``: containerd's Tasks.Update);
        the container's spec keeps them for its next task."""
        if not isinstance(resources, dict):
            raise InvalidArgument("resources must be an OCI linux.resources object", field="resources")
        task = self.get(namespace, task_id)
        async with task.lock:
            conn = self._live(task)
            if task.status not in ("created", "running", "paused"):
                raise FailedPrecondition(f"task {task_id} is {task.status}: update needs a live task",
                                         id=task_id, status=task.status)
            await conn.call("update", timeout=CALL_TIMEOUT, resources=resources)
            self._keep_resources(namespace, task_id, resources)
        self.log.info("task updated", id=task_id, namespace=namespace, resources=sorted(resources))
        return {}

    def _keep_resources(self, namespace: str, task_id: str, resources: dict) -> None:
        """The container's spec takes the updated ``linux.resources`` (section by section), so that
        its next task starts with them, as dockerd's next start regenerates its spec."""
        try:
            container = self.md.get_container(namespace, task_id)
        except NotFound:
            return
        spec = container["spec"]
        current = spec.setdefault("linux", {}).setdefault("resources", {})
        for section, value in resources.items():
            if isinstance(value, dict) and isinstance(current.get(section), dict):
                current[section].update(value)
            else:
                current[section] = value
        self.md.update_container(namespace, task_id, spec=spec)

    async def pids(self, namespace: str, task_id: str) -> dict:
        task = self.get(namespace, task_id)
        reply = await self._live(task).call("pids", timeout=CALL_TIMEOUT)
        return {"pids": reply.get("pids") or []}

    # -- exec processes ----------------------------------------------------------------------
    def _on_exec_event(self, task: Task, topic: str, event: dict, timestamp) -> None:
        """An exec process's event: recorded in ``task.execs`` and relayed; never the init's exit."""
        exec_id = event.get("exec_id") or event.get("id")
        if not isinstance(exec_id, str):
            return
        if topic == topics.TASK_EXIT and "exit_source" not in event:
            event = dict(event, exit_source=exits.SHIM)   # reported by the live shim: real
        if topic == topics.TASK_EXEC_ADDED:   # relayed only: a failed start leaves no record
            self.bus.publish(topic, task.namespace, event, timestamp)
            return
        ex = task.execs.setdefault(exec_id, {"id": task.id, "exec_id": exec_id, "pid": 0, "status": "created",
                                              "exit_status": None, "exited_at": None})
        if topic == topics.TASK_EXEC_STARTED:
            ex["pid"] = int(event.get("pid") or ex["pid"])
            if ex["status"] == "created":
                ex["status"] = "running"
        elif topic == topics.TASK_EXIT:
            if ex["status"] == "stopped":
                return   # a repeat
            ex.update(status="stopped", pid=int(event.get("pid") or ex["pid"]),
                      exit_status=event.get("exit_status"), exited_at=event.get("exited_at"),
                      exit_source=event.get("exit_source"), exit_reason=event.get("exit_reason"))
            self.log.info("exec exited", id=task.id, exec_id=exec_id, pid=ex["pid"],
                          exit_status=ex["exit_status"])
        self._save_quietly(task)
        self.bus.publish(topic, task.namespace, event, timestamp)

    async def exec_process(self, namespace: str, task_id: str, exec_id: str, process: dict,
                           stdin: str | None = None, stdout: str | None = None, stderr: str | None = None) -> dict:
        """Run *process* (an OCI process) in the running task as exec *exec_id* (the shim's
        ``exec``); the ``Exec`` view. FailedPrecondition unless the task is running."""
        task = self.get(namespace, task_id)
        conn = self._live(task)
        if task.status != "running":
            raise FailedPrecondition(f"task {task_id} is {task.status}: exec needs a running task",
                                     id=task_id, status=task.status)
        if not isinstance(process, dict):
            raise InvalidArgument("process must be an OCI process object", field="process")
        params = {"exec_id": exec_id, "process": process}
        params.update({k: v for k, v in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)) if v})
        reply = await conn.call("exec", timeout=LONG_CALL_TIMEOUT, **params)
        ex = task.execs.setdefault(exec_id, {"id": task.id, "exec_id": exec_id, "pid": 0, "status": "created",
                                              "exit_status": None, "exited_at": None})
        ex["pid"] = int(reply.get("pid") or ex["pid"])
        if ex["status"] == "created":
            ex["status"] = "running"
        self._save_quietly(task)
        return dict(ex)

    def _save_quietly(self, task: Task) -> None:
        """``runtimed.json`` with the exec records, so that a restart still knows them."""
        try:
            task.save_record()
        except OSError as e:
            self.log.warning("cannot save the task record", id=task.id, error=str(e))

    def _execs_alive(self, task: Task) -> set[str]:
        """Ids of the task's unfinished execs whose process still lives in the task's cgroup (the
        dead-shim clean-up is about to kill whatever lives there)."""
        alive = set()
        for exec_id, ex in task.execs.items():
            pid = int(ex.get("pid") or 0)
            if ex.get("status") == "stopped" or pid <= 0:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/cgroup") as f:
                    if task.cgroups_path and task.cgroups_path not in f.read():
                        continue
            except (OSError, IndexError):
                continue
            alive.add(exec_id)
        return alive

    def _finish_execs(self, task: Task, alive: set[str]) -> None:
        """After a dead shim's clean-up: every exec without a recorded exit gets one, published as
        its ``/tasks/exit``: the exit file the shim wrote (real), else 137 ``cleanup-kill`` when
        its process was alive before the clean-up killed the cgroup, else 255 ``unknown``."""
        from runtime.shim import exitfile
        from runtime.shim.execs import EXECS_DIR
        for exec_id, ex in task.execs.items():
            if ex.get("status") == "stopped":
                continue
            found = exitfile.read(os.path.join(task.dir, EXECS_DIR, exec_id))
            if found is not None:
                status, at, source, reason = found["exit_status"], found.get("exited_at"), exits.EXIT_FILE, None
            elif exec_id in alive:
                status, at, source, reason = (exits.CLEANUP_KILL_STATUS, format_nano(), exits.CLEANUP_KILL,
                                              "the exec's shim was dead and the clean-up killed the exec process")
            else:
                status, at, source, reason = (exits.UNKNOWN_STATUS, format_nano(), exits.UNKNOWN,
                                              "the exec process ended while its shim was dead: nothing recorded "
                                              "its status")
            ex.update(status="stopped", exit_status=status, exited_at=at, exit_source=source, exit_reason=reason)
            event = topics.task_exit(task.id, int(ex.get("pid") or 0), status, at, source, reason)
            event["id"] = exec_id
            self.log.info("exec exit after dead shim", id=task.id, exec_id=exec_id, exit_status=status,
                          exit_source=source)
            self.bus.publish(topics.TASK_EXIT, task.namespace, event)

    async def resize(self, namespace: str, task_id: str, height, width, exec_id=None) -> dict:
        """The shim's ``resize`` of the init's terminal, or exec *exec_id*'s: ``{}``.
        InvalidArgument (sizes), NotFound, FailedPrecondition (no terminal, or a task without a shim)."""
        task = self.get(namespace, task_id)
        conn = self._live(task)
        params = {"height": height, "width": width}
        if exec_id:
            params["exec_id"] = exec_id
        await conn.call("resize", timeout=5.0, **params)
        return {}

    async def exec_state(self, namespace: str, task_id: str, exec_id: str) -> dict:
        """An exec process's ``Exec`` view, refreshed from the shim when it answers within 2 s."""
        task = self.get(namespace, task_id)
        ex = task.execs.get(exec_id)
        if task.conn is not None and not task.conn.is_closed and (ex is None or ex["status"] != "stopped"):
            try:
                st = await task.conn.call("state", timeout=2.0, exec_id=exec_id)
                ex = task.execs.setdefault(exec_id, dict(st))
                ex.update({k: st.get(k) for k in ("pid", "status", "exit_status", "exited_at")})
                if ex.get("status") == "stopped" and not ex.get("exit_source"):
                    ex["exit_source"] = exits.SHIM   # the live shim's record: real
            except NotFound:
                pass
            except CapsizeError:
                pass
        if ex is None:
            raise NotFound(f"exec {exec_id} not found in task {task_id}", id=task_id)
        return dict(ex)

    async def state(self, namespace: str, task_id: str) -> dict:
        """The task, refreshed from its shim when it answers within 2 s."""
        task = self.get(namespace, task_id)
        if task.conn is not None and not task.conn.is_closed and task.status not in ("creating", "deleting"):
            try:
                st = await task.conn.call("state", timeout=2.0)
                if st.get("status") == "stopped" and not task.exit_published:
                    self._on_exit(task, st.get("pid"), st.get("exit_status"), st.get("exited_at"), "shim")
                elif st.get("status") in ("created", "running", "paused"):
                    task.advance(st["status"])
            except CapsizeError:
                pass
        return task.view()

    async def wait(self, namespace: str, task_id: str) -> dict:
        task = self.get(namespace, task_id)
        await task.exited.wait()
        if task.exit_status is None:
            raise Unavailable(f"task {task_id} went away without an exit status", id=task_id)
        return task.exit_info()

    async def delete(self, namespace: str, task_id: str, force: bool = False) -> dict:
        task = self.get(namespace, task_id)
        if force and task.status == "unknown":
            self._kill_shim(task)  # its connection closes: the dead-shim cleanup takes over
            await asyncio.wait_for(task.exited.wait(), 30)
            return task.exit_info()
        if force and task.status in ("running", "paused"):
            try:
                await self.kill(namespace, task_id, signal.SIGKILL, True)
            except NotFound:
                pass
            try:
                await asyncio.wait_for(task.exited.wait(), 30)
            except asyncio.TimeoutError:
                raise DeadlineExceeded(f"task {task_id} did not exit within 30s of SIGKILL", id=task_id) from None
            if task.gone:
                return task.exit_info()
        async with task.lock:
            if task.gone:
                raise NotFound(f"task {task_id!r} not found in namespace {namespace}", id=task_id)
            conn = self._live(task)
            if task.status not in ("created", "stopped"):
                raise FailedPrecondition(f"task {task_id} is {task.status}: kill it first (or delete with force)",
                                         id=task_id, status=task.status)
            task.expect_close = True
            try:
                result = await conn.call("delete", timeout=LONG_CALL_TIMEOUT)
            except Unavailable:
                task.expect_close = False
                result = None
            except BaseException:
                task.expect_close = False
                raise
            if result is None:  # the shim died under us: clean up as after any dead shim
                task.move("deleting")
                alive = self._execs_alive(task)
                dead = await self._delete_action(task) or _unknown_exit(
                    task, "the shim died during the delete and came back without the task")
                self._finish_execs(task, alive)
                self._on_exit(task, dead["pid"], dead["exit_status"], dead["exited_at"], dead["source"],
                              reason=dead.get("reason"))
            else:
                task.move("deleting")
                self._on_exit(task, result.get("pid"), result.get("exit_status"), result.get("exited_at"), "shim")
                self.log.debug("task deleted in its shim: shutting the shim down", id=task_id, namespace=namespace)
                try:
                    await conn.call("shutdown", timeout=5)
                except CapsizeError:
                    pass
                if not await conn.wait_closed(SHUTDOWN_TIMEOUT):
                    self._kill_shim(task)
                    await conn.wait_closed(SHUTDOWN_TIMEOUT)
                self._remove_dead_shim_socket(task)
            self.log.debug("shim gone", id=task_id, namespace=namespace)
            self._publish_delete(task)
            self._remove_dir(task)
            self._forget(task)
        self.log.info("task deleted", id=task_id, namespace=namespace, exit_status=task.exit_status)
        return task.exit_info()

    # -- shutdown ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Daemon shutdown: drop every connection; shims and containers run on."""
        self.closing = True
        for t in list(self._background):
            t.cancel()
        for task in self.tasks.values():
            if task.conn is not None:
                task.conn.close()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def read_record(directory: str) -> dict | None:
    rec = read_json(os.path.join(directory, RECORD))
    return rec if isinstance(rec, dict) else None
