"""The shim's own log: JSON lines (``time``, ``level``, ``msg``, ``component``, ids, fields).

Written to the shim's stderr, which the ``start`` action points at ``<task dir>/shim.log``, so
that a crash's traceback lands next to the structured lines.
"""

from __future__ import annotations

import json
import os

from runtime.shim.clock import rfc3339nano


class Logger:
    """Writes one JSON object per line to *fd*, with *fields* (e.g. id, namespace) on each."""

    def __init__(self, fd: int = 2, **fields):
        self.fd, self.fields = fd, fields

    def log(self, level: str, msg: str, **kw) -> None:
        entry = {"time": rfc3339nano(), "level": level, "msg": msg, "component": "shim"}
        entry.update(self.fields)
        entry.update(kw)
        try:
            os.write(self.fd, (json.dumps(entry, default=str) + "\n").encode())
        except OSError:
            pass

    def debug(self, msg: str, **kw) -> None:
        self.log("debug", msg, **kw)

    def info(self, msg: str, **kw) -> None:
        self.log("info", msg, **kw)

    def warning(self, msg: str, **kw) -> None:
        self.log("warning", msg, **kw)

    def error(self, msg: str, **kw) -> None:
        self.log("error", msg, **kw)
