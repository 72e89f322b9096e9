"""Syscall faults: strace's fault injection on a component's processes (``strace -f -e inject=...``).

Three registrations (:mod:`harness.verbs.registry`): ``fault.syscall.delay`` attaches strace
(undo kind ``untrace``: detach the strace tracing the recorded ``processes``; ``terminate``:
end a helper such as strace, SIGTERM then SIGKILL after 5 s), ``fault.syscall.kill`` (the same
undo) SIGKILLs the component on the Nth call of a syscall, and ``fault.syscall.clear`` detaches
every one (teardown does too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Annotated

import psutil
from pydantic import Field, model_validator

from harness.observe.proctree import disown, own
from harness.pids import identify, same_process, tracer_of
from harness.reference.cleanup import alive
from harness.scenario.types import Empty, Duration, FaultTarget, Model
from harness.verbs.faults import role_needs, targets
from harness.verbs.registry import fault, undo_outstanding
from runtime.errors import CapsizeError
from runtime.runtimes import which


class FaultSyscall(FaultTarget):
    """``fault.syscall.delay``: strace's fault injection on the component's processes (``-f``).

    ``delay``: added on syscall entry; ``when``: strace's ``first[..last][+[step]]`` expression;
    ``error``: an errno name to fail the syscall with instead of (or after) the delay.
    """

    syscall: Annotated[str, Field(pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$")]
    delay: Duration | None = None
    when: Annotated[str, Field(pattern=r"^\d+(\.\.\d+)?(\+\d*)?$")] | None = None
    error: Annotated[str, Field(pattern=r"^E[A-Z0-9]+$")] | None = None

    @model_validator(mode="after")
    def _something(self):
        if self.delay is None and self.error is None:
            raise ValueError("give delay, error or both")
        return self




def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def undo_terminate(spec: dict, engine=None) -> str:
    pid = spec["pid"]
    if not same_process(pid, spec.get("create_time")):
        return f"pid {pid} is gone: nothing to do"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.02)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            _reap(pid)
            time.sleep(0.02)
    _reap(pid)
    return f"terminated pid {pid}"


def undo_untrace(spec: dict, engine=None) -> str:
    """Detach the strace that traces the recorded ``processes`` (SIGTERM makes strace detach)."""
    done = []
    for proc in spec.get("processes", []):
        tracer = tracer_of(proc["pid"])
        if not tracer or not same_process(proc["pid"], proc.get("create_time")):
            continue
        try:
            name = psutil.Process(tracer).name()
        except psutil.Error:
            continue
        if name == "strace":
            done.append(undo_terminate({"kind": "terminate", "pid": tracer, "create_time": None}))
    return "; ".join(done) or "not traced any more"


def stop_tracers(ctx) -> None:
    """End and reap every strace this run started (strace also exits when its tracees are gone)."""
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


@fault("fault.syscall.delay", FaultSyscall, "strace's fault injection on the component's processes: `delay` "
       "(on entry), `error` (an errno), `when` (strace's `first..last+step`); `fault.syscall.clear` (or teardown) "
       "detaches it", needs=role_needs, container_field="container",
       undo={"untrace": undo_untrace, "terminate": undo_terminate})
def fault_syscall_delay(ctx, step) -> dict:
    return _attach(ctx, step, strace_argv)


class FaultSyscallKill(FaultTarget):
    """``fault.syscall.kill``: SIGKILL the component's process on the *when*-th call of *syscall*
    by it or any of its threads and children (strace ``-f -e inject=SYSCALL:signal=SIGKILL:when=N``):
    the generic crash point "the Nth call of syscall S by component C" of any engine."""

    syscall: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    when: Annotated[int, Field(ge=1)] = 1


def strace_kill_argv(pids: list[int], p) -> list[str]:
    """strace's command line for a ``fault.syscall.kill``: only the *when*-th call is hit."""
    argv = [which("strace") or "strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={p.syscall}",
            "-e", f"inject={p.syscall}:signal=SIGKILL:when={p.when}"]
    for pid in pids:
        argv += ["-p", str(pid)]
    return argv


@fault("fault.syscall.kill", FaultSyscallKill, "strace's fault injection: SIGKILL the component on the `when`-th "
       "call of `syscall` (by it, its threads and children: `-f`); `fault.syscall.clear` (or teardown) detaches it",
       needs=role_needs, container_field="container", undo={"untrace": undo_untrace, "terminate": undo_terminate})
