"""Images: import (rootfs tar, docker-save tarball, OCI image layout), export (docker-save), delete.

Formats, as the tools that write them do (the upload may itself be gzip/bzip2/xz-compressed):

``docker-archive`` (``docker save``, moby's image/tarexport)
    ``manifest.json`` = ``[{"Config": path, "RepoTags": [...], "Layers": [path, ...]}]``, the
    config JSON and one tar per layer. A registry manifest is made for it
    (``application/vnd.docker.distribution.manifest.v2+json``), as ``ctr images import`` does.
``oci-archive`` (an OCI image layout, image-spec image-layout.md, packed in a tar)
    ``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``. Every blob is verified against
    its descriptor's digest and size. An index inside the index is resolved to the manifest for
    this host's platform. Names come from the ``io.containerd.image.name`` annotation, else
    ``org.opencontainers.image.ref.name`` (a bare tag needs the ``name`` parameter as its
    repository).
``rootfs`` (``docker import``)
    The whole upload is one layer; the image config is made (no Cmd), and ``name`` is required.

``auto`` picks the format by the archive's contents (``manifest.json``, then ``index.json`` +
``oci-layout``, else a rootfs). Given a ``name``, a single-image archive takes that name instead
of its own. A name without a tag gets ``:latest``.

Every layer's diff ID (sha256 of the uncompressed tar) is checked against the config's
``rootfs.diff_ids``; layers are then unpacked once each into committed snapshots (see
:mod:`runtime.highlevel.snapshots`, :mod:`runtime.highlevel.unpack`). An import holds a lease
while it works and records its images in one step at the end; if it fails, whatever it added
is removed again, and the error says why: InvalidArgument (malformed or unsafe archive, digest
or diff ID mismatch, missing name), Unimplemented (zstd layers, non-sha256 digests).

Export writes a ``docker save`` tarball (``docker load`` and ``ctr images import`` read it) with
uncompressed layers at ``<diff id hex>/layer.tar``, ``<config hex>.json``, ``manifest.json`` and
``repositories``; every member owned by 0:0.
"""

from __future__ import annotations

import io
import json
import os
import re
import time

from runtime.errors import CapsizeError, InvalidArgument, NotFound, Unimplemented
from runtime.highlevel.snapshots import chain_ids
from runtime.rfc3339 import format_nano

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
ANNOTATION_NAME = "io.containerd.image.name"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
FORMATS = ("auto", "docker-archive", "oci-archive", "rootfs")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
_NAME = re.compile(r"^[^\s\x00-\x1f]{1,255}$")
#: Largest JSON document (manifest, index, config) read from an archive.
MAX_JSON = 16 << 20


def host_arch() -> str:
    m = os.uname().machine
    return _GOARCH.get(m, m)


