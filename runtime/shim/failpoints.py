"""Failpoints: make a shim method fail, stall or crash, from an annotation in config.json.

An annotation ``io.capsize.shim.failpoint.<method>`` in the bundle's ``config.json`` arms the
method (``create``, ``start``, ``state``, ``kill``, ``wait``, ``pids``, ``delete``, ``connect``,
``shutdown``) with a term list in the syntax of FreeBSD's fail(9)::

    term[->term...]      term := [<pct>%][<count>*]<type>[(<arg>)]

The first term applies to each call; ``<count>*`` makes it apply to that many calls and then
give way to the next term, ``<pct>%`` makes it fire on that share of calls only. Types:

``off``           do nothing (the call proceeds);
``error(msg)``    the call fails with :class:`~runtime.errors.CapsizeError` ``msg`` (internal);
``delay(dur)``    the call proceeds after *dur* (``2s``, ``500ms``, or seconds as a number),
                  without blocking the shim's other clients: a window in which a scenario can
                  kill another tier while the call is in flight;
``panic``         the shim exits at once with status 2, without cleaning up (a shim crash).

Examples: ``1*delay(2s)`` delays the first call only; ``1*off->1*error(boom)`` lets the first
call through and fails the second; ``50%error(flaky)`` fails about half the calls. The
annotations are read once when the shim starts; a malformed one makes the start fail with
:class:`~runtime.errors.InvalidArgument`.

The low-level runtime's host operations (:mod:`runtime.host`: ``pivot_root``, ``mount``,
``umount``, ``unshare``, ...) are armed the same way, by annotations
``io.capsize.lowlevel.failpoint.<operation>`` whose value is a host failpoint term,
``delay(SECONDS)`` or ``error(ERRNO)``: :func:`host_failpoints` turns them into the
``CAPSIZE_HOST_FAILPOINTS`` value the shim puts in the environment of every low-level runtime
invocation it makes (so capsize-runc and its container child see it, and no other tier does).
"""

from __future__ import annotations

import os
import re

from runtime.errors import InvalidArgument

ANNOTATION_PREFIX = "io.capsize.shim.failpoint."
LOWLEVEL_PREFIX = "io.capsize.lowlevel.failpoint."
_HOST_TERM = re.compile(r"^(delay\(\s*\d+(\.\d+)?s?\s*\)|error\(\s*[A-Z][A-Z0-9]*\s*\))$")
_HOST_OP = re.compile(r"^[a-z_]+$")
KINDS = ("off", "error", "delay", "panic")

_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)%)?\s*(?:(\d+)\*)?\s*([a-z]+)\s*(?:\((.*)\))?\s*$", re.S)


def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"`` (seconds) -> seconds; raises InvalidArgument."""
    t = text.strip()
    scale = 1.0
    for suffix, factor in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            t, scale = t[:-len(suffix)], factor
            break
    try:
        value = float(t) * scale
    except ValueError:
        raise InvalidArgument(f"bad duration {text!r} (e.g. 2s, 500ms)") from None
    if value < 0:
        raise InvalidArgument(f"bad duration {text!r}: negative")
    return value


class Term:
    __slots__ = ("pct", "count", "kind", "arg")

    def __init__(self, pct, count, kind, arg):
        self.pct, self.count, self.kind, self.arg = pct, count, kind, arg


class Failpoint:
    """A parsed term list with its remaining counts; :meth:`evaluate` consumes one call."""

    def __init__(self, spec: str):
        self.spec = spec
        self.terms: list[Term] = []
        for raw in spec.split("->"):
            m = _TERM.match(raw)
            if not m or m.group(3) not in KINDS:
                raise InvalidArgument(f"bad failpoint term {raw.strip()!r} in {spec!r}: "
                                      f"want [pct%][count*]type[(arg)], type one of {', '.join(KINDS)}")
            pct = float(m.group(1)) if m.group(1) else None
            count = int(m.group(2)) if m.group(2) else None
            kind, arg = m.group(3), m.group(4)
            if kind == "delay":
                arg = parse_duration(arg or "")
            elif kind == "error":
                arg = (arg or "").strip() or "failpoint"
            self.terms.append(Term(pct, count, kind, arg))

    def evaluate(self) -> tuple[str, object] | None:
        """What this call should do: ``("error", msg)``, ``("delay", seconds)``, ``("panic", None)``
        or None (proceed)."""
        while self.terms:
            term = self.terms[0]
            if term.count is not None:
                if term.count <= 0:
                    self.terms.pop(0)
                    continue
                term.count -= 1
            if term.pct is not None and int.from_bytes(os.urandom(2), "little") % 10000 >= term.pct * 100:
                return None
            return None if term.kind == "off" else (term.kind, term.arg)
        return None


def from_config(config: dict) -> dict[str, Failpoint]:
    """The failpoints armed by *config*'s annotations, by method name; raises InvalidArgument."""
    annotations = config.get("annotations") or {}
    points = {}
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX):
                method = key[len(ANNOTATION_PREFIX):]
                try:
                    points[method] = Failpoint(str(value))
                except InvalidArgument as e:
                    raise InvalidArgument(f"annotation {key}: {e}") from None
    return points


def host_failpoints(config: dict) -> str:
    """``CAPSIZE_HOST_FAILPOINTS`` for the low-level runtime from *config*'s annotations
    ``io.capsize.lowlevel.failpoint.<op>`` (``op=term;...``, sorted; '' if none); raises
    InvalidArgument for a malformed one (the term must be ``delay(N)`` or ``error(ERRNO)``)."""
    annotations = config.get("annotations") or {}
    terms = []
    if isinstance(annotations, dict):
        for key, value in sorted(annotations.items()):
            if isinstance(key, str) and key.startswith(LOWLEVEL_PREFIX):
                op, term = key[len(LOWLEVEL_PREFIX):], str(value).strip()
                if not _HOST_OP.match(op) or not _HOST_TERM.match(term):
                    raise InvalidArgument(f"annotation {key}={value!r}: want a host operation and "
                                          f"delay(SECONDS) or error(ERRNO), e.g. pivot_root=delay(3)")
                terms.append(f"{op}={term}")
    return ";".join(terms)
