"""capsize-runc's operations on containers (OCI runtime.md "Operations", runc's commands).

Each function takes the runtime ``root`` (the state directory, runc's ``--root``) and a
container id, does one operation and raises the shared errors (runtime/errors.py) with runc's
wording:

============  ===========================================================================
create        state dir, cgroup, exec FIFO, fork the init (runtime/lowlevel/init.py); returns
              when the init is set up and blocked on the FIFO; writes the pid file
start         release the init through the exec FIFO; run poststart hooks
kill          signal the init (or, with ``all``, every process of the cgroup)
delete        remove a stopped (or, with ``force``, any) container: processes, cgroup, state
state         the OCI state document
pause/resume  freeze/thaw the cgroup
exec          run another process in a running container's namespaces and cgroup
update        apply new linux.resources to the container's cgroup (runc update)
============  ===========================================================================

**Re-parenting.** ``create`` exits once the init waits on the FIFO, so the init is re-parented
to the nearest child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``) above the caller — or to PID
1. Whoever wants to reap the init and read its exit status (a shim) must be a child subreaper
and an ancestor of the ``create`` process, as containerd-shim-runc-v2 and conmon are.
"""

from __future__ import annotations

import os
import time

from runtime import atomicfile, host as h, signals
from runtime.api import failpoints
from runtime.errors import (CapsizeError, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                            NotFound)
from runtime.api.states import LOWLEVEL
from runtime.lowlevel.state import State, proc_start_time, rfc3339_now

INIT_TIMEOUT = 60.0  # seconds the parent waits for each word from the init during create
# signal numbers, without importing `signal` (and `enum`) on every invocation
SIGKILL, SIGTERM = 9, 15


def _warn(msg: str) -> None:
    from runtime.lowlevel import log
    log.warning(msg)


def _write_pid_file(path: str, pid: int) -> None:
    """Write *pid* (digits only, no newline, as runc) atomically to *path*."""
    atomicfile.write(os.path.abspath(path), str(pid), durable=False)


def _reap(pid: int, timeout: float = 5.0) -> int | None:
    """Wait up to *timeout* s for our child/adoptee *pid*; its wait status, or None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)


def _kill_and_reap(*pids: int | None) -> None:
    """SIGKILL and reap each of our children/adoptees in *pids* (None entries are skipped)."""
    for pid in pids:
        if pid:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)


def _clear_stale(root: str, container_id: str, host: h.Host) -> None:
    """Remove a half-created container whose ``create`` died (e.g. SIGKILLed mid-way).

    Only a state whose init never got recorded (pid 0) and whose creator is gone is stale;
    anything else is a real container, and reserving the id reports "exists".
    """
    state_dir = os.path.join(root, container_id)
    if not os.path.isdir(state_dir):
        return
    # The creator first: create saves the init's pid *before* it unlinks "creator", so reading
    # in this order never mistakes a create that just finished for a dead one.
    creator = _read_creator(state_dir)
    if creator and proc_start_time(creator[0]) == creator[1]:
        return  # a create is in progress
    try:
        st = State.load(root, container_id)
    except NotFound:
        st = State(root, id=container_id)  # died before its first save
    if st.pid:
        return
    cg = st.cgroup_obj(host) if st.cgroup else None
    if cg is not None and cg.exists():
        cg.kill_all(SIGKILL)
        cg.destroy()
    st.remove()


def _reserve(root: str, container_id: str, host: h.Host) -> State:
    """Clear a stale half-created container and reserve the id, with its creator recorded.

    Runs under an exclusive flock(2) of the runtime root, so that no other create (or delete
    --force) sees the id's directory between its mkdir and its complete "creator" file, and
    two of them never clear the same stale directory. The lock is released before anything
    forks (the descriptor is closed), and by the kernel if this process dies.
    """
    import fcntl
    os.makedirs(root, mode=0o711, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _clear_stale(root, container_id, host)
        st = State.reserve(root, container_id)
        with open(os.path.join(st.dir, "creator"), "w") as f:
            f.write(f"{os.getpid()} {proc_start_time(os.getpid())}")
        return st
    finally:
        os.close(fd)


#: How long ``delete --force`` waits for a ``create`` of the same id in progress (seconds).
CREATE_WAIT = 10.0


def _wait_creator(root: str, container_id: str, timeout: float) -> bool:
    """Wait until no live ``create`` holds the id (its "creator" file names a live process):
    ``delete --force`` then removes what that create finished or left, instead of finding no
    state yet and letting the create finish a container nobody owns. False on timeout."""
    state_dir = os.path.join(root, container_id)
    deadline = time.monotonic() + timeout
    while True:
        creator = _read_creator(state_dir)
        if not creator or proc_start_time(creator[0]) != creator[1]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _read_creator(state_dir: str):
    try:
        with open(os.path.join(state_dir, "creator")) as f:
            pid, start = f.read().split()
        return int(pid), int(start)
    except (OSError, ValueError):
        return None


def _check_console(proc: dict, console_socket: str | None, detach: bool = True) -> None:
    """A detached terminal needs a console socket, and a console socket a terminal (runc's
    checkTerminal, with its wording); InvalidArgument otherwise. In the foreground (*detach*
    false) a terminal without a socket is capsize-runc's own (console.Relay)."""
    if proc.get("terminal") and not console_socket and detach:
        raise InvalidArgument("cannot allocate tty if capsize-runc will detach without setting console socket")
    if console_socket and not proc.get("terminal"):
        raise InvalidArgument("cannot use console socket if capsize-runc will not detach or allocate tty")


