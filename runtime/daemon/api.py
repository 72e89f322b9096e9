"""Request and response helpers shared by the route modules (Engine API conventions).

* Errors: a :class:`runtime.errors.CapsizeError` raised by a handler becomes
  ``{"message": "<text>"}`` with its HTTP status (400 invalid, 404 not found, 409 conflict, 503
  runtime unavailable, 504 deadline, 501 unimplemented, 500 internal) — see :mod:`runtime.daemon.server`.
* :func:`query_bool` follows dockerd's ``httputils.BoolValue``: empty, ``0``, ``no``,
  ``false``, ``none`` are false, anything else true.
* :func:`query_int` raises InvalidArgument (400) for a non-integer.
* :func:`read_json` reads a JSON object body, bounded in size (413) and depth (400); malformed
  JSON is a 400 with dockerd's wording; a large body is parsed off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import web

from runtime import jsonfast
from runtime.errors import InvalidArgument, RequestTooLarge


def json_response(obj, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(obj).encode(), content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


def wants_hijack(request: web.Request) -> bool:
    """The client asked to take the connection over (``Upgrade: tcp``), as the docker CLI does for
    attach and exec start (Engine API, "Hijacking")."""
    return request.headers.get("Upgrade", "").lower() == "tcp"


def multiplexed_response(hijack: bool, raw: bool = False) -> web.StreamResponse:
    """The response carrying Docker's multiplexed stdout/stderr stream (Content-Type
    ``application/vnd.docker.multiplexed-stream``), or with *raw* (a TTY: one stream, unframed)
    ``application/vnd.docker.raw-stream``: ``101 UPGRADED`` with ``Connection: Upgrade`` and
    ``Upgrade: tcp`` for a hijacked connection, else a streamed ``200``."""
    headers = {"Content-Type": "application/vnd.docker.raw-stream" if raw
               else "application/vnd.docker.multiplexed-stream"}
    if hijack:
        headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        return web.StreamResponse(status=101, reason="UPGRADED", headers=headers)
    return web.StreamResponse(status=200, headers=headers)


def query_bool(request: web.Request, key: str, default: bool = False) -> bool:
    if key not in request.query:
        return default
    v = request.query.get(key, "").strip().lower()
    return not (v in ("", "0", "no", "false", "none"))


def query_int(request: web.Request, key: str, default: int | None = None) -> int | None:
    v = request.query.get(key)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key}: {v!r} is not an integer") from None


#: The largest JSON request body capsized reads (bytes): 16 MiB, far above any create request
#: (100,000 ``Env`` entries are about 1 MiB); bigger is a 413. dockerd sets no bound of its own.
MAX_JSON_BODY = jsonfast.JSON_LIMIT
#: Bodies at least this big are parsed and checked in a worker thread, off the event loop.
THREAD_THRESHOLD = jsonfast.THREAD_THRESHOLD


async def spool_body(request: web.Request, path: str) -> None:
    """Write the request body (any length, in 64 KiB chunks) to a new file *path*; on any
    failure, the client going away included, the file is removed and the error raised."""
    try:
        with open(path, "xb") as f:
            async for chunk in request.content.iter_chunked(1 << 16):
                f.write(chunk)
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise


async def read_body(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request's body, refusing one over *limit* bytes with RequestTooLarge (413) as soon as
    its ``Content-Length`` or the bytes received say so (never buffering more than *limit*)."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"request body of {request.content_length} bytes is larger than the "
                              f"limit of {limit} bytes")
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
    return bytes(buf)


def parse_json(raw: bytes, allow_empty: bool = True, check=None) -> dict:
    """*raw* as a JSON object (see :func:`read_json`), then ``check(obj)`` when given."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("invalid JSON: request body is empty")
    try:
        data = jsonfast.loads_bounded(raw)
    except jsonfast.DepthExceeded as e:
        raise InvalidArgument(str(e)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid character in JSON body: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    if check is not None:
        check(data)
    return data


async def read_json(request: web.Request, allow_empty: bool = True, check=None) -> dict:
    """The JSON object in the request's body: at most :data:`MAX_JSON_BODY` bytes (413 past it),
    nested at most :data:`runtime.jsonfast.MAX_DEPTH` levels (400 ``invalid character '['
    exceeded max depth``, Go's words), malformed JSON a 400. *check* (a function of the object,
    raising InvalidArgument) runs with the parse; a body of :data:`THREAD_THRESHOLD` bytes or
    more is parsed and checked in a worker thread, so that a large request never holds the event
    loop (other clients, ``/_ping``) for longer than a small one."""
    raw = await read_body(request)
    if len(raw) >= THREAD_THRESHOLD:
        return await asyncio.to_thread(parse_json, raw, allow_empty, check)
    return parse_json(raw, allow_empty, check)


async def tar_file_response(request: web.Request, path: str) -> web.StreamResponse:
    """Send the tar file at *path* as a 200 ``application/x-tar`` stream (docker save, export)."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    await resp.prepare(request)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            await resp.write(chunk)
    return resp
