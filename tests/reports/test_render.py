"""Per-run reports: golden files (byte-identical), path independence, what a report shows,
self-containment of the HTML, schema handling, and the `capsize report` command."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from harness.cli import main
from harness.report import load_run, render_run
from tests.reports import synth
from tests.reports.helpers import REAL, golden, read

# Reports touch no mount, cgroup or engine process: the suite-wide host leak check (which other
# sessions running benchmarks at the same time trip) does not apply.
pytestmark = pytest.mark.no_leak_check


@pytest.fixture
def synthetic(tmp_path):
    return synth.write(synth.journal(), str(tmp_path / "run"))


def test_synthetic_report_matches_golden(synthetic, tmp_path):
    text, paths = render_run(synthetic, str(tmp_path / "out"))
    assert [os.path.basename(p) for p in paths] == ["report.md", "report.html"]
    golden("synthetic.report.md", read(paths[0]))
    golden("synthetic.report.html", read(paths[1]))
    golden("synthetic.terminal.txt", text)


def test_real_journal_matches_golden(tmp_path):
    text, paths = render_run(REAL, str(tmp_path / "out"))
    names = [os.path.basename(p) for p in paths]
    assert names == ["report.md", "report.html", "compare.md", "compare.html"]  # two engines: compared too
    for p in paths:
        golden("real-seed3." + os.path.basename(p), read(p))
    golden("real-seed3.terminal.txt", text)


def test_same_journal_renders_identically_wherever_it_lies(tmp_path):
    a = shutil.copytree(REAL, str(tmp_path / "a" / "run1"))
    b = shutil.copytree(REAL, str(tmp_path / "elsewhere" / "run2"))
    ta, pa = render_run(a)
    tb, pb = render_run(b)
    assert ta == tb
    for x, y in zip(pa, pb):
        assert read(x) == read(y), x


def test_report_shows_steps_checks_trees_timeline_logs_and_exit_codes(synthetic, tmp_path):
    _, paths = render_run(synthetic, str(tmp_path / "out"))
    md, html = read(paths[0]), read(paths[1])
    # steps with outcome and timing; checks with verdict and evidence
    assert "| 3   | steps     | cli docker stop -t 2 web" in md and "| fail      | ok            | 1      | 1.200" in md
    assert "FAIL      | log.contains(component=runtime, text=cleaning up dead shim)" in md
    assert "N/A       | orphans.none" in md and "engine synthetic has no runtime view" in md
    assert "- snapshot #1 (t=1.100s)" in md and "201 shim [shim web] ppid 4000 sleeping" in md
    # trees: roles, re-parenting, orphan (shim while the runtime is down), zombie, and the difference
    assert "└─ 201 shim [shim web] sleeping  <re-parented, orphan>" in md
    assert "├─ 201 shim zombie  <zombie, re-parented>" in md
    assert "- gone: 202 sleep [container web]" in md and "- new: 1102 runtimed [runtime]" in md
    assert "- gone: 102 runtimed [runtime]" in md
    # logs around the fault: within [t-1, t+duration+3], every component, not the far line
    assert "received SIGTERM, shutting down" in md and "far from any fault" not in md
    # exit codes with their provenance
    for line in ("| 1.200   | step: cli docker stop -t 2 web", "the command's exit status",
                 "runtime event /tasks/exit (exit_status)", "daemon event die (exitCode)",
                 "the daemon's last die event", "reaped by the harness (waitpid)"):
        assert line in md, line
    # HTML: one timeline SVG with the fault band, events of both daemons and lifetimes; trees as SVG
    assert html.count('class="timeline"') == 1 and 'class="band"' in html
    assert "daemon events" in html and "runtime events" in html and "shim web 201 shim" in html
    assert html.count('class="tree"') == 3


def test_html_is_self_contained(synthetic, tmp_path):
    _, paths = render_run(REAL, str(tmp_path / "out"))
    for p in paths:
        if p.endswith(".html"):
            html = read(p)
            assert "<script" not in html and "<link" not in html and "@import" not in html
            refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
            assert refs == [], refs[:5]
            assert "default-src 'none'" in html


def test_other_schema_is_refused_with_one_clear_line(tmp_path, capsys):
    d = tmp_path / "run"
    d.mkdir()
    (d / "journal.json").write_text(json.dumps({"schema": "capsize.journal/2", "runs": []}))
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "journal schema capsize.journal/2 is newer than what this capsize reads (capsize.journal/1)" in err
    (d / "journal.json").write_text(json.dumps({"runs": []}))
    assert main(["report", str(d)]) == 2
    assert "not a capsize journal (no \"schema\" field)" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 3
    assert "no journal.json" in capsys.readouterr().err


def test_missing_side_files_are_reported_not_fatal(synthetic, tmp_path):
    os.remove(os.path.join(synthetic, "synthetic-stop--capsize", "events.jsonl"))
    run = load_run(synthetic)
    assert run.scenarios[0].problems == ["events: events.jsonl is missing"]
    _, paths = render_run(run, str(tmp_path / "out"))
    assert "- problem: events: events.jsonl is missing" in read(paths[0])


def test_capsize_report_command_rerenders(synthetic, capsys):
    assert main(["report", synthetic]) == 0
    out = capsys.readouterr().out
    assert "synthetic-stop  capsize   FAIL      5/5         2/1/1" in out
    assert f"wrote {synthetic}/report.html" in out
    assert os.path.exists(os.path.join(synthetic, "report.md"))


def test_failed_steps_and_checks_name_their_file_and_line(tmp_path):
    """A failed step or check is shown with the scenario file:line it is written at, in the
    terminal summary, report.md, report.html, the journal's summary and JUnit."""
    from harness.journal import summary_text, write_junit
    run = synth.journal()
    entry = run["journal"]["runs"][0]
    entry["status"], entry["reason"] = "fail", "1 step(s) did not meet expectations; 1 check(s) failed"
    step = entry["steps"][-1]
    step.update(status="failed", mismatches=["exit_code: expected 0, got 1"], source="scenarios/x.yaml:17")
    check = entry["checks"][0]
    check.update(status="fail", source="scenarios/x.yaml:31")
    text, paths = render_run(synth.write(run, str(tmp_path / "run")), str(tmp_path / "out"))
    for where in (text, read(paths[0]), read(paths[1]), summary_text([entry])):
        assert "scenarios/x.yaml:17" in where and "scenarios/x.yaml:31" in where
    write_junit(str(tmp_path / "j.xml"), [entry])
    junit = read(str(tmp_path / "j.xml"))
    assert f"step {step['label']} (at scenarios/x.yaml:17)" in junit and "(at scenarios/x.yaml:31)" in junit
