"""Endpoints that reach inside a container (Engine API 1.41): ``docker cp``, ``docker stats``,
``docker update``.

========================================================  ==========================================
``HEAD /containers/{id}/archive?path=``                    200, the ``X-Docker-Container-Path-Stat``
                                                           header (base64 ``PathStat`` JSON); 404
``GET /containers/{id}/archive?path=``                     200 ``application/x-tar`` + the header
``PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=  200; 400 not a directory or a bad tar,
&copyUIDGID=``                                             403 read-only rootfs, 404 no such path
``GET /containers/{id}/stats?stream=&one-shot=``           ``ContainerStats`` JSON: one object (stream=0;
                                                           two samples 1 s apart unless one-shot=1) or
                                                           one a second until the client goes away or
                                                           the container is removed; zeros when not
                                                           running
``POST /containers/{id}/update``                           ``{"Warnings": []}``: resources (and
                                                           ``RestartPolicy``) kept in ``HostConfig`` and,
                                                           when the container has a task, applied live
                                                           to its cgroup (runtimed -> shim -> runtime
                                                           ``update``); 400 bad values, 501 fields
                                                           capsize cannot apply
========================================================  ==========================================

The work: :mod:`runtime.daemon.archive`, :mod:`runtime.daemon.stats`.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from runtime.daemon import archive, resources, restart, stats
from runtime.daemon.api import json_response, query_bool, read_json
from runtime.daemon.oci import cgroups_path
from runtime.errors import InvalidArgument, NotFound
from runtime.lowlevel.cgroups import Cgroup

#: seconds between two samples of a stream (dockerd's stats collector interval)
STATS_INTERVAL = 1.0


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


def _sample(d, c, cgroup, previous: dict | None) -> dict:
    if not c.State.running:
        return stats.empty(c.ID, c.name)
    now = stats.sample(cgroup, c.ID, c.name)
    now["preread"] = previous["read"] if previous else "0001-01-01T00:00:00Z"
    now["precpu_stats"] = previous["cpu_stats"] if previous else stats.empty(c.ID, c.name)["precpu_stats"]
    return now


async def container_stats(request: web.Request):
    d, c = _container(request)
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    cgroup = Cgroup.for_container(c.ID, cgroups_path(c, d.config.cgroup_parent))
    if not stream:
        s = _sample(d, c, cgroup, None)
        if not one_shot and c.State.running:
            await asyncio.sleep(STATS_INTERVAL)
            s = _sample(d, c, cgroup, s)
        return json_response(s)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    previous = None
    while not c.removed:
        if c.State.running:
            previous = _sample(d, c, cgroup, previous)
            try:
                await resp.write(json.dumps(previous).encode() + b"\n")
            except (ConnectionResetError, RuntimeError):
                break   # the client went away
        else:
            previous = None
        await asyncio.sleep(STATS_INTERVAL)
    return resp


async def container_update(request: web.Request):
    d, c = _container(request)
    body = await read_json(request)
    changes = resources.check_update(body, c.HostConfig)
    policy = body.get("RestartPolicy") if isinstance(body.get("RestartPolicy"), dict) else None
    if policy is not None and policy.get("Name") is not None:
        if c.HostConfig.get("AutoRemove") and policy.get("Name") not in ("", "no"):
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container")
        restart.validate({"RestartPolicy": policy})
        changes["RestartPolicy"] = {"Name": policy.get("Name") or "no",
                                    "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    async with c.lock:
        if c.removed:
            raise NotFound(f"No such container: {c.ID}")
        live = {k: v for k, v in changes.items() if k != "RestartPolicy"}
        running = c.State.running
        if live and running:   # the runtime's container spec follows (runtimed keeps the resources)
            await d.backend.update_task(c.ID, resources.oci(live, lift_pids=True))
        before = dict(c.HostConfig)
        for k, v in changes.items():
            c.HostConfig[k] = -1 if k == "PidsLimit" and v <= 0 else v
        if "NanoCpus" in changes:
            c.HostConfig["CpuPeriod"] = c.HostConfig["CpuQuota"] = 0
        if live and not running:   # the next start's spec: the runtime's container record keeps it
            try:
                async with c.task_lock:
                    await d._delete_task(c)   # a stopped task pins the spec (dockerd deletes it at exit)
                await d.backend.update_container_spec(c.ID, d.container_spec(c))
            except NotFound:
                pass   # re-made from the current spec at the next start
            except BaseException:
                c.HostConfig.clear()
                c.HostConfig.update(before)
                raise
        await d.save(c)
    return json_response({"Warnings": []})


def routes():
    p = "/containers/{id}"
    return [("HEAD", p + "/archive", archive_head), ("GET", p + "/archive", archive_get),
            ("PUT", p + "/archive", archive_put), ("GET", p + "/stats", container_stats),
            ("POST", p + "/update", container_update)]
