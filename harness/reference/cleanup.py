"""Finding and removing what a reference stack leaves on the host: mounts, cgroups, processes.

Shared by :mod:`harness.reference.containerd` and :mod:`harness.reference.docker`. Everything
here acts on the real host (through :data:`runtime.host.HOST` for the privileged calls) and is
idempotent: removing what is already gone is not an error. Functions that remove things return
a list of one-line problems (empty when everything went), so a ``close()`` can go on with the
rest and report once.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from runtime import mountinfo as _mountinfo
from runtime.host import HOST, MNT_DETACH

CGROUP_ROOT = "/sys/fs/cgroup"


def mountinfo() -> list[tuple[str, str]]:
    """``[(mount point, fstype)]`` of this mount namespace, in mount order (:mod:`runtime.mountinfo`)."""
    return [(m.mount_point, m.fstype) for m in _mountinfo.read()]


def mounts_under(path: str) -> list[str]:
    """Mount points at or below *path*, deepest (latest) first; a point mounted twice is listed twice."""
    path = os.path.realpath(path)
    found = [p for p, _ in mountinfo() if p == path or p.startswith(path.rstrip("/") + "/")]
    return list(reversed(found))


def unmount_under(path: str) -> list[str]:
    """Unmount everything at or below *path* (deepest first; lazily if busy). Returns problems."""
    problems = []
    for _ in range(4):  # stacked mounts need several passes
        points = mounts_under(path)
        if not points:
            return []
        for point in points:
            try:
                HOST.umount(point)
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOENT):
                    continue  # already gone (unmounted with its parent)
                try:
                    HOST.umount(point, MNT_DETACH)
                except OSError as e2:
                    if e2.errno not in (errno.EINVAL, errno.ENOENT):
                        problems.append(f"cannot unmount {point}: {e2.strerror}")
    left = mounts_under(path)
    return problems or [f"still mounted: {p}" for p in left]


# -- cgroups ------------------------------------------------------------------------------------

def cgroup_hierarchies() -> list[str]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy below /sys/fs/cgroup."""
    return [p for p, t in mountinfo() if t in ("cgroup", "cgroup2")
            and (p == CGROUP_ROOT or p.startswith(CGROUP_ROOT + "/"))]


def cgroup_dirs(relpath: str) -> list[str]:
    """Existing directories for the cgroup *relpath* (e.g. ``/docker/<id>``) in every hierarchy."""
    rel = relpath.strip("/")
    if not rel or ".." in rel.split("/"):
        return []
    return [d for d in (os.path.join(h, rel) for h in cgroup_hierarchies()) if os.path.isdir(d)]


