"""Benchmark: networking on capsize vs the private dockerd, in the same run, as ratios.

Both engines are the harness's (:mod:`harness.engines`), each in a network namespace of its
own, with the lab's busybox; the engines are interleaved so machine noise hits both alike.
Median of *runs* (default 10) of:

* ``docker run -d --network NET busybox sleep 1000`` (until the CLI returns; removed afterwards, untimed);
* ``docker run --rm --network NET busybox true`` (end to end);
* container-to-container TCP throughput on NET's bridge: *mb* MiB from a socket in one
  container's network namespace (entered by the harness: the bytes take the containers' path,
  veth - bridge - veth) to busybox ``nc -l > /dev/null`` in another, by address, until it closes;
* host-to-published-port throughput: *mb* MiB sent from the engine's namespace (a Python socket
  there) to ``127.0.0.1:<host port>`` (the userland proxy: docker-proxy, capsize-proxy) until the
  server closes.

NET is a user-defined bridge network (``benchnet``) when both engines create one, else the
default bridge on both (said in the output); a measure an engine cannot run (no published
ports) is printed as n/a with the daemon's answer. Ratios capsize/docker: latency target
<= 1.0, throughput targets >= 0.95 (container to container) and >= 1.0 (published port), as
capsize/docker throughput. Not a test.

    python -m benchmarks.net_bench [--runs 10] [--mb 256] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time

SERVER = ["sh", "-c", "while true; do nc -l -p 5001 > /dev/null; done"]
HOST_PORT = 18555


class Bench:
    """One engine under measurement (a started :class:`harness.engines.base.Engine`)."""

    def __init__(self, engine, cli: str):
        self.engine, self.name, self.cli_path = engine, engine.name, cli
        self.env = engine.cli_env()
        self.client = engine.client(timeout=120)
        self.network = "bridge"
        self.skipped: dict[str, str] = {}

    def cli(self, *args: str) -> str:
        r = subprocess.run([self.cli_path, *args], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout.strip()

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self.cli(*args)
        return time.perf_counter() - t0


def m_run_d(b: Bench) -> float:
    t0 = time.perf_counter()
    cid = b.cli("run", "-d", "--network", b.network, "busybox", "sleep", "1000")
    t = time.perf_counter() - t0
    b.cli("rm", "-f", cid)
    return t


def m_run_rm(b: Bench) -> float:
    return b.timed("run", "--rm", "--network", b.network, "busybox", "true")


def _send(host: str, port: int, mb: int, timeout: float = 10.0) -> float:
    """Seconds to send *mb* MiB to *host*:*port* and see the receiver close (its nc exits at EOF);
    retried while the receiver does not listen yet."""
    chunk = b"\0" * (1 << 20)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection((host, port), timeout=30)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        t0 = time.perf_counter()
        try:
            for _ in range(mb):
                s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            return time.perf_counter() - t0
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            s.close()


def _sent(netns_path: str, host: str, port: int, mb: int) -> float:
    """:func:`_send` from the network namespace at *netns_path*, once to warm up, then timed: MiB/s."""
    from runtime import netns
    netns.run_in(netns_path, _send, host, port, mb)
    return mb / netns.run_in(netns_path, _send, host, port, mb)


def c2c_mib_per_s(b: Bench, mb: int) -> float:
    """MiB/s from a sender container to a receiver container on the bench network, by address:
    the sender is a socket in the sender container's network namespace (the path is the
    containers': veth, bridge, veth), the receiver busybox ``nc -l > /dev/null``."""
    srv = b.client.containers.run("busybox", SERVER, detach=True, network=b.network)
    snd = b.client.containers.run("busybox", ["sleep", "1000"], detach=True, network=b.network)
    try:
        srv.reload()
        snd.reload()
        addr = next(iter(srv.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        return _sent(f"/proc/{snd.attrs['State']['Pid']}/ns/net", addr, 5001, mb)
    finally:
        for c in (srv, snd):
            c.remove(force=True)


def published_mib_per_s(b: Bench, mb: int) -> float:
    """MiB/s from the engine's namespace to 127.0.0.1:HOST_PORT (published to the receiver's 5001)."""
    srv = b.client.containers.run("busybox", SERVER, detach=True, network=b.network,
                                  ports={"5001/tcp": HOST_PORT})
    try:
        return _sent(b.engine.netns_path, "127.0.0.1", HOST_PORT, mb)
    finally:
        srv.remove(force=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="networking: capsize vs dockerd (same run, ratios)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--mb", type=int, default=256, help="MiB per throughput run")
    p.add_argument("--cli", default="/usr/bin/docker")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    from harness.engines import engine_class
    from harness.scenario.models import EngineOptions
    from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    workdir = tempfile.mkdtemp(prefix="nbench-", dir="/tmp")
    engines = [engine_class(n)(os.path.join(workdir, n[:3]), EngineOptions()) for n in ("capsize", "docker")]
    results: dict[str, dict[str, list[float]]] = {}
    benches: list[Bench] = []
    try:
        for e in engines:
            e.start()
            benches.append(Bench(e, a.cli))
        refused = {}
        for b in benches:
            try:
                b.client.networks.create("benchnet", driver="bridge")
            except Exception as e:  # noqa: BLE001 - the engine has no user-defined networks
                refused[b.name] = str(e).splitlines()[0][:160]
        net = "benchnet" if not refused else "bridge"
        for b in benches:
            b.network = net
        measures = {"run -d": m_run_d, "run --rm": m_run_rm,
                    "c2c MiB/s": lambda b: c2c_mib_per_s(b, a.mb),
                    "published MiB/s": lambda b: published_mib_per_s(b, a.mb)}
        for m, fn in measures.items():
            results[m] = {b.name: [] for b in benches}
            runs = a.runs if "MiB" not in m else max(3, a.runs // 3)
            for i in range(runs + 1):
                for b in benches:
                    if m in b.skipped:
                        continue
                    try:
                        v = fn(b)
                    except Exception as e:  # noqa: BLE001 - an engine that cannot: n/a with why
                        b.skipped[m] = str(e).splitlines()[0][:200]
                        continue
                    if i:   # the first round is a warm-up
                        results[m][b.name].append(v)
    finally:
        for b in benches:
            b.client.close()
        for e in engines:
            e.close()
        subprocess.run(["rm", "-rf", workdir])
    print(f"network: {net}" + (f" (user-defined networks refused: {refused})" if refused else ""))
    print(f"{'measurement':<16} {'capsize':>9} {'docker':>9} {'ratio':>7}   (median; seconds or MiB/s)")
    summary = {}
    for m, by in results.items():
        vals = {n: statistics.median(v) if v else None for n, v in by.items()}
        c, d = vals.get("capsize"), vals.get("docker")
        ratio = c / d if c and d else None
        summary[m] = {"capsize": c, "docker": d, "ratio": ratio}
        fmt = lambda x: f"{x:9.3f}" if x is not None else f"{'n/a':>9}"  # noqa: E731
        print(f"{m:<16} {fmt(c)} {fmt(d)} {ratio if ratio is None else round(ratio, 2)!s:>7}")
    for b in benches:
        for m, why in b.skipped.items():
            print(f"  {b.name} {m}: n/a: {why}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": a.runs, "mb": a.mb, "network": net, "summary": summary, "raw": results,
                       "skipped": {b.name: b.skipped for b in benches}}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
