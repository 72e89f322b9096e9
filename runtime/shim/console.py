"""Terminals in the shim: the pty master the low-level runtime hands over, held and copied.

For a process with ``process.terminal`` (the init, from the bundle's config.json, or an exec
process) the shim, as containerd-shim-runc-v2 does:

1. makes a temporary console socket, ``/tmp/pty<random>/pty.sock`` (go-runc's
   ``NewTempConsoleSocket``; a short path whatever the bundle's, as sockaddr_un needs), and runs
   ``<runtime> create|exec ... --console-socket <it>`` (runc's docs/terminals.md);
2. once the runtime exited successfully, takes the pty master from it (one ``SCM_RIGHTS``
   message, already queued: the runtime sends it before ``create``/``exec`` returns; nothing is
   waited for) and removes the socket and its directory;
3. holds the master (:class:`Pty`) for the process's life: what the terminal prints is copied
   either into the container's json-file log as ``stdout`` (the init: a TTY container's log is
   one stream, as Docker's) or to an output FIFO (an exec process; capsized reads it), and what
   the input FIFO brings (capsized writes it) is written to the terminal;
4. applies ``resize`` (TIOCSWINSZ on the master: the kernel sends SIGWINCH to the terminal's
   foreground process group).

Every copy is driven by the shim's epoll loop with back-pressure (:class:`Pump`: a source is
read only while the previous chunk has been written): no busy-waiting, bounded memory. The
terminal's end (EIO on the master once every slave is closed) ends the copy.

Errors: :class:`~runtime.errors.CapsizeError` when no master arrived; OSError from the kernel.
Standard library only.
"""

from __future__ import annotations

import os
import socket

from runtime.errors import CapsizeError

#: Bytes moved per read.
CHUNK = 64 * 1024


class ConsoleSocket:
    """A listening console socket in a new private directory under /tmp (see the module docstring)."""

    def __init__(self, base: str = "/tmp"):
        for _ in range(8):
            d = os.path.join(base, "pty" + os.urandom(8).hex())
            try:
                os.mkdir(d, 0o700)
                break
            except FileExistsError:
                continue
        else:
            raise CapsizeError("cannot make a console socket directory")
        self.dir, self.path = d, os.path.join(d, "pty.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(self.path)
            self.sock.listen(1)
        except OSError:
            self.close()
            raise

    def receive(self) -> int:
        """The pty master the runtime sent (a new fd, non-blocking); CapsizeError if none is queued."""
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            raise CapsizeError("the runtime sent no pty master over the console socket") from None
        with conn:
            conn.settimeout(2.0)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        if not fds:
            raise CapsizeError("the console socket's message carried no file descriptor")
        for extra in fds[1:]:
            os.close(extra)
        os.set_blocking(fds[0], False)
        return fds[0]

    def take(self, error: str, command: str) -> tuple[int, str]:
        """After ``<runtime> <command>`` finished with *error* (``""``: it succeeded): the master
        (or -1) and the error, now including a missing master. The socket is closed either way."""
        master = -1
        if not error:
            try:
                master = self.receive()
            except (CapsizeError, OSError) as e:
                error = f"{command}: {e}"
        self.close()
        return master, error

    def close(self) -> None:
        """Stop listening; remove the socket and its directory (idempotent)."""
        self.sock.close()
        for rm, p in ((os.unlink, self.path), (os.rmdir, self.dir)):
            try:
                rm(p)
            except FileNotFoundError:
                pass


class Pump:
    """Copies *src* to *dst* in the loop with back-pressure; owns both fds (closed at the end).
    ``on_end()`` is called once, when the source ended or the destination failed."""

    def __init__(self, loop, src: int, dst: int, on_end=None):
        self.loop, self.src, self.dst, self.on_end = loop, src, dst, on_end
        self.buf = b""
        for fd in (src, dst):
            os.set_blocking(fd, False)
        loop.add_reader(src, self._readable)

    def _chunk(self) -> bytes | None:
        """One read of the source: data, ``b""`` at its end (EOF, or EIO: a pty master whose
        slaves are all closed), None when nothing is there now."""
        try:
            return os.read(self.src, CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _readable(self) -> None:
        self._take(self._chunk())

    def _take(self, data: bytes | None) -> bool:
        """Handle one read's *data*; True when it was data (now being written)."""
        if data is None:
            return False
        if not data:
            self.close()
            return False
        self.buf = data
        self.loop.remove_reader(self.src)
        self._writable()
        return True

    def _writable(self) -> None:
        if self.dst < 0:
            return
        try:
            n = os.write(self.dst, self.buf)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        self.buf = self.buf[n:]
        if self.buf:
            self.loop.add_writer(self.dst, self._writable)
        else:
            self.loop.remove_writer(self.dst)
            self.loop.add_reader(self.src, self._readable)

    def drain(self, max_bytes: int = 4 << 20) -> None:
        """Move what the source holds right now (no waiting for more), up to *max_bytes*."""
        moved = 0
        while self.src >= 0 and not self.buf and moved < max_bytes:
            data = self._chunk()
            if not self._take(data):
                return
            moved += len(data)

    def close(self) -> None:
        if self.src < 0:
            return
        for fd, remove in ((self.src, self.loop.remove_reader), (self.dst, self.loop.remove_writer)):
            remove(fd)
            os.close(fd)
        self.src = self.dst = -1
        if self.on_end:
            end, self.on_end = self.on_end, None
            end()


class Pty:
    """A pty master held by the shim (see the module docstring)."""

    def __init__(self, loop, master: int):
        self.loop, self.master = loop, master
        self.pumps: list[Pump] = []
        self.output = None   # the Pump to an output FIFO (exec), or
        self.copier = None   # the LogCopier into the container's log (init)

    def to_log(self, writer) -> None:
        """Copy the terminal's output into *writer* (a JsonFileWriter) as ``stdout`` entries."""
        from runtime.shim.logs import LogCopier
        self.copier = LogCopier(self.loop, os.dup(self.master), "stdout", writer,
                                whole_lines=False)

    def to_fifo(self, fd: int) -> None:
        """Copy the terminal's output to *fd* (an output FIFO opened for writing; owned from now on)."""
        self.output = Pump(self.loop, os.dup(self.master), fd)
        self.pumps.append(self.output)

    def from_fifo(self, fd: int) -> None:
        """Write what *fd* (an input FIFO opened for reading; owned from now on) brings to the terminal."""
        self.pumps.append(Pump(self.loop, fd, os.dup(self.master)))

    def resize(self, height: int, width: int) -> None:
        """TIOCSWINSZ: *height* rows, *width* columns, on the open master (the caller,
        ``Task.resize``, refuses a closed one: ``master`` is -1)."""
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def drain(self) -> None:
        """Copy the output the terminal holds now (at the process's exit)."""
        if self.copier is not None:
            self.copier.drain()
        if self.output is not None:
            self.output.drain()

    def close(self) -> None:
        """Close the copies and the master (idempotent)."""
        if self.copier is not None:
            self.copier.close()
            self.copier = None
        for p in self.pumps:
            p.close()
        self.pumps = []
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