def _check_existing_cgroup(cg) -> None:
    """As runc 1.1's Create: a cgroup that already has processes gets a warning ("container's
    cgroup is not empty"); a frozen one is refused at once, FailedPrecondition("container's
    cgroup unexpectedly frozen"), and left as it was."""
    if not cg.exists():
        return
    if cg.frozen():
        raise FailedPrecondition("container's cgroup unexpectedly frozen", field="linux.cgroupsPath")
    n = len(cg.pids())
    if n:
        _warn(f"container's cgroup is not empty: {n} process(es) found")


def _warn_ignored_labels(config: dict) -> None:
    """A warning on the log for each security label capsize-runc does not apply (it has no
    AppArmor or SELinux support): ``process.apparmorProfile``, ``process.selinuxLabel``,
    ``linux.mountLabel`` — said, not silently dropped."""
    proc, linux = config.get("process") or {}, config.get("linux") or {}
    for field, value, what in (("process.apparmorProfile", proc.get("apparmorProfile"), "AppArmor profile"),
                               ("process.selinuxLabel", proc.get("selinuxLabel"), "SELinux label"),
                               ("linux.mountLabel", linux.get("mountLabel"), "SELinux mount label")):
        if value:
            _warn(f"{field} {value!r} is ignored: capsize-runc does not apply the {what}")


def _listen_fds() -> int:
    """The number of socket-activation fds (3 onwards) systemd passed to this process:
    ``LISTEN_FDS`` when ``LISTEN_PID`` is our pid, else 0 (sd_listen_fds(3); runc 1.1 passes
    them into the container's init with ``LISTEN_FDS=N LISTEN_PID=1``)."""
    try:
        if int(os.environ.get("LISTEN_PID", "")) == os.getpid():
            return max(0, int(os.environ.get("LISTEN_FDS", "0")))
    except ValueError:
        pass
    return 0


