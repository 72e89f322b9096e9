"""Faults on components by role: stop, kill, pause, resume, start, restart; the daemon's socket.

One registration each (:mod:`harness.verbs.registry`), with its undo kinds, written to the
ledger before the fault is applied:

* ``signal`` — send ``signal`` to ``pid`` if it is still the process started at ``create_time``
  (SIGCONT after a pause);
* ``start`` — start ``role`` again (done by the harness before teardown; in ``capsize recover``
  the engine's removal covers it);
* ``rename`` — move ``from`` back to ``to`` (a closed API socket).

A fault returns the facts seen (a dict); a :class:`~runtime.errors.CapsizeError` is its
``fail`` outcome with the message (no such process, component already down).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Literal

from pydantic import model_validator

from harness.pids import identify, same_process
from harness.scenario.types import Duration, FaultTarget, Model, Signal
from harness.verbs.registry import Need, fault, undo_outstanding
from runtime.errors import CapsizeError

STOPPING = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
HARMLESS = {signal.SIGCONT, signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG}


class FaultStop(FaultTarget):
    """SIGTERM, then wait up to ``timeout`` (SIGKILL after it)."""

    timeout: Duration = 30.0


class FaultKill(FaultTarget):
    signal: Signal = 9


class FaultDaemon(Model):
    """``fault.start`` / ``fault.restart``: only the daemons can be started."""

    component: Literal["daemon", "runtime"]
    timeout: Duration = 60.0
    #: ``fault.start`` only: false returns at once (e.g. dockerd with its runtime down, E4c).
    wait: bool = True
    #: daemon only: ``socket`` (its own unix socket), ``activator`` (socket activation:
    #: systemd-socket-activate holds the API socket, the first connection starts the daemon with
    #: ``-H fd://``), ``fd`` (``-H fd://`` without an activator: misconfigured, it must fail).
    listen: Literal["socket", "activator", "fd"] = "socket"

    @model_validator(mode="after")
    def _listen_daemon_only(self):
        if self.listen != "socket" and self.component != "daemon":
            raise ValueError("listen is for the daemon only")
        return self


class FaultSocket(Model):
    """``fault.socket.close`` / ``.open``: the daemon's API socket path is moved aside and back."""

    component: Literal["daemon"] = "daemon"




def role_needs(p) -> list[Need]:
    """`role:<component>` (an engine that has the component's role)"""
    return [Need(f"role:{p.component}", "component", f"component {p.component} exists")]


def targets(ctx, role: str, container: str | None) -> tuple[list[int], str | None]:
    """The live PIDs of *role* (of scenario container *container*) and the container's id.
    Raises CapsizeError when the container was never created or nothing runs."""
    cid = ctx.container_id(container) if container else None
    if container and not cid:
        raise CapsizeError(f"container {container} does not exist (it was never created)")
    pids = ctx.engine.pids(role, cid)
    if not pids:
        what = f"{role} of container {container}" if container else role
        raise CapsizeError(f"no {what} process is running")
    return pids, cid


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _await_job_state(pids: list[int], stopped: bool, timeout: float = 3.0) -> list[int]:
    """Wait until each of ``pids`` is in job-control stop (``T`` in /proc/<pid>/stat) or not.

    ``kill(2)`` returns before the target is scheduled to act on SIGSTOP/SIGCONT, so a snapshot
    taken right after it may still show the old state. Returns the pids that did not get there
    within ``timeout`` seconds (gone processes count as settled).
    """
    deadline = time.monotonic() + timeout
    pending = list(pids)
    while pending:
        left = []
        for pid in pending:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rpartition(")")[2].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if state in ("Z", "X"):
                continue
            if (state in ("T", "t")) != stopped:
                left.append(pid)
        pending = left
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return pending


def settle_starts(ctx, role: str) -> None:
    """A started component undoes the outstanding 'start' entries of its role."""
    for e in ctx.ledger.outstanding(ctx.run):
        if e["undo"].get("kind") == "start" and e["undo"].get("role") == role:
            ctx.ledger.undone(ctx.run, e["id"], "harness", "started by a step")


