"""A container's changes as layers (Engine API 1.41): commit, diff, export, and images' history.

===============================================  ===============================================
``POST /commit?container=&repo=&tag=&comment=``  ``docker commit``: 201 ``{"Id": "sha256:..."}``.
``&author=&pause=&changes=``                     The container's snapshot (its overlayfs upper
                                                 dir) becomes one layer on its image
                                                 (capsize-runtimed's ``POST .../images/commit``);
                                                 the config is the container's ``Config``, the
                                                 request body's non-empty fields over it, then
                                                 each ``changes`` line
                                                 (:func:`runtime.daemon.instructions.apply_changes`).
                                                 ``pause`` (default true) pauses a running
                                                 container for the time of the diff. A tag that
                                                 named another image leaves that one dangling.
                                                 Events: container ``commit``, image ``tag``.
``GET /containers/{id}/changes``                 ``docker diff``: ``[{"Path", "Kind"}]`` (0
                                                 modified, 1 added, 2 deleted)
``GET /containers/{id}/export``                  ``docker export``: the container's whole tree
                                                 as a tar (``application/x-tar``); event
                                                 ``export``
``GET /images/{name}/history``                   ``docker history``: ``[{"Id", "Created",
                                                 "CreatedBy", "Tags", "Size", "Comment"}]``,
                                                 newest first; the top entry carries the image
                                                 id and tags, the others ``<missing>`` (as
                                                 dockerd shows layers it has no image for)
===============================================  ===============================================

Errors: 404 ``No such container: X`` / ``No such image: X``; 400 for a malformed reference,
body or change (``run is not a valid change command``).
"""

from __future__ import annotations

import copy
import os
import tempfile

from aiohttp import web

from runtime.daemon import images as imgs
from runtime.daemon.api import json_response, query_bool, read_json, tar_file_response
from runtime.daemon.builder import PARENT_LABEL
from runtime.daemon.clock import parse_rfc3339
from runtime.daemon.instructions import apply_changes
from runtime.daemon.model import CONFIG_DEFAULTS


def _d(request):
    return request.app["daemon"]


def commit_config(container_config: dict, override: dict, changes: list[str]) -> dict:
    """The committed image's config: *container_config*, *override*'s non-empty fields over it,
    then the *changes* lines (see the module docstring)."""
    cfg = {**CONFIG_DEFAULTS, **copy.deepcopy(container_config)}
    for k, v in (override or {}).items():
        if v not in (None, "", [], {}, False):
            cfg[k] = copy.deepcopy(v)
    return apply_changes(cfg, changes)


async def commit(request: web.Request):
    d = _d(request)
    q = request.query
    c = d.get(q.get("container", ""))
    name = None
    if q.get("repo"):
        name = imgs.normalize(q["repo"] + (":" + q["tag"] if q.get("tag") else ""))
    elif q.get("tag"):
        from runtime.errors import InvalidArgument
        raise InvalidArgument("invalid reference format: a tag needs a repository")
    body = await read_json(request)
    changes = [line for value in q.getall("changes", []) for line in value.split("\n")]
    config = commit_config(c.Config, body, changes)
    parent = (await d.backend.image_get(c.Image))["Names"][0]
    history = {"created_by": " ".join(c.Config.get("Cmd") or [])}
    for key in ("author", "comment"):
        if q.get(key):
            history[key] = q[key]
    paused = query_bool(request, "pause", True) and c.State.Status == "running"
    if paused:
        await d.pause(c)
    try:
        img = await d.backend.commit(parent, c.ID, config, history, name, q.get("author", ""), q.get("comment", ""),
                                     labels={PARENT_LABEL: c.Image})
    finally:
        if paused:
            await d.unpause(c)
    attrs = {"comment": q.get("comment", ""), "imageID": img["Id"], "imageRef": name or ""}
    d.events.publish("container", "commit", c.ID, c.event_attributes(**attrs), image=c.image_ref)
    if name:
        d.events.publish("image", "tag", img["Id"], {"name": name})
    return json_response({"Id": img["Id"]}, status=201)


async def changes(request: web.Request):
    d = _d(request)
    c = d.get(request.match_info["id"])
    return json_response(await d.backend.snapshot_changes(c.ID))


async def export(request: web.Request):
    d = _d(request)
    c = d.get(request.match_info["id"])
    tmpdir = os.path.join(d.config.data_root, "daemon", "tmp")
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="export-", suffix=".tar", dir=tmpdir)
    os.close(fd)
    try:
        await d.backend.snapshot_export(c.ID, path)
        resp = await tar_file_response(request, path)
        d.events.publish("container", "export", c.ID, c.event_attributes(), image=c.image_ref)
        await resp.write_eof()
        return resp
    finally:
        os.unlink(path)


def history_view(img: dict) -> list[dict]:
    """``GET /images/{name}/history`` of *img* (capsized's image dict), newest first."""
    sizes = list(img.get("LayerSizes") or [])
    out, layer = [], 0
    for h in img.get("History") or []:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        try:
            created = parse_rfc3339(h.get("created") or "") // 1_000_000_000
        except ValueError:
            created = 0
        out.append({"Id": "<missing>", "Created": created, "CreatedBy": h.get("created_by", ""),
                    "Tags": None, "Size": size, "Comment": h.get("comment", "")})
    if not out:   # an image without history: one entry per layer, as dockerd shows it
        out = [{"Id": "<missing>", "Created": int(img.get("Created", 0)) // 1_000_000_000, "CreatedBy": "",
                "Tags": None, "Size": s, "Comment": ""} for s in sizes] or \
              [{"Id": "<missing>", "Created": 0, "CreatedBy": "", "Tags": None, "Size": 0, "Comment": ""}]
    out.reverse()
    out[0]["Id"], out[0]["Tags"] = img["Id"], list(img.get("RepoTags") or []) or None
    return out


async def history(request: web.Request):
    d = _d(request)
    return json_response(history_view(await d.backend.image_get(request.match_info["name"])))


def routes():
    return [("POST", "/commit", commit), ("GET", "/containers/{id}/changes", changes),
            ("GET", "/containers/{id}/export", export), ("GET", "/images/{name:.+}/history", history)]
