"""``capsize-shim``: the per-container shim's command line (containerd-shim-runc-v2's actions).

::

    capsize-shim start  --id ID [--namespace NS] --bundle DIR [--address RUNTIME_ADDRESS]
                        [--runtime BIN] [--runtime-root DIR] [--socket-dir DIR]
                        [--spawn template|exec]
    capsize-shim delete --id ID [--namespace NS] --bundle DIR [--runtime BIN] [--runtime-root DIR]
    capsize-shim serve  (the daemon itself; started by ``start``)
    capsize-shim template  (the shim template; started by ``start``)

``start`` (run by the high-level runtime, with the task directory as bundle) spawns the shim
daemon detached: its own session and process group, not the caller's child (``start`` exits and
the daemon is re-parented), a child subreaper. It waits until the daemon serves, prints the
shim's address (``unix:///run/capsize/s/<sha256>``) on stdout and exits 0. When a shim already
serves that address it prints the address and starts nothing (as containerd's shims do).
``--runtime`` is the low-level runtime (a path, or a name looked up next to this Python and on
PATH; default ``capsize-runc``); ``--runtime-root`` its ``--root`` (default
``<state>/runc/<namespace>``, see :func:`runtime.shim.paths.default_runtime_root`); both are
kept in ``<bundle>/options.json`` for ``delete``. ``--address`` is the runtime daemon's event
socket (empty: events are not published). ``--spawn template`` (the default; or the
environment's ``CAPSIZE_SHIM_SPAWN``) has the shim forked by the shim template of that address
(:mod:`runtime.shim.template`: shims then share most of their memory), started on first use;
``--spawn exec`` starts a fresh interpreter (:mod:`runtime.shim.detach`). If the template cannot
be used, ``start`` warns on stderr and execs. Either way the shim has the same parentage,
session, command line (``capsize-shim serve --id <id> ...``) and behaviour.

``delete`` cleans up after a shim that is gone (as ``containerd-shim-runc-v2 delete``): it runs
``<runtime> delete --force <id>``, unmounts the rootfs if it is a mount point, removes the shim's
socket file, and prints one JSON line: ``{"id", "pid", "exit_status", "exited_at", "source",
"warnings"}`` (+ ``"reason"`` for a made-up status) where ``source`` is ``"exit-file"`` when the
real status was recovered from the exit file, ``"cleanup-kill"`` when the init was alive and this
clean-up killed it (137), or ``"unknown"`` when nothing recorded how it ended (255); see
:mod:`runtime.shim.delete` and :mod:`runtime.api.exits`. It refuses (exit 5) while the shim
process is alive.

Errors are one line on stderr (``capsize-shim: <message>``) and the exit code of
:mod:`runtime.errors`; ``serve`` and ``template`` also report theirs on the readiness pipe
(:mod:`runtime.shim.detach`).

This module is the one dispatcher of every verb, and imports nothing but the verb it runs:
``start`` (:mod:`runtime.shim.start`), ``delete`` (:mod:`runtime.shim.delete`), ``serve``
(:mod:`runtime.shim.daemon`), ``template`` (:mod:`runtime.shim.template`). No verb module
imports this one, so the shim's modules form no import circle.
"""

from __future__ import annotations

import sys

from runtime.errors import CapsizeError, exit_code_for

VERBS = ("start", "delete", "serve", "template")


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``capsize-shim``, and the boot line of a detached shim or template
    (:func:`runtime.shim.detach.boot_argv`, whose argv starts with ``capsize-shim``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "capsize-shim":
        argv = argv[1:]
    verb = argv[0] if argv else ""
    if verb in ("-h", "--help", "help"):
        from runtime.shim.args import USAGE
        print(USAGE)
        sys.exit(0)
    if verb == "serve":
        from runtime.shim.daemon import main as serve_main
        serve_main(argv)
    if verb == "template":
        from runtime.shim.template import main as template_main
        template_main()
    try:
        from runtime.shim.args import parse
        action, opts = parse(argv)
        if action == "start":
            from runtime.shim.start import start
            print(start(opts), flush=True)
        else:
            from runtime import jsonfast
            from runtime.shim.delete import delete
            result = delete(opts)
            for w in result["warnings"]:
                print(f"capsize-shim: warning: {w}", file=sys.stderr)
            print(jsonfast.dumps(result, compact=False), flush=True)
    except CapsizeError as e:
        print(f"capsize-shim: {e.message}", file=sys.stderr)
        sys.exit(exit_code_for(e))
    except OSError as e:
        print(f"capsize-shim: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
