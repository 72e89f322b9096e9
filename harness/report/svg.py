"""Inline SVG: the scenario's timeline and process-tree snapshots (no script, no external asset).

Coordinates are formatted with one decimal, so the same journal draws the same bytes.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from harness.report import model
from harness.report.load import Scenario

W, LEFT, RIGHT, LANE, TOP = 1000, 170, 16, 22, 30
CHAR = 6.6  # width of one character of the 11px monospace labels (estimate, for layout only)

COLORS = {"ok": "#2e7d32", "fail": "#e65100", "unknown": "#757575", "pass": "#2e7d32", "n/a": "#9e9e9e",
          "failed": "#c62828", "daemon": "#1565c0", "runtime": "#6a1b9a", "shim": "#00838f",
          "lowlevel": "#5d4037", "container": "#ef6c00", "fault": "#c62828"}


def f1(x: float) -> str:
    return f"{x:.1f}"


def _t(text) -> str:
    return escape(str(text), {'"': "&quot;"})


def nice_step(span: float) -> float:
    for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600):
        if span / s <= 10:
            return float(s)
    return 3600.0


def timeline(sc: Scenario, view: dict) -> str:
    """Faults (bands and markers), actions (bars by outcome), checks (by verdict), the events
    of both daemons and the lifetimes of the engine's processes, on one time axis (s)."""
    lanes: list[tuple[str, list[str]]] = []
    ends = [view.get("duration") or 0.0]
    for s in view["steps"]:
        if isinstance(s["t"], (int, float)):
            ends.append(s["t"] + (s["duration"] or 0.0))
    ends += [e["t"] for e in sc.events if e.get("t") is not None]
    ends += [c["t"] for c in view["checks"] if isinstance(c["t"], (int, float))]
    span = max([x for x in ends if isinstance(x, (int, float))] + [0.1])
    step = nice_step(span)
    tmax = step * (int(span / step) + 1)
    pw = W - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + max(0.0, min(t, tmax)) / tmax * pw

    def lane_label_free(items, xs, label, last):
        if xs >= last[0]:
            items.append(f'<text x="{f1(xs + 2)}" y="{{y}}" class="lbl">{_t(label)}</text>')
            last[0] = xs + 4 + len(label) * CHAR
    # faults: the ledger's spans (applied -> undone) and the fault steps
    items, last = [], [0.0]
    bands = []
    for sp in view["fault_spans"]:
        if sp["start"] is None:
            continue
        end = sp["end"] if sp["end"] is not None else tmax
        what = f"{sp['fault']} {sp['target'].get('role') or ''}".strip()
        bands.append(f'<rect x="{f1(x(sp["start"]))}" y="{TOP}" width="{f1(max(1.0, x(end) - x(sp["start"])))}" '
                     f'height="{{h}}" class="band"><title>{_t(what)} from t={model.sec(sp["start"])}s to '
                     f'{model.sec(sp["end"])}s (undone: {_t(sp["undo"] or "no")})</title></rect>')
    for f in view["faults"]:
        xs = x(f["t"])
        items.append(f'<path d="M{f1(xs)} {{y0}} l5 8 l-10 0 z" fill="{COLORS["fault"]}"><title>{_t(f["label"])} '
                     f'at t={model.sec(f["t"])}s: {_t(f["outcome"])}</title></path>')
        lane_label_free(items, xs + 4, f["label"].removeprefix("fault."), last)
    lanes.append(("faults", items))
    # actions
    items, last = [], [0.0]
    for s in view["steps"]:
        if str(s["action"]).startswith("fault.") or not isinstance(s["t"], (int, float)):
            continue
        x0, x1 = x(s["t"]), x(s["t"] + (s["duration"] or 0.0))
        color = COLORS.get(s["outcome"], "#757575")
        stroke = ' stroke="#c62828" stroke-width="2"' if s["status"] == "failed" else ""
        items.append(f'<rect x="{f1(x0)}" y="{{y0}}" width="{f1(max(2.0, x1 - x0))}" height="10" fill="{color}"'
                     f'{stroke}><title>{_t(s["label"])}: {_t(s["outcome"])} ({_t(s["status"])}), '
                     f't={model.sec(s["t"])}s, {model.sec(s["duration"])}s</title></rect>')
        lane_label_free(items, max(x1, x0 + 2), s["label"].split(" ")[0] if len(s["label"]) > 24 else s["label"], last)
    lanes.append(("actions", items))
    # checks
    items = []
    for c in view["checks"]:
        if not isinstance(c["t"], (int, float)):
            continue
        items.append(f'<circle cx="{f1(x(c["t"]))}" cy="{{yc}}" r="4" fill="{COLORS.get(c["status"], "#9e9e9e")}">'
                     f'<title>{_t(c["label"])} [{_t(c["timing"])}]: {_t(c["status"])} at t={model.sec(c["t"])}s'
                     f'</title></circle>')
    lanes.append(("checks", items))
    # events of both daemons
    for source in ("daemon", "runtime"):
        items, last = [], [0.0]
        for e in sc.events:
            if e.get("source") != source or e.get("t") is None:
                continue
            xs = x(e["t"])
            name = (sc.names_by_id().get(e.get("container")) or e.get("name") or "") if e.get("container") else ""
            label = e.get("action") or "?"
            items.append(f'<line x1="{f1(xs)}" x2="{f1(xs)}" y1="{{y0}}" y2="{{y1}}" stroke="{COLORS[source]}" '
                         f'stroke-width="2"><title>{_t(source)} event {_t(label)} {_t(name)} at '
                         f't={model.sec(e["t"])}s {_t(model.js(e.get("attrs") or {}, 200))}</title></line>')
            lane_label_free(items, xs, label, last)
        lanes.append((f"{source} events", items))
    # lifetimes
    for life in model.lifetimes(sc):
        x0, x1 = x(life["first"]), x(life["last"])
        color = COLORS.get(life["role"], "#555")
        items = [f'<rect x="{f1(x0)}" y="{{y0}}" width="{f1(max(2.0, x1 - x0))}" height="10" fill="{color}" '
                 f'opacity="0.8"><title>{_t(life["name"])} {life["pid"]} ({_t(life["role"])}) seen from '
                 f't={model.sec(life["first"])}s to {model.sec(life["last"])}s</title></rect>']
        if life["zombie_from"] is not None:
            items.append(f'<rect x="{f1(x(life["zombie_from"]))}" y="{{y0}}" width="{f1(max(2.0, x1 - x(life["zombie_from"])))}"'
                         f' height="10" fill="#9e9e9e"><title>zombie from t={model.sec(life["zombie_from"])}s</title></rect>')
        if life["reparented_at"] is not None:
            xr = x(life["reparented_at"])
            items.append(f'<path d="M{f1(xr)} {{y0}} l4 5 l-4 5 l-4 -5 z" fill="#fdd835" stroke="#000" stroke-width="0.5">'
                         f'<title>re-parented to the harness at t={model.sec(life["reparented_at"])}s</title></path>')
        if life["reaped_at"] is not None:
            xr = x(life["reaped_at"])
            items.append(f'<text x="{f1(xr - 3)}" y="{{y1}}" class="lbl" fill="#000">x<title>reaped by the harness at '
                         f't={model.sec(life["reaped_at"])}s</title></text>')
        title = f"{life['role']}{' ' + life['container'] if life['container'] else ''} {life['pid']} {life['name']}"
        lanes.append((title, items))
    height = TOP + LANE * len(lanes) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{W}" height="{height}" '
           f'viewBox="0 0 {W} {height}" role="img" aria-label="timeline of {_t(view["key"])}">',
           '<style>.lbl{font:11px monospace;fill:#222}.ax{font:11px sans-serif;fill:#444}'
           '.ln{font:12px sans-serif;fill:#111}.band{fill:#c62828;opacity:0.10}</style>']
    for b in bands:
        out.append(b.replace("{h}", str(LANE * len(lanes))))
    t = 0.0
    while t <= tmax + 1e-9:
        xs = x(t)
        out.append(f'<line x1="{f1(xs)}" x2="{f1(xs)}" y1="{TOP - 6}" y2="{TOP + LANE * len(lanes)}" stroke="#ddd"/>')
        out.append(f'<text x="{f1(xs)}" y="{TOP - 10}" class="ax" text-anchor="middle">{model.num(round(t, 3))}s</text>')
        t += step
    for i, (name, items) in enumerate(lanes):
        y = TOP + i * LANE
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{W}" height="{LANE}" fill="#000" opacity="0.03"/>')
        out.append(f'<text x="6" y="{y + 15}" class="ln">{_t(name[:26])}</text>')
        for it in items:
            out.append(it.replace("{y0}", str(y + 6)).replace("{y1}", str(y + 16)).replace("{yc}", str(y + 11))
                       .replace("{y}", str(y + 15)))
    out.append("</svg>")
    return "\n".join(out)