# -- undo kinds ---------------------------------------------------------------------------------

def undo_signal(spec: dict, engine=None) -> str:
    if not same_process(spec["pid"], spec.get("create_time")):
        return f"pid {spec['pid']} is gone: nothing to do"
    os.kill(spec["pid"], spec["signal"])
    return f"sent {signal.Signals(spec['signal']).name} to pid {spec['pid']}"


def undo_start(spec: dict, engine=None) -> str:
    if engine is None:
        return f"{spec['role']}: left to the engine's removal"
    try:
        if engine.pids(spec["role"]):
            return f"{spec['role']} already running"
    except Exception:  # noqa: BLE001
        pass
    facts = engine.start_component(spec["role"], timeout=spec.get("timeout", 60.0))
    return f"started {spec['role']} again ({facts})"


def undo_rename(spec: dict, engine=None) -> str:
    if os.path.lexists(spec["from"]):
        os.replace(spec["from"], spec["to"])
        return f"moved {spec['from']} back to {spec['to']}"
    return f"{spec['from']} is gone: nothing to do"


# -- the faults ---------------------------------------------------------------------------------

_TARGET_DOC = "`component`, `container` (for shim/container)"


@fault("fault.stop", FaultStop, "SIGTERM, wait `timeout`, then SIGKILL; a daemon or the runtime through the "
       "engine (undone by a start), a shim or container by PID (no undo)", background=True, needs=role_needs,
       container_field="container", undo={"start": undo_start})
def fault_stop(ctx, step) -> dict:
    p, eng, led, run = step.params, ctx.engine, ctx.ledger, ctx.run
    role = p.component
    if role in ("daemon", "runtime"):
        pids = eng.pids(role)
        if not pids:
            raise CapsizeError(f"the {role} is not running")
        led.apply(run, step.action, {"role": role, "processes": identify(pids)}, {"kind": "start", "role": role})
        return eng.stop_component(role, timeout=p.timeout)
    pids, cid = targets(ctx, role, p.container)
    led.apply(run, step.action, {"role": role, "container": p.container, "processes": identify(pids)}, None)
    return eng.stop_pids(pids, p.timeout) | {"pids": pids}


def _signal_fault(ctx, step, sig: int) -> dict:
    p, eng, led, run = step.params, ctx.engine, ctx.ledger, ctx.run
    role, container = p.component, p.container
    if role in ("daemon", "runtime"):
        pids = eng.pids(role)
        if not pids:
            raise CapsizeError(f"the {role} is not running")
    else:
        pids, _ = targets(ctx, role, container)
    ident = identify(pids)
    target = {"role": role, "container": container, "processes": ident, "signal": signal.Signals(sig).name}
    if sig == signal.SIGCONT:
        led.apply(run, step.action, target, None)
        _signal(pids, sig)
        unsettled = _await_job_state(pids, stopped=False)
        for e in led.outstanding(run):
            if e["undo"].get("kind") == "signal" and e["target"].get("role") == role \
                    and e["target"].get("container") == container:
                led.undone(run, e["id"], "harness", f"resumed by step {step.id or step.action}")
        return {"pids": pids} | ({"still_stopped": unsettled} if unsettled else {})
    if sig in STOPPING:
        for i in ident:
            led.apply(run, step.action, target, {"kind": "signal", "pid": i["pid"], "create_time": i["create_time"],
                                                 "signal": int(signal.SIGCONT)})
        _signal(pids, sig)
        if sig == signal.SIGSTOP:  # the others can be caught or ignored
            unsettled = _await_job_state(pids, stopped=True)
            if unsettled:
                return {"pids": pids, "not_yet_stopped": unsettled}
        return {"pids": pids}
    undo = {"kind": "start", "role": role} if role in ("daemon", "runtime") and sig not in HARMLESS else None
    led.apply(run, step.action, target, undo)
    if role in ("daemon", "runtime"):
        return eng.kill_component(role, sig)
    _signal(pids, sig)
    return {"pids": pids}


