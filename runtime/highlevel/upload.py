"""Push's layer upload, as dockerd's (moby's distribution/push_v2.go), over the OCI distribution
spec's blob upload (``POST .../blobs/uploads/``, ``PATCH`` chunks, ``PUT ?digest=``).

For each layer of the image, :func:`push_layer`:

1. ``HEAD``\\ s, in the target repository, every blob the layer is known as on this registry
   (:mod:`runtime.highlevel.distmeta`; a stored compressed layer is known by its own digest):
   found, nothing is sent ("Layer already exists");
2. else mounts one the registry holds in another repository: ``POST
   /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>``; 201 is "Mounted from
   <repository>", a 202 opens an upload session, used for step 3;
3. else uploads it: a stored compressed blob as it is; an uncompressed layer gzip-compressed on
   the fly (zlib level 6, Go's default and so dockerd's; no name, mtime 0: the same bytes on
   every push, so the next push finds the blob by step 1). The blob goes in ``PATCH`` requests
   of :data:`CHUNK` bytes with ``Content-Range: <start>-<end>``, each answered 202 with the
   session's new ``Location`` (distribution 2.8 puts its signed offset in ``_state``), then a
   ``PUT <location>&digest=<sha256 of the compressed bytes>`` that the registry verifies (201).

**Resuming.** After each accepted chunk the session's ``Location`` and offset are written to
``<root>/runtimed/uploads/<key>.json`` (key: the repository and the layer). A push retried
after capsize-runtimed was killed asks the session's status (``GET <location>``: 204 with
``Range: 0-<last byte>``) and, when the registry has exactly the recorded bytes, goes on from
there (compressing again from the start and sending only the rest: the bytes are the same).
When the session is gone or its data is not what was recorded (distribution answers 404
``BLOB_UPLOAD_INVALID`` for a ``_state`` whose offset is not the data it holds: a chunk cut
mid-way, a chunk accepted but not recorded before the kill, a purged upload), the upload starts
again from the start in a new session, as the spec leaves it. A finished or restarted upload
removes its record; records not updated for :data:`runtime.highlevel.content.INGEST_EXPIRY`
are removed by GC (:func:`clean_uploads`).

Progress: ``{"id", "status": "Layer already exists" | "Mounted from <path>" | "Pushing" |
"Pushed", "current"?, "total"?}`` (dockerd's statuses). Errors: those of
:class:`runtime.highlevel.registry.Client`; InvalidArgument when the registry refuses the digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from urllib.parse import urlencode, urlsplit

from runtime.errors import InvalidArgument, NotFound
from runtime.highlevel.registry import Client, RegistryError, repo_path, scope, short

#: Bytes per PATCH: what a kill mid-push can lose at most.
CHUNK = 8 << 20
READ = 1 << 20
GZIP_LEVEL = 6
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COMPRESSED_SUFFIXES = ("gzip", "zstd")


def gzip_stream(f):
    """The gzip of file object *f*, in pieces (deterministic: see the module docstring)."""
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    while True:
        data = f.read(READ)
        if not data:
            break
        out = z.compress(data)
        if out:
            yield out
    yield z.flush()


def raw_stream(f):
    while True:
        data = f.read(READ)
        if not data:
            return
        yield data


def _target(location: str) -> str:
    """A Location (absolute or not) as the path and query to request on the same registry."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_query(location: str, **params) -> str:
    t = _target(location)
    return t + ("&" if "?" in t else "?") + urlencode(params)


class Uploads:
    """Upload records under *directory* (``<root>/runtimed/uploads``): see the module docstring."""

    def __init__(self, directory: str):
        self.dir = directory
        os.makedirs(directory, mode=0o711, exist_ok=True)

    def path(self, repository: str, source: str) -> str:
        key = hashlib.sha256(f"{repository}\0{source}".encode()).hexdigest()[:32]
        return os.path.join(self.dir, key + ".json")

    def load(self, repository: str, source: str) -> dict | None:
        try:
            with open(self.path(repository, source)) as f:
                rec = json.load(f)
            return rec if isinstance(rec, dict) and isinstance(rec.get("location"), str) else None
        except (OSError, ValueError):
            return None

    def save(self, repository: str, source: str, location: str, offset: int) -> None:
        path = self.path(repository, source)
        with open(path + ".tmp", "w") as f:
            json.dump({"repository": repository, "source": source, "location": location, "offset": offset,
                       "updated": time.time()}, f)
        os.replace(path + ".tmp", path)

    def drop(self, repository: str, source: str) -> None:
        try:
            os.unlink(self.path(repository, source))
        except FileNotFoundError:
            pass


def clean_uploads(directory: str, max_age: float) -> int:
    """Remove upload records not updated for *max_age* seconds; how many were removed."""
    n = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        path = os.path.join(directory, name)
        try:
            if time.time() - os.stat(path).st_mtime > max_age:
                os.unlink(path)
                n += 1
        except FileNotFoundError:
            pass
    return n


def _session_offset(client: Client, path: str, rec: dict) -> tuple[str, int] | None:
    """(location, offset) to go on with a recorded session, or None when it cannot be resumed."""
    try:
        with client.request("GET", _target(rec["location"]), scope(path, "pull,push"), ok=(204,)) as resp:
            rng, location = resp.headers.get("range", ""), resp.headers.get("location") or rec["location"]
    except (NotFound, RegistryError):
        return None
    start, _, end = rng.partition("-")
    try:
        have = int(end) + 1 if start == "0" and end else 0
    except ValueError:
        return None
    return (location, have) if have == rec.get("offset") else None