ROW, INDENT = 18, 18


def tree(t: dict) -> str:
    """One snapshot drawn as a tree: elbow connectors, role badges, marks (zombie, re-parented,
    orphan, new) in colour; the processes gone since the previous snapshot listed below it."""
    rows = t["rows"]
    gone = t["diff"]["gone"]
    n = len(rows) + (len(gone) + 1 if gone else 0)
    width = 420.0
    body = []
    pos = {}
    for i, r in enumerate(rows):
        y = 14 + i * ROW
        if r["proc"] is None:
            body.append(f'<text x="4" y="{y}" class="tt">{_t(r["title"])}</text>')
            parent_x, parent_y = 10.0, y
            pos["root"] = (parent_x, parent_y)
            continue
        p = r["proc"]
        xs = 10 + (r["depth"] + 1) * INDENT
        # connector from the parent (the nearest row above with depth - 1)
        j = i - 1
        while j >= 0 and rows[j]["depth"] >= r["depth"]:
            j -= 1
        py = 14 + j * ROW + 4
        px = 10 + (rows[j]["depth"] + 1) * INDENT + 4 if rows[j]["proc"] is not None else 10.0
        body.append(f'<path d="M{f1(px)} {f1(py)} V{f1(y - 4)} H{f1(xs - 2)}" fill="none" stroke="#888"/>')
        zombie = "zombie" in r["marks"]
        label = f"{p.get('pid')} {p.get('name')}"
        body.append(f'<text x="{f1(xs)}" y="{y}" class="tp{" tz" if zombie else ""}">{_t(label)}'
                    f'<title>{_t(" ".join(p.get("cmdline") or []) or p.get("name"))} (ppid {p.get("ppid")}, '
                    f'{_t(p.get("status"))}, cgroup {_t(p.get("cgroup") or "-")})</title></text>')
        cx = xs + len(label) * CHAR + 8
        if p.get("role"):
            role = p["role"] + (f" {p['container_name']}" if p.get("container_name") else "")
            bw = len(role) * CHAR + 8
            body.append(f'<rect x="{f1(cx)}" y="{y - 11}" width="{f1(bw)}" height="14" rx="3" '
                        f'fill="{COLORS.get(p["role"], "#555")}"/>'
                        f'<text x="{f1(cx + 4)}" y="{y}" class="tb">{_t(role)}</text>')
            cx += bw + 6
        for m in r["marks"]:
            color = {"zombie": "#616161", "re-parented": "#f9a825", "orphan": "#c62828", "new": "#2e7d32"}[m]
            body.append(f'<text x="{f1(cx)}" y="{y}" class="tm" fill="{color}">{_t(m)}</text>')
            cx += len(m) * CHAR + 8
        width = max(width, cx + 10)
    if gone:
        y = 14 + len(rows) * ROW
        body.append(f'<text x="4" y="{y}" class="tt">gone since the previous snapshot:</text>')
        for k, p in enumerate(gone):
            y = 14 + (len(rows) + 1 + k) * ROW
            label = f"{model.proc_label(p)} {p.get('status')}"
            body.append(f'<text x="{f1(10 + INDENT)}" y="{y}" class="tg">{_t(label)}</text>')
            width = max(width, 10 + INDENT + len(label) * CHAR + 10)
    h = 8 + n * ROW
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="tree" width="{f1(width)}" height="{h}" '
            f'viewBox="0 0 {f1(width)} {h}" role="img" aria-label="process tree, snapshot {t["index"]}">'
            '<style>.tt{font:12px sans-serif;fill:#555;font-style:italic}.tp{font:11px monospace;fill:#111}'
            '.tz{fill:#888;text-decoration:line-through}.tb{font:11px monospace;fill:#fff}'
            '.tm{font:bold 11px monospace}.tg{font:11px monospace;fill:#c62828;text-decoration:line-through}</style>'
            + "".join(body) + "</svg>")
