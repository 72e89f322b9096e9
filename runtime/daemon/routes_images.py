"""Image endpoints (Engine API 1.41), through capsize-runtimed's content store.

==============================================  ==============================================
``GET /images/json``                            list (``all``, ``filters``: reference,
                                                dangling, label, before, since)
``GET /images/{name}/json``                     inspect; 404 ``No such image: NAME``
``POST /images/create?fromSrc=-&repo=&tag=``    ``docker import``: the body is a rootfs tar;
                                                answers a JSON message stream
                                                ``{"status": "sha256:<id>"}``
``POST /images/create?fromImage=``              ``docker pull``: :mod:`runtime.daemon.routes_registry`
``POST /images/load``                           ``docker load``: ``{"stream": "Loaded image: X\\n"}``
``GET /images/get?names=``, ``/images/{n}/get``  ``docker save``: an ``application/x-tar`` stream
``POST /images/{name}/tag?repo=&tag=``          201
``POST /images/prune?filters=``                 ``docker image prune``: dangling images (and
                                                their untagged parents left childless);
                                                ``{"ImagesDeleted", "SpaceReclaimed"}``
``DELETE /images/{name}?force=&noprune=``       ``[{"Untagged": ref}, {"Deleted": id}]``; 409
                                                when a container uses it (Docker's texts);
                                                forced, its last tag is only untagged and the
                                                image stays as ``<none>:<none>`` (event
                                                ``untag``) while containers use it; its
                                                untagged parents left without child or
                                                container are deleted too unless
                                                ``noprune`` (dockerd's imageDeleteHelper);
                                                by id, an image with children is 409
==============================================  ==============================================

Events: ``import``, ``load``, ``tag``, ``untag``, ``delete``, ``save`` (Type ``image``).
"""

from __future__ import annotations

import json
import os
import tempfile

from aiohttp import web

from runtime.daemon import images as imgs
from runtime.daemon.api import json_response, query_bool, spool_body, tar_file_response
from runtime.daemon.filters import match_labels, parse_filters
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound

IMAGE_FILTERS = {"reference", "dangling", "label", "before", "since"}


def _d(request):
    return request.app["daemon"]


async def list_images(request: web.Request):
    d = _d(request)
    f = parse_filters(request.query.get("filters"), IMAGE_FILTERS)
    images = sorted(await d.backend.image_list(), key=lambda i: i.get("Created", 0), reverse=True)
    parents = imgs.parents(images)
    show_all = query_bool(request, "all")
    out = []
    import fnmatch
    for img in images:
        tags = img.get("RepoTags") or []
        if not tags and img["Id"] in parents and (not show_all or "dangling" in f):
            continue   # an intermediate image (untagged, with children): only with -a, never dangling
        if "reference" in f and not any(fnmatch.fnmatch(t, p) or fnmatch.fnmatch(t, p + ":*")
                                        for t in tags for p in f["reference"]):
            continue
        if "dangling" in f and (f["dangling"][0] in ("true", "1")) != (not tags):
            continue
        if "label" in f and not match_labels(f["label"], (img.get("Config") or {}).get("Labels")):
            continue
        out.append(imgs.summary(img))
    return json_response(out)


async def inspect_image(request: web.Request):
    d = _d(request)
    return json_response(imgs.inspect(await d.backend.image_get(request.match_info["name"])))


async def _spool(request: web.Request, d) -> str:
    """The request body in a temporary file under the data root (the caller removes it)."""
    tmpdir = os.path.join(d.config.data_root, "daemon", "tmp")
    os.makedirs(tmpdir, exist_ok=True)
    path = os.path.join(tmpdir, f"upload-{os.urandom(8).hex()}.tar")
    await spool_body(request, path)
    return path


