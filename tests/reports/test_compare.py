"""Comparisons: exactly the divergences two journals have, engines side by side (golden),
repeated runs (pass rates, flaky checks, median and p95), `capsize compare` and the hook that
renders reports at the end of `capsize run`."""

from __future__ import annotations

import argparse
import copy
import os
import re

from harness.cli import main
from harness.report import compare, load_run, render_compare
from harness.report.cli import after_run
from tests.reports import synth
import pytest  # noqa: E402

from tests.reports.helpers import golden, read

# Reports touch no mount, cgroup or engine process: the suite-wide host leak check (which other
# sessions running benchmarks at the same time trip) does not apply.
pytestmark = pytest.mark.no_leak_check


def _pair(tmp_path):
    a = synth.journal(run_id="20270115-080000-a")
    b = copy.deepcopy(a)
    b["journal"]["run"]["id"] = "20270115-090000-b"
    files = b["files"]
    run = "synthetic-stop--capsize"
    # 1. one event: the runtime's /tasks/start is missing
    files[f"{run}/events.jsonl"] = [e for e in files[f"{run}/events.jsonl"] if e["action"] != "/tasks/start"]
    # 2. one exit code: docker stop exits 125 instead of 1
    step = next(s for s in b["journal"]["runs"][0]["steps"] if s["action"] == "cli")
    step["exit_code"] = 125
    # 3. one process: a low-level runtime process lingers under the shim in the first snapshot
    snap = files[f"{run}/snapshots.jsonl"][0]
    snap["processes"].append(synth._p(203, 201, "runc", "lowlevel", container="web"))
    return synth.write(a, str(tmp_path / "a")), synth.write(b, str(tmp_path / "b"))


def test_two_journals_differing_in_one_event_one_exit_code_one_process(tmp_path):
    a, b = _pair(tmp_path)
    cmp = compare.build([load_run(a), load_run(b)])
    got = [(d["kind"], d["what"]) for d in cmp["divergences"]]
    assert got == [
        ("exit code", "step steps.1 cli docker stop -t 2 web"),
        ("event", "runtime events of web: /tasks/start only on 20270115-080000-a"),
        ("process", "lowlevel web (parent: shim, live): 0 on 20270115-080000-a, 1 on 20270115-090000-b"),
    ], got
    ec = cmp["divergences"][0]["sides"]
    assert ec["20270115-080000-a"]["exit code"] == "1" and ec["20270115-090000-b"]["exit code"] == "125"
    # both sides' error texts, side by side
    assert "tried to kill container" in ec["20270115-090000-b"]["error"]
    ev = cmp["divergences"][1]
    assert ["-", "/tasks/start @0.800s", ""] in ev["rows"] and ["=", "/tasks/exit @4.350s", "/tasks/exit @4.350s"] in ev["rows"]
    assert cmp["divergences"][2]["rows"] == [["#0/#0 after setup.0 container.run"]]
    text, paths = render_compare([a, b], str(tmp_path / "cmp"))
    assert "3 divergence(s):" in text
    golden("synthetic-ab.compare.md", read(paths[0]))
    golden("synthetic-ab.compare.html", read(paths[1]))
    golden("synthetic-ab.compare.txt", text)


def test_identical_journals_have_no_divergence(tmp_path, capsys):
    a = synth.write(synth.journal(run_id="20270115-080000-a"), str(tmp_path / "a"))
    b = synth.write(synth.journal(run_id="20270115-090000-b", duration=9.0), str(tmp_path / "b"))
    assert compare.build([load_run(a), load_run(b)])["divergences"] == []  # timings differ: not a divergence
    assert main(["compare", a, b, "--out", str(tmp_path / "o")]) == 0
    assert "\n0 divergence(s)\n" in capsys.readouterr().out
    a2, b2 = _pair(tmp_path / "x")
    assert main(["compare", a2, b2, "--out", str(tmp_path / "o2")]) == 1
    out = capsys.readouterr().out
    assert "3 divergence(s):" in out and f"wrote {tmp_path}/o2/compare.html" in out


