"""Benchmark (#15): exec and TTY runs through the real docker CLI, capsized vs a private
dockerd+containerd in the same run (:mod:`benchmarks.daemon_bench`'s engines, interleaved),
median of *runs* (default 20) each:

* ``docker exec C true`` in a running ``sleep`` container (made once per engine, untimed), with
  the engine's default low-level runtime (capsize-runc on capsize), and with ``--runtime runc``
  on both (what the low-level runtime costs, told apart from the tiers above it)
* ``docker run --rm -t busybox true`` (end to end: a pty made by the low-level runtime, its
  master held by the shim, the raw stream back to the CLI)

Prints seconds per engine and the ratio capsize/docker (target <= 1.0). Not a test.

    python -m benchmarks.tty_bench [--runs 20] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

from benchmarks.daemon_bench import Engine, main as bench_main


def _box(e: Engine, runtime: str | None = None) -> str:
    boxes = e.__dict__.setdefault("boxes", {})
    if runtime not in boxes:
        boxes[runtime] = e.cli("run", "-d", *(["--runtime", runtime] if runtime else []),
                               "busybox", "sleep", "100000")
    return boxes[runtime]


def m_exec_true(e: Engine) -> float:
    return e.timed("exec", _box(e), "true")[0]


def m_exec_true_runc(e: Engine) -> float:
    return e.timed("exec", _box(e, "runc"), "true")[0]


def m_run_rm_t(e: Engine) -> float:
    return e.timed("run", "--rm", "-t", "busybox", "true")[0]


MEASURES = {"exec true": m_exec_true, "exec (runc)": m_exec_true_runc, "run --rm -t": m_run_rm_t}


if __name__ == "__main__":
    raise SystemExit(bench_main(measures=MEASURES,
                                description="docker exec and docker run -t: capsized vs dockerd"))
