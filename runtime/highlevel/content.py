"""The content store: immutable blobs addressed by their sha256 digest (OCI image-spec descriptors).

Layout: ``<dir>/blobs/sha256/<hex>`` (as an OCI image layout's ``blobs/``) and ``<dir>/ingest/``
for blobs being written. A blob is written to an ingest file while it is hashed, fsync'ed,
verified against the digest (and size) the caller expects, and only then renamed into place
(an atomic rename, then the directory is fsync'ed): a blob under ``blobs/`` is always complete
and always has the digest it is named by. A crash leaves at most an ingest file, which
:meth:`ContentStore.clean_ingest` removes at start-up.

**Resumable ingests** (a registry download, :meth:`ContentStore.ingest`) are named by the digest
they expect, as containerd's content store keeps them: ``ingest/<hex>.partial`` (the bytes so
far: its length is the offset) and ``ingest/<hex>.json`` (``{"expected", "size", "ref",
"updated"}``, ``updated`` in seconds since the epoch). An interrupted download leaves both;
the next :meth:`ContentStore.ingest` of that digest re-hashes the partial bytes and goes on
from the offset. They are removed by :meth:`ContentStore.clean_ingest` once not updated for
``max_age`` seconds (:data:`INGEST_EXPIRY`; a partial without its record is removed at once),
and a partial is never moved under ``blobs/`` unless its digest and size verify.

Digests are ``"sha256:<64 lower-case hex>"``; anything else is InvalidArgument. A mismatch
between the bytes and the expected digest is InvalidArgument (``digest mismatch``), and the
ingest file is removed. A missing blob is NotFound.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager

from runtime.api import failpoints
from runtime.atomicfile import fsync_dir
from runtime.errors import InvalidArgument, NotFound

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20
#: Seconds an interrupted resumable ingest is kept for a resume (containerd keeps ingests until
#: their lease expires; the default there is a day, an hour is plenty for the lab).
INGEST_EXPIRY = 3600.0
PARTIAL, RECORD = ".partial", ".json"


def check_digest(digest) -> str:
    """Return *digest* if it is a valid ``sha256:<hex>`` digest, else raise InvalidArgument."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: want sha256:<64 hex digits>", field="digest")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _verify(digest: str, written: int, expected: str | None, size: int | None) -> None:
    """InvalidArgument when *digest* / *written* bytes are not the *expected* digest / *size*."""
    if expected is not None and digest != expected:
        raise InvalidArgument(f"digest mismatch: content has {digest}, expected {expected}",
                              expected=expected, actual=digest)
    if size is not None and size != written:
        raise InvalidArgument(f"size mismatch for {digest}: {written} bytes, expected {size}", digest=digest)


def _place(store: "ContentStore", path: str, digest: str) -> None:
    """Rename the verified, closed file at *path* to the blob's place (dropped when it is there)."""
    target = store.path(digest)
    if os.path.exists(target):
        os.unlink(path)
    else:
        failpoints.hit("runtimed.content.commit.before-rename")
        os.rename(path, target)
        fsync_dir(os.path.dirname(target))
        failpoints.hit("runtimed.content.commit.after-rename")


