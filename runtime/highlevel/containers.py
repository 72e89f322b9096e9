"""Containers: the metadata record a task is created from (containerd's containers service).

A container is ``{namespace, id, image, runtime, snapshot_key, spec, labels, created_at,
updated_at}``. Creating one prepares its active snapshot (key = the container id) on the image's
top layer, as ``ctr run``'s ``WithNewSnapshot`` does (with ``"image": null`` and a whole ``spec``,
an empty snapshot on no parent: a build's ``FROM scratch``), and builds the OCI spec unless one is given:
:func:`build_spec` = capsize-runc's default spec (runc's ``spec``) with the image config's
``Env``, ``Entrypoint`` + ``Cmd`` (or ``args``), ``WorkingDir`` and numeric ``User`` and a writable
root; the cgroup is left to the task (``<cgroup parent>/<id>``, DESIGN.md's ``capsize/<id>`` by
default) unless a given spec names one.

The low-level runtime is chosen per container: ``capsize-runc`` (default), ``runc``, ``crun``
(through the hybrid-cgroup wrapper of :mod:`runtime.runtimes` where the host needs it) or an
absolute path; :func:`resolve_runtime` finds the binary. Errors: InvalidArgument (bad id,
labels, spec, no command), NotFound (unknown image or runtime), AlreadyExists (duplicate id),
FailedPrecondition (delete or change a container that has a task). Nothing is left of a
container whose creation failed.
"""

from __future__ import annotations

import os

from runtime import runtimes
from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from runtime.shim.paths import check_id

DEFAULT_RUNTIME = runtimes.DEFAULT


def resolve_runtime(name: str | None) -> str:
    """The low-level runtime binary for *name* (see the module docstring; :func:`runtime.runtimes.resolve`).

    InvalidArgument for a relative path; NotFound if missing."""
    name = name or DEFAULT_RUNTIME
    if "/" in name and not os.path.isabs(name):
        raise InvalidArgument(f"runtime {name!r}: give a name or an absolute path", field="runtime")
    return runtimes.resolve(name)


def _strings(value, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{field} must be a list of strings", field=field)
    return list(value)


def check_labels(labels) -> dict:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidArgument("labels must be an object of strings", field="labels")
    return dict(labels)


def build_spec(image_config: dict, args=None, env=None, cwd=None) -> dict:
    """The OCI spec for a container of an image with *image_config* (see the module docstring)."""
    from runtime.lowlevel.spec import default_spec
    cfg = (image_config or {}).get("config") or {}
    spec = default_spec()
    proc = spec["process"]
    if args is not None:
        argv = _strings(args, "args")
    else:
        argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not argv:
        raise InvalidArgument("no command: the image has no Entrypoint or Cmd; give args", field="args")
    proc["args"] = argv
    merged = {}
    for item in list(cfg.get("Env") or proc["env"]) + (_strings(env, "env") if env is not None else []):
        key = item.split("=", 1)[0]
        merged[key] = item
    proc["env"] = list(merged.values())
    proc["cwd"] = cwd or cfg.get("WorkingDir") or "/"
    user = cfg.get("User") or ""
    if user and user != "root":
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise InvalidArgument(f"image user {user!r}: only numeric uid[:gid] is supported", field="user")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    spec["root"] = {"path": "rootfs", "readonly": False}
    return spec


class ContainerStore:
    """Container records over the metadata store; *images* prepares snapshots from images."""

    def __init__(self, metadata, images, snapshotter, collector):
        self.md, self.images, self.snapshots, self.collector = metadata, images, snapshotter, collector

    @staticmethod
    def view(row: dict) -> dict:
        return {k: row[k] for k in ("namespace", "id", "image", "runtime", "snapshot_key", "spec", "labels",
                                     "created_at", "updated_at")}

    def create(self, namespace: str, body: dict) -> dict:
        """Create from the request *body* (see the package docstring); returns the record."""
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        cid = check_id(body.get("id"), "id")
        image = body.get("image")
        if image is None and isinstance(body.get("spec"), dict):
            image = ""   # scratch: an empty snapshot (a build's FROM scratch), only with a whole spec
        elif not isinstance(image, str) or not image:
            raise InvalidArgument("image is required", field="image")
        else:
            from runtime.highlevel.images import normalize_name
            image = normalize_name(image)
        runtime = body.get("runtime") or DEFAULT_RUNTIME
        if not isinstance(runtime, str):
            raise InvalidArgument("runtime must be a string", field="runtime")
        resolve_runtime(runtime)
        labels = check_labels(body.get("labels"))
        spec = body.get("spec")
        if self.md.find_container(namespace, cid) is not None:
            raise AlreadyExists(f"container {cid!r} already exists in namespace {namespace}",
                                namespace=namespace, id=cid)
        config, chain_id = self.images.ensure_unpacked(namespace, image) if image else ({}, "")
        if spec is None:
            spec = build_spec(config, body.get("args"), body.get("env"), body.get("cwd"))
        elif not isinstance(spec, dict) or not isinstance(spec.get("process"), dict):
            raise InvalidArgument("spec must be an OCI runtime config object with a process", field="spec")
        with self.collector.lock:
            leftover = self.md.find_snapshot(namespace, cid)
            if leftover is not None:  # an active snapshot a crash left without its container
                self.snapshots.remove(namespace, cid)
            self.snapshots.prepare(namespace, cid, chain_id)
            try:
                row = self.md.create_container(namespace, cid, image, runtime, cid, spec, labels)
            except BaseException:
                self.snapshots.remove(namespace, cid)
                raise
        return row

    def update(self, namespace: str, cid: str, body: dict, has_task: bool) -> dict:
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        self.md.get_container(namespace, cid)
        fields = {}
        if "labels" in body:
            fields["labels"] = check_labels(body["labels"])
        if "spec" in body:
            if has_task:
                raise FailedPrecondition(f"container {cid} has a task: its spec cannot change", id=cid)
            if not isinstance(body["spec"], dict) or not isinstance(body["spec"].get("process"), dict):
                raise InvalidArgument("spec must be an OCI runtime config object with a process", field="spec")
            fields["spec"] = body["spec"]
        unknown = set(body) - {"labels", "spec"}
        if unknown:
            raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}: only labels and spec",
                                  field=sorted(unknown)[0])
        if not fields:
            raise InvalidArgument("nothing to update: give labels and/or spec")
        return self.md.update_container(namespace, cid, **fields)

    def delete(self, namespace: str, cid: str, has_task: bool) -> dict:
        if has_task:
            raise FailedPrecondition(f"container {cid} has a task: delete the task first",
                                     namespace=namespace, id=cid)
        rows = self.md.delete_container(namespace, cid)
        if rows["snapshot"]:
            self.snapshots.remove_dir(rows["snapshot"]["dir"])
        return rows["container"]
