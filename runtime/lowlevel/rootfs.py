"""The container's filesystem view: mounts, /dev, pivot_root, masked and read-only paths.

Runs inside the container's init, in its new mount namespace, in the order runc's
``prepareRootfs``/``finalizeRootfs`` use (OCI config.md "Root", "Mounts", config-linux.md
"Default Devices", "Masked Paths", "Readonly Paths", "Rootfs Mount Propagation"):

1. :func:`prepare` — make ``/`` a slave (or ``linux.rootfsPropagation``), bind the rootfs onto
   itself, perform ``mounts`` in order (each destination resolved inside the rootfs, symlinks
   never escaping it), create the default devices and /dev symlinks;
2. :func:`pivot` — ``pivot_root`` into the rootfs and detach the old root;
3. :func:`finalize` — masked paths, read-only paths, read-only remounts, ``root.readonly``.

Every privileged call goes through the ``host`` (runtime/host.py).
"""

from __future__ import annotations

import os
import stat

from runtime import host as h
from runtime.errors import InvalidArgument, NotFound
from runtime.securejoin import secure_join

# option -> (clear, set) for mount(2) flags; as runc's parseMountOptions.
_FLAGS = {
    "ro": (False, h.MS_RDONLY), "rw": (True, h.MS_RDONLY),
    "nosuid": (False, h.MS_NOSUID), "suid": (True, h.MS_NOSUID),
    "nodev": (False, h.MS_NODEV), "dev": (True, h.MS_NODEV),
    "noexec": (False, h.MS_NOEXEC), "exec": (True, h.MS_NOEXEC),
    "sync": (False, h.MS_SYNCHRONOUS), "async": (True, h.MS_SYNCHRONOUS),
    "dirsync": (False, h.MS_DIRSYNC),
    "remount": (False, h.MS_REMOUNT),
    "mand": (False, h.MS_MANDLOCK), "nomand": (True, h.MS_MANDLOCK),
    "noatime": (False, h.MS_NOATIME), "atime": (True, h.MS_NOATIME),
    "nodiratime": (False, h.MS_NODIRATIME), "diratime": (True, h.MS_NODIRATIME),
    "bind": (False, h.MS_BIND), "rbind": (False, h.MS_BIND | h.MS_REC),
    "relatime": (False, h.MS_RELATIME), "norelatime": (True, h.MS_RELATIME),
    "strictatime": (False, h.MS_STRICTATIME), "nostrictatime": (True, h.MS_STRICTATIME),
    "nosymfollow": (False, h.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": h.MS_PRIVATE, "rprivate": h.MS_PRIVATE | h.MS_REC,
    "shared": h.MS_SHARED, "rshared": h.MS_SHARED | h.MS_REC,
    "slave": h.MS_SLAVE, "rslave": h.MS_SLAVE | h.MS_REC,
    "unbindable": h.MS_UNBINDABLE, "runbindable": h.MS_UNBINDABLE | h.MS_REC,
}
# statvfs f_flag bits -> mount flags that a bind remount must keep (locked mount flags).
_LOCKED = ((1, h.MS_RDONLY), (2, h.MS_NOSUID), (4, h.MS_NODEV), (8, h.MS_NOEXEC),
           (1024, h.MS_NOATIME), (2048, h.MS_NODIRATIME), (4096, h.MS_RELATIME))

#: config-linux.md "Default Devices": path, major, minor, mode.
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
_DEV_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                 ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Split OCI mount options into (mount flags, propagation flags, data string)."""
    flags, prop, data = 0, 0, []
    for opt in options or []:
        if opt in _FLAGS:
            clear, bit = _FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        elif opt in ("tmpcopyup", "idmap", "ridmap"):
            continue  # runc extensions capsize does not implement; harmless to skip for tmpcopyup
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def _ensure_target(dest: str, like_file: bool) -> None:
    if os.path.lexists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if like_file:
        with open(dest, "a"):
            pass
    else:
        os.makedirs(dest, exist_ok=True)


def _remount_bind(dest: str, flags: int, host: h.Host) -> None:
    """Apply *flags* to an existing bind mount, keeping the flags the kernel locked on it."""
    want = h.MS_BIND | h.MS_REMOUNT | (flags & ~(h.MS_BIND | h.MS_REC | h.MS_REMOUNT))
    try:
        host.mount(None, dest, None, want, None)
    except PermissionError:
        f = os.statvfs(dest).f_flag
        for bit, ms in _LOCKED:
            if f & bit:
                want |= ms
        host.mount(None, dest, None, want, None)


def _mount_cgroup(dest: str, flags: int, cgroup, cgroupns: bool, host: h.Host) -> None:
    """OCI mount type "cgroup": the container's own cgroups at *dest* (as runc's mountCgroupV1/V2)."""
    ro = flags & h.MS_RDONLY
    base = flags & ~(h.MS_RDONLY | h.MS_BIND | h.MS_REC | h.MS_REMOUNT)
    hier = cgroup.hierarchies() if cgroup is not None else []
    if len(hier) == 1 and hier[0][0] == "":  # cgroup v2
        _ensure_target(dest, False)
        if cgroupns:
            host.mount("cgroup2", dest, "cgroup2", base | ro, None)
        else:
            host.mount(hier[0][2], dest, None, h.MS_BIND | h.MS_REC, None)
            _remount_bind(dest, base | ro, host)
        return
    _ensure_target(dest, False)
    host.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for subsystems, mountpoint, cgdir in hier:
        name = os.path.basename(mountpoint)
        sub = os.path.join(dest, name)
        os.makedirs(sub, exist_ok=True)
        if cgroupns:
            host.mount("cgroup", sub, "cgroup", base | ro, subsystems)
        else:
            host.mount(cgdir, sub, None, h.MS_BIND | h.MS_REC, None)
            _remount_bind(sub, base | ro, host)
        # co-mounted controllers ("cpu,cpuacct") get a symlink per controller, as on the host
        if "," in name:
            for alias in name.split(","):
                link = os.path.join(dest, alias)
                if not os.path.lexists(link):
                    os.symlink(name, link)
    if ro:
        host.mount(None, dest, None, h.MS_REMOUNT | h.MS_BIND | base | h.MS_RDONLY, None)


def mount_one(rootfs: str, m: dict, index: int, cgroup, cgroupns: bool, host: h.Host) -> None:
    """Perform one OCI ``mounts[index]`` entry inside *rootfs*.

    As runc 1.1's mountToRootfs: ``proc`` and ``sysfs`` go only on an ordinary directory (a
    symlink there is refused, InvalidArgument, not followed), and a read-only ``/dev`` is mounted
    read-write, to be filled, and made read-only by :func:`finalize`.
    """
    mtype = m.get("type") or ""
    if mtype in ("proc", "sysfs"):
        plain = os.path.join(rootfs, m["destination"].lstrip("/"))
        if os.path.lexists(plain) and not stat.S_ISDIR(os.lstat(plain).st_mode):
            raise InvalidArgument(f"mounts[{index}]: filesystem {mtype!r} must be mounted on ordinary directory "
                                  f"({m['destination']} is not one)", field=f"mounts[{index}].destination")
    dest = secure_join(rootfs, m["destination"])
    flags, prop, data = parse_options(m.get("options", []))
    if m["destination"].rstrip("/") == "/dev" and not is_bind(m):
        flags &= ~h.MS_RDONLY
    source = m.get("source") or mtype or "none"
    if flags & h.MS_BIND or mtype == "bind":
        flags |= h.MS_BIND
        if not os.path.exists(source):
            raise NotFound(f"mounts[{index}]: bind source {source} does not exist", field=f"mounts[{index}].source")
        _ensure_target(dest, not os.path.isdir(source))
        host.mount(source, dest, None, flags & (h.MS_BIND | h.MS_REC), None)
        if flags & ~(h.MS_BIND | h.MS_REC):
            _remount_bind(dest, flags, host)
    elif mtype == "cgroup":
        _mount_cgroup(dest, flags, cgroup, cgroupns, host)
    else:
        _ensure_target(dest, False)
        try:
            host.mount(source, dest, mtype, flags, data or None)
        except PermissionError:
            if mtype != "sysfs":
                raise
            # sysfs cannot be mounted without a new network namespace: bind the host's, as runc.
            host.mount("/sys", dest, None, h.MS_BIND | h.MS_REC, None)
            _remount_bind(dest, flags | h.MS_BIND, host)
    if prop:
        host.mount(None, dest, None, prop, None)


def _make_devices(rootfs: str, devices: list[dict], host: h.Host) -> None:
    wanted = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
              for p, ma, mi in DEFAULT_DEVICES]
    explicit = {d.get("path") for d in devices or []}
    wanted = [d for d in wanted if d["path"] not in explicit] + list(devices or [])
    for i, d in enumerate(wanted):
        kind = d.get("type", "c")
        mode = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(kind)
        if mode is None:
            raise InvalidArgument(f"linux.devices[{i}].type: unknown device type {kind!r}")
        path = secure_join(rootfs, d["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        try:
            host.mknod(path, mode | (d.get("fileMode") or 0o666),
                       os.makedev(d.get("major", 0), d.get("minor", 0)) if kind != "p" else 0)
        except PermissionError:
            # in a user namespace mknod is refused: bind the host's node instead (runc's
            # bindMountDeviceNode), and never chmod/chown it (that would be the host's file)
            if not os.path.exists(d["path"]):
                raise
            with open(path, "a"):
                pass
            host.mount(d["path"], path, None, h.MS_BIND, None)
            continue
        os.chmod(path, d.get("fileMode") or 0o666)
        host.chown(path, d.get("uid", 0), d.get("gid", 0))


def _dev_symlinks(rootfs: str) -> None:
    for target, link in _DEV_SYMLINKS + ((("/proc/kcore", "/dev/core"),) if os.path.exists("/proc/kcore") else ()):
        path = secure_join(rootfs, link)
        if not os.path.lexists(path):
            os.symlink(target, path)
    # /dev/ptmx -> pts/ptmx whether or not /dev/pts is mounted (runc's setupPtmx)
    ptmx = secure_join(rootfs, "/dev/ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)


def is_bind(m: dict) -> bool:
    """True for a bind mount: ``type`` "bind", or any type with a ``bind``/``rbind`` option
    (runc's specconv treats both alike: the type of a bind mount means nothing)."""
    return m.get("type") == "bind" or any(o in ("bind", "rbind") for o in m.get("options") or [])


def prepare(config: dict, rootfs: str, cgroup, cgroupns: bool, host: h.Host = h.HOST,
            own_namespace: bool = True) -> None:
    """Steps before pivot_root: propagation, rootfs bind, ``mounts``, devices, /dev symlinks.
    (The terminal's /dev/console is bound after pivot_root: :mod:`runtime.lowlevel.console`.)
    Without *own_namespace* (no new mount namespace: the caller's) the propagation of ``/`` and
    of the rootfs's parent mount is left alone.
    """
    linux = config.get("linux") or {}
    prop = linux.get("rootfsPropagation") or "rslave"
    if prop not in _PROPAGATION:
        raise InvalidArgument(f"linux.rootfsPropagation: unknown propagation {prop!r}")
    if own_namespace:
        # An unbindable "/" would refuse the rootfs bind below (EINVAL; runc 1.1 fails so): until
        # pivot_root it is a slave, as runc's default, and propagate_root makes the new "/"
        # unbindable afterwards (as crun).
        before = _PROPAGATION["rslave"] if "unbindable" in prop else _PROPAGATION[prop]
        host.mount(None, "/", None, before, None)
        _parent_mount_private(rootfs, host)
    host.mount(rootfs, rootfs, None, h.MS_BIND | h.MS_REC, None)
    dev_is_bound = False
    for i, m in enumerate(config.get("mounts") or []):
        mount_one(rootfs, m, i, cgroup, cgroupns, host)
        if m["destination"].rstrip("/") == "/dev" and is_bind(m):
            dev_is_bound = True
    # Default devices, linux.devices and the /dev symlinks go into the container's /dev — a
    # tmpfs mount or, without one, the rootfs's own /dev directory (config-linux.md "Default
    # Devices": the runtime MUST supply them) — unless /dev is a bind mount: that is someone
    # else's /dev (the host's, typically) and is never written to (runc's needsSetupDev).
    if not dev_is_bound:
        _make_devices(rootfs, linux.get("devices") or [], host)
        _dev_symlinks(rootfs)


def _parent_mount_private(rootfs: str, host: h.Host) -> None:
    """Make the mount that holds *rootfs* private if it is shared (runc 1.1's
    rootfsParentMountPrivate): the rootfs bind must not propagate to other namespaces, and
    pivot_root refuses a new root whose parent mount is shared (EINVAL) — the case of
    ``linux.rootfsPropagation`` ``shared``/``rshared``."""
    from runtime import mountinfo
    best = None
    for m in mountinfo.read():
        p = m.mount_point
        if (rootfs == p or rootfs.startswith(p.rstrip("/") + "/")) and (best is None or len(p) >= len(best.mount_point)):
            best = m
    if best is not None and any(f.startswith("shared:") for f in best.optional):
        host.mount(None, best.mount_point, None, h.MS_PRIVATE, None)


def propagate_root(config: dict, host: h.Host = h.HOST) -> None:
    """After pivot_root: ``linux.rootfsPropagation`` applied to the new ``/`` (runc 1.1 applies it
    again there: before, it named the host's root)."""
    prop = (config.get("linux") or {}).get("rootfsPropagation")
    if prop:
        host.mount(None, "/", None, _PROPAGATION[prop], None)


def pivot(rootfs: str, host: h.Host = h.HOST) -> None:
    """pivot_root into *rootfs* with runc's trick (new and old root the same dir), then detach the old root."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        host.pivot_root(".", ".")
        os.fchdir(old)
        # the old root must not propagate the detach back to the host
        host.mount(None, ".", None, h.MS_SLAVE | h.MS_REC, None)
        host.umount(".", h.MNT_DETACH)
    finally:
        os.close(old)
    os.chdir("/")


def move_root(rootfs: str, host: h.Host = h.HOST) -> None:
    """``--no-pivot``: move *rootfs* onto ``/`` and chroot into it (runc 1.1's msMoveRoot), for
    a rootfs pivot_root cannot take (a ramdisk). First every full procfs/sysfs mount outside the
    rootfs is detached (made a slave, so the host keeps it), or covered with a tmpfs where that
    is refused: with one reachable, the kernel would let the container mount a fresh procfs."""
    from runtime import mountinfo
    import errno
    for m in mountinfo.read():
        if m.root != "/" or m.fstype not in ("proc", "sysfs") or m.mount_point.startswith(rootfs):
            continue
        try:
            host.mount(None, m.mount_point, None, h.MS_SLAVE | h.MS_REC, None)
        except FileNotFoundError:
            continue   # under a mount detached already
        try:
            host.umount(m.mount_point, h.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            host.mount("tmpfs", m.mount_point, "tmpfs", 0, None)
    os.chdir(rootfs)
    host.mount(rootfs, "/", None, h.MS_MOVE, None)
    os.chroot(".")
    os.chdir("/")


def finalize(config: dict, host: h.Host = h.HOST) -> None:
    """After pivot_root: masked paths, read-only paths, ro remounts, ``root.readonly``."""
    linux = config.get("linux") or {}
    for path in linux.get("readonlyPaths") or []:
        if not os.path.exists(path):
            continue
        host.mount(path, path, None, h.MS_BIND | h.MS_REC, None)
        _remount_bind(path, h.MS_BIND | h.MS_RDONLY | h.MS_NOSUID | h.MS_NODEV | h.MS_NOEXEC, host)
    for path in linux.get("maskedPaths") or []:
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            host.mount("tmpfs", path, "tmpfs", h.MS_RDONLY, None)
        else:
            host.mount("/dev/null", path, None, h.MS_BIND, None)
    # /dev is remounted read-only last, if it was asked to be (runc's finalizeRootfs)
    for m in config.get("mounts") or []:
        if m["destination"].rstrip("/") == "/dev" and "ro" in (m.get("options") or []) and not is_bind(m):
            flags, _, data = parse_options(m.get("options"))
            host.mount(None, "/dev", None, flags | h.MS_REMOUNT | h.MS_RDONLY, data or None)
    if (config.get("root") or {}).get("readonly"):
        _remount_bind("/", h.MS_BIND | h.MS_RDONLY, host)
