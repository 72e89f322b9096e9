"""Crash-safe file writes and mount-point checks shared by the runtime daemon's modules.

A file is replaced atomically: written to a temporary name in the same directory, fsync'ed,
renamed over the target, and the directory fsync'ed, so a reader (or a daemon restarted after a
SIGKILL or a power cut) sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import os


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace *path* with *data* atomically (see the module docstring). Raises OSError."""
    tmp = f"{path}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(os.path.dirname(path) or ".")


def write_json_atomic(path: str, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str):
    """The JSON in *path*, or None when it is missing or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mount_points(prefix: str = "/") -> list[str]:
    """Mount points at or below *prefix* (as /proc/self/mountinfo shows them), deepest first."""
    prefix = prefix.rstrip("/") or "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
                .replace("\\134", "\\")
            if point == prefix or point.startswith(prefix + "/") or prefix == "/":
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def is_mount_point(path: str) -> bool:
    path = os.path.realpath(path)
    return path in mount_points(path)
