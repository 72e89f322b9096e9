"""``capsize-shim delete``: clean up after a shim that is gone (``containerd-shim-runc-v2 delete``).

See :mod:`runtime.shim.cli` for what it does and prints. Refuses (FailedPrecondition, exit 5)
while the shim process is alive.

The printed ``source`` tells the three cases apart (:mod:`runtime.api.exits`): ``exit-file``
(the real status, written by the shim before it died), ``cleanup-kill`` (no exit file, and the
low-level runtime's ``state`` said the init was alive — ``created``, ``running`` or ``paused`` —
just before ``delete --force`` killed it: 137, ``exited_at`` the time of that kill) and
``unknown`` (no exit file and the init was already gone, a zombie or another process — it
exited while nothing watched it — or the runtime could not say: 255, ``exited_at`` the time of
the clean-up, the latest it can have been). Made-up statuses come with a ``reason``.
"""

from __future__ import annotations

import os

from runtime import jsonfast, mountinfo
from runtime.api import exits
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


def _init_alive(rt, cid: str) -> tuple[bool | None, str]:
    """Whether the container's init is alive, as the low-level runtime's ``state`` derives it
    (runc's: gone, a zombie or a reused pid is ``stopped``): (True/False, its status), or
    (None, why not) when the runtime has no answer."""
    code, out, err = rt.run("state", cid)
    if code:
        return None, err or f"exit status {code}"
    try:
        status = jsonfast.loads(out.decode())["status"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None, "unreadable state output"
    return status in ("created", "creating", "running", "paused"), status


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
    found = exitfile.read(bundle)
    init_alive, status = (None, "") if found else _init_alive(rt, cid)
    code, _, err = rt.run("delete", "--force", cid)
    killed_at = format_nano()
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
    if found:
        result = {"pid": found.get("pid", 0), "exit_status": found["exit_status"],
                  "exited_at": found.get("exited_at"), "source": exits.EXIT_FILE}
    else:
        pid = 0
        try:
            with open(os.path.join(bundle, paths.INIT_PID)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pass
        if init_alive and not code:
            result = {"pid": pid, "exit_status": exits.CLEANUP_KILL_STATUS, "exited_at": killed_at,
                      "source": exits.CLEANUP_KILL,
                      "reason": f"the shim was dead and its init {status}: killed by "
                                f"{os.path.basename(runtime)} delete --force"}
        else:
            if init_alive:
                why = f"the shim was dead and {os.path.basename(runtime)} delete --force of its {status} init failed"
            elif init_alive is None:
                why = f"the shim was dead, no exit file, and {os.path.basename(runtime)} state failed: {status}"
            else:
                why = "the init exited while its shim was dead: no exit file recorded its status"
            result = {"pid": pid, "exit_status": exits.UNKNOWN_STATUS, "exited_at": format_nano(),
                      "source": exits.UNKNOWN, "reason": why}
    return dict(id=cid, warnings=warnings, **result)
