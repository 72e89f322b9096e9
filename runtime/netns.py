"""Network namespaces kept by a bind mount of nsfs on a file, as ``ip netns add`` and dockerd's
sandboxes (``/var/run/docker/netns/<id>``) keep them.

* :func:`create` makes a new network namespace and binds it on *path* (a regular file it
  creates), with ``lo`` up; :func:`remove` lazily unmounts (``umount2(MNT_DETACH)``) and unlinks
  it. Both are idempotent.
* :func:`run_in` calls a function in another network namespace, on a thread of its own: the
  namespace of a thread is its own (setns(2)/unshare(2) act on the calling thread), so the
  caller's namespace, and its other threads', never change. A netlink socket opened inside
  stays bound to that namespace for its whole life.
* :func:`set_sysctl` writes a ``net.*`` sysctl of one namespace (``/proc/sys/net`` answers for
  the namespace of the thread that opens it).

The namespace is made by a thread that unshares ``CLONE_NEWNET``; the mount is made in the
process's mount namespace (threads share it). Errors: OSError from the kernel, with the path.
"""

from __future__ import annotations

import os
import threading

from runtime import host as h
from runtime import mountinfo


def _thread_ns() -> str:
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


def inode(path: str = "/proc/self/ns/net") -> int | None:
    """The nsfs inode of the network namespace at *path* (a bind mount or ``/proc/<pid>/ns/net``)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def is_mounted(path: str) -> bool:
    """True when *path* holds a network namespace (an nsfs bind mount), False for a plain file
    (or an unreadable mount table)."""
    try:
        return any(m.fstype == "nsfs" and m.mount_point == path for m in mountinfo.read())
    except (OSError, ValueError):
        return False


def _touch(path: str) -> None:
    """The regular file a namespace is bound on (and its directory), made if missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))


def run_in(path: str | None, fn, *args):
    """``fn(*args)`` on a new thread joined to the network namespace at *path* (None: a new,
    empty namespace). Returns what *fn* returns; re-raises what it raises."""
    out: dict = {}

    def body():
        try:
            if path is None:
                h.HOST.unshare(h.CLONE_NEWNET)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    h.HOST.setns(fd, h.CLONE_NEWNET)
                finally:
                    os.close(fd)
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            out["error"] = e

    t = threading.Thread(target=body, name="netns", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def create(path: str, loopback: bool = True) -> int:
    """Make a new network namespace bound on *path* (``lo`` up unless *loopback* is False);
    returns its inode. A namespace already bound there is kept (idempotent). OSError."""
    if is_mounted(path):
        return inode(path)
    _touch(path)

    def bind():
        from runtime.lowlevel.init import loopback_up
        h.HOST.mount(_thread_ns(), path, None, h.MS_BIND)
        if loopback:
            loopback_up()

    try:
        run_in(None, bind)
    except BaseException:
        remove(path)
        raise
    return inode(path)


def bind(source: str, path: str) -> None:
    """Bind the existing namespace *source* (``/proc/<pid>/ns/net``) on *path* (created). OSError."""
    _touch(path)
    h.HOST.mount(source, path, None, h.MS_BIND)


def remove(path: str) -> None:
    """Unmount (lazily) and unlink the namespace bound on *path*; nothing there is fine. OSError."""
    if is_mounted(path):
        h.HOST.umount(path, h.MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def set_sysctl(path: str, key: str, value: str) -> None:
    """Write sysctl *key* (``net.ipv4.ip_forward``) = *value* in the namespace at *path*. OSError."""
    if not key.startswith("net.") or ".." in key:
        raise ValueError(f"not a network sysctl: {key!r}")
    proc = "/proc/sys/" + key.replace(".", "/")

    def write():
        with open(proc, "w") as f:
            f.write(value)
        with open(proc) as f:
            return f.read().strip()

    got = run_in(path, write)
    if got != value:
        raise OSError(f"sysctl {key} in {path}: wrote {value}, reads {got}")
