"""Running scenarios: one engine per scenario × engine, steps with expectations, checks, teardown.

:func:`run_scenario` runs one validated scenario on one engine and returns its journal entry
(see :mod:`harness.journal`). The order is: engine start (ledger ``engine.up`` first) and busybox
import → observers (events, logs, orphan reaper, snapshots) → ``setup`` → ``steps`` (checks
``before``/``after`` a step around it, ``during`` checks polled meanwhile) → background actions
awaited → end checks → **teardown, always** (even after a failure, a timeout or Ctrl-C): every
fault still applied is undone from the ledger, then the ``teardown`` steps run → ``after:
teardown`` checks (cleanup.complete, events.order) → logs saved → engine removed (ledger
``engine.down``).

Status of a run: ``pass`` (every step met its expectation, every check held or was n/a),
``fail``, ``n/a`` (the engine is unavailable here: the reason says why), ``error`` (the engine
would not start, or the harness hit a bug: the reason says which), ``interrupted``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import traceback

from harness import checks
from harness import ledger as ledger_mod
from harness.context import ActionResult, Background, RunContext
from harness.engines import engine_class
from harness.observe.events import EventCollector
from harness.observe.logs import LogCollector
from harness.observe.proctree import Reaper, become_subreaper
from harness.scenario import models as m
from harness.verbs import registry
from harness.verbs.syscall import stop_tracers

OUTPUT_LIMIT = 20000


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM reached the harness during a run; its teardown ran. ``entry``: the run's journal entry."""

    def __init__(self, entry: dict):
        super().__init__(entry.get("reason"))
        self.entry = entry


# -- expectations ---------------------------------------------------------------------------------

def expectation_mismatches(expect: m.Expect | None, res: ActionResult) -> list[str]:
    """What of *expect* the result *res* does not meet (empty: met). Without an ``expect``, or
    one that names no outcome, exit code, status code or error, the outcome must be ``ok``."""
    out = []
    e = expect or m.Expect()
    outcome = e.outcome
    if outcome is None and e.exit_code is None and e.status_code is None and e.error is None:
        outcome = "ok"
    if outcome is not None:
        allowed = outcome if isinstance(outcome, list) else [outcome]
        if res.outcome not in allowed:
            out.append(f"outcome: expected {' or '.join(allowed)}, got {res.outcome}"
                       + (f" ({res.error.strip().splitlines()[-1][:300]})" if res.error and res.error.strip() else ""))
    if e.exit_code is not None:
        allowed = e.exit_code if isinstance(e.exit_code, list) else [e.exit_code]
        if res.exit_code not in allowed:
            out.append(f"exit_code: expected {' or '.join(map(str, allowed))}, got {res.exit_code}")
    if e.status_code is not None and res.status_code != e.status_code:
        out.append(f"status_code: expected {e.status_code}, got {res.status_code}")
    for name in ("error", "stdout", "stderr"):
        pattern = getattr(e, name)
        if pattern is not None:
            text = getattr(res, name) or ""
            if not m.text_matches(pattern, text):
                out.append(f"{name}: expected it {m.describe_text(pattern)}, got {text.strip()[:300]!r}")
    if e.duration is not None:
        if e.duration.min is not None and res.duration < e.duration.min:
            out.append(f"duration: expected at least {e.duration.min:g}s, took {res.duration:.3f}s")
        if e.duration.max is not None and res.duration > e.duration.max:
            out.append(f"duration: expected at most {e.duration.max:g}s, took {res.duration:.3f}s")
    return out


# -- one step -------------------------------------------------------------------------------------

def execute(ctx: RunContext, step: m.Step) -> ActionResult:
    """Run one action or fault (not ``await``) through its registration
    (:func:`harness.verbs.registry.execute`); never raises for the engine's faults."""
    return registry.execute(ctx, step)


def _clip(s: str | None) -> str | None:
    if s is None or len(s) <= OUTPUT_LIMIT:
        return s
    return s[:OUTPUT_LIMIT] + f"\n... ({len(s) - OUTPUT_LIMIT} more characters)"


