"""capsized's log: :class:`runtime.jsonlog.Logger` with ``component`` = ``daemon``.

Written to ``--log-file`` (appended) or stderr; under systemd (stderr is the journal stream named
by ``JOURNAL_STREAM``) sent to journald with ``SYSLOG_IDENTIFIER=capsized``. Never raises.
"""

from __future__ import annotations

import sys

from runtime import jsonlog

LEVELS = jsonlog.LEVELS


class Logger(jsonlog.Logger):
    """capsized's logger: *path* (default stderr) at *level* (one of :data:`LEVELS`)."""

    def __init__(self, path: str | None = None, level: str = "info"):
        super().__init__(path, level, component="daemon", identifier="capsized")


def fatal(message: str) -> None:
    """The one line a user sees when the daemon cannot start."""
    print(f"capsized: {message}", file=sys.stderr, flush=True)
