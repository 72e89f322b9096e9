"""The harness's subcommands of ``capsize``: run, validate, list, schema, docs, engine, recover, doctor.

Each ``cmd_*`` takes the parsed arguments and returns the exit code; bad input raises
:class:`~runtime.errors.InvalidArgument` (exit 2, one line) before anything is started.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from harness.engines import DEFAULT, NAMES, engine_class
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

DEFAULT_OUT = os.path.join("reports", "runs")
ENGINE_ROOT = "/var/tmp/capsize-engines"


def add_parsers(sub) -> None:
    r = sub.add_parser("run", help="run scenarios on engines; exit 0 only when every check held")
    r.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    r.add_argument("--engine", action="append", choices=NAMES, help=f"engine (repeatable; default {DEFAULT})")
    r.add_argument("--repeat", type=int, default=1, metavar="N", help="run each scenario N times")
    r.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"parent of the run directory ({DEFAULT_OUT})")
    r.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    r.add_argument("--tag", action="append", metavar="T", help="only scenarios with this tag (repeatable: any)")
    r.add_argument("--keep-going", action="store_true", help="after a step fails its expectation, run the rest")
    r.add_argument("--fail-fast", action="store_true", help="stop after the first scenario that fails")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress, only the summary")
    v = sub.add_parser("validate", help="validate scenario files (nothing is started)")
    v.add_argument("paths", nargs="+", metavar="PATH")
    ls = sub.add_parser("list", help="list scenarios: name, tags, engines, description")
    ls.add_argument("paths", nargs="*", metavar="PATH", default=["scenarios"])
    sc = sub.add_parser("schema", help="print the scenarios' JSON Schema")
    sc.add_argument("--out", metavar="FILE", help="write it to FILE instead")
    dc = sub.add_parser("docs", help="regenerate scenarios/README.md's verb tables and scenarios/scenario.schema.json "
                                     "from the verb registry")
    dc.add_argument("--check", action="store_true", help="write nothing; exit 1 when a checked-in file differs")
    dc.add_argument("--dir", default="scenarios", metavar="DIR", help="where README.md and scenario.schema.json are")
    e = sub.add_parser("engine", help="an engine in a private root, to poke by hand with the docker CLI")
    e.add_argument("verb", choices=("up", "down", "status", "env"))
    e.add_argument("--engine", default=DEFAULT, choices=NAMES, help=f"engine (default {DEFAULT}, as for run)")
    e.add_argument("--root", metavar="DIR", help=f"its private root (default {ENGINE_ROOT}/<engine>)")
    e.add_argument("--live-restore", action="store_true", help="engine option live_restore (up)")
    e.add_argument("--runtime", choices=("capsize-runc", "runc", "crun"), help="engine option runtime (up)")
    e.add_argument("--registry", action="store_true", help="also start a private registry (docker-registry) "
                                                           "the engine's daemons reach; env prints CAPSIZE_REGISTRY")
    rc = sub.add_parser("recover", help="undo what a crashed harness left applied, remove its engines")
    rc.add_argument("run", nargs="?", metavar="RUN", help="run directory (default: every run under reports/runs "
                                                          "with something left)")
    sub.add_parser("doctor", help="what this host has, and what each missing piece disables")


def dispatch(args) -> int:
    return globals()["cmd_" + args.command](args)


# -- run ----------------------------------------------------------------------------------------

def cmd_run(args) -> int:
    from harness import journal as jr
    from harness.ledger import LEDGER, Ledger
    from harness.progress import Progress
    from harness.runner import run_scenario
    from harness.scenario import load_all
    if args.repeat < 1:
        raise InvalidArgument("--repeat must be at least 1")
    scenarios = load_all(args.paths)  # every file is valid before anything starts
    if args.tag:
        scenarios = [s for s in scenarios if set(s.any.tags) & set(args.tag)]
        if not scenarios:
            raise InvalidArgument(f"no scenario has tag {' or '.join(args.tag)}")
    engines = list(dict.fromkeys(args.engine or [DEFAULT]))
    plan, skipped = [], []
    for s in scenarios:
        for eng in engines:
            if eng in s.engines:
                plan.extend((s, eng, r) for r in range(args.repeat))
            else:
                skipped.append(f"{s.name} does not apply to engine {eng} (engines: {', '.join(s.engines)})")
    if not plan:
        raise InvalidArgument("nothing to run: " + "; ".join(skipped))
    name = scenarios[0].name if len(scenarios) == 1 else os.path.basename(os.path.normpath(args.paths[0]))
    name = name.removesuffix(".yaml").removesuffix(".yml")
    run_dir = args.run_dir = jr.new_run_dir(args.out, name)  # the reports are rendered into it
    journal = jr.Journal(run_dir, sys.argv)
    ledger = Ledger(os.path.join(run_dir, LEDGER))
    progress = Progress(len(plan), quiet=args.quiet)
    for line in skipped:
        sys.stderr.write(f"capsize: note: {line}\n")
    old = signal.signal(signal.SIGTERM, _interrupt)
    stop = False
    try:
        for s, eng, rep in plan:
            if stop:
                entry = {"scenario": s.name, "file": s.path, "engine": eng, "repeat": rep + 1, "run": s.name,
                         "status": "not run", "reason": "--fail-fast: an earlier scenario failed", "checks": []}
                journal.add(entry)
                continue
            try:
                entry = run_scenario(s, eng, run_dir, ledger, repeat=rep, repeats=args.repeat,
                                     keep_going=args.keep_going, progress=progress)
            except KeyboardInterrupt as e:
                entry = getattr(e, "entry", None) or {
                    "scenario": s.name, "file": s.path, "engine": eng, "repeat": rep + 1, "run": s.name,
                    "status": "interrupted", "checks": [], "reason": "interrupted before the run started"}
                journal.data["runs"].append(entry)
                break
            journal.add(entry)
            if args.fail_fast and entry["status"] in ("fail", "error"):
                stop = True
    finally:
        signal.signal(signal.SIGTERM, old)
        progress.close()
        journal.write(finished=True)
        entries = journal.data["runs"]
        text = jr.summary_text(entries)
        with open(os.path.join(run_dir, "summary.txt"), "w") as f:
            f.write(text)
        jr.write_junit(os.path.join(run_dir, "junit.xml"), entries)
        if args.junit:
            jr.write_junit(args.junit, entries)
    sys.stdout.write(text)
    sys.stdout.write(f"\nrun directory: {run_dir}\n")
    return jr.exit_code(entries)


def _interrupt(signum, frame):
    """SIGTERM is handled as Ctrl-C: the current scenario's teardown still runs."""
    raise KeyboardInterrupt


