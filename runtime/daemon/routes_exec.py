"""The Engine API's exec endpoints (``docker exec``), after dockerd's api/server/router/container
exec routes; the exec instances themselves are :mod:`runtime.daemon.execs`.

======================================  ==========================================================
``POST /containers/{id}/exec``          body ``ExecConfig`` (``Cmd``, ``AttachStdin``,
                                        ``AttachStdout``, ``AttachStderr``, ``Env``, ``User``,
                                        ``WorkingDir``, ``DetachKeys``); ``201 {"Id"}``; 409 when
                                        the container is not running or is paused
``POST /exec/{id}/start``               body ``{"Detach", "Tty"}``. Detached: ``200``, empty, the
                                        process's stdio is /dev/null. Attached: the connection is
                                        hijacked (``101 UPGRADED`` with ``Upgrade: tcp``, as the
                                        CLI asks; else a ``200`` stream) and carries the
                                        multiplexed stdout/stderr stream (``application/vnd.docker.
                                        multiplexed-stream``); what the client sends goes to the
                                        process's stdin (``AttachStdin``), its half-close closes
                                        it. The stream ends after the exit (see
                                        :data:`runtime.daemon.execs.STREAM_GRACE`). A failed start
                                        writes the runtime's error on stdout, as dockerd does
``GET /exec/{id}/json``                 ``ExecInspectResponse``
``POST /exec/{id}/resize?h=&w=``        ``200`` for a running exec (its terminal resized:
                                        TIOCSWINSZ in the shim; no terminal: nothing to
                                        resize); 409 once it is not running; 400 bad sizes

An exec with ``Tty`` streams its terminal's output raw (``application/vnd.docker.raw-stream``).
Its ``DetachKeys`` (default ctrl-p ctrl-q) typed on the input end the attached start; the
process goes on.
======================================  ==========================================================
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from runtime.daemon import logs as logmod
from runtime.daemon import stdin as stdinmod
from runtime.daemon.api import json_response, multiplexed_response, query_int, read_json, wants_hijack
from runtime.daemon.execs import EXIT_WAIT, STREAM_GRACE
from runtime.errors import CapsizeError, FailedPrecondition


#: seconds a resize waits for its exec to start (dockerd's 10 s)
RESIZE_START_WAIT = 10.0


def _d(request: web.Request):
    return request.app["daemon"]


async def create(request: web.Request):
    d = _d(request)
    c = d.get(request.match_info["id"])
    body = await read_json(request)
    ex = d.execs.create(c, body)
    return json_response({"Id": ex.ID}, status=201)


async def inspect(request: web.Request):
    return json_response(_d(request).execs.get(request.match_info["id"]).inspect())


async def resize(request: web.Request):
    d = _d(request)
    ex = d.execs.get(request.match_info["id"])
    h, w = query_int(request, "h", 0), query_int(request, "w", 0)
    if h < 0 or w < 0:
        from runtime.errors import InvalidArgument
        raise InvalidArgument("invalid resize: height and width must be >= 0")
    if not ex.began.is_set():   # dockerd waits up to 10 s for the start (ContainerExecResize)
        try:
            await asyncio.wait_for(ex.began.wait(), RESIZE_START_WAIT)
        except asyncio.TimeoutError:
            pass
    if not ex.running:
        raise FailedPrecondition(f"exec {ex.ID} is not running")
    if ex.tty:
        await d.backend.resize(ex.container.ID, h, w, ex.ID)
    return web.Response(status=200)


async def start(request: web.Request):
    d = _d(request)
    ex = d.execs.get(request.match_info["id"])
    body = await read_json(request)   # {"Detach", "Tty"}: the exec's own Tty counts, as dockerd's
    if body.get("Detach"):
        await d.execs.start(ex, detach=True)
        return web.Response(status=200)
    upgrade = wants_hijack(request)
    d.execs.check_start(ex)   # the errors that come before the hijack answer as ordinary replies
    resp = multiplexed_response(upgrade, raw=ex.tty)
    await resp.prepare(request)
    transport = request.transport
    reader = None
    if upgrade and ex.open_stdin and transport is not None:
        reader = stdinmod.Reader()
        request.protocol.set_parser(reader)

    detached = asyncio.Event()

    def detach() -> None:
        detached.set()
        transport.close()

    async def send(data: bytes) -> None:
        if detached.is_set():
            return   # detached: the output is still read and dropped, as dockerd does
        if upgrade:
            if transport is None or transport.is_closing():
                raise ConnectionResetError()
            transport.write(data)
            await asyncio.sleep(0)
        else:
            await resp.write(data)

    try:
        try:
            streams = await d.execs.start(ex, detach=False)
        except CapsizeError as e:
            text = f"OCI runtime exec failed: {e.message}\r\n".encode()
            await send(text if ex.tty else logmod.frame("stdout", text))
            return resp
        from runtime.daemon.detachkeys import Scanner
        pump = asyncio.get_running_loop().create_task(
            _pump_stdin(streams, reader, Scanner(ex.detach_sequence), detach)) if reader else None
        # the copy owns the streams: after a detach it goes on (dropping the output) until the
        # exit plus the grace, so the process never meets a closed FIFO (SIGPIPE, a stalled pty)
        copy = d.spawn(_copy_then_close(ex, streams, send))
        gone = asyncio.ensure_future(detached.wait())
        try:
            await asyncio.wait({copy, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if pump is not None:
                pump.cancel()
        try:
            if not detached.is_set() and (transport is None or not transport.is_closing()):
                await asyncio.wait_for(ex.exited.wait(), EXIT_WAIT)
        except asyncio.TimeoutError:
            d.log.warning("exec output ended but no exit was reported", exec_id=ex.ID)
    finally:
        if upgrade:
            resp.force_close()
            if transport is not None:
                transport.close()
    return resp


async def _copy_then_close(ex, streams, send) -> None:
    """:func:`_copy_output`, then capsized's ends of the exec's FIFOs closed (and unlinked)."""
    try:
        await _copy_output(ex, streams, send)
    except (ConnectionResetError, OSError):
        pass   # the client went away without detaching: the process meets the closed FIFOs
    finally:
        streams.close_all()


async def _copy_output(ex, streams, send) -> None:
    """Frames of the exec's stdout and stderr until both ended (or the exit plus the grace)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    open_names = [n for n in ("stdout", "stderr") if n in streams.fds]

    def readable(name: str) -> None:
        fd = streams.fds.get(name, -1)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
        queue.put_nowait((name, data))

    for name in open_names:
        loop.add_reader(streams.fds[name], readable, name)
    deadline = None
    try:
        while open_names:
            if deadline is None and ex.exited.is_set():
                deadline = loop.time() + STREAM_GRACE
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            waiter = asyncio.ensure_future(queue.get())
            exited = asyncio.ensure_future(ex.exited.wait())
            done, _ = await asyncio.wait({waiter, exited} if deadline is None else {waiter},
                                         timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            exited.cancel()
            if waiter not in done:
                waiter.cancel()
                if deadline is not None and loop.time() >= deadline:
                    return   # a background child holds the output open: stop, as dockerd does
                continue
            name, data = waiter.result()
            if not data:
                open_names.remove(name)
                continue
            await send(data if ex.tty else logmod.frame(name, data))
    finally:
        for name in ("stdout", "stderr"):
            fd = streams.fds.get(name, -1)
            if fd >= 0:
                loop.remove_reader(fd)


async def _pump_stdin(streams, reader, scanner, detach) -> None:
    """The client's input to the exec's stdin FIFO; its end closes capsized's end (EOF); the
    detach keys (*scanner*) call ``detach()`` instead."""
    fd = streams.fds.get("stdin", -1)
    while fd >= 0:
        data = await reader.queue.get()
        if data is None:
            streams.close("stdin")
            return
        data, detached = scanner.feed(data)
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
                view = view[n:]
            except BlockingIOError:
                await asyncio.sleep(stdinmod.WRITE_POLL)
            except OSError:
                return
        if detached:
            detach()
            return


def routes():
    return [("POST", "/containers/{id}/exec", create), ("POST", "/exec/{id}/start", start),
            ("GET", "/exec/{id}/json", inspect), ("POST", "/exec/{id}/resize", resize)]
