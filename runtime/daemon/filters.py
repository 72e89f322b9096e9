"""The ``filters`` query parameter of the Engine API (``GET /containers/json``, ``/events``, ``/images/json``).

The value is JSON in one of two shapes, both accepted as dockerd does: ``{"key": ["v1", "v2"]}``
(the SDK) or ``{"key": {"v1": true}}`` (the CLI). :func:`parse_filters` returns ``{key: [values]}``
and raises InvalidArgument (400) for malformed JSON or a key not in *allowed*, with dockerd's text
``invalid filter 'KEY'``.
"""

from __future__ import annotations

import json

from runtime.errors import InvalidArgument


def parse_filters(raw: str | None, allowed: set[str]) -> dict[str, list[str]]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filter: {raw!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter: want a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(values, dict):
            vals = [k for k, v in values.items() if v]
        elif isinstance(values, list):
            vals = [str(v) for v in values]
        elif isinstance(values, str):
            vals = [values]
        else:
            raise InvalidArgument(f"invalid filter '{key}': bad value")
        if vals:
            out[key] = vals
    return out


def match_labels(wanted: list[str], labels: dict | None) -> bool:
    """Every ``key`` or ``key=value`` in *wanted* holds for *labels* (``key!=value`` too)."""
    labels = labels or {}
    for w in wanted:
        if "!=" in w:
            k, v = w.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in w:
            k, v = w.split("=", 1)
            if labels.get(k) != v:
                return False
        elif w not in labels:
            return False
    return True
