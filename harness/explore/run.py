"""Driving an exploration: trace, schedules, one scenario run each, results, report.

:func:`explore` returns the result document written to ``<out>/<run>/explore.json``::

    {"workload", "file", "engine", "seed", "depth", "started", "duration",
     "known": [ids registered], "reached": [ids the trace passed], "trace": [[id, proc, hits]],
     "schedules": [{"key", "kills": [[id, hit]], "tier", "status": pass|fail|unknown,
                    "reason", "failed": [...], "scenario": file, "dir": run dir (entry.json: the
                    run's journal entry), "seconds", "fired": [fired.jsonl records]}],
     "shrunk": [{"from", "scenario", "key", "steps"}], "throughput_per_minute"}

``unknown``: the schedule's kill never fired (the point was not reached on that run: a path
that depends on timing) or the engine could not start; ``fail``: an invariant or the rerun of
the workload failed (its reasons list each failed check and step).
"""

from __future__ import annotations

import json
import os
import sys
import time

import yaml

from harness.explore import build, report
from harness.explore.schedule import Schedule, enumerate_schedules, shard
from runtime.api import failpoints as fp
from runtime.errors import CapsizeError, InvalidArgument


def load_workload(path: str) -> dict:
    """The workload file as a dict (validated as a scenario first: bad input exits 2 before anything runs)."""
    from harness.scenario import load
    load(path)
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not doc.get("steps"):
        raise InvalidArgument(f"{path}: a workload needs steps")
    return doc


def run_doc(doc: dict, directory: str, name: str, ledger) -> dict:
    """Write *doc* as ``<directory>/<name>.yaml``, run it on capsize; returns the journal entry."""
    from harness.runner import run_scenario
    from harness.scenario import load
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=110)
    entry = run_scenario(load(path), "capsize", directory, ledger)
    entry["file"] = path
    with open(os.path.join(directory, entry["run"], "entry.json"), "w") as f:
        json.dump(entry, f, indent=1, default=str)
    return entry


def classify(entry: dict) -> tuple[str, str, list[str]]:
    """``(status, reason, failed)`` of a schedule's run (module doc)."""
    if entry["status"] in ("n/a", "error", "interrupted"):
        return "unknown", entry.get("reason", ""), []
    failed = [f"check {c['check']}: {c.get('reason') or c.get('seen') or ''}".strip()
              for c in entry["checks"] if c["status"] == "fail"]
    failed += [f"step {s.get('label') or s.get('action')}: {'; '.join(s.get('mismatches') or [])}"
               for s in entry["steps"] if s.get("status") == "failed"]
    if entry.get("close_problems"):
        failed.append("engine close: " + "; ".join(entry["close_problems"]))
    if not failed:
        return "pass", "", []
    if all(f.startswith("check failpoint.fired") for f in failed):
        return "unknown", "the kill did not fire: the point was not reached on this run", failed
    return "fail", entry.get("reason", ""), failed


def trace(workload: dict, out_dir: str, ledger) -> list[list]:
    entry = run_doc(build.trace_doc(workload), os.path.join(out_dir, "trace"), "trace", ledger)
    step = next((s for s in entry["steps"] if s.get("id") == "trace"), None)
    if entry["status"] != "pass" or not step or not (step.get("value") or {}).get("trace"):
        raise CapsizeError(f"the trace run of {workload['name']} failed: {entry.get('reason') or entry['status']} "
                           f"(see {out_dir}/trace)")
    return step["value"]["trace"]


def explore(path: str, out: str, depth: int = 1, seed: int = 0, budget: float | None = None,
            max_schedules: int | None = None, shard_spec: str | None = None, every_hit: bool = False,
            only: list[str] | None = None, do_shrink: bool = True, quiet: bool = False) -> dict:
    from harness import journal as jr
    from harness.ledger import LEDGER, Ledger
    from harness.observe.proctree import become_subreaper
    workload = load_workload(path)
    run_dir = jr.new_run_dir(out, f"explore-{workload['name']}")
    ledger = Ledger(os.path.join(run_dir, LEDGER))
    become_subreaper()
    t0 = time.monotonic()
    tr = trace(workload, run_dir, ledger)
    schedules = [Schedule.parse(k) for k in only] if only else enumerate_schedules(tr, depth, seed, every_hit=every_hit)
    schedules = shard(schedules, shard_spec)
    if max_schedules is not None:
        schedules = schedules[:max_schedules]
    tiers = {pid: (proc if proc in fp.PROC_TIERS else "") for pid, proc, _ in tr}
    doc = {"workload": workload["name"], "file": path, "engine": "capsize", "seed": seed, "depth": depth,
           "shard": shard_spec, "started": time.time(), "known": sorted(fp.points()),
           "reached": [t[0] for t in tr], "trace": tr, "schedules": [], "shrunk": []}
    sched_dir = os.path.join(run_dir, "schedules")
    for i, sch in enumerate(schedules):
        elapsed = time.monotonic() - t0
        if budget is not None and elapsed > budget:
            doc["stopped"] = f"--budget {budget:g}s reached after {i} of {len(schedules)} schedules"
            break
        t1 = time.monotonic()
        entry = run_doc(build.schedule_doc(workload, sch), sched_dir, f"{i + 1:04d}", ledger)
        status, reason, failed = classify(entry)
        rec = {"key": sch.key, "kills": [list(k) for k in sch.kills],
               "tier": "+".join(fp.PROC_TIERS.get(tiers.get(p, ""), fp.tier_of(p)) for p, _ in sch.kills),
               "status": status, "reason": reason, "failed": failed,
               "scenario": os.path.relpath(entry["file"], run_dir),
               "dir": os.path.relpath(os.path.join(sched_dir, entry["run"]), run_dir),
               "seconds": round(time.monotonic() - t1, 2),
               "fired": [ev for c in entry["checks"] if c["check"].startswith("failpoint.fired")
                         for ev in c.get("evidence") or []]}
        doc["schedules"].append(rec)
        _progress(i + 1, len(schedules), rec, time.monotonic() - t0, quiet)
    ran = len(doc["schedules"])
    doc["duration"] = round(time.monotonic() - t0, 1)
    doc["throughput_per_minute"] = round(ran / (doc["duration"] / 60), 2) if doc["duration"] else None
    if do_shrink:
        from harness.explore.shrink import shrink
        for rec in [r for r in doc["schedules"] if r["status"] == "fail"][:3]:
            doc["shrunk"].append(shrink(workload, Schedule.parse(rec["key"]), run_dir, ledger, rec["key"],
                                        lambda d, directory, name, lg: classify(run_doc(d, directory, name, lg))[0] == "fail"))
    with open(os.path.join(run_dir, "explore.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write(report.markdown(doc))
    doc["run_dir"] = run_dir
    return doc


def _progress(done: int, total: int, rec: dict, elapsed: float, quiet: bool) -> None:
    if quiet:
        return
    left = (total - done) * elapsed / done if done else 0
    sys.stderr.write(f"[{done}/{total}] {rec['status']:7} {rec['key']} ({rec['seconds']:.1f}s; "
                     f"~{left / 60:.1f} min left)\n")
