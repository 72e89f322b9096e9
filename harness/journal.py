"""The run directory: ``journal.json`` (versioned), ``junit.xml``, ``summary.txt``.

Layout of ``reports/runs/<UTC time>-<name>/``::

    journal.json        everything below, schema "capsize.journal/1" (rewritten after each run)
    ledger.jsonl        the fault ledger (harness.ledger)
    junit.xml           one testcase per scenario × engine (n/a = skipped)
    summary.txt         the terminal summary table
    <scenario>--<engine>[--rN]/
        events.jsonl    normalised daemon and runtime events (harness.observe.events)
        snapshots.jsonl process-tree snapshots (harness.observe.proctree), host state where taken
        logs/           <component>.log (this run's part) and logs.jsonl (normalised)

``journal.json``: ``{"schema", "capsize_version", "run": {"id", "dir", "argv", "started",
"finished", "host"}, "runs": [entry...], "summary": {"total", "pass", "fail", "n/a", "error",
"interrupted", "not run", "checks": {...}}}``; an entry (harness.runner) has the scenario, file,
engine, options, status, reason, duration, steps (each with outcome, exit code, stdout, stderr,
error, duration, expectation mismatches, snapshot index, ``t`` = seconds since the run started),
checks (status, expected, seen, evidence), faults (the ledger's entries), orphans (adopted,
reaped), events/logs/snapshots references, notes and the engine's start facts. Times are
``wall`` (epoch seconds) and ``t``/``mono`` (monotonic).
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

from runtime import atomicfile

SCHEMA = "capsize.journal/1"


def new_run_dir(base: str, name: str) -> str:
    """``<base>/<YYYYmmdd-HHMMSS>-<name>`` (a suffix makes it unique, also between concurrent
    runs: the directory is claimed by its mkdir); created."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] or "run"
    os.makedirs(base, exist_ok=True)
    n = 1
    while True:
        path = os.path.join(base, f"{stamp}-{safe}" + (f"-{n}" if n > 1 else ""))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1


def host_facts() -> dict:
    from runtime.runtimes import cgroup_layout
    return {"hostname": platform.node(), "kernel": platform.release(), "python": platform.python_version(),
            "cgroups": cgroup_layout(), "cpus": os.cpu_count()}


class Journal:
    """The run's journal; :meth:`add` an entry, :meth:`write` after each (atomic rename)."""

    def __init__(self, run_dir: str, argv: list[str]):
        from importlib.metadata import PackageNotFoundError, version
        try:
            v = version("capsize")
        except PackageNotFoundError:
            v = "unknown"
        self.dir = run_dir
        self.data = {"schema": SCHEMA, "capsize_version": v,
                     "run": {"id": os.path.basename(run_dir), "dir": run_dir, "argv": argv, "started": time.time(),
                             "finished": None, "host": host_facts()},
                     "runs": [], "summary": {}}

    def add(self, entry: dict) -> None:
        self.data["runs"].append(entry)
        self.write()

    def write(self, finished: bool = False) -> None:
        if finished:
            self.data["run"]["finished"] = time.time()
        self.data["summary"] = summarize(self.data["runs"])
        atomicfile.write(os.path.join(self.dir, "journal.json"),
                         json.dumps(self.data, indent=1, sort_keys=True, default=str), durable=False)


def summarize(entries: list[dict]) -> dict:
    s = {"total": len(entries)}
    for st in ("pass", "fail", "n/a", "error", "interrupted", "not run"):
        s[st] = sum(e["status"] == st for e in entries)
    cs = [c for e in entries for c in e.get("checks", [])]
    s["checks"] = {st: sum(c["status"] == st for c in cs) for st in ("pass", "fail", "n/a")}
    return s


def exit_code(entries: list[dict]) -> int:
    """0 when every run passed and every check held; 1 for any fail/error; 130 interrupted;
    3 when nothing failed but something could not be evaluated (n/a)."""
    if any(e["status"] == "interrupted" for e in entries):
        return 130
    if any(e["status"] in ("fail", "error") for e in entries):
        return 1
    if not entries or any(e["status"] in ("n/a", "not run") for e in entries) or \
            any(c["status"] == "n/a" for e in entries for c in e.get("checks", [])):
        return 3
    return 0


