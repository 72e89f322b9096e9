"""Which registry blobs a layer is known as: dockerd's v2 metadata (moby's
distribution/metadata/v2_metadata_service.go), kept by capsize-runtimed.

A layer is stored once, by its content; in registries it is a blob of its own, usually a gzip of
it with another digest. A push that compressed a layer, and a pull that fetched one, record
``{"digest", "size", "mediaType", "repository"}`` (``repository``: ``host[:port]/path``, moby's
``SourceRepository``) under the layer's diff ID, so that a later push can ``HEAD`` the blob it
sent before (and skip it: "Layer already exists") or mount it from another repository of the
same registry instead of compressing and sending it again.

On disk, one JSON list per diff ID: ``<root>/runtimed/distribution/v2metadata-by-diffid/<hex>``
(written whole and renamed into place, so a crash leaves the old list or the new one). At most
:data:`MAX_ENTRIES` entries per layer, the newest first.
"""

from __future__ import annotations

import json
import os
import threading

MAX_ENTRIES = 50


class DistributionMetadata:
    """The v2 metadata under *directory* (``<root>/runtimed/distribution``). Thread-safe."""

    def __init__(self, directory: str):
        self.dir = os.path.join(directory, "v2metadata-by-diffid")
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, diff_id: str) -> str:
        algo, _, hexd = diff_id.partition(":")
        if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            raise ValueError(f"not a sha256 diff ID: {diff_id!r}")
        return os.path.join(self.dir, hexd)

    def get(self, diff_id: str) -> list[dict]:
        """The blobs *diff_id* is known as, newest first (``[]`` when none or unreadable)."""
        try:
            with open(self._path(diff_id)) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)] \
            if isinstance(entries, list) else []

    def add(self, diff_id: str, digest: str, size: int, media_type: str, repository: str) -> None:
        """Record that *diff_id* is blob *digest* (*size* bytes, *media_type*) in *repository*."""
        entry = {"digest": digest, "size": size, "mediaType": media_type, "repository": repository}
        with self._lock:
            entries = [entry] + [e for e in self.get(diff_id)
                                 if (e.get("digest"), e.get("repository")) != (digest, repository)]
            path = self._path(diff_id)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                json.dump(entries[:MAX_ENTRIES], f)
            os.replace(tmp, path)
