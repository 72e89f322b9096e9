"""The metadata store: images, containers and snapshots in one sqlite3 database.

Crash safety: the database runs in WAL mode with ``synchronous=FULL``; every change is one
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so a SIGKILL or a power cut at any moment
leaves the state before or after that change, never a mix (sqlite's atomic commit). Blobs and
snapshot directories live outside the database; an object is written to disk first and
recorded second, and removed from the record first and from disk second, so a crash can leave
only unreferenced files, which garbage collection removes.

Tables (``namespace`` scopes images and containers as containerd's namespaces do; committed
snapshots are shared by all namespaces and have namespace ``""``):

* ``images(namespace, name, target_media_type, target_digest, target_size, config_digest,
  labels, created_at, updated_at)``;
* ``containers(namespace, id, image, runtime, snapshot_key, spec, labels, created_at,
  updated_at)``;
* ``snapshots(namespace, key, kind, parent, dir, created_at)`` where ``kind`` is ``committed``
  (an unpacked layer, keyed by its chain ID) or ``active`` (a container's writable layer,
  keyed by its snapshot key) and ``parent`` is the key of the committed snapshot below it.

Rows come back as dicts; ``labels`` and ``spec`` are decoded JSON. Thread-safe (one
connection, one lock). Errors: AlreadyExists for a duplicate key, NotFound for a missing row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager

from runtime.errors import AlreadyExists, CapsizeError, NotFound
from runtime.rfc3339 import format_nano

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    namespace TEXT NOT NULL, name TEXT NOT NULL,
    target_media_type TEXT NOT NULL, target_digest TEXT NOT NULL, target_size INTEGER NOT NULL,
    config_digest TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name));
CREATE TABLE IF NOT EXISTS containers (
    namespace TEXT NOT NULL, id TEXT NOT NULL, image TEXT NOT NULL, runtime TEXT NOT NULL,
    snapshot_key TEXT NOT NULL, spec TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, id));
CREATE TABLE IF NOT EXISTS snapshots (
    namespace TEXT NOT NULL, key TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('committed', 'active')),
    parent TEXT NOT NULL DEFAULT '', dir TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key));
"""

_JSON_COLUMNS = ("labels", "spec")


def _row(cursor, row) -> dict:
    d = {col[0]: value for col, value in zip(cursor.description, row)}
    for key in _JSON_COLUMNS:
        if key in d and isinstance(d[key], str):
            d[key] = json.loads(d[key])
    return d


