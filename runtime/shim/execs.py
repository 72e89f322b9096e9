"""Exec processes: extra processes run inside a task's running container (containerd's exec
processes of a task, ``docker exec``), each with its own id, reaped and recorded by the shim.

``exec`` (the shim method, :mod:`runtime.api.shim`) with ``exec_id``, an OCI ``process``, and
optional ``stdin`` / ``stdout`` / ``stderr`` FIFO paths:

1. makes ``<bundle>/execs/<exec_id>/``, writes ``process.json`` there, and publishes
   ``/tasks/exec-added`` (``{"container_id", "exec_id"}``);
2. runs ``<runtime> exec --detach --pid-file <dir>/pid --process <dir>/process.json <id>``
   with the FIFOs as its stdio (the exec process inherits them; a FIFO for output must already
   have a reader, the engine daemon's, or the open fails: ENXIO), as containerd-shim-runc-v2's
   exec start runs ``runc exec --detach``. With ``process.terminal`` the runtime also gets
   ``--console-socket``: the process's stdio is a new pty, whose master the shim holds and copies
   to the ``stdout`` FIFO and from the ``stdin`` FIFO (:mod:`runtime.shim.console`; ``stderr``
   is unused, as with Docker's TTYs); ``resize`` reaches it;
3. the runtime exits once the process runs, so the process is re-parented to the shim (a child
   subreaper); its pid comes from the pid file, and the reaper calls back on that pid only (an
   exit that came first waits in the reaper's table of recent exits);
4. replies ``{"exec_id", "pid"}`` and publishes ``/tasks/exec-started``
   (``{"container_id", "exec_id", "pid"}``).

At its exit the status is written to ``<dir>/exit`` (:mod:`runtime.shim.exitfile`, durable,
atomic), then ``/tasks/exit`` is published with ``id`` = the exec id and ``container_id`` =
the task's. The init's exit and an exec's never mix: each pid has its own callback.

Errors: InvalidArgument (bad id, process, path), AlreadyExists (the id is taken),
FailedPrecondition (the task is not running), NotFound (no such exec for ``state``), and the
runtime's own error text when ``<runtime> exec`` fails (e.g. ``exec: "nosuch": executable file
not found in $PATH``). A failed exec leaves no exec record behind.
"""

from __future__ import annotations

import os

from runtime.api import topics
from runtime.errors import AlreadyExists, CapsizeError, FailedPrecondition, InvalidArgument, NotFound
from runtime.rfc3339 import format_nano
from runtime.shim import exitfile
from runtime.shim.fifo import open_fifo
from runtime.shim.paths import check_id

EXECS_DIR = "execs"
#: Seconds an exited exec process's terminal output is still copied (dockerd's 2 s stream wait).
PTY_GRACE = 2.0
PROCESS_FILE = "process.json"
PID_FILE = "pid"


class ExecProcess:
    """One exec process: ``id``, ``pid``, ``status`` (``running`` | ``stopped``), exit status and
    time; with a terminal, its ``pty`` (:class:`runtime.shim.console.Pty`)."""

    __slots__ = ("id", "dir", "pid", "status", "exit_status", "exited_at", "console", "pty_fds", "pty")

    def __init__(self, exec_id: str, directory: str):
        self.id, self.dir = exec_id, directory
        self.console, self.pty_fds, self.pty = None, [], None
        self.pid = 0
        self.status = "created"
        self.exit_status: int | None = None
        self.exited_at: str | None = None

    def view(self, container_id: str) -> dict:
        return {"id": container_id, "exec_id": self.id, "pid": self.pid, "status": self.status,
                "exit_status": self.exit_status, "exited_at": self.exited_at}


