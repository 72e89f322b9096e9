"""Container records on disk, written atomically: a SIGKILL at any moment never corrupts one.

Layout (DESIGN.md: ``<root>/daemon/``)::

    <data-root>/daemon/containers/<id>/config.v2.json   the record (config + state), one JSON object
    <data-root>/daemon/containers/<id>/<id>-json.log    the container's json-file log (Docker's place)

A write goes to ``config.v2.json.tmp-<pid>-<random>`` (:mod:`runtime.atomicfile`) and is renamed over the record: a reader — and a
daemon restarted after a SIGKILL at any moment — sees the old record or the new one, never a
torn one. With ``durable=True`` (``capsized --fsync-state``) the file and the directory are also
fsync'ed, so the record survives a power loss too; that costs about 9 ms per write on this
kind of machine (several writes per ``docker run``), so by default durability against power
loss is left to the filesystem's replace-by-rename ordering (ext4's ``auto_da_alloc``). A new
container's directory is created under a dot-name and renamed into place after its first record
is written, so a directory without a record only exists as ``.new-<id>`` (removed at load).
:meth:`Store.load_all` skips (and logs through *on_problem*) a record that cannot be parsed
instead of failing the daemon's start.
"""

from __future__ import annotations

import json
import os
import shutil

from runtime import atomicfile
from runtime.api import failpoints

RECORD = "config.v2.json"


def atomic_write_json(path: str, obj, durable: bool = True) -> None:
    """Write *obj* as compact JSON to *path* atomically (:func:`runtime.atomicfile.write`, mode
    0600); *durable*: fsync file and directory too. Raises OSError."""
    atomicfile.write(path, json.dumps(obj, separators=(",", ":")), durable=durable, mode=0o600)


class Store:
    """Container records under ``<data-root>/daemon/containers``."""

    def __init__(self, data_root: str, durable: bool = False):
        self.durable = durable
        self.root = os.path.join(data_root, "daemon", "containers")
        os.makedirs(self.root, mode=0o710, exist_ok=True)

    def dir_of(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.root, cid, f"{cid}-json.log")

    def create(self, cid: str, record: dict) -> None:
        """Make the container's directory and its first record, atomically as a whole."""
        staging = os.path.join(self.root, f".new-{cid}")
        os.makedirs(staging, mode=0o710, exist_ok=True)
        # the log exists from the start, so that an attach made before the start holds it open
        os.close(os.open(os.path.join(staging, f"{cid}-json.log"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
        failpoints.hit("daemon.container.store.before-write")
        atomic_write_json(os.path.join(staging, RECORD), record, self.durable)
        os.rename(staging, self.dir_of(cid))
        if self.durable:
            atomicfile.fsync_dir(self.root)
        failpoints.hit("daemon.container.store.after-write")

    def save(self, cid: str, record: dict) -> None:
        failpoints.hit("daemon.container.store.before-write")
        atomic_write_json(os.path.join(self.dir_of(cid), RECORD), record, self.durable)
        failpoints.hit("daemon.container.store.after-write")

    def delete(self, cid: str) -> None:
        """Remove the container's directory (record and log). A rename first makes it atomic."""
        path = self.dir_of(cid)
        doomed = os.path.join(self.root, f".del-{cid}")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        if self.durable:
            atomicfile.fsync_dir(self.root)
        shutil.rmtree(doomed, ignore_errors=True)
        failpoints.hit("daemon.container.store.after-delete")

    def load_all(self, on_problem=lambda msg: None) -> dict[str, dict]:
        """Every record: ``{id: record}``; leftovers of interrupted creates/deletes are removed."""
        out = {}
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if name.startswith((".new-", ".del-")):
                shutil.rmtree(path, ignore_errors=True)
                continue
            for leftover in os.listdir(path) if os.path.isdir(path) else ():
                if leftover.startswith(RECORD + atomicfile.TEMP_INFIX):
                    try:
                        os.unlink(os.path.join(path, leftover))
                    except OSError:
                        pass
            try:
                with open(os.path.join(path, RECORD)) as f:
                    record = json.load(f)
                if record.get("ID") != name:
                    raise ValueError(f"record names id {record.get('ID')!r}")
            except (OSError, ValueError) as e:
                on_problem(f"skipping container {name}: unreadable record: {e}")
                continue
            out[name] = record
        return out
