"""capsized's log: JSON lines (``time``, ``level``, ``msg``, ``component`` = ``daemon``, ids...).

Written to ``--log-file`` (appended) or stderr; under systemd (stderr is the journal stream named
by ``JOURNAL_STREAM``) sent to journald with ``SYSLOG_IDENTIFIER=capsized``. Never raises.
"""

from __future__ import annotations

import json
import os
import sys

from runtime.shim.clock import rfc3339nano

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_PRIORITY = {"debug": "7", "info": "6", "warning": "4", "error": "3"}


class Logger:
    def __init__(self, path: str | None = None, level: str = "info"):
        self.threshold = LEVELS.get(level, 20)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640) if path else 2
        self.journal = None
        stream = os.environ.get("JOURNAL_STREAM", "")
        if not path and ":" in stream:
            try:
                st = os.fstat(2)
                if f"{st.st_dev}:{st.st_ino}" == stream:
                    from systemd import journal
                    self.journal = journal
            except (OSError, ImportError):
                pass

    def log(self, level: str, msg: str, **fields) -> None:
        if LEVELS.get(level, 20) < self.threshold:
            return
        if self.journal is not None:
            try:
                self.journal.send(msg, PRIORITY=_PRIORITY.get(level, "6"), SYSLOG_IDENTIFIER="capsized",
                                  **{k.upper(): str(v) for k, v in fields.items()})
                return
            except Exception:  # noqa: BLE001 - logging never takes the daemon down
                pass
        entry = {"time": rfc3339nano(), "level": level, "msg": msg, "component": "daemon", **fields}
        try:
            os.write(self.fd, (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode())
        except OSError:
            pass

    def debug(self, msg, **f):
        self.log("debug", msg, **f)

    def info(self, msg, **f):
        self.log("info", msg, **f)

    def warning(self, msg, **f):
        self.log("warning", msg, **f)

    def error(self, msg, **f):
        self.log("error", msg, **f)


def fatal(message: str) -> None:
    """The one line a user sees when the daemon cannot start."""
    print(f"capsized: {message}", file=sys.stderr, flush=True)
