"""The content store: immutable blobs addressed by their sha256 digest (OCI image-spec descriptors).

Layout: ``<dir>/blobs/sha256/<hex>`` (as an OCI image layout's ``blobs/``) and ``<dir>/ingest/``
for blobs being written. A blob is written to an ingest file while it is hashed, fsync'ed,
verified against the digest (and size) the caller expects, and only then renamed into place
(an atomic rename, then the directory is fsync'ed): a blob under ``blobs/`` is always complete
and always has the digest it is named by. A crash leaves at most an ingest file, which
:meth:`ContentStore.clean_ingest` removes at start-up.

Digests are ``"sha256:<64 lower-case hex>"``; anything else is InvalidArgument. A mismatch
between the bytes and the expected digest is InvalidArgument (``digest mismatch``), and the
ingest file is removed. A missing blob is NotFound.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

from runtime.api import failpoints
from runtime.atomicfile import fsync_dir
from runtime.errors import InvalidArgument, NotFound

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


def check_digest(digest) -> str:
    """Return *digest* if it is a valid ``sha256:<hex>`` digest, else raise InvalidArgument."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: want sha256:<64 hex digits>", field="digest")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
            if expected is not None and digest != expected:
                raise InvalidArgument(f"digest mismatch: content has {digest}, expected {expected}",
                                      expected=expected, actual=digest)
            if size is not None and size != self.size:
                raise InvalidArgument(f"size mismatch for {digest}: {self.size} bytes, expected {size}",
                                      digest=digest)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            target = self.store.path(digest)
            if os.path.exists(target):
                os.unlink(self.path)
            else:
                failpoints.hit("runtimed.content.commit.before-rename")
                os.rename(self.path, target)
                fsync_dir(os.path.dirname(target))
                failpoints.hit("runtimed.content.commit.after-rename")
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

    def clean_ingest(self) -> int:
        """Remove ingest files no writer owns (a crash's leftovers); returns how many."""
        removed = 0
        with self._lock:
            owned = set(self._ingesting)
        for name in os.listdir(self.ingest_dir):
            path = os.path.join(self.ingest_dir, name)
            if path not in owned:
                try:
                    os.unlink(path)
                    removed += 1
                except OSError:
                    pass
        return removed
