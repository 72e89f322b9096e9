"""A build's context: the uploaded tar, ``.dockerignore``, and the files COPY and ADD take from it.

* :func:`extract` unpacks the context (a tar, optionally gzip/bzip2/xz-compressed, as ``POST
  /build`` takes it) safely into a directory (no entry outside it, never through a symlink:
  :func:`runtime.highlevel.unpack.apply_layer` without whiteout handling).
* :class:`DockerIgnore` — ``.dockerignore`` patterns as moby's fileutils.PatternMatcher reads
  them: one pattern a line, ``#`` comments, paths cleaned and relative to the context root,
  ``*`` and ``?`` and ``[...]`` within one path component, ``**`` any number of components, ``!``
  an exception; the last matching pattern decides, and a path is excluded when it or one of its
  parent directories is. Excluded files are removed from the extracted context (the Dockerfile
  and ``.dockerignore`` stay readable for the build itself).
* :func:`sources` resolves COPY/ADD sources (wildcards as ``filepath.Match``) inside the context:
  a source leaving it is ``forbidden path outside the build context``, a missing one ``file not
  found in build context or excluded by .dockerignore``.
* :func:`checksum` — the sources' content hash for the build cache: names, modes, link targets
  and file bytes (not owners or times, which the CLI resets anyway).
* :func:`copy_into` copies a source (a file, or a directory's contents) to a path inside a root
  (symlinks of the destination scoped to the root, :func:`runtime.securejoin.secure_join`),
  keeping modes, times and symlinks, owned by the given uid:gid; missing parent directories are
  made (0755, same owner), as moby's ``copier`` does. :func:`unpack_archive` is ADD's local tar
  auto-extraction.

Errors are :class:`~runtime.errors.InvalidArgument` (400 before the build streams; a build step's
error once it does) with moby's texts.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import stat

from runtime.errors import InvalidArgument
from runtime.securejoin import secure_join


def extract(archive_path: str, dest: str) -> None:
    """Unpack the context tar at *archive_path* into the existing directory *dest*."""
    from runtime.highlevel.unpack import apply_layer
    if os.path.getsize(archive_path) == 0:
        return   # an empty context (docker build - < Dockerfile sends the Dockerfile alone)
    with open(archive_path, "rb") as f:
        head = f.read(512)
        f.seek(0)
        if _looks_like_dockerfile(head):
            with open(os.path.join(dest, "Dockerfile"), "wb") as out:
                shutil.copyfileobj(f, out)
            return
        try:
            apply_layer(f, dest, whiteouts=False)
        except InvalidArgument as e:
            raise InvalidArgument(f"failed to read the build context: {e.message}") from None


def _looks_like_dockerfile(head: bytes) -> bool:
    """``docker build - < Dockerfile``: the body is the Dockerfile itself, not a tar."""
    from runtime.highlevel.unpack import compression_of
    if compression_of(head) != "none" or len(head) >= 512 and head[257:262] == b"ustar":
        return False
    try:
        text = head.decode()
    except UnicodeDecodeError:
        return False
    return bool(re.match(r"\s*(#.*\n\s*)*(FROM|ARG)\s", text, re.IGNORECASE))


def _component_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise InvalidArgument(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:j]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = j
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


class DockerIgnore:
    """The patterns of a ``.dockerignore`` text (see the module docstring)."""

    def __init__(self, text: str = ""):
        self.rules: list[tuple[bool, re.Pattern]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = posixpath.normpath(line.lstrip("/")) if line.lstrip("/") else "."
            if line == ".":
                continue
            self.rules.append((negate, _component_regex(line)))

    def excluded(self, rel: str) -> bool:
        """Whether the context path *rel* (relative, ``/``-separated) is excluded."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        result = False
        for negate, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                result = not negate
        return result

    def apply(self, root: str, keep=()) -> int:
        """Remove every excluded entry under *root* but the paths in *keep*; returns how many."""
        if not self.rules:
            return 0
        removed = 0
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in list(dirnames) + filenames:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                full = os.path.join(dirpath, name)
                if rel in keep or not self.excluded(rel):
                    continue
                if name in dirnames and not os.path.islink(full):
                    if any(k.startswith(rel + "/") for k in keep) or any(neg for neg, _ in self.rules):
                        continue   # an exception may keep something below: decide per entry
                    shutil.rmtree(full)
                    dirnames.remove(name)
                else:
                    os.unlink(full)
                removed += 1
        return removed


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def sources(context: str, patterns: list[str], instruction: str = "COPY") -> list[str]:
    """The context-relative paths (``""`` = the context root) the source *patterns* name."""
    out: list[str] = []
    for pattern in patterns:
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        raw = posixpath.normpath(pattern)
        if raw == ".." or raw.startswith("../") or ("/../" in "/" + raw + "/" and not clean):
            raise InvalidArgument(f"{instruction} failed: forbidden path outside the build context: "
                                  f"{pattern} ()")
        if not _has_magic(clean):
            full = os.path.join(context, clean)
            if clean and not os.path.lexists(full):
                raise InvalidArgument(f"{instruction} failed: file not found in build context or excluded by "
                                      f".dockerignore: stat {clean}: file does not exist")
            out.append(clean)
            continue
        rx = _component_regex(clean)
        found = []
        for dirpath, dirnames, filenames in os.walk(context):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, context)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in sorted(dirnames + filenames):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if rel.count("/") == clean.count("/") and rx.match(rel):
                    found.append(rel)
        if not found:
            raise InvalidArgument(f"{instruction} failed: no source files were specified")
        out.extend(sorted(found))
    return out


