"""Comparing runs: engines side by side (``capsize run --engine A --engine B``, ``capsize compare``),
two runs of one engine (two versions, two VMs), and repeated runs of one engine.

:func:`build` returns the comparison as plain data::

    {"title", "by", "runs": [...], "columns": [label...], "scenarios": [name...],
     "matrix": {scenario: {column: cell}}, "checks": {scenario: [(check key, {column: verdicts})]},
     "divergences": [divergence...], "timings": {scenario: rows}, "stats": [...]}

A *divergence* is one thing two columns did differently in one scenario (the first column that
ran the scenario is the baseline; its first repeat stands for it)::

    {"n", "scenario", "kind", "what", "base", "other", "sides": {column: detail}, "rows": [...]}

Kinds: ``result`` (the scenario's status), ``check`` (a verdict), ``step`` (an outcome or the
expectation), ``exit code`` (a step's exit or status code, or a container's exit code by any
provenance), ``event`` (one edit of the aligned sequences of the containers' events, daemon
and runtime: difflib), ``process`` (a role-level difference of the process trees at the same
snapshot label: role, container, parent's role, live/zombie). Timings are shown side by side
but are not divergences. Across repeats of one (column, scenario): pass rate per check, the
flaky checks (both pass and fail), and median and p95 (nearest rank) of the scenario's and each
step's duration.
"""

from __future__ import annotations

import difflib
import math
import statistics
from collections import Counter

from tabulate import tabulate

from harness.report import markdown as md
from harness.report import model
from harness.report.model import js, sec


def worth_comparing(runs: list) -> bool:
    """More than one engine, or repeats, in these runs (else there is nothing to compare)."""
    keys = Counter((sc.name, sc.engine) for r in runs for sc in r.scenarios)
    return len({sc.engine for r in runs for sc in r.scenarios}) > 1 or any(n > 1 for n in keys.values()) \
        or len(runs) > 1


# -- columns --------------------------------------------------------------------------------------

def _columns(runs: list, by: str) -> tuple[str, list[tuple[str, object]]]:
    """(by, [(label, scenario)...]) in first-seen order."""
    engines = list(dict.fromkeys(sc.engine for r in runs for sc in r.scenarios))
    if by == "auto":
        by = "engine" if len(engines) > 1 else "run"
    pairs = []
    if by == "engine":
        for r in runs:
            for sc in r.scenarios:
                pairs.append((sc.engine, sc))
    else:
        many_engines = any(len({sc.engine for sc in r.scenarios}) > 1 for r in runs)
        for i, r in enumerate(runs):
            for sc in r.scenarios:
                label = r.id + (f" {sc.engine}" if many_engines else "")
                pairs.append((label, sc))
        labels = list(dict.fromkeys(lbl for lbl, _ in pairs))
        if len(labels) == 1:  # one run of one engine: its repeats are the columns
            pairs = [(f"{lbl} #{sc.repeat}", sc) for lbl, sc in pairs]
        elif len(labels) < len({(i, sc.engine) for i, r in enumerate(runs) for sc in r.scenarios}):
            pairs = []  # the same run given twice: number them
            for i, r in enumerate(runs):
                for sc in r.scenarios:
                    pairs.append((f"{i + 1}: {r.id}" + (f" {sc.engine}" if many_engines else ""), sc))
    return by, pairs


# -- one pair of scenario runs --------------------------------------------------------------------

def _step_keys(sc) -> list[tuple[tuple, dict]]:
    seen: Counter = Counter()
    out = []
    for s in sc.entry.get("steps") or []:
        k = (s.get("section") or "", s.get("index"), s.get("action") or "")
        seen[k] += 1
        out.append((k + (seen[k],), s))
    return out


def _step_side(s: dict | None) -> dict:
    if s is None:
        return {"step": "(not run)"}
    d = {"step": s.get("label") or s.get("action"), "outcome": s.get("outcome") or "-",
         "expectation": s.get("status") or "-", "exit code": model.num(s.get("exit_code")),
         "took (s)": sec(s.get("duration"))}
    if s.get("status_code") is not None:
        d["status code"] = model.num(s.get("status_code"))
    if s.get("error"):
        d["error"] = model.first_line(s["error"], 300)
    if s.get("stderr"):
        d["stderr"] = model.first_line(s["stderr"], 300)
    if s.get("mismatches"):
        d["mismatches"] = "; ".join(s["mismatches"])
    return d


