"""Replacing a file atomically: a reader sees the old content or the new, never a mix.

:func:`write` writes the data to a temporary file in the target's directory
(``<path>.tmp-<pid>-<random>``, created exclusively), optionally fsyncs it, renames it over the
target (rename(2) is atomic within one filesystem), and optionally fsyncs the directory, so the
rename itself is on disk. The durability is each caller's choice, and part of its contract:

* ``durable=True`` — survives a power cut: the exit file of a shim, runtimed's metadata files,
  capsized's records with ``--fsync-state``. Costs a few ms per write (two fsyncs).
* ``durable=False`` — survives any crash of the writing process (SIGKILL at any moment), not a
  power cut: what lives on a tmpfs (``/run``: runc's ``state.json``, pid files) or is cheap to
  rebuild. This is runc's and dockerd's choice for their volatile state.

On failure the temporary file is removed and the OSError raised. :func:`fsync_dir` is the
directory half, for callers that rename by themselves. Standard library only (``os``):
capsize-runc and the shim use it on every container start.
"""

from __future__ import annotations

import os

#: What every temporary name starts with after the target's name (see :func:`temp_name`).
TEMP_INFIX = ".tmp-"


def temp_name(path: str) -> str:
    """The temporary name :func:`write` uses for *path*: ``<path>.tmp-<pid>-<6 hex>``."""
    return f"{path}{TEMP_INFIX}{os.getpid()}-{os.urandom(3).hex()}"


def fsync_dir(path: str) -> None:
    """fsync(2) the directory *path*, so that a rename (or create) in it is durable. OSError."""
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: str, data: bytes | str, *, durable: bool, mode: int = 0o644) -> None:
    """Replace *path* with *data* (str is UTF-8 encoded) atomically; see the module docstring.

    *durable*: fsync the file before and the directory after the rename. *mode*: permission bits
    of a new file (before the umask). Raises OSError (the directory is missing, no space...).
    """
    if isinstance(data, str):
        data = data.encode()
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(os.path.dirname(path))
