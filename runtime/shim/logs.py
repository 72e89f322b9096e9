"""Copying the container's stdout and stderr into a log file in Docker's json-file format.

Each line the container writes becomes one JSON object on its own line::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-29T11:25:01.123456789Z"}

as Docker's ``json-file`` log driver writes it (``log`` is the text including its newline,
``stream`` is ``stdout`` or ``stderr``, ``time`` is when the shim read it, RFC 3339 nano, UTC).
Like Docker, a line longer than :data:`MAX_LINE` bytes is split into several entries, only the
last of which ends in a newline, and bytes that are not UTF-8 become U+FFFD. So memory stays
bounded whatever the container writes: one read buffer (:data:`READ_SIZE`) and at most
:data:`MAX_LINE` bytes of pending partial line per stream. The file is appended to and never
rotated.
"""

from __future__ import annotations

import json
import os

from runtime.rfc3339 import format_nano

#: Longest entry, in bytes (Docker's 16 KiB message buffer).
MAX_LINE = 16 * 1024
#: Bytes read from a pipe at once.
READ_SIZE = 64 * 1024


class JsonFileWriter:
    """Appends json-file entries to one log file (opened O_APPEND, created 0640)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.errors = 0

    def write(self, stream: str, pieces: list[bytes]) -> None:
        """Write one entry per piece; a failed write is counted in :attr:`errors`, not raised."""
        if not pieces or self.fd < 0:
            return
        now = format_nano()
        out = "".join(json.dumps({"log": p.decode("utf-8", "replace"), "stream": stream, "time": now},
                                 ensure_ascii=False, separators=(",", ":")) + "\n" for p in pieces)
        data = out.encode()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            self.errors += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LogCopier:
    """Copies one pipe (the read end of the container's stdout or stderr) into a writer."""

    def __init__(self, loop, fd: int, stream: str, writer: JsonFileWriter, whole_lines: bool = True):
        """*whole_lines* False (a terminal): what each read brings is written at once, a partial
        line too (a shell's prompt has no newline, and attached clients read the log)."""
        self.loop, self.fd, self.stream, self.writer = loop, fd, stream, writer
        self.whole_lines = whole_lines
        self.partial = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """Read one chunk; False at EOF, on EAGAIN, or when closed."""
        if self.fd < 0:
            return False
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.close()
            return False
        self._feed(data)
        return True

    def _feed(self, data: bytes) -> None:
        buf = self.partial + data if self.partial else data
        pieces, start, n = [], 0, len(buf)
        while start < n:
            nl = buf.find(b"\n", start, start + MAX_LINE)
            if nl >= 0:
                pieces.append(buf[start:nl + 1])
                start = nl + 1
            elif n - start >= MAX_LINE:
                pieces.append(buf[start:start + MAX_LINE])
                start += MAX_LINE
            else:
                break
        self.partial = buf[start:]
        if self.partial and not self.whole_lines:
            pieces.append(self.partial)
            self.partial = b""
        self.writer.write(self.stream, pieces)

    def drain(self, max_bytes: int = 4 << 20) -> None:
        """Copy what the pipe holds right now (without waiting for EOF), up to *max_bytes*."""
        n = 0
        while n < max_bytes and self._read_once():
            n += READ_SIZE

    def close(self) -> None:
        """Flush a pending partial line and close the pipe (idempotent)."""
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self.partial:
            self.writer.write(self.stream, [self.partial])
            self.partial = b""
