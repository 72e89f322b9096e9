"""Committing a snapshot as an image: ``POST .../images/commit`` (dockerd's commit over containerd:
a diff of the container's snapshot into the content store, then a new config and manifest).

Body (:func:`check_body`)::

    {"parent": "busybox:latest" | null,      # the image below; null = scratch
     "snapshot": "<active snapshot key>" | null,   # null: no layer (a config-only change)
     "config": {...},                        # the new image config's "config" (Env, Cmd, ...)
     "history": {"created_by": "...", "comment": "...", "author": "..."},
     "author": "...", "comment": "...",      # the image config's own fields (optional)
     "name": "repo:tag" | null,              # else the image is named by its config digest
     "labels": {"k": "v"},                   # the image record's labels (not the config's)
     "keep_replaced": false}                 # an image the name pointed to stays, named by its digest

What is made (OCI image-spec config.md and manifest.md, Docker's media types as
``docker commit`` writes them):

* the layer: the snapshot's upper dir as a tar (:func:`runtime.highlevel.diff.write_layer`),
  stored uncompressed, so its blob digest is its diff ID; the new chain's committed snapshot is
  unpacked from that blob (so the image is whole without the container);
* the image config: the parent's ``architecture``, ``os``, ``rootfs.diff_ids`` + the new diff ID,
  ``history`` + the new entry (``empty_layer: true`` without a snapshot, or when its upper dir is
  empty: no layer is added, as dockerd's ``layer.IsEmpty``), ``created`` now, the
  given ``config``, ``author`` and ``comment``;
* a ``application/vnd.docker.distribution.manifest.v2+json`` manifest.

The snapshot must be an active one whose parent is the parent image's top layer (a container of
that image): FailedPrecondition otherwise; NotFound for an unknown image or snapshot;
InvalidArgument for a malformed body. Everything is made under a lease and the image row is
written last (under the collector's lock), so a failure or a crash leaves no image, and what a
failure made is swept at once (a crash's leftovers go at the next garbage collection).
"""

from __future__ import annotations

import json
import os
import time

from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.highlevel.images import (MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_MANIFEST, _descriptor,
                                      host_arch, normalize_name)
from runtime.highlevel.snapshots import ACTIVE, chain_ids
from runtime.rfc3339 import format_nano

_HISTORY_KEYS = ("created_by", "comment", "author")


