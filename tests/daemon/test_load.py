"""Issue #20's load test: 200 concurrent clients (ps, inspect, logs; create/start/rm for one in
ten) against one capsized, bounded in time and count, ``/_ping`` answered meanwhile.
``python -m benchmarks.api_load`` runs the same load against dockerd too, for the comparison."""

from __future__ import annotations

import pytest

from benchmarks.api_load import load

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

CLIENTS, PER_CLIENT, CYCLE_EVERY = 200, 5, 10


def test_200_concurrent_clients_are_all_answered_and_ping_stays_quick(fresh):
    target = fresh.ok("run", "-d", "busybox", "sh", "-c", "echo hello; echo oops >&2")
    fresh.ok("wait", target)
    r = load(fresh.sock, target, CLIENTS, PER_CLIENT, CYCLE_EVERY, timeout=30, seconds=90)
    print(f"\nload: {r}")
    cycles = CLIENTS // CYCLE_EVERY
    assert r["sent"] == CLIENTS * PER_CLIENT + 3 * cycles, r
    assert not r["errors"], r
    assert set(r["statuses"]) <= {200, 201, 204}, r
    assert r["statuses"].get(201) == cycles and r["statuses"].get(204) == 2 * cycles, r
    assert r["seconds"] < 90
    assert r["ping"]["n"] >= 3 and r["ping"]["p95"] < 2.0, r["ping"]
    assert fresh.ok("ps", "-aq", "--no-trunc").split() == [target]   # every created container was removed
