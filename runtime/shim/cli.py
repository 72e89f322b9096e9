"""``capsize-shim``: the per-container shim's command line (containerd-shim-runc-v2's actions).

::

    capsize-shim start  --id ID [--namespace NS] --bundle DIR [--address RUNTIME_ADDRESS]
                        [--runtime BIN] [--runtime-root DIR] [--socket-dir DIR]
                        [--spawn template|exec]
    capsize-shim delete --id ID [--namespace NS] --bundle DIR [--runtime BIN] [--runtime-root DIR]
    capsize-shim serve  (the daemon itself; started by ``start``)

``start`` (run by the high-level runtime, with the task directory as bundle) spawns the shim
daemon detached: its own session and process group, not the caller's child (``start`` exits and
the daemon is re-parented), a child subreaper. It waits until the daemon serves, prints the
shim's address (``unix:///run/capsize/s/<sha256>``) on stdout and exits 0. When a shim already
serves that address it prints the address and starts nothing (as containerd's shims do).
``--runtime`` is the low-level runtime (a path, or a name looked up next to this Python and on
PATH; default ``capsize-runc``); ``--runtime-root`` its ``--root`` (default
``<state>/runc/<namespace>``, see :func:`runtime.shim.paths.default_runtime_root`); both are
kept in ``<bundle>/options.json`` for ``delete``. ``--address`` is the runtime daemon's event
socket (empty: events are not published). ``--spawn template`` (the default; or the
environment's ``CAPSIZE_SHIM_SPAWN``) has the shim forked by the shim template of that address
(:mod:`runtime.shim.template`: shims then share most of their memory), started on first use;
``--spawn exec`` starts a fresh interpreter (:mod:`runtime.shim.detach`). If the template cannot
be used, ``start`` warns on stderr and execs. Either way the shim has the same parentage,
session, command line (``capsize-shim serve --id <id> ...``) and behaviour.

``delete`` cleans up after a shim that is gone (as ``containerd-shim-runc-v2 delete``): it runs
``<runtime> delete --force <id>``, unmounts the rootfs if it is a mount point, removes the shim's
socket file, and prints one JSON line: ``{"id", "pid", "exit_status", "exited_at", "source",
"warnings"}`` where ``source`` is ``"exit-file"`` when the real status was recovered from the
exit file, or ``"default"`` when it was not (status 137, as containerd reports a dead shim's
task). It refuses (exit 5) while the shim process is alive.

Errors are one line on stderr (``capsize-shim: <message>``) and the exit code of
:mod:`runtime.errors`.
"""

from __future__ import annotations

import os
import sys

from runtime import jsonfast
from runtime.errors import (CapsizeError, FailedPrecondition, InvalidArgument, NotFound,
                            exit_code_for)
from runtime.shim import paths

ACTIONS = ("start", "delete", "serve")
OPTIONS = ("id", "namespace", "bundle", "address", "runtime", "runtime-root", "socket-dir", "spawn")
USAGE = ("usage: capsize-shim start|delete --id ID [--namespace NS] --bundle DIR "
         "[--address RUNTIME_ADDRESS] [--runtime BIN] [--runtime-root DIR] [--socket-dir DIR] "
         "[--spawn template|exec]")
#: Seconds ``start`` waits for the daemon to serve.
START_TIMEOUT = 10.0


def parse(argv: list[str]) -> tuple[str, dict]:
    """``[action, --opt value | --opt=value ...]`` -> (action, options); raises InvalidArgument."""
    if not argv or argv[0] not in ACTIONS:
        raise InvalidArgument(USAGE)
    action, opts, i = argv[0], {}, 1
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or key not in OPTIONS:
            raise InvalidArgument(f"unknown argument {arg!r}; {USAGE}")
        if not eq:
            if i + 1 >= len(argv):
                raise InvalidArgument(f"{arg} needs a value")
            i += 1
            value = argv[i]
        opts[key] = value
        i += 1
    for key in ("id", "bundle"):
        if not opts.get(key):
            raise InvalidArgument(f"--{key} is required; {USAGE}")
    opts.setdefault("namespace", "default")
    paths.check_id(opts["id"], "id")
    paths.check_id(opts["namespace"], "namespace")
    opts["bundle"] = os.path.abspath(opts["bundle"])
    return action, opts


