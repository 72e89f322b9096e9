"""Volumes of capsized's ``local`` driver (dockerd's volume/local and volume/service).

On disk (DESIGN.md's layout, ``<root>/daemon/volumes/``; dockerd keeps the same
``<data-root>/volumes/<name>/_data``)::

    <data-root>/daemon/volumes/<name>/_data          the volume's content, bind-mounted into containers
    <data-root>/daemon/volumes/<name>/volume.json    {"Name", "Driver", "Labels", "Options",
                                                      "CreatedAt" (ns), "Anonymous"}

A new volume's directory is made as ``.new-<name>`` (``_data`` and ``volume.json``, the record
written through :mod:`runtime.atomicfile`, fsync'ed) and renamed into place, then the parent
directory is fsync'ed: after a SIGKILL (or a power cut) at any moment a volume is there whole or
not at all. A removal renames it to ``.del-<name>`` first. :meth:`VolumeStore.load` (capsized's
start) removes what an interrupted create or remove left. The records are always durable:
a volume is user data, and creates are rare.

References: a volume is *in use* while a container (running or not) names it in its mount points
(dockerd's reference counting); :meth:`VolumeStore.add_ref` / :meth:`VolumeStore.drop_ref`
keep the count, rebuilt at start from the containers' records.

Errors (dockerd's texts): NotFound ``get NAME: no such volume`` (404), InvalidArgument for a
bad name (400), FailedPrecondition ``remove NAME: volume is in use - [ID, ...]`` (409),
NotFound ``error looking up volume plugin X: plugin "X" not found`` for a driver other than
``local``, Unimplemented (501) for driver options (``type``/``device``/``o``: capsize's local
driver mounts nothing of its own).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

from runtime import atomicfile
from runtime.daemon.clock import rfc3339
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented

DRIVER = "local"
RECORD = "volume.json"
DATA = "_data"
#: dockerd's local driver: ``^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`` (two characters at least)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: The label Docker (23.0+) puts on anonymous volumes; capsize sets it too so they are visible.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def validate_name(name: str) -> str:
    """*name* if the local driver takes it; InvalidArgument with dockerd's text otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                              f'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              f"directory, use absolute path")
    return name


