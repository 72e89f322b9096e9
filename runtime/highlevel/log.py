"""capsize-runtimed's log: :class:`runtime.jsonlog.Logger` with ``component`` = ``runtimed``.

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

import sys

from runtime import jsonlog

LEVELS = jsonlog.LEVELS


class Logger(jsonlog.Logger):
    """runtimed's logger: *path* (default stderr) at *level*; *journal* forces journald on/off
    (default: when stderr is the journal stream); *fields* are added to every entry.
    InvalidArgument for an unknown *level*."""

    def __init__(self, path: str | None = None, level: str = "info", journal: bool | None = None,
                 component: str = "runtimed", **fields):
        super().__init__(path, level, component=component, journal=journal,
                         identifier="capsize-runtimed", **fields)


def stderr_line(message: str) -> None:
    """The one line a user sees when the daemon cannot start: ``capsize-runtimed: <message>``."""
    print(f"capsize-runtimed: {message}", file=sys.stderr, flush=True)
