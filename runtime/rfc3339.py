"""RFC 3339 timestamps with nanoseconds, in UTC, as Go (Docker, containerd, runc) writes them.

* :func:`format_nano` — nanoseconds since the Unix epoch (default: now) to Go's
  ``time.RFC3339Nano`` on a UTC time, ``2026-11-29T11:25:01.123456789Z``: trailing zeros of the
  fraction dropped, and the dot too when the fraction is zero (what containerd's events and
  Docker's json-file log driver write). With ``fixed=True`` the fraction always has nine digits
  (dockerd's ``RFC3339NanoFixed``; what capsize-runc writes for runc's ``created`` and log
  ``time``).
* :func:`parse` — the inverse: RFC 3339 text (any UTC offset, ``T``/``t``/space between date and
  time, a fraction of any length, digits past the ninth ignored) to nanoseconds since the epoch;
  Go's zero time ``0001-01-01T00:00:00Z`` (and any year 0001) gives 0. Raises ValueError on
  anything else.

Standard library only and no ``re``/``datetime`` import: the shim and capsize-runc import it
on every container start.
"""

from __future__ import annotations

import time

#: Go's zero ``time.Time`` in RFC 3339, which Docker shows for a time that never happened.
ZERO_TIME = "0001-01-01T00:00:00Z"

_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def format_nano(ns: int | None = None, fixed: bool = False) -> str:
    """*ns* nanoseconds since the epoch (default: now) as RFC 3339 nano UTC text (see module)."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(int(ns), 1_000_000_000)
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(secs)[:6]
    if fixed:
        return "%s.%09dZ" % (text, frac)
    if frac:
        text += "." + ("%09d" % frac).rstrip("0")
    return text + "Z"


def _digits(text: str, start: int, count: int, what: str) -> int:
    part = text[start:start + count]
    if len(part) != count or not part.isdigit() or not part.isascii():
        raise ValueError(f"not an RFC 3339 time: {text!r} (bad {what})")
    return int(part)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of the proleptic Gregorian date (no calendar/datetime import)."""
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = _DAYS_BEFORE_MONTH[m - 1] + d - 1 + (1 if leap and m > 2 else 0)
    yp = y - 1
    return days + 365 * yp + yp // 4 - yp // 100 + yp // 400 - 719162


def parse(text: str) -> int:
    """RFC 3339 (nano) *text* to nanoseconds since the epoch (see the module docstring).

    Raises ValueError naming the text when it is not RFC 3339 (bad field, out-of-range month,
    day, hour, minute or second, missing offset).
    """
    if not isinstance(text, str):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    s = text.strip()
    y = _digits(s, 0, 4, "year")
    if s[4:5] != "-" or s[7:8] != "-" or s[10:11] not in ("T", "t", " ") or s[13:14] != ":" \
            or s[16:17] != ":":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    mo, d = _digits(s, 5, 2, "month"), _digits(s, 8, 2, "day")
    h, mi, sec = _digits(s, 11, 2, "hour"), _digits(s, 14, 2, "minute"), _digits(s, 17, 2, "second")
    i, frac = 19, 0
    if s[i:i + 1] == ".":
        j = i + 1
        while j < len(s) and s[j].isdigit() and s[j].isascii():
            j += 1
        if j == i + 1:
            raise ValueError(f"not an RFC 3339 time: {text!r} (empty fraction)")
        frac = int(s[i + 1:j][:9].ljust(9, "0"))
        i = j
    tz = s[i:]
    if tz in ("Z", "z"):
        offset = 0
    elif len(tz) == 6 and tz[0] in "+-" and tz[3] == ":":
        oh, om = _digits(tz, 1, 2, "offset"), _digits(tz, 4, 2, "offset")
        if oh > 23 or om > 59:
            raise ValueError(f"not an RFC 3339 time: {text!r} (bad offset)")
        offset = (oh * 3600 + om * 60) * (1 if tz[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r} (bad or missing offset)")
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and sec <= 60):
        raise ValueError(f"not an RFC 3339 time: {text!r} (field out of range)")
    if y == 1:
        return 0
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
    return secs * 1_000_000_000 + frac
