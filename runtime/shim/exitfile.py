"""The exit file: the init's exit status and time, kept on disk as conmon keeps it.

``<task dir>/exit`` holds one JSON object, ``{"pid": int, "exit_status": int, "exited_at":
"<RFC 3339 nano>"}``. ``exit_status`` is the code, or 128 + the signal number for an init
killed by a signal. The file is written before the exit is reported to anyone (event, ``state``,
``wait``) and replaced atomically (write a temporary file, fsync, rename, fsync the directory),
so a reader sees either no file or a whole one, even across a crash of the shim or the host.
"""

from __future__ import annotations

import json
import os

from runtime import atomicfile
from runtime.api import failpoints
from runtime.shim.paths import EXIT


def write(task_dir: str, pid: int, exit_status: int, exited_at: str) -> str:
    """Atomically write the exit file in *task_dir*; returns its path. Raises OSError."""
    path = os.path.join(task_dir, EXIT)
    data = json.dumps({"pid": pid, "exit_status": exit_status, "exited_at": exited_at}) + "\n"
    failpoints.hit("shim.exitfile.write.before")
    atomicfile.write(path, data, durable=True)
    failpoints.hit("shim.exitfile.write.after")
    return path


def read(task_dir: str) -> dict | None:
    """The exit file's object, or None when there is none (or it is unreadable garbage)."""
    try:
        with open(os.path.join(task_dir, EXIT)) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("exit_status"), int):
        return None
    return d
