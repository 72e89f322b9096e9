"""A snapshot's changes, read from its overlayfs upper directory (the storage driver's diff).

Three things are made from an active snapshot's upper dir (``fs/`` of the snapshot, see
:mod:`runtime.highlevel.snapshots`) and the ``fs/`` dirs of its committed parents:

:func:`write_layer`
    The OCI layer tar of the changes (image-spec layer.md "Representing Changes"), as Docker's
    overlay2 driver makes it (moby pkg/archive ``TarWithOptions`` with ``WhiteoutFormat:
    OverlayWhiteoutFormat``): every entry of the upper dir, in lexical order, names relative to
    the layer root (``etc/``, ``etc/passwd``), owners numeric (no user or group names), hard
    links inside the layer as hard-link entries, ``user.``/``security.`` xattrs as PAX
    ``SCHILY.xattr.*`` records (``trusted.`` ones are overlayfs' own and never written). An
    overlayfs whiteout (a character device 0/0) becomes an empty file ``<dir>/.wh.<name>``; an
    opaque directory (xattr ``trusted.overlay.opaque=y``) is written, followed by
    ``<dir>/.wh..wh..opq``. The result's sha256 is the layer's diff ID. Applying the tar with
    :func:`runtime.highlevel.unpack.apply_layer` on the parents gives the same tree back.
:func:`changes`
    ``docker diff``'s list (Engine API ``GET /containers/{id}/changes``: ``[{"Path", "Kind"}]``,
    Kind 0 = modified, 1 = added, 2 = deleted), by moby pkg/archive ``OverlayChanges``' rules:
    a path of the upper dir that exists in a lower dir is modified, else added; a whiteout is a
    deletion, and so is an opaque directory; a directory that exists below with the same mode,
    size and mtime is not listed unless a child was added or deleted, whose parent directory is
    then listed as modified.
:func:`write_tree`
    A tar of a whole directory tree (a read-only view of a container's root), for ``docker
    export``: the same entries as a layer, with no whiteout handling.
"""

from __future__ import annotations

import os
import stat
import tarfile

from runtime.highlevel.unpack import OPAQUE, OPAQUE_XATTR, WHITEOUT_PREFIX

MODIFIED, ADDED, DELETED = 0, 1, 2
CHUNK = 1 << 20


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(root: str):
    """``(relative path, full path, lstat)`` of every entry under *root* (not *root* itself), in
    lexical order, a directory's subtree right after it (Go's filepath.Walk order)."""
    def walk(rel_dir: str):
        full_dir = os.path.join(root, rel_dir) if rel_dir else root
        for name in sorted(os.listdir(full_dir)):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(full_dir, name)
            st = os.lstat(full)
            yield rel, full, st
            if stat.S_ISDIR(st.st_mode):
                yield from walk(rel)
    yield from walk("")


class _TarWriter:
    """Entries in the layer format of the module docstring."""

    def __init__(self, out):
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.links: dict[tuple[int, int], str] = {}

    def _info(self, rel: str, full: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel + "/" if stat.S_ISDIR(st.st_mode) else rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            else:
                if st.st_nlink > 1:
                    self.links[key] = rel
                info.type, info.size = tarfile.REGTYPE, st.st_size
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return None  # a socket: not representable in a tar (Go's archive/tar skips it too)
        pax = {}
        try:
            names = os.listxattr(full, follow_symlinks=False)
        except OSError:
            names = []
        for name in sorted(names):
            if name.startswith(("user.", "security.")):
                try:
                    value = os.getxattr(full, name, follow_symlinks=False)
                except OSError:
                    continue
                pax["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
        if pax:
            info.pax_headers = pax
        return info

    def add(self, rel: str, full: str, st: os.stat_result) -> None:
        info = self._info(rel, full, st)
        if info is None:
            return
        if info.type == tarfile.REGTYPE:
            with open(full, "rb") as f:
                self.tar.addfile(info, f)
        else:
            self.tar.addfile(info)

    def add_empty(self, rel: str, st: os.stat_result) -> None:
        """A whiteout or opaque marker: an empty regular file owned as *st*, mode 0."""
        info = tarfile.TarInfo(rel)
        info.type, info.mode, info.size = tarfile.REGTYPE, 0, 0
        info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


class _Counting:
    """A write-only stream that counts bytes on their way to *raw*."""

    def __init__(self, raw):
        self.raw, self.size = raw, 0

    def write(self, data) -> int:
        self.raw.write(data)
        self.size += len(data)
        return len(data)


def write_layer(upper: str, out) -> int:
    """Write the layer tar of the upper dir *upper* to *out* (a binary stream); returns its size
    in bytes. OSError when the directory cannot be read."""
    counted = _Counting(out)
    w = _TarWriter(counted)
    for rel, full, st in _walk(upper):
        if _is_whiteout(st):
            head, _, name = rel.rpartition("/")
            w.add_empty((head + "/" if head else "") + WHITEOUT_PREFIX + name, st)
            continue
        w.add(rel, full, st)
        if stat.S_ISDIR(st.st_mode) and _is_opaque(full):
            w.add_empty(rel + "/" + OPAQUE, st)
    w.close()
    return counted.size


def write_tree(root: str, out) -> int:
    """Write every entry under *root* (not *root* itself) as a tar to *out*; returns its size."""
    counted = _Counting(out)
    w = _TarWriter(counted)
    for rel, full, st in _walk(root):
        w.add(rel, full, st)
    w.close()
    return counted.size


def _below(lowers: list[str], rel: str) -> os.stat_result | None:
    """The stat (symlinks followed, as Go's os.Stat) of *rel* in the first lower dir that has it."""
    for lower in lowers:
        try:
            return os.stat(os.path.join(lower, rel))
        except OSError:
            continue
    return None


def changes(upper: str, lowers: list[str]) -> list[dict]:
    """``[{"Path": "/abs/path", "Kind": 0|1|2}]`` of the upper dir *upper* over *lowers* (top
    first); see the module docstring."""
    out: list[dict] = []
    changed_dirs: set[str] = set()
    for rel, full, st in _walk(upper):
        path = "/" + rel
        is_dir = stat.S_ISDIR(st.st_mode)
        if _is_whiteout(st) or (is_dir and _is_opaque(full)):
            kind = DELETED
        else:
            kind = ADDED
            below = _below(lowers, rel)
            if below is not None:
                if is_dir and stat.S_ISDIR(below.st_mode) and below.st_size == st.st_size \
                        and below.st_mode == st.st_mode and below.st_mtime_ns == st.st_mtime_ns:
                    continue
                kind = MODIFIED
        if is_dir:
            changed_dirs.add(path)
        if kind in (ADDED, DELETED):
            parent = os.path.dirname(path)
            if parent != "/" and parent not in changed_dirs:
                out.append({"Path": parent, "Kind": MODIFIED})
                changed_dirs.add(parent)
        out.append({"Path": path, "Kind": kind})
    return out
