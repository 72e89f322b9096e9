"""Copy of the image's content into a new volume (dockerd's copy-up: ``CopyImagePathContent``).

When a container's volume is created for it and its mount point holds files in the image, those
files are copied into the volume before the container first runs, so that ``VOLUME /data`` in an
image, or ``-v new:/etc``, starts with what the image has there. As dockerd: only into an empty
volume, not with ``nocopy`` (``-v NAME:/dst:nocopy``, ``VolumeOptions.NoCopy``), and only a
directory (a file or a missing path copies nothing); ownership, modes, times, symlinks, device
nodes, hard links and extended attributes are kept (``cp -a``), and the volume's root takes the
ownership and mode of the image's directory.

The image's content is read from the container's own snapshot, which capsize-runtimed owns:
capsized asks for its mounts (containerd's ``Snapshots.Mounts``, :meth:`Backend.snapshot_mounts`)
and mounts the layers read-only (the snapshot's upper directory as the top lower one) at
``<exec-root>/copyup/<id>`` for the time of the copy, then unmounts it (``MNT_DETACH``) and
removes the directory, whatever happens. The path inside the image is resolved with its
symlinks scoped to the image's root (``/data -> /etc`` is the image's ``/etc``, never the host's).

Errors: :class:`runtime.errors.CapsizeError` ``copying image content into volume NAME: ...``
(500) when the copy fails; the caller removes the container it was creating.
"""

from __future__ import annotations

import asyncio
import os
import posixpath

from runtime.errors import CapsizeError
from runtime.host import HOST, MNT_DETACH, MS_RDONLY
from runtime.securejoin import secure_join


def read_only_data(mounts: list[dict]) -> str:
    """Mount data for a read-only view of an active overlay snapshot: its upper dir on top of its
    lower dirs, no workdir (an overlay without upperdir is read-only)."""
    m = mounts[0]
    opts = dict(o.split("=", 1) for o in m["options"] if "=" in o)
    lowers = [opts["upperdir"]] + opts["lowerdir"].split(":") if opts.get("upperdir") else opts["lowerdir"].split(":")
    return "lowerdir=" + ":".join(lowers)


async def _cp(src: str, dst: str) -> None:
    proc = await asyncio.create_subprocess_exec("cp", "-a", "--", src.rstrip("/") + "/.", dst,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise CapsizeError(err.decode(errors="replace").strip() or f"cp exited with {proc.returncode}")


async def populate(backend, cid: str, points: list[dict], exec_root: str) -> list[str]:
    """Fill each volume point of *points* (new volumes of container *cid*, attached: ``Source``
    set) from the image; returns the destinations copied. See the module docstring."""
    wanted = [p for p in points if p["Type"] == "volume" and p.get("copy", True)]
    if not wanted:
        return []
    mounts = await backend.snapshot_mounts(cid)
    target = os.path.join(exec_root, "copyup", cid)
    os.makedirs(target, mode=0o700, exist_ok=True)
    copied = []
    try:
        HOST.mount("overlay", target, "overlay", MS_RDONLY, read_only_data(mounts))
        try:
            for p in wanted:
                src = secure_join(target, posixpath.normpath(p["Destination"]))
                if not os.path.isdir(src) or os.path.islink(src) or os.listdir(p["Source"]):
                    continue
                try:
                    await _cp(src, p["Source"])
                except (CapsizeError, OSError) as e:
                    raise CapsizeError(f"copying image content into volume {p['Name']}: "
                                       f"{getattr(e, 'message', e)}") from None
                copied.append(p["Destination"])
        finally:
            HOST.umount(target, MNT_DETACH)
    finally:
        try:
            os.rmdir(target)   # never a recursive removal: it could reach through a mount
        except OSError:
            pass
    return copied
