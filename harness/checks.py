"""Evaluating checks at their time: once, or re-evaluated for their ``within``.

The checks themselves (parameter models and evaluators) are registered verbs
(:mod:`harness.verbs.checks`, :mod:`harness.verbs.systemd`). :func:`evaluate` runs one
:class:`~harness.scenario.models.Check` with its ``within`` (re-evaluated every 0.25 s until it
holds or the time is up) and returns a result dict::

    {"check", "kind", "source" (file:line or None), "timing", "status": "pass"|"fail"|"n/a", "reason", "expected", "seen",
     "evidence": [...], "attempts", "within", "wall", "t", "elapsed"}

A check never passes for lack of data: what cannot be evaluated on an engine is n/a with the reason.
"""

from __future__ import annotations

import time

from harness.verbs.registry import FAIL, NA, PASS, Verdict, evaluate_once

__all__ = ["FAIL", "NA", "PASS", "Verdict", "evaluate", "evaluate_once", "result_dict"]


def evaluate(ctx, check, timing: str | None = None) -> dict:
    """Evaluate *check*, re-trying for its ``within``; returns the result dict (see module doc)."""
    start_wall, start = time.time(), time.monotonic()
    deadline = start + check.within
    attempts = 0
    while True:
        attempts += 1
        v = evaluate_once(ctx, check)
        if v.status != FAIL or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    return result_dict(ctx, check, v, attempts, start_wall, start, timing)


def result_dict(ctx, check, v: Verdict, attempts: int, start_wall: float, start: float, timing=None) -> dict:
    t = timing or ":".join(x for x in check.timing if x)
    return {"check": check.label, "kind": check.kind, "source": check.source, "timing": t,
            "status": v.status, "reason": v.reason,
            "expected": v.expected, "seen": v.seen, "evidence": v.evidence, "attempts": attempts,
            "within": check.within, "wall": start_wall, "t": ctx.t(start),
            "elapsed": round(time.monotonic() - start, 3)}