def _options_file(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, paths.OPTIONS)) as f:
            d = jsonfast.loads(f.read())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _listening(path: str) -> bool:
    from _socket import AF_UNIX, SOCK_STREAM, socket  # the C type: `socket` costs an enum import
    s = socket(AF_UNIX, SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(opts: dict) -> str:
    """Spawn the shim daemon (see the module docstring); returns its address."""
    from _socket import AF_UNIX, SOCK_STREAM, socket
    from runtime.shim.ociruntime import resolve
    bundle, cid, ns = opts["bundle"], opts["id"], opts["namespace"]
    if not os.path.isfile(os.path.join(bundle, paths.CONFIG)):
        raise NotFound(f"bundle {bundle}: {paths.CONFIG} not found", field="bundle")
    runtime = resolve(opts.get("runtime") or "capsize-runc")
    root = os.path.abspath(opts.get("runtime-root") or paths.default_runtime_root(bundle, ns))
    address = opts.get("address", "")
    sock_path = paths.socket_path(address, ns, cid, opts.get("socket-dir") or paths.SOCKET_DIR)
    if _listening(sock_path):
        return paths.address_of(sock_path)
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    mode = opts.get("spawn") or os.environ.get("CAPSIZE_SHIM_SPAWN") or "template"
    if mode not in ("template", "exec"):
        raise InvalidArgument(f"--spawn must be template or exec, not {mode!r}", field="spawn")
    os.makedirs(os.path.dirname(sock_path), mode=0o711, exist_ok=True)
    listener = socket(AF_UNIX, SOCK_STREAM)
    listener.bind(sock_path)
    child = 0
    try:
        os.chmod(sock_path, 0o600)
        listener.listen(128)
        opts = dict(opts, runtime=runtime, **{"runtime-root": root})
        with open(os.path.join(bundle, paths.OPTIONS), "w") as f:
            f.write(jsonfast.dumps({"id": cid, "namespace": ns, "runtime": runtime, "runtime_root": root,
                                    "address": address, "shim_address": paths.address_of(sock_path)},
                                   compact=False))
        with open(os.path.join(bundle, paths.ADDRESS), "w") as f:
            f.write(paths.address_of(sock_path))
        args = ["serve"]
        for key in OPTIONS:
            if opts.get(key) is not None and key not in ("socket-dir", "spawn"):
                args += [f"--{key}", opts[key]]
        r, w = os.pipe()
        log_fd = os.open(os.path.join(bundle, paths.SHIM_LOG),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            if mode == "template":
                from runtime.shim.template import spawn
                try:
                    child = spawn(opts.get("socket-dir") or paths.SOCKET_DIR, address, args, bundle,
                                  [log_fd, listener.fileno(), w], log_fd)
                except CapsizeError as e:
                    print(f"capsize-shim: warning: no shim template ({e.message}): starting the shim directly",
                          file=sys.stderr)
                    mode = "exec"
            if mode == "exec":
                from runtime.shim.detach import boot_argv, spawn_detached
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                try:
                    child = spawn_detached(boot_argv("capsize-shim", *args),
                                           [null, log_fd, log_fd, listener.fileno(), w], bundle,
                                           subreaper=True, env=dict(os.environ, CAPSIZE_SHIM_SUBREAPER="1"))
                finally:
                    os.close(null)
        finally:
            os.close(w)
            os.close(log_fd)
            listener.close()
        from runtime.shim.detach import wait_ready
        wait_ready(r, START_TIMEOUT, f"shim for {ns}/{cid}")
    except BaseException:
        listener.close()
        _failed_start(child, sock_path, bundle)
        raise
    return paths.address_of(sock_path)


def _failed_start(pid: int, sock_path: str, bundle: str) -> None:
    """Kill the failed daemon (and reap it, if it is our child); remove what ``start`` made."""
    if pid:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
    for p in (sock_path, os.path.join(bundle, paths.ADDRESS), os.path.join(bundle, paths.OPTIONS)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _shim_alive(bundle: str, cid: str) -> int:
    """The pid of a live shim process for this task, or 0 (a zombie counts as gone).

    A shim runs with the task directory as its working directory, so a live process named in
    ``shim.pid`` whose cwd is *bundle* is that shim (a recycled pid would not match)."""
    try:
        with open(os.path.join(bundle, paths.SHIM_PID)) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return 0
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return 0
    return pid if cwd == os.path.realpath(bundle) else 0


def _is_mount_point(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].replace("\\040", " ") == path:
                return True
    return False


def delete(opts: dict) -> dict:
    """Clean up after a dead shim (see the module docstring); returns what is printed."""
    from runtime.shim import exitfile
    from runtime.shim.clock import rfc3339nano
    from runtime.shim.ociruntime import OCIRuntime, resolve
    bundle, cid, ns = opts["bundle"], opts["id"], opts["namespace"]
    if not os.path.isdir(bundle):
        raise NotFound(f"bundle {bundle} does not exist", field="bundle")
    saved = _options_file(bundle)
    alive = _shim_alive(bundle, cid)
    if alive:
        raise FailedPrecondition(f"the shim of task {ns}/{cid} is alive (pid {alive}): use its API",
                                 id=cid, shim_pid=alive)
    runtime = resolve(opts.get("runtime") or saved.get("runtime") or "capsize-runc")
    root = opts.get("runtime-root") or saved.get("runtime_root") or paths.default_runtime_root(bundle, ns)
    warnings = []
    rt = OCIRuntime(runtime, root, os.path.join(bundle, paths.RUNTIME_LOG))
    code, _, err = rt.run("delete", "--force", cid)
    if code:
        warnings.append(f"failed to remove {os.path.basename(runtime)} container: {err}")
    rootfs = os.path.join(bundle, "rootfs")
    try:
        with open(os.path.join(bundle, paths.CONFIG)) as f:
            root_path = jsonfast.loads(f.read())["root"]["path"]
        rootfs = root_path if os.path.isabs(root_path) else os.path.join(bundle, root_path)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from runtime.host import HOST, MNT_DETACH
    for _ in range(16):
        if not os.path.isdir(rootfs) or not _is_mount_point(rootfs):
            break
        try:
            HOST.umount(rootfs, MNT_DETACH)
        except OSError as e:
            warnings.append(f"failed to unmount {rootfs}: {e}")
            break
    shim_address = saved.get("shim_address") or ""
    try:
        with open(os.path.join(bundle, paths.ADDRESS)) as f:
            shim_address = f.read().strip() or shim_address
    except OSError:
        pass
    if shim_address:
        try:
            os.unlink(paths.path_of(shim_address))
        except FileNotFoundError:
            pass
        except OSError as e:
            warnings.append(f"failed to remove shim socket: {e}")
    found = exitfile.read(bundle)
    if found:
        result = {"pid": found.get("pid", 0), "exit_status": found["exit_status"],
                  "exited_at": found.get("exited_at"), "source": "exit-file"}
    else:
        pid = 0
        try:
            with open(os.path.join(bundle, paths.INIT_PID)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pass
        result = {"pid": pid, "exit_status": 137, "exited_at": rfc3339nano(), "source": "default"}
    return dict(id=cid, warnings=warnings, **result)


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``capsize-shim``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0)
    try:
        action, opts = parse(argv)
        if action == "start":
            print(start(opts), flush=True)
        elif action == "delete":
            result = delete(opts)
            for w in result["warnings"]:
                print(f"capsize-shim: warning: {w}", file=sys.stderr)
            print(jsonfast.dumps(result, compact=False), flush=True)
        else:
            from runtime.shim.daemon import main as serve_main
            serve_main(argv)
    except CapsizeError as e:
        print(f"capsize-shim: {e.message}", file=sys.stderr)
        sys.exit(exit_code_for(e))
    except OSError as e:
        print(f"capsize-shim: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
