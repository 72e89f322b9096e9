"""Container endpoints (Engine API 1.41, ``/containers/...``).

=========================================  =====================================================
``GET /containers/json``                   list: ``all``, ``limit``, ``size``, ``filters``
                                           (status, name, id, label, exited, ancestor,
                                           before, since); newest first
``POST /containers/create?name=``          201 ``{"Id", "Warnings"}``; 404 unknown image,
                                           409 name conflict, 400 invalid name/config
``GET /containers/{id}/json``              inspect
``POST /containers/{id}/start``            204; 304 when running
``POST /containers/{id}/stop?t=``          204; 304 when not running; 500 no exit event
``POST /containers/{id}/restart?t=``       204
``POST /containers/{id}/kill?signal=``     204; 409 when not running
``POST /containers/{id}/wait?condition=``  200 ``{"StatusCode", "Error"}`` (headers sent at once)
``DELETE /containers/{id}?force=&v=``      204; 409 running without force
``GET /containers/{id}/logs``              multiplexed stream (stdout, stderr, timestamps,
                                           tail, since, until, follow)
``POST /containers/{id}/attach``           hijacked (101 UPGRADED) multiplexed output stream
``GET /containers/{id}/top?ps_args=``      ``{"Titles", "Processes"}``
``POST /containers/{id}/rename?name=``     204
``POST /containers/{id}/pause|unpause``    204; 409 wrong state
=========================================  =====================================================
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from runtime.daemon import detachkeys, logs as logmod, stdin as stdinmod, validate
from runtime.daemon.api import (json_response, multiplexed_response, no_content, query_bool, query_int, read_json,
                                wants_hijack)
from runtime.daemon.clock import parse_api_time
from runtime.daemon.filters import match_labels, parse_filters
from runtime.daemon.stop import parse_signal
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound

LIST_FILTERS = {"status", "name", "id", "label", "exited", "ancestor", "before", "since", "health",
                "isolation", "network", "publish", "expose", "volume", "is-task"}


def _d(request):
    return request.app["daemon"]


def _ref(request) -> str:
    return request.match_info["id"]


async def list_containers(request: web.Request):
    d = _d(request)
    all_ = query_bool(request, "all")
    limit = query_int(request, "limit", -1)
    f = parse_filters(request.query.get("filters"), LIST_FILTERS)
    for s in f.get("status", []):
        if s not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
            raise InvalidArgument(f"Invalid filter 'status={s}'")
    cs = sorted(d.containers.values(), key=lambda c: c.Created, reverse=True)
    if "before" in f:
        b = d.get(f["before"][0])
        cs = [c for c in cs if c.Created < b.Created]
    if "since" in f:
        s = d.get(f["since"][0])
        cs = [c for c in cs if c.Created > s.Created]
    out = []
    for c in cs:
        st = c.State.Status
        if not all_ and not f.get("status") and limit <= 0 and st not in ("running", "paused", "restarting"):
            continue
        if "status" in f and st not in f["status"]:
            continue
        if "id" in f and not any(c.ID.startswith(v) for v in f["id"]):
            continue
        if "name" in f and not any(_name_match(v, c.name) for v in f["name"]):
            continue
        if "label" in f and not match_labels(f["label"], c.labels):
            continue
        if "exited" in f and not (st == "exited" and str(c.State.ExitCode) in f["exited"]):
            continue
        if "ancestor" in f and not any(v in (c.image_ref, c.Image, c.Image[7:19]) or
                                       f"{v}:latest" == c.image_ref for v in f["ancestor"]):
            continue
        out.append(c.summary())
        if limit > 0 and len(out) >= limit:
            break
    return json_response(out)


def _name_match(pattern: str, name: str) -> bool:
    import re
    try:
        return re.search(pattern.lstrip("/"), name) is not None
    except re.error:
        return pattern.lstrip("/") in name


async def create(request: web.Request):
    # 400 with Go's type error for a field of the wrong JSON type (in the parse's thread for a big body)
    body = await read_json(request, allow_empty=False, check=validate.check_create)
    body = validate.drop_nulls(body)
    c = await _d(request).create(body, request.query.get("name") or None)
    return json_response({"Id": c.ID, "Warnings": []}, status=201)


async def inspect(request: web.Request):
    return json_response(_d(request).get(_ref(request)).inspect())


async def start(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    if not await d.start(c):
        return web.Response(status=304)
    return no_content()


def _timeout(request):
    t = query_int(request, "t")
    return t


async def stop(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    if not await d.stop(c, _ref(request), _timeout(request)):
        return web.Response(status=304)
    return no_content()


async def restart(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    await d.restart(c, _ref(request), _timeout(request))
    return no_content()


async def kill(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    sig = parse_signal(request.query.get("signal"))
    await d.kill(c, _ref(request), sig)
    return no_content()


async def wait(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    condition = request.query.get("condition", "")
    if condition not in ("", "not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)   # dockerd sends the headers at once: the client knows it waits
    await resp.write(b"")
    transport = request.transport
    waiter = asyncio.ensure_future(d.wait(c, condition))
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=1.0)
            if not waiter.done() and (transport is None or transport.is_closing()):
                d.log.debug("wait: client disconnected", container=c.ID)
                return resp    # the client went away (docker run/wait interrupted): stop waiting
    finally:
        if not waiter.done():
            waiter.cancel()
    code = waiter.result()
    await resp.write(json.dumps({"Error": None, "StatusCode": code}).encode() + b"\n")
    await resp.write_eof()
    return resp


async def remove(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    await d.remove(c, force=query_bool(request, "force"), volumes=query_bool(request, "v"))
    return no_content()


async def logs(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    follow = query_bool(request, "follow")
    timestamps = query_bool(request, "timestamps")
    tail_raw = request.query.get("tail", "all")
    if tail_raw in ("", "all"):
        tail = None
    else:
        try:
            tail = int(tail_raw)
        except ValueError:
            raise InvalidArgument(f"invalid value for tail: {tail_raw!r}") from None
        if tail < 0:
            tail = None
    since = parse_api_time(request.query["since"], "since") if request.query.get("since") not in (None, "", "0") else 0
    until = parse_api_time(request.query["until"], "until") if request.query.get("until") not in (None, "", "0") else 0
    wanted = {"stdout"} if stdout else set()
    if stderr:
        wanted.add("stderr")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/vnd.docker.raw-stream"
                                                   if c.Config.get("Tty") else "application/vnd.docker.multiplexed-stream"})
    await resp.prepare(request)
    transport = request.transport
    gen = logmod.read_entries(c.LogPath, tail=tail, since_ns=since, until_ns=until, follow=follow,
                              is_running=lambda: (c.State.running or c.State.Status == "restarting")
                              and not c.removed and transport is not None and not transport.is_closing())
    try:
        async for stream, data, ns, text in gen:
            if stream not in wanted:
                continue
            if timestamps:
                data = (logmod.fixed_timestamp(text, ns) + " ").encode() + data
            await resp.write(data if c.Config.get("Tty") else logmod.frame(stream, data))
    finally:
        await gen.aclose()
    return resp


async def attach(request: web.Request):
    """Hijack the connection (``101 UPGRADED``) and stream the container's output, multiplexed.

    Output is read from the json-file log from its current end, so everything the container
    writes after the attach (``docker run`` attaches before it starts) is streamed, until the
    container has stopped and the log is drained. Input (``stdin=1``, a container with
    ``OpenStdin``, hijacked connections only): what the client sends after the upgrade goes to
    the container's stdin FIFO (:mod:`runtime.daemon.stdin`); its end (the client's half-close)
    closes the container's stdin when the container has ``StdinOnce`` (``docker run -i``).
    A TTY container's output is the raw stream (``application/vnd.docker.raw-stream``, no
    frames). The detach keys (``detachKeys``, default ctrl-p ctrl-q: :mod:`runtime.daemon.detachkeys`)
    typed on the input end the attach; the container goes on, its stdin stays open.
    """
    d = _d(request)
    c = d.get(_ref(request))
    detach_seq = detachkeys.parse(request.query.get("detachKeys", ""))
    tty = bool(c.Config.get("Tty"))
    stream = query_bool(request, "stream")
    d.log.debug("attach", query=dict(request.query), headers=dict(request.headers))
    want = set()
    if query_bool(request, "stdout"):
        want.add("stdout")
    if query_bool(request, "stderr"):
        want.add("stderr")
    upgrade = wants_hijack(request)
    resp = multiplexed_response(upgrade, raw=tty)
    await resp.prepare(request)
    d.events.publish("container", "attach", c.ID, c.event_attributes(), image=c.image_ref)
    transport = request.transport
    pump = None
    if upgrade and query_bool(request, "stdin") and c.Config.get("OpenStdin") and transport is not None:
        reader = stdinmod.Reader()
        request.protocol.set_parser(reader)
        stdinmod.open_fifo(c, d.config.exec_root)
        pump = asyncio.get_running_loop().create_task(
            _pump_stdin(c, reader, detachkeys.Scanner(detach_seq), transport.close))
    try:
        logf = open(c.LogPath, "rb")   # before the start: the log exists from the create on
        logf.seek(0, 2)
    except OSError:
        logf = None

    def send(data: bytes):
        if upgrade:
            if transport is None or transport.is_closing():
                raise ConnectionResetError()
            transport.write(data)
            return asyncio.sleep(0)
        return resp.write(data)

    if stream and want and logf is not None:
        loop = asyncio.get_running_loop()
        started, exits0 = loop.time(), c.exits

        def alive():
            if c.removed or c.exits > exits0 or transport is None or transport.is_closing():
                return False
            if c.State.running or c.State.Status == "restarting":
                return True
            return loop.time() - started < 60   # not started yet (docker run attaches first)

        gen = _follow(logf, alive, lambda: c.changed)
        try:
            async for st, data in gen:
                if st in want:
                    await send(data if tty else logmod.frame(st, data))
        except ConnectionResetError:
            pass
        finally:
            await gen.aclose()
    if logf is not None:
        logf.close()
    if pump is not None:
        pump.cancel()
    if upgrade:
        resp.force_close()
        if transport is not None:
            transport.close()
    return resp


async def _pump_stdin(c, reader, scanner, detach) -> None:
    """Copy a hijacked attach's input to the container's stdin until it ends, or until the detach
    keys (*scanner*) were typed: then ``detach()`` (see attach)."""
    def alive():
        return not c.removed and (c.State.running or c.State.Status in ("created", "restarting"))
    while True:
        data = await reader.queue.get()
        if data is None:
            stdinmod.input_ended(c)
            return
        data, detached = scanner.feed(data)
        if data and not await stdinmod.write(c, data, alive):
            return
        if detached:
            detach()
            return


async def _follow(f, alive, changed):
    """(stream, data) of the entries appended to open log *f*, following while ``alive()``; wakes
    up on new data (polled) or at once when the container's state changes (``changed()``)."""
    pending = b""
    while True:
        running = alive()
        chunk = f.read(65536)
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    e = json.loads(line)
                    yield e.get("stream", "stdout"), e.get("log", "").encode()
                except ValueError:
                    continue
            continue
        if not running:
            return
        try:
            await asyncio.wait_for(changed().wait(), logmod.FOLLOW_POLL)
        except asyncio.TimeoutError:
            pass


