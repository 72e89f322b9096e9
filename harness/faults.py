"""Faults by role, applied through the engine adapter and written to the ledger first.

=========================  ===================================================================
``fault.stop``             SIGTERM and wait (SIGKILL after ``timeout``); daemon/runtime through
                           the adapter (undo: start again), shim/container by PID (no undo)
``fault.kill``             any signal (default SIGKILL); SIGSTOP is undone with SIGCONT, a
                           terminating signal to a daemon with a start
``fault.pause|resume``     SIGSTOP / SIGCONT to the component's processes
``fault.start|restart``    start (stop, then start) the daemon or the runtime
``fault.socket.close|open``  move the daemon's API socket path aside / back (new connections
                           fail as with no listener; the daemon keeps its listening fd)
``fault.syscall.delay``    ``strace -f -e inject=<syscall>:delay_enter=<us>[:error=E][:when=W]``
                           attached to the component's processes; ``fault.syscall.clear`` (or
                           teardown) detaches it
``fault.service.*``        ``systemctl stop|start|restart <unit>`` (engines under systemd; the
                           unit by name or by role; a stop is undone with a start)
``fault.service.dropin``   a runtime drop-in for a unit (``/run/systemd/system/<unit>.d/``) and
                           daemon-reload; undone by removing it and reloading again
=========================  ===================================================================

Each returns an :class:`~harness.context.ActionResult`: ``ok`` when applied, ``fail`` when it
could not be (no such process, component already down: the error says why).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from harness import ledger as ledger_mod
from harness.context import ActionResult
from harness.observe.proctree import own
from runtime.errors import CapsizeError
from runtime.runtimes import which

STOPPING = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
HARMLESS = {signal.SIGCONT, signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG}


def _targets(ctx, role: str, container: str | None) -> tuple[list[int], str | None]:
    cid = ctx.container_id(container) if container else None
    if container and not cid:
        raise CapsizeError(f"container {container} does not exist (it was never created)")
    pids = ctx.engine.pids(role, cid)
    if not pids:
        what = f"{role} of container {container}" if container else role
        raise CapsizeError(f"no {what} process is running")
    return pids, cid


def _ident(pids: list[int]) -> list[dict]:
    out = []
    for pid in pids:
        try:
            out.append({"pid": pid, "create_time": psutil.Process(pid).create_time()})
        except psutil.Error:
            out.append({"pid": pid, "create_time": None})
    return out


def apply(ctx, step) -> ActionResult:
    """Apply the fault of *step*; never raises for an expected failure (it is the outcome)."""
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    try:
        res.value = _apply(ctx, step) or {}
        res.outcome = "ok"
    except CapsizeError as e:
        res.outcome, res.error = "fail", str(e)
    except OSError as e:
        res.outcome, res.error = "fail", f"{type(e).__name__}: {e}"
    res.duration = time.monotonic() - res.mono
    return res


def _apply(ctx, step) -> dict:
    action, p, eng, led, run = step.action, step.params, ctx.engine, ctx.ledger, ctx.run
    if action == "fault.socket.close":
        path = eng.api_socket()
        closed = path + ".capsize-closed"
        if not os.path.lexists(path):
            raise CapsizeError(f"the API socket {path} does not exist")
        led.apply(run, action, {"socket": path}, {"kind": "rename", "from": closed, "to": path})
        os.replace(path, closed)
        return {"socket": path, "moved_to": closed}
    if action == "fault.socket.open":
        done = []
        for e in led.outstanding(run):
            if e["fault"] == "fault.socket.close":
                done.append(ledger_mod.undo(e["undo"]))
                led.undone(run, e["id"], "harness", done[-1])
        if not done:
            raise CapsizeError("the API socket is not closed")
        return {"undone": done}
    if action in ("fault.start", "fault.restart"):
        facts = {}
        if action == "fault.restart":
            led.apply(run, action, {"role": p.component}, {"kind": "start", "role": p.component})
            facts["stop"] = eng.stop_component(p.component)
        t0 = time.monotonic()
        kw = {"listen": p.listen} if p.listen != "socket" else {}
        facts["start"] = eng.start_component(p.component, timeout=p.timeout, wait=p.wait, **kw)
        _settle_starts(ctx, p.component)
        if p.wait and p.listen == "socket" and ctx.events is not None:
            # the event streams re-subscribe after a restart: wait for it, so that the steps
            # that follow do not race it and lose their events
            wait = ctx.events.wait_runtime_subscribed if p.component == "runtime" else ctx.events.wait_daemon_subscribed
            facts["events_resubscribed"] = wait(t0, timeout=10.0)
        return facts
    if action == "fault.service.dropin":
        return _dropin(ctx, step)
    if action.startswith("fault.service."):
        if not hasattr(eng, "service"):
            raise CapsizeError(f"engine {eng.name} has no systemd units")
        unit = p.resolve(eng)
        verb = action.rsplit(".", 1)[1]
        undo = {"kind": "service", "verb": "start", "unit": unit} if verb == "stop" else None
        fid = led.apply(run, action, {"unit": unit}, undo)
        facts = eng.service(verb, unit)
        if verb in ("start", "restart"):
            for e in led.outstanding(run):
                if e["fault"] == "fault.service.stop" and e["target"]["unit"] == unit:
                    led.undone(run, e["id"], "harness", f"started by step ({fid})")
        return facts
    if action == "fault.syscall.clear":
        done = []
        for e in led.outstanding(run):
            if e["fault"] == "fault.syscall.delay":
                done.append(ledger_mod.undo(e["undo"]))
                led.undone(run, e["id"], "harness", done[-1])
        stop_tracers(ctx)
        return {"undone": done}
    role, container = p.component, getattr(p, "container", None)
    if action == "fault.stop":
        if role in ("daemon", "runtime"):
            pids = eng.pids(role)
            if not pids:
                raise CapsizeError(f"the {role} is not running")
            led.apply(run, action, {"role": role, "processes": _ident(pids)}, {"kind": "start", "role": role})
            return eng.stop_component(role, timeout=p.timeout)
        pids, cid = _targets(ctx, role, container)
        led.apply(run, action, {"role": role, "container": container, "processes": _ident(pids)}, None)
        return eng.stop_pids(pids, p.timeout) | {"pids": pids}
    if action in ("fault.kill", "fault.pause", "fault.resume"):
        sig = {"fault.pause": signal.SIGSTOP, "fault.resume": signal.SIGCONT}.get(action) or p.signal
        if role in ("daemon", "runtime"):
            pids = eng.pids(role)
            if not pids:
                raise CapsizeError(f"the {role} is not running")
            cid = None
        else:
            pids, cid = _targets(ctx, role, container)
        ident = _ident(pids)
        target = {"role": role, "container": container, "processes": ident, "signal": signal.Signals(sig).name}
        if sig == signal.SIGCONT:
            led.apply(run, action, target, None)
            _signal(pids, sig)
            for e in led.outstanding(run):
                if e["undo"].get("kind") == "signal" and e["target"].get("role") == role \
                        and e["target"].get("container") == container:
                    led.undone(run, e["id"], "harness", f"resumed by step {step.id or action}")
            return {"pids": pids}
        if sig in STOPPING:
            undos = [{"kind": "signal", "pid": i["pid"], "create_time": i["create_time"], "signal": int(signal.SIGCONT)}
                     for i in ident]
            for u in undos:
                led.apply(run, action, target, u)
            _signal(pids, sig)
            return {"pids": pids}
        undo = {"kind": "start", "role": role} if role in ("daemon", "runtime") and sig not in HARMLESS else None
        led.apply(run, action, target, undo)
        if role in ("daemon", "runtime"):
            return eng.kill_component(role, sig)
        _signal(pids, sig)
        return {"pids": pids}
    if action == "fault.syscall.delay":
        return _syscall_delay(ctx, step)
    raise CapsizeError(f"unknown fault {action}")


def _dropin(ctx, step) -> dict:
    """``fault.service.dropin``: write the runtime drop-in (ledger first: undo kind ``dropin``)."""
    from harness.engines.systemd import dropin_path, show, write_dropin
    p, eng = step.params, ctx.engine
    if not hasattr(eng, "unit_of"):
        raise CapsizeError(f"engine {eng.name} has no systemd units")
    unit = p.resolve(eng)
    name = "50-capsize-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in ctx.run)[:80]
    path = dropin_path(unit, name)
    ctx.ledger.apply(ctx.run, step.action, {"unit": unit, "section": p.section, "settings": dict(p.settings)},
                     {"kind": "dropin", "path": path, "unit": unit})
    write_dropin(unit, name, p.section, p.settings)
    return {"unit": unit, "path": path, "now": show(unit, *p.settings)}


def stop_tracers(ctx) -> None:
    """End and reap every strace this run started (strace also exits when its tracees are gone)."""
    from harness.observe.proctree import disown
    for tracer in ctx.tracers:
        if tracer.poll() is None:
            tracer.terminate()
        try:
            tracer.wait(10)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        disown(tracer.pid)
    ctx.tracers.clear()


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _settle_starts(ctx, role: str) -> None:
    """A started component undoes the outstanding 'start' entries of its role."""
    for e in ctx.ledger.outstanding(ctx.run):
        if e["undo"].get("kind") == "start" and e["undo"].get("role") == role:
            ctx.ledger.undone(ctx.run, e["id"], "harness", "started by a step")


def strace_argv(pids: list[int], p) -> list[str]:
    """strace's command line for a ``fault.syscall.delay`` (strace 5.3+ inject syntax)."""
    spec = f"inject={p.syscall}"
    if p.delay is not None:
        spec += f":delay_enter={int(p.delay * 1_000_000)}"
    if p.error:
        spec += f":error={p.error}"
    if p.when:
        spec += f":when={p.when}"
    argv = [which("strace") or "strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={p.syscall}", "-e", spec]
    for pid in pids:
        argv += ["-p", str(pid)]
    return argv


def _syscall_delay(ctx, step) -> dict:
    p = step.params
    if not which("strace"):
        raise CapsizeError("strace is not installed: syscall faults need it (apt-get install strace)")
    pids, cid = _targets(ctx, p.component, p.container)
    ident = _ident(pids)
    ctx.ledger.apply(ctx.run, step.action, {"role": p.component, "container": p.container, "processes": ident,
                                             "syscall": p.syscall}, {"kind": "untrace", "processes": ident})
    argv = strace_argv(pids, p)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    own(proc.pid)
    deadline = time.monotonic() + 10
    while any(ledger_mod.tracer_of(pid) != proc.pid for pid in pids):
        if proc.poll() is not None:
            raise CapsizeError(f"strace exited with {proc.returncode}: {proc.stderr.read().decode(errors='replace')[:300]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise CapsizeError("strace did not attach within 10s")
        time.sleep(0.01)
    ctx.tracers.append(proc)
    return {"strace_pid": proc.pid, "pids": pids, "argv": argv}
