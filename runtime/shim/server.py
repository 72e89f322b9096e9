"""The shim's API server: JSON lines over its unix socket (the contract: :mod:`runtime.api.shim`).

:class:`Server` accepts any number of clients on the listening socket. Each connection is read
line by line; requests on one connection are answered in order, one at a time (a ``wait`` holds
up only its own connection). A line that is not a JSON object with a string ``method``, an
unknown method or bad parameters gets an error reply and the shim keeps serving; a line longer
than :data:`MAX_LINE` bytes gets an error reply and is skipped up to its newline; one nested
deeper than :data:`runtime.jsonfast.MAX_DEPTH` gets an error reply. A client that half-closes
still gets the replies to every line it sent; one that does not read its replies is no longer
read (:data:`OUT_HIGH`), so no client grows the shim's memory or holds up the others.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # the C module (`signal` costs an enum import per start)

from runtime import jsonfast
from runtime.api import failpoints
from runtime.api import shim as api
from runtime.api.shim import MAX_LINE, METHODS
from runtime.errors import CapsizeError, FailedPrecondition, InvalidArgument, Unimplemented

#: Reply bytes queued for a client that does not read them, past which its requests are not read.
OUT_HIGH = 1 << 20
#: Seconds the shim lingers after ``shutdown`` to deliver queued events and replies.
SHUTDOWN_LINGER = 1.0


class Conn:
    """One client connection: buffered lines in, ordered replies out, non-blocking both ways."""

    def __init__(self, server: "Server", sock):
        self.server, self.sock = server, sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.busy = False
        self.closed = False
        self.discarding = False
        self.eof = False       # the client shut down its side: answer what it sent, then close
        self.reading = True
        server.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self._process()
            self._settle()
            return
        self.inbuf += data
        self._process()
        self._settle()

    def _settle(self) -> None:
        """Back-pressure and the end: stop reading while the client does not read its replies
        (more than :data:`OUT_HIGH` bytes queued) or, during a long request, sends more than a
        line's worth ahead; close once the client has ended its side and everything it sent
        is answered and flushed."""
        if self.closed:
            return
        if self.eof and not self.busy and not self.outbuf and self.inbuf.find(b"\n") < 0:
            self.close()
            return
        want = not self.eof and len(self.outbuf) <= OUT_HIGH and not (self.busy and len(self.inbuf) > MAX_LINE)
        if want != self.reading:
            self.reading = want
            if want:
                self.server.loop.add_reader(self.fd, self._readable)
            else:
                self.server.loop.remove_reader(self.fd)

    def _process(self) -> None:
        while not self.busy and not self.closed:
            nl = self.inbuf.find(b"\n")
            if self.discarding:  # the rest of an oversized line
                del self.inbuf[:len(self.inbuf) if nl < 0 else nl + 1]
                if nl < 0:
                    return
                self.discarding = False
                continue
            if nl < 0:
                if len(self.inbuf) > MAX_LINE:
                    self.inbuf.clear()
                    self.discarding = True
                    self.send({"id": None, "error": InvalidArgument(
                        f"request line longer than {MAX_LINE} bytes: ignored").to_dict()})
                return
            raw = bytes(self.inbuf[:nl])
            del self.inbuf[:nl + 1]
            if raw.strip():
                self.busy = True
                self.server.handle(raw, self._reply)

    def _reply(self, msg: dict) -> None:
        self.busy = False
        self.send(msg)
        if not self.closed:
            self.server.loop.call_later(0, self._resume)

    def _resume(self) -> None:
        self._process()
        self._settle()

    def send(self, msg: dict) -> None:
        if self.closed:
            return
        self.outbuf += api.reply_line(msg)
        self._flush()

    def _flush(self) -> None:
        try:
            while self.outbuf:
                n = self.sock.send(self.outbuf)
                del self.outbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        if self.outbuf:
            self.server.loop.add_writer(self.fd, self._flush)
        else:
            self.server.loop.remove_writer(self.fd)
        self._settle()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.loop.remove_reader(self.fd)
        self.server.loop.remove_writer(self.fd)
        self.server.conns.discard(self)
        self.sock.close()


class Server:
    """Serves the task's methods on *listener* (a bound, listening unix socket)."""

    def __init__(self, loop, listener, task, failpoints: dict, log, socket_path: str = ""):
        self.loop, self.listener, self.task, self.log = loop, listener, task, log
        self.failpoints, self.socket_path = failpoints, socket_path
        self.conns: set[Conn] = set()
        self.stopping = False
        listener.setblocking(False)
        loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log.warning("accept failed", error=str(e))
                return
            self.conns.add(Conn(self, sock))

    # -- requests ----------------------------------------------------------------------------
    def handle(self, raw: bytes, reply) -> None:
        """Parse one request line and answer it through ``reply(message)`` exactly once."""
        rid = None
        try:
            try:
                req = jsonfast.loads_bounded(raw)   # DepthExceeded (a ValueError), never RecursionError
            except ValueError as e:
                raise InvalidArgument(f"malformed request: not JSON: {e}") from None
            if not isinstance(req, dict):
                raise InvalidArgument("malformed request: not a JSON object")
            rid = req.get("id")
            method, params = req.get("method"), req.get("params", {})
            if not isinstance(method, str):
                raise InvalidArgument("malformed request: \"method\" must be a string")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise InvalidArgument("malformed request: \"params\" must be a JSON object")
            if method not in METHODS:
                raise Unimplemented(f"unknown method {method!r} (one of {', '.join(METHODS)})")
        except CapsizeError as e:
            reply({"id": rid, "error": e.to_dict()})
            return

        def done(result):
            failpoints.hit(f"shim.{method}.after")
            if isinstance(result, CapsizeError):
                if method not in api.QUIET:
                    self.log.info("request failed", method=method, error=result.message)
                reply({"id": rid, "error": result.to_dict()})
            else:
                reply({"id": rid, "result": result})

        try:
            failpoints.hit(f"shim.{method}.before")
        except CapsizeError as e:
            done(e)
            return
        point = self.failpoints.get(method)
        action = point.evaluate() if point else None
        if action is None:
            self._call(method, params, done)
        elif action[0] == "error":
            self.log.info("failpoint: error", method=method, message=action[1])
            done(CapsizeError(f"{action[1]} (failpoint {method})", failpoint=method))
        elif action[0] == "delay":
            self.log.info("failpoint: delay", method=method, seconds=action[1])
            self.loop.call_later(action[1], self._call, method, params, done)
        elif action[0] == "panic":
            self.log.error("failpoint: panic", method=method)
            os._exit(2)
        elif action[0] == "kill":
            self.log.error("failpoint: kill", method=method)
            os.kill(os.getpid(), SIGKILL)

    def _call(self, method: str, params: dict, done) -> None:
        task = self.task
        try:
            if method in api.SERIALIZED:
                task.submit(method, params, done)
            elif method == api.STATE:
                done(task.state(params.get("exec_id")))
            elif method == api.WAIT:
                task.wait(done)
            elif method == api.PIDS:
                task.pids(done)
            elif method == api.RESIZE:
                task.resize(params)
                done({})
            elif method == api.CONNECT:
                done({"shim_pid": os.getpid(), "task_pid": task.pid, "version": api.PROTOCOL_VERSION})
            elif method == api.SHUTDOWN:
                if task.phase not in ("new", "deleted"):
                    raise FailedPrecondition(f"task {task.id} exists: delete it before shutdown",
                                             id=task.id, status=task.status())
                done({})
                self.shutdown()
        except CapsizeError as e:
            done(e)
        except OSError as e:
            done(CapsizeError(f"{method}: {e}"))

    # -- shutdown ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop listening (the socket file is removed), deliver what is queued, then stop."""
        if self.stopping:
            return
        self.stopping = True
        self.loop.remove_reader(self.listener.fileno())
        self.listener.close()
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        self.log.info("shutting down")
        import time
        deadline = time.monotonic() + SHUTDOWN_LINGER

        def linger():
            busy = self.task.publisher.pending() or any(c.outbuf for c in self.conns)
            if busy and time.monotonic() < deadline:
                self.loop.call_later(0.02, linger)
                return
            if self.task.publisher.pending():
                self.log.warning("events not delivered at shutdown", count=self.task.publisher.pending())
            self.loop.stop()
        self.loop.call_later(0, linger)
