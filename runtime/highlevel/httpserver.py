"""A small HTTP/1.1 server on a unix socket: asyncio for the I/O, h11 for the protocol.

h11 (the sans-IO HTTP/1.1 implementation used by httpcore and uvicorn) parses requests and
frames responses (Content-Length, or chunked for streams) and keep-alive; this module adds
routing, JSON bodies, errors and streams. It exists instead of aiohttp because importing
``aiohttp.web`` alone takes about 0.18 s on the lab's machines, as long as containerd takes to
come back with 50 tasks, and the daemon's restart time is what the lab measures.

Handlers are ``async def handler(request, **path_params)`` and return a JSON-able object (200),
a :class:`Response`, a :class:`StreamResponse` (an async iterator of ``bytes``, sent chunked;
it is cancelled when the client goes away) or a :class:`FileResponse`. A
:class:`~runtime.errors.CapsizeError` becomes ``{"code", "message", ...}`` with the class's
HTTP status; any other exception is logged with its traceback and answered 500. Unknown paths
are 404, malformed HTTP is 400, a request head over 64 KiB 431 (and the connection is closed); a
JSON body is at most :data:`runtime.jsonfast.JSON_LIMIT` bytes (413) and
:data:`runtime.jsonfast.MAX_DEPTH` deep (400), parsed in a thread from
:data:`runtime.jsonfast.THREAD_THRESHOLD` bytes. A request body the handler did not read is
drained (up to :data:`DRAIN_LIMIT` bytes) before the next request on the connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import traceback
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

import h11

from runtime import jsonfast
from runtime.api import LISTEN_BACKLOG
from runtime.jsonfast import JSON_LIMIT, THREAD_THRESHOLD
from runtime.errors import CapsizeError, InvalidArgument, NotFound, RequestTooLarge, http_status_for

DRAIN_LIMIT = 64 << 20
READ_SIZE = 1 << 16


class Response:
    def __init__(self, body=None, status: int = 200, content_type: str = "application/json",
                 headers: list | None = None):
        if content_type == "application/json" and not isinstance(body, (bytes, bytearray)):
            body = (json.dumps(body, separators=(",", ":"), default=str) + "\n").encode()
        self.status, self.body, self.content_type = status, bytes(body or b""), content_type
        self.headers = headers or []


class StreamResponse:
    def __init__(self, source, content_type: str = "application/x-ndjson", status: int = 200,
                 on_close=None, headers: list | None = None):
        self.source, self.content_type, self.status = source, content_type, status
        self.on_close, self.headers = on_close, headers or []


class FileResponse:
    """A file sent with its length; *on_close* runs afterwards (e.g. to delete a temporary file)."""

    def __init__(self, path: str, content_type: str = "application/octet-stream", on_close=None,
                 headers: list | None = None):
        self.path, self.content_type, self.on_close, self.headers = path, content_type, on_close, headers or []


class Request:
    """One request: ``method``, ``path`` (decoded), ``query`` (name -> [values]), ``headers``
    (lower-case names), and the body through :meth:`body`, :meth:`json` or :meth:`chunks`."""

    def __init__(self, event: h11.Request, conn: "_Conn"):
        self.method = event.method.decode()
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        self.raw_segments = [s for s in raw_path.split("/") if s]
        self.path = unquote(raw_path)
        self.query = parse_qs(raw_query, keep_blank_values=True)
        self.headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        self._conn = conn
        self.body_done = False

    def arg(self, name: str, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name) or [])

    def flag(self, name: str) -> bool:
        value = self.arg(name, "")
        return value.lower() in ("1", "true", "yes", "on") or (value == "" and name in self.query)

    async def chunks(self):
        """The body, chunk by chunk (each ``bytes``)."""
        while not self.body_done:
            event = await self._conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.body_done = True
            else:
                raise InvalidArgument("malformed request body")

    def content_length(self) -> int | None:
        try:
            return int(self.headers["content-length"])
        except (KeyError, ValueError):
            return None

    async def body(self, limit: int = JSON_LIMIT) -> bytes:
        if (self.content_length() or 0) > limit:   # refused before waiting for bytes that may never come
            raise RequestTooLarge(f"request body of {self.content_length()} bytes larger than {limit} bytes")
        parts, size = [], 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def json(self, default=None):
        """The body as JSON (*default*, or ``{}``, when empty); InvalidArgument when malformed."""
        data = await self.body()
        if not data.strip():
            return {} if default is None else default
        try:
            if len(data) >= THREAD_THRESHOLD:   # a large document is parsed off the event loop
                return await asyncio.to_thread(jsonfast.loads_bounded, data)
            return jsonfast.loads_bounded(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"malformed JSON in request body: {e}") from None


class Router:
    """Routes ``(method, "/v1/things/{name}")`` to handlers; ``{x}`` matches one path segment
    (percent-decoded, so ``%2F`` can carry a slash)."""

    def __init__(self):
        self.routes: list[tuple[str, list[str], object]] = []

    def add(self, method: str, pattern: str, handler) -> None:
        self.routes.append((method, [s for s in pattern.split("/") if s], handler))

    def match(self, method: str, segments: list[str]):
        allowed = False
        for m, parts, handler in self.routes:
            if len(parts) != len(segments):
                continue
            params = {}
            for p, s in zip(parts, segments):
                if p.startswith("{") and p.endswith("}"):
                    params[p[1:-1]] = unquote(s)
                elif p != s:
                    break
            else:
                if m == method:
                    return handler, params
                allowed = True
        path = "/" + "/".join(segments)
        if allowed:
            raise NotFound(f"no {method} on {path}", method=method, path=path)
        raise NotFound(f"no such endpoint: {method} {path}", method=method, path=path)


class _Conn:
    def __init__(self, server: "HTTPServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 << 10)

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(READ_SIZE)
                self.h11.receive_data(data)
                continue
            return event

    def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)

    async def serve(self) -> None:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.ConnectionClosed) or not isinstance(event, h11.Request):
                return
            req = Request(event, self)
            t0 = time.monotonic()
            resp = await self.server.dispatch(req)
            if self.h11.their_state is h11.SEND_BODY:
                if not await self._drain(req):
                    resp.headers = list(resp.headers) + [("connection", "close")]
            status = await self._respond(resp)
            self.server.log.debug("api request", method=req.method, path=req.path, status=status,
                                  seconds=round(time.monotonic() - t0, 4))
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _drain(self, req: Request) -> bool:
        if (req.content_length() or 0) > DRAIN_LIMIT:
            return False     # not worth reading: the connection closes after the answer
        size = 0
        try:
            async for chunk in req.chunks():
                size += len(chunk)
                if size > DRAIN_LIMIT:
                    return False
        except (CapsizeError, h11.RemoteProtocolError):
            return False
        return True

    def _head(self, status: int, content_type: str, extra: list, length: int | None) -> None:
        headers = [("content-type", content_type), ("server", "capsize-runtimed")] + list(extra)
        if length is not None:
            headers.append(("content-length", str(length)))
        self.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))

    async def _respond(self, resp) -> int:
        if isinstance(resp, Response):
            self._head(resp.status, resp.content_type, resp.headers, len(resp.body))
            self.send(h11.Data(data=resp.body))
            self.send(h11.EndOfMessage())
            await self.writer.drain()
            return resp.status
        if isinstance(resp, FileResponse):
            try:
                with open(resp.path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    self._head(200, resp.content_type, resp.headers, size)
                    while True:
                        chunk = f.read(READ_SIZE * 4)
                        if not chunk:
                            break
                        self.send(h11.Data(data=chunk))
                        await self.writer.drain()
                self.send(h11.EndOfMessage())
                await self.writer.drain()
            finally:
                if resp.on_close:
                    resp.on_close()
            return 200
        return await self._stream(resp)

    async def _stream(self, resp: StreamResponse) -> int:
        self._head(resp.status, resp.content_type, resp.headers, None)
        await self.writer.drain()
        source = resp.source.__aiter__()
        gone = asyncio.ensure_future(self.reader.read(READ_SIZE))
        nxt = None
        try:
            while True:
                if nxt is None:
                    nxt = asyncio.ensure_future(source.__anext__())
                done, _ = await asyncio.wait({nxt, gone}, return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    data = gone.result()
                    if not data:
                        raise _ClientGone()
                    self.h11.receive_data(data)
                    gone = asyncio.ensure_future(self.reader.read(READ_SIZE))
                if nxt in done:
                    try:
                        chunk = nxt.result()
                    except StopAsyncIteration:
                        break
                    nxt = None
                    self.send(h11.Data(data=chunk))
                    await self.writer.drain()
            self.send(h11.EndOfMessage())
            await self.writer.drain()
            return resp.status
        finally:
            for fut in (nxt, gone):
                if fut is not None and not fut.done():
                    fut.cancel()
            if resp.on_close:
                resp.on_close()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _ClientGone(Exception):
    """The client of a stream closed its connection."""


class HTTPServer:
    """Serves *router* on a unix socket (see the module docstring)."""

    def __init__(self, router: Router, log):
        self.router, self.log = router, log
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.path = ""

    async def start(self, path: str, mode: int = 0o660) -> None:
        """Listen on *path* (a stale socket file is replaced), created with *mode*."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o777 & ~mode)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, mode)
        sock.listen(LISTEN_BACKLOG)
        self.path = path
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=1 << 20,
                                                       backlog=LISTEN_BACKLOG)   # not asyncio's 100

    async def _serve(self, reader, writer) -> None:
        self._writers.add(writer)
        conn = _Conn(self, reader, writer)
        try:
            await conn.serve()
        except _ClientGone:
            pass
        except h11.RemoteProtocolError as e:
            try:
                if conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    # h11's hint: 431 for a request head over max_incomplete_event_size, else 400
                    body = Response(InvalidArgument(f"malformed HTTP request: {e}").to_dict(),
                                    getattr(e, "error_status_hint", 400), headers=[("connection", "close")])
                    await conn._respond(body)
            except (h11.LocalProtocolError, OSError):
                pass
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def dispatch(self, req: Request):
        try:
            handler, params = self.router.match(req.method, req.raw_segments)
            result = await handler(req, **params)
        except CapsizeError as e:
            return Response(e.to_dict(), http_status_for(e))
        except (asyncio.CancelledError, h11.RemoteProtocolError):
            raise
        except Exception as e:  # noqa: BLE001 - a bug: log it, answer 500, keep serving
            self.log.error("internal error", method=req.method, path=req.path, error=repr(e),
                           traceback=traceback.format_exc(limit=8))
            return Response({"code": "internal", "message": f"internal error: {e}"}, 500)
        if isinstance(result, (Response, StreamResponse, FileResponse)):
            return result
        return Response(result)

    async def close(self) -> None:
        """Stop listening, close every connection and remove the socket file."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            self._server = None
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