def normalize_name(name) -> str:
    """Check an image name and add ``:latest`` when it has no tag (or digest)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith(("/", ":")):
        raise InvalidArgument(f"invalid image name {name!r}", field="name")
    if "@" in name or name.startswith("sha256:"):
        return name
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def _split_tag(name: str) -> tuple[str, str | None]:
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag or "@" in name:
        return name, None
    return repo, tag


def _json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None


def _descriptor(media_type: str, digest: str, size: int) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size}


class _Archive:
    """A seekable tar opened for random access by member name (``./`` prefixes ignored)."""

    def __init__(self, path: str):
        import tarfile
        self._errors = (tarfile.TarError, KeyError)
        try:
            self.tar = tarfile.open(path, "r:*")
            self.members = {}
            for m in self.tar.getmembers():
                self.members.setdefault(m.name[2:] if m.name.startswith("./") else m.name, m)
        except (tarfile.TarError, EOFError, OSError) as e:
            # one line, with Go's archive/tar wording (tarfile's text lists every compression tried)
            try:
                empty = os.path.getsize(path) == 0
            except OSError:
                empty = False
            raise InvalidArgument("unexpected EOF" if empty or isinstance(e, EOFError) else
                                  "archive/tar: invalid tar header") from None

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str, what: str):
        m = self.members.get(name)
        if m is None:
            raise InvalidArgument(f"{what}: {name!r} is not in the archive")
        try:
            f = self.tar.extractfile(m)
        except self._errors as e:
            raise InvalidArgument(f"{what}: cannot read {name!r}: {e}") from None
        if f is None:
            raise InvalidArgument(f"{what}: {name!r} is not a file")
        return f, m

    def read_json(self, name: str, what: str):
        f, m = self.open(name, what)
        if m.size > MAX_JSON:
            raise InvalidArgument(f"{what}: {name!r} is too large ({m.size} bytes)")
        return _json(f.read(), f"{what} {name!r}")

    def close(self) -> None:
        self.tar.close()


def detect_format(archive: _Archive) -> str:
    if archive.has("manifest.json"):
        return "docker-archive"
    if archive.has("index.json") and archive.has("oci-layout"):
        return "oci-archive"
    return "rootfs"


class ImageStore:
    """Images of every namespace over the content store, snapshotter and metadata store.

    Methods run in worker threads (they do file I/O); ``describe`` and ``get`` are quick.
    """

    def __init__(self, metadata, content, snapshotter, leases, collector, tmp_dir: str, log):
        self.md, self.content, self.snapshots = metadata, content, snapshotter
        self.leases, self.collector, self.tmp_dir, self.log = leases, collector, tmp_dir, log

    # -- import ------------------------------------------------------------------------------
    def import_file(self, path: str, namespace: str, fmt: str = "auto", name: str | None = None,
                    labels: dict | None = None) -> list[tuple[dict, str]]:
        """Import the archive at *path*; returns ``[(image row, "create"|"update"|"same"), ...]``."""
        if fmt not in FORMATS:
            raise InvalidArgument(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}", field="format")
        if name is not None:
            name = normalize_name(name)
        with self.leases.hold() as lease:
            try:
                if fmt == "rootfs":
                    found = [self._import_rootfs(path, name, lease)]
                else:
                    archive = _Archive(path)
                    try:
                        kind = detect_format(archive) if fmt == "auto" else fmt
                        if kind == "docker-archive":
                            found = self._import_docker(archive, lease)
                        elif kind == "oci-archive":
                            found = self._import_oci(archive, lease, name)
                        else:
                            found = None
                    finally:
                        archive.close()
                    if found is None:
                        found = [self._import_rootfs(path, name, lease)]
                if not found:
                    raise InvalidArgument("the archive holds no image")
                if name is not None:
                    if len(found) > 1:
                        raise InvalidArgument(f"the archive holds {len(found)} images: a name can be given "
                                              f"to a single image only", field="name")
                    found[0]["names"] = [name]
                for image in found:
                    if not image["names"]:
                        image["names"] = [image["config_digest"]]
                    self._unpack(image["layers"], image["diff_ids"], lease)
                results = []
                with self.collector.lock:
                    for image in found:
                        for n in image["names"]:
                            row, action = self.md.put_image(namespace, normalize_name(n), image["target"],
                                                            image["config_digest"], labels)
                            results.append((row, action))
                return results
            except BaseException:
                self.sweep(lease)
                raise

    def sweep(self, lease) -> None:
        """Remove what a failed operation made under *lease* (and nothing else references)."""
        only = (set(lease.blobs), set(lease.snapshots))
        lease.blobs.clear()
        lease.snapshots.clear()
        try:
            self.collector.run(only=only)
        except Exception as e:  # noqa: BLE001 - the caller reports its own error
            self.log.error("cannot remove what a failed operation left", error=str(e))

    def _put(self, lease, data: bytes, expected: str | None = None) -> str:
        digest = self.content.put(data, expected)
        lease.blobs.add(digest)
        return digest

    def _put_stream(self, lease, stream, expected: str | None, size: int | None) -> str:
        digest = self.content.put_stream(stream, expected, size)
        lease.blobs.add(digest)
        return digest

    def _layer_info(self, digest: str) -> tuple[str, str]:
        """(diff ID, compression) of a stored layer blob."""
        from runtime.highlevel.unpack import compression_of, diff_id_of
        with self.content.open(digest) as f:
            kind = compression_of(f.read(8))
            f.seek(0)
            return (digest if kind == "none" else diff_id_of(f)), kind

    @staticmethod
    def _diff_ids(config: dict, what: str) -> list[str]:
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise InvalidArgument(f"{what}: the image config has no rootfs.diff_ids")
        if not diff_ids:
            raise InvalidArgument(f"{what}: the image has no layers")
        return diff_ids

    def _import_docker(self, archive: _Archive, lease) -> list[dict]:
        entries = archive.read_json("manifest.json", "docker-archive")
        if not isinstance(entries, list):
            raise InvalidArgument("docker-archive: manifest.json is not a list")
        found = []
        for i, entry in enumerate(entries):
            what = f"docker-archive manifest.json[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                    or not isinstance(entry.get("Layers"), list):
                raise InvalidArgument(f"{what}: want an object with Config and Layers")
            f, m = archive.open(entry["Config"], what)
            if m.size > MAX_JSON:
                raise InvalidArgument(f"{what}: config {entry['Config']!r} is too large")
            config_bytes = f.read()
            config = _json(config_bytes, f"{what} config")
            config_digest = self._put(lease, config_bytes)
            diff_ids = self._diff_ids(config, what)
            if len(diff_ids) != len(entry["Layers"]):
                raise InvalidArgument(f"{what}: {len(entry['Layers'])} layers but the config names "
                                      f"{len(diff_ids)} diff IDs")
            layers = []
            for path, want in zip(entry["Layers"], diff_ids):
                lf, lm = archive.open(path, what)
                digest = self._put_stream(lease, lf, None, lm.size)
                diff_id, kind = self._layer_info(digest)
                if diff_id != want:
                    raise InvalidArgument(f"{what}: layer {path!r} has diff ID {diff_id}, but the config "
                                          f"says {want}", layer=path)
                layers.append(_descriptor(MT_DOCKER_LAYER_GZIP if kind == "gzip" else MT_DOCKER_LAYER,
                                          digest, lm.size))
            manifest = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                        "config": _descriptor(MT_DOCKER_CONFIG, config_digest, len(config_bytes)),
                        "layers": layers}
            data = json.dumps(manifest, separators=(",", ":")).encode()
            target = _descriptor(MT_DOCKER_MANIFEST, self._put(lease, data), len(data))
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidArgument(f"{what}: RepoTags must be a list of names")
            found.append({"names": [normalize_name(t) for t in tags], "target": target,
                          "config_digest": config_digest, "layers": layers, "diff_ids": diff_ids})
        return found

    def _import_oci(self, archive: _Archive, lease, name: str | None) -> list[dict]:
        layout = archive.read_json("oci-layout", "oci-archive")
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise InvalidArgument("oci-archive: oci-layout must say imageLayoutVersion 1.0.0")
        index = archive.read_json("index.json", "oci-archive")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise InvalidArgument("oci-archive: index.json has no manifests list")

        def blob(desc: dict, what: str) -> bytes | str:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str) \
                    or not isinstance(desc.get("size"), int):
                raise InvalidArgument(f"oci-archive: {what}: not a descriptor")
            alg, _, hexd = desc["digest"].partition(":")
            if alg != "sha256":
                raise Unimplemented(f"oci-archive: {what}: digest algorithm {alg!r} is not supported")
            from runtime.highlevel.content import check_digest
            check_digest(desc["digest"])
            f, _ = archive.open(f"blobs/sha256/{hexd}", f"oci-archive {what}")
            return self._put_stream(lease, f, desc["digest"], desc["size"])

        def json_blob(desc: dict, what: str):
            if desc.get("size", 0) > MAX_JSON:
                raise InvalidArgument(f"oci-archive: {what} is too large")
            digest = blob(desc, what)
            return _json(self.content.read(digest), f"oci-archive {what}")

        found = []
        for i, desc in enumerate(index["manifests"]):
            what = f"index.json manifests[{i}]"
            annotations = (desc.get("annotations") or {}) if isinstance(desc, dict) else {}
            manifest_desc = desc
            if isinstance(desc, dict) and desc.get("mediaType") in INDEX_TYPES:
                nested = json_blob(desc, what)
                manifest_desc = self._pick_platform(nested.get("manifests") or [], what)
            elif not isinstance(desc, dict) or desc.get("mediaType") not in MANIFEST_TYPES:
                continue  # not an image (an attestation, an artifact...)
            manifest = json_blob(manifest_desc, f"{what} manifest")
            config_desc = manifest.get("config")
            config = json_blob(config_desc, f"{what} config")
            diff_ids = self._diff_ids(config, f"oci-archive {what}")
            layers = manifest.get("layers") or []
            if len(layers) != len(diff_ids):
                raise InvalidArgument(f"oci-archive: {what}: {len(layers)} layers but the config names "
                                      f"{len(diff_ids)} diff IDs")
            for j, (layer, want) in enumerate(zip(layers, diff_ids)):
                if isinstance(layer, dict) and "zstd" in str(layer.get("mediaType", "")):
                    raise Unimplemented(f"oci-archive: {what}: zstd-compressed layers are not supported")
                digest = blob(layer, f"{what} layer {j}")
                diff_id, _ = self._layer_info(digest)
                if diff_id != want:
                    raise InvalidArgument(f"oci-archive: {what}: layer {j} has diff ID {diff_id}, but the "
                                          f"config says {want}")
            names = []
            ref = annotations.get(ANNOTATION_NAME) or annotations.get(ANNOTATION_REF)
            if ref and (ANNOTATION_NAME in annotations or ":" in ref or "/" in ref):
                names = [ref]
            elif ref and name is None:
                raise InvalidArgument(f"oci-archive: {what} is tagged {ref!r} only: give a name for it", field="name")
            elif ref:
                names = [_split_tag(name)[0] + ":" + ref]
            target = {k: manifest_desc[k] for k in ("mediaType", "digest", "size")}
            found.append({"names": names, "target": target, "config_digest": config_desc["digest"],
                          "layers": layers, "diff_ids": diff_ids})
        return found

    @staticmethod
    def _pick_platform(manifests: list, what: str) -> dict:
        arch = host_arch()
        for d in manifests:
            p = d.get("platform") or {} if isinstance(d, dict) else {}
            if p.get("os", "linux") == "linux" and p.get("architecture", arch) == arch \
                    and d.get("mediaType") in MANIFEST_TYPES:
                return d
        raise NotFound(f"oci-archive: {what}: no manifest for linux/{arch}")

    def _import_rootfs(self, path: str, name: str | None, lease) -> dict:
        if name is None:
            raise InvalidArgument("importing a rootfs tar needs a name for the image", field="name")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest = self._put_stream(lease, f, None, size)
        diff_id, kind = self._layer_info(digest)
        now = format_nano(time.time_ns() // 1_000_000_000 * 1_000_000_000)  # whole seconds
        config = {"architecture": host_arch(), "os": "linux", "created": now, "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                  "history": [{"created": now, "created_by": "capsize-runtimed import (rootfs tar)"}]}
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        config_digest = self._put(lease, config_bytes)
        layers = [_descriptor(MT_DOCKER_LAYER_GZIP if kind == "gzip" else MT_DOCKER_LAYER, digest, size)]
        manifest = {"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST,
                    "config": _descriptor(MT_DOCKER_CONFIG, config_digest, len(config_bytes)), "layers": layers}
        data = json.dumps(manifest, separators=(",", ":")).encode()
        target = _descriptor(MT_DOCKER_MANIFEST, self._put(lease, data), len(data))
        return {"names": [name], "target": target, "config_digest": config_digest, "layers": layers,
                "diff_ids": [diff_id]}

    def _unpack(self, layers: list[dict], diff_ids: list[str], lease) -> str:
        """Unpack each layer not yet unpacked into its committed snapshot; returns the top chain ID."""
        from runtime.highlevel.unpack import apply_layer
        parent = ""
        for layer, diff_id, chain_id in zip(layers, diff_ids, chain_ids(diff_ids)):
            def unpack(fs, digest=layer["digest"], want=diff_id):
                with self.content.open(digest) as f:
                    result = apply_layer(f, fs)
                if result["diff_id"] != want:
                    raise InvalidArgument(f"layer {digest} unpacks to diff ID {result['diff_id']}, expected {want}")
            lease.snapshots.add(chain_id)
            _, created = self.snapshots.commit(chain_id, parent, unpack)
            if created:
                self.log.debug("layer unpacked", chain_id=chain_id, digest=layer["digest"])
            parent = chain_id
        return parent

    def name_image(self, namespace: str, name: str, target: dict, config_digest: str, labels: dict | None,
                   keep_replaced: bool = False) -> tuple[dict, str, dict | None]:
        """Point *name* at *target*: ``(row, "create"|"update"|"same", replaced)``. With
        *keep_replaced*, an image the name pointed to that no other name keeps stays, named by its
        config digest (a dangling image, as dockerd keeps one when a tag moves); ``replaced`` is
        that row. Runs under the collector's lock: nothing new is collected in between."""
        replaced = None
        with self.collector.lock:
            old = self.md.find_image(namespace, name)
            if keep_replaced and old is not None and old["config_digest"] != config_digest \
                    and not any(r["config_digest"] == old["config_digest"] and r["name"] != name
                                for r in self.md.list_images(namespace)):
                replaced, _ = self.md.put_image(namespace, old["config_digest"], {
                    "mediaType": old["target_media_type"], "digest": old["target_digest"],
                    "size": old["target_size"]}, old["config_digest"], old["labels"])
            row, action = self.md.put_image(namespace, name, target, config_digest, labels)
        return row, action, replaced

    def tag(self, namespace: str, name: str, new_name: str, keep_replaced: bool = False):
        """containerd's ``images.Create`` with an existing image's target: *new_name* names the
        image *name* names (its labels too); see :meth:`name_image`."""
        row = self.md.get_image(namespace, normalize_name(name))
        target = {"mediaType": row["target_media_type"], "digest": row["target_digest"], "size": row["target_size"]}
        return self.name_image(namespace, normalize_name(new_name), target, row["config_digest"], row["labels"],
                               keep_replaced)

    # -- queries -----------------------------------------------------------------------------
    def manifest_and_config(self, row: dict) -> tuple[dict, dict]:
        manifest = _json(self.content.read(row["target_digest"]), "manifest")
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            desc = self._pick_platform(manifest.get("manifests") or [], "image index")
            manifest = _json(self.content.read(desc["digest"]), "manifest")
        config = _json(self.content.read(row["config_digest"]), "image config")
        return manifest, config

    def describe(self, row: dict) -> dict:
        """The API's image object (see the package docstring)."""
        try:
            manifest, config = self.manifest_and_config(row)
        except CapsizeError:
            manifest, config = {}, {}
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
        layers = manifest.get("layers") or []
        return {
            "namespace": row["namespace"], "name": row["name"],
            "target": {"mediaType": row["target_media_type"], "digest": row["target_digest"],
                       "size": row["target_size"]},
            "id": row["config_digest"], "config_digest": row["config_digest"],
            "diff_ids": diff_ids, "chain_id": chain_ids(diff_ids)[-1] if diff_ids else None,
            "size": sum(int(x.get("size", 0)) for x in layers),
            "architecture": config.get("architecture"), "os": config.get("os"),
            "config": config.get("config") or {}, "image_created": config.get("created"),
            "author": config.get("author") or "", "comment": config.get("comment") or "",
            "history": [h for h in config.get("history") or [] if isinstance(h, dict)],
            "layer_sizes": [int(x.get("size", 0)) for x in layers],
            "labels": row["labels"], "created_at": row["created_at"], "updated_at": row["updated_at"],
        }

    def ensure_unpacked(self, namespace: str, name: str) -> tuple[dict, str]:
        """(image config, top chain ID), unpacking any layer whose snapshot is missing."""
        row = self.md.get_image(namespace, name)
        manifest, config = self.manifest_and_config(row)
        diff_ids = self._diff_ids(config, f"image {name}")
        chain = chain_ids(diff_ids)
        if self.snapshots.committed(chain[-1]) is None:
            with self.leases.hold() as lease:
                self._unpack(manifest.get("layers") or [], diff_ids, lease)
        return config, chain[-1]

    # -- export ------------------------------------------------------------------------------
    def export(self, namespace: str, names: list[str], out) -> None:
        """Write the images *names* as one docker-save tarball to *out* (a binary file object)."""
        import tarfile
        from runtime.highlevel.unpack import decompressed
        rows = [self.md.get_image(namespace, normalize_name(n)) for n in names]
        manifest_json, repositories, written = [], {}, set()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            def add(name: str, data, size: int, mode: int = 0o644) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime, info.uid, info.gid = size, mode, 0, 0, 0
                tar.addfile(info, data)

            def add_dir(name: str) -> None:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)

            for row in rows:
                manifest, config = self.manifest_and_config(row)
                diff_ids = self._diff_ids(config, f"image {row['name']}")
                layer_paths = []
                for desc, diff_id in zip(manifest.get("layers") or [], diff_ids):
                    hexd = diff_id.split(":", 1)[1]
                    path = f"{hexd}/layer.tar"
                    layer_paths.append(path)
                    if path in written:
                        continue
                    written.add(path)
                    add_dir(hexd)
                    with self.content.open(desc["digest"]) as blob:
                        stream, kind = decompressed(blob)
                        if kind == "none":
                            add(path, blob, os.fstat(blob.fileno()).st_size)
                        else:  # tar needs the size first: spool the uncompressed layer
                            import tempfile
                            with tempfile.TemporaryFile(dir=self.tmp_dir) as spool:
                                while True:
                                    chunk = stream.read(1 << 20)
                                    if not chunk:
                                        break
                                    spool.write(chunk)
                                size = spool.tell()
                                spool.seek(0)
                                add(path, spool, size)
                config_name = row["config_digest"].split(":", 1)[1] + ".json"
                if config_name not in written:
                    written.add(config_name)
                    data = self.content.read(row["config_digest"])
                    add(config_name, io.BytesIO(data), len(data))
                repo, tag = _split_tag(row["name"])
                tags = [row["name"]] if tag else []
                manifest_json.append({"Config": config_name, "RepoTags": tags, "Layers": layer_paths})
                if tag and layer_paths:
                    repositories.setdefault(repo, {})[tag] = layer_paths[-1].split("/", 1)[0]
            data = json.dumps(manifest_json, separators=(",", ":")).encode()
            add("manifest.json", io.BytesIO(data), len(data))
            if repositories:
                data = json.dumps(repositories, separators=(",", ":")).encode()
                add("repositories", io.BytesIO(data), len(data))
