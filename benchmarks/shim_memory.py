"""Benchmark: the memory and start time of 50 shims, capsize-shim vs containerd-shim-runc-v2.

For capsize-shim, N tasks are started the way capsize-runtimed starts them: ``capsize-shim
start`` (timed: spawn to ready, i.e. until it prints the address), then ``create`` + ``start``
over the shim's API (timed), each container a busybox ``sleep 1000`` through runc. This is done
with each spawn mode: ``template`` (shims forked from the shim template, the default) and
``exec`` (a fresh interpreter per shim). For containerd-shim-runc-v2, a private containerd
(harness.reference.containerd.ContainerdStack) runs N ``ctr run -d`` containers in the same run
(timed per container: that includes the shim's start and runc's create and start).

Then, with all N running, every shim's ``VmRSS`` (/proc/PID/status) and ``Pss``
(/proc/PID/smaps_rollup) are read; the template's own figures are added to capsize's total (it
is the price of the sharing). Prints a table; ``--json FILE`` writes the figures.

    python -m benchmarks.shim_memory [--containers 50] [--modes template,exec] [--no-containerd]

Issue target: capsize-shim no more than containerd-shim-runc-v2 in RSS per shim and in PSS
summed over 50 (measured earlier: about 13 MB RSS each, about 130 MB PSS for all 50).
Not a test: figures depend on the machine and its load.
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

SHIM = os.path.join(os.path.dirname(sys.executable), "capsize-shim")


def memory(pid: int) -> dict:
    """``{"rss_kb", "pss_kb", "private_dirty_kb"}`` of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Dirty"):
                out[{"Pss": "pss_kb", "Private_Dirty": "private_dirty_kb"}[key]] = int(rest.split()[0])
    return out


def _summary(rows: list[dict], times: dict[str, list[float]]) -> dict:
    rss = [r["rss_kb"] for r in rows]
    pss = [r["pss_kb"] for r in rows]
    return {"shims": len(rows), "rss_kb_median": statistics.median(rss), "rss_kb_max": max(rss),
            "rss_kb_sum": sum(rss), "pss_kb_sum": sum(pss), "pss_kb_median": statistics.median(pss),
            "private_dirty_kb_median": statistics.median(r["private_dirty_kb"] for r in rows),
            **{f"{k}_s_median": round(statistics.median(v), 4) for k, v in times.items() if v}}


def reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def run_capsize(n: int, mode: str, runtime: str) -> dict:
    """Start *n* capsize shims and containers, measure, clean up; returns the figures."""
    from runtime.shim.client import ShimClient
    work = tempfile.mkdtemp(prefix="shimbench-", dir="/tmp")
    rootfs = busybox.write_rootfs(os.path.join(work, "image"))
    address = os.path.join(work, "runtimed.sock")  # nobody listens: events queue, as in experiment 4
    clients, times = [], {"spawn_to_ready": [], "create_start": []}
    template_pid = None
    try:
        for i in range(n):
            cid = f"shimbench{mode[0]}{i}"
            bundle = os.path.join(work, "state", "runtimed", "tasks", "bench", cid)
            os.makedirs(bundle)
            cfg = default_spec()
            cfg["process"]["args"] = ["sleep", "1000"]
            cfg["root"]["path"] = rootfs
            cfg["linux"]["cgroupsPath"] = f"/capsize-{cid}"
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(cfg, f)
            t0 = time.monotonic()
            p = subprocess.run([SHIM, "start", "--id", cid, "--namespace", "bench", "--bundle", bundle,
                                "--address", address, "--runtime", runtime, "--spawn", mode],
                               capture_output=True, text=True, check=True)
            times["spawn_to_ready"].append(time.monotonic() - t0)
            client = ShimClient.connect(p.stdout.strip(), timeout=30)
            t0 = time.monotonic()
            client.call("create")
            client.call("start")
            times["create_start"].append(time.monotonic() - t0)
            with open(os.path.join(bundle, "shim.pid")) as f:
                clients.append((client, int(f.read())))
        time.sleep(1.0)
        rows = [memory(pid) for _, pid in clients]
        result = _summary(rows, times)
        if mode == "template":
            from runtime.shim.template import socket_path
            tpath = socket_path("/run/capsize/s", address)
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            if f.read().startswith(b"capsize-shim template"):
                                if os.readlink(f"/proc/{pid}/cwd") == "/" and os.path.exists(tpath):
                                    template_pid = int(pid)
                    except OSError:
                        continue
            if template_pid:
                t = memory(template_pid)
                result["template"] = t
                result["pss_kb_sum_with_template"] = result["pss_kb_sum"] + t["pss_kb"]
        return result
    finally:
        for client, _ in clients:
            try:
                client.call("kill", signal=9)
                client.call("wait")
                client.call("delete")
                client.call("shutdown")
            except Exception as e:  # noqa: BLE001 - clean up the rest anyway
                print(f"cleanup: {e}", file=sys.stderr)
            client.close()
        time.sleep(0.5)
        reap()
        shutil.rmtree(work, ignore_errors=True)


def run_containerd(n: int) -> dict:
    """Run *n* containers under a private containerd; measure its shims; returns the figures."""
    from harness.reference.containerd import ContainerdStack
    work = tempfile.mkdtemp(prefix="ctdbench-", dir="/tmp")
    stack = ContainerdStack(os.path.join(work, "ctd"))
    times = {"ctr_run": []}
    try:
        stack.start()
        image = stack.import_busybox(namespace="bench")
        for i in range(n):
            cid = f"ctdbench{i}-{os.getpid()}"
            t0 = time.monotonic()
            stack.ctr("run", "-d", "--null-io", "--runc-root", stack.runc_root, image, cid, "sleep", "1000",
                      namespace="bench", check=True)
            times["ctr_run"].append(time.monotonic() - t0)
            stack.remember("bench", cid)
        time.sleep(1.0)
        rows = [memory(p.pid) for p in stack.shims()]
        return _summary(rows, times)
    finally:
        stack.close()
        reap()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--modes", default="template,exec", help="capsize-shim spawn modes to measure")
    ap.add_argument("--runtime", default="runc", help="low-level runtime for capsize-shim")
    ap.add_argument("--no-containerd", action="store_true")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)
    runtime = shutil.which(args.runtime) or shutil.which(args.runtime, path="/usr/sbin:/usr/bin") or args.runtime
    results = {}
    for mode in filter(None, args.modes.split(",")):
        results[f"capsize-shim ({mode})"] = run_capsize(args.containers, mode, runtime)
    if not args.no_containerd:
        results["containerd-shim-runc-v2"] = run_containerd(args.containers)
    from tabulate import tabulate
    keys = ["shims", "rss_kb_median", "rss_kb_max", "pss_kb_median", "pss_kb_sum", "pss_kb_sum_with_template",
            "private_dirty_kb_median", "spawn_to_ready_s_median", "create_start_s_median", "ctr_run_s_median"]
    print(tabulate([[k] + [r.get(k, "") for r in results.values()] for k in keys],
                   headers=["N = %d" % args.containers] + list(results), tablefmt="github"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
