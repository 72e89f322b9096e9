"""Run a function in a forked child of the test process and bring its result back.

Process attributes (capabilities, uid, seccomp, rlimits, umask) are one-way changes, so the
tests of :mod:`runtime.lowlevel.process` and friends make them in a child: ``os.fork()``, the
child runs the function and writes a JSON report to a pipe, then ``os._exit``; the parent reads
the report and reaps the child (nothing is left behind for the leak check).
"""

from __future__ import annotations

import json
import os
import signal


class Outcome:
    """What happened in the child: :attr:`value` (the function's JSON-able result), or
    :attr:`error` (exception class name) and :attr:`message`; :attr:`signal` if the child was
    killed, :attr:`exit_code` otherwise; :attr:`output` (bytes) for :func:`exec_in_child`."""

    def __init__(self, report: dict | None, status: int, output: bytes = b""):
        report = report or {}
        self.value = report.get("value")
        self.error = report.get("error")
        self.message = report.get("message")
        self.output = output
        self.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        self.exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None

    def __repr__(self):
        return (f"Outcome(value={self.value!r}, error={self.error!r}, message={self.message!r}, "
                f"signal={self.signal}, exit_code={self.exit_code}, output={self.output[:300]!r})")


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run_in_child(fn, *args, **kwargs) -> Outcome:
    """Call ``fn(*args, **kwargs)`` in a forked child; its return value must be JSON-able."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            try:
                report = {"value": fn(*args, **kwargs)}
            except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                report = {"error": type(e).__name__, "message": str(e)}
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = _read_all(r)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    return Outcome(json.loads(data) if data else None, status)


def exec_in_child(prepare, *args, **kwargs) -> Outcome:
    """In a forked child with stdout on a pipe, call ``prepare(...)`` -> ``(path, argv, env)`` and
    execve it; :attr:`Outcome.output` is what the program wrote. If *prepare* raises, the error
    comes back as with :func:`run_in_child` (and nothing is exec'd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            os.dup2(w, 1)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            try:
                path, argv, env = prepare(*args, **kwargs)
                os.execve(path, argv, env)
            except BaseException as e:  # noqa: BLE001
                os.write(w, b"\0" + json.dumps({"error": type(e).__name__, "message": str(e)}).encode())
        finally:
            os._exit(127)
    os.close(w)
    try:
        data = _read_all(r)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if data.startswith(b"\0"):
        return Outcome(json.loads(data[1:]), status)
    return Outcome(None, status, data)


def status_fields(text: str | None = None) -> dict[str, str]:
    """``/proc/self/status`` (or *text* in its format) as ``{field: value}``."""
    if text is None:
        with open("/proc/self/status") as f:
            text = f.read()
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields
