"""Reading a container's json-file log for ``GET /containers/{id}/logs`` and attach.

The shim writes one JSON object per line (``{"log": "text\\n", "stream": "stdout"|"stderr",
"time": "<RFC 3339 nano>"}``, Docker's json-file format) to the container's log,
``<data-root>/daemon/containers/<id>/<id>-json.log``. :func:`read_entries` yields
``(stream, text_bytes, time_ns, time_text)`` from it with Docker's options: ``tail`` (last N
entries; ``all``), ``since``/``until`` (nanoseconds), ``follow`` (keep reading until the
container stops and the file is drained).

:func:`frame` makes the Engine API's multiplexed-stream frame (used when the container has no
TTY): an 8-byte header ``[stream, 0, 0, 0, size (uint32 big-endian)]`` then the payload, with
stream 1 = stdout, 2 = stderr. With ``timestamps`` each payload starts with the entry's time in
Go's ``RFC3339NanoFixed`` (always 9 fraction digits) and a space, as dockerd writes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct

from runtime.daemon.clock import parse_rfc3339

STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}
FOLLOW_POLL = 0.02   # seconds between reads of a growing log while following
_CHUNK = 64 * 1024


def frame(stream: str, payload: bytes) -> bytes:
    """One multiplexed-stream frame (header + payload)."""
    return struct.pack(">BxxxI", STREAMS.get(stream, 1), len(payload)) + payload


def fixed_timestamp(time_text: str, time_ns: int) -> str:
    """``2006-01-02T15:04:05.000000000Z`` (always 9 fraction digits) for an entry's time."""
    head = time_text.split(".")[0].rstrip("Z")
    return "%s.%09dZ" % (head, time_ns % 1_000_000_000)


def _parse(line: bytes):
    try:
        e = json.loads(line)
        t = e.get("time", "")
        return e.get("stream", "stdout"), e.get("log", "").encode(), parse_rfc3339(t) if t else 0, t
    except (ValueError, AttributeError, TypeError):
        return None   # a torn last line (the writer died mid-write) or garbage: skipped


def _tail_offset(f, n: int) -> int:
    """Byte offset where the last *n* lines of open binary file *f* begin."""
    f.seek(0, os.SEEK_END)
    end = pos = f.tell()
    newlines = 0
    # a trailing newline ends the last line: it does not start a new one
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step)
        if pos + step == end and buf.endswith(b"\n"):
            buf = buf[:-1]
        idx = len(buf)
        while True:
            idx = buf.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            newlines += 1
            if newlines == n:
                return pos + idx + 1
    return 0


async def read_entries(path: str, *, tail: int | None = None, since_ns: int = 0, until_ns: int = 0,
                       follow: bool = False, is_running=lambda: False):
    """Async generator of ``(stream, data, time_ns, time_text)`` from the log at *path*.

    *tail*: only the last N entries (None = all). *since_ns*/*until_ns*: keep entries with
    ``since_ns <= time`` and (when *until_ns*) ``time <= until_ns``. *follow*: keep reading
    new entries until ``is_running()`` is false and the file is drained (or *until_ns* passes).
    A missing file is an empty log (while following: waited for).
    """
    f = None
    try:
        while f is None:
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                if not follow or not is_running():
                    return
                await asyncio.sleep(FOLLOW_POLL)
        if tail is not None:
            if tail <= 0:
                f.seek(0, os.SEEK_END)
            else:
                f.seek(_tail_offset(f, tail))
        pending = b""
        while True:
            running = is_running()   # sampled before reading: a final read always follows the stop
            chunk = f.read(_CHUNK)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line:
                        continue
                    entry = _parse(line)
                    if entry is None or entry[2] < since_ns:
                        continue
                    if until_ns and entry[2] > until_ns:
                        return
                    yield entry
                continue
            if not follow or not running:
                return
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        if f is not None:
            f.close()
