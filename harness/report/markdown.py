"""The run report in Markdown (GitHub-flavoured: pipe tables, fenced blocks) and the terminal summary."""

from __future__ import annotations

from datetime import datetime, timezone

from tabulate import tabulate

from harness.journal import at
from harness.report import model
from harness.report.model import js, sec

STATUS_MD = {"pass": "PASS", "fail": "**FAIL**", "n/a": "n/a", "error": "**ERROR**", "interrupted": "**INTERRUPTED**",
             "not run": "not run"}


def cell(v, limit: int = 160) -> str:
    s = v if isinstance(v, str) else ("" if v is None else js(v, limit))
    s = s.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return s if len(s) <= limit else s[:limit] + "..."


def table(headers: list[str], rows: list[list]) -> str:
    return tabulate([[cell(c) for c in r] for r in rows], headers=headers, tablefmt="github",
                    disable_numparse=True)


def when(epoch) -> str:
    if not isinstance(epoch, (int, float)):
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fence(lines: list[str]) -> str:
    body = "\n".join(lines) if lines else "(nothing)"
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}text\n{body}\n{ticks}"


def summary_rows(views: list[dict]) -> list[list]:
    rows = []
    for v in views:
        steps = [s for s in v["steps"] if s["status"] in ("ok", "failed")]
        ok = sum(s["status"] == "ok" for s in steps)
        c = v["counts"]
        rows.append([v["name"], v["engine"] + (f" #{v['repeat']}" if v["repeat"] > 1 else ""), v["status"].upper(),
                     f"{ok}/{len(steps)}", f"{c.get('pass', 0)}/{c.get('fail', 0)}/{c.get('n/a', 0)}",
                     f"{sec(v['duration'])}s", v["reason"]])
    return rows


SUMMARY_HEADERS = ["scenario", "engine", "result", "steps ok", "checks pass/fail/n/a", "time", "reason"]


def header_lines(run) -> list[str]:
    d = run.data
    r = d.get("run") or {}
    h = r.get("host") or {}
    s = d.get("summary") or {}
    return [f"capsize {d.get('capsize_version', '?')} · journal schema `{d.get('schema')}` · host {h.get('hostname', '?')} "
            f"(kernel {h.get('kernel', '?')}, cgroups {h.get('cgroups', '?')}, {h.get('cpus', '?')} CPUs, "
            f"Python {h.get('python', '?')})",
            f"started {when(r.get('started'))}, finished {when(r.get('finished'))}; "
            f"command: `{' '.join(r.get('argv') or [])}`",
            f"{s.get('total', 0)} run(s): {s.get('pass', 0)} pass, {s.get('fail', 0)} fail, {s.get('n/a', 0)} n/a, "
            f"{s.get('error', 0)} error, {s.get('interrupted', 0)} interrupted, {s.get('not run', 0)} not run"]


def chronology(sc, v: dict) -> list[list]:
    """Faults, actions and events of both daemons in time order (the timeline as a table)."""
    items = []
    for s in v["steps"]:
        if isinstance(s["t"], (int, float)):
            kind = "fault" if s["action"].startswith("fault.") else "action"
            items.append((s["t"], 0, kind, f"{s['label']} -> {s['outcome']} ({s['status']}, {sec(s['duration'])}s)"))
    names = sc.names_by_id()
    for e in sc.events:
        if e.get("t") is None:
            continue
        who = names.get(e.get("container")) or e.get("name") or ""
        items.append((e["t"], 1, f"{e.get('source')} event", f"{e.get('action')} {who} {js(e.get('attrs') or {}, 120)}"))
    for life in model.lifetimes(sc):
        if life["reparented_at"] is not None:
            items.append((life["reparented_at"], 2, "process", f"{life['name']} {life['pid']} ({life['role']}) "
                                                               "re-parented to the harness"))
        if life["reaped_at"] is not None:
            items.append((life["reaped_at"], 2, "process", f"{life['name']} {life['pid']} ({life['role']}) reaped"))
    items.sort(key=lambda i: (i[0], i[1], i[2], i[3]))
    return [[sec(t), k, what] for t, _, k, what in items]


