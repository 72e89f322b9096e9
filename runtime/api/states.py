"""Each tier's container/task status as a small explicit state machine, and the one way to move.

A :class:`Machine` is a table ``{state: (states it may move to, ...)}``. Staying in the current
state is always allowed (a repeated report is no transition). :meth:`Machine.move` is the one
function that changes a status: it checks the move and sets the attribute; an illegal move
raises :class:`~runtime.errors.FailedPrecondition` naming the current and the wanted state
(fields ``status`` and ``wanted``), and the object is left as it was. An operation that may only
start from some of the states the table allows (runc's ``start`` moves ``created -> running``;
``resume`` moves ``paused -> running``) passes them as *sources*.

The tables follow the engines capsize mirrors:

* :data:`LOWLEVEL` — capsize-runc, after runc's libcontainer states (``stateTransition``):
  creating, created, running, paused, stopped, and ``deleted`` (the state directory is gone).
  capsize-runc derives the status from the host (:mod:`runtime.lowlevel.state`), so it only
  *checks* moves before doing them.
* :data:`SHIM` — the shim's task phase (:mod:`runtime.shim.task`), after containerd-shim-runc-v2's
  init process states (``initState``, ``createdState``, ``runningState``, ``pausedState``,
  ``stoppedState``, ``deletedState``), with ``new``, ``creating`` and ``starting`` for the moments a
  low-level runtime command is in flight.
* :data:`RUNTIMED` — capsize-runtimed's view of a task (:mod:`runtime.highlevel.tasks`): it follows
  the shim's replies and events and never goes back (``paused <-> running`` excepted);
  ``unknown`` (the shim does not answer) may become anything.
* :data:`DAEMON` — capsized's container ``State.Status`` (:mod:`runtime.daemon.model`), the Engine
  API's ``ContainerState.Status`` values as dockerd moves them (container/state.go).

Standard library only, and cheap: capsize-runc and the shim import it on every container.
"""

from __future__ import annotations

from runtime.errors import FailedPrecondition


class Machine:
    """One tier's state table (see the module docstring)."""

    __slots__ = ("tier", "initial", "table")

    def __init__(self, tier: str, initial: str, table: dict):
        self.tier, self.initial = tier, initial
        self.table = {state: frozenset(nexts) for state, nexts in table.items()}
        unknown = {n for nexts in self.table.values() for n in nexts} - set(self.table)
        if initial not in self.table or unknown:
            raise ValueError(f"{tier}: states without a row: {sorted(unknown | {initial} - set(self.table))}")

    @property
    def states(self) -> frozenset:
        return frozenset(self.table)

    def can(self, current: str, wanted: str, sources=None) -> bool:
        """True when *current* may move to *wanted* (staying is always allowed); with *sources*,
        only from one of those states."""
        if sources is not None and current not in sources:
            return False
        return current == wanted or wanted in self.table.get(current, ())

    def error(self, current: str, wanted: str, what: str = "", message: str | None = None,
              **fields) -> FailedPrecondition:
        """The error for an illegal move: *message*, else ``"<what> is <current>: cannot become <wanted>"``."""
        text = message or f"{what or self.tier} is {current}: cannot become {wanted}"
        return FailedPrecondition(text, status=current, wanted=wanted, **fields)

    def check(self, current: str, wanted: str, what: str = "", message: str | None = None,
              sources=None, **fields) -> str:
        """*wanted* when the move is legal, else raise :meth:`error`."""
        if not self.can(current, wanted, sources):
            raise self.error(current, wanted, what, message, **fields)
        return wanted

    def move(self, obj, wanted: str, attr: str = "status", what: str = "", message: str | None = None,
             sources=None, **fields) -> str:
        """Set ``obj.<attr>`` to *wanted* after :meth:`check`; returns the new state."""
        setattr(obj, attr, self.check(getattr(obj, attr), wanted, what, message, sources, **fields))
        return wanted


#: capsize-runc (runc's libcontainer): delete without --force needs created or stopped.
LOWLEVEL = Machine("container", "creating", {
    "creating": ("created", "stopped"),
    "created": ("running", "stopped", "deleted"),
    "running": ("paused", "stopped"),
    "paused": ("running", "stopped"),
    "stopped": ("deleted",),
    "deleted": (),
})

#: The shim's task phase (containerd-shim-runc-v2's init process states, plus the in-flight ones).
SHIM = Machine("task", "new", {
    "new": ("creating",),
    "creating": ("created", "new"),           # <runtime> create succeeded / failed and was undone
    "created": ("starting", "stopped"),
    "starting": ("running", "created"),       # <runtime> start succeeded / failed
    "running": ("paused", "stopped"),
    "paused": ("running", "stopped"),
    "stopped": ("deleted",),
    "deleted": (),
})

#: capsize-runtimed's task status: forward only (paused <-> running), anything from unknown.
RUNTIMED = Machine("task", "creating", {
    "creating": ("created", "running", "paused", "stopped", "deleting", "unknown"),
    "unknown": ("created", "running", "paused", "stopped", "deleting"),
    "created": ("running", "paused", "stopped", "deleting", "unknown"),
    "running": ("paused", "stopped", "deleting", "unknown"),
    "paused": ("running", "stopped", "deleting", "unknown"),
    "stopped": ("deleting",),
    "deleting": ("unknown",),                 # a shim taken for dead answered: adopted again
})

#: capsized's container status (the Engine API's ContainerState.Status).
DAEMON = Machine("container", "created", {
    "created": ("running", "exited", "removing", "dead"),
    "running": ("paused", "exited", "removing", "dead"),
    "paused": ("running", "exited", "removing", "dead"),
    "restarting": ("running", "exited", "removing", "dead"),
    "exited": ("running", "restarting", "removing", "dead"),
    "dead": ("removing",),
    "removing": (),
})