class Execs:
    """The exec processes of *task* (a :class:`runtime.shim.task.Task`)."""

    def __init__(self, task):
        self.task = task
        self.procs: dict[str, ExecProcess] = {}

    def start(self, params: dict, done) -> None:
        """The ``exec`` method (see the module docstring); ``done`` once, with a result or an error."""
        import json
        task = self.task
        exec_id = check_id(params.get("exec_id"), "exec_id")
        proc = params.get("process")
        if not isinstance(proc, dict) or not isinstance(proc.get("args"), list) or not proc["args"]:
            raise InvalidArgument("exec: process.args must be a non-empty list", field="process")
        if exec_id in self.procs:
            raise AlreadyExists(f"exec {exec_id} already exists in task {task.id}", id=exec_id)
        if task.status() != "running":
            raise FailedPrecondition(f"cannot exec in a {task.status()} task {task.id}", id=task.id,
                                     status=task.status())
        directory = os.path.join(task.bundle, EXECS_DIR, exec_id)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        proc_file, pid_file = os.path.join(directory, PROCESS_FILE), os.path.join(directory, PID_FILE)
        with open(proc_file, "w") as f:
            json.dump(proc, f)
        fds = []
        console = None
        terminal = bool(proc.get("terminal"))
        try:
            if terminal:
                from runtime.shim.console import ConsoleSocket
                # the shim's own ends of the FIFOs, non-blocking: the pty is copied between them
                # and the terminal (runtime.shim.console); the process's stdio is the pty's slave.
                # The input is opened read-write: no spurious end of file before a writer comes
                for key, mode in (("stdin", os.O_RDWR), ("stdout", os.O_WRONLY)):
                    fds.append(open_fifo(params[key], mode, "exec stdio", blocking=False)
                               if params.get(key) else -1)
                console = ConsoleSocket()
                stdio = {}
                extra = ("--console-socket", console.path)
            else:
                for key, mode in (("stdin", os.O_RDONLY), ("stdout", os.O_WRONLY), ("stderr", os.O_WRONLY)):
                    if params.get(key):
                        fds.append(open_fifo(params[key], mode, "exec stdio"))
                    elif key == "stdin":
                        fds.append(-1)
                    else:
                        fds.append(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
                stdio = dict(zip(("stdin", "stdout", "stderr"), fds))
                extra = ()
            ep = ExecProcess(exec_id, directory)
            self.procs[exec_id] = ep
            task.publisher.publish(topics.TASK_EXEC_ADDED, {"container_id": task.id, "exec_id": exec_id})
            inv = task.runtime.spawn("exec", "--detach", "--pid-file", pid_file, "--process", proc_file,
                                     *extra, task.id, **stdio)
        except BaseException:
            self.procs.pop(exec_id, None)
            if console is not None:
                console.close()
            for fd in fds:
                if fd >= 0:
                    os.close(fd)
            raise
        if terminal:
            ep.console, ep.pty_fds = console, fds   # kept until the runtime exits
        else:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)
        task.reaper.expect(inv.pid, lambda code, _t: self._ran(ep, inv, code, pid_file, done))

    def _ran(self, ep: ExecProcess, inv, code: int, pid_file: str, done) -> None:
        task = self.task
        error = task.runtime.error_text(inv, code) if code else ""
        inv.close()
        pid = 0
        if not error:
            pid, error = task.runtime.pid_from(pid_file, "exec")
        if ep.console is not None:
            master, error = ep.console.take(error, "exec")
            ep.console = None
            fds, ep.pty_fds = ep.pty_fds, []
            if error:
                for fd in fds:
                    if fd >= 0:
                        os.close(fd)
            else:
                from runtime.shim.console import Pty
                ep.pty = Pty(task.loop, master)
                if fds[1] >= 0:
                    ep.pty.to_fifo(fds[1])
                if fds[0] >= 0:
                    ep.pty.from_fifo(fds[0])
        if error:
            task.log.info("exec failed", exec_id=ep.id, error=error)
            self.procs.pop(ep.id, None)
            done(CapsizeError(error, id=task.id, exec_id=ep.id))
            return
        ep.pid, ep.status = pid, "running"
        task.publisher.publish(topics.TASK_EXEC_STARTED, {"container_id": task.id, "exec_id": ep.id, "pid": pid})
        task.log.info("exec started", exec_id=ep.id, pid=pid)
        done({"exec_id": ep.id, "pid": pid})
        task.reaper.expect(pid, lambda c, when: self._exited(ep, c, when))

    def _exited(self, ep: ExecProcess, code: int, when_ns: int) -> None:
        ep.status, ep.exit_status, ep.exited_at = "stopped", code, format_nano(when_ns)
        if ep.pty is not None:
            # what the terminal holds now is copied; the copy goes on while a background child
            # keeps the terminal open, for PTY_GRACE seconds at most (as the engine daemon's)
            ep.pty.drain()
            self.task.loop.call_later(PTY_GRACE, ep.pty.close)
        try:
            exitfile.write(ep.dir, ep.pid, code, ep.exited_at)
        except OSError as e:
            self.task.log.error("cannot write an exec's exit file", exec_id=ep.id, error=str(e))
        self.task.log.info("exec exited", exec_id=ep.id, pid=ep.pid, exit_status=code)
        event = topics.task_exit(self.task.id, ep.pid, code, ep.exited_at)
        event["id"] = ep.id
        self.task.publisher.publish(topics.TASK_EXIT, event)

    def pty_of(self, exec_id):
        """The terminal (:class:`runtime.shim.console.Pty` or None) of exec *exec_id*; NotFound."""
        ep = self.procs.get(exec_id)
        if ep is None:
            raise NotFound(f"exec {exec_id!r} not found in task {self.task.id}", id=self.task.id)
        return ep.pty

    def close(self) -> None:
        """The task is deleted: every exec terminal still open is closed."""
        for ep in self.procs.values():
            if ep.pty is not None:
                ep.pty.close()

    def state(self, exec_id) -> dict:
        ep = self.procs.get(exec_id)
        if ep is None:
            raise NotFound(f"exec {exec_id!r} not found in task {self.task.id}", id=self.task.id)
        return ep.view(self.task.id)
