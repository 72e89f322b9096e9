"""Checks over what was recorded: each gives ``pass``, ``fail`` (with evidence) or ``n/a`` (with why).

:func:`evaluate` runs one :class:`~harness.scenario.models.Check` with its ``within`` (re-evaluated
every 0.25 s until it holds or the time is up) and returns a result dict::

    {"check", "kind", "timing", "status": "pass"|"fail"|"n/a", "reason", "expected", "seen",
     "evidence": [...], "attempts", "wall", "t", "elapsed"}

``evidence`` holds what proves the verdict: the processes of a snapshot (with its index in
snapshots.jsonl), the events, the log lines, the views compared. A check never passes for lack
of data: what cannot be evaluated on an engine is n/a with the reason.
"""

from __future__ import annotations

import os
import re
import time

from harness.scenario import models as m
from runtime.errors import CapsizeError, Unimplemented

PASS, FAIL, NA = "pass", "fail", "n/a"


class Verdict:
    """One evaluation: status, expected, seen, evidence, reason."""

    def __init__(self, status: str, expected=None, seen=None, evidence=None, reason: str = ""):
        self.status, self.expected, self.seen = status, expected, seen
        self.evidence, self.reason = evidence or [], reason


def _proc_brief(p: dict) -> dict:
    return {k: p.get(k) for k in ("pid", "ppid", "name", "status", "role", "container_name", "cgroup")} | {
        "cmdline": " ".join(p.get("cmdline") or [])[:160]}


def _snap(ctx, label: str) -> dict:
    ctx.take_snapshot(label)
    return ctx.last_snapshot


# -- individual checks ----------------------------------------------------------------------------

def _container_state(ctx, p: m.ContainerStateCheck) -> Verdict:
    cid = ctx.container_id(p.name)
    expected = {k: v for k, v in (("status", p.status), ("exit_code", p.exit_code), ("running", p.running))
                if v is not None}
    client = ctx.engine.client(timeout=10)
    try:
        state = client.api.inspect_container(cid or p.name)["State"]
    except Exception as e:  # noqa: BLE001
        import docker
        if isinstance(e, docker.errors.NotFound):
            state = None
        else:
            from harness.outcome import classify_exception
            return Verdict(FAIL, expected, {"daemon": f"unreachable: {classify_exception(e)[1]}"},
                           reason="the daemon did not answer")
    finally:
        client.close()
    die = ctx.events.matching("daemon", "die", cid) if cid and ctx.events else []
    provenance = {"inspect": state.get("ExitCode") if state else None,
                  "die_event": die[-1]["attrs"].get("exitCode") if die else None}
    try:
        rv = ctx.engine.runtime_view().get(cid) if cid else None
        provenance["runtime"] = list(rv) if rv else "no task"
    except Exception as e:  # noqa: BLE001
        provenance["runtime"] = f"unavailable: {e}"
    if state is None:
        seen = {"status": "removed"}
    else:
        seen = {"status": state.get("Status"), "running": state.get("Running"), "pid": state.get("Pid"),
                "exit_code": state.get("ExitCode"), "finished_at": state.get("FinishedAt"),
                "error": state.get("Error") or None}
    seen["exit_code_provenance"] = provenance
    evidence = [{"die_events": [{"t": ctx.t(e["mono"]), "exitCode": e["attrs"].get("exitCode")} for e in die]}]
    ok = True
    if p.status is not None and seen["status"] != p.status:
        ok = False
    if p.running is not None and seen.get("running") != p.running:
        ok = False
    if p.exit_code is not None:
        got = seen.get("exit_code") if p.exit_code_from == "inspect" else provenance["die_event"]
        if p.exit_code_from == "event" and got is None:
            ok = False
        elif got is None or int(got) != p.exit_code:
            ok = False
    return Verdict(PASS if ok else FAIL, expected, seen, evidence)


def _process_matches(ctx, snap: dict, p: m.ProcessCheck) -> list[dict] | Verdict:
    cid = None
    if p.container:
        cid = ctx.container_id(p.container)
        if not cid:
            return Verdict(NA, reason=f"container {p.container} never existed, so its processes cannot be looked for")
    if p.role and p.role not in ctx.engine.roles:
        return Verdict(NA, reason=f"engine {ctx.engine.name} has no {p.role} process")
    by_pid = {q["pid"]: q for q in snap["processes"]}
    me = os.getpid()
    out = []
    for q in snap["processes"]:
        if q["status"] == "zombie" or q["role"] == "harness-tool":
            continue
        if p.role and q["role"] != p.role:
            continue
        if cid and q["container"] != cid:
            continue
        if p.pattern and not re.search(p.pattern, " ".join(q["cmdline"] or [q["name"]])):
            continue
        if p.cgroup and not re.search(p.cgroup, q["cgroup"] or ""):
            continue
        if p.parent_role:
            parent = by_pid.get(q["ppid"])
            prole = "harness" if q["ppid"] == me else (parent or {}).get("role")
            if prole != p.parent_role:
                continue
        out.append(q)
    return out