class VolumeStore:
    """The volumes under ``<data_root>/daemon/volumes`` (see the module docstring)."""

    def __init__(self, data_root: str):
        self.root = os.path.join(data_root, "daemon", "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.volumes: dict[str, dict] = {}
        self.refs: dict[str, set[str]] = {}

    # -- paths and views -------------------------------------------------------------------------
    def data_dir(self, name: str) -> str:
        """``<root>/daemon/volumes/<name>/_data``: the volume's Mountpoint."""
        return os.path.join(self.root, name, DATA)

    def view(self, vol: dict) -> dict:
        """The Engine API ``Volume`` object of *vol*."""
        return {"CreatedAt": rfc3339(vol["CreatedAt"]), "Driver": vol["Driver"], "Labels": vol["Labels"] or {},
                "Mountpoint": self.data_dir(vol["Name"]), "Name": vol["Name"], "Options": vol["Options"] or None,
                "Scope": "local"}

    # -- lookups ---------------------------------------------------------------------------------
    def get(self, name: str) -> dict:
        """The record of *name*; NotFound ``get NAME: no such volume``."""
        vol = self.volumes.get(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def users(self, name: str) -> list[str]:
        """Ids of the containers that use *name*, sorted."""
        return sorted(self.refs.get(name, ()))

    def add_ref(self, name: str, cid: str) -> None:
        self.refs.setdefault(name, set()).add(cid)

    def drop_ref(self, name: str, cid: str) -> None:
        users = self.refs.get(name)
        if users is not None:
            users.discard(cid)
            if not users:
                del self.refs[name]

    # -- create / remove -------------------------------------------------------------------------
    def create(self, name: str, driver: str = DRIVER, labels: dict | None = None, options: dict | None = None,
               anonymous: bool = False) -> tuple[dict, bool]:
        """``POST /volumes/create``: ``(record, created)``; an existing *name* is returned as it is
        (dockerd's create is idempotent). Errors: see the module docstring."""
        driver = driver or DRIVER
        if driver != DRIVER:
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        validate_name(name)
        if labels is not None and not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
            raise InvalidArgument("Labels must be an object of strings")
        if options:
            raise Unimplemented(f"create {name}: capsize's local driver takes no options "
                                f"({', '.join(sorted(options))}): it mounts nothing of its own")
        if name in self.volumes:
            return self.volumes[name], False
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        vol = {"Name": name, "Driver": DRIVER, "Labels": labels, "Options": {}, "CreatedAt": time.time_ns(),
               "Anonymous": anonymous}
        staging = os.path.join(self.root, f".new-{name}")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(os.path.join(staging, DATA), mode=0o755)
        os.chmod(os.path.join(staging, DATA), 0o755)   # whatever the umask
        atomicfile.write(os.path.join(staging, RECORD), json.dumps(vol), durable=True, mode=0o600)
        atomicfile.fsync_dir(staging)
        os.rename(staging, os.path.join(self.root, name))
        atomicfile.fsync_dir(self.root)
        self.volumes[name] = vol
        return vol, True

    def remove(self, name: str) -> None:
        """``DELETE /volumes/{name}``: NotFound, FailedPrecondition while in use (module docstring)."""
        self.get(name)
        users = self.users(name)
        if users:
            raise FailedPrecondition(f"remove {name}: volume is in use - [{', '.join(users)}]")
        path = os.path.join(self.root, name)
        doomed = os.path.join(self.root, f".del-{name}")
        os.rename(path, doomed)
        atomicfile.fsync_dir(self.root)
        del self.volumes[name]
        shutil.rmtree(doomed, ignore_errors=True)

    def load(self, on_problem=lambda msg: None) -> None:
        """Read every record (capsized's start); leftovers of interrupted creates/removes go."""
        self.volumes = {}
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if name.startswith((".new-", ".del-")):
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                for leftover in os.listdir(path):
                    if leftover.startswith(RECORD + atomicfile.TEMP_INFIX):
                        os.unlink(os.path.join(path, leftover))
                with open(os.path.join(path, RECORD)) as f:
                    vol = json.load(f)
                if vol.get("Name") != name or not os.path.isdir(os.path.join(path, DATA)):
                    raise ValueError(f"record names {vol.get('Name')!r} or {DATA} is missing")
            except (OSError, ValueError) as e:
                on_problem(f"skipping volume {name}: {e}")
                continue
            self.volumes[name] = vol

    def size(self, name: str) -> int:
        """Bytes of the files in the volume (for prune's SpaceReclaimed); unreadable entries count 0."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.data_dir(name)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total


def attach(store: VolumeStore, points: list[dict], cid: str) -> list[dict]:
    """Give every volume point of container *cid* its volume (dockerd's registerMountPoints):
    an anonymous one (no ``Name``) gets a new 64-hex name, a missing named one is created; each
    point's ``Source`` becomes the volume's ``_data`` and *cid* holds a reference. Returns the
    points whose volume was created here (the ones :mod:`runtime.daemon.copyup` may fill).
    On an error the volumes made here are removed again and the references dropped."""
    from runtime.daemon.names import new_id
    made, attached = [], []
    try:
        for p in points:
            if p["Type"] != "volume":
                continue
            if not p["Name"]:
                p["Name"] = new_id()
            _vol, created = store.create(p["Name"], labels=p.get("labels") or None, anonymous=not p["Named"])
            store.add_ref(p["Name"], cid)
            attached.append(p)
            p["Source"] = store.data_dir(p["Name"])
            if created:
                made.append(p)
    except BaseException:
        detach(store, attached, cid)
        for p in made:
            try:
                store.remove(p["Name"])
            except (NotFound, FailedPrecondition):
                pass
        raise
    return made


def detach(store: VolumeStore, points: list[dict], cid: str, remove_anonymous: bool = False) -> list[str]:
    """Drop *cid*'s references to its volumes; with *remove_anonymous* (``docker rm -v``) its
    anonymous volumes that no other container uses are removed (dockerd's removeMountPoints).
    Returns the names removed."""
    removed = []
    for p in points:
        if p.get("Type") != "volume" or not p.get("Name"):
            continue
        store.drop_ref(p["Name"], cid)
        if remove_anonymous and not p.get("Named") and p["Name"] in store.volumes and not store.users(p["Name"]):
            store.remove(p["Name"])
            removed.append(p["Name"])
    return removed
