"""The container's init: what runs in the forked child between ``create`` and the user's process.

capsize-runc forks twice, as runc does (``runc init`` via nsexec):

* the intermediate process joins the namespaces given by path (setns) and unshares the new
  ones — a new pid namespace only applies to children, hence the second fork — then forks the
  init and reports its host pid on the sync channel;
* the init (PID 1 of a new pid namespace) unshares its cgroup namespace (it is already in the
  container's cgroup), sets up the rootfs, lets the parent run prestart/createRuntime hooks,
  runs createContainer hooks, pivots, sets the hostname, sysctls, masked and read-only paths,
  turns itself into ``process`` (user, capabilities, rlimits, no_new_privs, seccomp), reports
  ``ready``, then blocks opening the exec FIFO for writing. ``start`` opens it for reading; the
  init writes one byte and execs the user's program (runtime.md "create", "start").

These functions never return: they exec or ``os._exit``. Errors are sent to the parent as
``error`` messages (see runtime/lowlevel/sync.py).
"""

from __future__ import annotations

import os

from runtime import host as h
from runtime.errors import CapsizeError, FailedPrecondition, InvalidArgument


def preload(config: dict) -> None:
    """Import, in the runtime's own mount namespace, every module the init needs after pivot_root.

    Once the init has pivoted (or an exec'd process has joined the container's mount namespace),
    the host's Python library is out of reach, so a lazy import there would fail. Call this in
    the parent before forking: the children inherit the loaded modules.
    """
    import errno  # noqa: F401 - loaded for the init
    import resource  # noqa: F401
    import time  # noqa: F401

    from runtime.lowlevel import hooks, process, rootfs  # noqa: F401
    h._lib()  # ctypes and libc, for capset/prctl/seccomp after pivot_root
    if ((config.get("hooks") or {}).get("startContainer")):
        import subprocess  # noqa: F401
    # linux.seccomp: the parent has built the filter (container._seccomp_filter) before forking


def _fail(chan, err: BaseException) -> None:
    if not isinstance(err, CapsizeError):
        err = CapsizeError(f"container init: {err}")
    try:
        chan.send("error", error=err.to_dict())
    finally:
        os._exit(1)


def _new_namespaces(config: dict) -> list[dict]:
    return [ns for ns in (config.get("linux") or {}).get("namespaces") or [] if not ns.get("path")]


def _has_new(config: dict, kind: str) -> bool:
    return any(ns["type"] == kind for ns in _new_namespaces(config))


def enter_namespaces(config: dict, host: h.Host, skip_cgroup: bool = True) -> None:
    """setns(2) into every namespace given by path, then unshare(2) the new ones.

    A user namespace is joined first, the mount namespace last (setns into it resets root and
    cwd). New namespaces are made in one unshare(2), which creates a new user namespace first,
    so that it owns the others. The new cgroup namespace is left to the init (it must already
    be in its cgroup). Raises OSError.
    """
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    # a user namespace first (the others are owned by it), the mount namespace last
    joins = sorted((ns for ns in namespaces if ns.get("path")),
                   key=lambda ns: (ns["type"] != "user", ns["type"] == "mount"))
    fds = [(ns, os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)) for ns in joins]
    try:
        for ns, fd in fds:
            host.setns(fd, h.NAMESPACE_FLAGS[ns["type"]])
    finally:
        for _, fd in fds:
            os.close(fd)
    flags = 0
    for ns in _new_namespaces(config):
        if ns["type"] == "cgroup" and skip_cgroup:
            continue
        flags |= h.NAMESPACE_FLAGS[ns["type"]]
    if flags:
        host.unshare(flags)


def loopback_up() -> None:
    """Bring ``lo`` up in the current (new) network namespace: SIOCSIFFLAGS with IFF_UP, as runc's loopback strategy."""
    import _socket  # the C module: `socket` itself costs milliseconds of import on every create
    import fcntl
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


