"""Flow actions: ``sleep``, ``wait`` (for a condition), ``await`` (a background step), ``snapshot``.

One registration each (:mod:`harness.verbs.registry`). A ``wait`` condition is one check spec
(any registered check, without timing) or an ``event`` match; :class:`Condition`'s check type
is the registry's CheckSpec, filled in by :mod:`harness.scenario.models` once every check is
registered.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import Field, model_validator

from harness.context import ActionResult
from harness.outcome import classify_exception
from harness.scenario.types import Duration, EventMatch, Model
from harness.verbs.registry import PASS, action, evaluate_once

StepId = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")]


class Condition(Model):
    """A condition for ``wait``/``fail_if``: one check spec (no timing fields) or an ``event``."""

    event: EventMatch | None = None
    check: "CheckSpec | None" = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data):
        if isinstance(data, dict) and "event" not in data and "check" not in data:
            return {"check": data}
        return data

    @model_validator(mode="after")
    def _one(self):
        if (self.event is None) == (self.check is None):
            raise ValueError("a condition is either {event: {...}} or one check, e.g. {container.state: {...}}")
        return self


class WaitSpec(Model):
    """``wait``: until ``for`` holds; fails after ``timeout`` or as soon as ``fail_if`` holds."""

    for_: Condition = Field(alias="for")
    timeout: Duration = 30.0
    fail_if: Condition | None = None
    interval: Duration = 0.1



def condition_holds(ctx, cond: Condition) -> tuple[bool, dict]:
    """For ``wait``: whether *cond* (an event match or a check spec) holds now, with detail."""
    if cond.event is not None:
        e = cond.event
        cid = ctx.container_id(e.container) if e.container else None
        if e.container and not cid:
            return False, {"events": 0, "why": f"container {e.container} unknown yet"}
        found = ctx.events.matching(e.source, e.action, cid, e.attrs)
        return bool(found), {"events": len(found)}
    v = evaluate_once(ctx, cond.check)
    return v.status == PASS, {"status": v.status, "seen": v.seen, "reason": v.reason}


@action("sleep", Duration, "do nothing for a while", params_doc="a duration", background=True)
def sleep_action(ctx, step) -> ActionResult:
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    time.sleep(step.params)
    res.duration = time.monotonic() - res.mono
    return res


@action("wait", WaitSpec, "poll `for` until it holds (ok), `fail_if` holds (fail) or `timeout` passes (fail)",
        params_doc="`for:` a check (`{container.state: {...}}`) or `{event: {source, action, container, attrs}}`; "
                   "`timeout`, `fail_if` (same forms), `interval`")
def wait_action(ctx, step) -> ActionResult:
    spec = step.params
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    deadline = res.mono + spec.timeout
    polls = 0
    while True:
        polls += 1
        held, detail = condition_holds(ctx, spec.for_)
        if held:
            res.outcome, res.value = "ok", {"polls": polls, "evidence": detail}
            break
        if spec.fail_if is not None:
            bad, bad_detail = condition_holds(ctx, spec.fail_if)
            if bad:
                res.outcome, res.error = "fail", "fail_if held"
                res.value = {"polls": polls, "evidence": bad_detail}
                break
        if time.monotonic() >= deadline:
            res.outcome, res.error = "fail", f"not within {spec.timeout:g}s"
            res.value = {"polls": polls, "last": detail}
            break
        time.sleep(spec.interval)
    res.duration = time.monotonic() - res.mono
    return res


# ``await`` has no executor: the runner waits for the background step (its expect is checked then).
action("await", str, "wait for a background step to end; its `expect` is checked then",
       params_doc="the `id` of a background step", awaits=True)(None)


@action("snapshot", StepId, "record the process tree, the host state, the daemon's and the runtime's views",
        params_doc="a label")
def snapshot_action(ctx, step) -> ActionResult:
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    idx = ctx.take_snapshot(step.params, host_state=True)
    views = {}
    try:
        views["runtime"] = {cid: list(v) for cid, v in ctx.engine.runtime_view().items()}
    except Exception as e:  # noqa: BLE001 - down or not supported: recorded as such
        views["runtime"] = f"unavailable: {e}"
    client = ctx.engine.client(timeout=5)
    try:
        views["daemon"] = {c["Id"]: {"names": c["Names"], "state": c["State"], "status": c["Status"]}
                           for c in client.api.containers(all=True)}
    except Exception as e:  # noqa: BLE001
        views["daemon"] = f"unavailable: {classify_exception(e)[1]}"
    finally:
        client.close()
    res.value = {"snapshot": idx, "views": views}
    res.duration = time.monotonic() - res.mono
    return res
