"""A throttling TCP proxy on 127.0.0.1: slows a registry's traffic so that a fault lands mid-transfer.

:class:`Throttle` listens on ``127.0.0.1:<free port>`` and forwards each connection to
*upstream* (``(host, port)``), copying both ways on two threads per connection; traffic from
the upstream to the client (a download) is limited to *rate* bytes per second and the other
way (an upload) to *rate* too (``None``: unlimited), in 16 KiB slices. With *netns*, the
proxy's sockets are made inside that network namespace (:func:`runtime.netns.run_in`), so it
sits on the same loopback as the registry it fronts. :meth:`close` stops listening and cuts
every connection. Standard library only; nothing leaves loopback.
"""

from __future__ import annotations

import socket
import threading
import time

SLICE = 16 << 10


class Throttle:
    def __init__(self, upstream: tuple[str, int], rate: float | None, netns: str | None = None):
        self.upstream, self.rate, self.netns = upstream, rate, netns
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._listener = self._in_ns(self._listen)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="throttle", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _in_ns(self, fn, *args):
        if self.netns is None:
            return fn(*args)
        from runtime import netns
        return netns.run_in(self.netns, fn, *args)

    @staticmethod
    def _listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        return s

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = self._in_ns(socket.create_connection, self.upstream, 10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for src, dst in ((server, client), (client, server)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                t0 = time.monotonic()
                data = src.recv(SLICE)
                if not data:
                    break
                dst.sendall(data)
                if self.rate:
                    wait = len(data) / self.rate - (time.monotonic() - t0)
                    if wait > 0:
                        time.sleep(wait)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes the accept()
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        self._thread.join(5)
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