def fault_syscall_kill(ctx, step) -> dict:
    return _attach(ctx, step, strace_kill_argv)


def _attach(ctx, step, make_argv) -> dict:
    p = step.params
    if not which("strace"):
        raise CapsizeError("strace is not installed: syscall faults need it (apt-get install strace)")
    pids, cid = targets(ctx, p.component, p.container)
    ident = identify(pids)
    ctx.ledger.apply(ctx.run, step.action, {"role": p.component, "container": p.container, "processes": ident,
                                             "syscall": getattr(p, "syscall", None) or p.syscalls},
                    {"kind": "untrace", "processes": ident})
    argv = make_argv(pids, p)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    own(proc.pid)
    deadline = time.monotonic() + 10
    while any(tracer_of(pid) != proc.pid for pid in pids):
        if proc.poll() is not None:
            raise CapsizeError(f"strace exited with {proc.returncode}: {proc.stderr.read().decode(errors='replace')[:300]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise CapsizeError("strace did not attach within 10s")
        time.sleep(0.01)
    ctx.tracers.append(proc)
    return {"strace_pid": proc.pid, "pids": pids, "argv": argv, "processes": ident}


class FaultSyscallCount(FaultTarget):
    """``fault.syscall.count``: count the component's calls of *syscalls* (``strace -f -c``), for an
    explorer's trace run; ``fault.syscall.clear`` ends it and returns the counts."""

    syscalls: Annotated[str, Field(pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$")]


def parse_strace_summary(text: str) -> dict[str, int]:
    """strace ``-c``'s table -> ``{syscall: calls}`` (rows ``% time, seconds, usecs/call, calls,
    [errors,] syscall``; the ``total`` row is left out)."""
    counts = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[-1] != "total" and cols[0].replace(".", "", 1).isdigit():
            try:
                counts[cols[-1]] = int(cols[3])
            except ValueError:
                continue
    return counts


@fault("fault.syscall.count", FaultSyscallCount, "count the component's calls of `syscalls` (`strace -f -c`: "
       "threads and children too); `fault.syscall.clear` ends it, its value's `counts` has them by role",
       needs=role_needs, container_field="container", undo={"untrace": undo_untrace, "terminate": undo_terminate})
def fault_syscall_count(ctx, step) -> dict:
    p = step.params
    out = os.path.join(ctx.dir, f"strace-count-{p.component}-{len(getattr(ctx, 'syscall_counts', []))}.txt")

    def argv(pids, p):
        a = [which("strace") or "strace", "-f", "-c", "-qq", "-o", out, "-e", f"trace={p.syscalls}"]
        for pid in pids:
            a += ["-p", str(pid)]
        return a
    facts = _attach(ctx, step, argv)
    if not hasattr(ctx, "syscall_counts"):
        ctx.syscall_counts = []
    ctx.syscall_counts.append((p.component, out))
    return {**facts, "file": out}


@fault("fault.syscall.clear", Empty, "detach every strace of `fault.syscall.delay`, `.kill` and `.count`; the "
       "value's `gone` lists the traced processes that died meanwhile, `counts` the counted calls by role",
       params_doc="`{}`")
def fault_syscall_clear(ctx, step) -> dict:
    traced = [proc for e in ctx.ledger.outstanding(ctx.run) if e["fault"].startswith("fault.syscall.")
              for proc in e["target"].get("processes") or []]
    gone = [proc for proc in traced if not same_process(proc["pid"], proc.get("create_time"))]
    done = [line for name in ("fault.syscall.delay", "fault.syscall.kill", "fault.syscall.count")
            for line in undo_outstanding(ctx, name)]
    stop_tracers(ctx)
    counts: dict[str, dict[str, int]] = {}
    for role, path in getattr(ctx, "syscall_counts", []):
        try:
            with open(path) as f:
                for name, n in parse_strace_summary(f.read()).items():
                    counts.setdefault(role, {})[name] = counts.get(role, {}).get(name, 0) + n
        except OSError:
            pass
    ctx.syscall_counts = []
    return {"undone": done, "gone": gone, "counts": counts}
