"""Named crash points (:mod:`runtime.api.failpoints`) as scenario steps: arm, disarm, bring back.

* ``failpoint.arm`` — ``points: {id: term}`` (fail(9) terms: ``1*kill``, ``2*off->1*kill``,
  ``delay(2s)``) and/or ``trace: true``: written to the engine's ``armed.json`` (every tier
  re-reads it at its next point); the ledger's undo (``disarm``) clears it;
* ``failpoint.disarm`` — nothing armed, no trace; the step's value holds what was passed
  (``trace``: ``[[id, proc, hits]]`` in first-passage order) and what fired (``fired``);
* ``fault.recover`` — bring the engine back as a user would: start each daemon (daemon,
  runtime) that is not running (a killed tier), and wait until the API answers (any engine);
* check ``failpoint.fired`` — the point fired (``fired.jsonl``: its id, hit, pid, process), so a
  kill is known to have happened there and not elsewhere.

The failpoint verbs need capsize's engines (capability ``failpoints``).
"""

from __future__ import annotations

import json
import os
import time

from pydantic import field_validator

from harness.scenario.types import Model
from harness.verbs.registry import FAIL, PASS, Verdict, check, fault, undo_outstanding
from runtime.api import failpoints as fp
from runtime.errors import CapsizeError, InvalidArgument


class FailpointArm(Model):
    points: dict[str, str] = {}
    trace: bool = False

    @field_validator("points")
    @classmethod
    def _known(cls, v):
        for pid, term in v.items():
            if pid not in fp.points():
                raise ValueError(f"unknown crash point {pid!r} (runtime/api/failpoints.py lists them)")
            try:
                fp.parse_terms(str(term))
            except InvalidArgument as e:
                raise ValueError(str(e)) from None
        return v


class FailpointEmpty(Model):
    pass


class FailpointFired(Model):
    point: str
    min: int = 1

    @field_validator("point")
    @classmethod
    def _known(cls, v):
        if v not in fp.points():
            raise ValueError(f"unknown crash point {v!r} (runtime/api/failpoints.py lists them)")
        return v


def _dir(engine) -> str:
    d = getattr(engine, "failpoint_dir", None)
    if not d:
        raise CapsizeError(f"engine {engine.name} has no named crash points")
    os.makedirs(d, exist_ok=True)
    return d


def write_armed(directory: str, armed: dict) -> None:
    """Replace ``<directory>/armed.json`` atomically (a tier never reads half of it)."""
    tmp = os.path.join(directory, f".{fp.ARMED}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(armed, f)
    os.replace(tmp, os.path.join(directory, fp.ARMED))


def read_jsonl(path: str) -> list[dict]:
    """The JSON lines of *path* (:func:`harness.jsonlines.read`: [] if none, a torn last line skipped)."""
    from harness.jsonlines import read
    return read(path)


def trace_summary(records: list[dict]) -> list[list]:
    """``[[id, proc, hits], ...]`` in the order each point was first passed."""
    seen: dict[str, list] = {}
    for r in records:
        e = seen.setdefault(r["id"], [r["id"], r.get("proc", ""), 0])
        e[2] += 1
    return list(seen.values())


def undo_disarm(spec: dict, engine) -> str:
    path = spec.get("dir")
    if path and os.path.isdir(path):
        write_armed(path, {})
        return "crash points disarmed"
    return "no crash points dir left"


@fault("failpoint.arm", FailpointArm, "arm named crash points of capsize's tiers (`points: {id: term}`, fail(9) "
       "terms such as `1*kill`, `2*off->1*kill`, `delay(2s)`) and/or `trace: true` (every point passed is "
       "recorded); runtime/api/failpoints.py lists the ids", needs=("failpoints",), undo={"disarm": undo_disarm})
def failpoint_arm(ctx, step) -> dict:
    p = step.params
    d = _dir(ctx.engine)
    ctx.ledger.apply(ctx.run, step.action, {"points": dict(p.points), "trace": p.trace}, {"kind": "disarm", "dir": d})
    write_armed(d, {"trace": p.trace, "points": dict(p.points)})
    return {"dir": d, "points": dict(p.points), "trace": p.trace}


@fault("failpoint.disarm", FailpointEmpty, "disarm every crash point; the value holds the points passed "
       "(`trace`: `[id, process, hits]`) and those that fired", needs=("failpoints",), params_doc="`{}`")
def failpoint_disarm(ctx, step) -> dict:
    d = _dir(ctx.engine)
    undo_outstanding(ctx, "failpoint.arm")
    write_armed(d, {})
    return {"trace": trace_summary(read_jsonl(os.path.join(d, fp.TRACE))),
            "fired": read_jsonl(os.path.join(d, fp.FIRED))}


@fault("fault.recover", FailpointEmpty, "bring the engine back as a user would: start the daemon and the "
       "runtime if either is not running (a killed tier), and wait until the API answers", params_doc="`{}`")
def fault_recover(ctx, step) -> dict:
    started = {}
    for role in ("runtime", "daemon"):
        if not ctx.engine.pids(role):
            started[role] = ctx.engine.start_component(role)
    deadline = time.monotonic() + 30
    from harness.reference.docker import ping
    from runtime.highlevel.client import RuntimeClient
    while getattr(ctx.engine, "runtime_address", None):  # capsize: a killed runtime leaves its socket
        # file, so wait until the new one answers
        try:
            RuntimeClient(ctx.engine.runtime_address, timeout=2).version()
            break
        except CapsizeError:
            if time.monotonic() > deadline:
                raise CapsizeError("the runtime daemon did not answer within 30s after recovery") from None
            time.sleep(0.05)
    while not ping(ctx.engine.api_socket()):
        if time.monotonic() > deadline:
            raise CapsizeError("the engine daemon did not answer within 30s after recovery")
        time.sleep(0.05)
    return {"started": started}


@check("failpoint.fired", FailpointFired, "the crash point `point` fired (at least `min` times): its id, hit, "
       "pid and process from the engine's fired.jsonl")
def failpoint_fired(ctx, p: FailpointFired) -> Verdict:
    fired = [r for r in read_jsonl(os.path.join(_dir(ctx.engine), fp.FIRED)) if r.get("id") == p.point]
    status = PASS if len(fired) >= p.min else FAIL
    return Verdict(status, expected=f"{p.point} fired at least {p.min} time(s)", seen=f"{len(fired)} time(s)",
                   evidence=fired)
