"""Process-tree snapshots (psutil) and the orphan reaper of a child-subreaper harness.

A snapshot (:func:`snapshot`) is ``{"label", "wall", "mono", "processes": [...]}`` where each
process is ``{"pid", "ppid", "name", "cmdline", "status", "role", "container", "cgroup",
"reparented"}``: every descendant of the harness (the daemons, the shims and containers that
were re-parented to it, its tools) plus every process in a known container's cgroup, each known
container's shim (the adapter's ``pids("shim", id)``: under systemd shims are not the harness's
descendants) and the daemons (``pids("daemon")``, ``pids("runtime")``). ``status``
is psutil's (``running``, ``sleeping``, ``zombie``, ``stopped``...); ``role``/``container`` come
from the engine adapter; ``reparented`` is true for an engine process whose parent is the
harness although the harness did not start it.

:class:`Reaper` makes the orphan policy real: the harness is a child subreaper
(``PR_SET_CHILD_SUBREAPER``), so orphans of the engine come to it. The reaper thread records
each adoption ("re-parented to the harness": pid, name, role, when) and reaps each orphan that
exits (with its status), but never a process the harness itself spawned and waits for
(``owned`` pids) — those belong to their ``subprocess.Popen``.
"""

from __future__ import annotations

import os
import threading
import time

import psutil

from runtime.host import HOST, PR_SET_CHILD_SUBREAPER

#: Commands the harness runs itself (their short-lived processes are not orphans).
TOOLS = frozenset({"ctr", "docker", "strace", "unshare", "ip", "nsenter", "systemctl", "umount", "mount"})

_OWNED: set[int] = set()
_OWNED_LOCK = threading.Lock()


def own(pid: int) -> None:
    """Mark *pid* as spawned and waited for by this process (the reaper leaves it alone)."""
    with _OWNED_LOCK:
        _OWNED.add(pid)


def disown(pid: int) -> None:
    with _OWNED_LOCK:
        _OWNED.discard(pid)


def owned() -> set[int]:
    with _OWNED_LOCK:
        return set(_OWNED)


def become_subreaper() -> None:
    """Make this process a child subreaper (idempotent)."""
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 1)


def cgroup_of(pid: int) -> str:
    """The process's cgroup path (the memory hierarchy's on v1, the unified one on v2), or ""."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    best = ""
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            return parts[2]
        if parts[0] == "0" and not best:
            best = parts[2]
        elif not best:
            best = parts[2]
    return best


def _info(p: psutil.Process) -> dict | None:
    try:
        with p.oneshot():
            return {"pid": p.pid, "ppid": p.ppid(), "name": p.name(), "cmdline": p.cmdline(),
                    "status": p.status(), "create_time": p.create_time()}
    except psutil.ZombieProcess:
        try:
            return {"pid": p.pid, "ppid": p.ppid(), "name": p.name(), "cmdline": [], "status": "zombie",
                    "create_time": p.create_time()}
        except psutil.Error:
            return None
    except psutil.Error:
        return None


def snapshot(engine, label: str, container_ids: dict[str, str] | None = None) -> dict:
    """A process-tree snapshot labelled *label*. *container_ids*: ``{id: name}`` of the scenario's
    containers (their cgroups are searched too, and processes get the name)."""
    me = os.getpid()
    container_ids = container_ids or {}
    procs: dict[int, dict] = {}
    try:
        for p in psutil.Process(me).children(recursive=True):
            info = _info(p)
            if info:
                procs[p.pid] = info
    except psutil.Error:
        pass
    extra = set()
    for cid in container_ids:
        extra.update(engine.container_cgroup_pids(cid))
        try:  # shims that are not the harness's descendants (under systemd: PID 1's children)
            extra.update(engine.pids("shim", cid))
        except Exception:  # noqa: BLE001 - an engine without shims, or one that is down
            pass
    for role in ("daemon", "runtime"):
        try:
            extra.update(engine.pids(role))
        except Exception:  # noqa: BLE001 - a role the engine lacks, or it is down
            pass
    for pid in extra - set(procs):
        try:
            info = _info(psutil.Process(pid))
        except psutil.Error:
            info = None
        if info:
            procs[pid] = info
    mine = owned() | engine.owned_pids()
    out = []
    for pid in sorted(procs):
        info = procs[pid]
        info["cgroup"] = cgroup_of(pid)
        role, cid = engine.classify(pid, info["ppid"], info["cmdline"], info["cgroup"])
        if role is None and os.path.basename((info["cmdline"] or [info["name"]])[0]) in TOOLS:
            role = "harness-tool"
        info["role"] = role
        info["container"] = cid
        info["container_name"] = container_ids.get(cid) if cid else None
        info["reparented"] = info["ppid"] == me and pid not in mine and role not in (None, "harness-tool")
        out.append(info)
    return {"label": label, "wall": time.time(), "mono": time.monotonic(), "processes": out}


class Reaper:
    """A thread that records orphans re-parented to this (subreaper) process and reaps them.

    *engine* classifies them; *record(kind, fields)* receives ``("adopted", {...})`` and
    ``("reaped", {...})`` with ``pid, name, role, container, wall, mono`` (and ``exit_status``).
    """

    def __init__(self, engine, record, interval: float = 0.1):
        self.engine = engine
        self.record = record
        self.interval = interval
        self.adopted: dict[int, dict] = {}
        self.reaped: list[dict] = []
        self._zombie_seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capsize-reaper", daemon=True)

    def start(self) -> "Reaper":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.scan()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - keep reaping whatever one scan hit
                pass

    def scan(self) -> None:
        """One pass: record new adoptions, reap orphans that are zombies on two passes in a row."""
        mine = owned() | self.engine.owned_pids()
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return
        now_zombies = set()
        for p in children:
            if p.pid in mine:
                continue
            info = _info(p)
            if info is None:
                continue
            exe = os.path.basename((info["cmdline"] or [info["name"]])[0])
            if exe in TOOLS or info["name"] in TOOLS:
                continue
            if p.pid not in self.adopted:
                cg = cgroup_of(p.pid)
                role, cid = self.engine.classify(p.pid, info["ppid"], info["cmdline"], cg)
                entry = {"pid": p.pid, "name": info["name"], "cmdline": info["cmdline"][:8], "role": role,
                         "container": cid, "wall": time.time(), "mono": time.monotonic()}
                self.adopted[p.pid] = entry
                self.record("adopted", entry)
            if info["status"] == "zombie":
                now_zombies.add(p.pid)
                self._zombie_seen[p.pid] = self._zombie_seen.get(p.pid, 0) + 1
                if self._zombie_seen[p.pid] >= 2:
                    self._reap(p.pid)
        for pid in list(self._zombie_seen):
            if pid not in now_zombies:
                del self._zombie_seen[pid]

    def _reap(self, pid: int) -> None:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if got != pid:
            return
        code = os.waitstatus_to_exitcode(status)
        entry = dict(self.adopted.get(pid, {"pid": pid}))
        entry.update(exit_status=code if code >= 0 else 128 - code, wall=time.time(), mono=time.monotonic())
        self.reaped.append(entry)
        self._zombie_seen.pop(pid, None)
        self.record("reaped", entry)
