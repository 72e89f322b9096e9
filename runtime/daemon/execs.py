"""Exec instances: ``docker exec`` in capsized, as dockerd's daemon/exec.go keeps them.

An exec instance is made by ``POST /containers/{id}/exec`` (:meth:`ExecStore.create`: event
``exec_create: <cmd>``), started once by ``POST /exec/{id}/start`` (:meth:`ExecStore.start`:
the task's exec process through capsize-runtimed, event ``exec_start: <cmd>``) and ends with
its process (:meth:`ExecStore.on_exit`, from runtimed's ``/tasks/exit`` whose ``id`` is the
exec's: event ``exec_die`` with ``execID`` and ``exitCode``). ``GET /exec/{id}/json`` is
:meth:`Exec.inspect` (Engine API ``ExecInspectResponse``).

The process: the container's OCI process (its env, capabilities, user, working directory) with
the exec's ``Cmd``, ``Env`` appended, ``User`` (numeric ``uid[:gid]``, as for containers) and
``WorkingDir`` when given. ``Privileged`` is refused (InvalidArgument). ``Tty``: the process
gets a terminal of its own (:func:`runtime.daemon.oci.set_terminal`: ``process.terminal``, the
shim holds its master; ``TERM=xterm`` unless set; ``ConsoleSize`` ``[h, w]`` when given); as
dockerd's ``CreateDaemonEnvironment``, only a TTY exec gets the ``TERM=xterm`` the engine adds,
not an exec without one in a ``-t`` container (a ``TERM`` of the container's ``Env`` is kept
either way). A TTY exec's output is one raw stream and
``/exec/{id}/resize`` reaches it. ``DetachKeys`` (:mod:`runtime.daemon.detachkeys`) end an
attached start without stopping the process.

Streams (an attached start): capsized makes FIFOs ``<exec-root>/containers/<cid>/exec-<id>-
{stdin,stdout,stderr}`` and opens its ends before the runtime opens theirs (the output FIFOs
for reading, so the shim's open for writing finds a reader; stdin read-write, so what the
client sends waits in the FIFO); the exec process gets them as its stdio. Output is read only
once the start succeeded, so what a failing ``<runtime> exec`` printed is never shown; the
runtime's error is, as dockerd writes it, on the stdout stream. After the exit, output still
buffered is delivered for up to :data:`STREAM_GRACE` seconds (dockerd waits 2 s for the streams
after an exec's exit, then closes them: a background child holding the output open does not
hold the client).

Exit code of a start that failed: 126, whatever the cause (a command not found, or one that
cannot be invoked), as dockerd 20.10 records it (its ContainerExecStart sets 126 for any start
error; measured on this machine's dockerd with ``nosuch`` and ``/etc``). Newer dockerd versions
may tell 127 from 126; capsize follows the engine the lab compares against.

Across faults: runtimed keeps exec records across its restarts, and :meth:`ExecStore.resync`
asks it for every running exec when it is back, so an exit while it was down is the real one.
An exec whose shim died gets its exit from runtimed's clean-up (the exit file, else 137
``cleanup-kill`` or 255 ``unknown``); one still running when its container's task is gone ends
255 ``unknown`` (:meth:`ExecStore.container_exited`). A made-up code is named by ``exec_die``'s
``exitCodeSource`` attribute, as ``die``'s.

Errors: NotFound (``No such exec instance: <id>``, 404), FailedPrecondition (409: the container
is not running, is paused, or the exec already ran), InvalidArgument (400).
"""

from __future__ import annotations

import asyncio
import os
import secrets

from runtime.api import exits
from runtime.errors import CapsizeError, FailedPrecondition, InvalidArgument, NotFound

#: seconds the output of an exited exec is still copied (dockerd's 2 s StreamConfig.Wait)
STREAM_GRACE = 2.0
#: how long an attached start waits for the exit once the output ended (the runtime's event)
EXIT_WAIT = 60.0


#: the exit code of an exec whose start failed, whatever the cause (see the module docstring)
START_FAILED_EXIT = 126