def scenario_md(sc, v: dict) -> str:
    out = [f"## {v['name']} on {v['engine']}" + (f" (repeat {v['repeat']})" if v["repeat"] > 1 else "")
           + f": {STATUS_MD.get(v['status'], v['status'])}", ""]
    if v["reason"]:
        out += [f"> {v['reason']}", ""]
    if v["description"]:
        out += [v["description"], ""]
    out += [f"file `{v['file']}` · tags {', '.join(v['tags']) or '-'} · options `{js(v['options'])}` · "
            f"{sec(v['duration'])} s · {v['events_count']} events, {v['logs_count']} log lines", ""]
    for p in v["problems"]:
        out.append(f"- problem: {p}")
    if v["harness_error"]:
        out += ["Harness error:", "", fence(v["harness_error"].splitlines()), ""]
    out += ["### Steps", ""]
    if v["steps"]:
        out.append(table(["#", "section", "step", "outcome", "expectation", "exit", "t (s)", "took (s)", "detail"],
                         [[s["n"], s["section"], s["label"], s["outcome"], s["status"],
                           model.num(s["exit_code"] if s["exit_code"] is not None else s["status_code"]),
                           sec(s["t"]), sec(s["duration"]), "; ".join(s["detail"])] for s in v["steps"]]))
    else:
        out.append("(no steps ran)")
    out += ["", "### Checks", ""]
    if v["checks"]:
        out.append(table(["#", "verdict", "check", "when", "expected", "seen"],
                         [[c["n"], c["status"].upper(), c["label"], c["timing"], c["expected"],
                           c["seen"] if not c["reason"] else f"{js(c['seen'], 100)} ({c['reason']})"]
                          for c in v["checks"]]))
        out += ["", "Evidence:", ""]
        for c in v["checks"]:
            out.append(f"- check {c['n']} `{c['label']}` [{c['timing']}]{at(c)}: **{c['status']}** after {c['attempts'] or 0} "
                       f"attempt(s) at t={sec(c['t'])}s" + (f"; {c['reason']}" if c["reason"] else ""))
            for e in c["evidence"]:
                if e["snapshot"] is not None:
                    out.append(f"  - snapshot #{e['snapshot']} (t={sec(e['t'])}s)")
                for title, lines in e["items"]:
                    if lines == ["(none)"]:
                        out.append(f"  - {title}: (none)")
                        continue
                    out.append(f"  - {title}:" if title else "  -")
                    out += [f"    - `{cell(line, 300).replace('`', chr(39))}`" for line in lines]
    else:
        out.append("(no checks)")
    out += ["", "### Exit codes and their provenance", ""]
    out.append(table(["t (s)", "what", "exit code", "from"], [[sec(r["t"]), r["what"], model.num(r["value"]), r["source"]]
                                                              for r in v["exit_codes"]]) if v["exit_codes"] else "(none)")
    out += ["", "### Timeline", "", "Faults, actions, events of both daemons, re-parenting and reaping, in time order "
            "(the picture is in report.html):", ""]
    chron = chronology(sc, v)
    out.append(table(["t (s)", "what", ""], chron) if chron else "(nothing recorded)")
    if v["fault_spans"]:
        out += ["", table(["fault", "target", "applied at (s)", "undone at (s)", "undone by", "result"],
                          [[sp["fault"], js(sp["target"], 100), sec(sp["start"]), sec(sp["end"]), sp["by"] or "-",
                            sp["undo"] or "not undone"] for sp in v["fault_spans"]])]
    out += ["", "### Process trees", ""]
    if not v["trees"]:
        out.append("(no snapshots)")
    for t in v["trees"]:
        head = f"**#{t['index']} {t['label']}** (t={sec(t['t'])}s)"
        if t["same_as"] is not None:
            out += [f"- {head}: unchanged since #{t['same_as']}"]
            continue
        out += ([] if out[-1] == "" else [""]) + [head + (f"; {t['hidden']} harness tool process(es) not shown"
                                                          if t["hidden"] else ""), ""]
        out.append(fence(model.text_tree(t)))
        d = t["diff"]
        if any(d.values()):
            out += ["", "Since the previous snapshot:"]
            out += [f"- new: {model.proc_label(p)}" for p in d["added"]]
            out += [f"- gone: {model.proc_label(p)}" for p in d["gone"]]
            out += [f"- changed: {model.proc_label(p)}: {', '.join(w)}" for p, w in d["changed"]]
        if t["host_state"]:
            left = {k: val for k, val in sorted(t["host_state"].items()) if val}
            out += ["", f"Host state: {js(left) if left else 'nothing of the scenario left'}"]
        out.append("")
    out += ["", "### Logs around each fault", ""]
    if not v["logs_around"]:
        out.append("(no faults)")
    for la in v["logs_around"]:
        f = la["fault"]
        out += [f"**{f['label']}** at t={sec(f['t'])}s (lines from {sec(la['from'])}s to {sec(la['to'])}s)", ""]
        lines = []
        for comp in la["components"]:
            lines.append(f"-- {comp['component']}: {len(comp['lines']) + comp['more']} line(s)")
            lines += [f"{sec(r['t']):>8} {r.get('level', ''):<7} {r.get('msg', '')}"[:300] for r in comp["lines"]]
            if comp["more"]:
                lines.append(f"   ... {comp['more']} more in logs/{comp['component']}.log")
        out += [fence(lines), ""]
    orph = v["orphans"]
    if orph.get("adopted") or orph.get("reaped"):
        out += ["### Orphans re-parented to the harness", ""]
        out.append(table(["pid", "name", "role", "adopted at (s)", "reaped at (s)", "exit status"],
                         _orphan_rows(sc, orph)))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _orphan_rows(sc, orph) -> list[list]:
    reaped = {r.get("pid"): r for r in orph.get("reaped") or []}
    rows = []
    for a in orph.get("adopted") or []:
        r = reaped.get(a.get("pid"))
        rows.append([a.get("pid"), a.get("name"), a.get("role") or "-", sec(sc.t(a.get("mono"))),
                     sec(sc.t(r.get("mono"))) if r else "-", model.num(r.get("exit_status")) if r else "still alive"])
    return rows


