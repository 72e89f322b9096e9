"""``capsize-runtimed``: the high-level runtime daemon's command line (containerd's role).

::

    capsize-runtimed [--root DIR] [--state DIR] [--address PATH] [--log-level LEVEL]
                     [--log-file PATH] [--load-timeout SECONDS] [--shim-spawn template|exec]
                     [--shim-socket-dir DIR] [--cgroup-parent PATH]

``--root`` (default ``/var/lib/capsize``) keeps images, snapshots and the metadata store;
``--state`` (default ``/run/capsize``) the sockets and the task directories; ``--address``
(default ``<state>/runtimed.sock``) is the API socket. Logs are JSON lines on stderr (or
``--log-file``), or journald when stderr is the journal. ``--load-timeout`` bounds the
start-up load of existing tasks (default 10 s). ``--shim-spawn`` is passed to
``capsize-shim start`` (default ``template``: shims forked from a pre-loaded template), and
``--shim-socket-dir`` as its ``--socket-dir`` (default: the shim's, ``/run/capsize/s``).
``--cgroup-parent`` (dockerd's flag; default ``/capsize``) is where a task whose spec names no
``linux.cgroupsPath`` gets its cgroup: ``<parent>/<id>``.

It runs in the foreground until SIGTERM/SIGINT. A failure to start prints one line,
``capsize-runtimed: <message>``, and exits with the code of :mod:`runtime.errors` (5 when
another daemon holds the root or state).
"""

from __future__ import annotations

import argparse
import sys

from runtime.errors import CapsizeError, InvalidArgument, exit_code_for


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as every capsize command
        raise InvalidArgument(f"{message}; see capsize-runtimed --help")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="capsize-runtimed", description="capsize's high-level runtime daemon (containerd's role)")
    p.add_argument("--root", default="/var/lib/capsize", help="persistent directory (default %(default)s)")
    p.add_argument("--state", default="/run/capsize", help="volatile directory (default %(default)s)")
    p.add_argument("--address", default=None, help="API socket (default <state>/runtimed.sock)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-file", default=None, help="append JSON-lines logs here instead of stderr")
    p.add_argument("--load-timeout", type=float, default=10.0,
                   help="seconds allowed for loading existing tasks at start-up (default %(default)s)")
    p.add_argument("--shim-spawn", default="template", choices=("template", "exec"),
                   help="how capsize-shim starts shims (default %(default)s)")
    p.add_argument("--shim-socket-dir", default=None,
                   help="where shims put their sockets (default: capsize-shim's, /run/capsize/s)")
    p.add_argument("--cgroup-parent", default="/capsize",
                   help="cgroup of tasks whose spec names none: <parent>/<id> (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``capsize-runtimed``."""
    import asyncio
    from runtime.highlevel.daemon import Daemon
    from runtime.highlevel.log import Logger, stderr_line
    log = None
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
        if args.load_timeout <= 0:
            raise InvalidArgument("--load-timeout must be positive")
        if not args.cgroup_parent.startswith("/") or ".." in args.cgroup_parent.split("/"):
            raise InvalidArgument(f"--cgroup-parent must be an absolute cgroup path, not {args.cgroup_parent!r}")
        log = Logger(args.log_file, args.log_level)
        daemon = Daemon(args.root, args.state, args.address, log, args.load_timeout, args.shim_spawn,
                        args.shim_socket_dir, args.cgroup_parent)
        daemon.lock()
        asyncio.run(daemon.run())
    except CapsizeError as e:
        if log is not None and not log.to_stderr:
            log.error("capsize-runtimed failed", error=e.message)
        stderr_line(e.message)
        sys.exit(exit_code_for(e))
    except OSError as e:
        if log is not None and not log.to_stderr:
            log.error("capsize-runtimed failed", error=str(e))
        stderr_line(str(e))
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
