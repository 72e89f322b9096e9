"""Resolving a path inside a root filesystem as the container would see it (stdlib only).

Used by capsize-runc for mount destinations and devices (runtime/lowlevel/rootfs.py) and by
capsized for a volume's copy-up from the image (runtime/daemon/copyup.py).
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument


def secure_join(root: str, unsafe: str) -> str:
    """Join *unsafe* under *root*, resolving symlinks as if *root* were ``/`` (never escaping it).

    As github.com/cyphar/filepath-securejoin: ``..`` and absolute symlink targets are clamped to
    *root*. Components that do not exist yet are joined lexically. Raises InvalidArgument after
    255 symlinks (a loop).
    """
    root = os.path.realpath(root)
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 255:
                raise InvalidArgument(f"too many symlinks resolving {unsafe} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)
