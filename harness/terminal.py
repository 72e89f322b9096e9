"""A program run on a pseudo-terminal of its own, driven the way a person drives a terminal.

:class:`Terminal` starts *argv* (typically the docker CLI: ``docker run -it ...``) with a new pty
as its stdin, stdout, stderr and controlling terminal (a new session), of ``rows`` x ``cols``.
:meth:`Terminal.type` writes keystrokes; :meth:`Terminal.expect` reads the screen (all output
so far, ANSI escape sequences removed) until a text appears; :meth:`Terminal.resize` changes the
window size (TIOCSWINSZ: the program gets SIGWINCH, as from a terminal emulator);
:meth:`Terminal.wait` waits for the exit. Reading uses ``select``: no busy-waiting.
Errors: :class:`TimeoutError` from :meth:`expect` and :meth:`wait` (with the screen so far).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>]")

#: ctrl-p ctrl-q: Docker's default detach keys
DETACH = b"\x10\x11"


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """See the module docstring. ``output`` holds every byte the program printed."""

    def __init__(self, argv: list[str], env: dict | None = None, rows: int = 24, cols: int = 80):
        self.master, slave = os.openpty()
        _set_size(slave, rows, cols)
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                         start_new_session=True, close_fds=True,
                                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        finally:
            os.close(slave)
        os.set_blocking(self.master, False)
        self.output = b""

    @property
    def screen(self) -> str:
        """What the program printed so far, as text, without escape sequences and carriage returns."""
        return _ANSI.sub(b"", self.output).replace(b"\r", b"").decode(errors="replace")

    def _read(self, timeout: float) -> bool:
        """Read what is there within *timeout* s; False at the end (the program closed the pty)."""
        if self.master < 0:
            return False
        ready = select.select([self.master], [], [], max(0.0, timeout))[0]
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return True
        except OSError:   # EIO: every slave closed (the program exited)
            data = b""
        if not data:
            return False
        self.output += data
        return True

    def type(self, keys: str | bytes) -> None:
        """Write *keys* as typed (``\\r`` is Enter on a terminal in raw mode; ``\\n`` also works)."""
        data = keys.encode() if isinstance(keys, str) else keys
        while data:
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                select.select([], [self.master], [], 1.0)

    def expect(self, text: str, timeout: float = 10.0) -> str:
        """Read until *text* is on the screen; the screen. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                if text in self.screen:
                    break
                raise TimeoutError(f"{text!r} did not appear within {timeout:g}s; screen: {self.screen[-800:]!r}")
        return self.screen

    def resize(self, rows: int, cols: int) -> None:
        """The window is now *rows* x *cols* (the program gets SIGWINCH)."""
        _set_size(self.master, rows, cols)

    def wait(self, timeout: float = 30.0) -> int:
        """The program's exit status (reading its last output meanwhile). TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.proc.args!r} did not exit within {timeout:g}s; "
                                   f"screen: {self.screen[-800:]!r}")
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.proc.returncode

    def close(self) -> None:
        """Kill the program if it still runs, reap it, close the pty (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
