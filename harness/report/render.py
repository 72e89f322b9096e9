"""Writing reports: :func:`render_run` (report.md, report.html, terminal text) and
:func:`render_compare` (compare.md, compare.html, terminal text)."""

from __future__ import annotations

import os

from harness.report import html, markdown, model
from harness.report.load import Run, load_run
from runtime import atomicfile


def _write(path: str, text: str) -> None:
    """*text* (UTF-8, newlines as given) to *path*, replaced atomically (a report is rebuilt from
    its journal, so no fsync)."""
    atomicfile.write(path, text, durable=False)


def run_pairs(run: Run) -> list[tuple]:
    return [(sc, model.scenario_view(sc)) for sc in run.scenarios]


def render_run(run_dir: str | Run, out_dir: str | None = None) -> tuple[str, list[str]]:
    """Render the run at *run_dir* into *out_dir* (default: the run directory). Returns the
    terminal summary and the paths written. A run with several engines or repeats also gets
    its comparison (compare.md, compare.html)."""
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    out_dir = out_dir or run.dir
    os.makedirs(out_dir, exist_ok=True)
    pairs = run_pairs(run)
    paths = [os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html")]
    _write(paths[0], markdown.run_md(run, pairs))
    _write(paths[1], html.run_html(run, pairs))
    text = markdown.run_terminal(run, pairs)
    from harness.report import compare
    if compare.worth_comparing([run]):
        ctext, cpaths = render_compare([run], out_dir)
        text += "\n" + ctext
        paths += cpaths
    return text, paths


def render_compare(runs: list, out_dir: str | None, by: str = "auto") -> tuple[str, list[str]]:
    """Compare the runs (directories or loaded); write compare.md and compare.html into *out_dir*
    (None: write nothing). Returns the terminal text and the paths written."""
    from harness.report import compare
    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    cmp = compare.build(loaded, by=by)
    paths = []
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, "compare.md"), os.path.join(out_dir, "compare.html")]
        _write(paths[0], compare.to_md(cmp))
        _write(paths[1], html.compare_html(cmp))
    return compare.to_terminal(cmp), paths
