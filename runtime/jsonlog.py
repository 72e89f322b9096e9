"""The JSON-lines log of capsize's engine components (capsized, capsize-runtimed, capsize-shim).

Every entry is one JSON object on one line: ``time`` (RFC 3339 nano, UTC; :mod:`runtime.rfc3339`),
``level`` (``debug``, ``info``, ``warning``, ``error``), ``msg``, ``component`` (``daemon``,
``runtimed``, ``shim``...) and the ids the logger or the caller adds (``id``, ``namespace``,
``pid``...), in that order (DESIGN.md "Conventions")::

    {"time":"2026-11-29T11:25:01.123456789Z","level":"info","msg":"shim started","component":"shim","id":"c1"}

Where the lines go: the file *path* (appended, created 0640), else the descriptor *fd* (default
2, stderr). When stderr is systemd's journal stream (:func:`runtime.journald.stream_connected`)
and python3-systemd is installed, entries are sent to journald natively instead: ``MESSAGE``,
``PRIORITY`` (syslog), ``SYSLOG_IDENTIFIER`` (*identifier*) and one upper-case field per key
(``COMPONENT=``, ``ID=``...); an entry journald refuses is written as a JSON line instead.
Values JSON cannot encode are written as ``str(value)``. Thread-safe; a failed write is dropped,
never raised (logging never takes a component down).

Standard library only (``json``, ``os``, ``_thread``): the shim imports it.
"""

from __future__ import annotations

import json
import os
from _thread import allocate_lock

from runtime import journald
from runtime.rfc3339 import format_nano

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    """JSON lines to *path* or *fd*, or journald (see the module docstring).

    *level*: the lowest level written (InvalidArgument for an unknown one). *journal*: True/False
    forces journald on or off; None (the default) uses it when no *path* is given and stderr is
    the journal stream. ``with_fields(**f)`` returns a logger that adds *f* to every entry and
    shares the output.
    """

    def __init__(self, path: str | None = None, level: str = "info", *, component: str,
                 fd: int = 2, journal: bool | None = None, identifier: str | None = None, **fields):
        if level not in LEVELS:
            from runtime.errors import InvalidArgument
            raise InvalidArgument(f"invalid log level {level!r}: one of {', '.join(LEVELS)}")
        self.level = level
        self.fields = {"component": component, **fields}
        self.identifier = identifier or component
        self._threshold = LEVELS[level]
        self._lock = allocate_lock()
        self._journal = None
        self._fd, self._own_fd = fd, False
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._own_fd = True
        elif journal if journal is not None else journald.stream_connected(2):
            self._journal = journald.native()

    @property
    def to_stderr(self) -> bool:
        """True when entries go to stderr as JSON lines (no log file, no journal)."""
        return not self._own_fd and self._fd == 2 and self._journal is None

    def with_fields(self, **fields) -> "Logger":
        child = object.__new__(type(self))
        child.__dict__.update(self.__dict__)
        child.fields = {**self.fields, **fields}
        return child

    def entry(self, level: str, msg: str, **fields) -> dict:
        """The object one call writes: time, level, msg, the logger's fields, then *fields*."""
        return {"time": format_nano(), "level": level, "msg": msg, **self.fields, **fields}

    def log(self, level: str, msg: str, **fields) -> None:
        if LEVELS.get(level, 20) < self._threshold:
            return
        entry = self.entry(level, msg, **fields)
        if self._journal is not None and self._to_journal(level, msg, entry):
            return
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                os.write(self._fd, line)
            except OSError:
                pass

    def _to_journal(self, level: str, msg: str, entry: dict) -> bool:
        """Send one entry to journald; False (the caller writes a JSON line) if journald refuses."""
        extra = {}
        for key, value in entry.items():
            if key in ("time", "level", "msg"):
                continue
            extra[journald.field_name(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
        try:
            self._journal.send(msg, PRIORITY=str(journald.PRIORITY.get(level, 6)),
                               SYSLOG_IDENTIFIER=self.identifier, **extra)
            return True
        except Exception:  # noqa: BLE001 - logging must never take the component down
            return False

    def debug(self, msg: str, **fields) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields) -> None:
        self.log("error", msg, **fields)

    def close(self) -> None:
        """Close the log file (if this logger opened one); later entries are dropped."""
        if self._own_fd:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._own_fd, self._fd = False, -1