def check_body(body) -> dict:
    """The commit request *body*, checked (see the module docstring); InvalidArgument."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    out = {}
    for key in ("parent", "snapshot", "name"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidArgument(f"{key} must be a non-empty string or null", field=key)
        out[key] = value
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise InvalidArgument("config must be an object", field="config")
    out["config"] = config
    history = body.get("history") or {}
    if not isinstance(history, dict) or not all(isinstance(history.get(k, ""), str) for k in _HISTORY_KEYS):
        raise InvalidArgument("history must be an object of strings (created_by, comment, author)",
                              field="history")
    out["history"] = {k: history[k] for k in _HISTORY_KEYS if history.get(k)}
    for key in ("author", "comment"):
        if not isinstance(body.get(key, ""), str):
            raise InvalidArgument(f"{key} must be a string", field=key)
        out[key] = body.get(key) or ""
    out["keep_replaced"] = bool(body.get("keep_replaced", False))
    from runtime.highlevel.containers import check_labels
    out["labels"] = check_labels(body.get("labels"))
    if out["name"] is not None:
        out["name"] = normalize_name(out["name"])
    if out["parent"] is not None:
        out["parent"] = normalize_name(out["parent"])
    unknown = set(body) - {"parent", "snapshot", "config", "history", "author", "comment", "name", "keep_replaced",
                         "labels"}
    if unknown:
        raise InvalidArgument(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    return out


def commit(store, namespace: str, body: dict) -> dict:
    """Make the image of *body* (checked by :func:`check_body`) in *namespace* with *store* (an
    :class:`~runtime.highlevel.images.ImageStore`). Returns ``{"image": row, "action":
    "create"|"update"|"same", "replaced": row | None}`` (``replaced``: the image the name pointed
    to, kept under its digest when ``keep_replaced`` asked for it)."""
    from runtime.highlevel.diff import write_layer
    from runtime.highlevel.unpack import apply_layer
    if body["parent"] is not None:
        parent_row = store.md.get_image(namespace, body["parent"])
        manifest, parent_config = store.manifest_and_config(parent_row)
        layers = list(manifest.get("layers") or [])
    else:
        parent_config, layers = {}, []
    diff_ids = list(((parent_config.get("rootfs") or {}).get("diff_ids")) or [])
    history = [h for h in (parent_config.get("history") or []) if isinstance(h, dict)]
    top = chain_ids(diff_ids)[-1] if diff_ids else ""
    snap = None
    if body["snapshot"] is not None:
        snap = store.md.get_snapshot(namespace, body["snapshot"])
        if snap["kind"] != ACTIVE:
            raise FailedPrecondition(f"snapshot {body['snapshot']!r} is committed: only an active one can be "
                                     f"committed", key=body["snapshot"])
        if snap["parent"] != top:
            raise FailedPrecondition(f"snapshot {body['snapshot']!r} is not on the top layer of "
                                     f"{body['parent'] or 'scratch'}", key=body["snapshot"])
        if top:   # the parent image's layers must be there to unpack onto
            store.ensure_unpacked(namespace, body["parent"])
    now_ns = time.time_ns()
    created = format_nano(now_ns)
    entry = {"created": created, **body["history"]}
    with store.leases.hold() as lease:
        try:
            if snap is not None and os.listdir(store.snapshots.fs_path(snap)):
                upper = store.snapshots.fs_path(snap)
                with store.content.writer() as w:
                    write_layer(upper, w)
                    diff_id = w.commit()
                size = w.size
                lease.blobs.add(diff_id)
                chain = chain_ids(diff_ids + [diff_id])[-1]
                lease.snapshots.add(chain)

                def unpack(fs: str) -> None:
                    with store.content.open(diff_id) as f:
                        got = apply_layer(f, fs)["diff_id"]
                    if got != diff_id:   # cannot happen unless the store is corrupt
                        raise InvalidArgument(f"committed layer {diff_id} unpacks to {got}")
                store.snapshots.commit(chain, top, unpack)
                diff_ids.append(diff_id)
                layers.append(_descriptor(MT_DOCKER_LAYER, diff_id, size))
            else:
                entry["empty_layer"] = True
            history.append(entry)
            config = {"architecture": parent_config.get("architecture") or host_arch(),
                      "os": parent_config.get("os") or "linux", "created": created,
                      "config": body["config"], "rootfs": {"type": "layers", "diff_ids": diff_ids},
                      "history": history}
            if parent_config.get("variant"):
                config["variant"] = parent_config["variant"]
            for key in ("author", "comment"):
                if body[key]:
                    config[key] = body[key]
            config_bytes = json.dumps(config, separators=(",", ":")).encode()
            config_digest = store.content.put(config_bytes)
            lease.blobs.add(config_digest)
            manifest = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                        "config": _descriptor(MT_DOCKER_CONFIG, config_digest, len(config_bytes)),
                        "layers": layers}
            data = json.dumps(manifest, separators=(",", ":")).encode()
            target = _descriptor(MT_DOCKER_MANIFEST, store.content.put(data), len(data))
            lease.blobs.add(target["digest"])
            name = body["name"] or config_digest
            row, action, replaced = store.name_image(namespace, name, target, config_digest, body["labels"],
                                                     body["keep_replaced"])
            store.log.info("image committed", namespace=namespace, name=name, snapshot=body["snapshot"],
                           layers=len(diff_ids), seconds=round((time.time_ns() - now_ns) / 1e9, 3))
            return {"image": row, "action": action, "replaced": replaced}
        except BaseException:
            store.sweep(lease)
            raise


def changes(snapshots, namespace: str, key: str) -> list[dict]:
    """``docker diff`` of the active snapshot *key* (:func:`runtime.highlevel.diff.changes`)."""
    from runtime.highlevel.diff import changes as diff_changes
    row = snapshots.md.get_snapshot(namespace, key)
    if row["kind"] != ACTIVE:
        raise InvalidArgument(f"snapshot {key!r} is committed: only an active snapshot has changes")
    return diff_changes(snapshots.fs_path(row), snapshots.lower_dirs(row["parent"]))


def export(snapshots, namespace: str, key: str, view_dir: str, out) -> None:
    """``docker export``: a tar of the active snapshot *key*'s whole tree, written to *out*. The
    snapshot is mounted read-only at *view_dir* (made and removed here) for the time of it."""
    from runtime.highlevel.diff import write_tree
    os.makedirs(view_dir, 0o700)
    try:
        snapshots.mount(namespace, key, view_dir, readonly=True)
        try:
            write_tree(view_dir, out)
        finally:
            snapshots.unmount(view_dir)
    finally:
        try:
            os.rmdir(view_dir)   # never recursive: it could reach through a mount
        except OSError:
            pass