def _check_side(c: dict | None) -> dict:
    if c is None:
        return {"verdict": "(not evaluated)"}
    ev = [line for e in model.evidence(c.get("evidence")) for _, lines in e["items"] for line in lines][:6]
    d = {"verdict": (c.get("status") or "?").upper(), "expected": js(c.get("expected"), 300),
         "seen": js(c.get("seen"), 500)}
    if c.get("reason"):
        d["reason"] = c["reason"]
    if ev:
        d["evidence"] = "\n".join(ev)
    return d


def _exit_codes(sc) -> dict[str, dict]:
    """Per container (by scenario name): its exit codes by provenance: the daemon's die events,
    the runtime's exit events, and the daemon's inspect at the last container.state check."""
    out: dict[str, dict] = {}
    for e in model.container_events(sc):
        for k in model.EXIT_KEYS:
            if k in e["attrs"]:
                out.setdefault(e["container"], {}).setdefault(f"{e['source']} event {e['action']}", []).append(
                    str(e["attrs"][k]))
    names = sorted((sc.entry.get("containers") or {}))
    last = {}
    for c in sc.entry.get("checks") or []:
        seen = c.get("seen")
        if isinstance(seen, dict) and isinstance(seen.get("exit_code_provenance"), dict):
            who = next((n for n in names if f"name={n}," in (c.get("check") or "") + ","), "?")
            last[who] = (seen.get("status"), seen["exit_code_provenance"].get("inspect"))
    for who, (status, code) in sorted(last.items()):
        out.setdefault(who, {})["inspect at the last container.state check"] = [f"{model.num(code)} ({status})"]
    return {k: {src: ", ".join(vals) for src, vals in sorted(d.items())} for k, d in sorted(out.items())}


def _snap_keys(sc) -> list[tuple[tuple, dict]]:
    seen: Counter = Counter()
    out = []
    for s in sc.snapshots:
        k = s.get("label") or ""
        seen[k] += 1
        out.append(((k, seen[k]), s))
    return out


def _sig_text(sig: tuple) -> str:
    role, container, parent, state = sig
    return f"{role}{' ' + container if container != '-' else ''} (parent: {parent}, {state})"


def diverge(scenario: str, la: str, a, lb: str, b) -> list[dict]:
    """What scenario runs *a* (column *la*) and *b* (column *lb*) did differently."""
    out = []

    def add(kind, what, sides, rows=None):
        out.append({"scenario": scenario, "kind": kind, "what": what, "base": la, "other": lb,
                    "sides": {la: sides[0], lb: sides[1]}, "rows": rows or []})
    if a.status != b.status:
        add("result", "the scenario's result", ({"result": a.status.upper(), "reason": a.entry.get("reason") or ""},
                                                 {"result": b.status.upper(), "reason": b.entry.get("reason") or ""}))
    # checks
    ca, cb = dict(model.check_keys(a)), dict(model.check_keys(b))
    for k in list(ca) + [k for k in cb if k not in ca]:
        x, y = ca.get(k), cb.get(k)
        if x is None or y is None:
            continue  # a check for one engine only (its ``engines:``): shown in the verdicts, not a divergence
        if x.get("status") != y.get("status"):
            add("check", f"check {k[1]} [{k[0]}]" + (f" (#{k[2]})" if k[2] > 1 else ""), (_check_side(x), _check_side(y)))
    # steps: outcome / expectation, and exit codes
    sa, sb = dict(_step_keys(a)), dict(_step_keys(b))
    for k in list(sa) + [k for k in sb if k not in sa]:
        x, y = sa.get(k), sb.get(k)
        label = ((x or y).get("label") or k[2])
        if x is None or y is None or x.get("outcome") != y.get("outcome") or x.get("status") != y.get("status"):
            add("step", f"step {k[0]}.{k[1]} {label}", (_step_side(x), _step_side(y)))
        elif x.get("exit_code") != y.get("exit_code") or x.get("status_code") != y.get("status_code"):
            add("exit code", f"step {k[0]}.{k[1]} {label}", (_step_side(x), _step_side(y)))
    # containers' exit codes
    ea, eb = _exit_codes(a), _exit_codes(b)
    for name in sorted(set(ea) | set(eb)):
        x, y = ea.get(name, {}), eb.get(name, {})
        if x != y:
            rows = [[src, x.get(src, "-"), y.get(src, "-")] for src in sorted(set(x) | set(y))]
            add("exit code", f"container {name}", (x, y), rows)
    # events, aligned per source and container
    eva, evb = model.container_events(a), model.container_events(b)
    streams = sorted({(e["source"], e["container"]) for e in eva + evb})
    for source, name in streams:
        xa = [e for e in eva if (e["source"], e["container"]) == (source, name)]
        xb = [e for e in evb if (e["source"], e["container"]) == (source, name)]
        siga, sigb = [e["action"] for e in xa], [e["action"] for e in xb]
        sm = difflib.SequenceMatcher(None, siga, sigb, autojunk=False)
        ops = sm.get_opcodes()
        if all(op == "equal" for op, *_ in ops):
            continue
        aligned = []
        for op, i1, i2, j1, j2 in ops:
            for d in range(max(i2 - i1, j2 - j1)):
                ea_ = xa[i1 + d] if i1 + d < i2 else None
                eb_ = xb[j1 + d] if j1 + d < j2 else None
                aligned.append(["=" if op == "equal" else {"replace": "~", "delete": "-", "insert": "+"}[op],
                                f"{ea_['action']} @{sec(ea_['t'])}s" if ea_ else "",
                                f"{eb_['action']} @{sec(eb_['t'])}s" if eb_ else ""])
        for op, i1, i2, j1, j2 in ops:
            if op == "equal":
                continue
            what = {"replace": f"{', '.join(siga[i1:i2])} on {la}, {', '.join(sigb[j1:j2])} on {lb}",
                    "delete": f"{', '.join(siga[i1:i2])} only on {la}",
                    "insert": f"{', '.join(sigb[j1:j2])} only on {lb}"}[op]
            add("event", f"{source} events of {name}: {what}"[:300],
                ({"events": "\n".join(siga[i1:i2]) or "(none)", "sequence": " ".join(siga)},
                 {"events": "\n".join(sigb[j1:j2]) or "(none)", "sequence": " ".join(sigb)}), aligned)
    # process trees at the same snapshot labels
    na, nb = dict(_snap_keys(a)), dict(_snap_keys(b))
    found: dict[tuple, list] = {}
    for k in na:
        if k not in nb:
            continue
        x, y = model.snapshot_signature(na[k]), model.snapshot_signature(nb[k])
        for sig in sorted(set(x) | set(y)):
            if x[sig] != y[sig]:
                found.setdefault((sig, x[sig], y[sig]), []).append(f"#{na[k].get('index')}/#{nb[k].get('index')} {k[0]}")
    for (sig, n1, n2), where in sorted(found.items()):
        add("process", f"{_sig_text(sig)}: {n1} on {la}, {n2} on {lb}",
            ({"processes": str(n1)}, {"processes": str(n2)}), [[w] for w in where])
    return out


