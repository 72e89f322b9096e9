"""Timestamps as the shim writes them: RFC 3339 with nanoseconds, in UTC.

:func:`rfc3339nano` formats like Go's ``time.RFC3339Nano`` on a UTC time (what Docker's json-file
log driver and containerd's events use): ``2026-11-29T11:25:01.123456789Z``, with trailing zeros
of the fraction dropped (and the dot too when the fraction is zero).
"""

from __future__ import annotations

import time


def rfc3339nano(ns: int | None = None) -> str:
    """*ns* nanoseconds since the epoch (default: now) as an RFC 3339 UTC string."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(secs)[:6]
    if frac:
        text += "." + ("%09d" % frac).rstrip("0")
    return text + "Z"
