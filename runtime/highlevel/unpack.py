"""Applying one image layer (a tar, optionally gzip/bzip2/xz-compressed) to a directory, safely.

The layer is read as a stream, once: while its entries are written under *target*, the
uncompressed bytes are hashed, giving the layer's diff ID (``sha256:<hex>`` of the uncompressed
tar, OCI image-spec config.md ``rootfs.diff_ids``).

Whiteouts (OCI image-spec layer.md "Whiteouts", Docker's AUFS-style names) become what
overlayfs understands, as Docker's overlay2 driver writes them:

* ``<dir>/.wh.<name>`` — ``<name>`` is deleted from the layers below: a character device 0/0
  named ``<name>`` (an overlayfs whiteout);
* ``<dir>/.wh..wh..opq`` — ``<dir>`` is opaque (nothing from below shows through): the xattr
  ``trusted.overlay.opaque=y`` on ``<dir>``;
* other ``.wh..wh.*`` names (AUFS bookkeeping) are skipped.

Safety: an entry that could write outside *target* refuses the whole layer with
:class:`~runtime.errors.InvalidArgument` (the caller removes the partial directory):

* an absolute name, or any ``..`` component, in an entry's name or a hard link's target;
* an entry whose parent, inside *target*, is a symlink or not a directory (no entry is ever
  written through a symlink, whatever the link points to);
* a hard link to something that does not exist in the layer, or to a directory;
* a symlink whose relative target leaves the layer (``a/b -> ../../x``). Absolute targets are
  kept: they are resolved inside the container's root at run time.

Files are created with ``O_EXCL | O_NOFOLLOW`` after whatever was at their path is removed;
owners, modes (setuid bits after chown), mtimes and ``user.``/``security.`` xattrs (PAX
``SCHILY.xattr.*``) are applied; ``trusted.`` xattrs in a tar are ignored (they could forge
overlayfs' own). Device nodes, owners and xattrs are made through the host
(:data:`runtime.host.HOST` by default: ``mknod``, ``chown``, ``setxattr``). zstd layers are
read with the ``zstandard`` package; anything that is not a tar is InvalidArgument.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import tarfile

from runtime.errors import InvalidArgument
from runtime.host import HOST

OPAQUE = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
CHUNK = 1 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class HashingReader:
    """A read-only stream that hashes (sha256) and counts every byte read through it."""

    def __init__(self, raw):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def compression_of(head: bytes) -> str:
    """``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zstd"`` or ``"none"`` from a blob's first bytes."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def decompressed(fileobj):
    """(a stream of *fileobj*'s uncompressed bytes, the compression name). *fileobj* must be
    seekable (a content-store blob)."""
    head = fileobj.read(8)
    fileobj.seek(0)
    kind = compression_of(head)
    if kind == "gzip":
        import gzip
        return gzip.GzipFile(fileobj=fileobj, mode="rb"), kind
    if kind == "bzip2":
        import bz2
        return bz2.BZ2File(fileobj, "rb"), kind
    if kind == "xz":
        import lzma
        return lzma.LZMAFile(fileobj, "rb"), kind
    if kind == "zstd":   # the zstandard package (PyPI), imported here only: never by the shim or capsize-runc
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True), kind
    return fileobj, kind


def _refuse(entry: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"unsafe layer: entry {entry!r} {why}", entry=entry)


def clean_name(name: str, entry: str | None = None) -> str:
    """A tar entry's path relative to the layer root (``""`` for the root itself); refuses
    absolute paths, ``..`` components and NUL bytes."""
    entry = name if entry is None else entry
    if not name or "\x00" in name:
        raise _refuse(entry, "has an empty or invalid name")
    if name.startswith("/"):
        raise _refuse(entry, "is an absolute path")
    if ".." in name.split("/"):
        raise _refuse(entry, "has a '..' component")
    norm = posixpath.normpath(name)
    return "" if norm == "." else norm