def _sysctl(config: dict, host: h.Host) -> None:
    for key, value in ((config.get("linux") or {}).get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        if ".." in key or not os.path.exists(path):
            raise InvalidArgument(f"linux.sysctl: {key!r} is not a sysctl in this container", field="linux.sysctl")
        host.write(path, str(value))


def _open_bind_sources(config: dict) -> None:
    """In the new namespaces but still the host's uid 0 (before :func:`become_root`): open every
    bind mount's source (O_PATH, in the container's mount namespace: a bind from another one is
    EINVAL) and name it ``/proc/self/fd/N`` in *config* (this process's copy), since the
    container's root, an unprivileged uid on the host, may not reach it (runc 1.1's mountFds)."""
    from runtime.lowlevel.rootfs import is_bind
    for m in config.get("mounts") or []:
        if is_bind(m) and m.get("source") and os.path.exists(m["source"]):
            m["source"] = f"/proc/self/fd/{os.open(m['source'], os.O_PATH | os.O_CLOEXEC)}"


def become_root(host: h.Host) -> None:
    """In a new user namespace whose maps the parent has written: uid and gid 0 there, no
    supplementary groups (runc's nsexec after its maps are written)."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    try:
        host.setgroups([])
    except OSError:
        pass   # setgroups denied in this namespace: there are none to drop


def write_id_maps(pid: int, config: dict) -> None:
    """``linux.uidMappings`` / ``gidMappings`` ({containerID, hostID, size} each) into
    /proc/<pid>/uid_map and gid_map, one write each (user_namespaces(7)). Raises OSError."""
    linux = config.get("linux") or {}
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or [])
        if text:
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)


def intermediate(chan, config: dict, host: h.Host, child) -> None:
    """The first child: enter namespaces, fork the init (*child* is its body), report its pid, exit.

    The init waits on a private pipe until its pid has been reported, so that the parent always
    hears ``pid`` before anything the init says on the shared sync channel.
    """
    try:
        # Namespaces first: creating them overlaps with the parent's cgroup writes (the first
        # cgroup.procs write of a migration costs the kernel an RCU grace period, ~10 ms).
        userns = _has_new(config, "user")
        enter_namespaces(config, host)
        if userns:
            _open_bind_sources(config)
            chan.send("userns")    # the parent writes our uid_map and gid_map
        chan.expect("continue")  # the parent has put us in the container's cgroup
        if userns:
            become_root(host)
        gate_r, gate_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(gate_w)
                os.read(gate_r, 1)
                os.close(gate_r)
                child()
            except BaseException as e:  # noqa: BLE001 - everything must reach the parent
                _fail(chan, e)
            os._exit(1)
        os.close(gate_r)
        chan.send("pid", pid=pid)
        os.close(gate_w)
    except BaseException as e:  # noqa: BLE001
        _fail(chan, e)
    os._exit(0)


def keep_fds(preserve_fds: int) -> None:
    """Of the fds above stdio, only 3 .. 3+*preserve_fds*-1 survive the execve: they become
    inheritable, every other open fd close-on-exec (runc 1.1's ``--preserve-fds`` and
    libcontainer's ``utils.CloseExecFrom(3 + len(ExtraFiles))``), so the caller's descriptors do
    not leak into the container. Reads /proc/self/fd; an fd closed meanwhile is skipped."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, fd < 3 + preserve_fds)
            except OSError:
                pass


def container_init(chan, container_id: str, config: dict, rootfs: str, fifo: str, cgroup,
                   console_sock: int | None, preserve_fds: int, seccomp_filter, host: h.Host,
                   no_pivot: bool = False) -> None:
    """The init's whole set-up (runs as PID 1 of the new pid namespace); execs the user's process.

    *seccomp_filter* is built by the parent (runtime/lowlevel/seccomp.py build_filter) while
    libseccomp can still be loaded from the host's filesystem; it is loaded last, by
    process.finalize. With *no_pivot* the rootfs is moved onto / and chrooted into
    (rootfs.move_root) instead of pivot_root (runc ``--no-pivot``).
    """
    from runtime.lowlevel import hooks, process, rootfs as rfs

    cgroupns = any(ns["type"] == "cgroup" for ns in (config.get("linux") or {}).get("namespaces") or [])
    if _has_new(config, "cgroup"):
        host.unshare(h.CLONE_NEWCGROUP)
    if _has_new(config, "network"):
        loopback_up()
    # Without a mount namespace of its own (linux.namespaces has no "mount") the rootfs is set
    # up in the caller's, as runc does: its mounts stay there, / keeps its propagation, the
    # container is chrooted and finalize (masked/read-only paths) is skipped, as in runc.
    own_mntns = any(ns["type"] == "mount" for ns in (config.get("linux") or {}).get("namespaces") or [])
    rfs.prepare(config, rootfs, cgroup, cgroupns, host=host, own_namespace=own_mntns)
    cfg_hooks = config.get("hooks") or {}
    if cfg_hooks.get("prestart") or cfg_hooks.get("createRuntime"):
        chan.send("hooks")
        chan.expect("continue")
    hooks.run_hooks(config, "createContainer", {"ociVersion": config.get("ociVersion"), "id": container_id,
                                                "status": "created", "pid": os.getpid()})
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    if no_pivot and own_mntns:
        rfs.move_root(rootfs, host)
    elif own_mntns:
        rfs.pivot(rootfs, host)
    else:
        os.chdir(rootfs)
        os.chroot(".")
        os.chdir("/")
    if own_mntns:
        rfs.propagate_root(config, host)
    proc = config["process"]
    if console_sock is not None:
        # the pty of the container's own devpts (runc's setupConsole, after pivot_root)
        from runtime.lowlevel import console
        console.setup(console_sock, proc, mount_console=True, host=host)
    cwd = proc.get("cwd") or "/"
    if not os.path.lexists(cwd):
        # runc creates a missing cwd as part of the rootfs, right after pivot_root: before
        # finalize, which may remount / read-only (root.readonly)
        os.makedirs(cwd, 0o755)
    hostname = config.get("hostname")
    if hostname or (config.get("domainname")):
        if not _has_new(config, "uts") and not any(ns["type"] == "uts" for ns in
                                                   (config.get("linux") or {}).get("namespaces") or []):
            raise FailedPrecondition("unable to set hostname without a private UTS namespace",
                                     field="hostname")
        if hostname:
            host.sethostname(hostname)
        if config.get("domainname"):
            host.setdomainname(config["domainname"])
    _sysctl(config, host)
    if own_mntns:
        rfs.finalize(config, host)
    if proc.get("oomScoreAdj") is not None:
        process.set_oom_score_adj(proc["oomScoreAdj"], host=host)
    keep_fds(preserve_fds)
    # The exec FIFO is reopened for writing through /proc/self/fd (its host path is out of
    # reach after pivot_root). Without a proc mount in the container that would fail only
    # after `create` had reported success, leaving a dead init: fail `create` now, as runc
    # does ("error closing exec fds: open /proc/self/fd").
    if not os.path.exists(f"/proc/self/fd/{fifo_fd}"):
        raise FailedPrecondition("cannot reopen the exec FIFO through /proc/self/fd: the container "
                                 "needs a proc mount at /proc (mounts)", field="mounts")
    path, argv, env = process.finalize(proc, host=host, seccomp=seccomp_filter)
    chan.send("ready")
    chan.close()
    # Block until `start` opens the FIFO for reading (runtime.md "start").
    try:
        wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(wfd, b"0")
        os.close(wfd)
        os.close(fifo_fd)
        hooks.run_hooks(config, "startContainer", {"ociVersion": config.get("ociVersion"), "id": container_id,
                                                    "status": "created", "pid": os.getpid()})
        os.execve(path, argv, env)
    except BaseException as e:  # noqa: BLE001 - nobody listens any more: stderr is all there is
        os.write(2, f"capsize-runc init: {e}\n".encode())
    os._exit(127)


def exec_init(chan, proc: dict, seccomp_filter, host: h.Host, console_sock: int | None = None,
              preserve_fds: int = 0) -> None:
    """A process joining a running container (``capsize-runc exec``): wait for the cgroup, become
    *proc* (with a new pty of the container when *console_sock* is given), keep only stdio and
    *preserve_fds* more fds (:func:`keep_fds`), exec."""
    from runtime.lowlevel import process
    chan.expect("continue")
    if console_sock is not None:
        from runtime.lowlevel import console
        console.setup(console_sock, proc, mount_console=False, host=host)
    path, argv, env = process.finalize(proc, host=host, seccomp=seccomp_filter)
    chan.send("ready")
    chan.close()
    keep_fds(preserve_fds)
    os.execve(path, argv, env)
