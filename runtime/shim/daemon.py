"""The long-lived shim process (``capsize-shim serve``), as started by the ``start`` action.

It inherits, from ``start``: the bound, listening socket as fd 3, a readiness pipe as fd 4 (it
writes ``ready <pid>`` or ``error <message>`` there, then closes it), /dev/null as stdin and
``<task dir>/shim.log`` as stdout and stderr, its own session (setsid), and the child-subreaper
attribute, which ``start`` set before exec (prctl(2): it survives execve). Run by hand instead,
it makes itself a subreaper. Its working directory is the task directory.

Imports are kept to the standard library's light modules (os, socket, select, signal, json):
every container pays for this process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from runtime import atomicfile
from runtime.errors import CapsizeError, InvalidArgument, exit_code_for
from runtime.jsonlog import Logger
from runtime.shim import paths

LISTEN_FD = 3
READY_FD = 4


def serve(opts: dict) -> int:
    """Run the shim until ``shutdown``; *opts* as parsed by :func:`runtime.shim.args.parse`."""
    from runtime.shim.events import Publisher
    from runtime.shim.failpoints import from_config, host_failpoints
    from runtime.shim.loop import Loop
    from runtime.shim.ociruntime import OCIRuntime
    from runtime.shim.reaper import Reaper
    from runtime.shim.server import Server
    from runtime.shim.task import Task

    bundle, cid, ns = opts["bundle"], opts["id"], opts["namespace"]
    log = Logger(level="debug", component="shim", journal=False, id=cid, namespace=ns)
    if os.environ.pop("CAPSIZE_SHIM_SUBREAPER", "") != "1":
        from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
        HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        with open(os.path.join(bundle, paths.CONFIG)) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read {bundle}/{paths.CONFIG}: {e}") from None
    if not isinstance(config, dict):
        config = {}
    failpoints = from_config(config)
    host_points = host_failpoints(config)
    terminal = bool((config.get("process") or {}).get("terminal"))   # the init's: create --console-socket
    try:
        os.set_inheritable(LISTEN_FD, False)  # no runtime invocation or container may hold it
        listener = socket.socket(fileno=LISTEN_FD)
        listener.getsockname()
    except OSError:
        raise InvalidArgument("serve needs its listening socket on fd 3: "
                              "the shim is started by `capsize-shim start`") from None
    socket_path = listener.getsockname()
    loop = Loop(on_error=lambda where, exc: log.error("internal error", where=where, error=repr(exc)))
    reaper = Reaper(on_orphan=lambda pid, code: log.info("reaped re-parented process", pid=pid, exit_status=code))
    loop.on_signal(signal.SIGCHLD, reaper.reap)
    publisher = Publisher(loop, opts.get("address", ""), ns, log)
    runtime = OCIRuntime(opts["runtime"], opts["runtime-root"], os.path.join(bundle, paths.RUNTIME_LOG),
                         env=dict(os.environ, CAPSIZE_HOST_FAILPOINTS=host_points) if host_points else None)
    task = Task(loop, reaper, runtime, bundle, cid, ns, publisher, log, terminal=terminal)
    Server(loop, listener, task, failpoints, log, socket_path=socket_path)
    atomicfile.write(os.path.join(bundle, paths.SHIM_PID), f"{os.getpid()}", durable=False)
    log.info("shim started", pid=os.getpid(), runtime=runtime.binary, runtime_root=runtime.root,
             address=paths.address_of(socket_path), failpoints=sorted(failpoints),
             **({"host_failpoints": host_points} if host_points else {}))
    _ready(f"ready {os.getpid()}")
    reaper.reap()  # anything that exited before the handler was set
    loop.run()
    publisher.close()
    log.info("shim exited")
    return 0


def _ready(line: str) -> None:
    try:
        os.write(READY_FD, (line.replace("\n", " ") + "\n").encode())
        os.close(READY_FD)
    except OSError:
        pass


def report_failure(err: CapsizeError) -> int:
    """Report *err* on the readiness pipe (``error <message>``) and stderr; its exit code."""
    _ready(f"error {err.message}")
    os.write(2, f"capsize-shim serve: {err.message}\n".encode())
    return exit_code_for(err)


def main(argv: list[str]) -> None:
    """The ``serve`` verb (argv: ``serve --id ... --bundle ...``, from :mod:`runtime.shim.cli` or
    a template's fork): parse, set the process title, serve; exits with the exit code."""
    from runtime.shim.args import parse
    try:
        _, opts = parse(argv)
        from runtime.shim.proctitle import set_title
        set_title(["capsize-shim"] + argv)
        code = serve(opts)
    except CapsizeError as e:
        code = report_failure(e)
    sys.exit(code)