def _process(ctx, p: m.ProcessCheck, present: bool) -> Verdict:
    snap = _snap(ctx, "check:process")
    found = _process_matches(ctx, snap, p)
    if isinstance(found, Verdict):
        return found
    want = (f"exactly {p.count}" if p.count is not None else "at least 1") if present else "none"
    ok = (len(found) == p.count if p.count is not None else bool(found)) if present else not found
    evidence = [{"snapshot": snap["index"], "t": snap["t"], "matching": [_proc_brief(q) for q in found[:10]]}]
    if not ok and present:
        evidence.append({"engine_processes": [_proc_brief(q) for q in snap["processes"] if q["role"]][:20]})
    return Verdict(PASS if ok else FAIL, f"{want} matching process(es)", f"{len(found)}", evidence)


def _orphans(ctx) -> Verdict:
    snap = _snap(ctx, "check:orphans")
    by_pid = {q["pid"]: q for q in snap["processes"]}
    problems = []
    try:
        view = ctx.engine.runtime_view()
    except Unimplemented:
        view = None
    except CapsizeError as e:
        view = f"unavailable: {e}"
    runtime_up = bool(ctx.engine.pids("runtime")) if "runtime" in ctx.engine.roles else True
    for q in snap["processes"]:
        if q["role"] == "harness-tool":
            continue  # the harness's own tools (strace, ctr, docker): their Popen reaps them
        if q["status"] == "zombie" and (q["role"] or q["ppid"] == os.getpid()):
            problems.append({"problem": "zombie (exited, not reaped)", **_proc_brief(q)})
            continue
        if q["role"] == "container" and q["status"] != "zombie":
            parent = by_pid.get(q["ppid"])
            if parent is None or parent["role"] not in ("shim", "container"):
                problems.append({"problem": "container process without its shim", **_proc_brief(q)})
        if q["role"] == "shim":
            if not runtime_up:
                problems.append({"problem": "shim without its runtime (the runtime is down)", **_proc_brief(q)})
            elif isinstance(view, dict) and q["container"] not in view:
                problems.append({"problem": "shim whose task the runtime does not know", **_proc_brief(q)})
    if isinstance(view, str) and runtime_up:
        problems.append({"problem": f"runtime view {view}"})
    return Verdict(PASS if not problems else FAIL, "no zombies, no container without its shim, no shim without its runtime",
                   f"{len(problems)} orphan(s)", [{"snapshot": snap["index"], "t": snap["t"], "orphans": problems[:20]}])


def _events_order(ctx, p: m.EventsOrderCheck) -> Verdict:
    cid = ctx.container_id(p.container)
    if not cid:
        return Verdict(NA, reason=f"container {p.container} never existed")
    sources = ["daemon", "runtime"] if p.source == "both" else [p.source]
    seen, bad, na = {}, [], []
    for source in sources:
        if source == "runtime" and ctx.engine.runtime_events_argv() is None:
            na.append(f"engine {ctx.engine.name} has no runtime event stream")
            continue
        phases = ctx.engine.lifecycle_actions(source)
        events = [e for e in ctx.events.snapshot() if e["source"] == source and e["container"] == cid]
        seq = []
        for e in events:
            for phase, actions in phases.items():
                if e["action"] in actions and phase in p.phases:
                    seq.append((phase, e["action"], ctx.t(e["mono"])))
        seen[source] = [f"{a}@{t:.3f}s" for _, a, t in seq]
        order = [ph for ph, _, _ in seq]
        pos = 0
        for want in p.phases:
            try:
                pos = order.index(want, pos) + 1
            except ValueError:
                bad.append(f"{source}: no {want} ({'/'.join(phases[want])}) after the previous phase")
                break
        if order and not bad:
            firsts = [order.index(ph) for ph in p.phases]
            if firsts != sorted(firsts):
                bad.append(f"{source}: phases out of order: {order}")
    if not seen:
        return Verdict(NA, reason="; ".join(na))
    return Verdict(FAIL if bad else PASS, " → ".join(p.phases) + f" on {', '.join(seen)}", seen,
                   [{"problems": bad}] if bad else [], reason="; ".join(na))