def run_md(run, pairs: list[tuple]) -> str:
    """The whole run report; *pairs* = [(Scenario, view)]."""
    views = [v for _, v in pairs]
    out = [f"# capsize run {run.id}", ""] + [f"{line}  " for line in header_lines(run)] + [""]
    out += [table(SUMMARY_HEADERS, summary_rows(views)), ""]
    for sc, v in pairs:
        out += [scenario_md(sc, v), ""]
    return "\n".join(out).rstrip() + "\n"


def run_terminal(run, pairs: list[tuple]) -> str:
    views = [v for _, v in pairs]
    out = [tabulate(summary_rows(views), headers=SUMMARY_HEADERS, tablefmt="simple", disable_numparse=True)]
    details = []
    for sc, v in pairs:
        for s in v["steps"]:
            if s["status"] == "failed":
                details.append(f"  {v['key']}: step {s['label']}{at(s)}: {'; '.join(s['detail'])}")
        for c in v["checks"]:
            if c["status"] == "fail":
                ev = [f"{title}: {line}" for e in c["evidence"] for title, lines in e["items"] for line in lines][:3]
                details.append(f"  {v['key']}: check {c['label']} [{c['timing']}]{at(c)}: expected {js(c['expected'], 160)}, "
                               f"seen {js(c['seen'], 160)}" + (f" ({c['reason']})" if c["reason"] else ""))
                details += [f"      {line[:200]}" for line in ev]
            elif c["status"] == "n/a":
                details.append(f"  {v['key']}: check {c['label']}: n/a: {c['reason']}")
        for p in v["problems"]:
            details.append(f"  {v['key']}: {p}")
    if details:
        out += ["", *details]
    return "\n".join(out) + "\n"
