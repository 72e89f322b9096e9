"""Registry endpoints (Engine API 1.41), through capsize-runtimed's transfer (as dockerd's go to
containerd's): pull, push, login.

==============================================  ==============================================
``POST /images/create?fromImage=&tag=``         ``docker pull``: a JSON message stream
                                                (``{"status", "id"?, "progressDetail"}``, the
                                                CLI's progress), ending ``Digest: ...`` and
                                                ``Status: Downloaded newer image for R`` /
                                                ``Status: Image is up to date for R``
``POST /images/{name}/push?tag=``               ``docker push``: ``The push refers to repository
                                                [R]``, ``Preparing``/``Pushing``/``Pushed``/
                                                ``Layer already exists`` per layer, ``T: digest:
                                                D size: N`` and ``{"aux": {"Tag", "Digest",
                                                "Size"}}``; no tag: every tag of the repository
``POST /auth``                                  ``docker login``: ``{"Status": "Login
                                                Succeeded"}``; refused: 500 (as dockerd 20.10)
                                                ``login attempt to http://H/v2/ failed with
                                                status: 401 Unauthorized``
==============================================  ==============================================

Credentials come in ``X-Registry-Auth`` (:mod:`runtime.daemon.registry_auth`); ``docker logout``
never reaches the daemon. As dockerd's, an error before the first message (bad reference,
registry down, missing tag or repository, refused credentials) is the reply's status and
``{"message"}``; an error later (a digest mismatch, the registry gone mid-transfer) ends the
stream with ``{"errorDetail": {"message"}, "error"}`` (the CLI prints it and exits 1).
Events: ``pull``, ``push`` (Type ``image``, actor the reference).
"""

from __future__ import annotations

import json

from aiohttp import web

from runtime.api.runtimed import Requests
from runtime.daemon import images as imgs
from runtime.daemon.api import json_response, read_json
from runtime.daemon.registry_auth import decode_auth
from runtime.errors import CapsizeError, InvalidArgument, NotFound, PermissionDenied, Unavailable

NAMESPACE = "capsize"


def _d(request):
    return request.app["daemon"]


def message(ev: dict) -> dict:
    """capsize-runtimed's progress event as the Engine API's JSON message (jsonmessage)."""
    out = {"status": ev.get("status", "")}
    if "id" in ev:
        out["progressDetail"] = {k: ev[k] for k in ("current", "total") if ev.get(k) is not None}
        out["id"] = ev["id"]
    return out


async def _transfer(d, call):
    """capsize-runtimed's transfer lines; an error before the first line is the reply's, with
    dockerd's status: a registry that cannot be reached or refuses the credentials is a 500 for
    dockerd (measured: tests/daemon/data/registry-errors.json), not a 503/403."""
    try:
        return await d.backend.transfer(call)
    except (Unavailable, PermissionDenied) as e:
        raise CapsizeError(e.message) from None


async def _stream(request: web.Request, call, finish) -> web.StreamResponse:
    d = _d(request)
    lines = await _transfer(d, call)   # errors before the first line: the reply's status
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def emit(obj: dict) -> None:
        await resp.write(json.dumps(obj).encode() + b"\r\n")

    async for ev in lines:
        if "error" in ev:
            text = (ev["error"] or {}).get("message", "unknown error")
            await emit({"errorDetail": {"message": text}, "error": text})
            break
        if "status" in ev:
            await emit(message(ev))
            continue
        for obj in await finish(ev):
            await emit(obj)
    await resp.write_eof()
    return resp


async def pull(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=`` (the caller routes ``fromSrc`` to import)."""
    d = _d(request)
    q = request.query
    ref = q["fromImage"]
    if q.get("tag"):
        ref += ("@" if q["tag"].startswith("sha256:") else ":") + q["tag"]
    name = imgs.normalize(ref)
    auth = decode_auth(request.headers.get("X-Registry-Auth"))

    async def finish(ev: dict) -> list[dict]:
        img = ev["image"]
        d.events.publish("image", "pull", name, {"name": name})
        what = "Image is up to date for" if ev["action"] == "same" else "Downloaded newer image for"
        return [{"status": f"Digest: {ev['digest']}"}, {"status": f"Status: {what} {name}"}] \
            if img else []
    return await _stream(request, Requests(NAMESPACE).pull_image(name, auth), finish)


async def push(request: web.Request) -> web.StreamResponse:
    d = _d(request)
    repo = request.match_info["name"]
    tag = request.query.get("tag") or None
    auth = decode_auth(request.headers.get("X-Registry-Auth"))
    if tag:
        names = [imgs.normalize(f"{repo}:{tag}")]
    else:
        names = sorted(t for img in await d.backend.image_list() for t in img.get("RepoTags") or []
                       if t.rpartition(":")[0] == imgs.normalize(repo).rpartition(":")[0])
    if not names:
        raise NotFound(f"An image does not exist locally with the tag: {repo}")
    for n in names:
        await d.backend.image_get(n)   # 404 before anything streams
    current = [names[0]]

    async def finish(ev: dict) -> list[dict]:
        p = ev["pushed"]
        d.events.publish("image", "push", current[0], {"name": current[0]})
        return [{"progressDetail": {}, "aux": {"Tag": p["tag"], "Digest": p["digest"], "Size": p["size"]}}]

    if len(names) == 1:
        return await _stream(request, Requests(NAMESPACE).push_image(names[0], None, auth), finish)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    for n in names:
        current[0] = n
        lines = await _transfer(d, Requests(NAMESPACE).push_image(n, None, auth))
        async for ev in lines:
            if "error" in ev:
                text = (ev["error"] or {}).get("message", "unknown error")
                await resp.write(json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n")
                await resp.write_eof()
                return resp
            for obj in ([message(ev)] if "status" in ev else await finish(ev)):
                await resp.write(json.dumps(obj).encode() + b"\r\n")
    await resp.write_eof()
    return resp


async def auth(request: web.Request) -> web.Response:
    d = _d(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not body.get("username"):
        raise InvalidArgument("login needs a username and a password")
    server = (body.get("serveraddress") or "").removeprefix("http://").removeprefix("https://").rstrip("/")
    if not server or server in ("docker.io", "index.docker.io", "index.docker.io/v1"):
        raise InvalidArgument("capsize never contacts Docker Hub: docker login <registry host:port>")
    creds = {k: body[k] for k in ("username", "password") if isinstance(body.get(k), str)}
    try:
        await d.backend.registry_login(server, creds)
    except (PermissionDenied, Unavailable) as e:   # dockerd 20.10 answers a refused login with a 500
        raise CapsizeError(e.message) from None
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def routes():
    return [("POST", "/images/{name:.+}/push", push), ("POST", "/auth", auth)]
