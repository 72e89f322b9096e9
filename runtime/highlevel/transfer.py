"""Pull: an image from a registry into the content store, verified, unpacked, then listed.

containerd's transfer service's role (``ctr images pull``), over :mod:`runtime.highlevel.registry`:

1. ``GET /v2/`` (the registry is reachable), then the manifest by tag or digest (Accept: OCI
   index and manifest, Docker manifest list and schema 2). Its bytes are verified against the
   digest asked for, else against ``Docker-Content-Digest``. An index (a manifest list) is
   resolved to ``linux/<this host's architecture>``, and that manifest fetched by digest.
2. The config blob, verified by digest and size.
3. Every layer not in the store yet, :data:`CONCURRENCY` at a time (dockerd's
   ``max-concurrent-downloads`` default), into a resumable ingest
   (:meth:`runtime.highlevel.content.ContentStore.ingest`): a partial left by an interrupted
   pull is resumed with ``Range: bytes=<offset>-`` (a 200 instead of a 206 starts it again).
   Each blob is verified by digest and size before it is moved into the store; a mismatch
   (``digest mismatch``) discards it.
4. Layers are unpacked into committed snapshots as an import does (diff IDs checked against the
   config's ``rootfs.diff_ids``), the manifest (and index) blobs are stored, and only then is
   the name recorded. Until that moment the pull holds a lease; on any error what it stored
   under the lease is removed (partial ingests stay, to be resumed or collected).

Progress goes to ``progress(dict)``: ``{"id": <layer digest's 12 hex, or the tag>, "status":
"Pulling fs layer" | "Already exists" | "Waiting" | "Downloading" | "Verifying Checksum" |
"Download complete" | "Extracting" | "Pull complete", "current"?: bytes, "total"?: bytes}``,
dockerd's statuses. :func:`pull` returns ``{"row", "action", "digest", "name"}``.

Errors: those of :mod:`runtime.highlevel.registry` with dockerd's texts for a pull (moby's
distribution/errors.go): ``manifest for R not found: manifest unknown: ...`` (NotFound), ``pull
access denied for R, repository does not exist or may require 'docker login': ...``
(NotFound, also for a 401), InvalidArgument for a digest mismatch or a malformed manifest,
NotFound for an index without this platform.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from runtime.errors import InvalidArgument, NotFound, PermissionDenied, Unimplemented
from runtime.highlevel.content import sha256_digest
from runtime.highlevel.images import INDEX_TYPES, MANIFEST_TYPES, MAX_JSON, MT_OCI_MANIFEST, ImageStore, _json, host_arch
from runtime.highlevel.registry import MANIFEST_ACCEPT, NO_BASIC_AUTH, Client, parse_reference, repo_path, scope, short
from runtime.highlevel.upload import Uploads, push_layer

CONCURRENCY = 3
CHUNK = 1 << 20


def in_parallel(fn, items: list, concurrency: int, name: str) -> None:
    """``fn(item)`` for every item, *concurrency* at a time; every one runs to its end, then the
    first error (in the items' order) is raised."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix=name) as pool:
        futures = [pool.submit(fn, item) for item in items]
        errors = []
        for f in futures:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001 - the first error is raised below
                errors.append(e)
    if errors:
        raise errors[0]


def fetch_manifest(client: Client, path: str, reference: str, want: str | None = None) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of manifest *reference* of *path*, verified (see the module).

    A tag is resolved first with ``HEAD`` (its ``Docker-Content-Digest``), then the manifest is
    fetched by digest, as containerd's resolver and dockerd do; a ``HEAD`` 404 (no body) is asked
    again with ``GET`` for the registry's error."""
    if not want and not reference.startswith("sha256:"):
        with client.request("HEAD", f"{repo_path(path)}/manifests/{reference}", scope(path),
                            headers={"Accept": MANIFEST_ACCEPT}, ok=(200, 404)) as resp:
            found = resp.headers.get("docker-content-digest", "") if resp.status == 200 else ""
        if found.startswith("sha256:"):
            reference = want = found
    with client.request("GET", f"{repo_path(path)}/manifests/{reference}", scope(path),
                        headers={"Accept": MANIFEST_ACCEPT}) as resp:
        data = resp.read(MAX_JSON + 1)
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        header_digest = resp.headers.get("docker-content-digest")
    if len(data) > MAX_JSON:
        raise InvalidArgument(f"manifest {reference} is larger than {MAX_JSON} bytes")
    digest = sha256_digest(data)
    expected = want or (reference if reference.startswith("sha256:") else header_digest)
    if expected and expected.startswith("sha256:") and digest != expected:
        raise InvalidArgument(f"digest mismatch: manifest {reference} has {digest}, expected {expected}")
    doc = _json(data, f"manifest {reference}")
    media_type = doc.get("mediaType") or media_type
    return data, media_type, digest


def fetch_blob_small(client: Client, path: str, desc: dict) -> bytes:
    """A config blob's bytes, verified by digest and size."""
    size = desc.get("size")
    if not isinstance(size, int) or size > MAX_JSON:
        raise InvalidArgument(f"config {desc.get('digest')}: bad or too large size {size!r}")
    with client.request("GET", f"{repo_path(path)}/blobs/{desc['digest']}", scope(path)) as resp:
        data = resp.read(size + 1)
    if len(data) != size or sha256_digest(data) != desc["digest"]:
        raise InvalidArgument(f"digest mismatch: blob {desc['digest']} has {sha256_digest(data)} "
                              f"({len(data)} bytes, expected {size})")
    return data


def fetch_layer(images: ImageStore, client: Client, path: str, desc: dict, progress, ref: str) -> str:
    """Download one layer blob into the store through a resumable ingest; returns how it went:
    ``"exists"`` or ``"downloaded"``."""
    digest, size = desc["digest"], desc.get("size")
    lid = short(digest)
    with images.content.ingest(digest, size, ref) as ing:
        if ing is None:
            return "exists"
        if ing.offset:
            images.log.info("resuming download", digest=digest, offset=ing.offset, size=size)
        headers = {"Range": f"bytes={ing.offset}-"} if ing.offset else {}
        with client.request("GET", f"{repo_path(path)}/blobs/{digest}", scope(path), headers=headers,
                            ok=(200, 206)) as resp:
            if resp.status == 200 and ing.offset:
                ing.restart()
            last = -1
            while True:
                chunk = resp.read_some(CHUNK)
                if not chunk:
                    break
                ing.write(chunk)
                if size is not None and ing.offset > size:
                    break     # more than the descriptor says: commit() reports the mismatch
                if ing.offset - last >= CHUNK or (size and ing.offset >= size):
                    last = ing.offset
                    progress({"id": lid, "status": "Downloading", "current": ing.offset, "total": size})
        if size is not None and ing.offset < size:
            from runtime.errors import Unavailable
            raise Unavailable(f"unexpected EOF: blob {digest} ended after {ing.offset} of {size} bytes")
        progress({"id": lid, "status": "Verifying Checksum"})
        try:
            ing.commit()
        except InvalidArgument as e:   # dockerd's text (distribution/pull_v2.go), the details logged
            images.log.error("layer verification failed", digest=digest, error=str(e))
            raise InvalidArgument(f"filesystem layer verification failed for digest {digest}") from None
    progress({"id": lid, "status": "Download complete"})
    return "downloaded"


def pull(images: ImageStore, namespace: str, reference: str, credentials: dict | None = None,
         progress=None, ca_file: str | None = None, concurrency: int = CONCURRENCY) -> dict:
    """Pull *reference* into *namespace* (see the module docstring)."""
    progress = progress or (lambda ev: None)
    ref = parse_reference(reference)
    client = Client(ref.domain, credentials, ca_file)
    client.ping()
    try:
        data, media_type, digest = fetch_manifest(client, ref.path, ref.object)
    except NotFound as e:
        codes = e.fields.get("registry_codes") or []
        if "MANIFEST_UNKNOWN" in codes:
            raise NotFound(f"manifest for {ref} not found: {e}") from None
        raise NotFound(f"pull access denied for {ref.familiar}, repository does not exist or may require "
                       f"'docker login': {e}") from None
    except PermissionDenied as e:
        if e.fields.get("cause") == NO_BASIC_AUTH:
            raise
        raise NotFound(f"pull access denied for {ref.familiar}, repository does not exist or may require "
                       f"'docker login': {e}") from None
    progress({"id": ref.object if not ref.digest else short(ref.digest),
              "status": f"Pulling from {ref.familiar.split('/', 1)[1] if ref.domain != 'docker.io' else ref.familiar}"})
    target = {"mediaType": media_type, "digest": digest, "size": len(data)}
    blobs = [(data, digest)]
    manifest = _json(data, "manifest")
    if media_type in INDEX_TYPES or "manifests" in manifest:
        desc = ImageStore._pick_platform(manifest.get("manifests") or [], f"{ref} index")
        mdata, mtype, mdigest = fetch_manifest(client, ref.path, desc["digest"], want=desc["digest"])
        blobs.append((mdata, mdigest))
        manifest = _json(mdata, "manifest")
        media_type = mtype
    if media_type not in MANIFEST_TYPES and manifest.get("schemaVersion") != 2:
        raise Unimplemented(f"manifest media type {media_type!r} is not supported (schema 2 and OCI only)")
    config_desc, layers = manifest.get("config"), manifest.get("layers")
    if not isinstance(config_desc, dict) or not isinstance(layers, list) or not layers:
        raise InvalidArgument(f"manifest {digest}: no config or no layers")
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
            raise InvalidArgument(f"manifest {digest}: a layer is not a descriptor")

    name = ref.repository + (f"@{ref.digest}" if ref.digest else f":{ref.tag}")
    with images.leases.hold() as lease:
        try:
            for layer in layers:
                progress({"id": short(layer["digest"]),
                          "status": "Already exists" if images.content.exists(layer["digest"]) else "Pulling fs layer"})
            config_bytes = fetch_blob_small(client, ref.path, config_desc) \
                if not images.content.exists(config_desc["digest"]) else images.content.read(config_desc["digest"])
            images._put(lease, config_bytes, config_desc["digest"])
            config = _json(config_bytes, "image config")
            if config.get("os", "linux") != "linux" or config.get("architecture", host_arch()) != host_arch():
                raise NotFound(f"image {ref} is for {config.get('os')}/{config.get('architecture')}, "
                               f"not linux/{host_arch()}")
            diff_ids = ImageStore._diff_ids(config, f"image {ref}")
            if len(diff_ids) != len(layers):
                raise InvalidArgument(f"manifest {digest}: {len(layers)} layers but the config names "
                                      f"{len(diff_ids)} diff IDs")
            for layer in layers:
                lease.blobs.add(layer["digest"])
            in_parallel(lambda layer: fetch_layer(images, client, ref.path, layer, progress, name), layers,
                        concurrency, "pull")
            for layer in layers:
                progress({"id": short(layer["digest"]), "status": "Extracting"})
            images._unpack(layers, diff_ids, lease)
            meta, _ = distribution_state(images)
            for layer, diff_id in zip(layers, diff_ids):
                if isinstance(layer.get("size"), int):
                    meta.add(diff_id, layer["digest"], layer["size"], str(layer.get("mediaType", "")), ref.repository)
            for layer in layers:
                progress({"id": short(layer["digest"]), "status": "Pull complete"})
            for blob, want in blobs:
                images._put(lease, blob, want)
            row, action, _ = images.name_image(namespace, name, target, config_desc["digest"], None,
                                               keep_replaced=True)
        except BaseException:
            images.sweep(lease)
            raise
    images.log.info("image pulled", namespace=namespace, name=name, digest=digest, action=action)
    return {"row": row, "action": action, "digest": digest, "name": name}


# -- push ------------------------------------------------------------------------------------

def upload_blob(images: ImageStore, client: Client, path: str, desc: dict, progress) -> str:
    """Upload one blob unless the registry has it (``HEAD`` first): ``"exists"`` | ``"pushed"``.
    A monolithic upload (``POST .../blobs/uploads/`` then ``PUT <location>&digest=``) of the
    stored, verified blob; distribution checks the digest again."""
    digest = desc["digest"]
    lid = short(digest)
    blob_path = f"{repo_path(path)}/blobs/{digest}"
    with client.request("HEAD", blob_path, scope(path, "pull,push"), ok=(200, 404)) as resp:
        if resp.status == 200:
            progress({"id": lid, "status": "Layer already exists"})
            return "exists"
    size = images.content.size(digest)
    with client.request("POST", f"{repo_path(path)}/blobs/uploads/", scope(path, "pull,push"),
                        headers={"Content-Length": "0"}, ok=(202,)) as resp:
        location = resp.headers.get("location")
    if not location:
        raise InvalidArgument("the registry answered the upload without a Location")
    from urllib.parse import urljoin, urlsplit
    url = urljoin(client.url("/"), location)
    parts = urlsplit(url)
    target = parts.path + "?" + (parts.query + "&" if parts.query else "") + f"digest={digest}"
    progress({"id": lid, "status": "Pushing", "current": 0, "total": size})
    with images.content.open(digest) as f:
        with client.request("PUT", target, scope(path, "pull,push"), body=f,
                            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                            ok=(201,)) as resp:
            resp.read()
    progress({"id": lid, "status": "Pushed", "current": size, "total": size})
    return "pushed"


def push(images: ImageStore, namespace: str, name: str, reference: str | None = None,
         credentials: dict | None = None, progress=None, ca_file: str | None = None,
         concurrency: int = CONCURRENCY) -> dict:
    """Push the image *name* (its stored manifest, byte for byte) to *reference* (default: its
    name): layers and config uploaded unless present, then ``PUT .../manifests/<tag>``.
    Returns ``{"digest", "size", "tag"}``. NotFound when the image or a blob is missing."""
    from runtime.highlevel.images import normalize_name
    progress = progress or (lambda ev: None)
    row = images.md.get_image(namespace, normalize_name(name))
    ref = parse_reference(reference or row["name"])
    client = Client(ref.domain, credentials, ca_file)
    progress({"status": f"The push refers to repository [{ref.repository}]"})
    try:
        return _push(images, namespace, row, ref, client, progress, concurrency)
    except PermissionDenied as e:   # dockerd's push shows the bare cause (no basic auth credentials)
        if e.fields.get("cause"):
            raise PermissionDenied(e.fields["cause"], status=e.fields.get("status")) from None
        raise


def _push(images: ImageStore, namespace: str, row: dict, ref, client: Client, progress, concurrency: int) -> dict:
    client.ping(check_credentials=False)
    manifest_bytes = images.content.read(row["target_digest"])
    manifest, config = images.manifest_and_config(row)
    media_type = row["target_media_type"]
    if media_type in INDEX_TYPES:   # push the platform's manifest only
        desc = ImageStore._pick_platform(_json(images.content.read(row["target_digest"]), "index")
                                         .get("manifests") or [], "image index")
        manifest_bytes, media_type = images.content.read(desc["digest"]), desc["mediaType"]
    layers = list(manifest.get("layers") or [])
    for layer in layers:
        progress({"id": short(layer["digest"]), "status": "Preparing"})
    diff_ids = ImageStore._diff_ids(config, f"image {row['name']}")
    if len(diff_ids) != len(layers):
        raise InvalidArgument(f"image {row['name']}: {len(layers)} layers but {len(diff_ids)} diff IDs")
    meta, uploads = distribution_state(images)
    pushed: list = [None] * len(layers)
    oci = media_type == MT_OCI_MANIFEST

    def one(i: int) -> None:
        pushed[i] = push_layer(client, ref.domain, ref.path, images.content.open, layers[i], diff_ids[i], oci,
                               meta, uploads, progress, images.log)
    in_parallel(one, list(range(len(layers))), concurrency, "push")
    upload_blob(images, client, ref.path, manifest["config"], lambda ev: None)
    if pushed != layers:   # layers compressed on the way: the manifest names the blobs sent
        doc = _json(manifest_bytes, "manifest")
        doc["layers"] = pushed
        manifest_bytes = json.dumps(doc, indent=3).encode()
    tag = ref.tag or "latest"
    with client.request("PUT", f"{repo_path(ref.path)}/manifests/{tag}", scope(ref.path, "pull,push"),
                        body=manifest_bytes, headers={"Content-Type": media_type,
                                                      "Content-Length": str(len(manifest_bytes))},
                        ok=(201,)) as resp:
        resp.read()
    digest = sha256_digest(manifest_bytes)
    progress({"status": f"{tag}: digest: {digest} size: {len(manifest_bytes)}"})
    images.log.info("image pushed", namespace=namespace, name=row["name"], to=str(ref), digest=digest)
    return {"digest": digest, "size": len(manifest_bytes), "tag": tag}


def distribution_state(images: ImageStore):
    """(v2 metadata, upload records) beside the content store: ``<root>/runtimed/distribution``
    (:mod:`runtime.highlevel.distmeta`) and ``<root>/runtimed/uploads`` (:mod:`runtime.highlevel.upload`)."""
    import os
    from runtime.highlevel.distmeta import DistributionMetadata
    base = os.path.dirname(images.content.dir)
    return DistributionMetadata(os.path.join(base, "distribution")), Uploads(os.path.join(base, "uploads"))


def dumps(obj) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
