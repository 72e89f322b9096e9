"""Starting a capsize-shim process detached from its caller, and waiting until it is ready.

:func:`spawn_detached` forks; the child makes itself a session leader (setsid: own session and
process group), optionally a child subreaper (prctl(2) ``PR_SET_CHILD_SUBREAPER``, which
survives execve), puts the given descriptors at 0, 1, 2, 3... and execs this Python in isolated
mode without site (``-I -S``: no site-packages scan, no user paths) on a one-line bootstrap that
puts capsize's source root on ``sys.path``. The caller then reads the readiness pipe with
:func:`wait_ready` and exits, so the process is re-parented (to the nearest subreaper, or PID 1):
it is never the caller's child for long.

Readiness protocol (a pipe the process inherits): one line, ``ready <pid>`` or
``error <message>``, then the pipe is closed.
"""

from __future__ import annotations

import os
import sys
import time

from runtime.errors import CapsizeError, DeadlineExceeded, Unavailable


def boot_argv(*args: str) -> list[str]:
    """argv that runs ``runtime.shim.cli.main(args)`` (the verb dispatcher) in a fresh, lean interpreter."""
    import runtime
    root = os.path.dirname(os.path.dirname(os.path.abspath(runtime.__file__)))
    boot = f"import sys;sys.path.insert(0,{root!r});from runtime.shim.cli import main;main(sys.argv[1:])"
    return [sys.executable, "-I", "-S", "-c", boot, *args]


def spawn_detached(argv: list[str], fds: list[int], cwd: str, subreaper: bool,
                   env: dict | None = None) -> int:
    """Fork and exec *argv* detached (see the module docstring) with ``fds[i]`` as descriptor i.

    Returns the child's pid (the caller's child until the caller exits). Errors in the child
    after fork are written to the descriptor that becomes 4 (the readiness pipe), if any.
    """
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: never returns
        import fcntl
        os.setsid()
        if subreaper:
            from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
            HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
        # move every source above the targets first, so that no dup2 clobbers a later source
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        os.chdir(cwd)
        os.execve(argv[0], argv, env if env is not None else os.environ)
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(4, f"error cannot exec {argv[0]}: {e}\n".encode())
        finally:
            os._exit(127)


def wait_ready(fd: int, timeout: float, what: str) -> int:
    """Read the readiness line from *fd* (then close it); returns the pid it names.

    Raises CapsizeError with the process's own message (``error ...``), Unavailable if it exited
    without a word, DeadlineExceeded after *timeout* seconds.
    """
    import select
    line = b""
    deadline = time.monotonic() + timeout
    try:
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise DeadlineExceeded(f"{what} did not become ready within {timeout:g}s")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            line += chunk
    finally:
        os.close(fd)
    text = line.decode(errors="replace").strip()
    if text.startswith("ready "):
        return int(text.split()[1])
    if text.startswith("error "):
        raise CapsizeError(f"{what} failed to start: {text[6:]}")
    raise Unavailable(f"{what} exited before it was ready")
