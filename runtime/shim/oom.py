"""Noticing OOM kills in the container's memory cgroup (cgroup v1), as containerd's epoller does.

On cgroup v1 the shim registers an eventfd for ``memory.oom_control`` through
``cgroup.event_control`` (Documentation/admin-guide/cgroup-v1/memory.rst, "OOM Control"). The
eventfd also fires when the cgroup is removed, so an event counts only when the ``oom_kill``
counter in ``memory.oom_control`` went up. On a cgroup v2-only memory controller the counter is
``oom_kill`` in ``memory.events``; it is polled by :meth:`OOMWatch.check` (called before the exit
is reported), not watched.
"""

from __future__ import annotations

import os

V1_MEMORY = "/sys/fs/cgroup/memory"
V2_ROOT = "/sys/fs/cgroup"


def _memory_cgroup(pid: int) -> tuple[str, str] | None:
    """(counter file, "v1"|"v2") for *pid*'s memory cgroup, or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            d = V1_MEMORY + path
            if os.path.exists(d + "/memory.oom_control"):
                return d + "/memory.oom_control", "v1"
    for line in lines:
        if line.startswith("0::"):
            f = V2_ROOT + line[3:] + "/memory.events"
            if os.path.exists(f):
                return f, "v2"
    return None


def _oom_kills(path: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


class OOMWatch:
    """Calls ``on_oom()`` once per increase of the cgroup's ``oom_kill`` counter."""

    def __init__(self, loop, pid: int, on_oom, log):
        self.loop, self.on_oom, self.log = loop, on_oom, log
        self.efd = -1
        found = _memory_cgroup(pid)
        self.path = found[0] if found else ""
        self.seen = _oom_kills(self.path) if self.path else 0
        if found and found[1] == "v1":
            try:
                self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                cfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    with open(os.path.join(os.path.dirname(self.path), "cgroup.event_control"), "w") as f:
                        f.write(f"{self.efd} {cfd}")
                finally:
                    os.close(cfd)
                loop.add_reader(self.efd, self._fired)
            except OSError as e:
                log.warning("cannot watch for OOM", error=str(e), path=self.path)
                self._close_fd()

    def _fired(self) -> None:
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            return
        except OSError:
            pass
        if not self.check() and not os.path.exists(self.path):
            self._close_fd()  # the cgroup is gone

    def check(self) -> bool:
        """Publish any new OOM kill now; True if there was one."""
        if not self.path:
            return False
        n = _oom_kills(self.path)
        if n > self.seen:
            self.seen = n
            self.on_oom()
            return True
        return False

    def _close_fd(self) -> None:
        if self.efd >= 0:
            self.loop.remove_reader(self.efd)
            os.close(self.efd)
            self.efd = -1

    def close(self) -> None:
        self._close_fd()
        self.path = ""
