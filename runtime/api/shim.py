"""The shim's API: JSON lines over its unix socket, between capsize-runtimed and capsize-shim.

After containerd's task service (``api/runtime/task/v2``, spoken over ttrpc by
containerd-shim-runc-v2), reduced to one task per shim and carried as JSON lines.

Request: ``{"id": <any>, "method": "<name>", "params": {...}}`` (params optional), one line.
Reply: ``{"id": <same>, "result": {...}}`` or ``{"id": <same>, "error": {"code", "message",
...}}`` where ``code`` is a :mod:`runtime.errors` code (``invalid-argument``, ``not-found``,
``already-exists``, ``failed-precondition``, ``unimplemented``, ``internal``...), rebuilt with
:func:`runtime.errors.from_dict`. A reply to a line that could not be parsed has ``"id": null``.
Requests on one connection are answered one at a time, in order; any number of connections are
served at once. Malformed lines, unknown methods and wrong states get an error reply; the shim
keeps serving. Methods (:data:`METHODS`):

============  ===============================  ==================================================
method        params                           result
============  ===============================  ==================================================
connect       --                               ``{"shim_pid", "task_pid" (0 before create),
                                               "version": 1}``
create        ``log_path`` (absolute, optional) ``{"pid"}`` after ``<runtime> create``; the
              ``stdin`` (a FIFO, optional)     runtime's own error on failure (then nothing is
                                               left: ``<runtime> delete --force``). With the
                                               bundle's ``process.terminal``: ``--console-socket``,
                                               the shim holds the pty master, the log gets the
                                               terminal's output as ``stdout``, stdin goes to it
start         --                               ``{"pid"}`` after ``<runtime> start``
state         ``exec_id`` (optional)           ``{"id", "namespace", "bundle", "pid", "status",
                                               "exit_status", "exited_at", "log_path",
                                               "runtime"}``; status is ``unknown`` (being
                                               created), ``created``, ``running``, ``paused``
                                               or ``stopped``. With ``exec_id``: that exec
                                               process's ``{"id", "exec_id", "pid", "status"
                                               (running|stopped), "exit_status", "exited_at"}``
kill          ``signal`` (number or name,      ``{}`` after ``<runtime> kill [--all] <id> <sig>``;
              default 15), ``all`` (bool)      NotFound "process already finished" once stopped
wait          --                               ``{"pid", "exit_status", "exited_at"}`` when the
                                               init has exited (blocks that connection)
pids          --                               ``{"pids": [...]}`` (``<runtime> ps``)
pause         --                               ``{}`` after ``<runtime> pause <id>`` (a running
                                               task; status ``paused``; ``/tasks/paused``)
resume        --                               ``{}`` after ``<runtime> resume <id>`` (a paused
                                               task; ``/tasks/resumed``)
update        ``resources`` (OCI               ``{}`` after ``<runtime> update --resources
              ``linux.resources``, an object)  <bundle>/resources.json <id>`` (a created, running
                                               or paused task), as containerd-shim-runc-v2's
                                               Update; the runtime's error otherwise
delete        --                               ``{"pid", "exit_status", "exited_at"}`` after
                                               ``<runtime> delete`` (``--force`` for a created
                                               task, whose init is then killed: 137); a running
                                               task is FailedPrecondition
exec          ``exec_id`` (an id), ``process``  ``{"exec_id", "pid"}`` after ``<runtime> exec
              (an OCI process; ``terminal``:   --detach --pid-file <dir>/pid --process
              a pty, output to ``stdout``),    <dir>/process.json <id>`` (``<dir>`` =
              ``stdin``, ``stdout``,           ``<bundle>/execs/<exec_id>``; with a terminal
              ``stderr`` (FIFO paths,          also ``--console-socket``);
              optional: /dev/null;             publishes
              stdout/stderr must               ``/tasks/exec-added``, ``/tasks/exec-started``
              have a reader already)           and, at its exit, ``/tasks/exit`` with ``id`` =
                                               the exec id; a running task only
                                               (FailedPrecondition), AlreadyExists for a used id
resize        ``height``, ``width`` (chars,    ``{}`` after TIOCSWINSZ on the pty master of the
              0-65535), ``exec_id`` (optional) init or of that exec process; FailedPrecondition
                                               when it has no terminal (or it is closed)
shutdown      --                               ``{}``, then the shim removes its socket,
                                               delivers queued events (up to 1 s) and exits;
                                               FailedPrecondition while a task exists
============  ===============================  ==================================================

An exec process's exit status is kept on disk as the init's (``<bundle>/execs/<exec_id>/exit``,
:mod:`runtime.shim.exitfile`), written before its ``/tasks/exit``. The shim is the exec
process's subreaper (the runtime's ``exec --detach`` leaves it to the shim) and reaps it, and
anything else re-parented to it, through its one reaper.

Exit statuses are shell-style: the code, or 128 + signal. Times are RFC 3339 nano, UTC.

:class:`Calls` is the client side written once (ids, request lines, replies to results or
errors); both clients use it: the synchronous :class:`runtime.shim.client.ShimClient` and
capsize-runtimed's asyncio :class:`runtime.highlevel.shimconn.ShimConnection`. The server
(:mod:`runtime.shim.server`) answers with :func:`reply_line`. Standard library only; ``json`` is
imported here, so the shim's start path (which avoids it) does not import this module.
"""

from __future__ import annotations

import json

from runtime.errors import from_dict

CONNECT, CREATE, START, STATE, KILL, WAIT, PIDS, PAUSE, RESUME, DELETE, EXEC, RESIZE, SHUTDOWN, UPDATE = (
    "connect", "create", "start", "state", "kill", "wait", "pids", "pause", "resume", "delete", "exec",
    "resize", "shutdown", "update")

METHODS = (CONNECT, CREATE, START, STATE, KILL, WAIT, PIDS, PAUSE, RESUME, DELETE, EXEC, RESIZE, SHUTDOWN, UPDATE)
#: Methods that change the task: run one at a time, in arrival order.
SERIALIZED = (CREATE, START, KILL, PAUSE, RESUME, DELETE, EXEC, UPDATE)
#: Methods whose failure is an ordinary answer (not logged by the shim).
QUIET = (STATE, WAIT, CONNECT, RESIZE)
#: ``connect``'s ``version``.
PROTOCOL_VERSION = 1
#: The longest request line the shim reads (bytes); a longer one gets an error and is skipped.
MAX_LINE = 1 << 20


def reply_line(msg: dict) -> bytes:
    """One reply (or any message) as a JSON line."""
    return (json.dumps(msg, separators=(",", ":"), default=str) + "\n").encode()


class Calls:
    """The client half of the protocol, without I/O: numbers requests and decodes replies."""

    __slots__ = ("_next_id",)

    def __init__(self):
        self._next_id = 0

    def request(self, method: str, params: dict) -> tuple[int, bytes]:
        """A new request: ``(its id, the line to send)``."""
        self._next_id += 1
        rid = self._next_id
        return rid, (json.dumps({"id": rid, "method": method, "params": params},
                                separators=(",", ":")) + "\n").encode()

    @staticmethod
    def parse(line: bytes):
        """A reply line -> the reply dict, or None when it is not a JSON object."""
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    @staticmethod
    def result(reply: dict) -> dict:
        """The reply's ``result`` (``{}`` when empty); an error reply is raised as its class."""
        if "error" in reply:
            raise from_dict(reply["error"] or {})
        return reply.get("result") or {}