def _events(ctx, p: m.EventsCheck, absent: bool) -> Verdict:
    cid = None
    if p.container:
        cid = ctx.container_id(p.container)
        if not cid:
            return Verdict(NA, reason=f"container {p.container} never existed")
    if p.source == "runtime" and ctx.engine.runtime_events_argv() is None:
        return Verdict(NA, reason=f"engine {ctx.engine.name} has no runtime event stream")
    found = ctx.events.matching(p.source, p.action, cid, p.attrs)
    lo, hi = (0, 0) if absent else (p.min, p.max)
    ok = len(found) >= lo and (hi is None or len(found) <= hi)
    brief = [{"t": ctx.t(e["mono"]), "time": e["time"], "action": e["action"], "attrs": e["attrs"]} for e in found[:5]]
    evidence = [{"matching": brief}]
    if not ok and cid:
        evidence.append({"container_events": [f"{e['source']}:{e['action']}@{ctx.t(e['mono']):.3f}s"
                                              for e in ctx.events.snapshot() if e["container"] == cid][:40]})
    want = "none" if absent else (f"{lo}..{hi}" if hi is not None else f"at least {lo}")
    return Verdict(PASS if ok else FAIL, f"{want} {p.source} event(s) {p.action} {p.attrs or ''}".strip(),
                   len(found), evidence)


def _log(ctx, p: m.LogCheck, absent: bool) -> Verdict:
    if ctx.logs is None or not any(s.component == p.component for s in ctx.logs.sources):
        return Verdict(NA, reason=f"engine {ctx.engine.name} keeps no separate {p.component} log")
    found = []
    for r in ctx.logs.poll():
        if r["component"] != p.component:
            continue
        if p.level and r["level"] != p.level:
            continue
        if m.text_matches(p.text, r["msg"] if p.field == "msg" else r["line"]):
            found.append(r)
    ok = not found if absent else bool(found)
    evidence = [{"lines": [{"t": round(r["mono"] - ctx.t0_mono, 3), "line": r["line"][:300]} for r in found[:5]]}]
    return Verdict(PASS if ok else FAIL, f"{'no' if absent else 'a'} {p.component} log line that {m.describe_text(p.text)}",
                   f"{len(found)} line(s)", evidence)


def _consistency(ctx, p: m.ConsistencyCheck) -> Verdict:
    names = [p.container] if p.container else sorted(ctx.containers)
    if not names:
        return Verdict(NA, reason="the scenario created no containers")
    try:
        runtime = ctx.engine.runtime_view()
    except Unimplemented as e:
        return Verdict(NA, reason=str(e))
    except CapsizeError as e:
        runtime = f"unavailable: {e}"
    from harness.reference.cleanup import alive
    client = ctx.engine.client(timeout=10)
    views, bad = {}, []
    try:
        for name in names:
            cid = ctx.container_id(name)
            if not cid:
                continue
            try:
                st = client.api.inspect_container(cid)["State"]
                daemon = {"running": bool(st["Running"] or st["Paused"]), "pid": st["Pid"] or None,
                          "status": st["Status"]}
            except Exception as e:  # noqa: BLE001
                import docker
                daemon = {"running": False, "pid": None, "status": "removed"} if isinstance(e, docker.errors.NotFound) \
                    else {"error": str(e)[:200]}
            if isinstance(runtime, dict):
                task = runtime.get(cid)
                rt = {"running": bool(task and task[1] in ("RUNNING", "PAUSED", "PAUSING")),
                      "pid": task[0] if task else None, "status": task[1] if task else "no task"}
            else:
                rt = {"error": runtime}
            live = [pid for pid in ctx.engine.container_cgroup_pids(cid) if alive(pid)]
            procs = {"running": bool(live), "pids": live}
            views[name] = {"daemon": daemon, "runtime": rt, "processes": procs}
            if "error" in daemon or "error" in rt:
                bad.append(f"{name}: a view is unavailable")
            elif not (daemon["running"] == rt["running"] == procs["running"]):
                bad.append(f"{name}: running? daemon {daemon['running']}, runtime {rt['running']}, "
                           f"processes {procs['running']}")
            elif daemon["running"] and (daemon["pid"] != rt["pid"] or daemon["pid"] not in live):
                bad.append(f"{name}: pid daemon {daemon['pid']}, runtime {rt['pid']}, live {live}")
    finally:
        client.close()
    return Verdict(FAIL if bad else PASS, "daemon, runtime and processes agree", views,
                   [{"disagreements": bad}] if bad else [])


