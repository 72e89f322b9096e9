"""``capsize-shim delete``: clean up after a shim that is gone (``containerd-shim-runc-v2 delete``).

See :mod:`runtime.shim.cli` for what it does and prints. Refuses (FailedPrecondition, exit 5)
while the shim process is alive.
"""

from __future__ import annotations

import os

from runtime import jsonfast, mountinfo
from runtime.errors import FailedPrecondition, NotFound
from runtime.shim import paths


def _options_file(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, paths.OPTIONS)) as f:
            d = jsonfast.loads(f.read())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


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


def delete(opts: dict) -> dict:
    """Clean up after a dead shim (see the module docstring); returns what is printed."""
    from runtime.host import HOST, MNT_DETACH
    from runtime.rfc3339 import format_nano
    from runtime.shim import exitfile
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
    for _ in range(16):
        if not os.path.isdir(rootfs) or not mountinfo.is_mount_point(rootfs):
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
        result = {"pid": pid, "exit_status": 137, "exited_at": format_nano(), "source": "default"}
    return dict(id=cid, warnings=warnings, **result)
