"""The suite's leak check, scoped to what this pytest run made.

Several pytest runs may share one machine (helpers, CI jobs, a harness run next to the suite), so
"something new appeared on the host" is not "this test leaked". A :class:`LeakScope` (one per
pytest session, kept in ``config.stash``) says what this run owns:

* **processes**: the live descendants of the test process. The suite is a child subreaper
  (``prctl(PR_SET_CHILD_SUBREAPER)``), so orphans re-parented after ``capsize-runc create`` and
  daemons that detach with a double fork and ``setsid`` (shims, a daemonized runtime) come back
  to it and stay descendants; another run's processes are never ours (they descend from another
  pytest, or from PID 1). Zombies do not count.
* **cgroups**: a cgroup directory (up to 4 levels below a hierarchy's root) that is new since the
  test began counts when this run owns it: a live process of this run is in it (or below it); or
  its path has a component naming this session (:attr:`LeakScope.tag`, e.g. ``capsize-test-ts1234``);
  or it lies at or under a cgroup path this run registered (:meth:`LeakScope.own_cgroup`, e.g. a
  daemon's ``--cgroup-parent /capsize/hlt-<pid>`` or a low-level runtime's ``/capsize/<id>``).
* **mounts**: a mount point that is new since the test began counts when it lies under a path
  this run owns (:meth:`LeakScope.own_path`: the session's pytest base temp dir, private state
  dirs such as ``/run/capsize/hl-<hex>``), or has a component naming this session.

A registration is for the whole session (ids and paths are unique per run by construction:
random hex, the session tag, or dirs under the base temp dir).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
#: How far below a hierarchy's root cgroups are looked for: ``capsize/<id>``,
#: ``capsize/hlt-<pid>/<id>``, ``<own cgroup>/capsize/<id>`` (relative cgroupsPath).
CGROUP_DEPTH = 4


def session_tag(pid: int | None = None) -> str:
    """This session's name token, ``ts<pid of the pytest process>``: unique among live runs.

    ``ts`` is not a hex digit, so a container id (hex) never contains it by chance.
    """
    return f"ts{os.getpid() if pid is None else pid}"


def reap_children() -> None:
    """Reap every exited child (re-parented orphans included) without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def descendants() -> dict[int, str]:
    """Live (non-zombie) descendants of this process: pid -> command line (first 200 chars)."""
    import psutil
    procs = {}
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                procs[p.pid] = " ".join(p.cmdline())[:200]
        except psutil.Error:
            continue
    return procs


