"""Invoking the low-level runtime (capsize-runc, runc, crun) through the OCI runtime command line.

Every invocation is ``<binary> --root <root> --log <task dir>/log.json --log-format json
<command> ...``, as containerd's go-runc builds it. Processes are started with posix_spawn(3)
and SIGPIPE/SIGXFSZ reset to their defaults (Python ignores them; the container must not inherit
that), with :data:`runtime.runtimes.PARENT_ENV` naming the shim, so that capsize-runc dies with
it (containerd-shim-runc-v2 runs runc with go-runc's ``PdeathSignal: SIGKILL``). The shim never waits for them itself: their exits come through its reaper.

When an invocation fails, :meth:`OCIRuntime.error_text` gives the go-runc style message
``<binary> did not terminate successfully: exit status N: <text>``, where the text is the last
error the runtime logged to ``log.json`` during that invocation, or what it wrote to stderr.
"""

from __future__ import annotations

import os
from _signal import SIGKILL, SIGPIPE, SIGXFSZ  # the C module: `signal` costs an enum import per start

from runtime import jsonfast
from runtime.api import failpoints
from runtime.errors import CapsizeError
from runtime.runtimes import PARENT_ENV

_SIGDEF = (SIGPIPE, SIGXFSZ)


def resolve(binary: str) -> str:
    """Absolute path of a runtime binary given as a path or a name (:func:`runtime.runtimes.resolve`:
    the venv's ``capsize-runc`` next to this Python, crun through its hybrid-cgroup wrapper where
    needed, other names on PATH). Raises NotFound."""
    from runtime.runtimes import resolve as resolve_runtime
    return resolve_runtime(binary)


class Invocation:
    """One running low-level runtime command: its pid, captured output and log offset."""

    __slots__ = ("pid", "command", "out_fd", "err_fd", "log_offset")

    def __init__(self, pid, command, out_fd, err_fd, log_offset):
        self.pid, self.command, self.out_fd, self.err_fd, self.log_offset = \
            pid, command, out_fd, err_fd, log_offset

    def _read(self, fd: int, limit: int = 1 << 20) -> bytes:
        if fd < 0:
            return b""
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, limit)

    def stdout(self) -> bytes:
        return self._read(self.out_fd)

    def stderr(self) -> bytes:
        return self._read(self.err_fd, 64 << 10)

    def close(self) -> None:
        for fd in (self.out_fd, self.err_fd):
            if fd >= 0:
                os.close(fd)
        self.out_fd = self.err_fd = -1


class OCIRuntime:
    """A low-level runtime binary with its ``--root`` and ``--log`` (see the module docstring)."""

    def __init__(self, binary: str, root: str, log_path: str, env: dict | None = None):
        self.binary, self.root, self.log_path = binary, root, log_path
        #: the invocations' environment (default: the shim's own), e.g. with CAPSIZE_HOST_FAILPOINTS
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, "--log", self.log_path, "--log-format", "json", *args]

    def spawn(self, *args: str, stdin: int = -1, stdout: int = -1, stderr: int = -1) -> Invocation:
        """Start ``<runtime> <args>``; stdio fds default to /dev/null (stdin) and memory files
        (stdout, stderr) read back by :class:`Invocation`. Raises CapsizeError if it cannot start."""
        failpoints.hit("shim.runtime.invoke.before")
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            log_offset = os.stat(self.log_path).st_size
        except FileNotFoundError:
            log_offset = 0
        own = []
        try:
            if stdin < 0:
                stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                own.append(stdin)
            out_fd = err_fd = -1
            if stdout < 0:
                stdout = out_fd = os.memfd_create("runtime-stdout", os.MFD_CLOEXEC)
            if stderr < 0:
                stderr = err_fd = os.memfd_create("runtime-stderr", os.MFD_CLOEXEC)
            argv = self.argv(*args)
            try:
                # capsize-runc dies with the shim (runtime.runtimes.PARENT_ENV), as go-runc's PdeathSignal
                env = dict(self.env if self.env is not None else os.environ, **{PARENT_ENV: str(os.getpid())})
                pid = os.posix_spawn(self.binary, argv, env, setsigdef=_SIGDEF, file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                    (os.POSIX_SPAWN_DUP2, stderr, 2)])
            except OSError as e:
                for fd in (out_fd, err_fd):
                    if fd >= 0:
                        os.close(fd)
                raise CapsizeError(f"cannot run {self.binary}: {e.strerror}") from None
        finally:
            for fd in own:
                os.close(fd)
        failpoints.hit("shim.runtime.invoke.after")
        return Invocation(pid, args[0], out_fd, err_fd, log_offset)

    def logged_error(self, offset: int = 0) -> str:
        """The last error message the runtime logged to ``log.json`` after byte *offset*."""
        return str(self._logged_error_record(offset).get("msg") or "")

    def _logged_error_record(self, offset: int) -> dict:
        """The last ``error``/``fatal``/``panic`` record of ``log.json`` after byte *offset*, or {}."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(offset, os.fstat(f.fileno()).st_size - (256 << 10)))
                lines = f.read().splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            try:
                entry = jsonfast.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "panic") and entry.get("msg"):
                return entry
        return {}

    def error_for(self, inv: Invocation, code: int, **fields) -> CapsizeError:
        """The failure of a finished invocation as an error of its class: the ``code`` (error
        class, runtime/errors.py) capsize-runc puts in its ``log.json`` record — runc and crun
        log none and exit 1, giving a plain :class:`CapsizeError` — with :meth:`error_text`."""
        from runtime.errors import from_dict
        cls = self._logged_error_record(inv.log_offset).get("code")
        return from_dict({"code": cls if isinstance(cls, str) else CapsizeError.code,
                          "message": self.error_text(inv, code), **fields})

    def error_text(self, inv: Invocation, code: int) -> str:
        """The one-line failure message of a finished invocation (see the module docstring)."""
        text = self.logged_error(inv.log_offset)
        if not text:
            text = inv.stderr().decode(errors="replace").strip()
        text = " ".join(text.split())[:2000]
        name = os.path.basename(self.binary)
        return f"{name} did not terminate successfully: exit status {code}" + (f": {text}" if text else "")

    def pid_from(self, pid_file: str, command: str) -> tuple[int, str]:
        """The pid *command* (``create``, ``exec``) wrote to its ``--pid-file`` and ``""``; or 0
        and the one-line error when the file is missing or not a number."""
        try:
            with open(pid_file) as f:
                return int(f.read().strip()), ""
        except (OSError, ValueError) as e:
            return 0, f"{os.path.basename(self.binary)} {command} left no valid pid file: {e}"

    def run(self, *args: str, timeout: float = 30.0) -> tuple[int, bytes, str]:
        """Run ``<runtime> <args>`` to completion (for callers that are not the shim's loop, such
        as the ``delete`` action); returns (exit code, stdout, error text or "")."""
        import time
        from runtime.shim.reaper import exit_code
        inv = self.spawn(*args)
        deadline = time.monotonic() + timeout
        try:
            while True:
                pid, status = os.waitpid(inv.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    os.kill(inv.pid, SIGKILL)
                    os.waitpid(inv.pid, 0)
                    from runtime.errors import DeadlineExceeded
                    raise DeadlineExceeded(f"{self.binary} {args[0]} did not finish within {timeout:g}s")
                time.sleep(0.005)
            code = exit_code(status)
            return code, inv.stdout(), (self.error_text(inv, code) if code else "")
        finally:
            inv.close()
