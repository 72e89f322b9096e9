"""capsize-runc's argument grammar: runc's, which is urfave/cli v1's.

``capsize-runc [global options] COMMAND [command options] [arguments...]``: options are
``--name value``, ``--name=value``, ``-n value`` or a boolean ``--name``; option parsing for a
command stops at its first positional argument or at ``--``, so ``exec ID sh -c 'x'`` keeps
``-c`` for the container's process. Single-dash long names (``-root``) are accepted, as
urfave/cli does.

This is a table and a 60-line parser rather than argparse on purpose: capsize-runc runs several
times for every container, and argparse with its gettext, locale and shutil imports costs about
8 ms of start-up each time (measured with ``python -X importtime``), more than the whole parse
of a command line should. Errors raise :class:`~runtime.errors.InvalidArgument` (exit 2).
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

# kind: "flag" (boolean), "value" (string), "int", "size" (bytes: runc's RAMInBytes, "50M", -1),
# "multi" (repeatable string -> list)
Opt = tuple[tuple[str, ...], str, str, object]  # (names, dest, kind, default)

GLOBAL: list[Opt] = [
    (("--root",), "root", "value", "/run/capsize/runc"),
    (("--log",), "log", "value", None),
    (("--log-format",), "log_format", "value", "text"),
    (("--debug",), "debug", "flag", False),
    (("--systemd-cgroup",), "systemd_cgroup", "flag", False),
    (("--rootless",), "rootless", "value", "auto"),
    (("--criu",), "criu", "value", None),
    (("-v", "--version"), "version", "flag", False),
    (("-h", "--help"), "help", "flag", False),
]

_CREATE: list[Opt] = [
    (("-b", "--bundle"), "bundle", "value", "."),
    (("--pid-file",), "pid_file", "value", None),
    (("--console-socket",), "console_socket", "value", None),
    (("--preserve-fds",), "preserve_fds", "int", 0),
    (("--no-pivot",), "no_pivot", "flag", False),
    (("--no-new-keyring",), "no_new_keyring", "flag", False),
]

#: command -> (options, positional names; a trailing "*name" takes the rest, "?name" is optional)
COMMANDS: dict[str, tuple[list[Opt], list[str], str]] = {
    "spec": ([(("-b", "--bundle"), "bundle", "value", "."), (("--rootless",), "rootless", "flag", False)],
             [], "write a default config.json into the bundle directory"),
    "create": (_CREATE, ["id"], "create a container (its init waits on the exec FIFO)"),
    "run": (_CREATE + [(("-d", "--detach"), "detach", "flag", False), (("--keep",), "keep", "flag", False)],
            ["id"], "create and start a container; in the foreground, wait and delete it"),
    "start": ([], ["id"], "start a created container"),
    "state": ([], ["id"], "print the OCI state of a container"),
    "pause": ([], ["id"], "freeze every process of a container"),
    "resume": ([], ["id"], "thaw a paused container"),
    "kill": ([(("-a", "--all"), "all", "flag", False)], ["id", "?signal"],
             "send a signal (default SIGTERM) to the init, or with --all to every process"),
    "delete": ([(("-f", "--force"), "force", "flag", False)], ["id"], "delete a container's resources"),
    "list": ([(("-f", "--format"), "format", "value", "table"), (("-q", "--quiet"), "quiet", "flag", False)],
             [], "list containers"),
    "ps": ([(("-f", "--format"), "format", "value", "table")], ["id", "*ps_args"],
           "list the processes of a container"),
    "exec": ([(("-p", "--process"), "process", "value", None), (("-d", "--detach"), "detach", "flag", False),
              (("--pid-file",), "pid_file", "value", None), (("--cwd",), "cwd", "value", None),
              (("-e", "--env"), "env", "multi", None), (("-u", "--user"), "user", "value", None),
              (("-g", "--additional-gids"), "additional_gids", "multi", None),
              (("-c", "--cap"), "cap", "multi", None), (("--no-new-privs",), "no_new_privs", "flag", False),
              (("-t", "--tty"), "tty", "flag", False), (("--console-socket",), "console_socket", "value", None),
              (("--preserve-fds",), "preserve_fds", "int", 0), (("--cgroup",), "cgroup", "multi", None),
              (("--ignore-paused",), "ignore_paused", "flag", False)],
             ["id", "*args"], "run a process in a running container"),
    "events": ([(("--interval",), "interval", "value", "5s"), (("--stats",), "stats", "flag", False)], ["id"],
               "print the container's resource statistics (every --interval, or once with --stats) and OOM events"),
    "update": ([(("-r", "--resources"), "resources", "value", None), (("-m", "--memory"), "memory", "size", None),
                (("--memory-swap",), "memory_swap", "size", None),
                (("--memory-reservation",), "memory_reservation", "size", None),
                (("--kernel-memory",), "kernel_memory", "size", None),
                (("--kernel-memory-tcp",), "kernel_memory_tcp", "size", None),
                (("--cpu-share", "--cpu-shares"), "cpu_shares", "int", None), (("--cpu-quota",), "cpu_quota", "int", None),
                (("--cpu-period",), "cpu_period", "int", None), (("--cpu-rt-period",), "cpu_rt_period", "int", None),
                (("--cpu-rt-runtime",), "cpu_rt_runtime", "int", None),
                (("--cpuset-cpus",), "cpuset_cpus", "value", None),
                (("--cpuset-mems",), "cpuset_mems", "value", None), (("--pids-limit",), "pids_limit", "int", None),
                (("--blkio-weight",), "blkio_weight", "int", None)],
               ["id"], "update a running container's cgroup resources (OCI linux.resources JSON, - for stdin)"),
}


class Args:
    """Parsed arguments: one attribute per option ``dest`` and positional name, plus ``command``."""

    def __repr__(self) -> str:
        return f"Args({vars(self)})"


def _parse_options(argv: list[str], i: int, opts: list[Opt], into: Args, where: str, defaults: bool = True) -> int:
    """Parse options from argv[i:] into *into* (first setting every default, with *defaults*);
    return the index of the first non-option."""
    table = {}
    for names, dest, kind, default in opts:
        if defaults:
            setattr(into, dest, [] if kind == "multi" else default)
        for n in names:
            table[n] = (dest, kind)
            if n.startswith("--"):
                table[n[1:]] = (dest, kind)  # urfave/cli accepts -root as --root
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1
        if not arg.startswith("-") or arg == "-":
            return i
        name, eq, value = arg.partition("=")
        if name not in table:
            raise InvalidArgument(f"{where}: flag provided but not defined: {name}")
        dest, kind = table[name]
        if kind == "flag":
            setattr(into, dest, value.lower() not in ("false", "0") if eq else True)
            i += 1
            continue
        if not eq:
            i += 1
            if i >= len(argv):
                raise InvalidArgument(f"{where}: flag needs an argument: {name}")
            value = argv[i]
        if kind == "int":
            try:
                value = int(value)
            except ValueError:
                raise InvalidArgument(f"{where}: invalid value {value!r} for flag {name}: not an integer") from None
        if kind == "size":
            value = parse_size(value, f"{where}: invalid value {value!r} for flag {name}")
        if kind == "multi":
            getattr(into, dest).append(value)
        else:
            setattr(into, dest, value)
        i += 1
    return i


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, what: str) -> int:
    """A size in bytes as runc's update flags take it (docker/go-units RAMInBytes: ``1024``,
    ``50M``, ``1.5g``, ``10KiB``, binary units), or ``-1`` (unlimited). InvalidArgument(*what*)
    otherwise."""
    t = text.strip()
    if t == "-1":
        return -1
    low = t.lower()
    for suffix in ("ib", "b"):
        if low.endswith(suffix) and (suffix == "ib" or len(low) > 1):
            low = low[: -len(suffix)]
            break
    unit = low[-1:] if low[-1:] in _SIZE_UNITS else ""
    num = low[: len(low) - len(unit)].strip()
    try:
        if not num or not num.replace(".", "", 1).isdigit():
            raise ValueError
        return int(float(num) * _SIZE_UNITS[unit])
    except ValueError:
        raise InvalidArgument(f"{what}: not a size (bytes, or with a unit: 50M, 1g)") from None


def parse(argv: list[str]) -> Args:
    """Parse a capsize-runc command line; InvalidArgument for anything runc would refuse."""
    args = Args()
    i = _parse_options(argv, 0, GLOBAL, args, "capsize-runc")
    args.command = argv[i] if i < len(argv) else None
    if args.command is None:
        return args
    if args.command not in COMMANDS:
        if args.help or "-h" in argv[i + 1:] or "--help" in argv[i + 1:]:
            raise InvalidArgument(f"No help topic for '{args.command}'")   # urfave/cli's words
        raise InvalidArgument(f"capsize-runc: no such command: {args.command}")
    opts, positionals, _ = COMMANDS[args.command]
    opts = opts + [(("-h", "--help"), "help", "flag", args.help)]
    where = f"capsize-runc {args.command}"
    rest_start = _parse_options(argv, i + 1, opts, args, where)
    rest = argv[rest_start:]
    if not any(p.startswith("*") for p in positionals):
        # urfave/cli v1 reorders a command's arguments so that flags may follow its positional
        # ones (``update ID --memory 1M``); runc's exec and ps skip that (SkipArgReorder): their
        # trailing arguments are the process's.
        found, j = [], 0
        while j < len(rest):
            if rest[j] == "--":
                found += rest[j + 1:]
                break
            if rest[j].startswith("-") and rest[j] != "-":
                j = _parse_options(rest, j, opts, args, where, defaults=False)
                continue
            found.append(rest[j])
            j += 1
        rest = found
    for name in positionals:
        if name.startswith("*"):
            setattr(args, name[1:], rest)
            rest = []
        elif name.startswith("?"):
            setattr(args, name[1:], rest.pop(0) if rest else None)
        elif rest:
            setattr(args, name, rest.pop(0))
        elif not args.help:
            raise InvalidArgument(f"capsize-runc {args.command}: requires a container {name} argument")
    if rest:
        raise InvalidArgument(f"capsize-runc {args.command}: unexpected arguments: {' '.join(rest)}")
    return args


def usage(command: str | None = None) -> str:
    """Help text for the whole tool or one command, laid out as urfave/cli's (runc's ``-h``):
    ``NAME:``, ``USAGE:``, then the commands or options."""
    def opt_lines(opts):
        return [f"   {', '.join(n)}" + (" value" if k != "flag" else "") for n, _, k, _ in opts]
    if command in COMMANDS:
        opts, positionals, what = COMMANDS[command]
        pos = " ".join(f"[{p[1:]}...]" if p[0] in "*?" else f"<{p}>" for p in positionals)
        lines = ["NAME:", f"   capsize-runc {command} - {what}", "", "USAGE:",
                 f"   capsize-runc {command} [command options] {pos}".rstrip(), ""]
        if opts:
            lines += ["OPTIONS:"] + opt_lines(opts)
        return "\n".join(lines) + "\n"
    lines = ["NAME:", "   capsize-runc - Open Container Initiative runtime (capsize's, with runc's command line)",
             "", "USAGE:", "   capsize-runc [global options] command [command options] [arguments...]", "",
             "COMMANDS:"]
    lines += [f"   {name:<8} {spec[2]}" for name, spec in COMMANDS.items()]
    lines += ["", "GLOBAL OPTIONS:"] + opt_lines(GLOBAL)
    return "\n".join(lines) + "\n"
