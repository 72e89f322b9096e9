"""Where capsize-runtimed keeps things (DESIGN.md, "On-disk layout").

Persistent, under ``<root>/runtimed/``:

=====================  =====================================================================
``lock``               the root lock (flock), holding the daemon's pid
``metadata.db``        images, containers and snapshots (sqlite3, WAL)
``content/blobs/sha256/<hex>``  the content store's blobs
``content/ingest/``    blobs being written (a crash leaves files here; removed at start)
``snapshots/<dir>/``   one per snapshot: ``fs/`` (a layer's files, or an active snapshot's
                       upper dir) and, for active snapshots, ``work/`` (overlayfs workdir)
``tmp/``               uploads being imported, exports being written
``distribution/``      which registry blobs each layer is known as (:mod:`runtime.highlevel.distmeta`)
``uploads/``           push sessions to resume (:mod:`runtime.highlevel.upload`), GC'd after an hour
=====================  =====================================================================

Volatile, under ``<state>/``:

=====================================  =========================================================
``runtimed.sock``                      the API socket (default ``--address``), mode 0660
``runtimed/lock``                      the state lock (flock), holding the daemon's pid
``runtimed/events.sock``               where shims send their events (JSON lines)
``runtimed/tasks/<namespace>/<id>/``   a task's directory: the OCI bundle (``config.json``,
                                       ``rootfs/``, the snapshot's mount point), the daemon's
                                       ``runtimed.json`` and the shim's files
``runc/<namespace>/``                  the low-level runtime's ``--root``
=====================================  =========================================================
"""

from __future__ import annotations

import os

from runtime.shim.paths import MAX_SOCKET_PATH


class Layout:
    """Paths for one daemon, from its *root* and *state* directories (made absolute)."""

    def __init__(self, root: str, state: str, address: str | None = None):
        self.root = os.path.abspath(root)
        self.state = os.path.abspath(state)
        self.base = os.path.join(self.root, "runtimed")
        self.root_lock = os.path.join(self.base, "lock")
        self.metadata_db = os.path.join(self.base, "metadata.db")
        self.content = os.path.join(self.base, "content")
        self.snapshots = os.path.join(self.base, "snapshots")
        self.tmp = os.path.join(self.base, "tmp")
        self.state_base = os.path.join(self.state, "runtimed")
        self.state_lock = os.path.join(self.state_base, "lock")
        self.events_socket = os.path.join(self.state_base, "events.sock")
        self.tasks = os.path.join(self.state_base, "tasks")
        self.address = os.path.abspath(address) if address else os.path.join(self.state, "runtimed.sock")

    @property
    def events_address(self) -> str:
        """The address given to shims (``--address``); it keys their socket names, so it must
        stay the same across restarts of the daemon."""
        return "unix://" + self.events_socket

    def task_dir(self, namespace: str, task_id: str) -> str:
        return os.path.join(self.tasks, namespace, task_id)

    def runtime_root(self, namespace: str) -> str:
        """The low-level runtime's ``--root`` for *namespace*: ``<state>/runc/<namespace>``."""
        return os.path.join(self.state, "runc", namespace)

    def make_root_dirs(self) -> None:
        for d in (self.base, self.content, self.snapshots, self.tmp):
            os.makedirs(d, mode=0o711, exist_ok=True)

    def make_state_dirs(self) -> None:
        for d in (self.state_base, self.tasks):
            os.makedirs(d, mode=0o711, exist_ok=True)

    def check_sockets(self) -> None:
        """Raise InvalidArgument when a socket path would not fit in a sockaddr_un."""
        from runtime.errors import InvalidArgument
        for what, path in (("--address", self.address), ("events socket", self.events_socket)):
            if len(path.encode()) > MAX_SOCKET_PATH:
                raise InvalidArgument(f"{what} {path} is too long for a unix socket "
                                      f"({len(path.encode())} > {MAX_SOCKET_PATH} bytes): use a shorter "
                                      f"--state or --address")