def create(root: str, container_id: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0, host: h.Host = h.HOST,
           local_console=None, no_pivot: bool = False) -> State:
    """Create a container from *bundle*; on any failure nothing is left behind (state, cgroup, process).

    Only stdio, the ``LISTEN_FDS`` of socket activation (:func:`_listen_fds`) and then
    *preserve_fds* more of the caller's fds reach the container's process (runc 1.1).
    Raises AlreadyExists ("container with id exists: ID"), NotFound (bundle, rootfs, executable),
    InvalidArgument (config fields, terminal without console socket), and the init's errors.
    *local_console* (a connected socket, :func:`runtime.lowlevel.console.local_pair`) stands in
    for *console_socket* for a foreground ``run``. *no_pivot*: runc's ``--no-pivot``
    (:func:`runtime.lowlevel.rootfs.move_root`).
    """
    from runtime.lowlevel.cgroups import Cgroup, warm_migration_lock
    warm_migration_lock()  # the kernel's ~10-20 ms grace period overlaps what follows
    from runtime.lowlevel.spec import load_config, rootfs_path
    from runtime.lowlevel.sync import Channel

    from runtime.lowlevel.state import validate_id
    validate_id(container_id)
    bundle = os.path.abspath(bundle)
    config = load_config(bundle)
    proc = config["process"]
    _check_console(proc, console_socket, detach=local_console is None)
    _warn_ignored_labels(config)
    listen = _listen_fds()
    if listen:   # socket activation: runc passes them first, then the --preserve-fds ones
        proc["env"] = list(proc.get("env") or []) + [f"LISTEN_FDS={listen}", "LISTEN_PID=1"]
        preserve_fds += listen
    st = _reserve(root, container_id, host)
    failpoints.hit("lowlevel.create.after-state-dir")
    st.bundle, st.rootfs, st.config = bundle, rootfs_path(bundle, config), config
    st.annotations = config.get("annotations") or {}
    st.created = rfc3339_now()
    linux = config.get("linux") or {}
    cgroup = None
    child_pid = init_pid = None
    parent, child = Channel.pair()
    console = None
    try:
        found = Cgroup.for_container(container_id, linux.get("cgroupsPath"), host=host)
        _check_existing_cgroup(found)
        cgroup = found   # from here on, a failure removes it
        st.cgroup = cgroup.to_state()
        st.save()
        os.mkfifo(st.fifo, 0o622)
        os.chmod(st.fifo, 0o622)  # despite the umask: the init may not be root when it opens it
        if proc.get("terminal"):
            from runtime.lowlevel import console as consolemod
            console = local_console or consolemod.connect(console_socket)
        seccomp_filter = _seccomp_filter(config, root)
        from runtime.lowlevel import init
        init.preload(config)
        host.prctl(h.PR_SET_CHILD_SUBREAPER, 1)  # the init comes back to us if set-up fails
        child_pid = os.fork()
        if child_pid == 0:
            from runtime.lowlevel import init
            parent.close()
            # the FIFO by fd: in a new user namespace the state directory may be out of reach
            fifo = f"/proc/self/fd/{os.open(st.fifo, os.O_PATH | os.O_CLOEXEC)}"
            init.intermediate(child, config, host, lambda: init.container_init(
                child, container_id, config, st.rootfs, fifo, cgroup,
                console.fileno() if console else None, preserve_fds, seccomp_filter, host, no_pivot))
        child.close()
        failpoints.hit("lowlevel.create.after-fork")
        # The cgroup is made after the fork: the intermediate unshares its namespaces meanwhile,
        # and the migration lock's grace period (warm_migration_lock) had the longest to pass.
        cgroup.create()
        failpoints.hit("lowlevel.create.after-cgroup")
        cgroup.apply(linux.get("resources") or {})
        st.cgroup = cgroup.to_state()  # now with the notes of what apply could not enforce
        cgroup.add(child_pid)
        if any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or []):
            parent.expect("userns", INIT_TIMEOUT)
            init.write_id_maps(child_pid, config)
        parent.send("continue")
        init_pid = parent.expect("pid", INIT_TIMEOUT)["pid"]
        os.waitpid(child_pid, 0)  # the intermediate exits right after reporting the pid
        child_pid = None
        st.pid, st.start_time = init_pid, proc_start_time(init_pid)
        st.namespaces = {ns["type"]: ns.get("path") or f"/proc/{init_pid}/ns/{h.NAMESPACE_FILES[ns['type']]}"
                         for ns in linux.get("namespaces") or []}
        msg = parent.recv(INIT_TIMEOUT)
        if msg.get("type") == "hooks":
            from runtime.lowlevel import hooks
            # "created", as crun and runtime-tools' hooks_stdin expect (runc 1.1 says "creating"):
            # the runtime environment exists; only the user process has yet to start
            state = st.hook_state("created")
            hooks.run_hooks(config, "prestart", state)
            hooks.run_hooks(config, "createRuntime", state)
            parent.send("continue")
            msg = parent.recv(INIT_TIMEOUT)
        if msg.get("type") == "error":
            from runtime.errors import from_dict
            raise from_dict(msg.get("error") or {})
        if msg.get("type") != "ready":
            raise CapsizeError(f"sync: unexpected message {msg.get('type')!r} from the init")
        st.save()
        failpoints.hit("lowlevel.create.after-state-write")
        os.unlink(os.path.join(st.dir, "creator"))
        if pid_file:
            _write_pid_file(pid_file, init_pid)
        return st
    except BaseException:
        _kill_and_reap(init_pid, child_pid)
        if cgroup is not None:
            try:
                cgroup.kill_all(SIGKILL)
                cgroup.destroy()
            except CapsizeError as e:
                _warn(f"cleaning up cgroup after failed create: {e}")
        st.remove()
        raise
    finally:
        parent.close()
        if console:
            console.close()   # the init sent the pty master over it (runtime.lowlevel.console)