# -- repeats --------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def _dist(values: list[float]) -> dict:
    return {"n": len(values), "median": statistics.median(values), "p95": pct(values, 95),
            "min": min(values), "max": max(values)}


def stats(col: str, scenario: str, group: list) -> dict:
    checks: dict[tuple, Counter] = {}
    for sc in group:
        for k, c in model.check_keys(sc):
            checks.setdefault(k, Counter())[c.get("status") or "?"] += 1
    rows = []
    for k, cnt in checks.items():
        total = sum(cnt.values())
        flaky = cnt.get("pass", 0) > 0 and cnt.get("fail", 0) > 0
        rows.append({"check": k[1] + (f" (#{k[2]})" if k[2] > 1 else ""), "timing": k[0], "pass": cnt.get("pass", 0),
                     "fail": cnt.get("fail", 0), "n/a": cnt.get("n/a", 0), "total": total, "flaky": flaky,
                     "rate": cnt.get("pass", 0) / total if total else 0.0})
    steps: dict[tuple, list] = {}
    labels = {}
    for sc in group:
        for k, s in _step_keys(sc):
            if isinstance(s.get("duration"), (int, float)):
                steps.setdefault(k, []).append(float(s["duration"]))
                labels[k] = s.get("label") or k[2]
    durs = [float(sc.entry["duration"]) for sc in group if isinstance(sc.entry.get("duration"), (int, float))]
    return {"column": col, "scenario": scenario, "runs": len(group),
            "passed": sum(sc.status == "pass" for sc in group), "checks": rows,
            "flaky": [r["check"] + f" [{r['timing']}]" for r in rows if r["flaky"]],
            "duration": _dist(durs) if durs else None,
            "steps": [{"step": f"{k[0]}.{k[1]} {labels[k]}", **_dist(v)} for k, v in steps.items()]}


# -- the comparison -------------------------------------------------------------------------------