def step_record(ctx, section: str, index: int, step: m.Step, res: ActionResult | None, skipped: str = "") -> dict:
    rec = {"section": section, "index": index, "id": step.id, "action": step.action, "label": step.label,
           "source": step.source, "background": step.background,
           "expect": step.expect.model_dump(exclude_none=True, by_alias=True) if step.expect else None}
    if skipped:
        rec.update(status="skipped", reason=skipped)
        return rec
    d = res.as_dict()
    for k in ("stdout", "stderr", "error"):
        if k in d:
            d[k] = _clip(d[k])
    rec.update(d)
    rec["t"] = ctx.t(res.mono) if res.mono else None
    mism = expectation_mismatches(step.expect, res)
    rec["mismatches"] = mism
    rec["status"] = "ok" if not mism else "failed"
    return rec


# -- during checks --------------------------------------------------------------------------------

class DuringMonitor:
    """Polls ``during`` checks every *interval* s in a thread; a check fails at its first violation."""

    def __init__(self, ctx, items: list[m.Check], interval: float = 0.5):
        self.ctx, self.items, self.interval = ctx, items, interval
        self.state = {id(c): {"attempts": 0, "violation": None, "last": None} for c in items}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, name="during-checks", daemon=True)
        self._start = (time.time(), time.monotonic())

    def start(self):
        if self.items:
            self._t.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self):
        for c in self.items:
            st = self.state[id(c)]
            if st["violation"] is not None:
                continue
            try:
                v = checks.evaluate_once(self.ctx, c)
            except Exception as e:  # noqa: BLE001 - recorded as the check's failure
                v = checks.Verdict(checks.FAIL, seen=f"{type(e).__name__}: {e}")
            st["attempts"] += 1
            st["last"] = v
            if v.status == checks.FAIL:
                st["violation"] = (v, self.ctx.t())

    def stop(self) -> list[dict]:
        if self.items and self._t.is_alive():
            self._stop.set()
            self._t.join(30)
        if self.items:
            self.poll()  # at least one evaluation each, and the final state
        out = []
        for c in self.items:
            st = self.state[id(c)]
            v = st["violation"][0] if st["violation"] else st["last"]
            r = checks.result_dict(self.ctx, c, v, st["attempts"], *self._start, timing="during")
            if st["violation"]:
                r["reason"] = f"violated at t={st['violation'][1]:.3f}s"
            out.append(r)
        return out


# -- the run --------------------------------------------------------------------------------------

def _not_applicable(loaded, engine_name: str, why: str, repeat: int, repeats: int, progress) -> dict:
    """The journal entry of a scenario that is n/a on *engine_name* (it lacks a capability by design)."""
    run = f"{loaded.name}--{engine_name}" + (f"--r{repeat + 1}" if repeats > 1 else "")
    sc = loaded.any if loaded.by_engine else None
    entry = {"scenario": loaded.name, "file": loaded.path, "engine": engine_name, "repeat": repeat + 1, "run": run,
             "dir": run, "description": sc.description if sc else "", "tags": sc.tags if sc else [],
             "options": sc.options.model_dump() if sc else {}, "status": "n/a", "reason": why, "steps": [], "duration": 0.0, "started": time.time(),
             "checks": [{"check": c.label, "kind": c.kind, "status": "n/a", "reason": why}
                        for c in (sc.checks if sc else []) if not c.engines or engine_name in c.engines]}
    if progress:
        progress.scenario_end(entry)
    return entry