def _seccomp_filter(config: dict, root: str):
    """``linux.seccomp`` as a loadable filter (cached under *root*: seccomp.compiled_filter), made
    in the runtime's own mount namespace, or None."""
    profile = (config.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from runtime.lowlevel import seccomp
    return seccomp.compiled_filter(profile, root)


def start(root: str, container_id: str, timeout: float = 10.0) -> State:
    """Release a created container's init through the exec FIFO, then run poststart hooks.

    Raises NotFound, FailedPrecondition ("cannot start a container that has stopped",
    "cannot start an already running container"), Unavailable when the init died meanwhile.
    """
    from runtime.errors import Unavailable
    from runtime.lowlevel import hooks

    st = State.load(root, container_id)
    status = st.status()
    LOWLEVEL.check(status, "running", sources=("created",), id=container_id,
                   message="cannot start a container that has stopped" if status == "stopped"
                   else "cannot start an already running container")
    failpoints.hit("lowlevel.start.before-exec-fifo")
    try:
        fd = os.open(st.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FailedPrecondition("cannot start an already running container", id=container_id) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                data = None
            if data:
                break
            if not st.alive():
                # the init may have written its byte, exec'ed and exited (a short command on a busy
                # machine) between the read above and this check: read once more before saying so
                try:
                    data = os.read(fd, 1)
                except BlockingIOError:
                    data = None
                if data:
                    break
                raise Unavailable(f"container init exited before it was started: {container_id}")
            if time.monotonic() > deadline:
                raise DeadlineExceeded(f"container init did not answer on the exec FIFO within {timeout}s")
            time.sleep(0.0005)
    finally:
        os.close(fd)
    os.unlink(st.fifo)
    hooks.run_hooks_warn(st.config or {}, "poststart", st.hook_state("running"), _warn)
    return st


def parse_signal(sig: str | int) -> int:
    """``KILL``, ``SIGKILL``, ``kill`` or ``9`` -> 9 (:func:`runtime.signals.parse`), and ``0``
    -> 0 (runc 1.1's parseSignal takes any number: signal 0 checks that the init exists);
    InvalidArgument for anything else (``invalid signal: N`` for a number out of range,
    ``unknown signal 'X'``)."""
    if sig == 0 or sig == "0":
        return 0
    try:
        return signals.parse(sig if isinstance(sig, int) else str(sig))
    except ValueError:
        if isinstance(sig, int) or str(sig).isdigit():
            raise InvalidArgument(f"invalid signal: {sig}") from None
        raise InvalidArgument(f"unknown signal {sig!r}") from None


def kill(root: str, container_id: str, sig: int = SIGTERM, all_processes: bool = False,
         host: h.Host = h.HOST) -> None:
    """Send *sig* to the init, or with *all_processes* to every process in the container's cgroup
    (its cgroup writes through *host*), as runc 1.1's ``linuxContainer.Signal``.

    Raises NotFound, FailedPrecondition("container not running") for a stopped container
    without *all_processes*; with it, a stopped container is signalled through its cgroup if
    processes are left there and otherwise succeeds doing nothing (runc returns 0 too).
    """
    st = State.load(root, container_id)
    failpoints.hit("lowlevel.kill.before")
    status = st.status()
    if status == "stopped":
        if all_processes:
            cg = st.cgroup_obj(host)
            if cg is not None and cg.pids() and sig:
                cg.kill_all(sig)
            return
        raise FailedPrecondition("container not running", id=container_id)
    if all_processes:
        if sig:
            st.cgroup_obj(host).kill_all(sig)
    else:
        try:
            os.kill(st.pid, sig)
        except ProcessLookupError:
            raise FailedPrecondition("container not running", id=container_id) from None
        if sig == SIGKILL and status == "paused":
            # runc 1.1: a frozen task dies of SIGKILL only once thawed (cgroup v1 freezer)
            st.cgroup_obj(host).thaw()


def _wait_gone(st: State, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while st.alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def delete(root: str, container_id: str, force: bool = False, host: h.Host = h.HOST) -> None:
    """Delete a container: kill what is left (created, or anything with *force*), remove cgroup and state.

    Raises NotFound, FailedPrecondition("cannot delete container ID that is not stopped: STATUS").
    Poststop hooks run; their failure is a warning.
    """
    from runtime.lowlevel import hooks

    if force:
        _wait_creator(root, container_id, CREATE_WAIT)
    try:
        st = State.load(root, container_id)
    except NotFound:
        if not force:
            raise
        # runc and crun: --force on an unknown id is done (a clean-up may run twice); what a
        # create that died before its first save left behind is cleared, never a live create's
        import fcntl
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if os.path.isdir(root) else None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _clear_stale(root, container_id, host)
        finally:
            if fd is not None:
                os.close(fd)
        return
    status = st.status()
    if not force:
        LOWLEVEL.check(status, "deleted", id=container_id,
                       message=f"cannot delete container {container_id} that is not stopped: {status}")
    cg = st.cgroup_obj(host)
    if status != "stopped" or (cg is not None and cg.exists() and cg.pids()):
        if cg is not None and cg.exists():
            cg.kill_all(SIGKILL)
        elif st.alive():
            os.kill(st.pid, SIGKILL)
        if not _wait_gone(st, 10.0):
            raise DeadlineExceeded(f"container {container_id}: init {st.pid} did not die after SIGKILL")
    failpoints.hit("lowlevel.delete.before-cgroup-remove")
    if cg is not None:
        cg.destroy()
    hooks.run_hooks_warn(st.config or {}, "poststop", st.hook_state("stopped"), _warn)
    st.remove()
    failpoints.hit("lowlevel.delete.after-state-remove")


def pause(root: str, container_id: str, host: h.Host = h.HOST) -> None:
    """Freeze every process of a running container (runc pause). FailedPrecondition unless running."""
    st = State.load(root, container_id)
    LOWLEVEL.check(st.status(), "paused", sources=("running",), message="container not running", id=container_id)
    st.cgroup_obj(host).freeze()


def resume(root: str, container_id: str, host: h.Host = h.HOST) -> None:
    """Thaw a paused container (runc resume). FailedPrecondition unless paused."""
    st = State.load(root, container_id)
    LOWLEVEL.check(st.status(), "running", sources=("paused",), message="container not paused", id=container_id)
    st.cgroup_obj(host).thaw()


def update(root: str, container_id: str, resources: dict, host: h.Host = h.HOST) -> None:
    """Apply OCI ``linux.resources`` *resources* to a created, running or paused container's
    cgroup (runc update) and keep them in its state's config; a memory or memory+swap limit is
    applied together with the container's current other one. InvalidArgument / Unimplemented
    for fields :meth:`runtime.lowlevel.cgroups.Cgroup.apply` refuses; FailedPrecondition for a
    stopped container or one without a cgroup."""
    st = State.load(root, container_id)
    if st.status() == "stopped":
        raise FailedPrecondition(f"container {container_id} is stopped: cannot update its resources",
                                 id=container_id)
    cg = st.cgroup_obj(host)
    if cg is None:
        raise FailedPrecondition(f"container {container_id} has no cgroup", id=container_id)
    if not isinstance(st.config, dict):
        st.config = {}
    current = st.config.setdefault("linux", {}).setdefault("resources", {})
    mem = resources.get("memory")
    if isinstance(mem, dict) and ("limit" in mem or "swap" in mem) and isinstance(current.get("memory"), dict):
        # memory and memory+swap limits are checked and written as a pair: the one not given is
        # the container's current one (runc merges update's values into its config the same way)
        mem = dict(mem)
        if mem.get("limit") == -1 and "swap" not in mem:
            mem["swap"] = -1   # no memory limit: no memory+swap limit either (runc 1.1 update)
        for key in ("limit", "swap"):
            if key not in mem and current["memory"].get(key):
                mem[key] = current["memory"][key]
        resources = {**resources, "memory": mem}
    cg.apply(resources)
    for section, value in resources.items():
        if isinstance(value, dict) and isinstance(current.get(section), dict):
            current[section].update(value)
        else:
            current[section] = value
    st.save()


def list_states(root: str) -> list[dict]:
    """The OCI state of every container under *root*, sorted by id."""
    out = []
    for cid in State.ids(root):
        try:
            out.append(State.load(root, cid).oci_state())
        except NotFound:
            continue
    return out


def pids(root: str, container_id: str) -> list[int]:
    """Every host pid in the container's cgroup (runc ps --format json)."""
    st = State.load(root, container_id)
    cg = st.cgroup_obj()
    return cg.pids() if cg is not None and cg.exists() else []


def exec_process(root: str, container_id: str, proc: dict, detach: bool = False,
                 pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0, sub_cgroups: list[str] | None = None, ignore_paused: bool = False,
                 host: h.Host = h.HOST) -> int:
    """Run *proc* (an OCI ``process``) inside a running container; its exit status, or 0 with *detach*.

    The process joins every namespace of the init (/proc/<pid>/ns/*) and the container's cgroup.
    With ``proc["terminal"]`` it gets a new pty of the container, whose master goes to
    *console_socket* (:mod:`runtime.lowlevel.console`). Of the caller's fds above stdio only the
    next *preserve_fds* reach it (runc exec ``--preserve-fds``). *sub_cgroups* are runc exec's
    ``--cgroup`` specs (:meth:`Cgroup.add_to_sub`); with *ignore_paused* a paused container is
    joined too (the process starts when it is resumed). Raises NotFound,
    FailedPrecondition("cannot exec in a stopped container"), InvalidArgument (a terminal
    without a console socket, or the reverse), Unavailable (nothing listens on the socket), and
    set-up errors.
    """
    local = None
    if proc.get("terminal") and not console_socket and not detach:
        from runtime.lowlevel import console as consolemod
        local, theirs = consolemod.local_pair()   # our own terminal, relayed to our stdio
    _check_console(proc, console_socket, detach=local is None)
    from runtime.lowlevel.sync import Channel
    from runtime.lowlevel import init

    st = State.load(root, container_id)
    status = st.status()
    if status not in ("running", "created") and not (ignore_paused and status == "paused"):
        raise FailedPrecondition(f"cannot exec in a {status} container", id=container_id)
    config = {"linux": {"namespaces": [
        {"type": t, "path": f"/proc/{st.pid}/ns/{h.NAMESPACE_FILES[t]}"}
        for t in (st.namespaces or {})]}}
    seccomp_filter = _seccomp_filter(st.config or {}, root)
    init.preload({})
    console = theirs if local else None
    if console_socket:
        from runtime.lowlevel import console as consolemod
        console = consolemod.connect(console_socket)
    parent, child = Channel.pair()
    host.prctl(h.PR_SET_CHILD_SUBREAPER, 1)
    child_pid = os.fork()
    if child_pid == 0:
        parent.close()
        init.intermediate(child, config, host, lambda: init.exec_init(
            child, proc, seccomp_filter, host, console.fileno() if console else None, preserve_fds))
    child.close()
    if console:
        console.close()
    pid = None
    try:
        parent.send("continue")
        pid = parent.expect("pid", INIT_TIMEOUT)["pid"]
        os.waitpid(child_pid, 0)  # the intermediate exits right after reporting the pid
        child_pid = None
        if sub_cgroups:
            st.cgroup_obj(host).add_to_sub(pid, sub_cgroups)
        else:
            st.cgroup_obj(host).add(pid)
        parent.send("continue")
        parent.expect("ready", INIT_TIMEOUT)
    except BaseException:
        _kill_and_reap(pid, child_pid)
        raise
    finally:
        parent.close()
    if pid_file:
        _write_pid_file(pid_file, pid)
    if detach:
        return 0
    relay = consolemod.Relay(consolemod.receive_master(local)) if local else None
    try:
        return _wait_forwarding(pid)
    finally:
        if relay:
            relay.close()


def _forwarder():
    """Install the forwarding handlers now (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2);
    signals that arrive before ``target(pid)`` names the process are queued, then forwarded, as
    runc's signal handler, installed before the container is created, does. Uses the C ``_signal``
    module: ``signal`` builds its enums at import (~1-3 ms of every ``exec`` and ``run``)."""
    import _signal as signal
    box = {"pid": None, "queue": []}

    def forward(signum, _frame):
        if box["pid"] is None:
            box["queue"].append(signum)
            return
        try:
            os.kill(box["pid"], signum)
        except ProcessLookupError:
            pass
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, forward)

    def target(pid: int) -> None:
        box["pid"] = pid
        while box["queue"]:
            forward(box["queue"].pop(0), None)
    return target


def _wait_forwarding(pid: int, target=None) -> int:
    """Wait for our adoptee *pid*, forwarding signals to it (see _forwarder); shell-style status."""
    (target or _forwarder())(pid)
    while True:
        try:
            got, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run(root: str, container_id: str, bundle: str, detach: bool = False, pid_file: str | None = None,
        console_socket: str | None = None, keep: bool = False, preserve_fds: int = 0,
        host: h.Host = h.HOST, no_pivot: bool = False) -> int:
    """create + start; in the foreground, wait for the init, delete the container and return its status."""
    target = None if detach else _forwarder()  # from now on: nothing may kill us and orphan the container
    local = theirs = None
    if not detach and not console_socket:
        from runtime.lowlevel import console as consolemod
        local, theirs = consolemod.local_pair()   # used only if process.terminal is true
    try:
        st = create(root, container_id, bundle, pid_file=pid_file, console_socket=console_socket,
                    preserve_fds=preserve_fds, host=host, local_console=theirs, no_pivot=no_pivot)
    finally:
        if theirs:
            theirs.close()
    relay = None
    try:
        if local and (st.config.get("process") or {}).get("terminal"):
            relay = consolemod.Relay(consolemod.receive_master(local))
        start(root, container_id)
    except BaseException:
        if relay:
            relay.close(0)
        delete(root, container_id, force=True)
        raise
    finally:
        if local:
            local.close()
    if detach:
        return 0
    try:
        status = _wait_forwarding(st.pid, target)
    finally:
        if relay:
            relay.close()
    if not keep:
        delete(root, container_id, force=True)
    return status
