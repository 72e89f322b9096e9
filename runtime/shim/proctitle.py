"""Setting the shim's process title: what ``ps`` and ``/proc/<pid>/cmdline`` show.

A shim is a Python interpreter (started as ``python3 -I -S -c <bootstrap> capsize-shim ...``,
or forked from the shim template, which would show the template's arguments). So that tools
(and the harness's role mapping) see ``capsize-shim serve --namespace <ns> --id <id> ...``,
:func:`set_title` rewrites the argument area in place, as setproctitle(3) does: the title, a NUL,
and non-NUL padding up to the end of the area, which makes the kernel report the title alone
(fs/proc/base.c, ``get_mm_proctitle``). It writes through ``/proc/self/mem`` (no ctypes), and
sets ``comm`` (``/proc/self/comm``, 15 bytes) too. A title longer than the area is cut.
Best effort: failures are ignored.
"""

from __future__ import annotations

import os


def set_title(argv: list[str], comm: str = "capsize-shim") -> bool:
    """Make this process read as *argv* (joined by spaces); True if the title was written."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(comm[:15])
    except OSError:
        pass
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): arg_start and arg_end are fields 48 and 49
        start, end = int(fields[45]), int(fields[46])
        size = end - start
        if size < 2:
            return False
        title = " ".join(argv).encode()[:size - 2]
        data = title + b"\0" + b" " * (size - len(title) - 1)
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, start)
        finally:
            os.close(fd)
        return True
    except (OSError, ValueError, IndexError):
        return False