def run_scenario(loaded, engine_name: str, out_dir: str, ledger: ledger_mod.Ledger, *, repeat: int = 0,
                 repeats: int = 1, keep_going: bool = False, progress=None) -> dict:
    """Run *loaded* (a LoadedScenario) on *engine_name*; results go under *out_dir*. Returns the
    journal entry. Raises nothing for engine trouble (it is in the entry); KeyboardInterrupt is
    recorded and re-raised after teardown as :class:`Interrupted` (carrying the entry)."""
    if engine_name in loaded.not_applicable:
        return _not_applicable(loaded, engine_name, loaded.not_applicable[engine_name], repeat, repeats, progress)
    sc: m.Scenario = loaded.by_engine[engine_name]
    run = f"{sc.name}--{engine_name}" + (f"--r{repeat + 1}" if repeats > 1 else "")
    entry = {"scenario": sc.name, "file": loaded.path, "engine": engine_name, "repeat": repeat + 1, "run": run,
             "dir": run, "description": sc.description, "tags": sc.tags,
             "options": sc.options.model_dump(), "status": "pass", "reason": "", "steps": [], "checks": [],
             "started": time.time()}
    cls = engine_class(engine_name)
    why = cls.unavailable(sc.options)
    if why:
        entry.update(status="n/a", reason=why, duration=0.0)
        entry["checks"] = [{"check": c.label, "kind": c.kind, "status": "n/a", "reason": why} for c in sc.checks
                           if not c.engines or engine_name in c.engines]
        if progress:
            progress.scenario_end(entry)
        return entry
    become_subreaper()
    directory = os.path.join(out_dir, run)
    os.makedirs(directory, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="capsize-", dir="/tmp")
    engine = cls(workdir, sc.options)
    ctx = RunContext(run, sc, engine, directory, ledger)
    t0 = time.monotonic()
    interrupted = None
    if progress:
        progress.scenario_start(run)
    ledger.engine_up(run, engine.prepare())
    try:
        engine.start()
    except BaseException as e:  # noqa: BLE001 - engine start failed: record, clean, go on
        problems = engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
        ledger.engine_down(run, problems)
        if isinstance(e, KeyboardInterrupt):
            raise
        entry.update(status="error", reason=f"engine {engine_name} did not start: {e}", duration=time.monotonic() - t0)
        return entry
    entry["engine_started"] = {"t": ctx.t(), "record": engine.record(),
                               "pids": {r: _safe_pids(engine, r) for r in ("daemon", "runtime")}}
    ctx.snapshot_sink = open(os.path.join(directory, "snapshots.jsonl"), "w")
    ctx.events = EventCollector(engine, os.path.join(directory, "events.jsonl")).start()
    ctx.logs = LogCollector(engine.log_sources())
    ctx.reaper = Reaper(engine, lambda kind, e: ctx.note(kind, **e)).start()
    checks_for = [c for c in sc.checks if not c.engines or engine_name in c.engines]
    ctx.since_steps = _since_steps(sc)
    during = DuringMonitor(ctx, [c for c in checks_for if c.timing[0] == "during"])
    failed = setup_failed = False
    during_done = False
    try:
        ctx.take_snapshot("start")
        ctx.remember_network_baseline()
        deadline = time.monotonic() + sc.timeout
        for section in ("setup", "steps"):
            items = getattr(sc, section)
            if section == "steps":
                during.start()
            for i, step in enumerate(items):
                skip = ""
                if setup_failed:
                    skip = "set-up failed"
                elif failed and not keep_going:
                    skip = "an earlier step failed"
                elif time.monotonic() > deadline:
                    skip = f"the scenario's timeout of {sc.timeout:g}s passed"
                    failed = True
                if skip:
                    entry["steps"].append(step_record(ctx, section, i, step, None, skip))
                    continue
                if not _run_step(ctx, entry, section, i, step, len(items), checks_for, progress):
                    failed = True
                    setup_failed = setup_failed or section == "setup"
        _await_all(ctx, entry)
        during_done = True
        entry["checks"] += during.stop()
        for c in checks_for:
            if c.timing[0] == "end":
                entry["checks"].append(_evaluate(ctx, c, progress))
    except KeyboardInterrupt:
        interrupted = "interrupted (Ctrl-C or SIGTERM): teardown ran"
    except Exception as e:  # noqa: BLE001 - a harness bug must not skip teardown
        entry["harness_error"] = traceback.format_exc(limit=8)
        entry.update(status="error", reason=f"harness error: {type(e).__name__}: {e}")
    finally:
        try:
            if not during_done:
                entry["checks"] += during.stop()
            _teardown(ctx, entry, sc, checks_for, progress)
        except KeyboardInterrupt:
            interrupted = "interrupted twice: teardown was cut short; run capsize recover"
        finally:
            _finish(ctx, entry, engine, workdir, ledger)
    entry["duration"] = round(time.monotonic() - t0, 3)
    if interrupted:
        entry.update(status="interrupted", reason=interrupted)
    elif entry["status"] != "error":
        failed_checks = [c for c in entry["checks"] if c["status"] == "fail"]
        failed_steps = [s for s in entry["steps"] if s.get("status") == "failed"]
        if failed_checks or failed_steps or entry.get("close_problems"):
            entry["status"] = "fail"
            parts = []
            if failed_steps:
                parts.append(f"{len(failed_steps)} step(s) did not meet expectations")
            if failed_checks:
                parts.append(f"{len(failed_checks)} check(s) failed")
            if entry.get("close_problems"):
                parts.append("the engine left things behind")
            entry["reason"] = "; ".join(parts)
    if progress:
        progress.scenario_end(entry)
    if interrupted:
        raise Interrupted(entry)
    return entry


