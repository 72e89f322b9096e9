"""``docker cp``'s file work, done chrooted into the container's root (dockerd's chrootarchive).

Run as ``python -m runtime.daemon.chrootarchive ROOT ACTION PATH [flags]`` by
:mod:`runtime.daemon.archive`; standard library only, everything imported before the chroot.
The process ``chroot(2)``s into ROOT (``/proc/<init pid>/root`` of a running container: its
root with every mount it has; a stopped one's snapshot mounted by capsized) and works there,
so the kernel resolves every path and symlink inside the container and nothing can reach the
host's files (CVE-2018-15664, CVE-2019-14271 were this done outside the chroot).

Actions (Engine API 1.41 ``/containers/{id}/archive``):

* ``stat PATH`` -- prints the ``PathStat`` JSON (``{"name", "size", "mode", "mtime",
  "linkTarget"}``; ``mode`` in Go's ``os.FileMode`` bits, ``mtime`` RFC 3339, ``linkTarget``
  the fully resolved absolute path of a symlink) of PATH, its last component not followed.
* ``get PATH`` -- the stat line on stderr's first line, then a tar of PATH on stdout, its entries
  named from PATH's base name (``/etc`` -> ``etc/...``; ``/etc/.`` -> ``./...``), symlinks kept as
  links, numeric owners.
* ``put DIR [--no-overwrite-dir-non-dir] [--copy-uid-gid]`` -- extracts the tar on stdin into
  the existing directory DIR. Owners become root (0:0) unless ``--copy-uid-gid`` (as dockerd:
  ``docker cp`` without ``-a``); with ``--no-overwrite-dir-non-dir`` a directory is never replaced
  by a non-directory nor the reverse.

Errors: exit 2 with ``{"code": "not_found"|"invalid"|"failed", "message"}`` as the last stderr
line: ``not_found`` for a missing PATH or DIR, ``invalid`` for DIR not a directory or an
overwrite refused, ``failed`` for anything else.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tarfile
import time

for _codec in ("gzip", "bz2", "lzma"):   # tarfile's "r|*" imports these lazily: not after the chroot
    try:
        __import__(_codec)
    except ImportError:
        pass

# Go's os.FileMode type bits (io/fs), as the Engine API's PathStat.mode carries them
GO_MODE_DIR, GO_MODE_SYMLINK, GO_MODE_DEVICE = 1 << 31, 1 << 27, 1 << 26
GO_MODE_NAMED_PIPE, GO_MODE_SOCKET = 1 << 25, 1 << 24
GO_MODE_SETUID, GO_MODE_SETGID, GO_MODE_CHAR_DEVICE, GO_MODE_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class Failure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def go_file_mode(st_mode: int) -> int:
    """A ``stat`` ``st_mode`` as Go's ``os.FileMode`` (permission bits plus type and special bits)."""
    mode = stat.S_IMODE(st_mode) & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= GO_MODE_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= GO_MODE_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= GO_MODE_NAMED_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= GO_MODE_SOCKET
    elif stat.S_ISCHR(st_mode):
        mode |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif stat.S_ISBLK(st_mode):
        mode |= GO_MODE_DEVICE
    for bit, go in ((stat.S_ISUID, GO_MODE_SETUID), (stat.S_ISGID, GO_MODE_SETGID), (stat.S_ISVTX, GO_MODE_STICKY)):
        if st_mode & bit:
            mode |= go
    return mode


def _rfc3339(t: float) -> str:
    whole = int(t)
    frac = f"{t - whole:.9f}"[2:].rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ("." + frac if frac else "") + "Z"


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise Failure("not_found", f"Could not find the file {path} in container") from None
    except NotADirectoryError:
        raise Failure("not_found", f"Could not find the file {path} in container") from None


def path_stat(path: str) -> dict:
    """The ``PathStat`` of *path* (module docstring)."""
    st = _lstat(path)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.path.realpath(path)
    name = os.path.basename(os.path.normpath(path)) or "/"
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode), "mtime": _rfc3339(st.st_mtime),
            "linkTarget": link}


def get(path: str, out) -> None:
    """Write a tar of *path* to binary stream *out* (module docstring)."""
    _lstat(path)
    norm = os.path.normpath(path)
    arcname = "." if path.endswith("/.") or norm == "/" else os.path.basename(norm)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=arcname, recursive=True)


def put(directory: str, stream, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
    """Extract the tar read from *stream* into *directory* (module docstring)."""
    st = os.stat(directory) if os.path.exists(directory) else None
    if st is None:
        raise Failure("not_found", f"Could not find the file {directory} in container")
    if not stat.S_ISDIR(st.st_mode):
        raise Failure("invalid", f"extraction point is not a directory: {directory}")
    os.chdir(directory)
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            name = os.path.normpath(member.name.lstrip("/"))
            if name == ".." or name.startswith("../"):
                raise Failure("invalid", f"invalid archive member name {member.name!r}")
            member.name = name
            if no_overwrite_dir_non_dir and name != ".":
                try:
                    existing = os.lstat(name)
                except OSError:
                    existing = None
                if existing is not None and stat.S_ISDIR(existing.st_mode) != member.isdir():
                    what = ("cannot overwrite directory %r with non-directory %r" if member.isdir() is False
                            else "cannot overwrite non-directory %r with directory %r")
                    raise Failure("invalid", what % (os.path.join(directory, name), member.name))
            if not copy_uid_gid:
                member.uid = member.gid = 0
                member.uname = member.gname = ""
            tar.extract(member, ".", set_attrs=True, numeric_owner=True)


def main(argv: list[str]) -> int:
    try:
        root, action, path = argv[:3]
        flags = set(argv[3:])
        os.chroot(root)
        os.chdir("/")
        if action == "stat":
            sys.stdout.write(json.dumps(path_stat(path)) + "\n")
        elif action == "get":
            sys.stderr.write(json.dumps(path_stat(path)) + "\n")
            sys.stderr.flush()
            get(path, sys.stdout.buffer)
        elif action == "put":
            put(path, sys.stdin.buffer, "--no-overwrite-dir-non-dir" in flags, "--copy-uid-gid" in flags)
        else:
            raise Failure("invalid", f"unknown action {action!r}")
        sys.stdout.flush()
        return 0
    except Failure as e:
        sys.stderr.write(json.dumps({"code": e.code, "message": e.message}) + "\n")
    except (tarfile.TarError, EOFError) as e:   # the given archive is not a (whole) tar
        sys.stderr.write(json.dumps({"code": "bad_tar", "message": str(e) or type(e).__name__}) + "\n")
    except (OSError, ValueError) as e:
        sys.stderr.write(json.dumps({"code": "failed", "message": str(e)}) + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
