"""HTML rendering (jinja2, autoescaped): one self-contained file per report.

Inline CSS and SVG only: no script, no external asset, no font download; a Content-Security-Policy
of ``default-src 'none'`` makes any reference to something outside the file a browser console error,
which the browser test would catch.
"""

from __future__ import annotations

import os
import re

import jinja2
from markupsafe import Markup

from harness.report import markdown, model, svg

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def env() -> jinja2.Environment:
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(_DIR), autoescape=True, trim_blocks=False,
                           lstrip_blocks=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    with open(os.path.join(_DIR, "style.css")) as f:
        css = f.read()
    e.globals.update(css=Markup(css), sec=model.sec, num=model.num, js=model.js, plabel=model.proc_label,
                     timeline=lambda sc, v: Markup(svg.timeline(sc, v)), tree=lambda t: Markup(svg.tree(t)),
                     hostleft=lambda hs: {k: v for k, v in sorted(hs.items()) if v} or "nothing of the scenario left",
                     orphans=lambda sc, v: markdown._orphan_rows(sc, v["orphans"]), anchor=anchor)
    return e


def run_html(run, pairs: list[tuple]) -> str:
    views = [v for _, v in pairs]
    return env().get_template("report.html.j2").render(
        title=f"capsize run {run.id}", run_id=run.id, header=markdown.header_lines(run),
        summary_headers=markdown.SUMMARY_HEADERS, summary=markdown.summary_rows(views),
        anchors=[anchor(v["key"]) for v in views], pairs=pairs)


def compare_html(cmp: dict) -> str:
    from harness.report import compare
    e = env()
    e.globals.update(side_rows=compare.side_rows, dist=compare._dist_cells)
    return e.get_template("compare.html.j2").render(title=cmp["title"], c=cmp)
