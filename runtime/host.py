"""The host interface: every privileged operation capsize performs goes through here.

unshare(2), setns(2), mount(2), umount2(2), pivot_root(2), sethostname(2), prctl(2), capset(2),
setgroups(2), setgid(2), setuid(2), setrlimit(2), seccomp_load(3), mknod(2), chown(2)/lchown(2),
setxattr(2) and writes to cgroup and /proc/sys files are methods of :class:`Host`. Lifecycle code
takes a ``host`` argument (default :data:`HOST`, the real kernel), so that

* unit tests can hand in a :class:`RecordingHost`, which records each call instead of making it,
  and assert on the exact sequence of privileged operations; and
* faults can be injected at this one seam: ``CAPSIZE_HOST_FAILPOINTS`` (see :func:`_failpoints`)
  makes a named operation fail with an errno or sleep first, e.g.
  ``CAPSIZE_HOST_FAILPOINTS="umount=delay(2);pivot_root=error(EBUSY)"``.

Failures raise :class:`OSError` with the errno and the operation's arguments in the message.
The module is imported by capsize-runc on every invocation, so ctypes is loaded lazily.
"""

from __future__ import annotations

import os

from runtime.api import failpoints

# Namespace clone flags (<linux/sched.h>), as used by unshare(2) and setns(2).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

#: OCI ``linux.namespaces[].type`` -> clone flag (config-linux.md "Namespaces").
NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
#: OCI namespace type -> the file name under /proc/<pid>/ns/.
NAMESPACE_FILES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup", "time": "time",
}

# mount(2) flags (<linux/mount.h>).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYSCALLS = {  # name -> number, for calls glibc 2.36 has no wrapper for
    "x86_64": {"pivot_root": 155},
    "aarch64": {"pivot_root": 41},
}

_libc = None


def _lib():
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, op: str, *args) -> int:
    if ret < 0:
        import ctypes
        err = ctypes.get_errno()
        raise OSError(err, f"{op}({', '.join(repr(a) for a in args)}): {os.strerror(err)}")
    return ret


def _failpoints() -> dict[str, tuple[str, str]]:
    """Parse ``CAPSIZE_HOST_FAILPOINTS``: ``op=error(ERRNO)`` or ``op=delay(SECONDS)``, ``;``-separated."""
    spec = os.environ.get("CAPSIZE_HOST_FAILPOINTS", "")
    points = {}
    for term in filter(None, (t.strip() for t in spec.split(";"))):
        op, _, action = term.partition("=")
        kind, _, arg = action.partition("(")
        points[op.strip()] = (kind.strip(), arg.rstrip(")").strip())
    return points


