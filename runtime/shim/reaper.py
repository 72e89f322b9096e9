"""Reaping for a child subreaper: every exited child, known or re-parented, is waited for here.

The shim is a child subreaper (prctl(2) ``PR_SET_CHILD_SUBREAPER``), so besides the low-level
runtime invocations it spawned itself it inherits the container's init (re-parented when
``<runtime> create`` exits) and any orphaned descendant. One place calls ``waitpid(-1)``:
:meth:`Reaper.reap`, run on SIGCHLD. Each reaped pid goes to the callback registered for it with
:meth:`Reaper.expect` (runtime invocations, the init once its pid is known); any other pid is an
orphan: it is remembered in a small bounded table (:meth:`Reaper.recent_exit`), because the init
may die before its pid file has been read, and is otherwise only logged. This is the same scheme
as containerd's reaper, which subscribes each runtime invocation to the exits it must see.
"""

from __future__ import annotations

import os

#: How many exits of not-yet-claimed pids are remembered (oldest forgotten first).
RECENT_MAX = 128


def exit_code(status: int) -> int:
    """A wait(2) status as a shell-style exit code: the code, or 128 + signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Reaper:
    """Dispatch ``waitpid(-1, WNOHANG)`` results to per-pid callbacks (see the module docstring)."""

    def __init__(self, on_orphan=None):
        self._expected: dict[int, object] = {}
        self._recent: dict[int, tuple[int, int]] = {}  # pid -> (exit code, time_ns), insertion-ordered
        self.on_orphan = on_orphan or (lambda pid, code: None)

    def expect(self, pid: int, callback) -> None:
        """Call ``callback(exit_code, time_ns)`` when *pid* is reaped (or now, if it already was)."""
        if pid in self._recent:
            code, when = self._recent.pop(pid)
            callback(code, when)
        else:
            self._expected[pid] = callback

    def forget(self, pid: int) -> None:
        """Stop waiting for *pid* (its exit will be treated as an orphan's)."""
        self._expected.pop(pid, None)

    def clear_recent(self) -> None:
        """Forget remembered orphan exits (before spawning a process whose pid is learnt later)."""
        self._recent.clear()

    def reap(self) -> int:
        """Reap every exited child now; returns how many were reaped."""
        import time
        n = 0
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return n
            if pid == 0:
                return n
            n += 1
            code, when = exit_code(status), time.time_ns()
            callback = self._expected.pop(pid, None)
            if callback is not None:
                callback(code, when)
                continue
            self._recent[pid] = (code, when)
            while len(self._recent) > RECENT_MAX:
                del self._recent[next(iter(self._recent))]
            self.on_orphan(pid, code)
