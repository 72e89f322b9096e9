"""Named crash points and ``capsize explore``: the registry matches the contracts, the trigger
kills on the Nth hit across processes with evidence, the trace of a workload names only
registered points, and a kill at a point really happens there (real engine, root only)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from harness.engines import engine_class
from runtime.api import failpoints as fp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_capsize = pytest.mark.skipif(engine_class("capsize").unavailable(None) is not None,
                                   reason=str(engine_class("capsize").unavailable(None)))


def test_registry_matches_the_contracts():
    from runtime.api import runtimed, shim
    assert set(fp.SHIM_METHODS) == set(shim.METHODS)
    assert list(fp.RUNTIMED_ROUTES) == [r[2] for r in runtimed.ROUTES]
    with open(os.path.join(ROOT, "runtime", "host.py")) as f:
        ops = set(re.findall(r'_fault\("([a-z_]+)"', f.read()))
    assert ops == set(fp.HOST_OPS)
    assert {p.tier for p in fp.points().values()} == set(fp.TIERS)
    # every literal id hit in the tiers' code is registered
    ids = set()
    for base, _dirs, files in os.walk(os.path.join(ROOT, "runtime")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(base, name)) as f:
                    ids |= set(re.findall(r'failpoints\.hit\("([a-z0-9_.-]+)"\)', f.read()))
    assert ids and ids <= set(fp.points()), ids - set(fp.points())


def test_terms_act_on_the_nth_hit():
    terms = fp.parse_terms(fp.spell(3))
    assert [fp.action_at(terms, n) for n in (1, 2, 3, 4)] == [None, None, ("kill", None), None]
    assert fp.action_at(fp.parse_terms("1*off->error(boom)"), 5) == ("error", "boom")
    with pytest.raises(Exception, match="bad failpoint term"):
        fp.parse_terms("2*explode")


def _hit(lab: str, point: str) -> subprocess.CompletedProcess:
    code = f"from runtime.api import failpoints as f; f.hit({point!r}); print('passed')"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, CAPSIZE_FAILPOINTS_DIR=lab))


def test_kill_on_the_third_hit_across_processes(tmp_path):
    lab = str(tmp_path)
    point = "shim.exitfile.write.before"
    with open(os.path.join(lab, fp.ARMED), "w") as f:
        json.dump({"trace": True, "points": {point: fp.spell(3)}}, f)
    results = [_hit(lab, point) for _ in range(4)]
    assert [r.returncode for r in results] == [0, 0, -signal.SIGKILL, 0]
    assert results[0].stdout.strip() == "passed" and results[2].stdout == ""
    with open(os.path.join(lab, fp.FIRED)) as f:
        fired = [json.loads(line) for line in f]
    assert [(r["id"], r["hit"], r["action"]) for r in fired] == [(point, 3, "kill")]
    with open(os.path.join(lab, fp.TRACE)) as f:
        assert [json.loads(line)["id"] for line in f] == [point] * 4
    # disarmed (no lab dir): nothing is written, nothing fires
    plain = subprocess.run([sys.executable, "-c", f"from runtime.api import failpoints as f; f.hit({point!r})"],
                           cwd=ROOT, env={k: v for k, v in os.environ.items() if k != fp.ENV_DIR}, timeout=30)
    assert plain.returncode == 0


def test_schedules_are_seeded_and_sharded():
    from harness.explore.schedule import Schedule, enumerate_schedules, shard
    trace = [["runtimed.task.create.after-shim-start", "capsize-runtimed", 1], ["shim.create.before", "capsize-shim", 2],
             ["lowlevel.create.after-fork", "capsize-runc", 1]]
    one = enumerate_schedules(trace)
    assert [s.key for s in one] == ["runtimed.task.create.after-shim-start@1", "shim.create.before@1",
                                    "lowlevel.create.after-fork@1"]
    assert len(enumerate_schedules(trace, every_hit=True)) == 4
    two = enumerate_schedules(trace, depth=2, seed=7)
    assert [s.key for s in two] == [s.key for s in enumerate_schedules(trace, depth=2, seed=7)]
    assert len(two) == 3 + 3
    assert Schedule.parse(two[-1].key) == two[-1]
    assert shard(one, "2/2") == [one[1]]


@needs_capsize
def test_trace_names_registered_points_and_a_kill_happens_there(tmp_path, leak_scope):
    from harness.explore.run import explore
    wl = os.path.join(ROOT, "scenarios", "explore", "create-start.yaml")
    point = "runtimed.task.create.after-shim-start"
    doc = explore(wl, str(tmp_path), only=[f"{point}@1"], do_shrink=False, quiet=True)
    reached = set(doc["reached"])
    assert reached <= set(fp.points())
    assert {point, "shim.create.before", "lowlevel.create.after-state-write", "lowlevel.start.before-exec-fifo",
            "daemon.runtimed.task_create.before-call"} <= reached
    (rec,) = doc["schedules"]
    assert rec["tier"] == "runtimed"
    with open(os.path.join(doc["run_dir"], "explore.json")) as f:
        assert json.load(f)["schedules"][0]["key"] == f"{point}@1"
    # the evidence: the runtime daemon's own process fired the kill there, on the first hit
    assert [(r["id"], r["hit"], r["action"], r["proc"]) for r in rec["fired"]] == [
        (point, 1, "kill", "capsize-runtimed")]
    assert rec["status"] in ("pass", "fail"), rec


@needs_capsize
@pytest.mark.parametrize("name", ["runc-killed-after-state-remove", "shim-killed-after-spawning-create"])
def test_finding_regressions_replay_green(tmp_path, leak_scope, name):
    """The explorer's two findings, fixed: their scenarios (a kill at the point, recovery, the
    workload again) pass when replayed as ordinary scenarios (about 3-4 s each)."""
    from harness.ledger import LEDGER, Ledger
    from harness.observe.proctree import become_subreaper
    from harness.runner import run_scenario
    from harness.scenario import load
    become_subreaper()
    path = os.path.join(ROOT, "scenarios", "explore", "regressions", f"{name}.yaml")
    entry = run_scenario(load(path), "capsize", str(tmp_path), Ledger(os.path.join(str(tmp_path), LEDGER)))
    assert entry["status"] == "pass", entry.get("reason")
