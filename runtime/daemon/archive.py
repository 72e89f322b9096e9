"""``docker cp``: a container's files as tar archives (Engine API 1.41 ``/containers/{id}/archive``).

The file work is :mod:`runtime.daemon.chrootarchive`, run as a child chrooted into the
container's root, so every path is resolved inside the container. Which root
(:func:`container_root`):

* a running (or paused, or created-with-a-task) container: ``/proc/<init pid>/root``, the root
  its init sees, with every mount it has (volumes, binds, tmpfs);
* a stopped container whose task still exists: the task's mounted ``rootfs/``;
* otherwise its snapshot, which capsize-runtimed owns: capsized asks for its mounts
  (containerd's ``Snapshots.Mounts``) and mounts it at ``<exec-root>/archive/<id>`` for the time
  of the request (read-only for ``GET``/``HEAD``), holding the container's task lock so that a
  start cannot mount the same upper directory meanwhile. A path under one of the container's
  volume or bind mount points is then served from that mount's source (a symlink in the image
  that leads into a volume is resolved in the image only).

Errors: NotFound (404) ``Could not find the file PATH in container NAME``; InvalidArgument (400)
for a path that is not absolute, an extraction point that is not a directory, an overwrite
refused (``noOverwriteDirNonDir``) or a body that is not a tar; PermissionDenied (403) for a
``PUT`` into a read-only root (``--read-only``) outside its mounts; CapsizeError (500) otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import posixpath
import sys

from runtime.daemon.copyup import read_only_data
from runtime.errors import CapsizeError, InvalidArgument, NotFound, PermissionDenied
from runtime.host import HOST, MNT_DETACH, MS_RDONLY

#: the response header carrying the ``PathStat`` (base64 of its JSON), as dockerd sends it
STAT_HEADER = "X-Docker-Container-Path-Stat"
_HELPER = [sys.executable, "-m", "runtime.daemon.chrootarchive"]


def check_path(path: str | None) -> str:
    """The ``path`` query parameter: required and absolute (the CLI makes it so)."""
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if not path.startswith("/"):
        raise InvalidArgument(f"bad parameter: path must be absolute: {path}")
    return path


def encode_stat(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def _error(line: bytes, path: str, name: str) -> CapsizeError:
    try:
        err = json.loads(line)
        code, message = err["code"], err["message"]
    except (ValueError, KeyError, TypeError):
        return CapsizeError(f"copying {path}: {line.decode(errors='replace').strip() or 'the helper failed'}")
    if code == "not_found":
        return NotFound(f"Could not find the file {path} in container {name}")
    if code == "invalid":
        return InvalidArgument(message)
    if code == "bad_tar":
        return InvalidArgument(f"the request body is not a valid tar archive: copying {path} in container "
                               f"{name}: {message}")
    return CapsizeError(f"copying {path} in container {name}: {message}")


def _map_mount(points: list[dict], path: str) -> tuple[str | None, str]:
    """For a stopped container: (the mount source holding *path*, the path inside it), or (None, path)."""
    norm = posixpath.normpath(path)
    best = None
    for p in points or []:
        dst = posixpath.normpath(p.get("Destination") or "")
        if p.get("Type") in ("bind", "volume") and p.get("Source") and (norm == dst or norm.startswith(dst.rstrip("/") + "/")):
            if best is None or len(dst) > len(best[0]):
                best = (dst, p["Source"])
    if best is None:
        return None, path
    rest = norm[len(best[0]):] or "/"
    return best[1], rest + ("/." if path.endswith("/.") else "")


@contextlib.asynccontextmanager
async def container_root(daemon, c, path: str, write: bool):
    """Yield ``(root, path)`` to chroot into for *path* of container *c* (module docstring)."""
    if c.State.running and c.State.Pid > 0:
        yield f"/proc/{c.State.Pid}/root", path
        return
    async with c.task_lock:
        if c.State.running and c.State.Pid > 0:   # started while we waited for the lock
            yield f"/proc/{c.State.Pid}/root", path
            return
        source, inner = _map_mount(getattr(c, "MountPoints", None), path)
        if source is not None:
            yield source, inner
            return
        rootfs = await _task_rootfs(daemon, c)
        if rootfs:
            yield rootfs, path
            return
        mounts = await daemon.backend.snapshot_mounts(c.ID)
        target = os.path.join(daemon.config.exec_root, "archive", c.ID)
        os.makedirs(target, mode=0o700, exist_ok=True)
        try:
            if write:
                m = mounts[0]
                HOST.mount(m.get("source") or "overlay", target, m["type"], 0,
                           ",".join(o for o in m.get("options") or [] if "=" in o))
            else:
                HOST.mount("overlay", target, "overlay", MS_RDONLY, read_only_data(mounts))
            try:
                yield target, path
            finally:
                HOST.umount(target, MNT_DETACH)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(target)   # never a recursive removal: it could reach through a mount


async def _task_rootfs(daemon, c) -> str | None:
    if not getattr(c, "TaskExists", False):
        return None
    try:
        task = await daemon.backend.task_state(c.ID)
    except CapsizeError:
        return None
    rootfs = os.path.join(task.get("bundle") or "", "rootfs")
    return rootfs if task.get("bundle") and os.path.ismount(rootfs) else None


async def _helper(root: str, *args: str, stdin=asyncio.subprocess.DEVNULL):
    return await asyncio.create_subprocess_exec(*_HELPER, root, *args, stdin=stdin, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, cwd="/",
                                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                     "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})


async def stat(daemon, c, path: str) -> dict:
    """``HEAD /containers/{id}/archive?path=``: the ``PathStat`` of *path*."""
    check_path(path)
    async with container_root(daemon, c, path, write=False) as (root, inner):
        proc = await _helper(root, "stat", inner)
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise _error(err.strip().splitlines()[-1] if err.strip() else b"", path, c.name)
    st = json.loads(out)
    if st.get("linkTarget") and root.startswith("/") and inner != path:   # served from a mount source
        st["linkTarget"] = ""
    return st


async def get(daemon, c, path: str, start_response) -> None:
    """``GET /containers/{id}/archive?path=``: await ``start_response(stat)`` (which returns a
    writer with ``async write(bytes)``), then stream the tar to it."""
    check_path(path)
    async with container_root(daemon, c, path, write=False) as (root, inner):
        proc = await _helper(root, "get", inner)
        try:
            first = await proc.stderr.readline()
            try:
                st = json.loads(first)
            except ValueError:
                st = None
            if not isinstance(st, dict) or "code" in st:
                await proc.wait()
                raise _error(first.strip(), path, c.name)
            writer = await start_response(st)
            while True:
                chunk = await proc.stdout.read(1 << 16)
                if not chunk:
                    break
                await writer.write(chunk)
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def put(daemon, c, path: str, body, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
    """``PUT /containers/{id}/archive?path=``: extract the tar read from *body* (an aiohttp
    ``StreamReader``) into the directory *path*."""
    check_path(path)
    if c.HostConfig.get("ReadonlyRootfs") and _map_mount(getattr(c, "MountPoints", None), path)[0] is None:
        raise PermissionDenied("container rootfs is marked read-only")
    flags = [f for f, on in (("--no-overwrite-dir-non-dir", no_overwrite_dir_non_dir),
                             ("--copy-uid-gid", copy_uid_gid)) if on]
    async with container_root(daemon, c, path, write=True) as (root, inner):
        proc = await _helper(root, "put", inner, *flags, stdin=asyncio.subprocess.PIPE)
        try:
            while True:
                chunk = await body.read(1 << 16)
                if not chunk:
                    break
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass   # the helper stopped reading: its error says why
        out, err = await proc.communicate()
    if proc.returncode != 0:
        line = err.strip().splitlines()[-1] if err.strip() else b""
        raise _error(line, path, c.name)

