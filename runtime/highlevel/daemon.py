"""The capsize-runtimed process: locks, start-up (recovery before serving), serving, shutdown.

Start-up, in order (containerd's: plugins, then the shims are loaded, then the API serves):

1. lock ``<root>/runtimed/lock`` and ``<state>/runtimed/lock`` (flock, non-blocking; each holds
   the owner's pid). A second daemon on the same root or state refuses to start with
   FailedPrecondition: ``<dir> is in use by capsize-runtimed (pid N)``. The kernel drops the
   locks when the process dies, so a SIGKILLed daemon can be restarted at once;
2. open the metadata store, the content store (removing a crash's ingest files) and the
   snapshotter;
3. listen on the events socket, so that shims can deliver what they queued;
4. load the tasks (:mod:`runtime.highlevel.recovery`), bounded by ``load_timeout`` seconds;
5. serve the API on ``--address`` (mode 0660), then tell systemd ``READY=1`` (when
   ``NOTIFY_SOCKET`` is set) and log ``capsize-runtimed successfully booted`` with the seconds
   it took (``seconds`` from the start of :meth:`Daemon.run`, ``since_exec`` from the exec, and
   ``phases``: interpreter and imports, stores, task load). Crash debris (snapshot directories without a record, stale uploads) is swept in the
   background.

SIGTERM or SIGINT stops the daemon only: the API and events sockets are closed and removed, the
shim connections dropped, the locks released; shims and containers run on (their exits queue in
the shims until the daemon is back). SIGKILL leaves the socket files; the next start replaces
them.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import time

from runtime.errors import FailedPrecondition
from runtime.highlevel.layout import Layout


def _lock(path: str, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise FailedPrecondition(f"{what} is in use by capsize-runtimed (pid {holder}): "
                                 f"another daemon holds {path}", path=path, pid=holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Daemon:
    """One capsize-runtimed (see the module docstring)."""

    def __init__(self, root: str, state: str, address: str | None, log, load_timeout: float = 10.0,
                 spawn_mode: str = "template", shim_socket_dir: str | None = None,
                 cgroup_parent: str = "/capsize"):
        self.layout = Layout(root, state, address)
        self.cgroup_parent = "/" + cgroup_parent.strip("/")
        self.shim_socket_dir = os.path.abspath(shim_socket_dir) if shim_socket_dir else None
        self.log = log
        self.load_timeout = load_timeout
        self.spawn_mode = spawn_mode
        self.recovery_summary: dict = {}
        self._locks: list[int] = []
        self._stop: asyncio.Event | None = None

    def lock(self) -> None:
        """Take the root and state locks (FailedPrecondition when another daemon has them)."""
        self.layout.check_sockets()
        self.layout.make_root_dirs()
        self._locks.append(_lock(self.layout.root_lock, f"root {self.layout.root}"))
        try:
            self.layout.make_state_dirs()
            self._locks.append(_lock(self.layout.state_lock, f"state {self.layout.state}"))
        except BaseException:
            self.unlock()
            raise

    def unlock(self) -> None:
        for fd in self._locks:
            os.close(fd)
        self._locks = []

    def _open_stores(self) -> None:
        from runtime.highlevel.containers import ContainerStore
        from runtime.highlevel.content import ContentStore
        from runtime.highlevel.gc import Collector, Leases
        from runtime.highlevel.images import ImageStore
        from runtime.highlevel.metadata import Metadata
        from runtime.highlevel.snapshots import Snapshotter
        self.md = Metadata(self.layout.metadata_db)
        self.content = ContentStore(self.layout.content)
        self.content.clean_ingest()
        self.snapshots = Snapshotter(self.layout.snapshots, self.md)
        self.leases = Leases()
        self.collector = Collector(self.md, self.content, self.snapshots, self.leases, self.log)
        self.images = ImageStore(self.md, self.content, self.snapshots, self.leases, self.collector,
                                 self.layout.tmp, self.log)
        self.containers = ContainerStore(self.md, self.images, self.snapshots, self.collector)

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT (or :meth:`stop`), shut down."""
        from runtime.highlevel import api
        from runtime.highlevel.events import EventBus, ShimEventServer
        from runtime.highlevel.httpserver import HTTPServer
        from runtime.highlevel.recovery import Recovery
        from runtime.highlevel.tasks import TaskManager
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        if not self._locks:
            self.lock()
        self.http = self.events_server = self.tasks = None
        phases = {"since_exec": _process_age()}
        try:
            self._open_stores()
            self.bus = EventBus(self.log)
            self.tasks = TaskManager(self.layout, self.md, self.snapshots, self.bus, self.log, self.spawn_mode,
                                     self.shim_socket_dir, self.cgroup_parent)
            self.events_server = ShimEventServer(self.layout.events_socket, self.tasks.handle_shim_event, self.log)
            await self.events_server.start()
            phases["stores"] = round(time.monotonic() - t0, 4)
            self.recovery_summary = await Recovery(self.tasks, self.log).run(self.load_timeout)
            phases["load"] = self.recovery_summary["seconds"]
            self.http = HTTPServer(api.build(self), self.log)
            await self.http.start(self.layout.address, 0o660)
            self.log.info("capsize-runtimed successfully booted", seconds=round(time.monotonic() - t0, 4),
                          since_exec=_process_age(), phases=phases, address=self.layout.address,
                          root=self.layout.root, state=self.layout.state, pid=os.getpid())
            _sd_notify("READY=1\nSTATUS=serving\nMAINPID=%d" % os.getpid())
            sweep = loop.run_in_executor(None, self._sweep_debris)
            await self._stop.wait()
            await asyncio.wait([sweep], timeout=5)
        finally:
            await self._shutdown()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _sweep_debris(self) -> None:
        """Remove what a crash left: snapshot directories with no record, uploads, exports and their views."""
        try:
            for name in self.snapshots.orphan_dirs():
                self.snapshots.remove_dir(name)
                self.log.info("removed orphaned snapshot directory", dir=name)
            for name in os.listdir(self.layout.tmp):
                if name.startswith("view-"):   # an export's read-only mount: unmount, never recurse
                    path = os.path.join(self.layout.tmp, name)
                    self.snapshots.unmount(path)
                    os.rmdir(path)
                    self.log.info("removed an interrupted export's view", dir=name)
                elif name.startswith(("upload-", "export-")):
                    path = os.path.join(self.layout.tmp, name)
                    if time.time() - os.lstat(path).st_mtime > 60:
                        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
        except OSError as e:
            self.log.warning("cannot sweep crash debris", error=str(e))

    async def _shutdown(self) -> None:
        _sd_notify("STOPPING=1")
        self.log.info("capsize-runtimed stopping: shims and containers keep running")
        if self.http is not None:
            await self.http.close()
        if self.events_server is not None:
            await self.events_server.close()
        if self.tasks is not None:
            await self.tasks.close()
            self.bus.close()
        if getattr(self, "md", None) is not None:
            self.md.close()
        self.unlock()
        self.log.info("capsize-runtimed stopped")


def _process_age() -> float | None:
    """Seconds since this process was started (exec'ed), from /proc/self/stat (10 ms resolution)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return None


def _sd_notify(state: str) -> None:
    """sd_notify(3) through systemd-python, when systemd asked for it (``NOTIFY_SOCKET``)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    try:
        from systemd import daemon as sd_daemon
        sd_daemon.notify(state)
    except Exception:  # noqa: BLE001 - no notification is no reason to fail
        pass
