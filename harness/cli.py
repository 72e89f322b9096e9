"""``capsize``: the lab's command line.

* ``capsize run PATH... [--engine NAME]... [--repeat N] [--out DIR] [--junit FILE] [--tag T]...
  [--keep-going] [--fail-fast] [--quiet]`` — run scenarios (directories are searched for
  ``*.yaml``); one run directory per invocation (default ``reports/runs/<time>-<name>/``);
  exit 0 only when every check held (1: something failed, 3: something was n/a, 2: bad input);
* ``capsize validate PATH...`` — validate scenario files (nothing starts); ``capsize list [PATH]``;
  ``capsize schema [--out FILE]`` — the scenarios' JSON Schema; ``capsize docs [--check]`` —
  regenerate scenarios/README.md's verb tables and scenario.schema.json from the verb registry;
* ``capsize engine up|down|status|env [--engine NAME] [--root DIR]`` — an engine (default capsize,
  as for ``run``) in a private root for poking by hand (``eval "$(capsize engine env)"``; ``down`` removes everything);
* ``capsize recover [RUN]`` — undo the faults a crashed harness left (from the run's ledger)
  and remove its engines;
* ``capsize doctor`` — what this host has, and what each missing piece disables;
* ``capsize report RUN`` / ``capsize compare RUN...`` — reports (harness.report.cli); ``capsize run``
  writes ``report.md``/``report.html`` (and ``compare.*`` for several engines or repeats) at its end;
* ``capsize image rootfs --out FILE`` / ``capsize image bundle DIR [-- CMD...]`` — the lab's busybox;
* ``capsize explore WORKLOAD.yaml [--depth N] [--budget T] [--seed S] [--out DIR] [--shard i/n]`` —
  kill each tier at each named crash point of a workload (harness.explore.cli);
* ``capsize demo [--runtime capsize-runc|runc|crun]`` — one container through a low-level runtime.

Errors print one line (scenario errors as ``file:line:column: ...``), start nothing, and exit
with the engine's error code (runtime/errors.py): 2 invalid input (a scenario, an option), 3 not
found (a run directory, a file, a runtime named on the command line), 5 a failed precondition
(an engine already up), 6 unavailable (an engine that cannot run here). ``compare`` exits 1
when the runs diverge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from runtime.errors import CapsizeError, InvalidArgument, exit_code_for


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InvalidArgument(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="capsize", description="capsize: a failure-injection and lifecycle lab for container engines")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    img = sub.add_parser("image", help="the lab's busybox image, made offline from busybox-static")
    isub = img.add_subparsers(dest="image_command", parser_class=_Parser)
    r = isub.add_parser("rootfs", help="write the busybox rootfs as a tar (docker import-able)")
    r.add_argument("--out", required=True, help="output file (- for stdout)")
    b = isub.add_parser("bundle", help="write an OCI bundle: config.json and a busybox rootfs")
    b.add_argument("dir")
    b.add_argument("cmd", nargs=argparse.REMAINDER, help="the container's process (default: sh)")
    d = sub.add_parser("demo", help="run a busybox container through a low-level runtime and show it isolated")
    d.add_argument("--runtime", default="capsize-runc", help="capsize-runc (default), runc or crun")
    from harness import commands
    commands.add_parsers(sub)
    from harness.report import cli as report_cli  # reports: `report`, `compare`
    report_cli.add_parsers(sub)
    from harness.explore import cli as explore_cli  # `explore`
    explore_cli.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        if args.command == "image":
            return _image(args)
        if args.command == "demo":
            from harness.demo import demo
            return demo(args.runtime)
        if args.command in ("report", "compare"):
            from harness.report import cli as report_cli
            return report_cli.dispatch(args)
        if args.command == "run":  # the run, then its reports (harness.report.cli.after_run)
            from harness import commands
            from harness.report import cli as report_cli
            return report_cli.after_run(args, lambda: commands.dispatch(args))
        if args.command == "explore":
            from harness.explore import cli as explore_cli
            return explore_cli.dispatch(args)
        if args.command in ("validate", "list", "schema", "docs", "engine", "recover", "doctor"):
            from harness import commands
            return commands.dispatch(args)
        _parser().print_help()
        return 2
    except CapsizeError as e:
        sys.stderr.write("".join(f"capsize: {line}\n" for line in str(e).splitlines() or [""]))
        return exit_code_for(e)
    except KeyboardInterrupt:
        return 130


def _image(args) -> int:
    from runtime import busybox
    if args.image_command == "rootfs":
        if args.out == "-":
            busybox.write_rootfs_tar(sys.stdout.buffer)
        else:
            busybox.write_rootfs_tar(args.out)
            sys.stderr.write(f"wrote {args.out}\n")
        return 0
    if args.image_command == "bundle":
        from runtime.lowlevel.spec import default_spec
        if os.path.exists(os.path.join(args.dir, "config.json")):
            raise InvalidArgument(f"{args.dir}/config.json exists: remove it first")
        busybox.write_rootfs(os.path.join(args.dir, "rootfs"))
        config = default_spec()
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if cmd:
            config["process"]["args"] = cmd
        with open(os.path.join(args.dir, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        sys.stderr.write(f"wrote bundle {args.dir}\n")
        return 0
    raise InvalidArgument("capsize image: rootfs or bundle")


if __name__ == "__main__":
    sys.exit(main())