async def create_image(request: web.Request):
    d = _d(request)
    q = request.query
    if q.get("fromImage"):
        from runtime.daemon.routes_registry import pull
        return await pull(request)
    if q.get("fromSrc") != "-":
        raise InvalidArgument("capsize imports from the request body only (fromSrc=-)")
    if q.getall("changes", []) and any(c.strip() for c in q.getall("changes", [])):
        raise InvalidArgument("capsize does not support --change on import")
    name = None
    if q.get("repo"):
        name = imgs.normalize(q["repo"] + (":" + q["tag"] if q.get("tag") else ""))
    path = await _spool(request, d)
    try:
        img = await d.backend.image_import(path, "rootfs", name)
    finally:
        os.unlink(path)
    d.events.publish("image", "import", img["Id"], {"name": img["Id"]})
    return web.Response(status=200, content_type="application/json",
                        body=json.dumps({"status": img["Id"]}).encode() + b"\n")


async def load_image(request: web.Request):
    d = _d(request)
    path = await _spool(request, d)
    try:
        loaded = await d.backend.image_load(path)
    finally:
        os.unlink(path)
    lines = []
    for img in loaded:
        d.events.publish("image", "load", img["Id"], {"name": img["Id"]})
        tags = img.get("RepoTags") or []
        for t in tags:
            lines.append(json.dumps({"stream": f"Loaded image: {t}\n"}))
        if not tags:
            lines.append(json.dumps({"stream": f"Loaded image ID: {img['Id']}\n"}))
    return web.Response(status=200, content_type="application/json",
                        body=("\n".join(lines) + "\n").encode())


async def save_images(request: web.Request):
    d = _d(request)
    names = request.query.getall("names", []) if "name" not in request.match_info else [request.match_info["name"]]
    if not names:
        raise InvalidArgument("no images given: use ?names=")
    refs = []
    for n in names:
        img = await d.backend.image_get(n)   # NotFound first, before any byte is sent
        refs.append(n if not imgs.is_image_id(n) else img["Id"])
    tmpdir = os.path.join(d.config.data_root, "daemon", "tmp")
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="save-", suffix=".tar", dir=tmpdir)
    os.close(fd)
    try:
        await d.backend.image_export(refs, path)
        resp = await tar_file_response(request, path)
        for r in refs:
            d.events.publish("image", "save", r, {"name": r})
        return resp
    finally:
        os.unlink(path)


async def tag_image(request: web.Request):
    d = _d(request)
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    new = imgs.normalize(repo + (":" + request.query["tag"] if request.query.get("tag") else ""))
    img = await d.backend.image_get(request.match_info["name"])
    await d.backend.image_tag(img, new)
    d.events.publish("image", "tag", img["Id"], {"name": new})
    return web.Response(status=201)


async def remove_image(request: web.Request):
    d = _d(request)
    ref = request.match_info["name"]
    force = query_bool(request, "force")
    img = await d.backend.image_get(ref)
    users = [c for c in d.containers.values() if c.Image == img["Id"]]
    tags = list(img.get("RepoTags") or [])
    out = []
    if not imgs.is_image_id(ref) or any(t == imgs.normalize(ref) for t in tags):
        name = imgs.normalize(ref)
        if name not in tags:
            raise NotFound(f"No such image: {ref}")
        if len(tags) == 1 and users and not force:
            raise FailedPrecondition(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                                     f'container {users[0].ID[:12]} is using its referenced image {img["Id"][7:19]}')
        if len(tags) == 1 and users and not any(n.startswith("sha256:") for n in img.get("Names") or []):
            # forced, and containers use it: Docker only untags, the image stays as <none>:<none>
            await d.backend.image_tag(img, img["Id"])
        await d.backend.image_untag(name)
        out.append({"Untagged": name})
        d.events.publish("image", "untag", img["Id"], {"name": img["Id"]})
        if len(tags) > 1 or users:
            return json_response(out)
        if await _children(d, img["Id"]):
            return json_response(out)   # a parent of another image: only untagged (dockerd's soft conflict)
    else:
        running = [c for c in users if c.State.running]
        if await _children(d, img["Id"]):
            raise FailedPrecondition(f"conflict: unable to delete {img['Id'][7:19]} (cannot be forced) - image "
                                     f"has dependent child images")
        if running:
            raise FailedPrecondition(f"conflict: unable to delete {img['Id'][7:19]} (cannot be forced) - image is "
                                     f"being used by running container {running[0].ID[:12]}")
        if len(tags) > 1 and not force:
            raise FailedPrecondition(f"conflict: unable to delete {img['Id'][7:19]} (must be forced) - image is "
                                     f"referenced in multiple repositories")
        if users and not force:
            raise FailedPrecondition(f"conflict: unable to delete {img['Id'][7:19]} (must be forced) - image is "
                                     f"being used by stopped container {users[0].ID[:12]}")
        for t in tags:
            await d.backend.image_untag(t)
            out.append({"Untagged": t})
            d.events.publish("image", "untag", img["Id"], {"name": img["Id"]})
    try:
        await d.backend.image_delete_id(img["Id"])
    except NotFound:
        pass
    await d.backend.gc()   # dockerd deletes the image's layers with it: a pull after an rmi downloads them
    out.append({"Deleted": img["Id"]})
    d.events.publish("image", "delete", img["Id"], {"name": img["Id"]})
    if not query_bool(request, "noprune"):
        out += await _prune_parents(d, img.get("Parent") or "")
    return json_response(out)


