"""Snapshots on overlayfs, as containerd's overlayfs snapshotter and Docker's overlay2 keep them.

* A **committed** snapshot is one unpacked image layer, keyed by its chain ID (OCI image-spec
  config.md: ``ChainID(L1) = DiffID(L1)``, ``ChainID(L1..Ln) = sha256(ChainID(L1..Ln-1) + " " +
  DiffID(Ln))``), with the snapshot of the layers below as its parent. Each layer is unpacked
  once and shared by every image and namespace that has it.
* An **active** snapshot is a container's writable layer, keyed by ``(namespace, snapshot
  key)``: an empty ``fs/`` (overlayfs' upperdir) and ``work/`` (its workdir) on top of a
  committed parent.

Each snapshot is a directory ``<snapshots>/<dir>/`` with a short random name (mount options
must fit in a page, so paths stay short). The directory is complete before its row is written
to the metadata store, and the row is deleted before the directory (see metadata.py), so a
crash leaves only unreferenced directories: :meth:`Snapshotter.orphan_dirs` lists them for
garbage collection.

:meth:`Snapshotter.mount` mounts an active snapshot as ``overlay`` with ``lowerdir`` = the
parent chain's ``fs/`` directories (top first), ``upperdir`` and ``workdir``, through
:data:`runtime.host.HOST`. Errors: NotFound (no such snapshot), AlreadyExists (the key is
taken), InvalidArgument (a chain longer than a mount option can name), and the errors of the
``unpack`` callback given to :meth:`Snapshotter.commit`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading

from runtime.api import failpoints
from runtime.errors import AlreadyExists, CapsizeError, InvalidArgument, NotFound
from runtime.host import HOST, MNT_DETACH

COMMITTED = "committed"
ACTIVE = "active"
#: Longest overlay mount data the kernel takes (one page, with the NUL).
MAX_MOUNT_DATA = 4095


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each prefix of *diff_ids* (OCI image-spec config.md, "Layer ChainID")."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


class Snapshotter:
    """Snapshots under *directory*, recorded in *metadata* (a :class:`~runtime.highlevel.metadata.Metadata`)."""

    def __init__(self, directory: str, metadata, host=HOST):
        self.dir = directory
        self.md = metadata
        self.host = host
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # directories being filled, not yet recorded

    # -- directories -------------------------------------------------------------------------
    def _new_dir(self) -> str:
        name = os.urandom(6).hex()
        os.mkdir(os.path.join(self.dir, name), 0o700)
        with self._lock:
            self._busy.add(name)
        return name

    def _release(self, name: str, remove: bool) -> None:
        with self._lock:
            self._busy.discard(name)
        if remove:
            shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)

    def fs_path(self, row: dict) -> str:
        return os.path.join(self.dir, row["dir"], "fs")

    def work_path(self, row: dict) -> str:
        return os.path.join(self.dir, row["dir"], "work")

    # -- committed ---------------------------------------------------------------------------
    def committed(self, chain_id: str) -> dict | None:
        return self.md.find_snapshot("", chain_id)

    def commit(self, chain_id: str, parent: str, unpack) -> tuple[dict, bool]:
        """The committed snapshot *chain_id*, unpacked now by ``unpack(fs_dir)`` unless it exists.

        Returns (row, created). *parent* is the chain ID below (``""`` for the bottom layer) and
        must exist. On any error from *unpack*, nothing is left.
        """
        row = self.committed(chain_id)
        if row is not None:
            return row, False
        if parent and self.committed(parent) is None:
            raise NotFound(f"parent snapshot {parent} not found", key=parent)
        name = self._new_dir()
        ok = False
        try:
            fs = os.path.join(self.dir, name, "fs")
            os.mkdir(fs, 0o755)
            unpack(fs)
            try:
                row = self.md.add_snapshot("", chain_id, COMMITTED, parent, name)
            except AlreadyExists:  # unpacked meanwhile by a concurrent import: keep that one
                return self.committed(chain_id), False
            ok = True
            return row, True
        finally:
            self._release(name, remove=not ok)

    # -- active ------------------------------------------------------------------------------
    def prepare(self, namespace: str, key: str, parent: str) -> dict:
        """A new active snapshot (empty upper and work dirs) on the committed *parent*; on no
        parent (``""``), an empty ``lower/`` dir stands for the layers below (overlayfs needs one)."""
        if parent and self.committed(parent) is None:
            raise NotFound(f"parent snapshot {parent} not found: the image is not unpacked", key=parent)
        if self.md.find_snapshot(namespace, key) is not None:
            raise AlreadyExists(f"snapshot {key!r} already exists", namespace=namespace, key=key)
        name = self._new_dir()
        ok = False
        try:
            os.mkdir(os.path.join(self.dir, name, "fs"), 0o755)
            os.mkdir(os.path.join(self.dir, name, "work"), 0o700)
            if not parent:
                os.mkdir(os.path.join(self.dir, name, "lower"), 0o755)
            failpoints.hit("runtimed.snapshot.prepare.before-commit")
            row = self.md.add_snapshot(namespace, key, ACTIVE, parent, name)
            failpoints.hit("runtimed.snapshot.prepare.after-commit")
            ok = True
            return row
        finally:
            self._release(name, remove=not ok)

    def lower_dirs(self, parent: str) -> list[str]:
        """The ``fs/`` directories of *parent* and its ancestors, top first."""
        dirs, key, seen = [], parent, set()
        while key:
            if key in seen:
                raise CapsizeError(f"snapshot chain loops at {key}")
            seen.add(key)
            row = self.committed(key)
            if row is None:
                raise NotFound(f"snapshot {key} not found (its image may have been removed)", key=key)
            dirs.append(self.fs_path(row))
            key = row["parent"]
        return dirs

    def mounts(self, namespace: str, key: str) -> list[dict]:
        """containerd's ``Mounts``: ``[{"type": "overlay", "source": "overlay", "options": [...]}]``."""
        row = self.md.get_snapshot(namespace, key)
        if row["kind"] != ACTIVE:
            raise InvalidArgument(f"snapshot {key!r} is committed: only active snapshots are mounted")
        lowers = self.lower_dirs(row["parent"]) or [os.path.join(self.dir, row["dir"], "lower")]
        options = ["lowerdir=" + ":".join(lowers),
                   "upperdir=" + self.fs_path(row), "workdir=" + self.work_path(row)]
        return [{"type": "overlay", "source": "overlay", "options": options}]

    def mount(self, namespace: str, key: str, target: str, readonly: bool = False) -> None:
        """Mount the active snapshot at *target* (an existing directory); *readonly*: a view of
        it (its upper dir as the top lower one, no upper dir: overlayfs is then read-only)."""
        m = self.mounts(namespace, key)[0]
        if readonly:
            opts = dict(o.split("=", 1) for o in m["options"])
            m = {**m, "options": ["lowerdir=" + opts["upperdir"] + ":" + opts["lowerdir"]]}
        data = ",".join(m["options"])
        if len(data) > MAX_MOUNT_DATA:
            raise InvalidArgument(f"snapshot {key!r} has too many layers for one overlay mount "
                                  f"({len(data)} bytes of options)")
        self.host.mount(m["source"], target, m["type"], 0, data)
        failpoints.hit("runtimed.snapshot.mount.after")

    def unmount(self, target: str) -> None:
        """Unmount *target* (lazily, so a busy mount cannot block a cleanup); no-op if not mounted."""
        from runtime.mountinfo import is_mount_point
        for _ in range(8):
            if not os.path.isdir(target) or not is_mount_point(target):
                return
            self.host.umount(target, MNT_DETACH)

    # -- removal -----------------------------------------------------------------------------
    def remove(self, namespace: str, key: str) -> bool:
        """Forget a snapshot (record first, then the directory); False if it did not exist."""
        failpoints.hit("runtimed.snapshot.remove.before-commit")
        row = self.md.delete_snapshot(namespace, key)
        if row is None:
            return False
        failpoints.hit("runtimed.snapshot.remove.after-commit")
        shutil.rmtree(os.path.join(self.dir, row["dir"]), ignore_errors=True)
        return True

    def remove_dir(self, name: str) -> None:
        shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)

    def orphan_dirs(self) -> list[str]:
        """Snapshot directories with no record and not being filled (crash leftovers)."""
        known = {row["dir"] for row in self.md.list_snapshots()}
        with self._lock:
            busy = set(self._busy)
        return sorted(name for name in os.listdir(self.dir) if name not in known and name not in busy)
