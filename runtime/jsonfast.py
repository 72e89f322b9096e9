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


#: The deepest nesting :func:`loads_bounded` accepts (arrays and objects): well above any document
#: the Engine API or capsize's own protocols carry, well below the interpreter's recursion limit.
MAX_DEPTH = 400
#: The largest JSON request body the HTTP APIs read (bytes; bigger is a 413): 16 MiB, far above
#: any create request (100,000 ``Env`` entries are about 1 MiB); dockerd sets no bound of its own.
#: capsized (:mod:`runtime.daemon.api`) and capsize-runtimed (:mod:`runtime.highlevel.httpserver`).
JSON_LIMIT = 16 << 20
#: Request bodies at least this big (bytes) are parsed, and their depth checked, in a worker
#: thread, off the event loop.
THREAD_THRESHOLD = 256 << 10


class DepthExceeded(ValueError):
    """A document nested deeper than the bound; ``str()`` is Go's ``encoding/json`` wording
    (``invalid character '[' exceeded max depth``), which dockerd returns for such a body."""


def _opener_past(s: str, limit: int) -> str:
    """The bracket (``[`` or ``{``) that first goes past *limit* levels in *s* (strings skipped)."""
    depth, i, n = 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif c in "[{":
            depth += 1
            if depth > limit:
                return c
        elif c in "]}":
            depth -= 1
        i += 1
    return "["


def _too_deep(obj, limit: int) -> bool:
    """True when *obj* nests deeper than *limit*; iterative, linear in size."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return True
        items = o.values() if isinstance(o, dict) else o
        stack.extend((v, d + 1) for v in items if isinstance(v, (dict, list)))
    return False


def loads_bounded(s: str | bytes, max_depth: int = MAX_DEPTH):
    """:func:`loads`, refusing a document nested deeper than *max_depth* with :class:`DepthExceeded`
    (a ValueError) instead of exhausting the stack (``RecursionError``). Linear in the size: a
    count of brackets decides most documents at C speed, an iterative walk the others."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    if s.count("[") + s.count("{") <= max_depth:
        return loads(s)
    try:
        obj = loads(s)
    except RecursionError:
        raise DepthExceeded(f"invalid character '{_opener_past(s, max_depth)}' exceeded max depth") from None
    if isinstance(obj, (dict, list)) and _too_deep(obj, max_depth):
        raise DepthExceeded(f"invalid character '{_opener_past(s, max_depth)}' exceeded max depth")
    return obj