def build(runs: list, by: str = "auto") -> dict:
    by, pairs = _columns(runs, by)
    columns = list(dict.fromkeys(lbl for lbl, _ in pairs))
    scenarios = list(dict.fromkeys(sc.name for _, sc in pairs))
    cells: dict[str, dict[str, list]] = {s: {} for s in scenarios}
    for lbl, sc in pairs:
        cells[sc.name].setdefault(lbl, []).append(sc)
    matrix, checks, divergences, timings, st = {}, {}, [], {}, []
    for s in scenarios:
        matrix[s] = {}
        for col in columns:
            group = cells[s].get(col)
            if not group:
                matrix[s][col] = {"text": "-", "status": "none"}
                continue
            if len(group) == 1:
                c = Counter(x.get("status") for x in group[0].entry.get("checks") or [])
                matrix[s][col] = {"text": f"{group[0].status.upper()} {c.get('pass', 0)}/{c.get('fail', 0)}/{c.get('n/a', 0)}",
                                  "status": group[0].status}
            else:
                n = sum(x.status == "pass" for x in group)
                matrix[s][col] = {"text": f"{n}/{len(group)} PASS", "status": "pass" if n == len(group) else "fail"}
        # check verdicts per column (first repeat; repeats: "3/5")
        keys: dict[tuple, dict] = {}
        for col in columns:
            for sc in cells[s].get(col, []):
                for k, c in model.check_keys(sc):
                    keys.setdefault(k, {}).setdefault(col, []).append(c.get("status") or "?")
        checks[s] = []
        for k, per in keys.items():
            row = {}
            for col in columns:
                v = per.get(col)
                if not v:
                    row[col] = "-"
                elif len(v) == 1:
                    row[col] = v[0]
                else:
                    row[col] = f"{v.count('pass')}/{len(v)} pass"
            vals = [row[c] for c in columns if row[c] != "-"]
            checks[s].append({"key": k, "label": k[1] + (f" (#{k[2]})" if k[2] > 1 else ""), "timing": k[0],
                              "verdicts": row, "differs": len(set(vals)) > 1})
        present = [c for c in columns if cells[s].get(c)]
        base = present[0] if present else None
        for col in present[1:]:
            divergences += diverge(s, base, cells[s][base][0], col, cells[s][col][0])
        # timings side by side (first repeat of each column)
        rows = []
        step_tab: dict[tuple, dict] = {}
        order = []
        for col in present:
            for k, x in _step_keys(cells[s][col][0]):
                if k not in step_tab:
                    order.append(k)
                step_tab.setdefault(k, {"label": x.get("label") or k[2]})[col] = x.get("duration")
        rows.append(["the whole scenario"] + [sec(cells[s][c][0].entry.get("duration")) if c in present else "-"
                                              for c in columns])
        for k in order:
            rows.append([f"{k[0]}.{k[1]} {step_tab[k]['label']}"] + [sec(step_tab[k].get(c)) for c in columns])
        timings[s] = rows
        for col in present:
            if len(cells[s][col]) > 1:
                st.append(stats(col, s, cells[s][col]))
    for i, d in enumerate(divergences):
        d["n"] = i + 1
    title = "capsize comparison: " + " vs ".join(columns)
    return {"title": title, "by": by, "columns": columns, "scenarios": scenarios, "matrix": matrix,
            "checks": checks, "divergences": divergences, "timings": timings, "stats": st,
            "runs": [{"id": r.id, "schema": r.data.get("schema"), "version": r.data.get("capsize_version"),
                      "host": (r.data.get("run") or {}).get("host") or {},
                      "engines": list(dict.fromkeys(sc.engine for sc in r.scenarios)),
                      "entries": len(r.scenarios)} for r in runs]}


# -- rendering ------------------------------------------------------------------------------------

def side_rows(d: dict) -> list[list]:
    """A divergence's sides as rows: field, then one value per side."""
    cols = list(d["sides"])
    fields = list(dict.fromkeys(f for c in cols for f in d["sides"][c]))
    return [[f] + [d["sides"][c].get(f, "") for c in cols] for f in fields]


def _run_lines(cmp) -> list[str]:
    return [f"- run `{r['id']}`: capsize {r['version']}, schema {r['schema']}, host {r['host'].get('hostname', '?')} "
            f"(kernel {r['host'].get('kernel', '?')}), engines {', '.join(r['engines'])}, {r['entries']} scenario run(s)"
            for r in cmp["runs"]]


