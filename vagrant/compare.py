"""Render the comparison of one VM run (vagrant/ci.sh) as Markdown on stdout.

    python3 vagrant/compare.py reports/vagrant/<run>

Reads every ``<run>/<column>/checks.tsv`` (name, status, seconds, message; written by
run-checks.sh) and ``facts.json``, and ``<run>/timings.tsv`` (ci.sh's step durations).
Columns are the host first, then the VMs in the order ci.sh ran them (timings.tsv), so the tables
read host vs VM and cgroup v2 vs v1; a second table puts each Docker check beside capsize's
(``docker.X`` / ``capsize.X``) in each VM. Standard library only. Exit status 0; 2 on bad usage.
"""

from __future__ import annotations

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
    pairs = sorted({n.split(".", 1)[1] for n in checks if n.startswith(("docker.", "capsize."))})
    vms = [c for c in cols if c != "host"]
    if pairs and vms:
        head = ["scenario"] + [f"{c}: {e}" for c in vms for e in ("docker", "capsize")]
        rows = [[p] + [_cell(checks.get(f"{e}.{p}", {}).get(c)) for c in vms for e in ("docker", "capsize")]
                for p in pairs]
        parts += ["## capsize vs Docker under systemd", "", _table(head, rows), ""]
    failures = [(n, c, r[2]) for n in checks for c, r in checks[n].items() if r[0] == "fail"]
    if failures:
        parts += ["## Failures", ""] + [f"- `{n}` on {c}: {m}" for n, c, m in failures] + [""]
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