# -- validate, list, schema ---------------------------------------------------------------------

def cmd_validate(args) -> int:
    from harness.scenario import load_all
    scenarios = load_all(args.paths)
    for s in scenarios:
        sys.stdout.write(f"{s.path}: ok ({s.name}; engines {', '.join(s.engines)})\n")
    return 0


def cmd_list(args) -> int:
    from tabulate import tabulate

    from harness.scenario import load_all
    rows = [[s.name, ",".join(s.any.tags), ",".join(s.engines), s.any.description.strip().split("\n")[0][:80]]
            for s in load_all(args.paths)]
    sys.stdout.write(tabulate(rows, headers=["name", "tags", "engines", "description"], tablefmt="simple") + "\n")
    return 0


def cmd_schema(args) -> int:
    from harness.scenario.schema import json_schema_text
    text = json_schema_text()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_docs(args) -> int:
    """Write (or with ``--check`` compare) the README's generated verb tables and the schema."""
    from harness.scenario.schema import json_schema_text
    from harness.verbs.docs import render_readme
    readme = os.path.join(args.dir, "README.md")
    schema = os.path.join(args.dir, "scenario.schema.json")
    try:
        with open(readme, encoding="utf-8") as f:
            old_readme = f.read()
    except OSError as e:
        raise NotFound(f"{readme}: cannot read: {e.strerror}") from None
    try:
        new_readme = render_readme(old_readme)
    except ValueError as e:
        raise FailedPrecondition(f"{readme}: {e}") from None
    try:
        with open(schema, encoding="utf-8") as f:
            old_schema = f.read()
    except OSError:
        old_schema = None
    new_schema = json_schema_text()
    stale = [p for p, old, new in ((readme, old_readme, new_readme), (schema, old_schema, new_schema)) if old != new]
    if args.check:
        for p in stale:
            sys.stderr.write(f"capsize: {p} is not what the verb registry generates (capsize docs rewrites it)\n")
        return 1 if stale else 0
    for p, text in ((readme, new_readme), (schema, new_schema)):
        if p in stale:
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
            sys.stdout.write(f"wrote {p}\n")
    return 0


# -- engine ----------------------------------------------------------------------------------------

def _engine_root(args) -> str:
    return os.path.abspath(args.root or os.path.join(ENGINE_ROOT, args.engine))


def _engine_cmd(verb: str, engine: str, args) -> str:
    """The ``capsize engine VERB`` command line that reaches the same engine (its ``--root`` if given)."""
    return f"capsize engine {verb} --engine {engine}" + (f" --root {_engine_root(args)}" if args.root else "")