def top_cgroups() -> set[str]:
    """Names of the first-level cgroups in every hierarchy (to tell later which were created)."""
    names = set()
    for h in cgroup_hierarchies():
        try:
            names.update(e.name for e in os.scandir(h) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return names


def _procs(cgroup_dir: str) -> list[int]:
    pids = []
    for dirpath, _, files in os.walk(cgroup_dir):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids.extend(int(x) for x in f.read().split())
            except OSError:
                continue
    return pids


def cgroup_pids(*relpaths: str) -> list[int]:
    """Sorted pids in the cgroups at *relpaths* (e.g. ``/docker/<id>``), sub-cgroups included,
    across every hierarchy."""
    return sorted({pid for rel in relpaths for d in cgroup_dirs(rel) for pid in _procs(d)})


def _thaw(cgroup_dir: str) -> None:
    state = os.path.join(cgroup_dir, "freezer.state")
    try:
        with open(state) as f:
            frozen = f.read().strip() != "THAWED"
        if frozen:
            HOST.write(state, "THAWED")
    except OSError:
        pass
    try:  # cgroup v2 freezer
        HOST.write(os.path.join(cgroup_dir, "cgroup.freeze"), "0")
    except OSError:
        pass


def kill_cgroup(relpath: str, timeout: float = 5.0) -> list[str]:
    """SIGKILL every process in cgroup *relpath* (all hierarchies), wait, and rmdir it bottom-up.

    A frozen cgroup is thawed first (a frozen process cannot die). Processes that are this
    process's children are reaped. Returns problems (processes that would not die, busy dirs).
    """
    dirs = cgroup_dirs(relpath)
    deadline = time.monotonic() + timeout
    while True:
        pids = sorted({p for d in dirs for p in _procs(d)})
        if not pids:
            break
        for d in dirs:
            _thaw(d)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            reap(pid)
        if time.monotonic() > deadline:
            return [f"cgroup {relpath}: processes {pids} would not die"]
        time.sleep(0.02)
    return remove_cgroup_dirs(dirs, timeout=max(0.5, deadline - time.monotonic()))


def remove_cgroup_dirs(dirs: list[str], timeout: float = 2.0) -> list[str]:
    """rmdir each cgroup dir in *dirs* with its sub-cgroups (bottom-up); retry while EBUSY."""
    problems = []
    for d in dirs:
        subdirs = [dp for dp, _, _ in os.walk(d)]
        for sub in sorted(subdirs, key=len, reverse=True):
            end = time.monotonic() + timeout
            while True:
                try:
                    os.rmdir(sub)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > end:
                        problems.append(f"cannot remove cgroup {sub}: {e.strerror}")
                        break
                    time.sleep(0.02)
    return problems


def remove_empty_cgroup_parent(name: str) -> None:
    """rmdir the first-level cgroup *name* in every hierarchy where it is empty; busy ones stay."""
    for d in cgroup_dirs(name):
        try:
            os.rmdir(d)
        except OSError:
            pass


# -- processes ------------------------------------------------------------------------------------

def reap(pid: int) -> None:
    """waitpid(*pid*, WNOHANG) if it is this process's child (a subreaper adopts orphans)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid: int) -> bool:
    """True when *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def find_processes(predicate) -> list:
    """Live (non-zombie) psutil processes for which ``predicate(cmdline: list[str], proc)`` holds."""
    import psutil
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if predicate(p.info["cmdline"] or [], p):
                found.append(p)
        except psutil.Error:
            continue
    return found


def kill_processes(procs, timeout: float = 5.0) -> list[str]:
    """SIGKILL each psutil process in *procs*, wait for them to go and reap our children."""
    import psutil
    procs = list(procs)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            reap(p.pid)
        left = [p.pid for p in procs if alive(p.pid)]
        if not left:
            return []
        if time.monotonic() > deadline:
            return [f"processes {left} would not die"]
        time.sleep(0.02)


def net_namespace_inode(pid: int | str = "self") -> int | None:
    """Inode of the network namespace of *pid* (``/proc/<pid>/ns/net``), or None if gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def processes_in_netns(inode: int) -> list[int]:
    """PIDs of live processes whose network namespace has inode *inode*."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and net_namespace_inode(entry) == inode and alive(int(entry)):
            pids.append(int(entry))
    return pids


def new_entries(before: set[str], root: str, depth: int = 2) -> set[str]:
    """Paths up to *depth* levels below *root* that exist now and are not in *before*."""
    return existing_tree(root, depth) - before


def existing_tree(root: str, depth: int = 2) -> set[str]:
    """*root* and every path up to *depth* levels below it that exists now."""
    found = set()
    if not os.path.lexists(root):
        return found
    found.add(root)
    frontier = [root]
    for _ in range(depth):
        nxt = []
        for d in frontier:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                found.add(e.path)
                if e.is_dir(follow_symlinks=False):
                    nxt.append(e.path)
        frontier = nxt
    return found


def remove_new_empty_dirs(created: set[str]) -> None:
    """rmdir the directories in *created* that are empty now, deepest first; others stay."""
    for d in sorted(created, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


def kill_netns_processes(inode: int, timeout: float = 5.0) -> list[str]:
    """SIGKILL every process in the network namespace *inode* (e.g. docker-proxy), wait and reap."""
    import psutil
    procs = []
    for pid in processes_in_netns(inode):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return kill_processes(procs, timeout)
