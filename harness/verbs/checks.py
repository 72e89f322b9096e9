"""The checks over what was recorded: each gives ``pass``, ``fail`` (with evidence) or ``n/a`` (with why).

One registration each (:mod:`harness.verbs.registry`): its parameter model, its evaluator
``(ctx, params) -> Verdict``, its timing defaults and its documentation. ``evidence`` holds what
proves the verdict: the processes of a snapshot (with its index in snapshots.jsonl), the events,
the log lines, the views compared. A check never passes for lack of data: what cannot be
evaluated on an engine is n/a with the reason. The ``within``/``before``/``after``/``during``
machinery is :mod:`harness.checks`; ``service.state`` is in :mod:`harness.verbs.systemd`.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, model_validator

from harness.outcome import classify_exception
from harness.reference.cleanup import alive
from harness.scenario.types import ContainerName, Duration, EventMatch, Model, Role, Text, describe_text, text_matches
from harness.verbs.registry import FAIL, NA, PASS, Need, Verdict, check
from runtime.errors import CapsizeError, Unimplemented


class ContainerStateCheck(Model):
    """The daemon's view of a container: ``status`` (created|running|paused|restarting|exited|dead|
    removed), ``exit_code``, and where the exit code comes from (``exit_code_from``: inspect, or
    the last ``die`` event's exitCode)."""

    name: ContainerName
    status: Literal["created", "running", "paused", "restarting", "exited", "dead", "removed"] | None = None
    exit_code: int | None = None
    exit_code_from: Literal["inspect", "event"] = "inspect"
    running: bool | None = None


class ProcessCheck(Model):
    """Processes by ``role``, ``container``, ``pattern`` (regex on the command line), ``cgroup``
    (regex on the cgroup path), ``parent_role``; ``count`` = exact number (present only)."""

    role: Role | None = None
    container: ContainerName | None = None
    pattern: str | None = None
    cgroup: str | None = None
    parent_role: Role | Literal["harness"] | None = None
    count: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _any(self):
        if not any((self.role, self.container, self.pattern, self.cgroup, self.parent_role)):
            raise ValueError("name at least one of role, container, pattern, cgroup, parent_role")
        for rx in (self.pattern, self.cgroup):
            if rx is not None:
                try:
                    re.compile(rx)
                except re.error as e:
                    raise ValueError(f"bad regex {rx!r}: {e}") from None
        return self


class EventsOrderCheck(Model):
    """Per container: lifecycle events in order (create → start → exit → delete) on each source.

    ``phases``: a subsequence of create, start, exit, delete (default all four). ``execs: true``:
    the same for each exec process of the container instead (create → start → exit: dockerd's
    exec_create, exec_start, exec_die by ``execID``; the runtime's /tasks/exec-added,
    /tasks/exec-started and the exec's /tasks/exit by exec id); an exec's /tasks/exit never
    counts as the container's exit."""

    container: ContainerName
    source: Literal["daemon", "runtime", "both"] = "both"
    phases: list[Literal["create", "start", "exit", "delete"]] | None = None
    execs: bool = False

    @model_validator(mode="after")
    def _exec_phases(self):
        if self.execs and "delete" in (self.phases or ()):
            raise ValueError("an exec has no delete phase: phases are create, start, exit")
        return self

    def wanted(self) -> list[str]:
        """The phases asked for (default: all of a container's, or of an exec's)."""
        if self.phases is not None:
            return list(self.phases)
        return ["create", "start", "exit"] if self.execs else ["create", "start", "exit", "delete"]


#: An exec's lifecycle events per source: phase -> actions (Engine API events, containerd topics).
EXEC_ACTIONS = {"daemon": {"create": ("exec_create",), "start": ("exec_start",), "exit": ("exec_die",)},
                "runtime": {"create": ("/tasks/exec-added",), "start": ("/tasks/exec-started",),
                            "exit": ("/tasks/exit",)}}


def _exec_id(e: dict) -> str | None:
    """The exec an event is about (None: the container's own): dockerd's ``execID``, the
    runtime's ``exec_id`` (exec-added/started) or a /tasks/exit ``id`` other than the container's."""
    a = e.get("attrs") or {}
    if e["source"] == "daemon":
        return a.get("execID")
    if a.get("exec_id"):
        return a["exec_id"]
    if e["action"] == "/tasks/exit" and a.get("id") and a.get("id") != e["container"]:
        return a["id"]
    return None


class EventsCheck(EventMatch):
    """``events.contains`` (at least ``min``, at most ``max`` matches) / ``events.absent``."""

    min: int = Field(1, ge=0)
    max: int | None = Field(None, ge=0)


class LogCheck(Model):
    """A component's log: a line whose ``msg`` (or whole line, ``field: line``) matches ``text``."""

    component: Role
    text: Text
    level: str | None = None
    field: Literal["msg", "line"] = "line"


class OrphansCheck(Model):
    """``orphans.none``: every zombie of the engine (its own, or under the harness or a shim) is
    reported with its parent (pid, role) and how long it has been a zombie (``zombie_ms``: since
    the first snapshot that saw it so, a lower bound). ``zombie_max_age``: a zombie under
    ``parent_role`` (any parent without it) is allowed while it is younger than this (the check
    waits until the youngest would be that old, then looks again); ``parent_role: container``
    also counts the zombies under a container's processes. Without it every zombie is an orphan."""

    zombie_max_age: Duration | None = None
    parent_role: Role | Literal["harness"] | None = None

    @model_validator(mode="after")
    def _role_needs_age(self):
        if self.parent_role and self.zombie_max_age is None:
            raise ValueError("parent_role goes with zombie_max_age")
        return self


class ConsistencyCheck(Model):
    """The daemon's view, the runtime's view and the real processes agree (``container``: one, default all)."""

    container: ContainerName | None = None


class CleanupCheck(Model):
    """After teardown: no processes, mounts, cgroups, netns, sockets, state dirs or volumes of the
    scenario's containers, nor, in the engine's network namespace, veths, bridges, netfilter rules
    or port proxies of containers and networks gone (against the run's start); ``ignore``: kinds
    not to count (process, mount, cgroup, netns, socket, state, volume, veth, bridge, rule, proxy);
    ``leaks``: kinds that must be left over (a known leak, recorded as the engine's expectation)."""

    ignore: list[Literal["process", "mount", "cgroup", "netns", "socket", "state", "volume", "veth", "bridge", "rule", "proxy"]] = []
    #: Kinds the engine is known to leak here (e.g. Docker's shim socket after a killed shim): each
    #: must be left (the leak is asserted, so a fix shows up as a failure); the rest must be clean.
    leaks: list[Literal["process", "mount", "cgroup", "netns", "socket", "state", "volume", "veth", "bridge", "rule", "proxy"]] = []



# -- evaluators ---------------------------------------------------------------------------------

def _proc_brief(p: dict) -> dict:
    return {k: p.get(k) for k in ("pid", "ppid", "name", "status", "role", "container_name", "cgroup")} | {
        "cmdline": " ".join(p.get("cmdline") or [])[:160]}


def _snap(ctx, label: str) -> dict:
    ctx.take_snapshot(label)
    return ctx.last_snapshot


# -- individual checks ----------------------------------------------------------------------------

def _container_state(ctx, p: ContainerStateCheck) -> Verdict:
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


def _process_matches(ctx, snap: dict, p: ProcessCheck) -> list[dict] | Verdict:
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


def _process(ctx, p: ProcessCheck, present: bool) -> Verdict:
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


def _parent_role(q: dict, by_pid: dict) -> str | None:
    return "harness" if q["ppid"] == os.getpid() else (by_pid.get(q["ppid"]) or {}).get("role")


def _zombie_ms(ctx, q: dict, now: float) -> int:
    """How long *q* has been a zombie (ms), since the first snapshot that saw it so."""
    first = ctx.zombies_seen.get((q["pid"], q.get("create_time")), now)
    return int(round((now - first) * 1000))


def _orphans(ctx, p: OrphansCheck) -> Verdict:
    import time
    snap = _snap(ctx, "check:orphans")
    if p.zombie_max_age is not None:
        # an allowed zombie younger than the limit: look again once the youngest would be too old
        by_pid = {q["pid"]: q for q in snap["processes"]}
        young = [p.zombie_max_age * 1000 - _zombie_ms(ctx, q, snap["mono"]) for q in snap["processes"]
                 if q["status"] == "zombie" and (p.parent_role is None or _parent_role(q, by_pid) == p.parent_role)]
        if any(left > 0 for left in young):
            time.sleep(max(left for left in young if left > 0) / 1000 + 0.05)
            snap = _snap(ctx, "check:orphans again")
    by_pid = {q["pid"]: q for q in snap["processes"]}
    problems, zombies = [], []
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
        parent_role = _parent_role(q, by_pid)
        # a zombie under a shim (an exec's process, or anything re-parented to it) counts too
        # (under a container process only when asked: `parent_role: container`; an application's
        # own unreaped children are its business otherwise)
        if q["status"] == "zombie" and (q["role"] or parent_role in ("harness", "shim")
                                        or (p.parent_role is not None and parent_role == p.parent_role)):
            z = {**_proc_brief(q), "parent_role": parent_role, "zombie_ms": _zombie_ms(ctx, q, snap["mono"])}
            zombies.append(z)
            allowed = (p.zombie_max_age is not None and (p.parent_role is None or parent_role == p.parent_role)
                       and z["zombie_ms"] <= p.zombie_max_age * 1000)
            if not allowed:
                problems.append({"problem": "zombie (exited, not reaped)"
                                 + (f" for {z['zombie_ms']} ms" if p.zombie_max_age is not None else ""), **z})
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
    zdesc = "no zombies" if p.zombie_max_age is None else \
        f"no zombie older than {p.zombie_max_age * 1000:g} ms" + (f" under a {p.parent_role}" if p.parent_role else "")
    return Verdict(PASS if not problems else FAIL, f"{zdesc}, no container without its shim, no shim without its runtime",
                   f"{len(problems)} orphan(s)", [{"snapshot": snap["index"], "t": snap["t"], "orphans": problems[:20],
                                                    "zombies": zombies[:20]}])


def _events_order(ctx, p: EventsOrderCheck) -> Verdict:
    ids = ctx.container_ids(p.container)
    if not ids:
        return Verdict(NA, reason=f"container {p.container} never existed")
    sources = ["daemon", "runtime"] if p.source == "both" else [p.source]
    seen, bad, na = {}, [], []
    for cid, source in [(c, s) for c in ids for s in sources]:
        if source == "runtime" and ctx.engine.runtime_events_argv() is None:
            if not na:
                na.append(f"engine {ctx.engine.name} has no runtime event stream")
            continue
        # a name reused by the scenario: every id it had is covered, each on its own
        label = source if len(ids) == 1 else f"{source} {cid[:12]}"
        phases = EXEC_ACTIONS[source] if p.execs else ctx.engine.lifecycle_actions(source)
        events = [e for e in ctx.events.snapshot() if e["source"] == source and e["container"] == cid]
        groups: dict[str | None, list] = {}
        for e in events:
            for phase, actions in phases.items():
                if e["action"] in actions and phase in p.wanted():
                    groups.setdefault(_exec_id(e), []).append((phase, e["action"], ctx.t(e["mono"])))
        if p.execs:
            groups.pop(None, None)
            if not groups:
                bad.append(f"{label}: no exec events")
                seen[label] = []
            for eid, seq in groups.items():
                _check_order(f"{label} exec {eid[:12]}", seq, phases, p.wanted(), seen, bad)
            continue
        _check_order(label, groups.get(None, []), phases, p.wanted(), seen, bad)
    if not seen:
        return Verdict(NA, reason="; ".join(na))
    what = "each exec: " if p.execs else ""
    return Verdict(FAIL if bad else PASS, what + " → ".join(p.wanted()) + f" on {', '.join(seen)}", seen,
                   [{"problems": bad}] if bad else [], reason="; ".join(na))


def _check_order(label: str, seq: list, phases: dict, wanted: list[str], seen: dict, bad: list) -> None:
    """*seq* ``[(phase, action, t)]`` has every phase of *wanted*, in order (else a line in *bad*)."""
    seen[label] = [f"{a}@{t:.3f}s" for _, a, t in seq]
    order = [ph for ph, _, _ in seq]
    pos = 0
    for want in wanted:
        try:
            pos = order.index(want, pos) + 1
        except ValueError:
            bad.append(f"{label}: no {want} ({'/'.join(phases[want])}) after the previous phase")
            return
    firsts = [order.index(ph) for ph in wanted]
    if firsts != sorted(firsts):
        bad.append(f"{label}: phases out of order: {order}")


def _events(ctx, p: EventsCheck, absent: bool) -> Verdict:
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


def _log(ctx, p: LogCheck, absent: bool) -> Verdict:
    if ctx.logs is None or not any(s.component == p.component for s in ctx.logs.sources):
        return Verdict(NA, reason=f"engine {ctx.engine.name} keeps no separate {p.component} log")
    found = []
    for r in ctx.logs.poll():
        if r["component"] != p.component:
            continue
        if p.level and r["level"] != p.level:
            continue
        if text_matches(p.text, r["msg"] if p.field == "msg" else r["line"]):
            found.append(r)
    ok = not found if absent else bool(found)
    evidence = [{"lines": [{"t": round(r["mono"] - ctx.t0_mono, 3), "line": r["line"][:300]} for r in found[:5]]}]
    return Verdict(PASS if ok else FAIL, f"{'no' if absent else 'a'} {p.component} log line that {describe_text(p.text)}",
                   f"{len(found)} line(s)", evidence)


def _consistency(ctx, p: ConsistencyCheck) -> Verdict:
    names = [p.container] if p.container else sorted(ctx.containers)
    if not names:
        return Verdict(NA, reason="the scenario created no containers")
    try:
        runtime = ctx.engine.runtime_view()
    except Unimplemented as e:
        return Verdict(NA, reason=str(e))
    except CapsizeError as e:
        runtime = f"unavailable: {e}"
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


def _cleanup(ctx, p: CleanupCheck) -> Verdict:
    hs = ctx.host_state()
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




def _role_needs(p) -> list[Need]:
    """`role:<role>` when a role is named"""
    return [Need(f"role:{p.role}", "role", f"role {p.role} exists")] if p.role else []



@check("container.state", ContainerStateCheck, "the daemon's view matches; evidence shows the exit code's "
       "provenance (inspect, die event, runtime)", container_field="name")
def container_state(ctx, p: ContainerStateCheck) -> Verdict:
    return _container_state(ctx, p)


@check("process.present", ProcessCheck, "matching live processes exist (exactly `count`)", needs=_role_needs,
       container_field="container")
def process_present(ctx, p: ProcessCheck) -> Verdict:
    return _process(ctx, p, True)


@check("process.absent", ProcessCheck, "no matching live process", needs=_role_needs, container_field="container")
def process_absent(ctx, p: ProcessCheck) -> Verdict:
    return _process(ctx, p, False)


@check("orphans.none", OrphansCheck, "no zombie (each reported with its parent and age; `zombie_max_age`: none "
       "older, under `parent_role`), no container process without its shim, no shim without its runtime (or "
       "whose task the runtime does not know)")
def orphans_none(ctx, p: OrphansCheck) -> Verdict:
    return _orphans(ctx, p)


@check("events.order", EventsOrderCheck, "create → start → exit → delete in order (dockerd: create, start, die, "
       "destroy; runtime: /tasks/create, /tasks/start, /tasks/exit, /tasks/delete); `execs: true`: each exec's "
       "create → start → exit (exec_create, exec_start, exec_die; /tasks/exec-added, /tasks/exec-started, its /tasks/exit)", after_teardown=True,
       container_field="container")
def events_order(ctx, p: EventsOrderCheck) -> Verdict:
    return _events_order(ctx, p)


@check("events.contains", EventsCheck, "as many matching events (`min`..`max`)", container_field="container")
def events_contains(ctx, p: EventsCheck) -> Verdict:
    return _events(ctx, p, False)


@check("events.absent", EventsCheck, "no matching event", container_field="container")
def events_absent(ctx, p: EventsCheck) -> Verdict:
    return _events(ctx, p, True)


@check("log.contains", LogCheck, "a log line of the component matches")
def log_contains(ctx, p: LogCheck) -> Verdict:
    return _log(ctx, p, False)


@check("log.absent", LogCheck, "no log line of the component matches")
def log_absent(ctx, p: LogCheck) -> Verdict:
    return _log(ctx, p, True)


@check("consistency", ConsistencyCheck, "the daemon's view, the runtime's view and the real processes agree "
       "(running, pid)", container_field="container")
def consistency(ctx, p: ConsistencyCheck) -> Verdict:
    return _consistency(ctx, p)


@check("cleanup.complete", CleanupCheck, "nothing of the scenario's containers is left: processes, mounts, "
       "cgroups, netns, shim sockets, state dirs, the volumes they mounted, and in the engine's netns veths, "
       "bridges, netfilter rules and port proxies of containers/networks gone; a kind in `leaks` is a known leak of the engine and must be "
       "left (per engine: `leaks: \"${leaks}\"`)", after_teardown=True, during=False)
def cleanup_complete(ctx, p: CleanupCheck) -> Verdict:
    return _cleanup(ctx, p)