class Host:
    """The real kernel. Every method performs exactly one privileged operation."""

    def __init__(self):
        self._points = _failpoints()

    def _fault(self, op: str, *args) -> None:
        failpoints.hit("host." + op)  # the named crash point host.<op> (runtime.api.failpoints)
        point = self._points.get(op)
        if point is None:
            return
        kind, arg = point
        if kind == "delay":
            import time
            time.sleep(float(arg.rstrip("s") or 0))
        elif kind == "error":
            import errno
            code = getattr(errno, arg, None) or int(arg or errno.EIO)
            raise OSError(code, f"{op}({', '.join(repr(a) for a in args)}): {os.strerror(code)} "
                                f"(injected by CAPSIZE_HOST_FAILPOINTS)")

    # -- namespaces -------------------------------------------------------------------------
    def unshare(self, flags: int) -> None:
        """unshare(2) with CLONE_* *flags*."""
        self._fault("unshare", flags)
        _check(_lib().unshare(flags), "unshare", hex(flags))

    def setns(self, fd: int, nstype: int = 0) -> None:
        """setns(2): join the namespace open at *fd* (of kind *nstype*, 0 = any)."""
        self._fault("setns", fd, nstype)
        _check(_lib().setns(fd, nstype), "setns", fd, hex(nstype))

    # -- mounts -----------------------------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None = None,
              flags: int = 0, data: str | None = None) -> None:
        """mount(2). *data* is the filesystem-specific option string (e.g. ``"mode=755"``)."""
        self._fault("mount", source, target, fstype, flags, data)
        enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
        _check(_lib().mount(enc(source), enc(target), enc(fstype), flags, enc(data)),
               "mount", source, target, fstype, hex(flags), data)

    def umount(self, target: str, flags: int = 0) -> None:
        """umount2(2) with MNT_* *flags*."""
        self._fault("umount", target, flags)
        _check(_lib().umount2(os.fsencode(target), flags), "umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        """pivot_root(2) (no glibc wrapper: raw syscall)."""
        self._fault("pivot_root", new_root, put_old)
        nr = _SYSCALLS[os.uname().machine]["pivot_root"]
        _check(_lib().syscall(nr, os.fsencode(new_root), os.fsencode(put_old)),
               "pivot_root", new_root, put_old)

    def mknod(self, path: str, mode: int, device: int) -> None:
        """mknod(2): *mode* includes the file type bits (stat.S_IFCHR...), *device* from os.makedev."""
        self._fault("mknod", path, mode, device)
        os.mknod(path, mode, device)

    # -- file ownership and attributes ------------------------------------------------------
    def chown(self, path: str, uid: int, gid: int, follow_symlinks: bool = True) -> None:
        """chown(2) (lchown(2) with ``follow_symlinks=False``); -1 leaves an id unchanged. Giving
        a file away needs CAP_CHOWN."""
        self._fault("chown", path, uid, gid)
        try:
            os.chown(path, uid, gid, follow_symlinks=follow_symlinks)
        except OSError as e:
            raise OSError(e.errno, f"{'chown' if follow_symlinks else 'lchown'}({path!r}, {uid}, {gid}): "
                                   f"{os.strerror(e.errno)}") from None

    def setxattr(self, path: str, name: str, value: bytes, follow_symlinks: bool = True) -> None:
        """setxattr(2) (lsetxattr(2) with ``follow_symlinks=False``); ``trusted.*`` and
        ``security.*`` names need CAP_SYS_ADMIN."""
        self._fault("setxattr", path, name)
        try:
            os.setxattr(path, name, value, follow_symlinks=follow_symlinks)
        except OSError as e:
            raise OSError(e.errno, f"setxattr({path!r}, {name!r}): {os.strerror(e.errno)}") from None

    # -- identity and process attributes ----------------------------------------------------
    def sethostname(self, name: str) -> None:
        """sethostname(2) in the current UTS namespace."""
        self._fault("sethostname", name)
        b = name.encode()
        _check(_lib().sethostname(b, len(b)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        """setdomainname(2) in the current UTS namespace."""
        self._fault("setdomainname", name)
        b = name.encode()
        _check(_lib().setdomainname(b, len(b)), "setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        """prctl(2); returns the call's non-negative result."""
        self._fault("prctl", option, arg2)
        import ctypes
        c = ctypes.c_ulong
        return _check(_lib().prctl(option, c(arg2), c(arg3), c(arg4), c(arg5)), "prctl", option, arg2)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """capset(2) for the calling thread, with 64-bit capability masks (_LINUX_CAPABILITY_VERSION_3)."""
        self._fault("capset", effective, permitted, inheritable)
        import ctypes

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        hdr = Header(0x20080522, 0)
        data = (Data * 2)()
        for i, shift in enumerate((0, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        _check(_lib().capset(ctypes.byref(hdr), data), "capset", hex(effective), hex(permitted))

    def setgroups(self, gids: list[int]) -> None:
        """setgroups(2): replace the supplementary group list (``[]`` clears it)."""
        self._fault("setgroups", gids)
        try:
            os.setgroups(list(gids))
        except OSError as e:
            raise OSError(e.errno, f"setgroups({list(gids)!r}): {os.strerror(e.errno)}") from None

    def setgid(self, gid: int) -> None:
        """setgid(2): set the real, effective and saved group id."""
        self._fault("setgid", gid)
        try:
            os.setgid(gid)
        except OSError as e:
            raise OSError(e.errno, f"setgid({gid}): {os.strerror(e.errno)}") from None

    def setuid(self, uid: int) -> None:
        """setuid(2): set the real, effective and saved user id (see PR_SET_KEEPCAPS for capabilities)."""
        self._fault("setuid", uid)
        try:
            os.setuid(uid)
        except OSError as e:
            raise OSError(e.errno, f"setuid({uid}): {os.strerror(e.errno)}") from None

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        """setrlimit(2) of RLIMIT_* *resource* on the calling process; ``2**64-1`` (or any value
        from 2**63 up) is RLIM_INFINITY. Raising a hard limit needs CAP_SYS_RESOURCE (EPERM); a
        soft limit above the hard one is EINVAL."""
        self._fault("setrlimit", resource, soft, hard)
        import resource as _resource
        limits = tuple(_resource.RLIM_INFINITY if v >= 1 << 63 else v for v in (soft, hard))
        try:
            _resource.setrlimit(resource, limits)
        except OSError as e:
            raise OSError(e.errno, f"setrlimit({resource}, {soft}, {hard}): {os.strerror(e.errno)}") from None
        except ValueError as e:  # CPython turns EPERM and EINVAL into ValueError here
            import errno
            code = errno.EPERM if "not allowed" in str(e) else errno.EINVAL
            raise OSError(code, f"setrlimit({resource}, {soft}, {hard}): {os.strerror(code)}") from None

    def seccomp_load(self, filter) -> None:  # noqa: A002 - libseccomp's word
        """seccomp_load(3): install a filter built with libseccomp (an object with ``load()``, such as
        ``pyseccomp.SyscallFilter``) on the calling thread. Irreversible."""
        self._fault("seccomp_load")
        try:
            filter.load()
        except OSError as e:
            raise OSError(e.errno, f"seccomp_load(): {os.strerror(e.errno)}") from None

    # -- kernel files (cgroupfs, procfs sysctls) --------------------------------------------
    def write(self, path: str, data: str) -> None:
        """Write *data* to a kernel file (a cgroup control file, /proc/sys/...) in one write(2)."""
        self._fault("write", path, data)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """mkdir(2), e.g. of a cgroup; an existing directory is not an error."""
        self._fault("mkdir", path)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass

    def rmdir(self, path: str) -> None:
        """rmdir(2), e.g. of an empty cgroup; a missing directory is not an error."""
        self._fault("rmdir", path)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass


class RecordingHost(Host):
    """A host that records every privileged call as ``(op, args)`` in :attr:`calls` and makes none.

    For unit tests of lifecycle logic; ``prctl`` returns 0.
    """

    def __init__(self):
        self._points = {}
        self.calls: list[tuple[str, tuple]] = []

    def _record(op):  # noqa: N805 - a decorator factory used in the class body
        def method(self, *args, **kwargs):
            self.calls.append((op, args + (kwargs,) if kwargs else args))
            return 0
        method.__name__ = op
        return method

    unshare = _record("unshare")
    setns = _record("setns")
    mount = _record("mount")
    umount = _record("umount")
    pivot_root = _record("pivot_root")
    mknod = _record("mknod")
    chown = _record("chown")
    setxattr = _record("setxattr")
    setrlimit = _record("setrlimit")
    sethostname = _record("sethostname")
    setdomainname = _record("setdomainname")
    prctl = _record("prctl")
    capset = _record("capset")
    setgroups = _record("setgroups")
    setgid = _record("setgid")
    setuid = _record("setuid")
    seccomp_load = _record("seccomp_load")
    write = _record("write")
    mkdir = _record("mkdir")
    rmdir = _record("rmdir")
    del _record


#: The real host, used unless a caller hands in another.
HOST = Host()
