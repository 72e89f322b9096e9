"""Benchmark (#16): a 6-instruction Dockerfile built through the real docker CLI with the classic
builder (``DOCKER_BUILDKIT=0``), capsized vs a private dockerd+containerd in the same run
(:mod:`benchmarks.daemon_bench`'s engines, interleaved), median of *runs* (default 10) each:

* ``cold``: ``docker build --no-cache`` (every step made again: a RUN container through the
  tiers, its layer committed, COPY's layer, the config-only steps' images);
* ``cached``: ``docker build`` of the same context again (every step from the build cache).

FROM busybox, ENV, WORKDIR, COPY, RUN, CMD. Prints seconds per engine and the ratio
capsize/docker (target <= 1.0). Not a test.

    python -m benchmarks.build_bench [--runs 10] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

import os
import tempfile

from benchmarks.daemon_bench import Engine, main as bench_main

DOCKERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY data.txt ./
RUN cat data.txt > copy.txt && echo built >> copy.txt
CMD ["cat", "/app/copy.txt"]
"""


def _context(e: Engine) -> str:
    if "ctx" not in e.__dict__:
        e.env["DOCKER_BUILDKIT"] = "0"
        # under the bench's private directory (DOCKER_CONFIG's parent), removed with it
        e.ctx = tempfile.mkdtemp(prefix=f"buildbench-{e.name}-", dir=os.path.dirname(e.env["DOCKER_CONFIG"]))
        with open(os.path.join(e.ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)
        with open(os.path.join(e.ctx, "data.txt"), "w") as f:
            f.write("some data\n" * 100)
    return e.ctx


def m_cold(e: Engine) -> float:
    return e.timed("build", "-q", "--no-cache", "-t", "bench:cold", _context(e))[0]


def m_cached(e: Engine) -> float:
    return e.timed("build", "-q", "-t", "bench:cached", _context(e))[0]


MEASURES = {"build cold": m_cold, "build cached": m_cached}


if __name__ == "__main__":
    raise SystemExit(bench_main(measures=MEASURES, default_runs=10,
                                description="docker build (classic builder), cold and cached: capsized vs dockerd"))
