"""``capsize-shim start``: spawn the shim daemon detached and print its address.

See :mod:`runtime.shim.cli` for the behaviour. The daemon is forked by the shim template
(:mod:`runtime.shim.template`, ``--spawn template``) or started in a fresh interpreter
(:mod:`runtime.shim.detach`, ``--spawn exec``). Run on every container start: only light modules
(no ``json``, ``re``, ``socket``: ``_socket``'s C type is enough).
"""

from __future__ import annotations

import os
import sys

from runtime import jsonfast
from runtime.errors import CapsizeError, InvalidArgument, NotFound
from runtime.shim import paths
from runtime.shim.args import OPTIONS

#: Seconds ``start`` waits for the daemon to serve.
START_TIMEOUT = 10.0


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