async def _children(d, image_id: str) -> list[str]:
    """Ids of the images whose ``Parent`` is *image_id*."""
    return [i["Id"] for i in await d.backend.image_list() if i.get("Parent") == image_id]


async def _prune_parents(d, parent: str) -> list[dict]:
    """After an image is deleted, its parent chain as dockerd's ``imageDeleteHelper`` with prune:
    each parent with no tag, no other child and no container (running or not) using it is
    deleted (``{"Deleted": id}``, event ``delete``), up to the first that is kept."""
    out = []
    used = {c.Image for c in d.containers.values()}
    images = {i["Id"]: i for i in await d.backend.image_list()}   # one listing for the whole chain
    children = {}
    for i in images.values():
        if i.get("Parent"):
            children.setdefault(i["Parent"], set()).add(i["Id"])
    gone: set[str] = set()
    while parent in images:
        img = images[parent]
        if img.get("RepoTags") or img.get("RepoDigests") or parent in used or children.get(parent, set()) - gone:
            break
        try:
            await d.backend.image_delete_id(parent)
        except NotFound:
            break
        gone.add(parent)
        out.append({"Deleted": parent})
        d.events.publish("image", "delete", parent, {"name": parent})
        parent = img.get("Parent") or ""
    return out


async def prune_images(request: web.Request):
    """``POST /images/prune``: dangling images (``filters={"dangling": ["false"]}``: every image no
    container uses), then their untagged parents left without children, as dockerd."""
    d = _d(request)
    f = parse_filters(request.query.get("filters"), {"dangling", "label", "until"})
    only_dangling = (f.get("dangling") or ["true"])[0] not in ("false", "0")
    used = {c.Image for c in d.containers.values()}
    deleted, untagged = [], []
    while True:
        images = await d.backend.image_list()
        parents = imgs.parents(images)
        doomed = [i for i in images if i["Id"] not in used and i["Id"] not in parents
                  and (not i.get("RepoTags") or not only_dangling)
                  and ("label" not in f or match_labels(f["label"], (i.get("Config") or {}).get("Labels")))]
        if not doomed:
            break
        for img in doomed:
            for t in img.get("RepoTags") or []:
                untagged.append({"Untagged": t})
            await d.backend.image_delete_id(img["Id"])
            deleted.append({"Deleted": img["Id"]})
            d.events.publish("image", "delete", img["Id"], {"name": img["Id"]})
    report = await d.backend.gc() if deleted else {}
    return json_response({"ImagesDeleted": (untagged + deleted) or None,
                          "SpaceReclaimed": int(report.get("bytes_freed") or 0)})


def routes():
    return [("GET", "/images/json", list_images), ("POST", "/images/prune", prune_images), ("POST", "/images/create", create_image),
            ("POST", "/images/load", load_image), ("GET", "/images/get", save_images),
            ("GET", "/images/{name:.+}/json", inspect_image), ("GET", "/images/{name:.+}/get", save_images),
            ("POST", "/images/{name:.+}/tag", tag_image), ("DELETE", "/images/{name:.+}", remove_image)]
