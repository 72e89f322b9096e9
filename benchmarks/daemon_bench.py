"""Benchmark: the real docker CLI against capsized and against a private dockerd+containerd.

Same busybox image (``runtime.busybox.write_image_tar``, loaded into both), same commands, the
two engines interleaved so machine noise hits both alike; median of *runs* (default 20) each:

* ``docker run -d busybox sleep 1000`` (until the CLI returns; removed afterwards, untimed)
* ``docker run --rm busybox true`` (end to end)
* ``docker stop -t 0`` of a running ``sleep`` container
* ``kill -9`` of the container's init until the ``die`` line is read from ``docker events``

Prints seconds per engine and the ratio capsize/docker (target <= 1.0). Not a test.

    python -m benchmarks.daemon_bench [--runs 20] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from runtime.host import HOST, PR_SET_CHILD_SUBREAPER

DOCKER_BASELINE = {"run -d": 0.18, "run --rm": 0.22, "stop -t 0": 0.11, "kill->die": 0.04}


class Engine:
    def __init__(self, name: str, host: str, cli: str, workdir: str):
        self.name, self.host, self.cli_path = name, host, cli
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_HOST=host, DOCKER_CONFIG=os.path.join(workdir, f"cli-{name}"))
        os.makedirs(self.env["DOCKER_CONFIG"], exist_ok=True)

    def cli(self, *args: str) -> str:
        r = subprocess.run([self.cli_path, *args], env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout.strip()

    def timed(self, *args: str) -> tuple[float, str]:
        t0 = time.perf_counter()
        out = self.cli(*args)
        return time.perf_counter() - t0, out


def m_run_d(e: Engine) -> float:
    t, cid = e.timed("run", "-d", "busybox", "sleep", "1000")
    e.cli("rm", "-f", cid)
    return t


def m_run_rm(e: Engine) -> float:
    return e.timed("run", "--rm", "busybox", "true")[0]


def m_stop(e: Engine) -> float:
    cid = e.cli("run", "-d", "busybox", "sleep", "1000")
    t, _ = e.timed("stop", "-t", "0", cid)
    e.cli("rm", "-f", cid)
    return t


def m_kill_die(e: Engine) -> float:
    cid = e.cli("run", "-d", "busybox", "sleep", "1000")
    pid = int(e.cli("inspect", "-f", "{{.State.Pid}}", cid))
    ev = subprocess.Popen([e.cli_path, "events", "--filter", "event=die", "--filter", f"container={cid}",
                           "--format", "{{.Status}}"], env=e.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)   # the subscription is in place
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        line = ev.stdout.readline()
        t = time.perf_counter() - t0
        if "die" not in line:
            raise RuntimeError(f"{e.name}: no die event: {line!r}")
    finally:
        ev.kill()
        ev.wait()
    e.cli("rm", "-f", cid)
    return t


MEASURES = {"run -d": m_run_d, "run --rm": m_run_rm, "stop -t 0": m_stop, "kill->die": m_kill_die}


def bench(engines: list[Engine], runs: int, measures: dict | None = None) -> dict:
    """{measure: {engine name: [seconds, ...]}}: each of *measures* (default :data:`MEASURES`)
    warmed up once, then *runs* times, the engines interleaved."""
    measures = MEASURES if measures is None else measures
    results = {m: {e.name: [] for e in engines} for m in measures}
    for m, fn in measures.items():
        for e in engines:
            fn(e)   # warm-up
        for _ in range(runs):
            for e in engines:
                results[m][e.name].append(fn(e))
    return results


def main(argv=None, measures: dict | None = None, description: str = "capsized vs dockerd through the real docker CLI",
         default_runs: int = 20) -> int:
    """The command line (``--runs``, ``--cli``, ``--json``): both engines started in a private
    directory, :func:`bench` of *measures*, the engines stopped (with every container they ran),
    and the medians and ratios printed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=default_runs)
    p.add_argument("--cli", default="/usr/bin/docker")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    from harness.reference.docker import DockerStack
    from runtime import busybox
    from tests.daemon.stack import Stack
    workdir = tempfile.mkdtemp(prefix="dmbench-", dir="/tmp")
    cap = Stack(os.path.join(workdir, "cap"))
    ref = DockerStack(os.path.join(workdir, "ref"), network="none")
    try:
        cap.start()
        cap.load_busybox()
        ref.start()
        ref.import_busybox("busybox:latest")
        engines = [Engine("capsize", cap.host, a.cli, workdir), Engine("docker", ref.host, a.cli, workdir)]
        results = bench(engines, a.runs, measures)
    finally:
        cap.close()
        ref.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'measurement':<12} {'capsize':>9} {'docker':>9} {'ratio':>7}   (median of {a.runs}, seconds)")
    summary = {}
    for m, by in results.items():
        c, d = statistics.median(by["capsize"]), statistics.median(by["docker"])
        summary[m] = {"capsize": c, "docker": d, "ratio": c / d}
        print(f"{m:<12} {c:9.3f} {d:9.3f} {c / d:7.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": a.runs, "summary": summary, "raw": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
