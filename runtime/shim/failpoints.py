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
``panic``         the shim exits at once with status 2, without cleaning up (a shim crash);
``kill``          the shim SIGKILLs itself (a shim crash, as ``kill -9``).

The grammar is :mod:`runtime.api.failpoints`' (the named crash points of every tier use it too).

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

import re

from runtime.api.failpoints import KINDS, action_at, parse_duration, parse_terms  # noqa: F401
from runtime.errors import InvalidArgument

ANNOTATION_PREFIX = "io.capsize.shim.failpoint."
LOWLEVEL_PREFIX = "io.capsize.lowlevel.failpoint."
_HOST_TERM = re.compile(r"^(delay\(\s*\d+(\.\d+)?s?\s*\)|error\(\s*[A-Z][A-Z0-9]*\s*\))$")
_HOST_OP = re.compile(r"^[a-z_]+$")


class Failpoint:
    """A parsed term list (:func:`runtime.api.failpoints.parse_terms`) with its own hit count;
    :meth:`evaluate` consumes one call."""

    def __init__(self, spec: str):
        self.spec = spec
        self.terms = parse_terms(spec, KINDS)
        self.calls = 0

    def evaluate(self) -> tuple[str, object] | None:
        """What this call should do: ``("error", msg)``, ``("delay", seconds)``, ``("panic", None)``,
        ``("kill", None)`` or None (proceed)."""
        self.calls += 1
        return action_at(self.terms, self.calls)


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
