"""Small hand-made run directories following the journal schema ``capsize.journal/1``.

:func:`journal` builds one scenario run ("synthetic-stop": the runtime is stopped, the container
is stopped with the CLI, the runtime comes back) with steps, checks and their evidence, faults,
events of both daemons, three process-tree snapshots (a re-parented shim, a zombie), logs,
orphans; :func:`write` lays it out as ``capsize run`` does. Tests mutate copies of it.
"""

from __future__ import annotations

import copy
import json
import os

CID = "c0ffee" + "0" * 58
T0_MONO, T0_WALL = 1000.0, 1800000000.0


def _p(pid, ppid, name, role=None, status="sleeping", container=None, reparented=False, cmd=None):
    return {"pid": pid, "ppid": ppid, "name": name, "cmdline": cmd or [name], "status": status, "role": role,
            "container": CID if container else None, "container_name": container, "cgroup": "/capsize/x",
            "reparented": reparented, "create_time": 1799999990.0 + pid / 1000}


def _snap(index, label, t, procs):
    return {"index": index, "label": label, "t": t, "mono": T0_MONO + t, "wall": T0_WALL + t, "processes": procs}


def _ev(seq, t, source, action, attrs=None, container=True):
    return {"seq": seq, "t_": t, "mono": T0_MONO + t, "wall": T0_WALL + t, "time": f"2027-01-15T08:00:{t:06.3f}Z",
            "source": source, "type": "container" if source == "daemon" else "moby", "action": action,
            "container": CID if container else None, "name": "web" if source == "daemon" else None,
            "attrs": attrs or {}}


def _log(t, component, level, msg):
    return {"wall": T0_WALL + t, "mono": T0_MONO + t, "time": f"2027-01-15T08:00:{t:06.3f}Z", "component": component,
            "level": level, "msg": msg, "fields": {}, "line": f'level={level} msg="{msg}"'}


def _step(section, index, action, label, t, dur, outcome="ok", **kw):
    d = {"section": section, "index": index, "id": kw.pop("id", None), "action": action, "label": label,
         "background": False, "expect": kw.pop("expect", None), "outcome": outcome, "wall": T0_WALL + t,
         "mono": T0_MONO + t, "t": t, "duration": dur, "mismatches": [], "status": "ok"}
    d.update(kw)
    return d


def _check(label, kind, timing, status, t, expected, seen, evidence, reason=""):
    return {"check": label, "kind": kind, "timing": timing, "status": status, "reason": reason, "expected": expected,
            "seen": seen, "evidence": evidence, "attempts": 1, "within": 0.0, "wall": T0_WALL + t, "t": t,
            "elapsed": 0.002}


