"""capsize-runtimed's log: one JSON object per line, or journald under systemd.

Every entry has ``time`` (RFC 3339 nano, UTC), ``level`` (``debug``, ``info``, ``warning``,
``error``), ``msg``, ``component`` (``runtimed``) and whatever ids the caller adds (``id``,
``namespace``, ``pid``...). Messages use the words containerd logs for the same situations
(``shim disconnected``, ``cleaning up after shim disconnected``, ``cleaning up dead shim``), so
that an operator who knows containerd recognises them.

Where the lines go: the file given to :class:`Logger` (``--log-file``), else stderr. When stderr
is connected to the journal (systemd sets ``JOURNAL_STREAM`` to its ``device:inode``), entries
are sent to journald natively instead, with ``MESSAGE``, ``PRIORITY`` and one upper-case field
per key (``ID=...``, ``NAMESPACE=...``), and ``SYSLOG_IDENTIFIER=capsize-runtimed``; an entry
journald refuses is written to stderr as a JSON line instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading

from runtime.shim.clock import rfc3339nano

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3}  # syslog priorities
_FIELD = re.compile(r"[^A-Z0-9_]")


def journal_stream_connected(fd: int = 2) -> bool:
    """True when *fd* is the journal stream systemd names in ``JOURNAL_STREAM`` (``dev:ino``)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        st = os.fstat(fd)
        dev, ino = (int(x) for x in value.split(":", 1))
    except (OSError, ValueError):
        return False
    return st.st_dev == dev and st.st_ino == ino


class Logger:
    """Writes JSON lines to *path* (appended; default: stderr) or to journald (*journal*).

    *level* is the lowest level written. ``with_fields(**f)`` returns a logger that adds *f* to
    every entry and shares the output. Thread-safe; never raises on a failed write.
    """

    def __init__(self, path: str | None = None, level: str = "info", journal: bool | None = None,
                 component: str = "runtimed", **fields):
        if level not in LEVELS:
            from runtime.errors import InvalidArgument
            raise InvalidArgument(f"invalid log level {level!r}: one of {', '.join(LEVELS)}")
        self.level = level
        self.fields = {"component": component, **fields}
        self._threshold = LEVELS[level]
        self._lock = threading.Lock()
        self._journal = None
        self._fd = 2
        self._own_fd = False
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._own_fd = True
        elif journal if journal is not None else journal_stream_connected(2):
            try:
                from systemd import journal as sd_journal
                self._journal = sd_journal
            except ImportError:
                self._journal = None

    @property
    def to_stderr(self) -> bool:
        """True when entries go to stderr as JSON lines (no log file, no journal)."""
        return not self._own_fd and self._journal is None

    def with_fields(self, **fields) -> "Logger":
        child = object.__new__(Logger)
        child.__dict__.update(self.__dict__)
        child.fields = {**self.fields, **fields}
        return child

    def log(self, level: str, msg: str, **fields) -> None:
        if LEVELS.get(level, 20) < self._threshold:
            return
        entry = {"time": rfc3339nano(), "level": level, "msg": msg, **self.fields, **fields}
        if self._journal is not None and self._to_journal(level, msg, entry):
            return
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                os.write(self._fd, line)
            except OSError:
                pass

    def _to_journal(self, level: str, msg: str, entry: dict) -> bool:
        """Send one entry to journald; False (the caller writes it to stderr) if journald refuses."""
        extra = {}
        for key, value in entry.items():
            if key in ("time", "level", "msg"):
                continue
            name = _FIELD.sub("_", key.upper()).lstrip("_") or "FIELD"
            extra[name] = value if isinstance(value, str) else json.dumps(value, default=str)
        try:
            self._journal.send(msg, PRIORITY=str(_PRIORITY.get(level, 6)),
                               SYSLOG_IDENTIFIER="capsize-runtimed", **extra)
            return True
        except Exception:  # noqa: BLE001 - logging must never take the daemon down
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
        if self._own_fd:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._own_fd = False


def stderr_line(message: str) -> None:
    """The one line a user sees when the daemon cannot start: ``capsize-runtimed: <message>``."""
    print(f"capsize-runtimed: {message}", file=sys.stderr, flush=True)