class Writer:
    """One blob being written; use :meth:`ContentStore.writer`. ``write(bytes)`` then
    ``commit(expected=None, size=None) -> digest``; ``abort()`` (or leaving the ``with``
    block without a commit) removes the ingest file."""

    def __init__(self, store: "ContentStore"):
        self.store = store
        self.path = os.path.join(store.ingest_dir, os.urandom(16).hex())
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None
        with store._lock:
            store._ingesting.add(self.path)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self._hash.update(view)
        self.size += len(view)
        while view:
            view = view[os.write(self._fd, view):]

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Verify and move the blob into place; returns its digest. Raises InvalidArgument on a
        digest or size mismatch (the ingest file is removed)."""
        digest = "sha256:" + self._hash.hexdigest()
        try:
            _verify(digest, self.size, expected, size)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            _place(self.store, self.path, digest)
        except BaseException:
            self.abort()
            raise
        self._done()
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._done()

    def _done(self) -> None:
        with self.store._lock:
            self.store._ingesting.discard(self.path)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        if self.digest is None:
            self.abort()


class Ingest:
    """A resumable ingest of the blob *expected* (*size* bytes): see the module docstring.

    ``offset`` bytes are already there (hashed again on open); ``write(bytes)`` appends,
    ``restart()`` drops what is there (a server that ignored a Range), ``commit() -> digest``
    verifies and moves the blob into place (InvalidArgument on a mismatch: the partial is then
    removed), ``close()`` keeps the partial for a later resume. Use through
    :meth:`ContentStore.ingest`, which allows one ingest per digest at a time in a process."""

    def __init__(self, store: "ContentStore", expected: str, size: int | None, ref: str = ""):
        self.store, self.expected, self.expected_size, self.ref = store, check_digest(expected), size, ref
        base = os.path.join(store.ingest_dir, expected[len("sha256:"):])
        self.path, self.record_path = base + PARTIAL, base + RECORD
        self._hash = hashlib.sha256()
        self.offset = 0
        self.resumed = 0
        record = _read_json(self.record_path)
        if record is not None and record.get("expected") == expected and os.path.exists(self.path):
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            while True:  # re-hash what an earlier attempt wrote
                chunk = os.read(self._fd, CHUNK)
                if not chunk:
                    break
                self._hash.update(chunk)
                self.offset += len(chunk)
            if size is not None and self.offset > size:
                self.restart()
            self.resumed = self.offset
        else:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self._record()

    def _record(self) -> None:
        import json
        import time
        tmp = self.record_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"expected": self.expected, "size": self.expected_size, "ref": self.ref,
                       "updated": time.time()}, f)
        os.rename(tmp, self.record_path)

    def restart(self) -> None:
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self._hash.update(view)
        self.offset += len(view)
        while view:
            view = view[os.write(self._fd, view):]

    def commit(self) -> str:
        digest = "sha256:" + self._hash.hexdigest()
        try:
            _verify(digest, self.offset, self.expected, self.expected_size)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            _place(self.store, self.path, digest)
            _unlink(self.record_path)
        except BaseException:
            self.discard()
            raise
        return digest

    def close(self) -> None:
        """Keep the partial (and refresh its record) for a later resume."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._record()

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _unlink(self.path)
        _unlink(self.record_path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_json(path: str):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class ContentStore:
    """Blobs under *directory* (see the module docstring). Thread-safe."""

    def __init__(self, directory: str):
        self.dir = directory
        self.blobs_dir = os.path.join(directory, "blobs", "sha256")
        self.ingest_dir = os.path.join(directory, "ingest")
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.ingest_dir, exist_ok=True)
        self._lock = threading.Lock()
        self._ingesting: set[str] = set()
        self._ingest_locks: dict[str, threading.Lock] = {}

    def path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, check_digest(digest)[len("sha256:"):])

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found", digest=digest) from None

    def open(self, digest: str):
        """The blob as a binary file object; NotFound when missing."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found", digest=digest) from None

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        """A small blob's bytes (a manifest, a config); InvalidArgument above *limit* bytes."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"content {digest} is larger than {limit} bytes", digest=digest)
        return data

    def writer(self) -> Writer:
        return Writer(self)

    @contextmanager
    def ingest(self, expected: str, size: int | None = None, ref: str = ""):
        """``with store.ingest(digest, size) as ing:`` a resumable :class:`Ingest` (None when the
        blob is already stored, perhaps by a concurrent ingest waited for). Leaving the block
        without a commit keeps the partial; an exception from the block keeps it too (a
        transfer error: resumed next time), except InvalidArgument (bad content: discarded)."""
        check_digest(expected)
        with self._lock:
            lock = self._ingest_locks.setdefault(expected, threading.Lock())
        with lock:
            if self.exists(expected):
                yield None
                return
            ing = Ingest(self, expected, size, ref)
            with self._lock:
                self._ingesting.add(ing.path)
            try:
                yield ing
            except InvalidArgument:
                ing.discard()
                raise
            finally:
                ing.close()
                with self._lock:
                    self._ingesting.discard(ing.path)

    def partial_ingests(self) -> list[dict]:
        """Resumable ingests on disk: ``[{"digest", "offset", "size", "ref", "updated", "path"}]``
        (``digest`` None for a partial without its record)."""
        out = []
        for name in sorted(os.listdir(self.ingest_dir)):
            if not name.endswith(PARTIAL):
                continue
            path = os.path.join(self.ingest_dir, name)
            record = _read_json(path[:-len(PARTIAL)] + RECORD) or {}
            try:
                offset = os.path.getsize(path)
            except OSError:
                continue
            out.append({"digest": record.get("expected"), "offset": offset, "size": record.get("size"),
                        "ref": record.get("ref", ""), "updated": record.get("updated"), "path": path})
        return out

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store *data*; returns its digest (verified against *expected* if given)."""
        with self.writer() as w:
            w.write(data)
            return w.commit(expected, len(data))

    def put_stream(self, stream, expected: str | None = None, size: int | None = None) -> str:
        """Store what *stream* (a binary file object) yields until EOF; returns its digest."""
        with self.writer() as w:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                w.write(chunk)
            return w.commit(expected, size)

    def delete(self, digest: str) -> bool:
        """Remove a blob; returns False when it did not exist."""
        try:
            os.unlink(self.path(digest))
            return True
        except FileNotFoundError:
            return False

    def list(self) -> list[str]:
        """Every blob's digest."""
        return sorted("sha256:" + name for name in os.listdir(self.blobs_dir) if len(name) == 64)

    def orphan_ingests(self, max_age: float = INGEST_EXPIRY) -> list[str]:
        """Ingest file names no writer in this process owns and no resume will use: a plain
        writer's leftovers, a partial without its record (or the reverse), a resumable ingest
        not updated for *max_age* seconds."""
        import time
        with self._lock:
            owned = {os.path.basename(p) for p in self._ingesting}
        now = time.time()
        names = set(os.listdir(self.ingest_dir))
        out = []
        for name in sorted(names):
            stem = name[:-len(RECORD)] if name.endswith(RECORD) else \
                name[:-len(PARTIAL)] if name.endswith(PARTIAL) else None
            if stem is not None and stem + PARTIAL in owned:
                continue
            if stem is not None and {stem + PARTIAL, stem + RECORD} <= names:
                updated = (_read_json(os.path.join(self.ingest_dir, stem + RECORD)) or {}).get("updated") or 0
                if now - updated < max_age:
                    continue
            if name not in owned:
                out.append(name)
        return out

    def clean_ingest(self, max_age: float = INGEST_EXPIRY) -> int:
        """Remove :meth:`orphan_ingests` (a crash's leftovers, stale partials); returns how many."""
        removed = 0
        for name in self.orphan_ingests(max_age):
            try:
                os.unlink(os.path.join(self.ingest_dir, name))
                removed += 1
            except OSError:
                pass
        return removed
