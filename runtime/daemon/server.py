"""The aiohttp application and the daemon's process: listeners, pidfile, sd_notify, shutdown.

* Routes are registered twice, unversioned (``/containers/json``) and versioned
  (``/v1.41/containers/json``); a version above 1.41 is a 400 ``client version X is too new.
  Maximum supported API version is 1.41``, below 1.12 a 400 ``... is too old ...``.
* Every error is Docker's JSON body ``{"message": ...}``: CapsizeError subclasses map to their
  HTTP status (:mod:`runtime.errors`), an Engine API endpoint capsized lacks is 501 (see
  :mod:`runtime.daemon.unimplemented`), an unknown path is 404 ``page not found``, anything
  unexpected is a 500 (and logged with its traceback, never sent to the client).
* Limits: request line and headers (:data:`MAX_HEADER_BYTES`, :data:`MAX_HEADERS`: Go's 431
  past them), JSON bodies (:func:`runtime.daemon.api.read_json`: size 413, depth 400).
* A client that disconnects mid-stream (``ConnectionError`` while writing) is logged at debug
  level only: no traceback.
* Listeners: ``unix://PATH`` (mode 0660, group ``--group`` when it exists; a stale socket file
  is replaced, a live one refuses the start) and ``fd://`` (the sockets systemd passes,
  ``LISTEN_FDS``; none is an error, as dockerd's ``no sockets found via socket activation``).
* ``--pidfile``: refused when it names a live process (dockerd's ``pid file found, ensure
  docker is not running or delete PATH``); removed at exit.
* ``READY=1`` goes to systemd (``NOTIFY_SOCKET``) once the API serves; ``STOPPING=1`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import re
import signal
import socket
import stat
import traceback

from aiohttp import web, web_protocol

from runtime import atomicfile
from runtime.api import LISTEN_BACKLOG
from runtime.daemon import routes_containers, routes_exec, routes_images, routes_system, unimplemented
from runtime.daemon import routes_build, routes_commit, routes_inside, routes_networks, routes_registry, routes_volumes
from runtime.daemon.log import Logger
from runtime.errors import CapsizeError, FailedPrecondition, InvalidArgument, RequestTooLarge, Unavailable
from runtime.host import HOST

def loop_time() -> float:
    return asyncio.get_running_loop().time()


_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")


def _vtuple(v: str):
    m = _VERSION_RE.match(v)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode() + b"\n",
                        content_type="application/json")


def _keep_half_open(self) -> bool:
    """A client that shuts down its sending side (the docker CLI does, right after hijacking an
    attach without stdin) still reads the answer: keep the transport open (asyncio closes it
    when ``eof_received`` returns a false value, which aiohttp's does). A hijacked attach with
    stdin reads the half-close as the end of the container's input (its parser ``wants_eof``)."""
    parser = getattr(self, "_payload_parser", None)
    if parser is not None and getattr(parser, "wants_eof", False):
        parser.feed_eof()
    return True


web_protocol.RequestHandler.eof_received = _keep_half_open

#: Request line and each header's bound (bytes): Go's ``http.DefaultMaxHeaderBytes`` (1 MiB), what
#: dockerd serves with; past it the answer is Go's ``431 Request Header Fields Too Large``.
MAX_HEADER_BYTES = 1 << 20
#: How long a body the handler did not read (a 413's) is drained before the connection is closed.
LINGER_SECONDS = 1.0
#: How many header fields a request may carry (aiohttp counts them; Go bounds their total size).
MAX_HEADERS = 256


def _parse_error(self, request, status: int = 500, exc: BaseException | None = None, message=None):
    """A request aiohttp could not parse answers as Go's net/http does, in plain text, and is
    never logged with a traceback: ``431 Request Header Fields Too Large`` for a request line or
    header over :data:`MAX_HEADER_BYTES` (or more than :data:`MAX_HEADERS` fields), ``400 Bad
    Request`` for any other malformed request. Other errors keep aiohttp's own handling."""
    from aiohttp import http_exceptions
    if not isinstance(exc, http_exceptions.HttpProcessingError) or request.writer.output_size > 0:
        return _aiohttp_handle_error(self, request, status, exc, message)
    too_large = isinstance(exc, http_exceptions.LineTooLong) or "Too many headers" in str(exc)
    text = "431 Request Header Fields Too Large" if too_large else "400 Bad Request"
    resp = web.Response(status=431 if too_large else 400, text=text, content_type="text/plain")
    resp.force_close()
    return resp


_aiohttp_handle_error = web_protocol.RequestHandler.handle_error
web_protocol.RequestHandler.handle_error = _parse_error


def make_app(daemon, log: Logger) -> web.Application:
    @web.middleware
    async def middleware(request: web.Request, handler):
        version = request.match_info.get("version")
        if version is not None:
            v = _vtuple(version)
            if v is None:
                return _error(400, f"invalid API version {version!r}")
            if v > _vtuple(routes_system.API_VERSION):
                return _error(400, f"client version {version} is too new. Maximum supported API version "
                                   f"is {routes_system.API_VERSION}")
            if v < _vtuple(routes_system.MIN_API_VERSION):
                return _error(400, f"client version {version} is too old. Minimum supported API version is "
                                   f"{routes_system.MIN_API_VERSION}, please upgrade your client to a newer version")
        t0 = loop_time()
        try:
            resp = await handler(request)
            log.debug("api request", method=request.method, path=request.path,
                      seconds=round(loop_time() - t0, 4))
        except web.HTTPException as e:
            if e.status == 404:
                return _error(404, "page not found")
            if e.status == 405:
                return _error(405, f"method {request.method} not allowed for {request.path}")
            return _error(e.status, e.reason)
        except CapsizeError as e:
            log.log("debug" if e.http_status < 500 else "error", "handler returned error",
                    method=request.method, path=request.path, status=e.http_status, error=e.message)
            resp = _error(e.http_status, e.message)
            if isinstance(e, RequestTooLarge):
                resp.force_close()   # the rest of the body is not read: the connection ends (LINGER_SECONDS)
            return resp
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug: logged, answered as a 500, never a traceback
            if isinstance(e, ConnectionError) and (request.transport is None or request.transport.is_closing()):
                # the client went away mid-stream (docker wait/run/logs -f/events/attach interrupted):
                # nothing to answer; aiohttp's attempt to send this response fails quietly
                log.debug("client disconnected", method=request.method, path=request.path, error=repr(e))
                return web.Response(status=499)
            log.error("internal error", method=request.method, path=request.path, error=repr(e),
                      traceback=traceback.format_exc())
            return _error(500, f"internal error: {e}")
        if not resp.prepared:
            resp.headers.setdefault("Api-Version", routes_system.API_VERSION)
            resp.headers.setdefault("Server", "capsize/0.1.0 (linux)")
            resp.headers.setdefault("Ostype", "linux")
        return resp

    app = web.Application(middlewares=[middleware], client_max_size=1 << 40)
    app["daemon"] = daemon
    implemented = (routes_system.routes() + routes_containers.routes() + routes_exec.routes()
                   + routes_images.routes())
    implemented += routes_volumes.routes() + routes_registry.routes() + routes_networks.routes()
    implemented += routes_commit.routes() + routes_build.routes() + routes_inside.routes()
    # the Engine API's other endpoints answer 501 (registered last: an implemented route wins)
    for method, path, handler in implemented + unimplemented.routes(implemented):
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/v{version}" + path, handler)
    return app


# -- listeners ----------------------------------------------------------------------------------

def _unix_listener(path: str, group: str | None) -> socket.socket:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(path)
                raise FailedPrecondition(f"{path} is in use by a running daemon")
            except (ConnectionRefusedError, FileNotFoundError, socket.timeout):
                pass
            finally:
                probe.close()
        else:
            raise FailedPrecondition(f"{path} exists and is not a socket")
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            gid = -1
    os.chmod(path, 0o660)
    if gid >= 0:
        HOST.chown(path, 0, gid)
    s.listen(LISTEN_BACKLOG)
    s.setblocking(False)
    return s


def _fd_listeners(spec: str) -> list[socket.socket]:
    from systemd.daemon import listen_fds
    fds = listen_fds()
    if not fds:
        raise Unavailable("failed to load listeners: no sockets found via socket activation: make sure the "
                          "service was started by systemd")
    out = []
    for fd in fds:
        s = socket.socket(fileno=fd)
        s.setblocking(False)
        out.append(s)
    return out


def open_listeners(hosts: list[str], group: str | None) -> tuple[list[socket.socket], list[str]]:
    """Sockets for every ``-H`` (``unix://PATH``, ``fd://``); returns (sockets, unix paths made)."""
    socks, paths = [], []
    try:
        for h in hosts:
            if h.startswith("unix://"):
                path = h[len("unix://"):]
                socks.append(_unix_listener(path, group))
                paths.append(os.path.abspath(path))
            elif h.startswith("fd://"):
                socks.extend(_fd_listeners(h))
            else:
                raise InvalidArgument(f"unsupported -H {h!r}: use unix://PATH or fd://")
    except BaseException:
        for s in socks:
            s.close()
        for p in paths:
            _unlink(p)
        raise
    return socks, paths


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- pidfile ------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def write_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            old = int(f.read().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid() and _alive(old):
        raise FailedPrecondition(f"pid file found, ensure capsized is not running or delete {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomicfile.write(path, f"{os.getpid()}\n", durable=False)


def sd_notify(state: str) -> None:
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    try:
        from systemd.daemon import notify
        notify(state)
    except Exception:  # noqa: BLE001
        pass


# -- the process --------------------------------------------------------------------------------

async def serve(config, log: Logger) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit status."""
    from runtime.daemon.daemon import Daemon
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.pidfile:
        write_pidfile(config.pidfile)
    paths: list[str] = []
    runner = None
    daemon = Daemon(config, log)
    try:
        socks, paths = open_listeners(config.hosts, config.group)
        await daemon.boot()
        app = make_app(daemon, log)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                               max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES,
                               max_headers=MAX_HEADERS, lingering_time=LINGER_SECONDS)
        await runner.setup()
        for s in socks:
            await web.SockSite(runner, s, backlog=LISTEN_BACKLOG).start()   # not aiohttp's 128
        for h in config.hosts:
            log.info("API listen on " + (h[len("unix://"):] if h.startswith("unix://") else h))
        sd_notify("READY=1")
        await stop.wait()
        log.info("Processing signal 'terminated'")
        sd_notify("STOPPING=1")
        await daemon.shutdown()
        return 0
    finally:
        if runner is not None:
            try:
                await asyncio.wait_for(runner.cleanup(), 3.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        await daemon.close()
        for p in paths:
            _unlink(p)
        if config.pidfile:
            _unlink(config.pidfile)
        log.info("Daemon shutdown complete")
