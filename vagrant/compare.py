"""Render the comparison of one VM run (vagrant/ci.sh) as Markdown on stdout.

    python3 vagrant/compare.py reports/vagrant/<run>

Reads every ``<run>/<column>/checks.tsv`` (name, status, seconds, message; written by
run-checks.sh) and ``facts.json``, ``<run>/timings.tsv`` (ci.sh's step durations), and the
harness's journal of each VM, ``<run>/<column>/harness/*/journal.json`` (``capsize run`` of the
scenario suite on the engines under systemd). Columns are the host first, then the VMs in the
order ci.sh ran them (timings.tsv), so the tables read host vs VM and cgroup v2 vs v1; the
harness table has one column per VM and engine (``cgv2: docker-systemd``, ``cgv2:
capsize-systemd``, ...) and one row per scenario, so it reads capsize vs Docker under systemd
and cgroup v2 vs v1 at once; a last table puts each remaining Docker check beside capsize's
(``docker.X`` / ``capsize.X``). Standard library only. Exit status 0; 2 on bad usage.
"""

from __future__ import annotations

import glob
import json
import os
import sys


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
        for path in sorted(glob.glob(os.path.join(run, c, "harness", "*", "journal.json"))):
            try:
                out.setdefault(c, []).extend(json.load(open(path)).get("runs", []))
            except (OSError, ValueError):
                continue
    return out


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
        parts += ["## Harness scenarios per VM and engine (capsize vs Docker under systemd)", "",
                  "`capsize run` in each VM; a cell is status, duration and checks passed/failed/n/a "
                  "(scenarios n/a on every engine are left out).", "",
                  _table(["scenario"] + [f"{c}: {eng}" for c, eng in keys], rows), ""]
        hfail = [(e["scenario"], c, e["engine"], e.get("reason", "")) for c in harness for e in harness[c]
                 if e.get("status") in ("fail", "error", "interrupted")]
    pairs = sorted({n.split(".", 1)[1] for n in checks if n.startswith(("docker.", "capsize."))})
    if pairs and vms:
        head = ["scenario"] + [f"{c}: {e}" for c in vms for e in ("docker", "capsize")]
        rows = [[p] + [_cell(checks.get(f"{e}.{p}", {}).get(c)) for c in vms for e in ("docker", "capsize")]
                for p in pairs]
        parts += ["## run-checks.sh's own checks, Docker beside capsize", "", _table(head, rows), ""]
    failures = [(n, c, r[2]) for n in checks for c, r in checks[n].items() if r[0] == "fail"]
    if failures or hfail:
        parts += ["## Failures", ""] + [f"- `{n}` on {c}: {m}" for n, c, m in failures]
        parts += [f"- scenario `{n}` on {c}, engine {eng}: {why}" for n, c, eng, why in hfail] + [""]
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
