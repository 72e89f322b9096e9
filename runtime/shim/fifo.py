"""The FIFOs a caller names for a process's stdio (the engine daemon's ends are the others),
opened by the shim: for the init (``create``'s ``stdin``) and for exec processes (``exec``'s
``stdin`` / ``stdout`` / ``stderr``).

A FIFO is opened non-blocking: opening it for reading (or read-write) then needs no writer, and
opening it for writing fails at once with ENXIO when no reader has it open (fifo(7)) instead
of hanging the shim. A process that inherits the fd gets it made blocking again; the shim's own
ends (a terminal's copies, :mod:`runtime.shim.console`) stay non-blocking.

Errors: :class:`~runtime.errors.InvalidArgument` naming the parameter and the path. Standard
library only.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument


def open_fifo(path, mode: int, what: str, blocking: bool = True, field: str | None = None) -> int:
    """*path* (absolute) opened with *mode* (``os.O_RDONLY``, ``os.O_WRONLY`` or ``os.O_RDWR``),
    close-on-exec, non-blocking while opening, then blocking again when *blocking*. *what* names
    the parameter in errors (``stdin``, ``exec stdio``), *field* is the error's field.
    InvalidArgument for a path that is not absolute or cannot be opened (with its strerror)."""
    extra = {"field": field} if field else {}
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgument(f"{what} must be an absolute path, not {path!r}", **extra)
    try:
        fd = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"cannot open {what} {path}: {e.strerror}", **extra) from None
    if blocking:
        os.set_blocking(fd, True)
    return fd
