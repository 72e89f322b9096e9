"""capsize-runc's per-container state directory and the OCI status derived from the host.

Layout under the runtime root (``--root``, default ``/run/capsize/runc``; DESIGN.md
``<state>/runc/<id>/``)::

    <root>/<id>/state.json   what create recorded (see :class:`State`), written atomically
    <root>/<id>/exec.fifo    the exec FIFO; present from create until start (runtime.md "start")

The status is never stored, it is derived as runc derives it (OCI runtime.md "State"):

* ``stopped``: the init pid is gone, is a zombie, or is another process now (its start time in
  ``/proc/<pid>/stat`` differs from the recorded one: pid reuse);
* ``created``: the init is alive and the exec FIFO still exists (it is blocked opening it);
* ``paused``: the init is alive and the container's cgroup is frozen (a runc extension);
* ``running``: otherwise.
"""

from __future__ import annotations

import os

from runtime import atomicfile, jsonfast
from runtime.errors import AlreadyExists, InvalidArgument, NotFound
from runtime.rfc3339 import format_nano

DEFAULT_ROOT = "/run/capsize/runc"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"

def validate_id(container_id: str) -> str:
    """Check a container id as runc does (``[\\w+-.]+``, not ``.``/``..``); raise InvalidArgument."""
    if (not container_id or container_id in (".", "..")
            or not all(c.isalnum() or c in "_+-." for c in container_id)):
        raise InvalidArgument(f"invalid container id format: {container_id!r}")
    return container_id


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    # after the comm field: state is fields[0], starttime is field 22 overall -> index 19 here
    if fields[0] == b"Z" or fields[0] == b"X":
        return None
    return int(fields[19])


def rfc3339_now() -> str:
    """The current UTC time as RFC 3339 with nanoseconds, as runc writes ``created``."""
    return format_nano(fixed=True)


class State:
    """One container's recorded state (``state.json``).

    Attributes: ``id``, ``pid`` (host pid of the init, 0 before it exists), ``start_time``
    (clock ticks, for pid-reuse detection), ``bundle``, ``rootfs``, ``created`` (RFC 3339),
    ``owner``, ``annotations``, ``cgroup`` (:meth:`Cgroup.to_state`), ``config`` (the OCI config
    as it was at create), ``namespaces`` (OCI type -> ``/proc/<pid>/ns/...`` path of the init).
    """

    FIELDS = ("id", "pid", "start_time", "bundle", "rootfs", "created", "owner", "annotations",
              "cgroup", "config", "namespaces")

    def __init__(self, root: str, **fields):
        self.root = root
        for k in self.FIELDS:
            setattr(self, k, fields.get(k))
        self.pid = self.pid or 0
        self.annotations = self.annotations or {}
        self.owner = self.owner or ""

    # -- paths ----------------------------------------------------------------------------------
    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, EXEC_FIFO)

    # -- persistence ----------------------------------------------------------------------------
    def save(self) -> None:
        """Write state.json atomically (temp file + rename).

        No fsync, as runc: the state lives on a tmpfs (/run) in production and must survive a
        killed process, not a power cut; rename(2) already gives readers all or nothing.
        """
        atomicfile.write(os.path.join(self.dir, STATE_FILE),
                         jsonfast.dumps({k: getattr(self, k) for k in self.FIELDS}), durable=False, mode=0o600)

    @classmethod
    def load(cls, root: str, container_id: str) -> "State":
        """Read ``<root>/<id>/state.json``; NotFound (runc's words) when there is no such container."""
        validate_id(container_id)
        try:
            with open(os.path.join(root, container_id, STATE_FILE)) as f:
                data = jsonfast.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"container does not exist: {container_id}", id=container_id) from None
        except ValueError as e:
            raise NotFound(f"container {container_id}: state.json is unreadable: {e}", id=container_id) from None
        return cls(root, **data)

    @classmethod
    def reserve(cls, root: str, container_id: str) -> "State":
        """Create the state directory exclusively (the lock against a concurrent create of the same id)."""
        validate_id(container_id)
        os.makedirs(root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(os.path.join(root, container_id), 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id exists: {container_id}", id=container_id) from None
        return cls(root, id=container_id)

    @staticmethod
    def ids(root: str) -> list[str]:
        """Ids of every container with a state file under *root*, sorted."""
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE)))

    # -- the live status ------------------------------------------------------------------------
    def alive(self) -> bool:
        """True when the recorded init is still this container's (not gone, not a zombie, not reused).

        A state without a start time (the init was already gone when create recorded it) is
        never alive: comparing None with the None of a vanished pid must not say "alive".
        """
        if not self.pid or self.start_time is None:
            return False
        return proc_start_time(self.pid) == self.start_time

    def cgroup_obj(self, host=None):
        """The container's :class:`~runtime.lowlevel.cgroups.Cgroup` (its writes through *host*,
        default :data:`runtime.host.HOST`), or None when it has none."""
        from runtime.lowlevel.cgroups import Cgroup
        if not self.cgroup:
            return None
        return Cgroup.from_state(self.cgroup) if host is None else Cgroup.from_state(self.cgroup, host=host)

    def status(self) -> str:
        """``created``, ``running``, ``paused`` or ``stopped`` (see the module docstring)."""
        if not self.alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        cg = self.cgroup_obj()
        if cg is not None and cg.frozen():
            return "paused"
        return "running"

    def oci_state(self) -> dict:
        """The OCI state (runtime.md "State") plus runc's extra fields, as ``runc state`` prints it."""
        status = self.status()
        return {
            "ociVersion": (self.config or {}).get("ociVersion", "1.0.2-dev"),
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        }

    def hook_state(self, status: str | None = None) -> dict:
        """The state document handed to hooks on stdin (config.md "POSIX-platform Hooks")."""
        return {"ociVersion": (self.config or {}).get("ociVersion", "1.0.2-dev"), "id": self.id,
                "status": status or self.status(), "pid": self.pid, "bundle": self.bundle,
                "annotations": self.annotations}

    def remove(self) -> None:
        """Remove the state directory and everything in it (a flat directory of a few files)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(self.dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil  # never made by capsize-runc itself; only then pay for shutil
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass
