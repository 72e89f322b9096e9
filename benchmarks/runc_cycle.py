"""Benchmark: one container's whole life through a low-level runtime, capsize-runc vs runc vs crun.

A cycle is ``create --pid-file`` + ``start`` + waiting for the init (a busybox ``true``) to exit +
``delete``, timed with a monotonic clock, for each runtime in the same run, interleaved so
that machine noise hits all of them alike. Prints the median and p90 per runtime (seconds) and
the ratio of medians to runc. The benchmark process is a child subreaper, as a shim is, so it
reaps each init itself.

    python -m benchmarks.runc_cycle [--runs 20] [--runtimes capsize-runc,runc,crun]

Issue target: capsize-runc within 1.5x of runc (runc measured about 0.065 s here, crun 0.04 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from runtime import busybox
from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
from runtime.lowlevel.spec import default_spec


def _runtime_path(name: str) -> str | None:
    try:
        from runtime.runtimes import available, runtime_path
        return runtime_path(name) if available(name) else None
    except ImportError:
        if name == "capsize-runc":
            return os.path.join(os.path.dirname(sys.executable), "capsize-runc")
        return shutil.which(name)


def cycle(binary: str, root: str, bundle: str, cid: str) -> float:
    """One create+start+wait+delete; seconds. Raises CalledProcessError on a runtime failure."""
    pid_file = os.path.join(root, f"{cid}.pid")
    t0 = time.monotonic()
    subprocess.run([binary, "--root", root, "create", "--bundle", bundle, "--pid-file", pid_file, cid],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with open(pid_file) as f:
        pid = int(f.read())
    subprocess.run([binary, "--root", root, "start", cid], check=True)
    os.waitpid(pid, 0)
    subprocess.run([binary, "--root", root, "delete", cid], check=True)
    elapsed = time.monotonic() - t0
    os.unlink(pid_file)
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--runtimes", default="capsize-runc,runc,crun")
    args = ap.parse_args(argv)
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    work = tempfile.mkdtemp(prefix="capsize-bench-")
    try:
        bundle = os.path.join(work, "bundle")
        busybox.write_rootfs(os.path.join(bundle, "rootfs"))
        config = default_spec()
        config["process"]["args"] = ["true"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        runtimes = {}
        for name in args.runtimes.split(","):
            path = _runtime_path(name)
            if path:
                runtimes[name] = path
            else:
                print(f"skipping {name}: not installed", file=sys.stderr)
        times = {name: [] for name in runtimes}
        for name, path in runtimes.items():  # warm-up: page cache, pyc files
            cycle(path, os.path.join(work, f"root-{name}"), bundle, f"warm-{name}")
        for i in range(args.runs):
            for name, path in runtimes.items():
                times[name].append(cycle(path, os.path.join(work, f"root-{name}"), bundle, f"b{i}"))
        base = statistics.median(times["runc"]) if "runc" in times else None
        rows = []
        for name, ts in times.items():
            med = statistics.median(ts)
            p90 = sorted(ts)[int(0.9 * (len(ts) - 1))]
            rows.append([name, len(ts), f"{med:.4f}", f"{p90:.4f}", f"{med / base:.2f}" if base else "-"])
        from tabulate import tabulate
        print(f"create+start+wait+delete of a busybox `true` bundle, {args.runs} runs each (seconds)")
        print(tabulate(rows, headers=["runtime", "runs", "median", "p90", "ratio to runc"]))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
