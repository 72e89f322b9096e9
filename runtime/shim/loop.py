"""The shim's event loop: one thread, epoll, timers and signals; nothing heavier than ``select``.

* :meth:`Loop.add_reader` / :meth:`Loop.add_writer` call back when a file descriptor is ready
  (level-triggered epoll);
* :meth:`Loop.call_later` runs a callback after a delay in seconds (monotonic clock) and returns a
  :class:`Timer` that can be cancelled;
* :meth:`Loop.on_signal` runs a callback in the loop after a signal arrived (through
  ``signal.set_wakeup_fd``, so a signal never interrupts a callback half-way);
* :meth:`Loop.run` serves until :meth:`Loop.stop`.

A callback that raises is logged through ``on_error`` and the loop goes on: one bad request or
one failed write never stops the shim.
"""

from __future__ import annotations

import heapq
import os
import select
import signal
import time


class Timer:
    """A scheduled callback; :meth:`cancel` makes it a no-op."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback, args):
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "Timer") -> bool:
        return self.when < other.when


class Loop:
    """A minimal level-triggered epoll loop (see the module docstring)."""

    def __init__(self, on_error=None):
        self._ep = select.epoll()
        self._fds: dict[int, list] = {}  # fd -> [reader, writer]
        self._timers: list[Timer] = []
        self._signals: dict[int, object] = {}
        self._wakeup_r = -1
        self._stopping = False
        self.on_error = on_error or (lambda where, exc: None)

    # -- file descriptors --------------------------------------------------------------------
    def _update(self, fd: int) -> None:
        reader, writer = self._fds[fd]
        mask = (select.EPOLLIN if reader else 0) | (select.EPOLLOUT if writer else 0)
        if mask:
            try:
                self._ep.modify(fd, mask)
            except FileNotFoundError:
                self._ep.register(fd, mask)
        else:
            del self._fds[fd]
            try:
                self._ep.unregister(fd)
            except (FileNotFoundError, OSError):
                pass

    def add_reader(self, fd: int, callback) -> None:
        """Call ``callback()`` whenever *fd* is readable (or at EOF/error)."""
        self._fds.setdefault(fd, [None, None])[0] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        if fd in self._fds:
            self._fds[fd][0] = None
            self._update(fd)

    def add_writer(self, fd: int, callback) -> None:
        """Call ``callback()`` whenever *fd* is writable."""
        self._fds.setdefault(fd, [None, None])[1] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        if fd in self._fds:
            self._fds[fd][1] = None
            self._update(fd)

    # -- timers and signals ------------------------------------------------------------------
    def call_later(self, delay: float, callback, *args) -> Timer:
        """Run ``callback(*args)`` after *delay* seconds; returns the cancellable :class:`Timer`."""
        timer = Timer(time.monotonic() + max(0.0, delay), callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def on_signal(self, signo: int, callback) -> None:
        """Run ``callback()`` in the loop after each delivery of *signo*."""
        if self._wakeup_r < 0:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wakeup_r = r
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            self.add_reader(r, self._drain_signals)
        self._signals[signo] = callback
        signal.signal(signo, lambda *_: None)  # the C handler writes to the wakeup fd

    def _drain_signals(self) -> None:
        try:
            data = os.read(self._wakeup_r, 512)
        except BlockingIOError:
            return
        for signo in set(data):
            cb = self._signals.get(signo)
            if cb:
                self._call("signal %d" % signo, cb, ())

    # -- running -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration."""
        self._stopping = True

    def _call(self, where: str, callback, args) -> None:
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001 - the loop must survive any callback
            self.on_error(where, exc)

    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for I/O or the next timer (at most *max_wait* s), then run what is due."""
        timeout = -1.0 if max_wait is None else max_wait
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            due = max(0.0, self._timers[0].when - time.monotonic())
            timeout = due if timeout < 0 else min(timeout, due)
        for fd, mask in self._ep.poll(timeout):
            entry = self._fds.get(fd)
            if entry is None:
                continue
            reader, writer = entry
            if reader and mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                self._call("reader fd %d" % fd, reader, ())
            entry = self._fds.get(fd)
            if entry and entry[1] and mask & (select.EPOLLOUT | select.EPOLLERR):
                self._call("writer fd %d" % fd, entry[1], ())
        now = time.monotonic()
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._call("timer", timer.callback, timer.args)

    def run(self) -> None:
        """Serve callbacks until :meth:`stop` is called."""
        while not self._stopping:
            self.run_once()
