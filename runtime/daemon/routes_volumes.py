"""Volume endpoints (Engine API 1.41), over :class:`runtime.daemon.volumes.VolumeStore`.

==============================================  ==============================================
``POST /volumes/create``                        body ``VolumeCreateOptions`` ``{"Name",
                                                "Driver", "DriverOpts", "Labels"}``; 201
                                                ``Volume``; no ``Name``: a 64-hex one; an
                                                existing name: that volume (dockerd's)
``GET /volumes``                                ``{"Volumes": [Volume], "Warnings": []}``;
                                                ``filters``: ``dangling`` (true/1, false/0),
                                                ``name`` (a substring), ``label``
                                                (``key``, ``key=value``), ``driver``
``GET /volumes/{name}``                         ``Volume``; 404 ``get NAME: no such volume``
``DELETE /volumes/{name}?force=``               204; 404; 409 ``remove NAME: volume is in use
                                                - [ID, ...]`` (also with ``force``, as dockerd:
                                                *force* only turns a 404 into a 204)
``POST /volumes/prune``                         every volume no container uses (API 1.41 prunes
                                                named ones too); ``filters``: ``label``,
                                                ``label!``; ``{"VolumesDeleted": [names],
                                                "SpaceReclaimed": bytes}``
==============================================  ==============================================

Events (Type ``volume``, Actor ID = the name, Attributes ``{"driver": "local"}``): ``create``,
``destroy``; ``mount`` / ``unmount`` come from the containers (:mod:`runtime.daemon.daemon`).
"""

from __future__ import annotations

from aiohttp import web

from runtime.daemon.api import json_response, no_content, query_bool, read_json
from runtime.daemon.filters import match_labels, parse_filters
from runtime.daemon.names import new_id
from runtime.daemon.volumes import DRIVER
from runtime.errors import InvalidArgument, NotFound

LIST_FILTERS = {"dangling", "name", "label", "driver"}
PRUNE_FILTERS = {"label", "label!"}


def _d(request):
    return request.app["daemon"]


def _dangling(values: list[str]) -> bool:
    v = values[0].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidArgument(f"Invalid filter 'dangling={values[0]}'")


async def create_volume(request: web.Request):
    d = _d(request)
    body = await read_json(request)
    name = body.get("Name") or new_id()
    if not isinstance(name, str):
        raise InvalidArgument("Name must be a string")
    vol, created = d.volumes.create(name, body.get("Driver") or DRIVER, body.get("Labels"),
                                    body.get("DriverOpts"))
    if created:
        d.events.publish("volume", "create", name, {"driver": vol["Driver"]})
    return json_response(d.volumes.view(vol), status=201)


async def list_volumes(request: web.Request):
    d = _d(request)
    f = parse_filters(request.query.get("filters"), LIST_FILTERS)
    dangling = _dangling(f["dangling"]) if "dangling" in f else None
    out = []
    for name, vol in sorted(d.volumes.volumes.items()):
        if dangling is not None and dangling == bool(d.volumes.users(name)):
            continue
        if "name" in f and not any(v in name for v in f["name"]):
            continue
        if "driver" in f and vol["Driver"] not in f["driver"]:
            continue
        if "label" in f and not match_labels(f["label"], vol["Labels"]):
            continue
        out.append(d.volumes.view(vol))
    return json_response({"Volumes": out, "Warnings": []})


async def inspect_volume(request: web.Request):
    d = _d(request)
    return json_response(d.volumes.view(d.volumes.get(request.match_info["name"])))


async def remove_volume(request: web.Request):
    d = _d(request)
    name = request.match_info["name"]
    try:
        d.volumes.remove(name)
    except NotFound:
        if query_bool(request, "force"):
            return no_content()
        raise
    d.events.publish("volume", "destroy", name, {"driver": DRIVER})
    return no_content()


async def prune_volumes(request: web.Request):
    d = _d(request)
    f = parse_filters(request.query.get("filters"), PRUNE_FILTERS)
    deleted, reclaimed = [], 0
    for name, vol in sorted(d.volumes.volumes.items()):
        if d.volumes.users(name):
            continue
        if "label" in f and not match_labels(f["label"], vol["Labels"]):
            continue
        if "label!" in f and any(match_labels([w], vol["Labels"]) for w in f["label!"]):
            continue
        size = d.volumes.size(name)
        d.volumes.remove(name)
        d.events.publish("volume", "destroy", name, {"driver": DRIVER})
        deleted.append(name)
        reclaimed += size
    d.events.publish("volume", "prune", "", {"reclaimed": reclaimed})
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def routes():
    return [("POST", "/volumes/create", create_volume), ("GET", "/volumes", list_volumes),
            ("POST", "/volumes/prune", prune_volumes), ("GET", "/volumes/{name}", inspect_volume),
            ("DELETE", "/volumes/{name}", remove_volume)]