def _safe_pids(engine, role):
    try:
        return engine.pids(role)
    except Exception:  # noqa: BLE001
        return []


def _evaluate(ctx, check, progress, timing=None) -> dict:
    if progress:
        progress.step(ctx.run, f"check {check.label}")
    try:
        return checks.evaluate(ctx, check, timing)
    except Exception as e:  # noqa: BLE001 - a check that crashes fails, with the reason
        return {"check": check.label, "kind": check.kind, "source": check.source,
                "timing": timing or ":".join(x for x in check.timing if x), "status": "fail", "reason": f"check crashed: {type(e).__name__}: {e}",
                "evidence": [traceback.format_exc(limit=5)]}


def _since_steps(sc) -> set[str]:
    """Ids of the steps a check names as ``since`` (``process.same``), in the checks or in a
    ``wait``'s conditions: after those steps the containers' processes are remembered."""
    specs = list(sc.checks)
    for step in [*sc.setup, *sc.steps]:
        if step.action == "wait":
            specs += [cond.check for cond in (step.params.for_, step.params.fail_if) if cond is not None and cond.check]
    return {since for spec in specs if (since := getattr(spec.params, "since", None))}


def _run_step(ctx, entry, section, i, step, total, checks_for, progress) -> bool:
    """Run one step with its before/after checks; True when it met its expectation."""
    engine_name = ctx.engine.name
    if step.engines and engine_name not in step.engines:
        entry["steps"].append(step_record(ctx, section, i, step, None, f"not on engine {engine_name}"))
        return True
    if progress:
        progress.step(ctx.run, f"{section} {i + 1}/{total}: {step.label}")
    if step.id:
        for c in checks_for:
            if c.timing == ("before", step.id):
                entry["checks"].append(_evaluate(ctx, c, progress))
        ctx.step_started[step.id] = time.monotonic()  # for service.state's entered_since
    if step.verb.awaits:
        ok = _await(ctx, entry, ctx.background.get(step.params), step)
    elif step.background:
        bg = Background(step=step, thread=None)
        rec = {"section": section, "index": i}

        def target(bg=bg):
            bg.result = execute(ctx, step)

        bg.thread = threading.Thread(target=target, name=f"bg-{step.id}", daemon=True)
        bg.record = rec
        ctx.background[step.id] = bg
        bg.thread.start()
        entry["steps"].append({"section": section, "index": i, "id": step.id, "action": step.action,
                               "label": step.label, "background": True, "status": "started", "t": ctx.t()})
        ok = True
    else:
        res = execute(ctx, step)
        rec = step_record(ctx, section, i, step, res)
        entry["steps"].append(rec)
        ok = rec["status"] == "ok"
    idx = ctx.take_snapshot(f"after {section}.{i} {step.action}")
    entry["steps"][-1]["snapshot"] = idx
    if step.id in ctx.since_steps:
        ctx.remember_step_processes(step.id)
    if step.id:
        for c in checks_for:
            if c.timing == ("after", step.id):
                entry["checks"].append(_evaluate(ctx, c, progress))
    return ok


