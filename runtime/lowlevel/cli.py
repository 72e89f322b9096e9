"""``capsize-runc``: the runc command line (runc 1.1's commands and flags, OCI runtime.md "Operations").

Global flags (before the command): ``--root DIR`` (state, default /run/capsize/runc), ``--log
FILE``, ``--log-format text|json``, ``--debug``; accepted for compatibility and refused when
they ask for something capsize-runc lacks: ``--systemd-cgroup``, ``--rootless true``.

Commands: ``spec``, ``create``, ``start``, ``run``, ``state``, ``kill``, ``delete``, ``list``,
``ps``, ``pause``, ``resume``, ``exec``, ``update``, ``events``, plus ``--version``.

Every failure prints one line on stderr, writes an ``error`` record to the log file and exits
with runc's codes: 1 for capsize-runc's own errors, 255 when ``exec`` fails before its process
runs (runc's ``fatalWithCode(err, 255)``), so that a caller cannot mistake it for a process that
exited 1. The error class (runtime/errors.py's ``code``: ``invalid-argument``, ``not-found``...)
goes with the message into the ``--log`` record as ``"code"``; callers that need the class read it
there (:meth:`runtime.shim.ociruntime.OCIRuntime.logged_error`).
"""

from __future__ import annotations

import os
import sys

from runtime.errors import CapsizeError, InvalidArgument
from runtime.lowlevel import log
from runtime.runtimes import PARENT_ENV

VERSION = "0.1.0"
#: runc's exit codes for its own failures (runc 1.1 main.go fatal / exec.go fatalWithCode).
EXIT_ERROR = 1
EXIT_EXEC_ERROR = 255


def _print_json(obj) -> None:
    import json  # indented for people; only `state` and `list` pay for the import
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _exec_process(args, st) -> dict:
    """The OCI process for ``exec``: ``--process`` file, or the container's process with overrides."""
    from runtime import jsonfast  # not ``json``: its import (re, enum) is ~5 ms of every exec
    if args.process:
        try:
            with open(args.process, "rb") as f:
                proc = jsonfast.loads(f.read())
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"exec --process {args.process}: {e}") from None
        if not isinstance(proc, dict) or not proc.get("args"):
            raise InvalidArgument(f"exec --process {args.process}: process.args must be a non-empty list")
        return proc
    cmd = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not cmd:
        raise InvalidArgument("exec: arguments must be passed")
    base = jsonfast.loads(jsonfast.dumps((st.config or {}).get("process") or {}))   # a deep copy
    base["args"] = cmd
    base["terminal"] = args.tty
    env = dict(e.split("=", 1) for e in base.get("env") or [] if "=" in e)
    for e in args.env:
        k, _, v = e.partition("=")
        env[k] = v
    base["env"] = [f"{k}={v}" for k, v in env.items()]
    if args.cwd:
        base["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        base["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        base.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.cap:
        caps = base.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            caps[kind] = sorted(set(caps.get(kind) or []) | set(args.cap))
    if args.no_new_privs:
        base["noNewPrivileges"] = True
    return base


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def dispatch(args) -> int:
    from runtime.lowlevel import container as c

    root = os.path.abspath(args.root)
    cmd = args.command
    if args.systemd_cgroup:
        raise InvalidArgument("--systemd-cgroup: the systemd cgroup driver is not supported by capsize-runc")
    if cmd == "spec":
        from runtime.lowlevel.spec import runc_spec
        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path):
            from runtime.errors import AlreadyExists
            raise AlreadyExists(f"File {path} exists. Remove it first")
        import json
        with open(path, "w") as f:
            json.dump(runc_spec(), f, indent="\t")
        return 0
    if args.format not in ("table", "json") if cmd in ("list", "ps") else False:
        raise InvalidArgument(f"{cmd}: invalid format option {args.format!r} (table or json)")
    if cmd in ("create", "run"):
        if cmd == "create":
            c.create(root, args.id, args.bundle, pid_file=args.pid_file, console_socket=args.console_socket,
                     preserve_fds=args.preserve_fds, no_pivot=args.no_pivot)
            return 0
        return c.run(root, args.id, args.bundle, detach=args.detach, pid_file=args.pid_file,
                     console_socket=args.console_socket, keep=args.keep, preserve_fds=args.preserve_fds,
                     no_pivot=args.no_pivot)
    if cmd == "start":
        c.start(root, args.id)
        return 0
    if cmd == "state":
        from runtime.lowlevel.state import State
        _print_json(State.load(root, args.id).oci_state())
        return 0
    if cmd == "kill":
        c.kill(root, args.id, c.parse_signal(args.signal or "SIGTERM"), all_processes=args.all)
        return 0
    if cmd == "delete":
        c.delete(root, args.id, force=args.force)
        return 0
    if cmd == "pause":
        c.pause(root, args.id)
        return 0
    if cmd == "resume":
        c.resume(root, args.id)
        return 0
    if cmd == "list":
        states = c.list_states(root)
        if args.quiet:
            sys.stdout.write("".join(s["id"] + "\n" for s in states))
        elif args.format == "json":
            from runtime.jsonfast import dumps
            sys.stdout.write(dumps([{k: s[k] for k in ("ociVersion", "id", "pid", "status", "bundle",
                                                            "rootfs", "created", "owner")} for s in states]) + "\n")
        else:
            rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
            rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"] or "", s["created"] or "", s["owner"] or "root"]
                     for s in states]
            sys.stdout.write(_table(rows))
        return 0
    if cmd == "ps":
        pids = c.pids(root, args.id)
        if args.format == "json":
            from runtime.jsonfast import dumps
            sys.stdout.write(dumps(pids) + "\n")
            return 0
        import subprocess
        out = subprocess.run(["ps"] + (args.ps_args or ["-ef"]), capture_output=True, text=True)
        if out.returncode != 0:
            raise InvalidArgument(f"ps: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        if not lines:
            return 0
        header = lines[0].split()
        col = header.index("PID") if "PID" in header else None
        if col is None:
            raise InvalidArgument("ps: the ps output has no PID column")
        wanted = set(pids)
        sys.stdout.write(lines[0] + "\n" + "".join(
            line + "\n" for line in lines[1:] if len(line.split()) > col and line.split()[col].isdigit()
            and int(line.split()[col]) in wanted))
        return 0
    if cmd == "exec":
        from runtime.lowlevel.state import State
        st = State.load(root, args.id)
        proc = _exec_process(args, st)
        return c.exec_process(root, args.id, proc, detach=args.detach, pid_file=args.pid_file,
                              console_socket=args.console_socket, preserve_fds=args.preserve_fds,
                              sub_cgroups=args.cgroup, ignore_paused=args.ignore_paused)
    if cmd == "events":
        from runtime.lowlevel import events
        events.events(root, args.id, events.parse_duration(args.interval), stats_only=args.stats)
        return 0
    if cmd == "update":
        c.update(root, args.id, _update_resources(args))
        return 0
    raise InvalidArgument(f"capsize-runc: no such command: {cmd}")


#: runc update's flags -> (OCI linux.resources section, field)
_UPDATE_FLAGS = (("memory", "memory", "limit"), ("memory_swap", "memory", "swap"),
                 ("memory_reservation", "memory", "reservation"), ("kernel_memory", "memory", "kernel"),
                 ("kernel_memory_tcp", "memory", "kernelTCP"), ("cpu_shares", "cpu", "shares"),
                 ("cpu_quota", "cpu", "quota"), ("cpu_period", "cpu", "period"),
                 ("cpu_rt_period", "cpu", "realtimePeriod"), ("cpu_rt_runtime", "cpu", "realtimeRuntime"),
                 ("cpuset_cpus", "cpu", "cpus"), ("cpuset_mems", "cpu", "mems"), ("pids_limit", "pids", "limit"),
                 ("blkio_weight", "blockIO", "weight"))


def _update_resources(args) -> dict:
    """runc update's ``--resources FILE|-`` (OCI ``linux.resources`` JSON), then its flags on top
    (the numeric ones already integers: :mod:`runtime.lowlevel.args` refuses others)."""
    from runtime import jsonfast
    res: dict = {}
    if args.resources:
        try:
            if args.resources == "-":
                text = sys.stdin.read()
            else:
                with open(args.resources) as f:
                    text = f.read()
            res = jsonfast.loads(text)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"update: reading resources from {args.resources}: {e}") from None
        if not isinstance(res, dict):
            raise InvalidArgument("update: the resources must be a JSON object (OCI linux.resources)")
    for dest, section, field in _UPDATE_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            res.setdefault(section, {})[field] = value
    return res


