"""capsize-runc's log: runc's ``--log FILE``, ``--log-format text|json`` and ``--debug``.

With ``--log-format json`` each record is one line ``{"level": ..., "msg": ..., "time": RFC 3339}``
— the format containerd-shim-runc-v2 reads back to report a runtime's error. With ``text`` it
is logfmt (``time="..." level=error msg="..."``), as runc's logrus text formatter. Without
``--log`` records go to stderr. Debug records are written only with ``--debug``.
"""

from __future__ import annotations

import os
import sys

from runtime.rfc3339 import format_nano

_cfg = {"path": None, "format": "text", "debug": False}


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    _cfg.update(path=path, format=fmt, debug=debug)


def has_file() -> bool:
    """True when records go to a --log file (not stderr)."""
    return bool(_cfg["path"])


def record(level: str, msg: str, **fields) -> None:
    """Append one record at *level* (``debug``, ``info``, ``warning``, ``error``) to the log."""
    if level == "debug" and not _cfg["debug"]:
        return
    from runtime.jsonfast import dumps
    if _cfg["format"] == "json":
        line = dumps({"level": level, "msg": msg, "time": format_nano(fixed=True), **fields})
    else:
        extra = "".join(f" {k}={dumps(v) if not isinstance(v, (int, float)) else v}" for k, v in fields.items())
        line = f'time="{format_nano(fixed=True)}" level={level} msg={dumps(msg)}{extra}'
    path = _cfg["path"]
    if path:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            fd = None
        if fd is not None:
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
            return
    sys.stderr.write(line + "\n")


def debug(msg: str, **fields) -> None:
    record("debug", msg, **fields)


def warning(msg: str, **fields) -> None:
    record("warning", msg, **fields)


def error(msg: str, **fields) -> None:
    record("error", msg, **fields)
