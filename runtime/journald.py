"""Is this process logging to the systemd journal?

systemd connects a service's stdout/stderr to journald's stream socket and names that socket in
``JOURNAL_STREAM`` as ``<device>:<inode>`` (systemd.exec(5), "Environment variables set by the
service manager": a process should check that its fd still is that socket before it sends
native journal entries, since the variable is inherited by children whose stderr may be
redirected). :func:`stream_connected` does exactly that check; :func:`native` returns the
``systemd.journal`` module (python3-systemd) for native entries, or None when it is not
installed. Standard library only; never raises.
"""

from __future__ import annotations

import os


def stream_connected(fd: int = 2) -> bool:
    """True when *fd* is the journal stream named in ``JOURNAL_STREAM`` (same device and inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        dev, ino = (int(x) for x in value.split(":", 1))
        st = os.fstat(fd)
    except (OSError, ValueError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def native():
    """The ``systemd.journal`` module (its ``send(MESSAGE, **FIELDS)``), or None if missing."""
    try:
        from systemd import journal
    except ImportError:
        return None
    return journal


#: syslog(3) priorities for capsize's log levels (journald's ``PRIORITY`` field).
PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3}


def field_name(key: str) -> str:
    """*key* as a journal field name: upper case, only ``A-Z0-9_``, not starting with ``_``
    (journald drops user fields that start with ``_``; systemd's ``journal_field_valid``)."""
    name = "".join(c if ("A" <= c <= "Z" or "0" <= c <= "9" or c == "_") else "_" for c in key.upper())
    return name.lstrip("_") or "FIELD"
