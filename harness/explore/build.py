"""Scenario documents (plain dicts, written as YAML) for a workload under a schedule.

* :func:`trace_doc` — ``failpoint.arm {trace: true}``, the workload, ``failpoint.disarm``;
* :func:`schedule_doc` — the workload's ``setup``; ``failpoint.arm`` with the schedule's kill
  terms; the workload's steps, each allowed any outcome (``expect: {outcome: [ok, fail, unknown]}``: a
  kill makes a client call fail); ``failpoint.disarm``; ``fault.recover`` (restart a killed
  daemon, as a user would); ``container.rm --force`` of each container the workload names
  (outcome ok or fail: it may be gone); the workload again with its own expectations (a name is
  reusable, the engine works); ``container.rm --force`` again; checks ``failpoint.fired`` for
  each kill, ``consistency``, ``orphans.none``, ``cleanup.complete`` (the workload's own checks are not carried: they name its step ids).

The result replays with ``capsize run`` (it is how a shrunk finding becomes a regression test).
"""

from __future__ import annotations

import copy

ANY = {"outcome": ["ok", "fail", "unknown"]}


def containers_of(steps: list[dict]) -> list[str]:
    """The container names the workload's steps use, in order."""
    names = []
    for step in steps:
        for verb, params in step.items():
            if verb.startswith("container.") and isinstance(params, dict) and params.get("name"):
                if params["name"] not in names:
                    names.append(params["name"])
    return names


def _lenient(step: dict) -> dict:
    s = copy.deepcopy(step)
    s["expect"] = dict(ANY)
    s.pop("id", None)
    return s


def trace_doc(workload: dict) -> dict:
    return {"name": f"{workload['name']}--trace", "description": f"trace run of {workload['name']}",
            "tags": ["explore"], "engines": ["capsize"], "setup": copy.deepcopy(workload.get("setup", [])),
            "steps": [{"failpoint.arm": {"trace": True}}] + copy.deepcopy(workload["steps"])
            + [{"failpoint.disarm": {}, "id": "trace"}],
            "teardown": [{"container.rm": {"name": n, "force": True}, "expect": dict(ANY)}
                         for n in containers_of(workload["steps"])]}


def schedule_doc(workload: dict, schedule, steps: list[dict] | None = None) -> dict:
    """*steps*: a sub-list of the workload's steps (shrinking); default all."""
    steps = copy.deepcopy(workload["steps"] if steps is None else steps)
    names = containers_of(workload.get("setup", []) + steps)
    rm = [{"container.rm": {"name": n, "force": True}, "expect": dict(ANY)} for n in names]
    body = [{"failpoint.arm": {"points": schedule.terms()}, "id": "armed"}]
    body += [_lenient(s) for s in steps]
    body += [{"failpoint.disarm": {}, "id": "disarmed"}, {"fault.recover": {}, "id": "recovered"}]
    body += copy.deepcopy(rm)
    again = []
    for i, s in enumerate(steps):
        s = copy.deepcopy(s)
        s["id"] = f"again-{i + 1}"
        again.append(s)
    body += again + copy.deepcopy(rm)
    checks = [{"failpoint.fired": {"point": pid}} for pid, _n in schedule.kills]
    checks += [{"orphans.none": {"within": "5s"}}, {"cleanup.complete": {"within": "10s"}}]
    return {"name": f"{workload['name']}--{schedule.key}".replace("@", "-at-")[:200],
            "description": (f"{workload['name']} with a SIGKILL at {', '.join(f'{p} (hit {n})' for p, n in schedule.kills)}; "
                            "then the engine is brought back, the workload's containers removed, and the "
                            "workload run again: it must succeed and leave nothing behind."),
            "tags": ["explore"], "engines": ["capsize"], "setup": copy.deepcopy(workload.get("setup", [])),
            "steps": body, "teardown": copy.deepcopy(rm), "checks": checks}