class Exec:
    """One exec instance (see the module docstring)."""

    def __init__(self, exec_id: str, container, config: dict):
        self.ID, self.container = exec_id, container
        cmd = config.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("No exec command specified")
        self.entrypoint, self.arguments = cmd[0], list(cmd[1:])
        self.user = config.get("User") or ""
        self.env = list(config.get("Env") or [])
        self.working_dir = config.get("WorkingDir") or ""
        self.open_stdin = bool(config.get("AttachStdin"))
        self.open_stdout = bool(config.get("AttachStdout"))
        self.open_stderr = bool(config.get("AttachStderr"))
        # dockerd's JSON decoding matches field names in any case: the SDK sends "detachKeys"
        self.detach_keys = next((v for k, v in config.items() if k.lower() == "detachkeys" and v), "")
        if not isinstance(self.detach_keys, str):
            raise InvalidArgument(f"Invalid detach keys ({self.detach_keys}) provided")
        from runtime.daemon import detachkeys
        self.detach_sequence = detachkeys.parse(self.detach_keys)   # InvalidArgument now, not at start
        self.tty = bool(config.get("Tty"))
        from runtime.daemon.oci import console_size
        self.console_size = console_size(config.get("ConsoleSize"))   # OCI consoleSize, or None
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.exited = asyncio.Event()
        self.exit_source = exits.REAL  # the exit code's provenance (runtime.api.exits)
        self.began = asyncio.Event()   # the process runs (or its start failed): resize may go on

    @property
    def command(self) -> str:
        return " ".join([self.entrypoint] + self.arguments)

    def inspect(self) -> dict:
        """The Engine API's ``ExecInspectResponse``."""
        pc = {"tty": self.tty, "entrypoint": self.entrypoint, "arguments": list(self.arguments)}
        if self.user:
            pc["user"] = self.user
        return {"CanRemove": False, "ContainerID": self.container.ID, "DetachKeys": self.detach_keys,
                "ExitCode": self.exit_code, "ID": self.ID, "OpenStderr": self.open_stderr,
                "OpenStdin": self.open_stdin, "OpenStdout": self.open_stdout, "ProcessConfig": pc,
                "Running": self.running, "Pid": self.pid}

    def process(self, base: dict) -> dict:
        """The OCI process: *base* (the container's) with this exec's command, env, user, cwd."""
        from runtime.daemon.oci import _user, set_terminal
        proc = {k: v for k, v in base.items() if k not in ("rlimits", "consoleSize")}
        proc["args"] = [self.entrypoint] + self.arguments
        proc["terminal"] = False
        env = list(proc.get("env") or [])
        if not any(e.startswith("TERM=") for e in self.container.Config.get("Env") or []):
            env = [e for e in env if not e.startswith("TERM=")]   # the engine's, for a TTY only
        if self.tty:
            set_terminal(proc, env, self.console_size)   # the exec's Env below may replace TERM
        keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
        for e in self.env:
            k = e.split("=", 1)[0]
            if k in keys:
                env[keys[k]] = e
            else:
                keys[k] = len(env)
                env.append(e)
        proc["env"] = env
        if self.user:
            proc["user"] = _user(self.user)
        if self.working_dir:
            if not self.working_dir.startswith("/"):
                raise InvalidArgument(f"the working directory '{self.working_dir}' is invalid, "
                                      "it needs to be an absolute path")
            proc["cwd"] = self.working_dir
        return proc


