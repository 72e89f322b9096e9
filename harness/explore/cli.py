"""``capsize explore WORKLOAD.yaml [--engine capsize] [--depth N] [--budget T] [--seed S] [--out DIR]
[--shard i/n] [--max N] [--every-hit] [--schedule ID@HIT[+ID@HIT]]... [--no-shrink] [--quiet]``.

``--budget``: seconds (``300``, ``5m``) after which no new schedule starts; ``--max``: at most N
schedules; ``--schedule``: run only these (reproduce a finding from its ids). Exit 0 when no
schedule failed, 1 when one did, 2 for bad input. Only engine ``capsize`` has named points
(Docker's syscall-level points are not built yet).
"""

from __future__ import annotations

import sys

from runtime.errors import InvalidArgument, Unimplemented

DEFAULT_OUT = "reports/explore"


def add_parsers(sub) -> None:
    e = sub.add_parser("explore", help="kill each tier at each named crash point of a workload, check the invariants")
    e.add_argument("workload", metavar="WORKLOAD.yaml")
    e.add_argument("--engine", default="capsize", help="engine (capsize: named crash points)")
    e.add_argument("--depth", type=int, default=1, help="1: one kill per schedule; 2: also seeded pairs")
    e.add_argument("--budget", help="time budget (seconds, or 5m): no schedule starts after it")
    e.add_argument("--seed", type=int, default=0, help="seed of depth-2 sampling")
    e.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"parent of the run directory ({DEFAULT_OUT})")
    e.add_argument("--shard", metavar="i/n", help="run the i-th of n interleaved parts of the schedules")
    e.add_argument("--max", type=int, metavar="N", help="at most N schedules")
    e.add_argument("--every-hit", action="store_true", help="a schedule per passage of each point, not only the first")
    e.add_argument("--schedule", action="append", metavar="ID@HIT", help="run only this schedule (repeatable)")
    e.add_argument("--no-shrink", action="store_true", help="do not shrink failing schedules")
    e.add_argument("--quiet", "-q", action="store_true")


def _budget(text: str | None) -> float | None:
    if text is None:
        return None
    t = text.strip()
    try:
        return float(t[:-1]) * 60 if t.endswith("m") else float(t.rstrip("s"))
    except ValueError:
        raise InvalidArgument(f"--budget {text!r}: want seconds or minutes (300, 5m)") from None


def dispatch(args) -> int:
    if args.engine != "capsize":
        raise Unimplemented(f"capsize explore: engine {args.engine} has no named crash points "
                            "(syscall-level points for Docker are not implemented yet)")
    from harness.explore.run import explore
    doc = explore(args.workload, args.out, depth=args.depth, seed=args.seed, budget=_budget(args.budget),
                  max_schedules=args.max, shard_spec=args.shard, every_hit=args.every_hit, only=args.schedule,
                  do_shrink=not args.no_shrink, quiet=args.quiet)
    n = {s: sum(1 for r in doc["schedules"] if r["status"] == s) for s in ("pass", "fail", "unknown")}
    sys.stdout.write(f"{len(doc['schedules'])} schedules: {n['pass']} pass, {n['fail']} fail, {n['unknown']} unknown; "
                     f"coverage {len(doc['reached'])}/{len(doc['known'])} points; "
                     f"{doc['throughput_per_minute']} schedules/minute\n"
                     f"report: {doc['run_dir']}/report.md, {doc['run_dir']}/explore.json\n")
    return 1 if n["fail"] else 0
