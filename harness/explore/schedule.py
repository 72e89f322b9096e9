"""Schedules: which crash points to kill at, from a trace run; reproducible from seed and ids.

A :class:`Schedule` is a tuple of ``(point id, hit)`` kills (hit: the Nth passage of that id,
1-based, counted across every process of the engine). :func:`enumerate_schedules` makes, from
the trace (``[[id, proc, hits], ...]``): depth 1, one schedule per point (its first hit, or every
hit with ``every_hit``); depth 2, pairs of those, sampled with ``random.Random(seed)``, at most
``pairs`` of them. ``--shard i/n`` keeps every n-th schedule from the i-th (1-based).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from runtime.api import failpoints as fp
from runtime.errors import InvalidArgument


@dataclass(frozen=True)
class Schedule:
    kills: tuple[tuple[str, int], ...]

    @property
    def key(self) -> str:
        """``id@hit+id@hit``: the schedule's stable name (file names, the report)."""
        return "+".join(f"{pid}@{n}" for pid, n in self.kills)

    @classmethod
    def parse(cls, key: str) -> "Schedule":
        kills = []
        for part in key.split("+"):
            pid, _, n = part.partition("@")
            if pid not in fp.points() or not n.isdigit() or int(n) < 1:
                raise InvalidArgument(f"bad schedule {key!r}: want id@hit[+id@hit], ids of runtime/api/failpoints.py")
            kills.append((pid, int(n)))
        return cls(tuple(kills))

    def terms(self) -> dict[str, str]:
        """``failpoint.arm``'s ``points``: one kill term per id (``2*off->1*kill``)."""
        return {pid: fp.spell(n) for pid, n in self.kills}


def enumerate_schedules(trace: list[list], depth: int = 1, seed: int = 0, pairs: int = 50,
                        every_hit: bool = False) -> list[Schedule]:
    """The schedules for a trace (module doc). Unknown ids in the trace are an error (a point
    passed but not registered)."""
    if depth not in (1, 2):
        raise InvalidArgument("--depth must be 1 or 2")
    singles = []
    for pid, _proc, hits in trace:
        if pid not in fp.points():
            raise InvalidArgument(f"the trace passed {pid!r}, which runtime/api/failpoints.py does not register")
        for n in (range(1, hits + 1) if every_hit else (1,)):
            singles.append((pid, n))
    out = [Schedule((k,)) for k in singles]
    if depth == 2:
        combos = [(a, b) for i, a in enumerate(singles) for b in singles[i + 1:] if a[0] != b[0]]
        rng = random.Random(seed)
        rng.shuffle(combos)
        out += [Schedule(c) for c in combos[:pairs]]
    return out


def shard(schedules: list, spec: str | None) -> list:
    """``"i/n"``: every n-th schedule starting at the i-th (1-based); None: all."""
    if not spec:
        return schedules
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise InvalidArgument(f"--shard {spec!r}: want i/n, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise InvalidArgument(f"--shard {spec!r}: want 1 <= i <= n")
    return schedules[i - 1::n]