async def top(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    return json_response(await d.top(c, request.query.get("ps_args", "")))


async def rename(request: web.Request):
    d = _d(request)
    c = d.get(_ref(request))
    await d.rename(c, request.query.get("name", ""))
    return no_content()


async def pause(request: web.Request):
    d = _d(request)
    await d.pause(d.get(_ref(request)))
    return no_content()


async def unpause(request: web.Request):
    d = _d(request)
    await d.unpause(d.get(_ref(request)))
    return no_content()


async def resize(request: web.Request):
    """``POST /containers/{id}/resize?h=&w=``: the TTY's size (TIOCSWINSZ in the shim); 200.
    400 bad sizes; 409 a container that is not running (dockerd: "is not running"), or that
    has no TTY (dockerd 20.10 answers 500 there; a client's mistake is 409 here)."""
    d = _d(request)
    c = d.get(_ref(request))
    h, w = query_int(request, "h", 0), query_int(request, "w", 0)
    if not (0 <= h <= 0xFFFF and 0 <= w <= 0xFFFF):
        raise InvalidArgument("invalid resize: height and width must be 0-65535")
    if not c.State.running:
        raise FailedPrecondition(f"Container {c.ID} is not running")
    if not c.Config.get("Tty"):
        raise FailedPrecondition(f"Container {c.ID} has no TTY to resize")
    await d.backend.resize(c.ID, h, w)
    d.events.publish("container", "resize", c.ID, c.event_attributes(height=str(h), width=str(w)),
                     image=c.image_ref)
    return web.Response(status=200)


def routes():
    p = "/containers/{id}"
    return [("GET", "/containers/json", list_containers), ("POST", "/containers/create", create),
            ("GET", p + "/json", inspect), ("POST", p + "/start", start), ("POST", p + "/stop", stop),
            ("POST", p + "/restart", restart), ("POST", p + "/kill", kill), ("POST", p + "/wait", wait),
            ("DELETE", p, remove), ("GET", p + "/logs", logs), ("POST", p + "/attach", attach),
            ("GET", p + "/top", top), ("POST", p + "/rename", rename), ("POST", p + "/pause", pause),
            ("POST", p + "/unpause", unpause), ("POST", p + "/resize", resize)]