def _await(ctx, entry, bg: Background | None, step: m.Step) -> bool:
    if bg is None:
        entry["steps"].append({"action": "await", "id": step.id, "status": "failed",
                               "mismatches": [f"no background step {step.params!r} was started"]})
        return False
    bg.thread.join(step.timeout)
    if bg.thread.is_alive():
        entry["steps"].append({"action": "await", "label": step.label, "status": "failed", "t": ctx.t(),
                               "mismatches": [f"{step.params} still running after {step.timeout:g}s"]})
        return False
    rec = step_record(ctx, bg.record["section"], bg.record["index"], bg.step, bg.result)
    rec["awaited_by"] = step.label
    entry["steps"].append(rec)
    bg.record = None
    return rec["status"] == "ok"


def _await_all(ctx, entry) -> None:
    for sid, bg in ctx.background.items():
        if bg.record is not None:
            bg.thread.join(bg.step.timeout)
            if bg.thread.is_alive():
                entry["steps"].append({"action": bg.step.action, "id": sid, "status": "failed", "t": ctx.t(),
                                       "mismatches": ["still running at the end of the steps"]})
                bg.record = None
                continue
            rec = step_record(ctx, bg.record["section"], bg.record["index"], bg.step, bg.result)
            rec["awaited_by"] = "end of steps"
            entry["steps"].append(rec)
            bg.record = None


def _teardown(ctx, entry, sc, checks_for, progress) -> None:
    """Undo every outstanding fault (newest first), run the teardown steps, then the after-teardown checks."""
    if progress:
        progress.step(ctx.run, "teardown")
    restored = []
    for e in reversed(ctx.ledger.outstanding(ctx.run)):
        try:
            result = registry.replay_undo(e["undo"], ctx.engine)
        except Exception as err:  # noqa: BLE001 - record and go on
            result = f"failed: {type(err).__name__}: {err}"
        ctx.ledger.undone(ctx.run, e["id"], "harness", result)
        restored.append({"fault": e["fault"], "id": e["id"], "result": result, "t": ctx.t()})
    stop_tracers(ctx)
    entry["restored"] = restored
    for i, step in enumerate(sc.teardown):
        if step.engines and ctx.engine.name not in step.engines:
            entry["steps"].append(step_record(ctx, "teardown", i, step, None, f"not on engine {ctx.engine.name}"))
            continue
        if progress:
            progress.step(ctx.run, f"teardown {i + 1}/{len(sc.teardown)}: {step.label}")
        if step.verb.awaits:
            _await(ctx, entry, ctx.background.get(step.params), step)
            continue
        res = execute(ctx, step)
        entry["steps"].append(step_record(ctx, "teardown", i, step, res))
    _await_all(ctx, entry)
    # a daemon whose event stream lags (podman tails its event log file) has delivered what
    # the teardown did before the after-teardown checks read the events
    time.sleep(ctx.engine.event_latency)
    ctx.take_snapshot("after teardown", host_state=True)
    for c in checks_for:
        if c.timing == ("after", "teardown"):
            entry["checks"].append(_evaluate(ctx, c, progress, timing="after:teardown"))


def _finish(ctx, entry, engine, workdir, ledger) -> None:
    """Save what was observed, stop the observers, remove the engine (ledger engine.down)."""
    try:
        ctx.logs.save(os.path.join(ctx.dir, "logs"))
    except Exception as e:  # noqa: BLE001
        entry.setdefault("problems", []).append(f"saving logs: {e}")
    ctx.events.stop()
    problems = engine.close()
    ctx.reaper.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    ledger.engine_down(ctx.run, problems)
    if problems:
        entry["close_problems"] = problems
    if ctx.snapshot_sink:
        ctx.snapshot_sink.close()
    entry["events"] = {"file": "events.jsonl", "count": len(ctx.events.events),
                       "subscriptions": ctx.events.subscriptions}
    entry["logs"] = {"dir": "logs", "count": len(ctx.logs.records)}
    entry["snapshots"] = {"file": "snapshots.jsonl", "taken": ctx.snapshots}
    entry["orphans"] = {"adopted": list(ctx.reaper.adopted.values()), "reaped": ctx.reaper.reaped}
    entry["notes"] = ctx.notes
    entry["faults"] = [e for e in ledger_mod.read(ledger.path) if e.get("run") == ctx.run]
    entry["containers"] = dict(ctx.containers)
    if ctx.retired:
        entry["retired_containers"] = {k: list(v) for k, v in ctx.retired.items()}