def test_engines_side_by_side_in_one_run(tmp_path):
    c = synth.journal("capsize")
    d = synth.journal("docker")
    d["journal"]["runs"][0]["checks"][2]["status"] = "pass"  # the log line is there on docker
    d["journal"]["runs"][0]["status"] = "pass"
    run = synth.write(synth.merge(c, d, run_id="20270115-080000-both"), str(tmp_path / "both"))
    cmp = compare.build([load_run(run)])
    assert cmp["by"] == "engine" and cmp["columns"] == ["capsize", "docker"]
    assert cmp["matrix"]["synthetic-stop"] == {"capsize": {"text": "FAIL 2/1/1", "status": "fail"},
                                               "docker": {"text": "PASS 3/0/1", "status": "pass"}}
    kinds = [(d["kind"], d["what"]) for d in cmp["divergences"]]
    assert kinds == [("result", "the scenario's result"),
                     ("check", "check log.contains(component=runtime, text=cleaning up dead shim) [end]")]


def test_repeated_runs_pass_rate_flaky_checks_and_timing_distribution(tmp_path):
    reps = []
    for i, (dur, log_ok) in enumerate([(4.0, True), (1.0, False), (2.0, True), (3.0, True)]):
        r = synth.journal(duration=dur)
        e = r["journal"]["runs"][0]
        e["repeat"] = i + 1
        e["run"] = e["dir"] = f"synthetic-stop--capsize--r{i + 1}"
        e["checks"][2]["status"] = "pass" if log_ok else "fail"
        e["status"] = "pass" if log_ok else "fail"
        r["files"] = {k.replace("synthetic-stop--capsize/", e["dir"] + "/"): v for k, v in r["files"].items()}
        reps.append(r)
    run = synth.write(synth.merge(*reps, run_id="20270115-080000-repeat"), str(tmp_path / "rep"))
    cmp = compare.build([load_run(run)])
    assert cmp["columns"] == ["20270115-080000-repeat #1", "20270115-080000-repeat #2",
                              "20270115-080000-repeat #3", "20270115-080000-repeat #4"]
    cmp = compare.build([load_run(run)], by="engine")
    (st,) = cmp["stats"]
    assert (st["runs"], st["passed"]) == (4, 3)
    assert st["flaky"] == ["log.contains(component=runtime, text=cleaning up dead shim) [end]"]
    rates = {r["check"]: (r["pass"], r["fail"], r["n/a"]) for r in st["checks"]}
    assert rates["log.contains(component=runtime, text=cleaning up dead shim)"] == (3, 1, 0)
    assert rates["orphans.none"] == (0, 0, 4)
    assert st["duration"] == {"n": 4, "median": 2.5, "p95": 4.0, "min": 1.0, "max": 4.0}
    text, paths = render_compare([run], str(tmp_path / "o"), by="engine")
    assert "3/4 passed; flaky: log.contains(component=runtime, text=cleaning up dead shim) [end]; " \
           "duration median 2.500s, p95 4.000s" in text
    md = read(paths[0])
    assert re.search(r"\| log\.contains\(component=runtime, text=cleaning up dead shim\) \| end +\| 3 +\| 1 +\| 0 +\| 75% +\|", md)


def test_capsize_run_hook_renders_the_new_run(tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    synth.write(synth.journal(), str(out / "20270101-000000-old"))  # an older run: left alone
    args = argparse.Namespace(out=str(out))
    c, d = synth.journal("capsize"), synth.journal("docker")

    def run():  # as cmd_run: it names its own directory in args, whatever else appears meanwhile
        args.run_dir = str(out / "20270115-080000-new")
        synth.write(synth.merge(c, d, run_id="20270115-080000-new"), args.run_dir)
        synth.write(synth.journal(), str(out / "20270115-080001-concurrent"))  # another run, same --out
        return 1

    assert after_run(args, run) == 1  # the run's exit code stands
    text = capsys.readouterr().out
    new = out / "20270115-080000-new"
    assert sorted(os.listdir(new))[:4] == ["compare.html", "compare.md", "journal.json", "report.html"]
    assert not os.path.exists(out / "20270101-000000-old" / "report.md")
    assert not os.path.exists(out / "20270115-080001-concurrent" / "report.md")
    assert "capsize comparison: capsize vs docker" in text and f"reports: {new}/report.md" in text
