"""The shim template: a pre-loaded process that forks shims, so that shims share their memory.

Every container pays for its shim, and a fresh CPython with the shim's modules holds about
4.5 MB of private memory. Forked from one process that has already imported everything (and
frozen its objects out of the garbage collector's reach, ``gc.freeze()``), a shim shares those
pages copy-on-write and keeps only about 1.5 MB private: the same trick as Android's zygote.

* One template per runtime daemon address (and capsize source tree), listening on
  ``<socket dir>/template-<sha256 prefix>``; ``capsize-shim start`` starts it on first use
  (detached, like a shim, but not a subreaper) under a lock file, and asks it for a shim.
* A request is one JSON line ``{"argv": [...], "cwd": <task dir>, "env": {...}}`` sent with
  three descriptors (SCM_RIGHTS): the shim's log, its listening socket and its readiness pipe.
  The template forks twice (the shim calls setsid, the middle process exits, so the shim is
  re-parented exactly as a directly started one: to the nearest subreaper above the template,
  or PID 1), and answers ``{"pid": <shim pid>}`` or ``{"error": <message>}``.
* The shim, in the forked child: takes the caller's environment, closes every descriptor of the
  template and runs :func:`runtime.shim.daemon.main`, which makes it a child subreaper and sets
  its title (:mod:`runtime.shim.proctitle`) to ``capsize-shim serve --namespace <ns> --id <id>
  ...``; the template, whose argument area is padded for that, reads ``capsize-shim template``.
* The template watches its shims through pidfds and exits when none is left and none was asked
  for during :data:`IDLE_EXIT` seconds. Killing it harms no shim; the next ``start`` makes a new
  one. Its log lines go to the log of the task whose ``start`` created it.
"""

from __future__ import annotations

import os
import sys
import time
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET
from _socket import socket as _unix_socket  # the C type: `socket` and `json` cost every start an enum and re import

from runtime import jsonfast
from runtime.errors import CapsizeError, Unavailable

#: Seconds the template lingers with no live shim and no request.
IDLE_EXIT = 1.0
LISTEN_FD = 3
READY_FD = 4
#: Room kept in the template's argument area for its shims' titles (see runtime.shim.proctitle).
TITLE_ROOM = 2048


def socket_path(socket_dir: str, runtime_address: str) -> str:
    """The template's socket for shims publishing to *runtime_address*."""
    import runtime
    from runtime.digest import sha256_hex
    key = f"{runtime_address}\0{os.path.dirname(os.path.abspath(runtime.__file__))}\0{os.path.realpath(sys.executable)}"
    return os.path.join(os.path.abspath(socket_dir), "template-" + sha256_hex(key)[:24])


# -- the caller's side (capsize-shim start) ------------------------------------------------------

def spawn(socket_dir: str, runtime_address: str, argv: list[str], cwd: str, fds: list[int],
          log_fd: int, timeout: float = 10.0) -> int:
    """Have the template (started if needed) fork a shim; returns the shim's pid.

    *fds* are the shim's log, listening socket and readiness pipe. Raises Unavailable when no
    template can be reached or started, or when it does not answer within *timeout* seconds
    (a stopped template); the caller then starts the shim itself.
    """
    path = socket_path(socket_dir, runtime_address)
    sock = _connect(path)
    if sock is None:
        try:
            sock = _start_template(path, log_fd, timeout)
        except OSError as e:
            raise Unavailable(f"cannot start a shim template at {path}: {e}") from None
    try:
        sock.settimeout(timeout)
        from array import array
        req = jsonfast.dumps({"argv": argv, "cwd": cwd, "env": dict(os.environ)}).encode() + b"\n"
        sent = sock.sendmsg([req], [(SOL_SOCKET, SCM_RIGHTS, array("i", fds))])  # as socket.send_fds
        if sent < len(req):
            sock.sendall(req[sent:])
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise Unavailable(f"shim template at {path} closed the connection")
            data += chunk
        reply = jsonfast.loads(data)
    except (OSError, ValueError) as e:
        raise Unavailable(f"shim template at {path}: {e}") from None
    finally:
        sock.close()
    if "error" in reply:
        raise CapsizeError(f"shim template: {reply['error']}")
    return int(reply["pid"])


