"""Render the comparison of one VM run (vagrant/ci.sh) as Markdown on stdout.

    python3 vagrant/compare.py reports/vagrant/<run>

Reads every ``<run>/<column>/checks.tsv`` (name, status, seconds, message; written by
run-checks.sh) and ``facts.json``, ``<run>/timings.tsv`` (ci.sh's step durations), and the
harness's journals of each VM: ``<run>/<column>/harness/*/journal.json`` (``capsize run`` of the
scenario suite on the engines under systemd) and ``<run>/<column>/library/shard-*/*/journal.json``
(the whole library on the private engines, run-checks.sh --library), and the privileged cgroup
tests' JUnit, ``<run>/<column>/pytest/junit-cgroup.xml`` (--cgroup-tests). Columns are the host
first, then the VMs in the order ci.sh ran them (timings.tsv), so the tables read host vs VM and
cgroup v2 vs v1; the harness table has one column per VM and engine (``cgv2: docker-systemd``,
``cgv2: capsize``, ...) and one row per scenario, so it reads capsize vs Docker and cgroup v2 vs
v1 at once, with pass/fail/n/a counts per VM and engine. "cgroup v2 vs v1" lists, for each pair
of VMs on different cgroup versions, every scenario x engine whose status or whose checks'
statuses differ (a check that holds on one version and is n/a on the other included: a check
never passes vacuously unnoticed), with the checks' expected/seen/reason on both sides -- the
why -- and every cgroup test whose outcome differs. A last table puts each remaining Docker
check beside capsize's (``docker.X`` / ``capsize.X``). Standard library only. Exit status 0; 2
on bad usage.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import xml.etree.ElementTree as ET


def _load(run: str) -> tuple[list[str], dict, dict, list[tuple[str, str]]]:
    timings: list[tuple[str, str]] = []
    order: list[str] = []
    tpath = os.path.join(run, "timings.tsv")
    if os.path.exists(tpath):
        for line in open(tpath).read().splitlines()[1:]:
            step, secs = line.split("\t")
            timings.append((step, secs))
            col = step.split(".")[0]
            if "." in step and col not in order:
                order.append(col)
    cols = [c for c in ["host"] + order if os.path.exists(os.path.join(run, c, "checks.tsv"))]
    cols += sorted(c for c in os.listdir(run)
                   if c not in cols and os.path.exists(os.path.join(run, c, "checks.tsv")))
    checks: dict[str, dict[str, tuple[str, str, str]]] = {}
    facts: dict[str, dict] = {}
    for c in cols:
        for line in open(os.path.join(run, c, "checks.tsv")).read().splitlines():
            if line.strip():
                name, status, secs, msg = (line.split("\t") + ["", "", ""])[:4]
                checks.setdefault(name, {})[c] = (status, secs, msg)
        fpath = os.path.join(run, c, "facts.json")
        facts[c] = json.load(open(fpath)) if os.path.exists(fpath) else {}
    return cols, checks, facts, timings


def _harness(run: str, cols: list[str]) -> dict[str, list[dict]]:
    """``{column: [journal entry, ...]}`` from each column's harness run(s) (journal.json)."""
    out: dict[str, list[dict]] = {}
    for c in cols:
        paths = sorted(glob.glob(os.path.join(run, c, "harness", "*", "journal.json")))
        paths += sorted(glob.glob(os.path.join(run, c, "library", "shard-*", "*", "journal.json")))
        for path in paths:
            try:
                out.setdefault(c, []).extend(json.load(open(path)).get("runs", []))
            except (OSError, ValueError):
                continue
    return out