@fault("fault.kill", FaultKill, "send `signal` (default SIGKILL); a SIGSTOP is undone with SIGCONT, a "
       "terminating signal to a daemon with a start", needs=role_needs, container_field="container",
       undo={"signal": undo_signal, "start": undo_start})
def fault_kill(ctx, step) -> dict:
    return _signal_fault(ctx, step, step.params.signal)


@fault("fault.pause", FaultTarget, "SIGSTOP to the component's processes (undone with SIGCONT)",
       needs=role_needs, container_field="container", undo={"signal": undo_signal})
def fault_pause(ctx, step) -> dict:
    return _signal_fault(ctx, step, signal.SIGSTOP)


@fault("fault.resume", FaultTarget, "SIGCONT to the component's processes (settles their pause)",
       needs=role_needs, container_field="container")
def fault_resume(ctx, step) -> dict:
    return _signal_fault(ctx, step, signal.SIGCONT)


def _start(ctx, step, restart: bool) -> dict:
    p, eng = step.params, ctx.engine
    facts = {}
    if restart:
        ctx.ledger.apply(ctx.run, step.action, {"role": p.component}, {"kind": "start", "role": p.component})
        facts["stop"] = eng.stop_component(p.component)
    t0 = time.monotonic()
    kw = {"listen": p.listen} if p.listen != "socket" else {}
    facts["start"] = eng.start_component(p.component, timeout=p.timeout, wait=p.wait, **kw)
    settle_starts(ctx, p.component)
    if p.wait and p.listen == "socket" and ctx.events is not None:
        # the event streams re-subscribe after a restart: wait for it, so that the steps
        # that follow do not race it and lose their events
        wait = ctx.events.wait_runtime_subscribed if p.component == "runtime" else ctx.events.wait_daemon_subscribed
        facts["events_resubscribed"] = wait(t0, timeout=10.0)
    return facts


_START_DOC = ("(`component` daemon or runtime; `listen` (daemon): `socket`; `activator`: systemd-socket-activate "
              "holds the API socket and the first connection starts the daemon with `-H fd://`; `fd`: `-H fd://` "
              "without an activator). With `wait`, it also waits until the harness's event stream of that "
              "component is re-subscribed, so no event of the next steps is lost")


@fault("fault.start", FaultDaemon, f"start the daemon or the runtime again {_START_DOC}", background=True,
       needs=role_needs)
def fault_start(ctx, step) -> dict:
    return _start(ctx, step, restart=False)


@fault("fault.restart", FaultDaemon, f"stop, then start the daemon or the runtime {_START_DOC}",
       background=True, needs=role_needs, undo={"start": undo_start})
def fault_restart(ctx, step) -> dict:
    return _start(ctx, step, restart=True)


@fault("fault.socket.close", FaultSocket, "move the daemon's API socket aside: new connections fail as with no "
       "listener (the daemon keeps its listening fd); undone by moving it back", undo={"rename": undo_rename})
def fault_socket_close(ctx, step) -> dict:
    path = ctx.engine.api_socket()
    closed = path + ".capsize-closed"
    if not os.path.lexists(path):
        raise CapsizeError(f"the API socket {path} does not exist")
    ctx.ledger.apply(ctx.run, step.action, {"socket": path}, {"kind": "rename", "from": closed, "to": path})
    os.replace(path, closed)
    return {"socket": path, "moved_to": closed}


@fault("fault.socket.open", FaultSocket, "move the daemon's API socket back (undoes fault.socket.close)")
def fault_socket_open(ctx, step) -> dict:
    done = undo_outstanding(ctx, "fault.socket.close")
    if not done:
        raise CapsizeError("the API socket is not closed")
    return {"undone": done}