def _die_with_parent() -> None:
    """Die (SIGKILL) with the caller named by :data:`runtime.runtimes.PARENT_ENV` (a shim):
    prctl(2) ``PR_SET_PDEATHSIG``, then a check that it is still the parent (it may have died
    before the prctl). The variable is not passed on (hooks, the container's init)."""
    parent = os.environ.pop(PARENT_ENV, "")
    if not parent.isdigit():
        return
    from runtime.host import HOST, PR_SET_PDEATHSIG
    from _signal import SIGKILL
    HOST.prctl(PR_SET_PDEATHSIG, SIGKILL)
    if os.getppid() != int(parent):
        os.kill(os.getpid(), SIGKILL)


def main(argv: list[str] | None = None) -> int:
    from runtime.lowlevel.args import parse, usage
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    try:
        args = parse(argv)
    except InvalidArgument as e:
        sys.stderr.write(f"{e}\n")
        return EXIT_ERROR
    if args.log_format not in ("text", "json"):
        sys.stderr.write(f"capsize-runc: invalid log format {args.log_format!r} (text or json)\n")
        return EXIT_ERROR
    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        # runc's three lines (version, commit, spec); capsize-runc has no build commit to give
        sys.stdout.write(f"capsize-runc version {VERSION}\ncommit: none (capsize {VERSION})\nspec: 1.0.2-dev\n")
        return 0
    if args.help or args.command is None:
        (sys.stdout if args.help else sys.stderr).write(usage(args.command))
        return 0 if args.help else EXIT_ERROR
    log.debug("command", argv=argv)
    if args.command in ("create", "run", "exec"):   # exec moves its process into the cgroup too
        from runtime.lowlevel.cgroups import warm_migration_lock
        warm_migration_lock()  # first thing: the kernel's grace period overlaps all the rest
    code = EXIT_EXEC_ERROR if args.command == "exec" else EXIT_ERROR
    try:
        return dispatch(args)
    except CapsizeError as e:
        return _report(e, str(e), code)
    except OSError as e:
        return _report(e, f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""), code)
    except KeyboardInterrupt:
        return 130


def _report(err: BaseException, msg: str, code: int) -> int:
    """The one stderr line and the ``--log`` error record (with the error class as ``code``)."""
    if log.has_file():
        log.error(msg, code=err.code if isinstance(err, CapsizeError) else CapsizeError.code)
    sys.stderr.write(f"capsize-runc: {msg}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