def _pytest(run: str, cols: list[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """``{column: {test id: (outcome, message)}}`` from each column's junit-cgroup.xml; outcome is
    ``pass``, ``fail``, ``error`` or ``skip``."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for c in cols:
        path = os.path.join(run, c, "pytest", "junit-cgroup.xml")
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            continue
        cases = out.setdefault(c, {})
        for tc in root.iter("testcase"):
            tid = f"{tc.get('classname', '')}::{tc.get('name', '')}"
            outcome, msg = "pass", ""
            for tag, name in (("failure", "fail"), ("error", "error"), ("skipped", "skip")):
                el = tc.find(tag)
                if el is not None:
                    outcome = name
                    msg = (el.get("message") or el.text or "").strip().splitlines()[0:1]
                    msg = msg[0][:200] if msg else ""
                    break
            cases[tid] = (outcome, msg)
    return out


def _test_cell(r: tuple[str, str] | None) -> str:
    """``fail (AssertionError: ...)``, ``skip (why)`` or ``pass``; ``—`` when not collected there."""
    if r is None:
        return "—"
    return r[0] + (f" ({r[1]})" if r[1] and r[0] != "pass" else "")


def _cgroup_of(facts: dict) -> str:
    """``v2`` or ``v1`` (hybrid counts as v1: the controllers are v1's), or "" when unknown."""
    cg = str(facts.get("cgroup") or "")
    return "v2" if cg == "v2" else "v1" if cg in ("v1", "hybrid") else ""


def _check_key(chk: dict) -> str:
    return f"{chk.get('check', '?')} @{chk.get('source', '')} {chk.get('timing', '')}".strip()


def _why(e: dict | None) -> str:
    """The failed and n/a checks of a journal entry, in short: what was expected, what was seen."""
    if e is None:
        return "not run"
    bits = [e["reason"]] if e.get("reason") else []
    for chk in e.get("checks") or []:
        if chk.get("status") in ("fail", "n/a", "error"):
            said = chk.get("reason") or f"expected {chk.get('expected', '?')}, seen {chk.get('seen', '?')}"
            bits.append(f"{chk.get('status')}: {chk.get('check', '?')}: {str(said)[:160]}")
    return "; ".join(bits[:4]) or e.get("status", "?")


def _version_diffs(harness: dict[str, list[dict]], cols: list[str], facts: dict) -> list[str]:
    """Markdown rows of every scenario x engine that differs between a v2 and a v1 VM."""
    v2 = [c for c in cols if c != "host" and _cgroup_of(facts.get(c, {})) == "v2" and c in harness]
    v1 = [c for c in cols if c != "host" and _cgroup_of(facts.get(c, {})) == "v1" and c in harness]
    rows: list[list[str]] = []
    for a in v2:
        for b in v1:
            by_a = {(e["engine"], e["scenario"]): e for e in harness[a]}
            by_b = {(e["engine"], e["scenario"]): e for e in harness[b]}
            for key in dict.fromkeys(list(by_a) + list(by_b)):
                ea, eb = by_a.get(key), by_b.get(key)
                sa, sb = (ea or {}).get("status"), (eb or {}).get("status")
                ca = {_check_key(x): x.get("status") for x in (ea or {}).get("checks") or []}
                cb = {_check_key(x): x.get("status") for x in (eb or {}).get("checks") or []}
                if sa == sb and ca == cb:
                    continue
                if sa == sb == "n/a":
                    continue
                differing = [k for k in dict.fromkeys(list(ca) + list(cb)) if ca.get(k) != cb.get(k)]
                detail = "; ".join(f"{k.split(' @')[0]}: {ca.get(k, '—')} vs {cb.get(k, '—')}"
                                   for k in differing[:3])
                rows.append([key[1], key[0], f"{a}: {sa or '—'}", f"{b}: {sb or '—'}",
                             detail or "—", f"{a}: {_why(ea)} / {b}: {_why(eb)}"])
    return rows


def _run_cell(e: dict | None) -> str:
    """``pass 12.3s (5/0/1)``: status, duration, checks passed/failed/n/a."""
    if e is None:
        return "—"
    checks = e.get("checks") or []
    counts = "/".join(str(sum(c.get("status") == s for c in checks)) for s in ("pass", "fail", "n/a"))
    status = e.get("status", "?")
    if status == "n/a":
        return "n/a"
    shown = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**"}.get(status, status)
    return f"{shown} {float(e.get('duration') or 0):.1f}s ({counts})"


def _cell(r: tuple[str, str, str] | None) -> str:
    if r is None:
        return "—"
    status, secs, _ = r
    return {"pass": f"pass {secs}s", "fail": f"**FAIL** {secs}s", "skip": "skip"}.get(status, status)


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(run: str) -> str:
    cols, checks, facts, timings = _load(run)
    parts = [f"# VM run {os.path.basename(os.path.normpath(run))}: comparison", ""]
    keys = ["kernel", "cgroup", "pid1", "systemd", "boot", "docker", "containerd", "runc", "python"]
    parts += ["## Machines", "",
              _table(["fact"] + cols, [[k] + [str(facts[c].get(k) or "—") for c in cols] for k in keys]), ""]
    parts += ["## Checks (host vs VMs, cgroup v2 vs v1)", "",
              _table(["check"] + cols, [[n] + [_cell(checks[n].get(c)) for c in cols] for n in checks]), ""]
    vms = [c for c in cols if c != "host"]
    harness = _harness(run, cols)
    hfail = []
    if harness:
        keys = [(c, eng) for c in cols if c in harness
                for eng in dict.fromkeys(e["engine"] for e in harness[c])]
        by = {(c, e["engine"], e["scenario"]): e for c in harness for e in harness[c]}
        scen = list(dict.fromkeys(e["scenario"] for c in harness for e in harness[c]))
        scen = [n for n in scen if any(by.get((c, eng, n), {}).get("status") not in (None, "n/a") for c, eng in keys)] \
            or scen
        rows = [[n] + [_run_cell(by.get((c, eng, n))) for c, eng in keys] for n in scen]
        parts += ["## Harness scenarios per VM and engine (capsize vs Docker; under systemd and private)", "",
                  "`capsize run` in each VM (the systemd scenarios on the engines under systemd; with "
                  "--library the whole library on the private engines); a cell is status, duration and "
                  "checks passed/failed/n/a (scenarios n/a on every engine are left out).", "",
                  _table(["scenario"] + [f"{c}: {eng}" for c, eng in keys], rows), ""]
        hfail = [(e["scenario"], c, e["engine"], e.get("reason", "")) for c in harness for e in harness[c]
                 if e.get("status") in ("fail", "error", "interrupted")]
        statuses = ("pass", "fail", "error", "n/a")
        count_rows = [[f"{c}: {eng}"] + [str(sum(by[k].get("status") == st for k in by if k[:2] == (c, eng)))
                                         for st in statuses] for c, eng in keys]
        parts += ["### Counts per VM and engine", "",
                  _table(["VM: engine"] + list(statuses), count_rows), ""]
        diffs = _version_diffs(harness, cols, facts)
        parts += ["## cgroup v2 vs v1: scenarios that differ", ""]
        if diffs:
            parts += ["A scenario x engine whose status, or the status of one of its checks, is not the same "
                      "on the cgroup v2 VM as on the cgroup v1 VM; *why* is the failed or n/a checks "
                      "(expected, seen) on each side.", "",
                      _table(["scenario", "engine", "v2", "v1", "checks that differ (v2 vs v1)", "why"], diffs), ""]
        elif len({_cgroup_of(facts.get(c, {})) for c in harness if c != "host"} - {""}) < 2:
            parts += ["Not compared: the run has no pair of VMs on cgroup v2 and v1.", ""]
        else:
            parts += ["None: every scenario and every check has the same status on both versions.", ""]
    tests = _pytest(run, cols)
    if tests:
        tcols = [c for c in cols if c in tests]
        parts += ["## Privileged cgroup tests per VM (pytest)", "",
                  _table(["VM", "pass", "fail", "error", "skip"],
                         [[c] + [str(sum(o == st for o, _ in tests[c].values()))
                                 for st in ("pass", "fail", "error", "skip")] for c in tcols]), ""]
        ids = list(dict.fromkeys(t for c in tcols for t in tests[c]))
        drows = [[t] + [_test_cell(tests[c].get(t)) for c in tcols]
                 for t in ids if len({tests[c].get(t, ("—",))[0] for c in tcols}) > 1]
        if len(tcols) > 1:
            parts += ["Tests whose outcome differs between the VMs (a skip on one version is how a test "
                      "says it depends on it):", ""]
            parts += [_table(["test"] + tcols, drows), ""] if drows else ["None.", ""]
        hfail += [(t, c, "pytest", msg) for c in tcols for t, (o, msg) in tests[c].items() if o in ("fail", "error")]
    pairs = sorted({n.split(".", 1)[1] for n in checks if n.startswith(("docker.", "capsize."))})
    if pairs and vms:
        head = ["scenario"] + [f"{c}: {e}" for c in vms for e in ("docker", "capsize")]
        rows = [[p] + [_cell(checks.get(f"{e}.{p}", {}).get(c)) for c in vms for e in ("docker", "capsize")]
                for p in pairs]
        parts += ["## run-checks.sh's own checks, Docker beside capsize", "", _table(head, rows), ""]
    failures = [(n, c, r[2]) for n in checks for c, r in checks[n].items() if r[0] == "fail"]
    if failures or hfail:
        parts += ["## Failures", ""] + [f"- `{n}` on {c}: {m}" for n, c, m in failures]
        parts += [f"- scenario `{n}` on {c}, engine {eng}: {why}" if eng != "pytest" else f"- test `{n}` on {c}: {why}"
                  for n, c, eng, why in hfail] + [""]
    if timings:
        parts += ["## Durations (seconds)", "", _table(["step", "s"], [list(t) for t in timings]), ""]
    counts = {s: sum(r[0] == s for n in checks for r in checks[n].values()) for s in ("pass", "fail", "skip")}
    parts.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
                 f"over {len(cols)} columns ({', '.join(cols)})")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        sys.stderr.write("usage: compare.py RUN_DIR\n")
        return 2
    sys.stdout.write(render(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
