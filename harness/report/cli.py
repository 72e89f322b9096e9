"""``capsize report`` and ``capsize compare``, and the reports written at the end of ``capsize run``.

* ``capsize report RUN [--out DIR]`` — (re-)render ``report.md`` and ``report.html`` of a run
  directory (into DIR, default the run directory; a run with several engines or repeats also
  gets ``compare.md``/``compare.html``) and print the terminal summary; exit 0 when rendered,
  2 for a journal of another schema (one line says which), 3 when there is no journal;
* ``capsize compare RUN... [--by engine|run] [--out DIR]`` — compare runs (engines side by side,
  or runs of one engine, or its repeats): terminal matrix and divergences, ``compare.md`` and
  ``compare.html`` in DIR (default ``reports/compare/<run ids>``); exit 0 when nothing diverged,
  1 when something did.
"""

from __future__ import annotations

import os
import sys

COMPARE_OUT = os.path.join("reports", "compare")


def add_parsers(sub) -> None:
    r = sub.add_parser("report", help="render a run's report.md and report.html from its journal.json")
    r.add_argument("run", metavar="RUN", help="run directory (or its journal.json)")
    r.add_argument("--out", metavar="DIR", help="write the reports here (default: the run directory)")
    r.add_argument("--quiet", "-q", action="store_true", help="print only the paths written")
    c = sub.add_parser("compare", help="compare runs: engines side by side, two runs, or repeats "
                                       "(exit 1 when there are divergences, 0 when none)")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or their journal.json)")
    c.add_argument("--by", choices=("auto", "engine", "run"), default="auto",
                   help="columns: engines, or runs (default: engines when there are several)")
    c.add_argument("--out", metavar="DIR", help=f"write compare.md and compare.html here "
                                                f"(default {COMPARE_OUT}/<run ids>)")


def dispatch(args) -> int:
    from harness.report.render import render_compare, render_run
    if args.command == "report":
        text, paths = render_run(args.run, args.out)
        if not args.quiet:
            sys.stdout.write(text)
        sys.stdout.write("".join(f"wrote {p}\n" for p in paths))
        return 0
    from harness.report.load import load_run
    runs = [load_run(r) for r in args.runs]
    out = args.out or os.path.join(COMPARE_OUT, "--".join(r.id for r in runs)[:180])
    text, paths = render_compare(runs, out, by=args.by)
    sys.stdout.write(text)
    sys.stdout.write("".join(f"wrote {p}\n" for p in paths))
    return 1 if "\n0 divergence(s)" not in text else 0


def after_run(args, run) -> int:
    """Call *run* (``capsize run``), then render the reports of the run directory it made."""
    code = run()
    run_dir = getattr(args, "run_dir", None)  # set by the run once it made its directory
    if not run_dir or not os.path.exists(os.path.join(run_dir, "journal.json")):
        return code
    from harness.report.render import render_run
    try:
        text, paths = render_run(run_dir)
    except Exception as e:  # noqa: BLE001 - the run's result stands; say why there is no report
        sys.stderr.write(f"capsize: the reports of {run_dir} could not be rendered: {type(e).__name__}: {e} "
                         f"(capsize report {run_dir} retries)\n")
        return code
    marker = "\ncapsize comparison: "
    if marker in "\n" + text:
        sys.stdout.write("\n" + text[text.index(marker.lstrip("\n")):])
    sys.stdout.write("reports: " + ", ".join(paths) + "\n")
    return code