def _engine_state(root: str) -> dict | None:
    try:
        with open(os.path.join(root, "engine.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cmd_engine(args) -> int:
    from harness.ledger import LEDGER, Ledger, recover
    from harness.scenario.models import EngineOptions
    root = _engine_root(args)
    state = _engine_state(root)
    if args.verb == "up":
        if state:
            raise FailedPrecondition(f"engine {state['engine']} is already up in {root} "
                                     f"({_engine_cmd('down', state['engine'], args)} removes it)")
        options = EngineOptions(live_restore=args.live_restore, runtime=args.runtime)
        cls = engine_class(args.engine)
        why = cls.unavailable(options)
        if why:
            raise Unavailable(why)
        os.makedirs(root, exist_ok=True)
        workdir = os.path.join(root, "e")
        os.makedirs(workdir, exist_ok=True)
        engine = cls(workdir, options)
        ledger = Ledger(os.path.join(root, LEDGER))
        ledger.engine_up("engine", engine.prepare())
        engine.start()
        registry = None
        if args.registry:
            from harness.reference.registry import Registry
            registry = Registry(os.path.join(root, "registry"), netns=engine.transfer_netns())
            try:
                registry.start()
            except BaseException:
                registry.close()
                recover(root)
                raise
        # The daemons run on in their own sessions; when this process exits they go to init.
        with open(os.path.join(root, "engine.json"), "w") as f:
            json.dump({"engine": args.engine, "docker_host": engine.docker_host, "workdir": workdir,
                       "options": options.model_dump(), "registry": registry.record() if registry else None}, f)
        sys.stderr.write(f"engine {args.engine} is up in {root}; `{_engine_cmd('down', args.engine, args)}` "
                         f"removes it\n")
        sys.stdout.write(f"export DOCKER_HOST={engine.docker_host}\n")
        if registry:
            sys.stdout.write(f"export CAPSIZE_REGISTRY={registry.address}\n")
        return 0
    if args.verb == "env":
        if not state:
            raise NotFound(f"no engine is up in {root} ({_engine_cmd('up', args.engine, args)})")
        sys.stdout.write(f"export DOCKER_HOST={state['docker_host']}\n")
        if state.get("registry"):
            sys.stdout.write(f"export CAPSIZE_REGISTRY={state['registry']['address']}\n")
        return 0
    if args.verb == "status":
        if not state:
            sys.stdout.write(f"engine {args.engine}: down (nothing in {root})\n")
            return 3
        from harness.reference.docker import ping
        sock = state["docker_host"].removeprefix("unix://")
        alive = ping(sock)
        sys.stdout.write(f"engine {state['engine']}: {'up' if alive else 'NOT ANSWERING'} at {state['docker_host']} "
                         f"(root {root})\n")
        return 0 if alive else 1
    # down
    if not os.path.isdir(root):
        sys.stdout.write(f"engine {args.engine}: nothing to remove in {root}\n")
        return 0
    problems = []
    if state and state.get("registry"):
        from harness.reference.registry import Registry
        problems += Registry.recover(state["registry"])
    done, more = recover(root) if os.path.exists(os.path.join(root, LEDGER)) else ([], [])
    problems += more
    for line in done:
        sys.stdout.write(line + "\n")
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    for p in problems:
        sys.stderr.write(f"capsize: {p}\n")
    return 1 if problems else 0


# -- recover -----------------------------------------------------------------------------------------

def cmd_recover(args) -> int:
    from harness.ledger import LEDGER, engines_up, outstanding, read, recover
    if args.run:
        dirs = [args.run]
    else:
        base = DEFAULT_OUT
        dirs = sorted(os.path.join(base, d) for d in (os.listdir(base) if os.path.isdir(base) else []))
        dirs = [d for d in dirs if os.path.exists(os.path.join(d, LEDGER))]
        dirs = [d for d in dirs if outstanding(read(os.path.join(d, LEDGER)))
                or engines_up(read(os.path.join(d, LEDGER)))]
        if not dirs:
            sys.stdout.write("nothing to recover\n")
            return 0
    status = 0
    for d in dirs:
        done, problems = recover(d)
        sys.stdout.write(f"{d}:\n" + ("".join(f"  {line}\n" for line in done) or "  nothing left to undo\n"))
        for p in problems:
            sys.stderr.write(f"capsize: {d}: {p}\n")
            status = 1
    return status


# -- doctor ----------------------------------------------------------------------------------------

def cmd_doctor(args) -> int:
    from harness.doctor import report
    text, ok = report()
    sys.stdout.write(text)
    return 0 if ok else 1
