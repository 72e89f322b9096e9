"""JSON for the hot path: the standard library's own C scanner and encoder, without ``json``'s import.

``import json`` pulls in ``re`` and ``enum`` (its decoder compiles regular expressions at import),
about 5 ms on these machines — paid by every ``capsize-runc`` and ``capsize-shim`` start, several
times per container. The parsing and encoding themselves are done by CPython's ``_json``
accelerator in both cases; this module calls it directly (``c_make_scanner``,
``c_make_encoder``, the same objects ``json`` uses when its C speedups are available) and falls
back to ``json`` when they are not. Behaviour is ``json.loads`` / ``json.dumps`` with default
options (``allow_nan`` on, ``ensure_ascii`` on), plus compact separators for :func:`dumps`.

Errors: :func:`loads` raises ``ValueError`` (``json.JSONDecodeError`` is a subclass), :func:`dumps`
raises ``TypeError`` for objects JSON cannot encode.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - every CPython build we support has it
    _json = None

_WS = " \t\n\r"


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def _default(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context())
    _encode_compact = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                                         ":", ",", False, False, True)
    _encode_spaced = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                                        ": ", ", ", False, False, True)


def loads(s: str | bytes):
    """Parse a JSON document (str or UTF-8 bytes), as ``json.loads``."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    if _json is None:
        import json
        return json.loads(s)
    start = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, start)
    except (StopIteration, SystemError, ValueError):
        # A malformed document. The C scanner builds its error from json.decoder, and only
        # if that module is already loaded (otherwise it fails with SystemError): let json
        # itself parse the text again and raise its precise JSONDecodeError.
        import json
        return json.loads(s)
    if len(s[end:].lstrip(_WS)):
        import json
        return json.loads(s)  # raises "Extra data" with the position
    return obj


def dumps(obj, compact: bool = True) -> str:
    """Encode *obj* as JSON; compact (``,``/``:``) by default, ``json.dumps``' spacing otherwise.

    For indented output use ``json.dumps`` itself: this module is for machine-read documents.
    """
    if _json is None:
        import json
        return json.dumps(obj, separators=(",", ":") if compact else None)
    return "".join((_encode_compact if compact else _encode_spaced)(obj, 0))
