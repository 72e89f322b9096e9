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

from runtime.errors import CapsizeError, InvalidArgument, exit_code_for
from runtime.shim import paths

LISTEN_FD = 3
READY_FD = 4


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def serve(opts: dict) -> int:
    """Run the shim until ``shutdown``; *opts* as parsed by :mod:`runtime.shim.cli`."""
    from runtime.shim.events import Publisher
    from runtime.shim.failpoints import from_config, host_failpoints
    from runtime.shim.loop import Loop
    from runtime.shim.ociruntime import OCIRuntime
    from runtime.shim.reaper import Reaper
    from runtime.shim.server import Server
    from runtime.shim.shimlog import Logger
    from runtime.shim.task import Task

    bundle, cid, ns = opts["bundle"], opts["id"], opts["namespace"]
    log = Logger(2, id=cid, namespace=ns)
    if os.environ.pop("CAPSIZE_SHIM_SUBREAPER", "") != "1":
        from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
        HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        with open(os.path.join(bundle, paths.CONFIG)) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read {bundle}/{paths.CONFIG}: {e}") from None
    failpoints = from_config(config if isinstance(config, dict) else {})
    host_points = host_failpoints(config if isinstance(config, dict) else {})
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
    task = Task(loop, reaper, runtime, bundle, cid, ns, publisher, log)
    Server(loop, listener, task, failpoints, log, socket_path=socket_path)
    _write_atomic(os.path.join(bundle, paths.SHIM_PID), f"{os.getpid()}")
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


def main(argv: list[str]) -> None:
    """Entry point of the daemon (argv: ``[capsize-shim] serve --id ... --bundle ...``, or
    ``[capsize-shim] template`` for the shim template, :mod:`runtime.shim.template`)."""
    from runtime.shim.cli import parse
    if argv and argv[0] == "capsize-shim":
        argv = argv[1:]
    try:
        if argv and argv[0] == "template":
            from runtime.shim.template import serve_template
            sys.exit(serve_template())
        _, opts = parse(argv)
        from runtime.shim.proctitle import set_title
        set_title(["capsize-shim"] + argv)
        code = serve(opts)
    except CapsizeError as e:
        _ready(f"error {e.message}")
        os.write(2, f"capsize-shim serve: {e.message}\n".encode())
        code = exit_code_for(e)
    sys.exit(code)