def mount_points() -> set[str]:
    """Every mount point in this process's mount namespace (``/proc/self/mountinfo`` field 5)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def cgroup_dirs(root: str = CGROUP_ROOT, depth: int = CGROUP_DEPTH) -> set[str]:
    """Every cgroup directory 1..*depth* levels below each hierarchy mounted under *root*."""
    found = set()
    if not os.path.isdir(root):
        return found
    for hierarchy in os.listdir(root):
        top = os.path.join(root, hierarchy)
        if os.path.islink(top) or not os.path.isdir(top):  # cpu,cpuacct links to the real mount
            continue
        for dirpath, dirnames, _ in os.walk(top):
            level = dirpath[len(top):].count("/")
            if level >= depth - 1:
                dirnames[:] = []
            found.update(os.path.join(dirpath, d) for d in dirnames)
    return found


def cgroup_pids(path: str) -> set[int]:
    """PIDs in the cgroup directory *path* and every cgroup below it (v1 ``cgroup.procs``)."""
    pids = set()
    for dirpath, _, _ in os.walk(path):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return pids


def remove_empty_cgroup(path: str, root: str = CGROUP_ROOT) -> None:
    """rmdir the cgroup *path* (relative, e.g. ``/capsize/hlt-12``) in every hierarchy if it is
    empty; a cgroup with processes or children stays (rmdir fails with EBUSY), as does a missing one."""
    rel = path.strip("/")
    for hierarchy in os.listdir(root) if os.path.isdir(root) else []:
        try:
            os.rmdir(os.path.join(root, hierarchy, rel))
        except OSError:
            pass


def _relative_cgroup(path: str, root: str = CGROUP_ROOT) -> str:
    """``/sys/fs/cgroup/memory/capsize/x`` -> ``/capsize/x``."""
    rest = path[len(root):].lstrip("/")
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


@dataclass
class Snapshot:
    """What the scope saw at one moment: mount points, cgroup dirs, live descendant processes."""
    mounts: set[str]
    cgroups: set[str]
    processes: dict[int, str]


@dataclass
class LeakScope:
    """What one pytest session owns on the host (see the module docstring).

    *tag*: the session's name token (:func:`session_tag`). *paths*: owned directory prefixes
    (absolute, no trailing slash). *cgroups*: owned cgroup paths relative to a hierarchy's root
    (``/capsize/hlt-12``), each owning itself and everything below it. *cgroup_root*: where the
    hierarchies are mounted (``/sys/fs/cgroup``). *tidies*: callables run before each look
    (:meth:`add_tidy`).
    """
    tag: str = field(default_factory=session_tag)
    paths: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    cgroup_root: str = CGROUP_ROOT
    tidies: list = field(default_factory=list)

    def __post_init__(self):
        self._tag_re = re.compile(rf"(?<![0-9a-z]){re.escape(self.tag)}(?![0-9])")

    # -- registration ------------------------------------------------------------------------
    def own_path(self, path: str) -> str:
        """Mounts under the directory *path* are this run's. Returns *path*."""
        self.paths.add(os.path.normpath(str(path)))
        return path

    def own_cgroup(self, path: str) -> str:
        """The cgroup *path* (relative to each hierarchy's root, e.g. ``/capsize/c1``) and
        everything below it are this run's, in every hierarchy. Returns *path*."""
        self.cgroups.add("/" + os.path.normpath(str(path)).strip("/"))
        return path

    def add_tidy(self, fn) -> None:
        """Run *fn()* before each look of the check, e.g. to rmdir an empty cgroup parent the run
        owns and a runtime leaves behind by design (runc does not prune the parents it made)."""
        if fn not in self.tidies:
            self.tidies.append(fn)

    # -- ownership -----------------------------------------------------------------------------
    def names_session(self, path: str) -> bool:
        """Does *path* contain this session's tag as a token (``capsize-test-ts12-a``, not ``ts123``)?"""
        return bool(self._tag_re.search(path))

    def owns_mount(self, point: str) -> bool:
        return self.names_session(point) or any(point == p or point.startswith(p + "/") for p in self.paths)

    def owns_cgroup(self, path: str, ours: set[int]) -> bool:
        """Is the cgroup directory *path* this run's? *ours*: pids of this run's live processes."""
        rel = _relative_cgroup(path, self.cgroup_root)
        if self.names_session(rel) or any(rel == c or rel.startswith(c + "/") for c in self.cgroups):
            return True
        return bool(ours and cgroup_pids(path) & ours)

    # -- the check -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Reap exited children, then record mounts, cgroup dirs and live descendants (all of them;
        ownership is decided on what is new, in :meth:`leaks_since`)."""
        reap_children()
        return Snapshot(mount_points(), cgroup_dirs(self.cgroup_root), descendants())

    def new_since(self, before: Snapshot) -> list[str]:
        """What this run owns now that was not in *before*, as ``"<kind> <what>"`` lines."""
        now = self.snapshot()
        ours = set(now.processes)
        found = [f"mount {m}" for m in sorted(now.mounts - before.mounts) if self.owns_mount(m)]
        found += [f"cgroup {c}" for c in sorted(now.cgroups - before.cgroups) if self.owns_cgroup(c, ours)]
        found += [f"process {p}: {c}" for p, c in sorted(now.processes.items()) if p not in before.processes]
        return found

    def leaks_since(self, before: Snapshot, settle: float = 3.0) -> list[str]:
        """:meth:`new_since`, retried for up to *settle* seconds (cleanup may still be under way),
        running the tidies before each look. Returns the leaks still there at the end; ``[]``
        when none.
        """
        deadline = time.monotonic() + settle
        while True:
            for tidy in self.tidies:
                tidy()
            found = self.new_since(before)
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
