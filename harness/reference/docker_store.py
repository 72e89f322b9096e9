"""A read-only consistency check of dockerd's image store with the overlay2 graph driver (the
reference engine's counterpart of :mod:`runtime.highlevel.fsck`; same report keys).

Reads ``<data-root>/image/overlay2/`` and ``<data-root>/overlay2/`` (moby's ``image/`` and
``layer/`` stores, daemon/graphdriver/overlay2) without changing them:

* ``bad_digests`` — image configs in ``imagedb/content/sha256/<hex>`` whose sha256 is not their name;
* ``missing_blobs`` — layers an image's ``rootfs.diff_ids`` chain needs that ``layerdb`` lacks;
* ``dangling_snapshots`` — ``layerdb/sha256/<chain id>`` layers that no image's chain and no
  container's read-write layer (``layerdb/mounts/<id>/parent``) reaches (dockerd releases a
  layer when its last reference goes: one left is a leak);
* ``missing_dirs`` / ``orphan_dirs`` — layers (``cache-id``) or container layers (``mount-id``,
  ``init-id``) without their ``overlay2/<id>`` directory, and directories nothing names;
* ``unreferenced_blobs`` and ``ingest`` — always empty (dockerd keeps no blobs but configs,
  which are the images themselves).
"""

from __future__ import annotations

import hashlib
import json
import os

from runtime.errors import CapsizeError
from runtime.highlevel.snapshots import chain_ids


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def verify(data_root: str, driver: str = "overlay2") -> dict:
    """Check dockerd's store under *data_root* (its ``--data-root``). Returns the report of
    :func:`runtime.highlevel.fsck.verify`. Raises CapsizeError when there is no such store."""
    base = os.path.join(data_root, "image", driver)
    configs = os.path.join(base, "imagedb", "content", "sha256")
    if not os.path.isdir(configs):
        raise CapsizeError(f"no {driver} image store under {data_root}")
    report: dict = {k: [] for k in ("bad_digests", "missing_blobs", "unreferenced_blobs", "dangling_snapshots",
                                    "orphan_dirs", "missing_dirs", "ingest")}
    layerdb = os.path.join(base, "layerdb", "sha256")
    layers = set(_listdir(layerdb))
    live: set[str] = set()
    images = _listdir(configs)
    for hexd in images:
        with open(os.path.join(configs, hexd), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != hexd:
            report["bad_digests"].append({"digest": "sha256:" + hexd,
                                          "content_digest": "sha256:" + hashlib.sha256(data).hexdigest()})
            continue
        try:
            diff_ids = list(json.loads(data).get("rootfs", {}).get("diff_ids") or [])
        except (ValueError, AttributeError):
            diff_ids = []
        for chain in chain_ids(diff_ids):
            key = chain.split(":", 1)[1]
            live.add(key)
            if key not in layers:
                report["missing_blobs"].append({"image": "sha256:" + hexd, "layer": chain})
    mounts = os.path.join(base, "layerdb", "mounts")
    named: set[str] = set()
    for cid in _listdir(mounts):
        parent = _read(os.path.join(mounts, cid, "parent"))
        if parent:
            key = parent.split(":", 1)[-1]
            while key and key not in live and key in layers:  # a container keeps its layer chain
                live.add(key)
                key = (_read(os.path.join(layerdb, key, "parent")) or "").split(":", 1)[-1]
        for f in ("mount-id", "init-id"):
            mid = _read(os.path.join(mounts, cid, f))
            if mid:
                named.add(mid)
                if not os.path.isdir(os.path.join(data_root, driver, mid)):
                    report["missing_dirs"].append({"container": cid, f: mid})
    for key in sorted(layers):
        cache = _read(os.path.join(layerdb, key, "cache-id"))
        if key not in live:
            report["dangling_snapshots"].append({"key": "sha256:" + key, "kind": "layer"})
        if cache:
            named.add(cache)
            if not os.path.isdir(os.path.join(data_root, driver, cache)):
                report["missing_dirs"].append({"key": "sha256:" + key, "dir": cache})
    report["orphan_dirs"] = [d for d in _listdir(os.path.join(data_root, driver)) if d != "l" and d not in named]
    report.update(blobs=len(images), images=len(images), snapshots=len(layers))
    return report