class Metadata:
    """The database at *path* (created if missing). See the module docstring."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = _row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()["user_version"]
            if version > SCHEMA_VERSION:
                raise CapsizeError(f"metadata database {path} has schema {version}, newer than this "
                                   f"capsize-runtimed's {SCHEMA_VERSION}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise CapsizeError(f"cannot open metadata database {path}: {e}") from None
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self):
        """``with md.transaction() as db:`` — one atomic change (rolled back on any exception)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, *args) -> list[dict]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, *args) -> dict | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def integrity_check(self) -> str:
        """sqlite's ``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        return self._one("PRAGMA integrity_check")["integrity_check"]

    def namespaces(self) -> list[str]:
        rows = self._all("SELECT namespace FROM images UNION SELECT namespace FROM containers "
                         "UNION SELECT namespace FROM snapshots WHERE namespace != ''")
        return sorted({r["namespace"] for r in rows} | {"default"})

    # -- images ------------------------------------------------------------------------------
    def put_image(self, namespace: str, name: str, target: dict, config_digest: str,
                  labels: dict | None = None) -> tuple[dict, str]:
        """Create or repoint an image; returns (row, ``"create"`` | ``"update"`` | ``"same"``)."""
        now = format_nano()
        with self.transaction() as db:
            old = db.execute("SELECT * FROM images WHERE namespace=? AND name=?", (namespace, name)).fetchone()
            if old and old["target_digest"] == target["digest"]:
                return old, "same"
            db.execute(
                "INSERT INTO images (namespace, name, target_media_type, target_digest, target_size, "
                "config_digest, labels, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (namespace, name) DO UPDATE SET target_media_type=excluded.target_media_type, "
                "target_digest=excluded.target_digest, target_size=excluded.target_size, "
                "config_digest=excluded.config_digest, labels=excluded.labels, updated_at=excluded.updated_at",
                (namespace, name, target["mediaType"], target["digest"], target["size"], config_digest,
                 json.dumps(labels or {}), old["created_at"] if old else now, now))
            row = db.execute("SELECT * FROM images WHERE namespace=? AND name=?", (namespace, name)).fetchone()
        return row, "update" if old else "create"

    def get_image(self, namespace: str, name: str) -> dict:
        row = self._one("SELECT * FROM images WHERE namespace=? AND name=?", namespace, name)
        if row is None:
            raise NotFound(f"image {name!r} not found in namespace {namespace}", namespace=namespace, image=name)
        return row

    def find_image(self, namespace: str, name: str) -> dict | None:
        return self._one("SELECT * FROM images WHERE namespace=? AND name=?", namespace, name)

    def list_images(self, namespace: str | None = None, config_digest: str | None = None) -> list[dict]:
        """Image rows, ordered by (namespace,) name: of *namespace* (else all), of the image
        config *config_digest* only when given."""
        if config_digest is not None:
            if namespace is None:
                return self._all("SELECT * FROM images WHERE config_digest=? ORDER BY namespace, name",
                                 config_digest)
            return self._all("SELECT * FROM images WHERE namespace=? AND config_digest=? ORDER BY name",
                             namespace, config_digest)
        if namespace is None:
            return self._all("SELECT * FROM images ORDER BY namespace, name")
        return self._all("SELECT * FROM images WHERE namespace=? ORDER BY name", namespace)

    def delete_image(self, namespace: str, name: str) -> dict:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM images WHERE namespace=? AND name=?", (namespace, name)).fetchone()
            if row is None:
                raise NotFound(f"image {name!r} not found in namespace {namespace}",
                               namespace=namespace, image=name)
            db.execute("DELETE FROM images WHERE namespace=? AND name=?", (namespace, name))
        return row

    # -- containers --------------------------------------------------------------------------
    def create_container(self, namespace: str, cid: str, image: str, runtime: str, snapshot_key: str,
                         spec: dict, labels: dict) -> dict:
        now = format_nano()
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO containers (namespace, id, image, runtime, snapshot_key, spec, labels, "
                           "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                           (namespace, cid, image, runtime, snapshot_key, json.dumps(spec), json.dumps(labels),
                            now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"container {cid!r} already exists in namespace {namespace}",
                                namespace=namespace, id=cid) from None
        return self.get_container(namespace, cid)

    def get_container(self, namespace: str, cid: str) -> dict:
        row = self._one("SELECT * FROM containers WHERE namespace=? AND id=?", namespace, cid)
        if row is None:
            raise NotFound(f"container {cid!r} not found in namespace {namespace}", namespace=namespace, id=cid)
        return row

    def find_container(self, namespace: str, cid: str) -> dict | None:
        return self._one("SELECT * FROM containers WHERE namespace=? AND id=?", namespace, cid)

    def list_containers(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return self._all("SELECT * FROM containers ORDER BY namespace, id")
        return self._all("SELECT * FROM containers WHERE namespace=? ORDER BY id", namespace)

    def update_container(self, namespace: str, cid: str, **fields) -> dict:
        """Change ``labels`` and/or ``spec``; NotFound for an unknown container."""
        sets, args = [], []
        for key in ("labels", "spec"):
            if key in fields:
                sets.append(f"{key}=?")
                args.append(json.dumps(fields[key]))
        with self.transaction() as db:
            n = db.execute(f"UPDATE containers SET {', '.join(sets + ['updated_at=?'])} WHERE namespace=? AND id=?",
                           (*args, format_nano(), namespace, cid)).rowcount
        if not n:
            raise NotFound(f"container {cid!r} not found in namespace {namespace}", namespace=namespace, id=cid)
        return self.get_container(namespace, cid)

    def delete_container(self, namespace: str, cid: str) -> dict:
        """Remove the container and its active snapshot's row (one transaction); returns both
        rows as ``{"container", "snapshot"}`` (snapshot None if it had none)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM containers WHERE namespace=? AND id=?", (namespace, cid)).fetchone()
            if row is None:
                raise NotFound(f"container {cid!r} not found in namespace {namespace}",
                               namespace=namespace, id=cid)
            snap = db.execute("SELECT * FROM snapshots WHERE namespace=? AND key=? AND kind='active'",
                              (namespace, row["snapshot_key"])).fetchone()
            db.execute("DELETE FROM containers WHERE namespace=? AND id=?", (namespace, cid))
            if snap:
                db.execute("DELETE FROM snapshots WHERE namespace=? AND key=?", (namespace, row["snapshot_key"]))
        return {"container": row, "snapshot": snap}

    # -- snapshots ---------------------------------------------------------------------------
    def add_snapshot(self, namespace: str, key: str, kind: str, parent: str, directory: str) -> dict:
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO snapshots (namespace, key, kind, parent, dir, created_at) "
                           "VALUES (?,?,?,?,?,?)", (namespace, key, kind, parent, directory, format_nano()))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"snapshot {key!r} already exists", namespace=namespace, key=key) from None
        return self.get_snapshot(namespace, key)

    def find_snapshot(self, namespace: str, key: str) -> dict | None:
        return self._one("SELECT * FROM snapshots WHERE namespace=? AND key=?", namespace, key)

    def get_snapshot(self, namespace: str, key: str) -> dict:
        row = self.find_snapshot(namespace, key)
        if row is None:
            raise NotFound(f"snapshot {key!r} not found", namespace=namespace, key=key)
        return row

    def list_snapshots(self) -> list[dict]:
        return self._all("SELECT * FROM snapshots ORDER BY namespace, key")

    def delete_snapshot(self, namespace: str, key: str) -> dict | None:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM snapshots WHERE namespace=? AND key=?", (namespace, key)).fetchone()
            if row:
                db.execute("DELETE FROM snapshots WHERE namespace=? AND key=?", (namespace, key))
        return row