def journal(engine: str = "capsize", run_id: str = "20270115-080000-synthetic", duration: float = 6.5) -> dict:
    """The run: ``{"journal": {...}, "files": {relative path: [records]}}``."""
    h = 4000
    base = [_p(101, h, "daemond", "daemon"), _p(102, h, "runtimed", "runtime")]
    shim = _p(201, h, "shim", "shim", container="web", reparented=True)
    init = _p(202, 201, "sleep", "container", container="web", cmd=["sleep", "1000"])
    snaps = [
        _snap(0, "after setup.0 container.run", 0.9, base + [shim, init]),
        _snap(1, "after steps.0 fault.stop", 1.1, [base[0], shim, init]),
        _snap(2, "after steps.1 cli", 4.2, [base[0], _p(102 + 1000, h, "runtimed", "runtime"),
                                            dict(shim, status="zombie", role=None, container=None,
                                                 container_name=None, cmdline=[])]),
    ]
    run = f"synthetic-stop--{engine}"
    steps = [
        _step("setup", 0, "container.run", "container.run name=web, command=['sleep', '1000']", 0.5, 0.4,
              snapshot=0, value={"id": CID}),
        _step("steps", 0, "fault.stop", "fault.stop component=runtime", 1.0, 0.05, id="runtime-down", snapshot=1),
        _step("steps", 1, "cli", "cli docker stop -t 2 web", 1.2, 2.9, outcome="fail", exit_code=1,
              error="Error response from daemon: cannot stop container: web: tried to kill container, but did "
                    "not receive an exit event", stderr="Error response from daemon: cannot stop container\n",
              stdout="", snapshot=2),
        _step("steps", 2, "fault.start", "fault.start component=runtime", 4.2, 0.1, id="runtime-up"),
        _step("teardown", 0, "container.rm", "container.rm name=web, force=True", 5.9, 0.05),
    ]
    checks = [
        _check("process.present(role=shim, container=web)", "process.present", "after:runtime-down", "pass", 1.15,
               "at least 1 matching process(es)", "1",
               [{"snapshot": 1, "t": 1.1, "matching": [{k: shim[k] for k in ("pid", "ppid", "name", "status", "role",
                                                                              "container_name", "cgroup")}
                                                        | {"cmdline": "shim"}]}]),
        _check("container.state(name=web, status=exited, exit_code=137)", "container.state", "end", "pass", 4.5,
               {"status": "exited", "exit_code": 137},
               {"status": "exited", "running": False, "pid": 0, "exit_code": 137, "error": None,
                "finished_at": "2027-01-15T08:00:04.400Z",
                "exit_code_provenance": {"inspect": 137, "die_event": "137", "runtime": "no task"}},
               [{"die_events": [{"t": 4.4, "exitCode": "137"}]}]),
        _check("log.contains(component=runtime, text=cleaning up dead shim)", "log.contains", "end", "fail", 4.6,
               "a runtime log line that contains 'cleaning up dead shim'", "0 line(s)", [{"lines": []}]),
        _check("orphans.none", "orphans.none", "end", "n/a", 4.7, None, None, [],
               reason="engine synthetic has no runtime view"),
    ]
    events = [
        _ev(0, 0.6, "daemon", "create", {"image": "busybox", "name": "web"}),
        _ev(1, 0.7, "runtime", "/tasks/create", {"pid": 202}),
        _ev(2, 0.8, "runtime", "/tasks/start", {"pid": 202}),
        _ev(3, 0.85, "daemon", "start", {"image": "busybox", "name": "web"}),
        _ev(4, 1.3, "daemon", "kill", {"name": "web", "signal": "15"}),
        _ev(5, 4.35, "runtime", "/tasks/exit", {"exit_status": 137, "pid": 202}),
        _ev(6, 4.4, "daemon", "die", {"exitCode": "137", "image": "busybox", "name": "web"}),
        _ev(7, 6.0, "daemon", "destroy", {"image": "busybox", "name": "web"}),
        _ev(8, 0.2, "daemon", "load", {"name": "sha256:abc"}, container=False),
    ]
    for e in events:
        del e["t_"]
    logs = [
        _log(0.95, "daemon", "info", "API listen on synthetic.sock"),
        _log(1.05, "runtime", "info", "received SIGTERM, shutting down"),
        _log(1.4, "daemon", "warning", "Waiting for the runtime to be ready to restart event processing"),
        _log(4.25, "runtime", "info", "starting runtimed"),
        _log(4.3, "runtime", "warning", "cleaning up after shim disconnected"),
        _log(9.0, "runtime", "info", "far from any fault"),
    ]
    faults = [
        {"seq": 0, "op": "engine.up", "run": run, "record": {"engine": engine}, "wall": T0_WALL, "mono": T0_MONO},
        {"seq": 1, "op": "fault.apply", "run": run, "id": f"{run}#1", "fault": "fault.stop",
         "target": {"role": "runtime", "processes": [{"pid": 102, "create_time": 1799999990.102}]},
         "undo": {"kind": "start", "role": "runtime"}, "wall": T0_WALL + 1.0, "mono": T0_MONO + 1.0},
        {"seq": 2, "op": "fault.undo", "run": run, "id": f"{run}#1", "by": "harness", "result": "started by a step",
         "wall": T0_WALL + 4.3, "mono": T0_MONO + 4.3},
    ]
    adopted = {"pid": 201, "name": "shim", "cmdline": ["shim"], "role": "shim", "container": CID,
               "wall": T0_WALL + 0.7, "mono": T0_MONO + 0.7}
    reaped = dict(adopted, exit_status=0, wall=T0_WALL + 4.5, mono=T0_MONO + 4.5)
    entry = {"scenario": "synthetic-stop", "file": "scenarios/synthetic/stop.yaml", "engine": engine, "repeat": 1,
             "run": run, "dir": run, "description": "The runtime is stopped, then the container is stopped.",
             "tags": ["synthetic"], "options": {"live_restore": False, "runtime": None}, "status": "fail",
             "reason": "1 check(s) failed", "steps": steps, "checks": checks, "started": T0_WALL,
             "duration": duration, "containers": {"web": CID}, "faults": faults,
             "notes": [dict(adopted, kind="adopted", t=0.7), dict(reaped, kind="reaped", t=4.5)],
             "orphans": {"adopted": [adopted], "reaped": [reaped]}, "restored": [],
             "events": {"file": "events.jsonl", "count": len(events), "subscriptions": []},
             "logs": {"dir": "logs", "count": len(logs)},
             "snapshots": {"file": "snapshots.jsonl", "taken": [{"index": s["index"], "label": s["label"], "t": s["t"]}
                                                                for s in snaps]},
             "engine_started": {"t": 0.3, "record": {"engine": engine}, "pids": {"daemon": [101], "runtime": [102]}}}
    j = {"schema": "capsize.journal/1", "capsize_version": "0.1.0",
         "run": {"id": run_id, "dir": f"/tmp/runs/{run_id}", "argv": ["capsize", "run", "--engine", engine, "synthetic"],
                 "started": T0_WALL - 1, "finished": T0_WALL + 8,
                 "host": {"hostname": "synthetic", "kernel": "6.1.0", "python": "3.11.2", "cgroups": "v2", "cpus": 2}},
         "runs": [entry], "summary": {}}
    return {"journal": j, "files": {f"{run}/events.jsonl": events, f"{run}/snapshots.jsonl": snaps,
                                    f"{run}/logs/logs.jsonl": logs}}


def entry_files(run: dict, entry: dict) -> dict:
    return {k: v for k, v in run["files"].items() if k.startswith(entry["dir"] + "/")}


def merge(*runs: dict, run_id: str) -> dict:
    """One run holding the entries (and files) of several (e.g. two engines, or repeats)."""
    out = copy.deepcopy(runs[0])
    out["journal"]["run"]["id"] = run_id
    for r in runs[1:]:
        out["journal"]["runs"] += copy.deepcopy(r["journal"]["runs"])
        out["files"].update(copy.deepcopy(r["files"]))
    return out


def write(run: dict, directory: str) -> str:
    """Lay *run* out as a run directory; returns it."""
    from harness.journal import summarize
    j = copy.deepcopy(run["journal"])
    j["summary"] = summarize(j["runs"])
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "journal.json"), "w") as f:
        json.dump(j, f, indent=1, sort_keys=True)
    for rel, records in sorted(run["files"].items()):
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    return directory