def summary_rows(entries: list[dict]) -> list[list]:
    rows = []
    for e in entries:
        cs = e.get("checks", [])
        counts = "/".join(str(sum(c["status"] == st for c in cs)) for st in ("pass", "fail", "n/a"))
        steps = [s for s in e.get("steps", []) if s.get("status") in ("ok", "failed")]
        bad = sum(s["status"] == "failed" for s in steps)
        rows.append([e["scenario"], e["engine"] + (f" #{e['repeat']}" if e.get("repeat", 1) > 1 else ""),
                     e["status"].upper(), f"{len(steps) - bad}/{len(steps)}", counts,
                     f"{e.get('duration', 0):.1f}s", (e.get("reason") or "")[:70]])
    return rows


HEADERS = ["scenario", "engine", "result", "steps ok", "checks pass/fail/n/a", "time", "reason"]


def summary_text(entries: list[dict]) -> str:
    from tabulate import tabulate
    text = tabulate(summary_rows(entries), headers=HEADERS, tablefmt="simple")
    details = []
    for e in entries:
        for s in e.get("steps", []):
            if s.get("status") == "failed":
                details.append(f"  {e['run']}: step {s.get('label', s.get('action'))}{at(s)}: "
                               + "; ".join(s.get("mismatches", [])))
        for c in e.get("checks", []):
            if c["status"] == "fail":
                details.append(f"  {e['run']}: check {c['check']} [{c.get('timing')}]{at(c)}: expected {c.get('expected')}, "
                               f"seen {_short(c.get('seen'))}" + (f" ({c['reason']})" if c.get("reason") else ""))
            elif c["status"] == "n/a":
                details.append(f"  {e['run']}: check {c['check']}: n/a: {c.get('reason')}")
    return text + ("\n\n" + "\n".join(details) if details else "") + "\n"


def at(item: dict) -> str:
    """`` (at file:line)`` for a step or check record that knows where it is written, else ``""``."""
    return f" (at {item['source']})" if item.get("source") else ""


def _short(v) -> str:
    s = json.dumps(v, default=str) if not isinstance(v, str) else v
    return s if len(s) <= 400 else s[:400] + "..."


def write_junit(path: str, entries: list[dict], name: str = "capsize") -> None:
    """JUnit XML: a testcase per scenario × engine; failures list failed steps and checks with
    evidence; n/a is ``skipped`` with the reason."""
    cases = []
    for e in entries:
        attrs = (f"classname={quoteattr(e['file'])} name={quoteattr(e['scenario'] + '[' + e['engine'] + ']')} "
                 f"time=\"{e.get('duration', 0):.3f}\"")
        body = ""
        if e["status"] in ("n/a", "not run"):
            body = f"<skipped message={quoteattr(e.get('reason') or e['status'])}/>"
        elif e["status"] in ("fail", "error", "interrupted"):
            lines = []
            for s in e.get("steps", []):
                if s.get("status") == "failed":
                    lines.append(f"step {s.get('label')}{at(s)}: {'; '.join(s.get('mismatches', []))}")
            for c in e.get("checks", []):
                if c["status"] == "fail":
                    lines.append(f"check {c['check']}{at(c)}: expected {c.get('expected')}, seen {_short(c.get('seen'))}; "
                                 f"evidence {_short(c.get('evidence'))}")
            tag = "failure" if e["status"] == "fail" else "error"
            body = f"<{tag} message={quoteattr(e.get('reason') or e['status'])}>{escape(chr(10).join(lines))}</{tag}>"
        cases.append(f"  <testcase {attrs}>{body}</testcase>")
    s = summarize(entries)
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={quoteattr(name)} tests="{s["total"]}" '
           f'failures="{s["fail"]}" errors="{s["error"] + s["interrupted"]}" skipped="{s["n/a"] + s["not run"]}">\n'
           + "\n".join(cases) + "\n</testsuite>\n")
    with open(path, "w") as f:
        f.write(xml)
