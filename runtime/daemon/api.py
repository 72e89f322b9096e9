"""Request and response helpers shared by the route modules (Engine API conventions).

* Errors: a :class:`runtime.errors.CapsizeError` raised by a handler becomes
  ``{"message": "<text>"}`` with its HTTP status (400 invalid, 404 not found, 409 conflict, 503
  runtime unavailable, 504 deadline, 501 unimplemented, 500 internal) — see :mod:`runtime.daemon.server`.
* :func:`query_bool` follows dockerd's ``httputils.BoolValue``: empty, ``0``, ``no``,
  ``false``, ``none`` are false, anything else true.
* :func:`query_int` raises InvalidArgument (400) for a non-integer.
* :func:`read_json` reads a JSON object body; malformed JSON is a 400 with dockerd's wording.
"""

from __future__ import annotations

import json

from aiohttp import web

from runtime.errors import InvalidArgument


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


async def read_json(request: web.Request, allow_empty: bool = True) -> dict:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("invalid JSON: request body is empty")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid character in JSON body: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    return data


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
