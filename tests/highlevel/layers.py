"""Building image archives for tests: layer tars (with whiteouts, links, hostile entries),
docker-save tarballs of several layers, and OCI image layouts packed in a tar.

A layer is described by entries::

    ("dir", "a"), ("file", "a/x", b"data"), ("file", "bin/tool", b"#!...", 0o755),
    ("symlink", "link", "target"), ("hardlink", "b", "a/x"), ("whiteout", "a/x"),
    ("opaque", "b"), ("fifo", "p"), ("raw", tarfile.TarInfo)  # anything, unchecked
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

from runtime.highlevel.images import host_arch

EPOCH = 1577836800


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            kind, name = e[0], e[1] if len(e) > 1 else None
            if kind == "raw":
                info, data = e[1], (e[2] if len(e) > 2 else None)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
                continue
            if kind == "whiteout":
                parent, _, base = name.rpartition("/")
                name = (parent + "/" if parent else "") + ".wh." + base
                kind = "file"
                e = (kind, name, b"")
            elif kind == "opaque":
                name = name.rstrip("/") + "/.wh..wh..opq"
                kind = "file"
                e = (kind, name, b"")
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = EPOCH, 0, 0
            data = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "file":
                data = e[2]
                info.size, info.mode = len(data), (e[3] if len(e) > 3 else 0o644)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e[2], 0o777
            elif kind == "hardlink":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, e[2], 0o644
            elif kind == "fifo":
                info.type, info.mode = tarfile.FIFOTYPE, 0o644
            else:
                raise ValueError(kind)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def _diff_id(layer: bytes) -> str:
    return sha256(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer)


def image_config(layers: list[bytes], cmd=None) -> dict:
    return {"architecture": host_arch(), "os": "linux", "created": "2020-01-01T00:00:00Z",
            "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_diff_id(x) for x in layers]}}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))


def docker_save(path: str, images: list[dict]) -> list[str]:
    """Write a docker-save tarball of *images* (``{"tags": [...], "layers": [bytes], "cmd": [...],
    "config": dict (optional, replaces the made one)}``); returns their config digests (image IDs)."""
    ids = []
    with tarfile.open(path, "w") as tar:
        manifest, written = [], set()
        for img in images:
            layer_paths = []
            for layer in img["layers"]:
                hexd = hashlib.sha256(layer).hexdigest()
                lp = f"{hexd}/layer.tar"
                if lp not in written:
                    written.add(lp)
                    _add(tar, lp, layer)
                layer_paths.append(lp)
            config = json.dumps(img.get("config") or image_config(img["layers"], img.get("cmd"))).encode()
            cname = hashlib.sha256(config).hexdigest() + ".json"
            if cname not in written:
                written.add(cname)
                _add(tar, cname, config)
            ids.append(sha256(config))
            manifest.append({"Config": cname, "RepoTags": img.get("tags") or [], "Layers": layer_paths})
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return ids


def oci_layout(path: str, layers: list[bytes], ref: str | None = "latest", name_annotation: str | None = None,
               cmd=None, nested_index: bool = False, tamper: bool = False) -> str:
    """Write an OCI image layout (tar) with one image; returns the manifest digest. *tamper*
    corrupts the first layer's blob after its digest was taken."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict:
        blobs[sha256(data)] = data
        return {"digest": sha256(data), "size": len(data)}

    layer_descs = []
    for layer in layers:
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if layer[:2] == b"\x1f\x8b" else "")
        layer_descs.append({"mediaType": mt, **put(layer)})
    config = json.dumps(image_config(layers, cmd)).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                "layers": layer_descs}
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(json.dumps(manifest).encode())}
    annotations = {}
    if ref:
        annotations["org.opencontainers.image.ref.name"] = ref
    if name_annotation:
        annotations["io.containerd.image.name"] = name_annotation
    top = dict(mdesc)
    if nested_index:
        mdesc["platform"] = {"os": "linux", "architecture": host_arch()}
        other = dict(mdesc, platform={"os": "linux", "architecture": "s390x-not-here"})
        nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [other, mdesc]}
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", **put(json.dumps(nested).encode())}
    if annotations:
        top["annotations"] = annotations
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]}
    if tamper:
        first = layer_descs[0]["digest"]
        blobs[first] = blobs[first][:-1] + bytes([blobs[first][-1] ^ 1])
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add(tar, "index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            _add(tar, "blobs/sha256/" + digest.split(":")[1], data)
    return mdesc["digest"]
