"""The task: one container's init, driven through the low-level runtime and reaped by the shim.

Life cycle (``phase``; the table is :data:`runtime.api.states.SHIM`, moved by ``Task._move``)::

    new --create--> creating --> created --start--> starting --> running --(exit)--> stopped
     ^                  |                                          pause | ^ resume        |
     +--(create fails: <runtime> delete --force, nothing left)     paused -+     delete --> deleted

* ``create`` opens the stdio pipes (stdin is /dev/null, or the FIFO named by the ``stdin``
  parameter, opened for reading: the engine daemon writes it), runs
  ``<runtime> create --bundle <bundle> --pid-file <bundle>/init.pid <id>`` with the pipes as its
  stdio, so the container's init inherits them, and starts the json-file log copiers once create
  succeeded (what the runtime writes to stderr when create fails is its error, not the
  container's output: it is discarded, as containerd's shim does). The init is re-parented to the shim (a child
  subreaper) when the runtime exits; its pid comes from the pid file.
* The init's exit is noticed by the reaper (a re-parented orphan is never taken for it: only the
  pid from the pid file counts). Then, in this order: what the pipes hold is copied to the log,
  the exit file is written (:mod:`runtime.shim.exitfile`), an OOM kill is looked for, and only
  then is the exit reported (``/tasks/exit``, ``state``, ``wait``). An exit that happens while
  ``start`` is still running is reported after ``/tasks/start``.
* A bundle whose ``process.terminal`` is true is created with ``--console-socket``: the shim
  holds the pty master (:mod:`runtime.shim.console`), copies the terminal's output into the log
  as ``stdout`` (one stream, as Docker's TTY logs), writes what the stdin FIFO brings to the
  terminal, and ``resize`` applies TIOCSWINSZ; the master is closed at the init's exit.
* ``pause`` / ``resume`` run ``<runtime> pause|resume <id>`` (the cgroup freezer) and publish
  ``/tasks/paused`` / ``/tasks/resumed``, as containerd-shim-runc-v2's Pause and Resume do.
* ``create``, ``start``, ``kill``, ``pause``, ``resume`` and ``delete`` run one at a time, in
  arrival order; ``state``, ``wait``, ``pids`` and ``connect`` answer at any time.

Errors: :class:`~runtime.errors.NotFound` (no task, or the process already finished),
:class:`~runtime.errors.AlreadyExists` (create twice), :class:`~runtime.errors.FailedPrecondition`
(wrong phase), :class:`~runtime.errors.InvalidArgument` (bad parameter), and
:class:`~runtime.errors.CapsizeError` carrying the low-level runtime's own error text.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque

from runtime import atomicfile, jsonfast, signals
from runtime.api import topics
from runtime.api.states import SHIM
from runtime.errors import (AlreadyExists, CapsizeError, FailedPrecondition, InvalidArgument,
                            NotFound)
from runtime.rfc3339 import format_nano
from runtime.shim import exitfile
from runtime.shim.fifo import open_fifo
from runtime.shim.logs import JsonFileWriter, LogCopier
from runtime.shim.paths import CONTAINER_LOG, INIT_PID, RESOURCES_FILE

#: How long ``delete`` of a created (never started) task waits for the killed init to be reaped.
DELETE_EXIT_WAIT = 2.0


def parse_signal(value) -> int:
    """A signal given as a number, ``"9"``, ``"KILL"`` or ``"SIGKILL"`` (surrounding blanks
    ignored) -> its number (:func:`runtime.signals.parse`); InvalidArgument otherwise."""
    try:
        return signals.parse(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise InvalidArgument(f"invalid signal {value!r}", field="signal") from None


class Task:
    """One container (see the module docstring). Methods taking ``done`` call it exactly once with
    a result dict or a :class:`CapsizeError`."""

    def __init__(self, loop, reaper, runtime, bundle: str, container_id: str, namespace: str,
                 publisher, log, terminal: bool = False):
        self.loop, self.reaper, self.runtime = loop, reaper, runtime
        self.terminal = terminal   # the bundle's process.terminal (config.json, read by the shim's serve)
        self.bundle, self.id, self.namespace = bundle, container_id, namespace
        self.publisher, self.log = publisher, log
        self.phase = SHIM.initial
        self.pid = 0
        self.exit_status: int | None = None
        self.exited_at: str | None = None
        self.log_path = ""
        self._writer: JsonFileWriter | None = None
        self._copiers: list[LogCopier] = []
        self._pending_pipes: tuple = ()   # (stdout, stderr) read ends while create runs
        self._oom = None
        self._waiters: list = []
        self._exit_hooks: list = []
        self._exit_deferred = False
        self._ops: deque = deque()
        self._busy = False
        self._execs = None   # runtime.shim.execs.Execs, made by the first exec
        self._console = None  # runtime.shim.console.ConsoleSocket while a terminal create runs
        self.pty = None       # runtime.shim.console.Pty: the init's terminal (process.terminal)

    # -- serialized operations ---------------------------------------------------------------
    def submit(self, op: str, params: dict, done) -> None:
        """Queue ``create``/``start``/``kill``/``delete``; they run one at a time."""
        self._ops.append((op, params, done))
        self._next()

    def _next(self) -> None:
        if self._busy or not self._ops:
            return
        op, params, done = self._ops.popleft()
        self._busy = True
        finished = []

        def finish(result):
            if finished:
                return
            finished.append(True)
            self._busy = False
            try:
                done(result)
            finally:
                self.loop.call_later(0, self._next)

        try:
            getattr(self, "_op_" + op)(params, finish)
        except CapsizeError as e:
            finish(e)
        except OSError as e:
            finish(CapsizeError(f"{op}: {e}"))

    # -- create ------------------------------------------------------------------------------
    def _op_create(self, params: dict, done) -> None:
        if self.phase != "new":
            raise AlreadyExists(f"task {self.id} already exists", id=self.id)
        log_path = params.get("log_path") or os.path.join(self.bundle, CONTAINER_LOG)
        if not isinstance(log_path, str) or not os.path.isabs(log_path):
            raise InvalidArgument(f"log_path must be an absolute path, not {log_path!r}", field="log_path")
        pid_file = os.path.join(self.bundle, INIT_PID)
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        in_fd = self._open_stdin(params.get("stdin"), terminal=self.terminal)
        new_log = not os.path.exists(log_path)
        try:
            self._writer = JsonFileWriter(log_path)
        except OSError as e:
            if in_fd >= 0:
                os.close(in_fd)
            raise InvalidArgument(f"cannot open log {log_path}: {e.strerror}", field="log_path") from None
        self.log_path = log_path
        console = None
        ours: list[int] = []     # the shim's ends: the log copiers' pipes, or the terminal's input
        theirs: list[int] = []   # the runtime's stdio: closed once it has its own copies
        if in_fd >= 0:
            (ours if self.terminal else theirs).append(in_fd)
        try:
            if self.terminal:   # the init's stdio is the pty; the runtime's own is its captured output
                from runtime.shim.console import ConsoleSocket
                console = ConsoleSocket()
                stdio, extra = {}, ("--console-socket", console.path)
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                ours.append(out_r)
                theirs.append(out_w)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                ours.append(err_r)
                theirs.append(err_w)
                stdio, extra = {"stdin": in_fd, "stdout": out_w, "stderr": err_w}, ()
            self.reaper.clear_recent()
            inv = self.runtime.spawn("create", "--bundle", self.bundle, "--pid-file", pid_file, *extra,
                                     self.id, **stdio)
        except BaseException:
            for fd in ours:
                os.close(fd)
            if console is not None:
                console.close()
            self._discard_log(new_log)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        # the copiers start once create succeeded (as containerd's shim starts copying the
        # process io after `runc create`): what the runtime itself writes to the shared stderr
        # when create fails (its error) is discarded, never put in the container's log
        self._console, self._pending_pipes = console, tuple(ours)
        self._move("creating")
        self.log.info("creating task", runtime=self.runtime.binary, runtime_pid=inv.pid, terminal=self.terminal)
        self.reaper.expect(inv.pid, lambda code, _t: self._created(inv, code, pid_file, new_log, done))

    @staticmethod
    def _open_stdin(path, terminal: bool = False) -> int:
        """The init's stdin FIFO at *path* (-1 when there is none: /dev/null), opened without
        waiting for a writer (:func:`runtime.shim.fifo.open_fifo`). For the init to inherit:
        read-only, then blocking. With *terminal*, the shim's own end, copied to the pty:
        read-write, so that the terminal's input never sees a spurious end of file before the
        engine daemon opens its end, and non-blocking. InvalidArgument (``field="stdin"``)."""
        if not path:
            return -1
        return open_fifo(path, os.O_RDWR if terminal else os.O_RDONLY, "stdin", blocking=not terminal,
                         field="stdin")

    def _created(self, inv, code: int, pid_file: str, new_log: bool, done) -> None:
        error = self.runtime.error_text(inv, code) if code else ""
        inv.close()
        pid = 0
        if not error:
            pid, error = self.runtime.pid_from(pid_file, "create")
        master = -1
        if self._console is not None:
            master, error = self._console.take(error, "create")
            self._console = None
        if error:
            self.log.error("create failed", error=error)
            self._undo_create(pid_file, new_log, lambda: done(CapsizeError(error, id=self.id)))
            return
        self.pid = pid
        self._move("created")
        if master >= 0:
            from runtime.shim.console import Pty
            self.pty = Pty(self.loop, master)
            self.pty.to_log(self._writer)
            for fd in self._pending_pipes:   # the stdin FIFO
                self.pty.from_fifo(fd)
        else:
            out_r, err_r = self._pending_pipes
            self._copiers = [LogCopier(self.loop, out_r, "stdout", self._writer),
                             LogCopier(self.loop, err_r, "stderr", self._writer)]
        self._pending_pipes = ()
        from runtime.shim.oom import OOMWatch
        self._oom = OOMWatch(self.loop, pid, self._oom_killed, self.log)
        self.publisher.publish(topics.TASK_CREATE, {"container_id": self.id, "bundle": self.bundle, "pid": pid})
        self.log.info("task created", pid=pid)
        done({"pid": pid})
        self.reaper.expect(pid, self._init_exited)

    def _undo_create(self, pid_file: str, new_log: bool, then) -> None:
        """After a failed create: ``<runtime> delete --force``, close and remove what create made."""
        inv = None

        def cleaned(code, _t):
            if inv is not None:
                inv.close()
            for c in self._copiers:
                c.close()
            self._copiers = []
            for fd in self._pending_pipes:
                os.close(fd)
            self._pending_pipes = ()
            self._discard_log(new_log)
            for p in (pid_file,):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            self._move("new")
            self.pid = 0
            then()
        try:
            inv = self.runtime.spawn("delete", "--force", self.id)
        except CapsizeError:
            cleaned(0, 0)
            return
        self.reaper.expect(inv.pid, cleaned)

    def _discard_log(self, remove: bool) -> None:
        if self._writer:
            self._writer.close()
            self._writer = None
        if remove and self.log_path:
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass
        self.log_path = ""

    # -- exit --------------------------------------------------------------------------------
    def _init_exited(self, code: int, when_ns: int) -> None:
        self.exit_status, self.exited_at = code, format_nano(when_ns)
        for c in self._copiers:
            c.drain()
        if self.pty is not None:   # what the terminal still holds goes to the log; then it is closed
            self.pty.drain()
            self.pty.close()
        try:
            exitfile.write(self.bundle, self.pid, code, self.exited_at)
        except OSError as e:
            self.log.error("cannot write exit file", error=str(e))
        if self._oom:
            self._oom.check()
        self.log.info("init exited", pid=self.pid, exit_status=code)
        if self.phase == "starting":
            self._exit_deferred = True
        else:
            self._report_exit()

    def _report_exit(self) -> None:
        self._exit_deferred = False
        self._move("stopped")
        self.publisher.publish(topics.TASK_EXIT, topics.task_exit(self.id, self.pid, self.exit_status,
                                                                  self.exited_at))
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w(self._exit_result())
        hooks, self._exit_hooks = self._exit_hooks, []
        for h in hooks:
            h()

    def _exit_result(self) -> dict:
        return {"pid": self.pid, "exit_status": self.exit_status, "exited_at": self.exited_at}

    def _oom_killed(self) -> None:
        self.log.warning("OOM kill in the container's cgroup")
        self.publisher.publish(topics.TASK_OOM, {"container_id": self.id})

    # -- start, kill, delete -----------------------------------------------------------------
    def _move(self, phase: str) -> None:
        """The one way the phase changes (:data:`runtime.api.states.SHIM`)."""
        SHIM.move(self, phase, attr="phase", what=f"task {self.id}", id=self.id)

    def _need(self, *phases: str) -> None:
        if self.phase in ("new", "creating"):
            raise NotFound(f"task {self.id} not created", id=self.id)
        if self.phase == "deleted":
            raise NotFound(f"task {self.id} deleted", id=self.id)
        if self.phase not in phases:
            raise FailedPrecondition(f"task {self.id} is {self.status()}", id=self.id, status=self.status())

    def _op_start(self, params: dict, done) -> None:
        self._need("created")
        inv = self.runtime.spawn("start", self.id)
        self._move("starting")

        def started(code, _t):
            error = self.runtime.error_text(inv, code) if code else ""
            inv.close()
            if error:
                self._move("created")
                done(CapsizeError(error, id=self.id))
            else:
                self._move("running")
                self.publisher.publish(topics.TASK_START, {"container_id": self.id, "pid": self.pid})
                self.log.info("task started", pid=self.pid)
                done({"pid": self.pid})
            if self._exit_deferred:
                self._report_exit()
        self.reaper.expect(inv.pid, started)

    def _op_kill(self, params: dict, done) -> None:
        sig = parse_signal(params.get("signal", signal.SIGTERM))
        if self.phase == "stopped":
            raise NotFound(f"process already finished: task {self.id}", id=self.id)
        self._need("created", "running", "paused")
        args = ["kill"] + (["--all"] if params.get("all") else []) + [self.id, str(sig)]
        inv = self.runtime.spawn(*args)

        def killed(code, _t):
            error = self.runtime.error_text(inv, code) if code else ""
            inv.close()
            if error and self.exit_status is not None:
                done(NotFound(f"process already finished: task {self.id}", id=self.id))
            elif error:
                done(CapsizeError(error, id=self.id))
            else:
                done({})
        self.reaper.expect(inv.pid, killed)

    def _op_pause(self, params: dict, done) -> None:
        self._need("running")
        self._freezer("pause", "paused", topics.TASK_PAUSED, done)

    def _op_resume(self, params: dict, done) -> None:
        self._need("paused")
        self._freezer("resume", "running", topics.TASK_RESUMED, done)

    def _freezer(self, command: str, phase: str, topic: str, done) -> None:
        """``<runtime> pause|resume <id>``; on success enter *phase* and publish *topic*."""
        inv = self.runtime.spawn(command, self.id)

        def finished(code, _t):
            error = self.runtime.error_text(inv, code) if code else ""
            inv.close()
            if error:
                done(CapsizeError(error, id=self.id))
                return
            if self.exit_status is None:  # an exit meanwhile wins: the task stays stopped
                self._move(phase)
                self.publisher.publish(topic, {"container_id": self.id})
                self.log.info("task " + phase, pid=self.pid)
            done({})
        self.reaper.expect(inv.pid, finished)

    def _op_update(self, params: dict, done) -> None:
        """``<runtime> update --resources <bundle>/resources.json <id>`` (:mod:`runtime.api.shim`)."""
        self._need("created", "running", "paused")
        resources = params.get("resources")
        if not isinstance(resources, dict):
            raise InvalidArgument("resources must be an OCI linux.resources object", field="resources")
        path = os.path.join(self.bundle, RESOURCES_FILE)
        atomicfile.write(path, jsonfast.dumps(resources), durable=False)
        inv = self.runtime.spawn("update", "--resources", path, self.id)

        def updated(code, _t):
            error = self.runtime.error_for(inv, code, id=self.id) if code else None
            inv.close()
            if error:   # capsize-runc's log record names the class (invalid-argument: a bad value)
                done(error)
            else:
                self.log.info("task updated", resources=sorted(resources))
                done({})
        self.reaper.expect(inv.pid, updated)

    def _op_delete(self, params: dict, done) -> None:
        self._need("created", "stopped")
        was_created = self.phase == "created"
        inv = self.runtime.spawn("delete", *(["--force"] if was_created else []), self.id)

        def deleted(code, _t):
            error = self.runtime.error_for(inv, code, id=self.id) if code else None
            inv.close()
            if error is not None and (isinstance(error, NotFound) or "does not exist" in str(error)):
                # containerd's process.Init delete: a runtime that already removed the container
                # (its delete killed after the state went) is done, else the task is stuck
                self.log.warning("runtime delete: container already gone", error=str(error))
                error = None
            if error is not None:
                done(CapsizeError(str(error), id=self.id))
            elif self.exit_status is None:  # a created task: the killed init is about to be reaped
                timer = self.loop.call_later(DELETE_EXIT_WAIT, self._give_up_exit)
                self._exit_hooks.append(lambda: (timer.cancel(), self._finish_delete(done)))
            else:
                self._finish_delete(done)
        self.reaper.expect(inv.pid, deleted)

    def _give_up_exit(self) -> None:
        self.log.warning("init not reaped after delete --force; reporting 137", pid=self.pid)
        self.reaper.forget(self.pid)
        self._init_exited(137, time.time_ns())

    def _finish_delete(self, done) -> None:
        for c in self._copiers:
            c.drain()
            c.close()
        self._copiers = []
        if self.pty is not None:
            self.pty.close()
        if self._execs is not None:
            self._execs.close()
        if self._writer:
            self._writer.close()
            self._writer = None
        if self._oom:
            self._oom.close()
        self._move("deleted")
        result = self._exit_result()
        self.publisher.publish(topics.TASK_DELETE, topics.task_exit(self.id, **result))
        self.log.info("task deleted", **result)
        done(result)

    # -- exec processes ----------------------------------------------------------------------
    def execs(self):
        """The task's exec processes (:class:`runtime.shim.execs.Execs`; imported on first use)."""
        if self._execs is None:
            from runtime.shim.execs import Execs
            self._execs = Execs(self)
        return self._execs

    def _op_exec(self, params: dict, done) -> None:
        self._need("running")
        self.execs().start(params, done)

    # -- queries -----------------------------------------------------------------------------
    def status(self) -> str:
        """``unknown`` (being created), ``created``, ``running``, ``paused``, ``stopped``, ``deleted``."""
        if self.exit_status is not None and self.phase != "deleted":
            return "stopped"
        return {"new": "unknown", "creating": "unknown", "starting": "created"}.get(self.phase, self.phase)

    def state(self, exec_id=None) -> dict:
        """The task's state, or with *exec_id* that exec process's (see :mod:`runtime.api.shim`)."""
        self._need("created", "starting", "running", "paused", "stopped")
        if exec_id is not None:
            return self.execs().state(exec_id)
        return {"id": self.id, "namespace": self.namespace, "bundle": self.bundle, "pid": self.pid,
                "status": self.status(), "exit_status": self.exit_status, "exited_at": self.exited_at,
                "log_path": self.log_path, "runtime": self.runtime.binary}

    def resize(self, params: dict) -> None:
        """``resize``: TIOCSWINSZ on the terminal of the init, or of exec ``exec_id``.
        InvalidArgument (sizes), NotFound (exec), FailedPrecondition (no open terminal)."""
        self._need("created", "starting", "running", "paused", "stopped")
        size = []
        for key in ("height", "width"):
            v = params.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFF:
                raise InvalidArgument(f"resize: {key} must be an integer 0-65535, not {v!r}", field=key)
            size.append(v)
        exec_id = params.get("exec_id")
        if exec_id is not None:
            pty = self.execs().pty_of(exec_id)
            what = f"exec {exec_id}"
        else:
            pty, what = self.pty, f"task {self.id}"
        if pty is None or pty.master < 0:
            raise FailedPrecondition(f"{what} has no terminal to resize", id=self.id)
        pty.resize(*size)

    def wait(self, done) -> None:
        """``done(exit result)`` once the init has exited (at once if it already has)."""
        self._need("created", "starting", "running", "paused", "stopped")
        if self.exit_status is not None and not self._exit_deferred:
            done(self._exit_result())
        else:
            self._waiters.append(done)

    def pids(self, done) -> None:
        """``done({"pids": [int, ...]})``: the container's processes, from ``<runtime> ps``."""
        self._need("created", "starting", "running", "paused", "stopped")
        if self.phase == "stopped":
            done({"pids": []})
            return
        inv = self.runtime.spawn("ps", "--format", "json", self.id)

        def listed(code, _t):
            import json
            error = self.runtime.error_text(inv, code) if code else ""
            out = inv.stdout()
            inv.close()
            if error:
                done(CapsizeError(error, id=self.id))
                return
            try:
                pids = json.loads(out or b"[]") or []
            except ValueError:
                done(CapsizeError(f"{self.runtime.binary} ps printed no JSON list"))
                return
            done({"pids": [int(p) for p in pids]})
        self.reaper.expect(inv.pid, listed)
