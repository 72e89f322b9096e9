"""Reports from a run's ``journal.json`` (schema ``capsize.journal/1``, :mod:`harness.journal`).

* :func:`render_run` — one run: ``report.md``, ``report.html`` (one self-contained file: inline
  CSS and SVG, no script, no external asset) and the terminal summary (tabulate);
* :func:`render_compare` — two or more runs, or one run on several engines or repeats:
  ``compare.md``, ``compare.html`` and the terminal matrix, with every divergence side by side
  and, across repeats of one engine, pass rates, flaky checks and timing distributions.

Rendering is a pure function of the journal and the files of its run directory (events,
snapshots, logs): no rendering time, sorted keys, fixed float formats, so the same journal
always renders byte-identical reports (the golden tests in ``tests/reports`` hold it to that).
"""

from harness.report.load import SCHEMAS, load_run
from harness.report.render import render_compare, render_run

__all__ = ["SCHEMAS", "load_run", "render_run", "render_compare"]