def _cleanup(ctx, p: m.CleanupCheck) -> Verdict:
    hs = ctx.engine.host_state(list(ctx.containers.values())).as_dict()
    from harness.reference.cleanup import alive
    if ctx.reaper is not None:
        hs["process"] += [f"pid {pid} ({a['name']}) re-parented to the harness, still alive"
                          for pid, a in ctx.reaper.adopted.items()
                          if alive(pid) and a.get("role") in ("shim", "container", "lowlevel")]
    left = {k: v for k, v in hs.items() if v and k not in p.ignore and k not in p.leaks}
    leaked = {k: hs[k] for k in p.leaks if k not in p.ignore}
    missing = [k for k, v in leaked.items() if not v]
    expected = "nothing left of the scenario's containers"
    if p.leaks:
        expected += f" but the known leak(s): {', '.join(p.leaks)}"
    seen = {**left, **{k: v for k, v in leaked.items() if v}} or "nothing"
    evidence = [{"left": left}] if left else []
    if leaked:
        evidence.append({"known_leaks": leaked})
    reason = f"the known leak(s) {', '.join(missing)} did not happen" if missing else ""
    return Verdict(FAIL if left or missing else PASS, expected, seen, evidence, reason)


def _service_state(ctx, p: m.ServiceStateCheck) -> Verdict:
    """systemctl show's properties of the unit; ``entered_since``: ActiveEnterTimestampMonotonic
    (µs, CLOCK_MONOTONIC, the clock of time.monotonic()) after the step began."""
    from harness.engines.systemd import show
    unit = p.resolve(ctx.engine)
    names = list(p.properties) + ["ActiveState", "SubState", "MainPID", "ActiveEnterTimestampMonotonic"]
    seen = show(unit, *dict.fromkeys(names))
    expected: dict = dict(p.properties)
    bad = [k for k, v in p.properties.items() if seen.get(k) != v]
    if p.entered_since is not None:
        began = ctx.step_started.get(p.entered_since)
        expected["entered_since"] = p.entered_since
        if began is None:
            return Verdict(FAIL, expected, seen, reason=f"step {p.entered_since} did not run")
        try:
            entered = int(seen.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
        except ValueError:
            entered = 0.0
        seen = {**seen, "entered_active_t": ctx.t(entered) if entered else None,
                "step_began_t": ctx.t(began)}
        if entered <= began or seen.get("ActiveState") != "active":
            bad.append("entered_since")
    why = [f"{k} is {seen.get(k)!r}" if k != "entered_since" else
           f"not (re)entered active since step {p.entered_since}" for k in bad]
    return Verdict(FAIL if bad else PASS, {"unit": unit, **expected}, seen, [{"unit": unit, "show": seen}],
                   f"{unit}: {', '.join(why)}" if bad else "")


def evaluate_once(ctx, spec: m.CheckSpec) -> Verdict:
    """One evaluation of a check spec (no timing)."""
    kind, p = spec.kind, spec.params
    try:
        if kind == "container.state":
            return _container_state(ctx, p)
        if kind in ("process.present", "process.absent"):
            return _process(ctx, p, kind == "process.present")
        if kind == "orphans.none":
            return _orphans(ctx)
        if kind == "events.order":
            return _events_order(ctx, p)
        if kind in ("events.contains", "events.absent"):
            return _events(ctx, p, kind == "events.absent")
        if kind in ("log.contains", "log.absent"):
            return _log(ctx, p, kind == "log.absent")
        if kind == "consistency":
            return _consistency(ctx, p)
        if kind == "cleanup.complete":
            return _cleanup(ctx, p)
        if kind == "service.state":
            return _service_state(ctx, p)
    except Unimplemented as e:
        return Verdict(NA, reason=str(e))
    raise AssertionError(f"no evaluator for {kind}")


def evaluate(ctx, check: m.Check, timing: str | None = None) -> dict:
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
    return {"check": check.label, "kind": check.kind, "timing": t, "status": v.status, "reason": v.reason,
            "expected": v.expected, "seen": v.seen, "evidence": v.evidence, "attempts": attempts,
            "within": check.within, "wall": start_wall, "t": ctx.t(start),
            "elapsed": round(time.monotonic() - start, 3)}


def condition_holds(ctx, cond: m.Condition) -> tuple[bool, dict]:
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