def _connect(path: str) -> _unix_socket | None:
    s = _unix_socket(AF_UNIX, SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _start_template(path: str, log_fd: int, timeout: float) -> _unix_socket:
    """Start a template at *path* (under a lock, so that concurrent starts make one)."""
    import fcntl
    from runtime.shim.detach import boot_argv, spawn_detached, wait_ready
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)  # another start may have made it meanwhile
        if sock is not None:
            return sock
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = _unix_socket(AF_UNIX, SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(128)
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = spawn_detached(boot_argv("capsize-shim", "template", "-" * TITLE_ROOM),
                                 [null, log_fd, log_fd, listener.fileno(), w], "/", subreaper=False)
        finally:
            os.close(null)
            os.close(w)
            listener.close()
        try:
            wait_ready(r, timeout, "shim template")
        except CapsizeError:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            raise
        sock = _connect(path)
        if sock is None:
            raise Unavailable(f"shim template at {path} is not reachable after start")
        return sock
    finally:
        os.close(lock)  # releases the flock; the lock file stays (removed by the template)


# -- the template itself ---------------------------------------------------------------------

def _preload() -> None:
    """Import everything a shim runs, warm ctypes, and move it all out of the GC's way."""
    import fcntl  # noqa: F401 - used by every forked shim
    import gc
    from runtime import jsonlog  # noqa: F401
    from runtime.shim import (args, client, daemon, events, exitfile, failpoints, logs, loop,  # noqa: F401
                              ociruntime, oom, reaper, server, task)
    from runtime.host import HOST, PR_SET_CHILD_SUBREAPER
    HOST.prctl(PR_SET_CHILD_SUBREAPER, 0)  # never a subreaper; loads ctypes and libc once for all shims
    gc.collect()
    gc.freeze()


def main() -> None:
    """The ``template`` verb (from :mod:`runtime.shim.cli`): run the template; a failure is
    reported as ``serve`` reports one (readiness pipe, stderr), and is the exit code."""
    from runtime.shim.daemon import report_failure
    try:
        code = serve_template()
    except CapsizeError as e:
        code = report_failure(e)
    sys.exit(code)


def serve_template() -> int:
    """Run the template (fd 3: listening socket, fd 4: readiness pipe) until it is idle."""
    import select
    import socket
    from runtime.jsonlog import Logger
    from runtime.shim.proctitle import set_title
    set_title(["capsize-shim", "template"], comm="capsize-shim-t")
    log = Logger(level="debug", component="shim-template", journal=False)
    _preload()
    os.set_inheritable(LISTEN_FD, False)
    listener = socket.socket(fileno=LISTEN_FD)
    path = listener.getsockname()
    inode = os.stat(path).st_ino
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    pidfds: dict[int, int] = {}  # pidfd -> shim pid
    last = time.monotonic()
    os.write(READY_FD, f"ready {os.getpid()}\n".encode())
    os.close(READY_FD)
    log.info("shim template started", pid=os.getpid(), address=path)
    while True:
        for fd, _ in ep.poll(0.2):
            if fd == listener.fileno():
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                with conn:
                    pid = _handle(conn, listener, ep, pidfds, log)
                if pid:
                    try:
                        pfd = os.pidfd_open(pid)
                        pidfds[pfd] = pid
                        ep.register(pfd, select.EPOLLIN)
                    except OSError:
                        pass
                last = time.monotonic()
            elif fd in pidfds:
                ep.unregister(fd)
                os.close(fd)
                del pidfds[fd]
                last = time.monotonic()
        if not pidfds and time.monotonic() - last > IDLE_EXIT:
            break
    try:
        if _same_socket(path, inode):
            os.unlink(path)
            os.unlink(path + ".lock")
    except OSError:
        pass
    log.info("shim template exited: no shim left")
    return 0


def _same_socket(path: str, inode: int) -> bool:
    """True if *path* is still the socket file we bound (not one a newer template made)."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _handle(conn, listener, ep, pidfds, log) -> int:
    """Serve one spawn request on *conn* (a socket.socket); returns the new shim's pid (0 on error)."""
    import socket
    conn.settimeout(5.0)
    fds: list[int] = []
    try:
        data = b""
        while not data.endswith(b"\n"):
            msg, got, _, _ = socket.recv_fds(conn, 65536, 8)
            fds += got
            if not msg:
                raise ValueError("connection closed mid-request")
            data += msg
        req = jsonfast.loads(data)
        if len(fds) != 3:
            raise ValueError(f"want 3 descriptors, got {len(fds)}")
        pid = _fork_shim(req, fds, [listener, conn], ep, pidfds)
        conn.sendall(jsonfast.dumps({"pid": pid}).encode() + b"\n")
        return pid
    except (OSError, ValueError, KeyError) as e:
        log.error("spawn request failed", error=str(e))
        try:
            conn.sendall(jsonfast.dumps({"error": str(e)}).encode() + b"\n")
        except OSError:
            pass
        return 0
    finally:
        for fd in fds:
            os.close(fd)


def _fork_shim(req: dict, fds: list[int], sockets, ep, pidfds) -> int:
    """Fork twice; the grandchild, a session leader, becomes the shim. Returns its pid."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(r)
            shim = os.fork()
            if shim == 0:
                os.close(w)
                os.setsid()
                _become_shim(req, fds, sockets, ep, pidfds)  # never returns
            os.write(w, f"{shim}\n".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        line = f.read()
    os.waitpid(middle, 0)
    if not line.strip():
        raise OSError("the forked shim did not start")
    return int(line)


def _become_shim(req: dict, fds: list[int], sockets, ep, pidfds) -> None:
    code = 1
    log_fd, listen_fd, ready_fd = fds
    try:
        import fcntl
        ep.close()
        for s in sockets:
            s.detach()  # never close these numbers later: they get reused by the shim
        null = os.open(os.devnull, os.O_RDWR)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (null, log_fd, log_fd, listen_fd, ready_fd)]
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        ready_fd = READY_FD
        os.closerange(5, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 1 << 20 else 1 << 16)
        pidfds.clear()
        os.chdir(req["cwd"])
        env = req.get("env") or {}
        env.pop("CAPSIZE_SHIM_SUBREAPER", None)
        for key in [k for k in os.environ if k not in env]:  # change only what differs:
            del os.environ[key]                               # every page written is private
        for key, value in env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        argv = [str(a) for a in req["argv"]]
        sys.argv = ["capsize-shim"] + argv
        from runtime.shim.daemon import main
        main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(ready_fd, f"error {e}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)