def to_md(cmp: dict) -> str:
    cols = cmp["columns"]
    out = [f"# {cmp['title']}", "", f"Columns are {'engines' if cmp['by'] == 'engine' else 'runs'}; "
           f"the first column that ran a scenario is the baseline of its divergences.", ""] + _run_lines(cmp) + [""]
    out += ["## Matrix", "", "Result and checks pass/fail/n/a (repeats: how many passed).", ""]
    out.append(md.table(["scenario"] + cols, [[s] + [cmp["matrix"][s][c]["text"] for c in cols] for s in cmp["scenarios"]]))
    out += ["", f"## Divergences ({len(cmp['divergences'])})", ""]
    if not cmp["divergences"]:
        out.append("None: every scenario did the same on every column.")
    by_kind = Counter(d["kind"] for d in cmp["divergences"])
    if by_kind:
        out += [", ".join(f"{n} {k}" for k, n in sorted(by_kind.items())), ""]
    for s in cmp["scenarios"]:
        ds = [d for d in cmp["divergences"] if d["scenario"] == s]
        if not ds:
            continue
        out += [f"### {s}", ""]
        for d in ds:
            out += [f"**{d['n']}. {d['kind']}**: {d['what']}", ""]
            out.append(md.table([""] + list(d["sides"]), side_rows(d)))
            if d["kind"] == "event" and d["rows"]:
                out += ["", "Aligned events (= same, ~ differ, - only left, + only right):", ""]
                out.append(md.table(["", d["base"], d["other"]], d["rows"]))
            elif d["kind"] == "exit code" and d["rows"]:
                out += ["", md.table(["from", d["base"], d["other"]], d["rows"])]
            elif d["kind"] == "process" and d["rows"]:
                out += ["", "At snapshots: " + "; ".join(r[0] for r in d["rows"])]
            out.append("")
    out += ["## Check verdicts", ""]
    for s in cmp["scenarios"]:
        rows = [[("**≠** " if r["differs"] else "") + r["label"], r["timing"]] + [r["verdicts"][c] for c in cols]
                for r in cmp["checks"][s]]
        out += [f"### {s}", "", md.table(["check", "when"] + cols, rows) if rows else "(no checks)", ""]
    out += ["## Timings (s)", ""]
    for s in cmp["scenarios"]:
        out += [f"### {s}", "", md.table(["step"] + cols, cmp["timings"][s]), ""]
    if cmp["stats"]:
        out += ["## Repeated runs", ""]
        for st in cmp["stats"]:
            out += [f"### {st['scenario']} on {st['column']}: {st['passed']}/{st['runs']} passed", ""]
            out.append("Flaky checks: " + ("; ".join(f"`{f}`" for f in st["flaky"]) if st["flaky"] else "none") + "")
            out += ["", md.table(["check", "when", "pass", "fail", "n/a", "pass rate"],
                                 [[r["check"], r["timing"], r["pass"], r["fail"], r["n/a"], f"{100 * r['rate']:.0f}%"]
                                  for r in st["checks"]]), ""]
            rows = []
            if st["duration"]:
                rows.append(["the whole scenario"] + _dist_cells(st["duration"]))
            rows += [[x["step"]] + _dist_cells(x) for x in st["steps"]]
            out += [md.table(["duration (s)", "n", "median", "p95", "min", "max"], rows), ""]
    return "\n".join(out).rstrip() + "\n"


def _dist_cells(d: dict) -> list[str]:
    return [str(d["n"]), sec(d["median"]), sec(d["p95"]), sec(d["min"]), sec(d["max"])]


def to_terminal(cmp: dict) -> str:
    cols = cmp["columns"]
    out = [cmp["title"], "", tabulate([[s] + [cmp["matrix"][s][c]["text"] for c in cols] for s in cmp["scenarios"]],
                                      headers=["scenario"] + cols, tablefmt="simple", disable_numparse=True)]
    out += ["", f"{len(cmp['divergences'])} divergence(s)" + (":" if cmp["divergences"] else "")]
    for d in cmp["divergences"]:
        fields = list(dict.fromkeys(f for c in d["sides"] for f in d["sides"][c]))
        differ = [f for f in fields if len({str(d["sides"][c].get(f)) for c in d["sides"]}) > 1] or fields
        sides = " | ".join(f"{c}: " + "; ".join(f"{k} {model.first_line(str(d['sides'][c].get(k, '-')), 80)}"
                                                for k in differ[:3]) for c in d["sides"])
        out.append(f"  {d['n']}. {d['scenario']}: {d['kind']}: {d['what']}")
        out.append(f"      {sides[:300]}")
    for st in cmp["stats"]:
        out.append(f"\n{st['scenario']} on {st['column']}: {st['passed']}/{st['runs']} passed; flaky: "
                   + (", ".join(st["flaky"]) or "none")
                   + (f"; duration median {sec(st['duration']['median'])}s, p95 {sec(st['duration']['p95'])}s"
                      if st["duration"] else ""))
    return "\n".join(out) + "\n"
