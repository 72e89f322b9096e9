"""``capsize demo``: one busybox container through a low-level runtime, shown isolated.

Makes a bundle from the lab's busybox image in a temporary directory, runs it in the foreground
with ``<runtime> --root <tmp> run`` and prints what the container sees next to what the host
sees: its PID, hostname, network interfaces, mounts and cgroup. The temporary directory, the
runtime's state and the container's cgroup are gone when it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from runtime import busybox
from runtime.errors import NotFound
from runtime.lowlevel.spec import default_spec

PROBE = r"""
echo "pid=$$"
echo "hostname=$(hostname)"
echo "interfaces=$(ls /sys/class/net | tr '\n' ' ')"
echo "mounts=$(wc -l < /proc/self/mounts)"
echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
echo "cgroup=$(grep -m1 memory /proc/self/cgroup | cut -d: -f3)"
echo "uid=$(id -u)"
"""


def _runtime_argv(name: str) -> list[str]:
    from runtime.runtimes import available, runtime_path
    if not available(name):
        raise NotFound(f"runtime {name} is not installed")
    return [runtime_path(name)]


def _host_view() -> dict:
    def sh(cmd):
        return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.strip()
    return {
        "pid": str(os.getpid()),
        "hostname": os.uname().nodename,
        "interfaces": " ".join(sorted(os.listdir("/sys/class/net"))),
        "mounts": sh("wc -l < /proc/self/mounts"),
        "processes": sh("ls -d /proc/[0-9]* | wc -l"),
        "cgroup": sh("grep -m1 memory /proc/self/cgroup | cut -d: -f3") or "/",
        "uid": str(os.getuid()),
    }


def demo(runtime: str = "capsize-runc") -> int:
    argv = _runtime_argv(runtime)
    work = tempfile.mkdtemp(prefix="capsize-demo-")
    try:
        bundle = os.path.join(work, "bundle")
        busybox.write_rootfs(os.path.join(bundle, "rootfs"))
        config = default_spec()
        config["process"]["args"] = ["sh", "-c", PROBE]
        config["hostname"] = "capsize-demo"
        config["linux"]["resources"].update({"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 64}})
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        cid = f"demo-{os.getpid()}"
        print(f"$ {os.path.basename(argv[0])} --root {work}/state run --bundle {bundle} {cid}")
        proc = subprocess.run(argv + ["--root", os.path.join(work, "state"), "run", "--bundle", bundle, cid],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        inside = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        host = _host_view()
        rows = [(k, host.get(k, ""), inside.get(k, "")) for k in ("pid", "hostname", "interfaces", "mounts",
                                                                  "processes", "cgroup", "uid")]
        from tabulate import tabulate
        print(tabulate(rows, headers=["", "host", "container"], tablefmt="simple"))
        isolated = (inside.get("pid") == "1" and inside.get("hostname") == "capsize-demo"
                    and inside.get("interfaces", "").split() == ["lo"])
        print("\nthe container is PID 1 of its own pid namespace, has its own hostname and only lo:",
              "yes" if isolated else "NO")
        return 0 if isolated else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
