"""Benchmark: daemon start to all tasks adopted, capsize-runtimed vs containerd, 50 running containers.

For each engine, in the same run: start the daemon, import the lab's busybox image, run N
containers (``sleep 1000`` through runc), then *runs* times: SIGKILL the daemon (shims and
containers live on), start it again and time from the exec to the moment its API lists all N
tasks ``running``:

* capsize-runtimed: the test harness's way — ``capsize-runtimed`` exec'ed, then
  ``GET /v1/namespaces/bench/tasks`` polled in-process (runtime.highlevel.client) every 5 ms;
  also reported: the daemon's own "successfully booted" seconds and its load time;
* containerd (Debian's 1.6, harness.reference.containerd.ContainerdStack): the baseline's way —
  started, then ``ctr -n bench tasks ls`` polled until all N are RUNNING. Each ``ctr`` is a
  process of its own (about 40 ms), so the cost of one ``ctr version`` against a running
  containerd is reported as well, to read the figures side by side.

    python -m benchmarks.runtimed_restart [--containers 50] [--runs 3] [--runtime runc]
                                          [--no-containerd] [--json FILE]

Target (the issue): no slower than containerd (measured earlier at about 0.2 s for 50).
Not a test: the figures depend on the machine and its load. Everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from runtime import busybox

RUNTIMED = os.path.join(os.path.dirname(sys.executable), "capsize-runtimed")


def reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _log_field(path: str, msg: str, key: str):
    value = None
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg:
                value = entry.get(key)
    return value


def run_capsize(n: int, runs: int, runtime: str) -> dict:
    from runtime.errors import CapsizeError
    from runtime.highlevel.client import RuntimeClient
    work = tempfile.mkdtemp(prefix="rtbench-", dir="/tmp")
    state = f"/run/capsize/rtb-{uuid.uuid4().hex[:8]}"
    log = os.path.join(work, "runtimed.log")
    parent = f"/capsize/rtbench-{os.getpid()}"
    argv = [RUNTIMED, "--root", os.path.join(work, "root"), "--state", state, "--log-file", log,
            "--cgroup-parent", parent]
    rt = RuntimeClient(os.path.join(state, "runtimed.sock"), "bench", timeout=60)
    proc = None

    def start() -> subprocess.Popen:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_all_running(t0: float) -> float:
        while True:
            try:
                tasks = rt.tasks()
                if len(tasks) == n and all(t["status"] == "running" for t in tasks):
                    return time.monotonic() - t0
            except CapsizeError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("capsize-runtimed did not list all tasks running within 60 s")
            time.sleep(0.005)

    result = {"engine": "capsize-runtimed", "containers": n, "runtime": runtime, "restart_to_all_running_s": [],
              "booted_s": [], "load_s": []}
    try:
        proc = start()
        wait_all_running(time.monotonic()) if n == 0 else None
        while True:
            try:
                rt.version()
                break
            except CapsizeError:
                time.sleep(0.01)
        image = os.path.join(work, "busybox.tar")
        busybox.write_image_tar(image)
        rt.import_image(image)
        t0 = time.monotonic()
        for i in range(n):
            rt.create_container(f"b{i}", "busybox", runtime=runtime, args=["sleep", "1000"])
            rt.create_task(f"b{i}")
            rt.start_task(f"b{i}")
        result["setup_per_container_s"] = round((time.monotonic() - t0) / max(n, 1), 4)
        for _ in range(runs):
            proc.kill()
            proc.wait()
            time.sleep(0.3)
            t0 = time.monotonic()
            proc = start()
            result["restart_to_all_running_s"].append(round(wait_all_running(t0), 4))
            result["booted_s"].append(_log_field(log, "capsize-runtimed successfully booted", "seconds"))
            result["load_s"].append(_log_field(log, "tasks loaded", "seconds"))
        return result
    finally:
        try:
            for t in rt.tasks():
                rt.delete_task(t["id"], force=True)
            for c in rt.containers():
                rt.delete_container(c["id"])
            for img in rt.images():
                rt.delete_image(img["name"])
        except CapsizeError as e:
            print(f"capsize cleanup: {e}", file=sys.stderr)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        time.sleep(1.5)  # the shim template leaves 1 s after its last shim
        reap()
        for ctrl in os.listdir("/sys/fs/cgroup"):
            try:
                os.rmdir(f"/sys/fs/cgroup/{ctrl}{parent}")
            except OSError:
                pass
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def run_containerd(n: int, runs: int) -> dict:
    from harness.reference.containerd import ContainerdStack
    work = tempfile.mkdtemp(prefix="ctdrb-", dir="/tmp")
    stack = ContainerdStack(os.path.join(work, "ctd"))
    result = {"engine": "containerd", "containers": n, "runtime": "runc", "restart_to_all_running_s": [],
              "booted_s": [], "ctr_call_s": None}
    try:
        stack.start()
        image = stack.import_busybox(namespace="bench")
        t0 = time.monotonic()
        for i in range(n):
            cid = f"rb{i}-{os.getpid()}"
            stack.ctr("run", "-d", "--null-io", "--runc-root", stack.runc_root, image, cid, "sleep", "1000",
                      namespace="bench", check=True)
            stack.remember("bench", cid)
        result["setup_per_container_s"] = round((time.monotonic() - t0) / max(n, 1), 4)
        calls = []
        for _ in range(5):
            t = time.monotonic()
            stack.ctr("version", check=True)
            calls.append(time.monotonic() - t)
        result["ctr_call_s"] = round(statistics.median(calls), 4)
        for _ in range(runs):
            stack.kill()
            time.sleep(0.3)
            t0 = time.monotonic()
            stack.start(timeout=60)
            while True:
                tasks = stack.tasks("bench")
                if len(tasks) == n and all(status == "RUNNING" for _, status in tasks.values()):
                    break
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("containerd did not list all tasks running within 60 s")
            result["restart_to_all_running_s"].append(round(time.monotonic() - t0, 4))
            booted = None
            with open(stack.log_path) as f:
                for line in f:
                    if "successfully booted in" in line:
                        booted = line.split("successfully booted in", 1)[1].split()[0].strip('"')
            result["booted_s"].append(booted)
        return result
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--containers", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--runtime", default="runc", help="low-level runtime for capsize (runc, capsize-runc, crun)")
    p.add_argument("--no-containerd", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)  # shims and orphans come back to us, and are reaped
    results = [run_capsize(args.containers, args.runs, args.runtime)]
    if not args.no_containerd:
        results.append(run_containerd(args.containers, args.runs))
    rows = []
    for r in results:
        times = r["restart_to_all_running_s"]
        rows.append([r["engine"], r["containers"], r["runtime"], " ".join(f"{t:.3f}" for t in times),
                     f"{statistics.median(times):.3f}", " ".join(str(b) for b in r["booted_s"]),
                     r.get("ctr_call_s") or "-", r["setup_per_container_s"]])
    try:
        from tabulate import tabulate
        print(tabulate(rows, headers=["engine", "n", "runtime", "restart -> all running (s)", "median",
                                      "daemon's own boot (s)", "one ctr call (s)", "setup/container (s)"]))
    except ImportError:
        for row in rows:
            print(*row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
