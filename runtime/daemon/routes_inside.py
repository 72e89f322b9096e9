"""Endpoints that reach inside a container (Engine API 1.41): ``docker cp``, ``docker stats``,
``docker update``.

========================================================  ==========================================
``HEAD /containers/{id}/archive?path=``                    200, the ``X-Docker-Container-Path-Stat``
                                                           header (base64 ``PathStat`` JSON); 404
``GET /containers/{id}/archive?path=``                     200 ``application/x-tar`` + the header
``PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=  200; 400 not a directory or a bad tar,
&copyUIDGID=``                                             403 read-only rootfs, 404 no such path
========================================================  ==========================================

The work: :mod:`runtime.daemon.archive`.
"""

from __future__ import annotations

from aiohttp import web

from runtime.daemon import archive
from runtime.daemon.api import query_bool


def _container(request):
    d = request.app["daemon"]
    return d, d.get(request.match_info["id"])


async def archive_head(request: web.Request):
    d, c = _container(request)
    st = await archive.stat(d, c, request.query.get("path"))
    return web.Response(status=200, headers={archive.STAT_HEADER: archive.encode_stat(st),
                                             "Content-Type": "application/x-tar"})


async def archive_get(request: web.Request):
    d, c = _container(request)

    async def start_response(st: dict):
        resp = web.StreamResponse(status=200, headers={archive.STAT_HEADER: archive.encode_stat(st),
                                                       "Content-Type": "application/x-tar"})
        await resp.prepare(request)
        box.append(resp)
        return resp

    box: list = []
    await archive.get(d, c, request.query.get("path"), start_response)
    await box[0].write_eof()
    return box[0]


async def archive_put(request: web.Request):
    d, c = _container(request)
    await archive.put(d, c, request.query.get("path"), request.content,
                      query_bool(request, "noOverwriteDirNonDir"), query_bool(request, "copyUIDGID"))
    return web.Response(status=200)


def routes():
    p = "/containers/{id}"
    return [("HEAD", p + "/archive", archive_head), ("GET", p + "/archive", archive_get),
            ("PUT", p + "/archive", archive_put)]
