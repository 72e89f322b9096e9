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


def _queued_connections(proc, path: str, n: int) -> int:
    """With *proc* stopped (SIGSTOP: nothing accepts), how many of *n* non-blocking connects to
    unix socket *path* get queued before one fails (EAGAIN: the listen backlog is full)."""
    import signal
    import socket
    socks = []
    proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            try:
                s.connect(path)
            except BlockingIOError:
                return len(socks) - 1
        return n
    finally:
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGCONT)


def test_api_sockets_queue_a_burst_of_connections(fresh):
    """capsized's and capsize-runtimed's sockets keep LISTEN_BACKLOG connections waiting, not the
    100/128 that asyncio and aiohttp would set (a burst of 200 clients failed with EAGAIN)."""
    import os
    from runtime.api import LISTEN_BACKLOG
    burst = 300
    assert burst < LISTEN_BACKLOG
    assert _queued_connections(fresh.daemon, fresh.sock, burst) == burst
    assert _queued_connections(fresh.runtimed, os.path.join(fresh.state, "runtimed.sock"), burst) == burst
    assert fresh.ok("version", "--format", "{{.Server.Version}}")   # both still answer
