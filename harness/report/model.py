"""What a report shows, computed once from a loaded scenario and shared by every renderer.

Everything here is deterministic: lists are sorted by explicit keys, numbers are formatted by
:func:`sec` / :func:`num`, JSON by :func:`js` (sorted keys), so renderers never meet a dict in
an order that could change.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from harness.report.load import Scenario

#: Order of roles wherever roles are listed.
ROLES = ("daemon", "runtime", "shim", "lowlevel", "container")
#: Window around a fault for "logs around the fault": from BEFORE s before to AFTER s after its end.
LOG_BEFORE, LOG_AFTER, LOG_MAX = 1.0, 3.0, 12


# -- formatting -------------------------------------------------------------------------------------

def sec(x) -> str:
    """Seconds with millisecond precision (``1.235``), ``-`` when unknown."""
    return "-" if not isinstance(x, (int, float)) else f"{x:.3f}"


def num(x) -> str:
    if isinstance(x, bool) or x is None:
        return "-" if x is None else str(x).lower()
    if isinstance(x, float):
        return f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
    return str(x)


def js(v, limit: int = 400) -> str:
    """Compact JSON (sorted keys), cut at *limit* characters; strings as they are."""
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str, separators=(", ", ": "))
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} more)"


def first_line(s, limit: int = 200) -> str:
    s = (s or "").strip()
    line = s.splitlines()[-1] if s else ""
    return line if len(line) <= limit else line[:limit] + "..."


def proc_label(p: dict) -> str:
    role = p.get("role")
    cn = p.get("container_name") or ""
    tag = f" [{role}{' ' + cn if cn else ''}]" if role else ""
    return f"{p.get('pid')} {p.get('name')}{tag}"


# -- steps ----------------------------------------------------------------------------------------

def steps(sc: Scenario) -> list[dict]:
    """One row per recorded step: outcome (ok/fail/unknown), status against its expectation
    (ok/failed/skipped/started), exit code, t and duration (s), and what explains a failure."""
    rows = []
    for i, s in enumerate(sc.entry.get("steps") or []):
        detail = list(s.get("mismatches") or [])
        if s.get("status") == "skipped":
            detail.append(f"skipped: {s.get('reason')}")
        if s.get("error") and s.get("outcome") != "ok":
            detail.append(f"error: {first_line(s['error'])}")
        elif s.get("stderr") and s.get("exit_code") not in (None, 0):
            detail.append(f"stderr: {first_line(s['stderr'])}")
        if s.get("awaited_by"):
            detail.append(f"awaited by {s['awaited_by']}")
        if s.get("status") == "failed" and s.get("source"):
            detail.insert(0, f"at {s['source']}")
        rows.append({"n": i + 1, "section": s.get("section") or "", "label": s.get("label") or s.get("action") or "?",
                     "action": s.get("action") or "", "outcome": s.get("outcome") or "-",
                     "status": s.get("status") or "-", "exit_code": s.get("exit_code"),
                     "status_code": s.get("status_code"), "t": s.get("t"), "duration": s.get("duration"),
                     "snapshot": s.get("snapshot"), "detail": detail, "id": s.get("id"), "source": s.get("source"),
                     "background": bool(s.get("background"))})
    return rows


# -- checks ---------------------------------------------------------------------------------------

def _evidence_item(key: str, v) -> tuple[str, list[str]]:
    """(title, lines) for one evidence field."""
    if not isinstance(v, list):
        return key, [js(v)]
    lines = []
    for x in v[:20]:
        if not isinstance(x, dict):
            lines.append(js(x, 300))
        elif "line" in x:
            lines.append(f"t={sec(x.get('t'))}s {x['line']}")
        elif "pid" in x:
            extra = f" ({x['problem']})" if x.get("problem") else ""
            lines.append(f"{proc_label(x)} ppid {x.get('ppid')} {x.get('status')}: {x.get('cmdline', '')}"[:260] + extra)
        elif "action" in x:
            lines.append(f"{x['action']} at t={sec(x.get('t'))}s {js(x.get('attrs') or {}, 200)}")
        elif "exitCode" in x:
            lines.append(f"exitCode {x['exitCode']} at t={sec(x.get('t'))}s")
        else:
            lines.append(js(x, 300))
    if len(v) > 20:
        lines.append(f"... {len(v) - 20} more")
    if not v:
        lines.append("(none)")
    return key, lines


def evidence(ev) -> list[dict]:
    """Evidence of a check as ``[{"snapshot": index|None, "t", "items": [(title, lines)]}]``."""
    out = []
    for e in ev or []:
        if not isinstance(e, dict):
            out.append({"snapshot": None, "t": None, "items": [("", [js(e, 2000)])]})
            continue
        items = [_evidence_item(k, e[k]) for k in sorted(e) if k not in ("snapshot", "t")]
        out.append({"snapshot": e.get("snapshot"), "t": e.get("t"), "items": items})
    return out


def checks(sc: Scenario) -> list[dict]:
    rows = []
    for i, c in enumerate(sc.entry.get("checks") or []):
        rows.append({"n": i + 1, "label": c.get("check") or c.get("kind") or "?", "kind": c.get("kind") or "",
                     "timing": c.get("timing") or "", "status": c.get("status") or "?",
                     "reason": c.get("reason") or "", "expected": c.get("expected"), "seen": c.get("seen"),
                     "evidence": evidence(c.get("evidence")), "attempts": c.get("attempts"),
                     "t": c.get("t"), "elapsed": c.get("elapsed"), "within": c.get("within"),
                     "source": c.get("source")})
    return rows


def check_keys(sc: Scenario) -> list[tuple[tuple, dict]]:
    """Checks keyed for comparison: (timing, label, n-th of that pair)."""
    seen: Counter = Counter()
    out = []
    for c in sc.entry.get("checks") or []:
        k = (c.get("timing") or "", c.get("check") or c.get("kind") or "?")
        seen[k] += 1
        out.append(((k[0], k[1], seen[k]), c))
    return out


# -- process trees --------------------------------------------------------------------------------

def _pkey(p: dict) -> tuple:
    return (p.get("pid"), p.get("create_time"))


def _visible(snap: dict) -> list[dict]:
    return [p for p in snap.get("processes") or [] if p.get("role") != "harness-tool"]


def harness_pid(sc: Scenario) -> int | None:
    """The harness's pid: the parent of re-parented processes, else the commonest parent of roots."""
    roots: Counter = Counter()
    for s in sc.snapshots:
        procs = s.get("processes") or []
        pids = {p.get("pid") for p in procs}
        for p in procs:
            if p.get("reparented"):
                return p.get("ppid")
            if p.get("ppid") not in pids and p.get("ppid") not in (0, 1, None):
                roots[p.get("ppid")] += 1
    if not roots:
        return None
    return sorted(roots.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def marks(p: dict, by_pid: dict, prev: dict | None, runtime_up: bool) -> list[str]:
    """What is remarkable about *p* in its snapshot: zombie, re-parented, orphan, new."""
    out = []
    if p.get("status") == "zombie":
        out.append("zombie")
    old = prev.get(_pkey(p)) if prev is not None else None
    if p.get("reparented") or (old is not None and old.get("ppid") != p.get("ppid")):
        out.append("re-parented")
    if p.get("status") != "zombie":
        if p.get("role") == "container":
            parent = by_pid.get(p.get("ppid"))
            if parent is None or parent.get("role") not in ("shim", "container"):
                out.append("orphan")
        elif p.get("role") == "shim" and not runtime_up:
            out.append("orphan")
    if prev is not None and old is None:
        out.append("new")
    return out


def trees(sc: Scenario) -> list[dict]:
    """Each snapshot as a forest, with marks and its difference from the one before::

        {"index", "label", "t", "rows": [{"depth", "last", "proc", "marks", "guides"}],
         "roots": [...], "diff": {"added", "gone", "changed"}, "same_as": index|None,
         "hidden": n harness tools}
    """
    hp = harness_pid(sc)
    out = []
    prev_map = None
    prev_index = None
    for s in sc.snapshots:
        procs = _visible(s)
        by_pid = {p.get("pid"): p for p in procs}
        runtime_up = any(p.get("role") == "runtime" and p.get("status") != "zombie" for p in procs)
        kids = defaultdict(list)
        roots = defaultdict(list)
        for p in procs:
            if p.get("ppid") in by_pid and p.get("ppid") != p.get("pid"):
                kids[p["ppid"]].append(p)
            else:
                roots[p.get("ppid")].append(p)
        rows = []
        done = set()

        def walk(p, depth, last, guides):
            if p.get("pid") in done:
                return
            done.add(p.get("pid"))
            rows.append({"depth": depth, "last": last, "guides": guides, "proc": p,
                         "marks": marks(p, by_pid, prev_map, runtime_up)})
            ch = sorted(kids.get(p.get("pid"), []), key=lambda q: q.get("pid") or 0)
            for j, q in enumerate(ch):
                walk(q, depth + 1, j == len(ch) - 1, guides + [not last])

        root_groups = []
        for ppid in sorted(roots, key=lambda x: (x is None, x or 0)):
            if ppid == hp and hp is not None:
                title = f"pid {ppid}: the harness"
            elif ppid == 1:
                title = "pid 1: init"
            else:
                title = f"pid {ppid}: outside the snapshot"
            start = len(rows)
            rows.append({"depth": -1, "title": title, "proc": None, "marks": [], "last": False, "guides": []})
            group = sorted(roots[ppid], key=lambda q: q.get("pid") or 0)
            for j, p in enumerate(group):
                walk(p, 0, j == len(group) - 1, [])
            root_groups.append((start, len(rows)))
        cur = {_pkey(p): p for p in procs}
        diff = {"added": [], "gone": [], "changed": []}
        if prev_map is not None:
            diff["added"] = [cur[k] for k in sorted(cur, key=_sortkey) if k not in prev_map]
            diff["gone"] = [prev_map[k] for k in sorted(prev_map, key=_sortkey) if k not in cur]
            for k in sorted(cur, key=_sortkey):
                if k in prev_map:
                    a, b = prev_map[k], cur[k]
                    what = []
                    if a.get("ppid") != b.get("ppid"):
                        what.append(f"parent {a.get('ppid')} -> {b.get('ppid')} (re-parented)")
                    if a.get("status") != b.get("status"):
                        what.append(f"status {a.get('status')} -> {b.get('status')}")
                    if a.get("role") != b.get("role"):
                        what.append(f"role {a.get('role')} -> {b.get('role')}")
                    if what:
                        diff["changed"].append((b, what))
        unchanged = prev_map is not None and not any(diff.values())
        out.append({"index": s.get("index"), "label": s.get("label") or "", "t": s.get("t"), "rows": rows,
                    "diff": diff, "same_as": prev_index if unchanged else None,
                    "hidden": len(s.get("processes") or []) - len(procs), "host_state": s.get("host_state")})
        prev_map = cur
        if not unchanged:
            prev_index = s.get("index")
    return out


def _sortkey(k):
    return (k[0] or 0, k[1] or 0.0)


def text_tree(tree: dict) -> list[str]:
    """A snapshot as box-drawing text lines (Markdown and terminal)."""
    lines = []
    for r in tree["rows"]:
        if r["proc"] is None:
            lines.append(r["title"])
            continue
        prefix = "".join("│  " if g else "   " for g in r["guides"])
        branch = "└─ " if r["last"] else "├─ "
        p = r["proc"]
        m = f"  <{', '.join(r['marks'])}>" if r["marks"] else ""
        lines.append(f"{prefix}{branch}{proc_label(p)} {p.get('status')}{m}")
    return lines


def snapshot_signature(snap: dict) -> Counter:
    """The engine's processes as a multiset of (role, container, parent's role, state), for
    comparing snapshots across engines (pids and program names differ; roles do not)."""
    procs = _visible(snap)
    by_pid = {p.get("pid"): p for p in procs}
    c: Counter = Counter()
    for p in procs:
        if not p.get("role"):
            continue
        parent = by_pid.get(p.get("ppid"))
        prole = parent.get("role") if parent else ("harness" if p.get("reparented") else "outside")
        c[(p.get("role"), p.get("container_name") or "-", prole or "-",
           "zombie" if p.get("status") == "zombie" else "live")] += 1
    return c


# -- events, logs, exit codes ----------------------------------------------------------------------

def container_events(sc: Scenario) -> list[dict]:
    """Events about the scenario's containers, named by scenario name (ids differ per engine)."""
    names = sc.names_by_id()
    out = []
    for e in sc.events:
        cid = e.get("container")
        if not cid:
            continue
        out.append({"t": e.get("t"), "source": e.get("source") or "?", "action": e.get("action") or "?",
                    "container": names.get(cid) or e.get("name") or (cid or "")[:12], "attrs": e.get("attrs") or {}})
    return out


def event_signature(e: dict) -> str:
    extra = ""
    a = e.get("attrs") or {}
    for k in ("exitCode", "exit_status"):
        if k in a:
            extra = f"({k}={a[k]})"
    return f"{e['source']}:{e['action']} {e['container']}{extra}"


def faults(sc: Scenario) -> list[dict]:
    """Faults: every step whose action is ``fault.*`` (t, duration), with its ledger entry."""
    ledger = {}
    for f in sc.entry.get("faults") or []:
        if f.get("op") in ("fault.apply", "fault.undo"):
            ledger.setdefault(f.get("id"), {})[f["op"]] = f
    out = []
    for s in sc.entry.get("steps") or []:
        if str(s.get("action", "")).startswith("fault.") and isinstance(s.get("t"), (int, float)):
            out.append({"label": s.get("label") or s["action"], "t": s["t"], "duration": s.get("duration") or 0.0,
                        "outcome": s.get("outcome"), "error": s.get("error")})
    spans = []
    for fid in sorted(ledger, key=str):
        a, u = ledger[fid].get("fault.apply"), ledger[fid].get("fault.undo")
        if not a:
            continue
        spans.append({"id": fid, "fault": a.get("fault"), "target": a.get("target") or {},
                      "start": sc.t(a.get("mono")), "end": sc.t(u.get("mono")) if u else None,
                      "undo": (u or {}).get("result"), "by": (u or {}).get("by")})
    spans.sort(key=lambda x: (x["start"] if x["start"] is not None else -1.0, str(x["id"])))
    return [f for f in out], spans


def logs_around_faults(sc: Scenario) -> list[dict]:
    """For each fault: every component's log lines from LOG_BEFORE s before it to LOG_AFTER s
    after it ended (at most LOG_MAX per component; the rest counted)."""
    fs, _ = faults(sc)
    comps = sorted({r.get("component") or "?" for r in sc.logs})
    out = []
    for f in fs:
        lo, hi = f["t"] - LOG_BEFORE, f["t"] + f["duration"] + LOG_AFTER
        per = []
        for c in comps:
            lines = [r for r in sc.logs if (r.get("component") or "?") == c and r["t"] is not None and lo <= r["t"] <= hi]
            per.append({"component": c, "lines": lines[:LOG_MAX], "more": max(0, len(lines) - LOG_MAX)})
        out.append({"fault": f, "from": lo, "to": hi, "components": per})
    return out


EXIT_KEYS = ("exitCode", "exit_status")


def exit_codes(sc: Scenario) -> list[dict]:
    """Every exit code the run saw, with where it came from: ``{"what", "value", "source", "t"}``."""
    rows = []
    for s in sc.entry.get("steps") or []:
        if s.get("exit_code") is not None:
            rows.append({"what": f"step: {s.get('label')}", "value": s["exit_code"],
                         "source": "the command's exit status", "t": s.get("t")})
        if s.get("status_code") is not None:
            rows.append({"what": f"step: {s.get('label')}", "value": s["status_code"],
                         "source": "the API's status code", "t": s.get("t")})
    for e in container_events(sc):
        for k in EXIT_KEYS:
            if k in e["attrs"]:
                rows.append({"what": f"container {e['container']}", "value": e["attrs"][k],
                             "source": f"{e['source']} event {e['action']} ({k})", "t": e["t"]})
    for c in sc.entry.get("checks") or []:
        seen = c.get("seen")
        if isinstance(seen, dict) and isinstance(seen.get("exit_code_provenance"), dict):
            prov = seen["exit_code_provenance"]
            for k in sorted(prov):
                rows.append({"what": f"{c.get('check')} [{c.get('timing')}]", "value": prov[k],
                             "source": {"inspect": "the daemon's inspect (State.ExitCode)",
                                        "die_event": "the daemon's last die event",
                                        "runtime": "the runtime's task"}.get(k, k), "t": c.get("t")})
    for r in (sc.entry.get("orphans") or {}).get("reaped") or []:
        rows.append({"what": f"orphan {r.get('pid')} {r.get('name')}" + (f" [{r['role']}]" if r.get("role") else ""),
                     "value": r.get("exit_status"), "source": "reaped by the harness (waitpid)",
                     "t": sc.t(r.get("mono"))})
    rows.sort(key=lambda r: (r["t"] is None, r["t"] or 0.0, r["what"], r["source"]))
    return rows


def lifetimes(sc: Scenario) -> list[dict]:
    """Engine processes seen in snapshots: ``{"role", "pid", "name", "container", "first", "last",
    "zombie_from", "reparented_at", "reaped_at"}`` (times from snapshots, adoptions and reaps)."""
    seen: dict = {}
    for s in sc.snapshots:
        t = s.get("t")
        for p in _visible(s):
            if p.get("role") not in ROLES or t is None:
                continue
            k = _pkey(p)
            r = seen.setdefault(k, {"role": p["role"], "pid": p.get("pid"), "name": p.get("name"),
                                    "container": p.get("container_name"), "first": t, "last": t,
                                    "zombie_from": None, "reparented_at": None, "reaped_at": None})
            r["last"] = t
            if p.get("status") == "zombie" and r["zombie_from"] is None:
                r["zombie_from"] = t
            if p.get("reparented") and r["reparented_at"] is None:
                r["reparented_at"] = t
    for n in sc.entry.get("notes") or []:
        for r in seen.values():
            if r["pid"] == n.get("pid") and isinstance(n.get("t"), (int, float)):
                if n.get("kind") == "adopted" and (r["reparented_at"] is None or n["t"] < r["reparented_at"]):
                    r["reparented_at"] = n["t"]
                if n.get("kind") == "reaped":
                    r["reaped_at"] = n["t"]
    order = {r: i for i, r in enumerate(ROLES)}
    return sorted(seen.values(), key=lambda r: (order.get(r["role"], 9), r["first"], r["pid"] or 0))


# -- the whole scenario ---------------------------------------------------------------------------

def scenario_view(sc: Scenario) -> dict:
    fs, spans = faults(sc)
    e = sc.entry
    return {"key": sc.key, "name": sc.name, "engine": sc.engine, "repeat": sc.repeat, "status": sc.status,
            "reason": e.get("reason") or "", "duration": e.get("duration"), "file": e.get("file") or "",
            "description": (e.get("description") or "").strip(), "tags": list(e.get("tags") or []),
            "options": e.get("options") or {}, "steps": steps(sc), "checks": checks(sc), "trees": trees(sc),
            "faults": fs, "fault_spans": spans, "logs_around": logs_around_faults(sc),
            "exit_codes": exit_codes(sc), "orphans": e.get("orphans") or {}, "restored": e.get("restored") or [],
            "problems": list(sc.problems) + list(e.get("problems") or []) + list(e.get("close_problems") or []),
            "harness_error": e.get("harness_error"), "events_count": len(sc.events), "logs_count": len(sc.logs),
            "counts": Counter(c.get("status") for c in e.get("checks") or [])}
