"""Network endpoints (Engine API 1.41), over :class:`runtime.daemon.networks.Networks` and
:mod:`runtime.daemon.endpoints`.

==============================================  ==============================================
``GET /networks``                               ``[Network]`` (``Containers`` empty, as
                                                dockerd's list); ``filters``: ``name`` (a
                                                substring), ``id`` (a prefix), ``label``
                                                (``key``, ``key=value``), ``driver``, ``type``
                                                (``builtin``/``custom``), ``scope``,
                                                ``dangling`` (true/1, false/0)
``GET /networks/{id}``                          ``Network`` with ``Containers``; 404 ``network X
                                                not found``
``POST /networks/create``                       ``NetworkCreateRequest``; 201 ``{"Id",
                                                "Warning": ""}``; 409 for a taken name
``DELETE /networks/{id}``                       204; 403 predefined; 409 active endpoints
``POST /networks/{id}/connect``                 ``{"Container", "EndpointConfig"}``; 200
``POST /networks/{id}/disconnect``              ``{"Container", "Force"}``; 200
``POST /networks/prune``                        every user-defined network no running container
                                                is on; ``filters``: ``label``, ``label!``,
                                                ``until``; ``{"NetworksDeleted": [names]}``
==============================================  ==============================================

Events (Type ``network``, Actor ID = the network id, Attributes ``{"name", "type"}`` and
``container`` for connect/disconnect): ``create``, ``destroy``, ``connect``, ``disconnect``;
``prune`` (``{"reclaimed": "0"}``).
"""

from __future__ import annotations

from aiohttp import web

from runtime.daemon import endpoints
from runtime.daemon.api import json_response, no_content, read_json
from runtime.daemon.clock import parse_api_time
from runtime.daemon.filters import match_labels, parse_filters
from runtime.errors import InvalidArgument, NotFound

LIST_FILTERS = {"name", "id", "label", "driver", "type", "scope", "dangling"}
PRUNE_FILTERS = {"label", "label!", "until"}


def _d(request):
    return request.app["daemon"]


def _bool(key: str, values: list[str]) -> bool:
    v = values[0].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidArgument(f"Invalid filter '{key}={values[0]}'")


def _matches(d, rec: dict, f: dict) -> bool:
    if "name" in f and not any(v in rec["Name"] for v in f["name"]):
        return False
    if "id" in f and not any(rec["Id"].startswith(v) for v in f["id"]):
        return False
    if "driver" in f and rec["Driver"] not in f["driver"]:
        return False
    if "scope" in f and rec["Scope"] not in f["scope"]:
        return False
    if "label" in f and not match_labels(f["label"], rec["Labels"]):
        return False
    if "type" in f:
        for t in f["type"]:
            if t not in ("builtin", "custom"):
                raise InvalidArgument(f"invalid filter: 'type'='{t}'")
        if ("builtin" if d.networks.builtin(rec) else "custom") not in f["type"]:
            return False
    if "dangling" in f:
        dangling = not d.networks.builtin(rec) and not endpoints.attached(d, rec["Id"])
        if dangling != _bool("dangling", f["dangling"]):
            return False
    return True


async def list_networks(request: web.Request):
    d = _d(request)
    f = parse_filters(request.query.get("filters"), LIST_FILTERS)
    out = [d.networks.view(rec, {}) for rec in d.networks.records.values() if _matches(d, rec, f)]
    return json_response(out)


async def inspect_network(request: web.Request):
    d = _d(request)
    rec = d.networks.get(request.match_info["id"])
    return json_response(d.networks.view(rec, endpoints.attached(d, rec["Id"])))


async def create_network(request: web.Request):
    d = _d(request)
    body = await read_json(request)
    rec = d.networks.create(body)
    d.events.publish("network", "create", rec["Id"], d.networks.event_attributes(rec))
    return json_response({"Id": rec["Id"], "Warning": ""}, status=201)


async def remove_network(request: web.Request):
    d = _d(request)
    rec = d.networks.get(request.match_info["id"])
    d.networks.remove(rec, list(endpoints.attached(d, rec["Id"])))
    d.events.publish("network", "destroy", rec["Id"], d.networks.event_attributes(rec))
    return no_content()


def _container(d, body: dict):
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidArgument("Container must be a container's name or id")
    try:
        return d.get(ref)
    except NotFound as e:
        raise NotFound(e.message) from None


async def connect_network(request: web.Request):
    d = _d(request)
    rec = d.networks.get(request.match_info["id"])
    body = await read_json(request)
    c = _container(d, body)
    async with c.lock:
        endpoints.connect(d, rec, c, body.get("EndpointConfig"))
        await d.save(c)
    return web.Response(status=200)


async def disconnect_network(request: web.Request):
    d = _d(request)
    rec = d.networks.get(request.match_info["id"])
    body = await read_json(request)
    c = _container(d, body)
    async with c.lock:
        endpoints.disconnect(d, rec, c, force=bool(body.get("Force")))
        await d.save(c)
    return web.Response(status=200)


async def prune_networks(request: web.Request):
    d = _d(request)
    f = parse_filters(request.query.get("filters"), PRUNE_FILTERS)
    until = parse_api_time(f["until"][0], "until") if "until" in f else None
    deleted = []
    for rec in list(d.networks.records.values()):
        if d.networks.builtin(rec) or endpoints.attached(d, rec["Id"]):
            continue
        if "label" in f and not match_labels(f["label"], rec["Labels"]):
            continue
        if "label!" in f and any(match_labels([w], rec["Labels"]) for w in f["label!"]):
            continue
        if until is not None and parse_api_time(rec["Created"]) >= until:
            continue
        d.networks.remove(rec, [])
        d.events.publish("network", "destroy", rec["Id"], d.networks.event_attributes(rec))
        deleted.append(rec["Name"])
    d.events.publish("network", "prune", "", {"reclaimed": 0})
    return json_response({"NetworksDeleted": deleted})


def routes():
    return [("GET", "/networks", list_networks), ("POST", "/networks/create", create_network),
            ("POST", "/networks/prune", prune_networks), ("GET", "/networks/{id}", inspect_network),
            ("DELETE", "/networks/{id}", remove_network), ("POST", "/networks/{id}/connect", connect_network),
            ("POST", "/networks/{id}/disconnect", disconnect_network)]