class Streams:
    """The FIFOs of an attached exec and capsized's ends of them (see the module docstring)."""

    def __init__(self, directory: str, ex: Exec):
        self.dir = directory
        self.paths: dict[str, str] = {}
        self.fds: dict[str, int] = {}
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name, wanted in (("stdin", ex.open_stdin), ("stdout", ex.open_stdout),
                             ("stderr", ex.open_stderr and not ex.tty)):   # a TTY: one stream
            if not wanted:
                continue
            path = os.path.join(directory, f"exec-{ex.ID}-{name}")
            try:
                os.mkfifo(path, 0o600)
            except FileExistsError:
                pass
            mode = os.O_RDWR if name == "stdin" else os.O_RDONLY
            self.paths[name] = path
            self.fds[name] = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)

    def close(self, name: str) -> None:
        fd = self.fds.pop(name, -1)
        if fd >= 0:
            os.close(fd)

    def close_all(self) -> None:
        for name in list(self.fds):
            self.close(name)
        for path in self.paths.values():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class ExecStore:
    """capsized's exec instances, by id (see the module docstring)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.execs: dict[str, Exec] = {}

    def get(self, exec_id: str) -> Exec:
        ex = self.execs.get(exec_id)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return ex

    @staticmethod
    def _need_running(c) -> None:
        if c.State.Status == "paused":
            raise FailedPrecondition(f"Container {c.ID} is paused, unpause the container before exec")
        if not c.State.running or c.State.Status == "restarting":
            raise FailedPrecondition(f"Container {c.ID} is not running")

    def check_start(self, ex: Exec) -> None:
        """FailedPrecondition unless *ex* can start now (never started, its container running)."""
        if ex.started:
            if ex.exit_code is not None:
                raise FailedPrecondition("Error: Exec command has already run")
            raise FailedPrecondition(f"Error: Exec command {ex.ID} is already running")
        self._need_running(ex.container)

    def create(self, c, config: dict) -> Exec:
        """``POST /containers/{id}/exec``: a new exec instance of running container *c*."""
        self._need_running(c)
        if config.get("Privileged"):
            raise InvalidArgument("capsized does not support privileged exec processes (docker exec "
                                  "--privileged): the exec runs with the container's capabilities only")
        ex = Exec(secrets.token_hex(32), c, config)
        if ex.user:
            from runtime.daemon.oci import _user
            _user(ex.user)   # InvalidArgument now, not at the start
        self.execs[ex.ID] = ex
        self.daemon.events.publish("container", "exec_create: " + ex.command, c.ID,
                                   c.event_attributes(execID=ex.ID), image=c.image_ref)
        return ex

    async def start(self, ex: Exec, detach: bool) -> Streams | None:
        """Start *ex* through the runtime; its :class:`Streams` (None when detached). Raises
        FailedPrecondition (already started, container not running) or the runtime's error,
        after recording the exit code of a failed start (126)."""
        c = ex.container
        self.check_start(ex)
        ex.started = True
        d = self.daemon
        from runtime.daemon.oci import build_spec
        from runtime.daemon.stdin import fifo_dir
        streams = None if detach else Streams(fifo_dir(d.config.exec_root, c.ID), ex)
        paths = streams.paths if streams else {}
        # as dockerd's ContainerExecStart: exec_start is out before the runtime is asked, so a
        # start that fails (126) has exec_create and exec_start and no exec_die (measured, 20.10)
        d.events.publish("container", "exec_start: " + ex.command, c.ID, c.event_attributes(execID=ex.ID),
                         image=c.image_ref)
        try:
            process = ex.process(build_spec(c, d.config.cgroup_parent)["process"])
            res = await d.backend.exec_process(c.ID, ex.ID, process, paths.get("stdin"), paths.get("stdout"),
                                               paths.get("stderr"))
        except CapsizeError as e:
            if streams:
                streams.close_all()
            ex.exit_code = START_FAILED_EXIT
            ex.exited.set()
            ex.began.set()
            raise
        ex.pid = int(res.get("pid") or 0)
        if ex.exit_code is None:
            ex.running = True
        ex.began.set()
        return streams

    def on_exit(self, cid: str, exec_id: str, pid: int, exit_code: int, source: str = exits.REAL,
                reason: str = "") -> None:
        """The runtime reported the exit of exec *exec_id* of container *cid*: ``exec_die``.
        *source* is the code's provenance (:data:`runtime.api.exits.PROVENANCES`); a made-up one
        is named by ``exec_die``'s ``exitCodeSource`` and logged with *reason*."""
        ex = self.execs.get(exec_id)
        if ex is None or ex.container.ID != cid or ex.exit_code is not None:
            return
        ex.exit_source = source
        if source != exits.REAL:
            self.daemon.log.warning("exec exit code made up", container=cid, exec_id=exec_id, exit_code=exit_code,
                                    exit_source=source, reason=exits.state_error(source, reason))
        ex.exit_code, ex.running = int(exit_code), False
        ex.pid = ex.pid or pid
        ex.exited.set()
        self._publish_die(ex)

    def _publish_die(self, ex: Exec) -> None:
        c = ex.container
        self.daemon.events.publish("container", "exec_die", c.ID,
                                   c.event_attributes(execID=ex.ID, exitCode=ex.exit_code,
                                                      **exits.event_attrs(ex.exit_source)),
                                   image=c.image_ref)

    async def resync(self) -> None:
        """After the runtime came back: every running exec's state from runtimed (its records
        survive a restart), so that an exit whose event was lost is still applied."""
        for ex in [e for e in self.execs.values() if e.running and e.exit_code is None]:
            try:
                st = await self.daemon.backend.exec_state(ex.container.ID, ex.ID)
            except CapsizeError:
                continue
            if st.get("status") == "stopped":
                from runtime.daemon.backend import exit_provenance
                code, prov, reason = exit_provenance(st)
                self.on_exit(ex.container.ID, ex.ID, int(st.get("pid") or 0), code, prov, reason)

    async def container_exited(self, c) -> None:
        """The container's task exited and was deleted: an exec of it still running after
        :data:`STREAM_GRACE` (its exit never reported) ends as ``unknown`` (255, made up)."""
        left = [e for e in self.execs.values() if e.container is c and e.running and e.exit_code is None]
        if not left:
            return
        await asyncio.wait([asyncio.ensure_future(e.exited.wait()) for e in left], timeout=STREAM_GRACE)
        for ex in left:
            if ex.exit_code is None:
                self.on_exit(c.ID, ex.ID, ex.pid, exits.UNKNOWN_STATUS, exits.UNKNOWN,
                             "the container exited and nothing reported the exec process's exit")

    def forget_container(self, cid: str) -> None:
        """The container is gone: its exec instances too (dockerd drops them with it)."""
        for eid in [e for e, ex in self.execs.items() if ex.container.ID == cid]:
            del self.execs[eid]
