"""A container's input (``OpenStdin``, ``docker run -i``): a FIFO capsized writes and the init reads.

As dockerd does with containerd (``/run/docker/containerd/<id>/init-stdin``), capsized makes a
FIFO per container, ``<exec-root>/containers/<id>/init-stdin``, and passes its path to the task
(capsize-runtimed, then the shim, which opens it for reading and gives it to the low-level
runtime as the init's stdin). capsized holds the FIFO open (read-write, non-blocking: opening
never blocks, and the FIFO's buffer lives while capsized holds it) from the first attach or the
start, whichever comes first, so what a client sends before the start (``docker run -i`` attaches
first) waits in the FIFO. The container sees end of file when capsized closes it: after the
attach's input ended, with ``StdinOnce`` (the CLI's ``-i`` without ``-d``), once the task has
started; when the container exits; when it is removed; when capsized exits (a container adopted
with ``--live-restore`` has lost its input, as with dockerd).

Writes (:func:`write`) never block the event loop: on a full FIFO they wait (polled) while the
container can still read. Errors: none raised to clients; a container without ``OpenStdin`` just
has no input (its stdin is /dev/null).
"""

from __future__ import annotations

import asyncio
import os
import shutil

#: seconds between retries of a write to a full FIFO
WRITE_POLL = 0.01


def fifo_dir(exec_root: str, cid: str) -> str:
    return os.path.join(exec_root, "containers", cid)


def fifo_path(exec_root: str, cid: str) -> str:
    return os.path.join(fifo_dir(exec_root, cid), "init-stdin")


def open_fifo(c, exec_root: str) -> int:
    """The container's stdin FIFO held open by capsized (made on first use); its fd."""
    fd = getattr(c, "stdin_fd", -1)
    if fd >= 0:
        return fd
    path = fifo_path(exec_root, c.ID)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass
    c.stdin_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    c.stdin_eof = False
    return c.stdin_fd


def close(c) -> None:
    """Close capsized's end: the container reads end of file (once what is buffered is read)."""
    fd = getattr(c, "stdin_fd", -1)
    c.stdin_fd = -1
    c.stdin_eof = False
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def remove(c, exec_root: str) -> None:
    close(c)
    shutil.rmtree(fifo_dir(exec_root, c.ID), ignore_errors=True)


async def write(c, data: bytes, alive) -> bool:
    """Write *data* to the container's stdin; False when it cannot be delivered (closed, or the
    container is gone: ``alive()`` false while the FIFO is full)."""
    view = memoryview(data)
    while view:
        fd = getattr(c, "stdin_fd", -1)
        if fd < 0:
            return False
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            if not alive():
                return False
            await asyncio.sleep(WRITE_POLL)
        except OSError:
            return False
    return True


def input_ended(c) -> None:
    """The attach's input reached its end: with ``StdinOnce`` the container's stdin is closed —
    now if the task runs (its end of the FIFO is open), else right after it starts."""
    if not c.Config.get("StdinOnce"):
        return
    if c.State.running:
        close(c)
    else:
        c.stdin_eof = True


class Reader:
    """aiohttp payload parser for a hijacked connection (``protocol.set_parser``): what the client
    sends after the upgrade, as a queue of bytes ending with None (end of input or of connection)."""

    wants_eof = True   # runtime.daemon.server passes half-closes (eof_received) on

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()
        self._ended = False

    def feed_data(self, data: bytes):
        if data and not self._ended:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        if not self._ended:
            self._ended = True
            self.queue.put_nowait(None)
