"""Garbage collection of unreferenced blobs and snapshots, and the leases that protect work in flight.

Mark and sweep, as containerd's metadata GC does:

* **roots**: every image (its target manifest, or index and manifests), every container (its
  active snapshot), every lease;
* **marked**: an image's manifest, config and layer blobs and the committed snapshots of its
  layer chain; an active snapshot's chain of committed parents;
* **swept**: blobs and snapshots not marked, snapshot directories with no record, and ingest
  files no writer owns (what a crash leaves).

A **lease** (:class:`Leases`) names blobs and snapshots an operation has made but not yet
referenced from an image (an import in progress): GC keeps them while the lease is held. A
failed import sweeps only what its lease held (:func:`collect` with *only*), so that a blob
another import shares is never removed from under it.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from contextlib import contextmanager

from runtime.errors import CapsizeError


class Lease:
    """Blob digests and committed snapshot keys (chain IDs) an operation is still using."""

    def __init__(self, lease_id: int):
        self.id = lease_id
        self.blobs: set[str] = set()
        self.snapshots: set[str] = set()


class Leases:
    """The leases held right now (in memory: a restart ends every operation)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[int, Lease] = {}
        self._ids = itertools.count(1)

    @contextmanager
    def hold(self):
        """``with leases.hold() as lease:`` — protected until the block ends."""
        lease = Lease(next(self._ids))
        with self._lock:
            self._held[lease.id] = lease
        try:
            yield lease
        finally:
            with self._lock:
                self._held.pop(lease.id, None)

    def protected(self) -> tuple[set[str], set[str]]:
        with self._lock:
            blobs = set().union(*(lease.blobs for lease in self._held.values()))
            snaps = set().union(*(lease.snapshots for lease in self._held.values()))
        return blobs, snaps


def image_references(content, target_digest: str) -> tuple[set[str], list[str]]:
    """(blob digests, diff IDs) an image's target references; missing blobs are skipped."""
    blobs = {target_digest}
    diff_ids: list[str] = []
    try:
        manifest = json.loads(content.read(target_digest))
    except (CapsizeError, ValueError):
        return blobs, diff_ids
    manifests = [manifest]
    if isinstance(manifest.get("manifests"), list):  # an index: every manifest it names
        manifests = []
        for desc in manifest["manifests"]:
            digest = desc.get("digest") if isinstance(desc, dict) else None
            if not digest or not content.exists(digest):
                continue
            blobs.add(digest)
            try:
                manifests.append(json.loads(content.read(digest)))
            except (CapsizeError, ValueError):
                continue
    for m in manifests:
        config = m.get("config") if isinstance(m, dict) else None
        if isinstance(config, dict) and config.get("digest"):
            blobs.add(config["digest"])
            try:
                cfg = json.loads(content.read(config["digest"]))
                diff_ids = list(cfg.get("rootfs", {}).get("diff_ids") or [])
            except (CapsizeError, ValueError, AttributeError):
                pass
        for layer in (m.get("layers") or []) if isinstance(m, dict) else []:
            if isinstance(layer, dict) and layer.get("digest"):
                blobs.add(layer["digest"])
    return blobs, diff_ids


def live_objects(metadata, content, leases: Leases | None = None) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """The mark phase: (live blob digests, live committed snapshot keys, live active snapshots as
    (namespace, key)), from every image, container and held lease (*leases* None: none held)."""
    from runtime.highlevel.snapshots import ACTIVE, chain_ids
    live_blobs, live_snaps = leases.protected() if leases is not None else (set(), set())
    live_active: set[tuple[str, str]] = set()
    for image in metadata.list_images():
        blobs, diff_ids = image_references(content, image["target_digest"])
        live_blobs |= blobs
        live_snaps |= set(chain_ids(diff_ids))
    for c in metadata.list_containers():
        live_active.add((c["namespace"], c["snapshot_key"]))
    rows = metadata.list_snapshots()
    committed = {r["key"]: r for r in rows if r["kind"] != ACTIVE}
    for r in rows:
        if r["kind"] == ACTIVE and (r["namespace"], r["key"]) in live_active:
            key = r["parent"]
            while key and key in committed and key not in live_snaps:
                live_snaps.add(key)
                key = committed[key]["parent"]
    # every ancestor of a live committed snapshot is live
    for key in list(live_snaps):
        parent = committed.get(key, {}).get("parent")
        while parent and parent not in live_snaps:
            live_snaps.add(parent)
            parent = committed.get(parent, {}).get("parent")

    return live_blobs, live_snaps, live_active


def collect(metadata, content, snapshotter, leases: Leases, only: tuple[set, set] | None = None,
            log=None) -> dict:
    """Remove what nothing references. With *only* = (blob digests, committed snapshot keys),
    consider just those. Returns ``{"blobs_removed", "snapshots_removed", "dirs_removed",
    "bytes_freed"}``."""
    from runtime.highlevel.snapshots import ACTIVE
    live_blobs, live_snaps, live_active = live_objects(metadata, content, leases)
    rows = metadata.list_snapshots()
    committed = {r["key"]: r for r in rows if r["kind"] != ACTIVE}

    report = {"blobs_removed": 0, "snapshots_removed": 0, "dirs_removed": 0, "bytes_freed": 0}
    only_blobs, only_snaps = only if only is not None else (None, None)
    if only is None:
        for r in rows:
            if r["kind"] == ACTIVE and (r["namespace"], r["key"]) not in live_active:
                snapshotter.remove(r["namespace"], r["key"])
                report["snapshots_removed"] += 1
    doomed = [k for k in committed if k not in live_snaps and (only_snaps is None or k in only_snaps)]
    # children before parents: a doomed snapshot's children are doomed too (none is live)
    depth = {}
    for key in doomed:
        d, p = 0, committed[key]["parent"]
        while p:
            d, p = d + 1, committed.get(p, {}).get("parent")
        depth[key] = d
    for key in sorted(doomed, key=lambda k: -depth[k]):
        snapshotter.remove("", key)
        report["snapshots_removed"] += 1
    for digest in (content.list() if only_blobs is None else sorted(only_blobs)):
        if digest in live_blobs:
            continue
        try:
            size = content.size(digest)
        except CapsizeError:
            continue
        if content.delete(digest):
            report["blobs_removed"] += 1
            report["bytes_freed"] += size
    if only is None:
        for name in snapshotter.orphan_dirs():
            snapshotter.remove_dir(name)
            report["dirs_removed"] += 1
        content.clean_ingest()
        from runtime.highlevel.content import INGEST_EXPIRY
        from runtime.highlevel.upload import clean_uploads
        clean_uploads(os.path.join(os.path.dirname(content.dir), "uploads"), INGEST_EXPIRY)
    if log is not None and any(report[k] for k in ("blobs_removed", "snapshots_removed", "dirs_removed")):
        log.info("garbage collected", **report)
    return report


class Collector:
    """Runs collections one at a time. :attr:`lock` is also held by whoever turns leased or new
    objects into referenced ones (an import recording its image, a container recording its
    snapshot), so that no collection sees the object between its lease and its reference."""

    def __init__(self, metadata, content, snapshotter, leases: Leases, log=None):
        self.args = (metadata, content, snapshotter, leases)
        self.log = log
        self.lock = threading.RLock()

    def run(self, only=None) -> dict:
        with self.lock:
            return collect(*self.args, only=only, log=self.log)
