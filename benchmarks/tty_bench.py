"""Benchmark (#15): exec and TTY runs through the real docker CLI, capsized vs a private
dockerd+containerd in the same run (:mod:`benchmarks.daemon_bench`'s engines, interleaved),
median of *runs* (default 20) each:

* ``docker exec C true`` in a running ``sleep`` container (made once per engine, untimed)
* ``docker run --rm -t busybox true`` (end to end: a pty made by the low-level runtime, its
  master held by the shim, the raw stream back to the CLI)

Prints seconds per engine and the ratio capsize/docker (target <= 1.0). Not a test.

    python -m benchmarks.tty_bench [--runs 20] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

from benchmarks.daemon_bench import Engine, main as bench_main


def _box(e: Engine) -> str:
    cid = getattr(e, "box", None)
    if cid is None:
        cid = e.box = e.cli("run", "-d", "busybox", "sleep", "100000")
    return cid


def m_exec_true(e: Engine) -> float:
    return e.timed("exec", _box(e), "true")[0]


def m_run_rm_t(e: Engine) -> float:
    return e.timed("run", "--rm", "-t", "busybox", "true")[0]


MEASURES = {"exec true": m_exec_true, "run --rm -t": m_run_rm_t}


def _cleanup(e: Engine) -> None:
    if getattr(e, "box", None):
        e.cli("rm", "-f", e.box)


if __name__ == "__main__":
    raise SystemExit(bench_main(measures=MEASURES, cleanup=_cleanup,
                                description="docker exec and docker run -t: capsized vs dockerd"))