def checksum(context: str, rels: list[str]) -> str:
    """``sha256:<hex>`` of the sources *rels* (see the module docstring)."""
    h = hashlib.sha256()

    def add(rel: str, full: str) -> None:
        st = os.lstat(full)
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(full).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        elif stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(full)):
                add(f"{rel}/{name}", os.path.join(full, name))
    for rel in rels:
        add(rel, os.path.join(context, rel) if rel else context)
    return "sha256:" + h.hexdigest()


def _mkdirs(root: str, path: str, uid: int, gid: int) -> str:
    """*path* (inside *root*, symlinks scoped) as a directory, made with its parents if missing."""
    target = secure_join(root, path)
    missing = []
    cur = target
    while not os.path.lexists(cur) and cur != root:
        missing.append(cur)
        cur = os.path.dirname(cur)
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        os.chown(d, uid, gid)
    if not os.path.isdir(target):
        raise InvalidArgument(f"cannot copy to {path}: not a directory")
    return target


def _copy_entry(src: str, dst: str, uid: int, gid: int) -> None:
    st = os.lstat(src)
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and os.path.isdir(dst) and not os.path.islink(dst)):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o755)
        for name in sorted(os.listdir(src)):
            _copy_entry(os.path.join(src, name), os.path.join(dst, name), uid, gid)
        os.chown(dst, uid, gid)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.chown(dst, uid, gid, follow_symlinks=False)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chown(dst, uid, gid)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    # devices, fifos and sockets in a context are skipped, as the CLI never sends them


def copy_into(src: str, root: str, dest: str, uid: int = 0, gid: int = 0) -> None:
    """Copy *src* (a host path in the context) to *dest* inside *root*: a directory's contents
    into the directory *dest*; a file to *dest*, or into it when *dest* ends with ``/`` or is a
    directory."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        target = _mkdirs(root, dest, uid, gid)
        for name in sorted(os.listdir(src)):
            _copy_entry(os.path.join(src, name), os.path.join(target, name), uid, gid)
        return
    full = secure_join(root, dest)
    if dest.endswith("/") or (os.path.isdir(full) and not os.path.islink(full)):
        target = _mkdirs(root, dest, uid, gid)
        _copy_entry(src, os.path.join(target, os.path.basename(src)), uid, gid)
        return
    parent = _mkdirs(root, posixpath.dirname(dest.rstrip("/")) or "/", uid, gid)
    _copy_entry(src, os.path.join(parent, posixpath.basename(dest.rstrip("/"))), uid, gid)


def is_archive(path: str) -> bool:
    """Whether *path* is a tar ADD unpacks (plain, gzip, bzip2 or xz)."""
    import tarfile
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with tarfile.open(path, "r:*") as t:
            return t.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def unpack_archive(path: str, root: str, dest: str, owner: tuple[int, int] | None) -> None:
    """ADD's auto-extraction: the archive at *path* unpacked into the directory *dest* of *root*;
    owners from the archive unless *owner* (uid, gid) is given."""
    from runtime.highlevel.unpack import apply_layer
    target = _mkdirs(root, dest, *(owner or (0, 0)))
    with open(path, "rb") as f:
        apply_layer(f, target, whiteouts=False)
    if owner is not None:
        for dirpath, dirnames, filenames in os.walk(target):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), *owner, follow_symlinks=False)


def _lookup(root: str, table: str, name: str) -> int | None:
    try:
        with open(secure_join(root, "/etc/" + table)) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
    except OSError:
        pass
    return None


def parse_chown(spec: str, root: str) -> tuple[int, int]:
    """``--chown=user[:group]`` (names from the image's /etc/passwd and /etc/group, or numbers);
    a missing group is the user string again, as moby's parseChownFlag reads it."""
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid chown string format: {spec}")
    user, group = parts[0], parts[1] if len(parts) == 2 else parts[0]
    uid = int(user) if user.isdigit() else _lookup(root, "passwd", user)
    if uid is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: can't find uid for "
                              f"user {user}: no such user: {user}")
    gid = int(group) if group.isdigit() else _lookup(root, "group", group)
    if gid is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: can't find gid for "
                              f"group {group}: no such group: {group}")
    return uid, gid
