"""A read-only consistency check of capsize-runtimed's image store (``capsize fsck``'s role for
the lab's ``image.store.consistent`` check).

Reads ``<root>/runtimed/`` (:mod:`runtime.highlevel.layout`) without changing it: the metadata
database opened ``mode=ro``, the content store's blobs, the snapshot directories. Reports:

* ``bad_digests`` — blobs whose sha256 is not their name (containerd's content store names a blob
  by its digest: a mismatch is a corrupted blob);
* ``missing_blobs`` — blobs an image references (manifest, config, layers) that are not stored;
* ``unreferenced_blobs`` / ``dangling_snapshots`` — blobs and snapshots the GC's mark phase
  (:func:`runtime.highlevel.gc.live_objects`) does not reach: what a collection would sweep, so
  after a GC (capsize-runtimed runs one at start and after removals) there are none. Objects of
  an operation in flight are leased in the daemon's memory, unseen here: check a quiet store;
* ``orphan_dirs`` / ``missing_dirs`` — snapshot directories with no record, records with no directory;
* ``ingest`` — blobs half written that nothing will resume (:meth:`ContentStore.orphan_ingests`:
  a writer's leftovers, a partial without its record, a partial older than
  :data:`runtime.highlevel.content.INGEST_EXPIRY`); GC removes them. Not a problem, and listed
  apart as ``partial_ingests`` (``[{"digest", "offset", "size"}]``): resumable downloads an
  interrupted pull left, kept for its retry.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

from runtime.errors import CapsizeError
from runtime.highlevel.content import ContentStore
from runtime.highlevel.gc import image_references, live_objects
from runtime.highlevel.layout import Layout
from runtime.highlevel.metadata import Metadata, _row
from runtime.highlevel.snapshots import ACTIVE

PROBLEMS = ("bad_digests", "missing_blobs", "unreferenced_blobs", "dangling_snapshots", "orphan_dirs",
            "missing_dirs", "ingest")


class _ReadOnlyMetadata(Metadata):
    """:class:`Metadata`'s queries on the database opened read-only (no schema, no writes)."""

    def __init__(self, path: str):  # noqa: D401 - no super(): that one creates the schema
        import threading
        if not os.path.exists(path):
            raise CapsizeError(f"no metadata database {path}")
        self.path = path
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
            self._db.row_factory = _row
        except sqlite3.DatabaseError as e:
            raise CapsizeError(f"cannot open metadata database {path}: {e}") from None
        self._lock = threading.RLock()


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def verify(root: str) -> dict:
    """Check the store under capsize-runtimed's *root* (its ``--root``). Returns ``{"blobs": N,
    "images": N, "snapshots": N, <each of PROBLEMS>: [...]}``; the store is consistent when every
    problem list is empty. Raises CapsizeError when there is no store at *root*."""
    layout = Layout(root, root)
    if not os.path.isdir(os.path.join(layout.content, "blobs", "sha256")):
        raise CapsizeError(f"no content store under {layout.content}")
    content = ContentStore(layout.content)
    md = _ReadOnlyMetadata(layout.metadata_db)
    try:
        report: dict = {k: [] for k in PROBLEMS}
        stored = content.list()
        for digest in stored:
            try:
                seen = _file_digest(content.path(digest))
            except OSError as e:
                report["bad_digests"].append({"digest": digest, "error": e.strerror})
                continue
            if seen != digest:
                report["bad_digests"].append({"digest": digest, "content_digest": seen})
        images = md.list_images()
        have = set(stored)
        for image in images:
            blobs, _ = image_references(content, image["target_digest"])
            for digest in sorted(blobs - have):
                report["missing_blobs"].append({"image": image["name"], "digest": digest})
        live_blobs, live_snaps, live_active = live_objects(md, content)
        report["unreferenced_blobs"] = sorted(have - live_blobs)
        rows = md.list_snapshots()
        for r in rows:
            live = (r["namespace"], r["key"]) in live_active if r["kind"] == ACTIVE else r["key"] in live_snaps
            if not live:
                report["dangling_snapshots"].append({"key": r["key"], "kind": r["kind"], "namespace": r["namespace"]})
            if not os.path.isdir(os.path.join(layout.snapshots, r["dir"])):
                report["missing_dirs"].append({"key": r["key"], "dir": r["dir"]})
        known = {r["dir"] for r in rows}
        report["orphan_dirs"] = sorted(n for n in os.listdir(layout.snapshots) if n not in known)
        report["ingest"] = content.orphan_ingests()
        report["partial_ingests"] = [{k: p[k] for k in ("digest", "offset", "size")}
                                     for p in content.partial_ingests() if p["digest"]]
        report.update(blobs=len(stored), images=len(images), snapshots=len(rows))
        return report
    finally:
        md.close()
