"""Times as the Engine API shows them.

* :func:`rfc3339` — nanoseconds since the epoch to Go's ``time.RFC3339Nano`` in UTC
  (``2026-11-29T11:25:01.123456789Z``); ``0`` gives Go's zero time ``0001-01-01T00:00:00Z``,
  which Docker shows for a StartedAt/FinishedAt that never happened.
* :func:`parse_rfc3339` — the inverse (any offset, any fraction length); ValueError when malformed.
  Both are :mod:`runtime.rfc3339`'s, with Docker's zero time.
* :func:`human_duration` — Docker's ``units.HumanDuration`` wording (``Up 3 seconds``,
  ``About a minute``...).
* :func:`parse_api_time` — a ``since``/``until`` query value: Unix seconds with an optional
  fraction (``1700000000.123456789``, what the CLI sends) or RFC 3339; returns nanoseconds.
"""

from __future__ import annotations

import re
import time

from runtime.errors import InvalidArgument
from runtime.rfc3339 import ZERO_TIME, format_nano, parse as parse_rfc3339

__all__ = ["ZERO_TIME", "human_duration", "now_ns", "parse_api_time", "parse_rfc3339", "rfc3339"]


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None) -> str:
    """*ns* (nanoseconds since the epoch) as RFC 3339 nano UTC; 0/None is Go's zero time."""
    if not ns:
        return ZERO_TIME
    return format_nano(int(ns))


def parse_api_time(value: str, name: str = "since") -> int:
    """A ``since``/``until`` parameter (Unix seconds[.nanos] or RFC 3339) to nanoseconds.

    Raises InvalidArgument (HTTP 400) when it is neither.
    """
    value = value.strip()
    m = re.match(r"^(-?\d+)(?:\.(\d{1,9}))?$", value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}: use Unix seconds or RFC 3339") from None


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: ``Less than a second``, ``1 second``, ``About a minute``..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