class _Applier:
    def __init__(self, target: str, host, whiteouts: bool = True):
        self.target = os.path.abspath(target)
        self.host = host
        self.whiteouts = whiteouts
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.entries = 0

    # -- paths -------------------------------------------------------------------------------
    def parent_dir(self, rel_parent: str, entry: str) -> str:
        """The real directory *rel_parent* under the target, made if missing; never a symlink."""
        cur = self.target
        for comp in filter(None, rel_parent.split("/")):
            nxt = os.path.join(cur, comp)
            try:
                st = os.lstat(nxt)
            except FileNotFoundError:
                os.mkdir(nxt, 0o755)
                cur = nxt
                continue
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(entry, f"goes through the symlink {os.path.relpath(nxt, self.target)!r}")
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(entry, f"has a parent that is not a directory: {os.path.relpath(nxt, self.target)!r}")
            cur = nxt
        return cur

    @staticmethod
    def remove(path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    # -- entries -----------------------------------------------------------------------------
    def apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name)
        if rel == "":
            return  # the layer root's own entry: the snapshot directory keeps its attributes
        self.entries += 1
        rel_parent, base = posixpath.split(rel)
        parent = self.parent_dir(rel_parent, m.name)
        if not self.whiteouts:
            pass
        elif base == OPAQUE:
            self.host.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        elif base.startswith(WHITEOUT_META_PREFIX):
            return
        elif base.startswith(WHITEOUT_PREFIX):
            victim = base[len(WHITEOUT_PREFIX):]
            if victim in ("", ".", ".."):
                raise _refuse(m.name, "is a whiteout without a name")
            path = os.path.join(parent, victim)
            self.remove(path)
            self.host.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
            self.host.chown(path, m.uid, m.gid, follow_symlinks=False)
            return
        path = os.path.join(parent, base)
        if m.isdir():
            st = None
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                pass
            if st is not None and not stat.S_ISDIR(st.st_mode):
                self.remove(path)
                st = None
            if st is None:
                os.mkdir(path, 0o700)
            self.dirs.append((path, m))
        elif m.isreg():
            self.remove(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                src = tar.extractfile(m)
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        elif m.issym():
            self.check_symlink(rel, m)
            self.remove(path)
            os.symlink(m.linkname, path)
        elif m.islnk():
            source = self.link_source(m)
            self.remove(path)
            os.link(source, path, follow_symlinks=False)
            return  # a hard link shares its source's inode and attributes
        elif m.ischr() or m.isblk():
            self.remove(path)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            self.host.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            self.remove(path)
            os.mkfifo(path, 0o600)
        else:
            return  # other types (GNU volume headers...) carry no file
        self.host.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        self.xattrs(path, m)
        if not m.isdir():
            os.utime(path, ns=(int(m.mtime * 1e9),) * 2, follow_symlinks=False)

    def check_symlink(self, rel: str, m: tarfile.TarInfo) -> None:
        link = m.linkname
        if not link or "\x00" in link:
            raise _refuse(m.name, "is a symlink without a target")
        if link.startswith("/"):
            return
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        if resolved == ".." or resolved.startswith("../"):
            raise _refuse(m.name, f"is a symlink pointing outside the layer ({link!r})")

    def link_source(self, m: tarfile.TarInfo) -> str:
        rel = clean_name(m.linkname, m.name)
        if rel == "":
            raise _refuse(m.name, "is a hard link to the layer root")
        rel_parent, base = posixpath.split(rel)
        parent = self.parent_dir(rel_parent, m.name)
        source = os.path.join(parent, base)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise _refuse(m.name, f"is a hard link to {m.linkname!r}, which is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise _refuse(m.name, f"is a hard link to a directory ({m.linkname!r})")
        return source

    def xattrs(self, path: str, m: tarfile.TarInfo) -> None:
        for key, value in (m.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if not name.startswith(("user.", "security.")):
                continue
            try:
                self.host.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            except OSError:
                pass  # the filesystem may not support it; the file itself is there

    def finish(self) -> None:
        for path, m in reversed(self.dirs):
            os.utime(path, ns=(int(m.mtime * 1e9),) * 2, follow_symlinks=False)


def apply_layer(fileobj, target: str, host=HOST, whiteouts: bool = True) -> dict:
    """Unpack the layer in *fileobj* (seekable) into the existing directory *target*.
    *whiteouts* False: a plain archive (a build context, an ``ADD``ed tar), ``.wh.`` names are files.

    Returns ``{"diff_id": "sha256:<hex>", "compression": "gzip"|..., "entries": int, "size":
    uncompressed bytes}``. Raises InvalidArgument for an unsafe or malformed layer,
    OSError for host failures; the caller discards *target* on any error.
    """
    stream, compression = decompressed(fileobj)
    reader = HashingReader(stream)
    applier = _Applier(target, host, whiteouts)
    try:
        with tarfile.open(fileobj=reader, mode="r|", errorlevel=2) as tar:
            for member in tar:
                applier.apply(tar, member)
        reader.drain()
    except (tarfile.TarError, EOFError) as e:
        raise InvalidArgument(f"layer is not a valid tar archive: {e}") from None
    except OSError as e:
        if e.errno is None:  # gzip.BadGzipFile and friends: the data, not the host
            raise InvalidArgument(f"layer is not valid {compression} data: {e}") from None
        raise
    except Exception as e:  # zlib.error, lzma.LZMAError: corrupt compressed data
        if type(e).__module__ in ("zlib", "lzma", "_lzma", "bz2", "_bz2"):
            raise InvalidArgument(f"layer is not valid {compression} data: {e}") from None
        raise
    applier.finish()
    return {"diff_id": reader.digest, "compression": compression, "entries": applier.entries, "size": reader.size}


def diff_id_of(fileobj) -> str:
    """The diff ID of a layer blob without unpacking it (sha256 of its uncompressed bytes)."""
    stream, _ = decompressed(fileobj)
    reader = HashingReader(stream)
    try:
        reader.drain()
    except OSError as e:
        if e.errno is not None:
            raise
        raise InvalidArgument(f"layer is not valid compressed data: {e}") from None
    except Exception as e:  # noqa: BLE001 - zlib.error, lzma.LZMAError, EOFError
        if isinstance(e, EOFError) or type(e).__module__ in ("zlib", "lzma", "_lzma", "bz2", "_bz2"):
            raise InvalidArgument(f"layer is not valid compressed data: {e}") from None
        raise
    return reader.digest
