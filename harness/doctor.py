"""``capsize doctor``: what this host has for the lab, and what each missing piece disables."""

from __future__ import annotations

import os

from runtime.runtimes import available, cgroup_layout, which


def _filesystems() -> set[str]:
    try:
        with open("/proc/filesystems") as f:
            return {line.split()[-1] for line in f if line.strip()}
    except OSError:
        return set()


def checks() -> list[tuple[str, bool, str, str]]:
    """``(what, present, detail, what its absence disables)`` for every requirement."""
    out = []
    root = os.geteuid() == 0
    out.append(("root", root, f"euid {os.geteuid()}", "everything: engines need namespaces, mounts and cgroups"))
    ns = [n for n in ("mnt", "pid", "net", "uts", "ipc", "cgroup") if os.path.exists(f"/proc/self/ns/{n}")]
    out.append(("namespaces", len(ns) == 6, ",".join(ns), "containers on every engine"))
    layout = cgroup_layout()
    out.append(("cgroups", layout != "none", layout + (" (crun runs through crun-hybrid)" if layout == "hybrid" else ""),
                "containers on every engine"))
    fs = _filesystems()
    out.append(("overlayfs", "overlay" in fs, "in /proc/filesystems" if "overlay" in fs else "missing",
                "image snapshots (docker's overlay2, capsize-runtimed's snapshots)"))
    for tool, disables in (("dockerd", "the docker engine"), ("containerd", "the docker engine"),
                           ("containerd-shim-runc-v2", "the docker engine"), ("ctr", "the docker engine's runtime events"),
                           ("runc", "the docker engine; runtime option runc"), ("crun", "runtime option crun"),
                           ("docker", "cli steps (the docker CLI)"), ("strace", "fault.syscall.delay"),
                           ("systemd-socket-activate", "socket-activation scenarios (seed experiment 2)"),
                           ("nsenter", "the docker engine (its network namespace)"), ("ip", "the docker engine")):
        path = which(tool)
        out.append((tool, bool(path), path or "not found", disables))
    out.append(("capsize-runc", available("capsize-runc"), "the venv's console script", "the capsize engine"))
    from harness.engines import NAMES, engine_class
    for name in NAMES:
        why = engine_class(name).unavailable(None)
        out.append((f"engine {name}", why is None, why or "available", f"scenarios on engine {name}"))
    systemd = os.path.isdir("/run/systemd/system")
    out.append(("systemd as PID 1", systemd, "yes" if systemd else "no",
                "engines docker-systemd, capsize-systemd; fault.service.*, service.state"))
    return out


def report() -> tuple[str, bool]:
    """The doctor's table and whether the essentials (root, namespaces, cgroups, overlayfs) are there."""
    from tabulate import tabulate
    found = checks()
    rows = [[what, "yes" if ok else "NO", detail, "" if ok else dis] for what, ok, detail, dis in found]
    essential = all(ok for what, ok, _, _ in found if what in ("root", "namespaces", "cgroups", "overlayfs"))
    return tabulate(rows, headers=["", "ok", "detail", "missing, it disables"], tablefmt="simple") + "\n", essential