def upload(client: Client, path: str, chunks, uploads: Uploads, repository: str, source: str,
           progress, lid: str, total: int | None, log, location: str | None = None) -> tuple[str, int]:
    """Send the blob *chunks()* yields (a fresh iterator each call) to repository *path*
    (see the module docstring); returns (digest, size) as the registry accepted it."""
    for attempt in range(2):
        offset = 0
        rec = uploads.load(repository, source) if attempt == 0 and location is None else None
        if rec:
            resumed = _session_offset(client, path, rec)
            if resumed:
                location, offset = resumed
                log.info("resuming upload", repository=repository, source=source, offset=offset)
            else:
                log.info("upload session gone, starting again", repository=repository, source=source)
                uploads.drop(repository, source)
        if location is None:
            with client.request("POST", f"{repo_path(path)}/blobs/uploads/", scope(path, "pull,push"),
                                headers={"Content-Length": "0"}, ok=(202,)) as resp:
                location = resp.headers.get("location")
            if not location:
                raise InvalidArgument("the registry answered the upload without a Location")
        h, pos, buf = hashlib.sha256(), 0, []
        pending = 0

        def send(data: bytes) -> None:
            nonlocal location, offset
            with client.request("PATCH", _target(location), scope(path, "pull,push"), body=data,
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(len(data)),
                                         "Content-Range": f"{offset}-{offset + len(data) - 1}"},
                                ok=(202,)) as resp:
                resp.read()
                location = resp.headers.get("location") or location
            offset += len(data)
            uploads.save(repository, source, location, offset)
            progress({"id": lid, "status": "Pushing", "current": offset, "total": total})

        for piece in chunks():
            h.update(piece)
            skip = max(0, min(len(piece), offset - pos))
            pos += len(piece)
            if skip < len(piece):
                buf.append(piece[skip:] if skip else piece)
                pending += len(piece) - skip
            if pending >= CHUNK:
                send(b"".join(buf))
                buf, pending = [], 0
        if pending:
            send(b"".join(buf))
        if pos < offset:
            raise InvalidArgument(f"the blob is {pos} bytes, shorter than the {offset} the registry holds")
        digest = "sha256:" + h.hexdigest()
        try:
            with client.request("PUT", _with_query(location, digest=digest), scope(path, "pull,push"),
                                headers={"Content-Length": "0"}, ok=(201,)) as resp:
                resp.read()
        except (RegistryError, NotFound) as e:
            uploads.drop(repository, source)
            if attempt == 0 and offset and (e.fields.get("status") in (400, 404)):
                log.info("upload refused, starting again", repository=repository, error=str(e))
                location = None
                continue
            raise
        uploads.drop(repository, source)
        return digest, pos
    raise InvalidArgument(f"the registry refused the upload of {source} twice")


def push_layer(client: Client, domain: str, path: str, opener, desc: dict, diff_id: str, oci: bool,
               meta, uploads: Uploads, progress, log) -> dict:
    """Push one layer (see the module docstring); returns the descriptor the manifest names.

    *opener(digest)* opens a stored blob; *desc* is the stored layer's descriptor, *diff_id* its
    uncompressed digest, *oci* whether the manifest is an OCI one (the media type of a gzip)."""
    repository = f"{domain}/{path}"
    lid = short(desc["digest"])
    stored_compressed = str(desc.get("mediaType", "")).endswith(COMPRESSED_SUFFIXES)
    known = [e for e in meta.get(diff_id) if str(e.get("repository", "")).startswith(domain + "/")]
    if stored_compressed:
        known = [{"digest": desc["digest"], "size": desc.get("size"), "mediaType": desc["mediaType"],
                  "repository": None}] + [e for e in known if e["digest"] == desc["digest"]]
    else:
        known = [e for e in known if str(e.get("mediaType", "")).endswith("gzip")]

    def done(e: dict, status: str) -> dict:
        out = {"mediaType": (desc["mediaType"] if stored_compressed else
                             (MT_OCI_LAYER_GZIP if oci else MT_DOCKER_LAYER_GZIP)),
               "digest": e["digest"], "size": e["size"]}
        meta.add(diff_id, out["digest"], out["size"], out["mediaType"], repository)
        progress({"id": lid, "status": status})
        return out

    seen = set()
    for e in known:
        if e["digest"] in seen or not isinstance(e.get("size"), int):
            continue
        seen.add(e["digest"])
        with client.request("HEAD", f"{repo_path(path)}/blobs/{e['digest']}", scope(path, "pull,push"),
                            ok=(200, 404)) as resp:
            if resp.status == 200:
                return done(e, "Layer already exists")
    session = None
    for e in known:
        source = e.get("repository")
        if not source or source == repository or not isinstance(e.get("size"), int):
            continue
        from_path = source[len(domain) + 1:]
        with client.request("POST", f"{repo_path(path)}/blobs/uploads/?"
                            + urlencode({"mount": e["digest"], "from": from_path}),
                            scope(path, "pull,push"), headers={"Content-Length": "0"}, ok=(201, 202)) as resp:
            if resp.status == 201:
                return done(e, f"Mounted from {from_path}")
            session = resp.headers.get("location")
        break   # one try, as dockerd: the session the registry opened takes the upload
    progress({"id": lid, "status": "Pushing", "current": 0, "total": desc.get("size")})

    def chunks():
        with opener(desc["digest"]) as f:
            yield from (raw_stream(f) if stored_compressed else gzip_stream(f))
    digest, size = upload(client, path, chunks, uploads, repository, desc["digest"], progress, lid,
                          desc.get("size"), log, location=session)
    if stored_compressed and digest != desc["digest"]:
        raise InvalidArgument(f"stored layer {desc['digest']} read back as {digest}")
    return done({"digest": digest, "size": size}, "Pushed")
