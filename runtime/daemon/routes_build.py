"""``POST /build`` (Engine API 1.41, the classic builder: ``DOCKER_BUILDKIT=0 docker build``, the
SDK's ``images.build``).

The body is the build context (a tar, optionally compressed; or the Dockerfile alone). Query:
``t`` (repeatable tags), ``dockerfile`` (path in the context, default ``Dockerfile``),
``buildargs`` and ``labels`` (JSON objects), ``nocache``, ``target``, ``networkmode``, ``q``;
``rm``/``forcerm`` are always in effect (no intermediate container is ever kept). Answers 200
with Docker's JSON message stream (:mod:`runtime.daemon.builder`); refused before it starts:
400 for a malformed tag, a bad JSON parameter, a missing Dockerfile, ``remote`` (no network)
and ``version=2`` (BuildKit: capsize offers the classic builder only, which the newer CLI uses
with ``DOCKER_BUILDKIT=0``). Events: image ``tag`` for each tag.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil

from aiohttp import web

from runtime.daemon import buildcontext, images as imgs
from runtime.daemon.api import query_bool, spool_body
from runtime.daemon.builder import Build, BuildError
from runtime.errors import CapsizeError, InvalidArgument
from runtime.securejoin import secure_join


def _json_param(request, name: str) -> dict:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} value: {raw!r} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} value: want a JSON object")
    return value


async def build(request: web.Request):
    d = request.app["daemon"]
    q = request.query
    if q.get("version") == "2":
        raise InvalidArgument("capsize implements the classic builder only (no BuildKit): "
                              "build with DOCKER_BUILDKIT=0")
    if q.get("remote"):
        raise InvalidArgument("capsize builds offline: a remote context is not supported")
    tags = [imgs.normalize(t) for t in q.getall("t", [])]
    build_args, labels = _json_param(request, "buildargs"), _json_param(request, "labels")
    work = os.path.join(d.config.data_root, "daemon", "tmp", "build-" + os.urandom(8).hex())
    context = os.path.join(work, "context")
    os.makedirs(context, 0o700)
    try:
        archive = os.path.join(work, "context.tar")
        await spool_body(request, archive)
        await asyncio.to_thread(buildcontext.extract, archive, context)   # file work: off the loop
        os.unlink(archive)
        name = q.get("dockerfile") or "Dockerfile"
        try:
            with open(secure_join(context, name)) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None
        try:
            # within the context: a .dockerignore symlinked out of it resolves inside it, as the Dockerfile
            with open(secure_join(context, ".dockerignore")) as f:
                ignore = buildcontext.DockerIgnore(f.read())
        except (FileNotFoundError, IsADirectoryError):
            ignore = buildcontext.DockerIgnore()
        except UnicodeDecodeError:
            raise InvalidArgument("cannot read .dockerignore: not UTF-8 text") from None
        await asyncio.to_thread(ignore.apply, context)

        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)

        async def emit(msg: dict) -> None:
            await resp.write(json.dumps(msg).encode() + b"\r\n")

        quiet = query_bool(request, "q")
        b = Build(d, context, text, emit, build_args, query_bool(request, "nocache"), labels, q.get("target") or None,
                  q.get("networkmode") or "default", quiet)
        try:
            img = await b.run()
            await emit({"aux": {"ID": img["Id"]}})
            if quiet:
                await emit({"stream": img["Id"] + "\n"})
            else:
                await emit({"stream": f"Successfully built {img['Id'][7:19]}\n"})
            for t in tags:
                await d.backend.image_tag(img, t)
                d.events.publish("image", "tag", img["Id"], {"name": t})
                if not quiet:
                    await emit({"stream": f"Successfully tagged {t}\n"})
        except CapsizeError as e:
            detail = {"message": e.message}
            if isinstance(e, BuildError) and e.code is not None:
                detail["code"] = e.code
            d.log.info("build failed", error=e.message)
            await emit({"errorDetail": detail, "error": e.message})
        await resp.write_eof()
        return resp
    finally:
        shutil.rmtree(work, ignore_errors=True)


def routes():
    return [("POST", "/build", build)]
