"""Load: many concurrent Engine API clients against one engine, with ``/_ping`` latency under load.

:func:`load` runs *clients* concurrent clients (asyncio, aiohttp over the engine's unix socket),
each sending *per_client* requests that mix ``GET /containers/json?all=1`` (ps), ``GET
/containers/{id}/json`` (inspect) and ``GET /containers/{id}/logs?stdout=1&stderr=1`` of a
container made beforehand; every *cycle_every*-th client also does one create / start / delete
(force) of a busybox ``true``. Meanwhile a prober sends ``GET /_ping`` every 50 ms and records
its latency. Bounded: every request has a *timeout* (a timed-out one counts as status 0) and
the whole run *seconds*.

Returns ``{"engine", "clients", "sent", "statuses": {status: n}, "seconds", "ping": {"n",
"p50", "p95", "max"} (seconds), "errors": [...]}``. ``python -m benchmarks.api_load`` runs it
against capsized and against a private dockerd (same image, same load) and prints both; the
suite's tests/daemon/test_load.py asserts capsized's bounds. Not a test.

    python -m benchmarks.api_load [--clients 200] [--per-client 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import time

PING_EVERY = 0.05


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _load(sock: str, target: str, clients: int, per_client: int, cycle_every: int, timeout: float,
                seconds: float, version: str) -> dict:
    import aiohttp
    statuses: collections.Counter = collections.Counter()
    errors: list[str] = []
    pings: list[float] = []
    base = f"http://engine/v{version}"
    conn = aiohttp.UnixConnector(path=sock, limit=0)
    tmo = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=conn, timeout=tmo) as http:
        async def call(method: str, path: str, **kw) -> tuple[int, bytes]:
            try:
                async with http.request(method, base + path, **kw) as r:
                    body = await r.read()
                    statuses[r.status] += 1
                    return r.status, body
            except (asyncio.TimeoutError, aiohttp.ClientError) as e:
                statuses[0] += 1
                errors.append(f"{method} {path}: {type(e).__name__}")
                return 0, b""

        async def client(n: int) -> None:
            for i in range(per_client):
                kind = (n + i) % 3
                if kind == 0:
                    await call("GET", "/containers/json?all=1")
                elif kind == 1:
                    await call("GET", f"/containers/{target}/json")
                else:
                    await call("GET", f"/containers/{target}/logs?stdout=1&stderr=1")
            if cycle_every and n % cycle_every == 0:
                st, body = await call("POST", "/containers/create",
                                      json={"Image": "busybox", "Cmd": ["true"]})
                if st == 201:
                    cid = json.loads(body)["Id"]
                    await call("POST", f"/containers/{cid}/start")
                    await call("DELETE", f"/containers/{cid}?force=1")

        done = asyncio.Event()

        async def prober() -> None:
            while not done.is_set():
                t0 = time.monotonic()
                try:
                    async with http.get(f"http://engine/_ping") as r:
                        await r.read()
                    pings.append(time.monotonic() - t0)
                except (asyncio.TimeoutError, aiohttp.ClientError):
                    pings.append(timeout)
                await asyncio.sleep(PING_EVERY)

        t0 = time.monotonic()
        probe = asyncio.ensure_future(prober())
        try:
            await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(clients))), seconds)
        except asyncio.TimeoutError:
            errors.append(f"the run did not end within {seconds}s")
        elapsed = time.monotonic() - t0
        done.set()
        await probe
    return {"clients": clients, "sent": sum(statuses.values()), "statuses": dict(sorted(statuses.items())),
            "seconds": round(elapsed, 2),
            "ping": {"n": len(pings), "p50": round(_quantile(pings, 0.5), 4), "p95": round(_quantile(pings, 0.95), 4),
                     "max": round(max(pings), 4) if pings else None,
                     "mean": round(statistics.fmean(pings), 4) if pings else None},
            "errors": errors[:20]}


def load(sock: str, target: str, clients: int = 200, per_client: int = 5, cycle_every: int = 10,
         timeout: float = 30.0, seconds: float = 120.0, version: str = "1.41") -> dict:
    """Run the load (module docstring) against the engine at unix socket *sock*; *target* is the
    id of an existing container (inspected, its logs read)."""
    return asyncio.run(_load(sock, target, clients, per_client, cycle_every, timeout, seconds, version))


def _target(cli) -> str:
    return cli("run", "-d", "busybox", "sh", "-c", "echo hello; echo oops >&2").strip()


def main(argv=None) -> int:
    import os
    import subprocess
    import tempfile
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--per-client", type=int, default=5)
    p.add_argument("--json")
    a = p.parse_args(argv)
    from harness.reference.docker import DockerStack
    from tests.daemon.stack import Stack
    results = []
    with tempfile.TemporaryDirectory(prefix="capsize-load-") as tmp:
        s = Stack(os.path.join(tmp, "c"))
        try:
            s.start()
            s.load_busybox()
            target = _target(s.ok)
            r = load(s.sock, target, a.clients, a.per_client)
            results.append({"engine": "capsize", **r})
        finally:
            s.close()
        with DockerStack(os.path.join(tmp, "d")) as d:
            d.import_busybox()
            target = subprocess.run([d.docker_cli, "-H", d.host, "run", "-d", "busybox", "sh", "-c",
                                     "echo hello; echo oops >&2"], capture_output=True, text=True,
                                    check=True).stdout.strip()
            r = load(d.socket_path, target, a.clients, a.per_client)
            results.append({"engine": "docker", **r})
            ids = subprocess.run([d.docker_cli, "-H", d.host, "ps", "-aq"], capture_output=True,
                                 text=True).stdout.split()
            if ids:
                subprocess.run([d.docker_cli, "-H", d.host, "rm", "-f", *ids], capture_output=True)
    for r in results:
        print(f"{r['engine']:8} clients {r['clients']} sent {r['sent']} in {r['seconds']} s statuses "
              f"{r['statuses']} ping p50 {r['ping']['p50']} p95 {r['ping']['p95']} max {r['ping']['max']} s "
              f"({r['ping']['n']} pings)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
