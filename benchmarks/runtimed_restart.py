"""Benchmark: daemon start to all tasks adopted, capsize-runtimed vs containerd, 50 running containers.

For each engine, in the same run: start the daemon, import the lab's busybox image, run N
containers (``sleep 1000`` through runc), then *runs* rounds, each restarting one engine after the
other (so that both see the same machine load): SIGKILL the daemon (shims and containers live
on), start it again and time from the exec to the moment its API lists all N tasks
``running``:

* capsize-runtimed: the test harness's way — ``capsize-runtimed`` exec'ed, then
  ``GET /v1/namespaces/bench/tasks`` polled in-process (runtime.highlevel.client) every 5 ms;
  also reported: the daemon's own boot time (its "successfully booted" log line's
  ``since_exec``, exec to serving) and its task-load time;
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


class CapsizeEngine:
    """capsize-runtimed with N tasks; :meth:`restart` SIGKILLs it, starts it and times the adoption."""

    name = "capsize-runtimed"

    def __init__(self, n: int, runtime: str):
        from runtime.highlevel.client import RuntimeClient
        self.n, self.runtime = n, runtime
        self.work = tempfile.mkdtemp(prefix="rtbench-", dir="/tmp")
        self.state = f"/run/capsize/rtb-{uuid.uuid4().hex[:8]}"
        self.log = os.path.join(self.work, "runtimed.log")
        self.parent = f"/capsize/rtbench-{os.getpid()}"
        self.argv = [RUNTIMED, "--root", os.path.join(self.work, "root"), "--state", self.state,
                     "--log-file", self.log, "--cgroup-parent", self.parent]
        self.rt = RuntimeClient(os.path.join(self.state, "runtimed.sock"), "bench", timeout=60)
        self.proc = None
        self.result = {"engine": self.name, "containers": n, "runtime": runtime, "restart_to_all_running_s": [],
                       "booted_s": [], "load_s": []}

    def _start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def _all_running(self) -> bool:
        from runtime.errors import CapsizeError
        try:
            tasks = self.rt.tasks()
        except CapsizeError:
            return False
        return len(tasks) == self.n and all(t["status"] == "running" for t in tasks)

    def setup(self) -> None:
        from runtime.errors import CapsizeError
        self._start()
        while True:
            try:
                self.rt.version()
                break
            except CapsizeError:
                time.sleep(0.01)
        image = os.path.join(self.work, "busybox.tar")
        busybox.write_image_tar(image)
        self.rt.import_image(image)
        t0 = time.monotonic()
        for i in range(self.n):
            self.rt.create_container(f"b{i}", "busybox", runtime=self.runtime, args=["sleep", "1000"])
            self.rt.create_task(f"b{i}")
            self.rt.start_task(f"b{i}")
        self.result["setup_per_container_s"] = round((time.monotonic() - t0) / max(self.n, 1), 4)

    def restart(self) -> float:
        self.proc.kill()
        self.proc.wait()
        time.sleep(0.3)
        t0 = time.monotonic()
        self._start()
        while not self._all_running():
            if time.monotonic() - t0 > 60:
                raise RuntimeError("capsize-runtimed did not list all tasks running within 60 s")
            time.sleep(0.005)
        took = round(time.monotonic() - t0, 4)
        self.result["restart_to_all_running_s"].append(took)
        self.result["booted_s"].append(_log_field(self.log, "capsize-runtimed successfully booted", "since_exec"))
        self.result["load_s"].append(_log_field(self.log, "tasks loaded", "seconds"))
        return took

    def close(self) -> None:
        from runtime.errors import CapsizeError
        try:
            for t in self.rt.tasks():
                self.rt.delete_task(t["id"], force=True)
            for c in self.rt.containers():
                self.rt.delete_container(c["id"])
            for img in self.rt.images():
                self.rt.delete_image(img["name"])
        except CapsizeError as e:
            print(f"capsize cleanup: {e}", file=sys.stderr)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        time.sleep(1.5)  # the shim template leaves 1 s after its last shim
        reap()
        for ctrl in os.listdir("/sys/fs/cgroup"):
            try:
                os.rmdir(f"/sys/fs/cgroup/{ctrl}{self.parent}")
            except OSError:
                pass
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


class ContainerdEngine:
    """Debian's containerd with N tasks (``ctr run -d``), restarted and timed the baseline's way."""

    name = "containerd"

    def __init__(self, n: int):
        from harness.reference.containerd import ContainerdStack
        self.n = n
        self.work = tempfile.mkdtemp(prefix="ctdrb-", dir="/tmp")
        self.stack = ContainerdStack(os.path.join(self.work, "ctd"))
        self.result = {"engine": self.name, "containers": n, "runtime": "runc", "restart_to_all_running_s": [],
                       "booted_s": [], "ctr_call_s": None}

    def setup(self) -> None:
        stack = self.stack
        stack.start()
        image = stack.import_busybox(namespace="bench")
        t0 = time.monotonic()
        for i in range(self.n):
            cid = f"rb{i}-{os.getpid()}"
            stack.ctr("run", "-d", "--null-io", "--runc-root", stack.runc_root, image, cid, "sleep", "1000",
                      namespace="bench", check=True)
            stack.remember("bench", cid)
        self.result["setup_per_container_s"] = round((time.monotonic() - t0) / max(self.n, 1), 4)
        calls = []
        for _ in range(5):
            t = time.monotonic()
            stack.ctr("version", check=True)
            calls.append(time.monotonic() - t)
        self.result["ctr_call_s"] = round(statistics.median(calls), 4)

    def restart(self) -> float:
        stack = self.stack
        stack.kill()
        time.sleep(0.3)
        t0 = time.monotonic()
        stack.start(timeout=60)
        while True:
            tasks = stack.tasks("bench")
            if len(tasks) == self.n and all(status == "RUNNING" for _, status in tasks.values()):
                break
            if time.monotonic() - t0 > 60:
                raise RuntimeError("containerd did not list all tasks running within 60 s")
        took = round(time.monotonic() - t0, 4)
        self.result["restart_to_all_running_s"].append(took)
        booted = None
        with open(stack.log_path) as f:
            for line in f:
                if "successfully booted in" in line:
                    booted = line.split("successfully booted in", 1)[1].split()[0].strip('"').rstrip("s")
        self.result["booted_s"].append(booted)
        return took

    def close(self) -> None:
        self.stack.close()
        shutil.rmtree(self.work, ignore_errors=True)


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
    engines = [CapsizeEngine(args.containers, args.runtime)]
    if not args.no_containerd:
        engines.append(ContainerdEngine(args.containers))
    try:
        for e in engines:
            e.setup()
        for _ in range(args.runs):  # interleaved, so that both see the same machine load
            for e in engines:
                e.restart()
    finally:
        for e in engines:
            try:
                e.close()
            except Exception as exc:  # noqa: BLE001 - close the others anyway
                print(f"{e.name} cleanup: {exc}", file=sys.stderr)
    results = [e.result for e in engines]
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
