"""A synchronous client of one shim's JSON-lines API (:mod:`runtime.api.shim`), for tools and tests.

The protocol half (request ids and lines, replies to results or errors) is
:class:`runtime.api.shim.Calls`, shared with capsize-runtimed's asyncio client
(:mod:`runtime.highlevel.shimconn`); this module adds the blocking socket.

::

    with ShimClient.connect("unix:///run/capsize/s/<hex>", timeout=5) as shim:
        shim.call("create")                      # -> {"pid": 4242}
        shim.call("start")
        shim.call("wait", timeout=None)          # -> {"pid", "exit_status", "exited_at"}

:meth:`ShimClient.call` sends one request and returns the reply's ``result``; an error reply is
raised as the shared error class it names (:func:`runtime.errors.from_dict`). A shim that cannot
be reached, that closes the connection before answering or sends a line that is not a JSON
object, raises
:class:`~runtime.errors.Unavailable`; no reply within the timeout raises
:class:`~runtime.errors.DeadlineExceeded` (and the connection is closed, since a late reply would
be out of step). Requests on one client are answered in order; use a second client for a
``wait`` that must not hold up other calls. Not thread-safe.
"""

from __future__ import annotations

import socket

from runtime.api.shim import Calls
from runtime.errors import DeadlineExceeded, Unavailable
from runtime.shim.paths import path_of

_DEFAULT = object()


class ShimClient:
    """One connection to a shim (see the module docstring)."""

    def __init__(self, address: str, timeout: float | None = 10.0):
        self.address = address
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._calls = Calls()

    @classmethod
    def connect(cls, address: str, timeout: float | None = 10.0) -> "ShimClient":
        """Connect to the shim at *address* (``unix://PATH`` or a path); raises Unavailable.
        *timeout* (seconds, None = forever) bounds the connect and is each call's default."""
        client = cls(address, timeout)
        client._open()
        return client

    def _open(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(path_of(self.address))
        except socket.timeout:
            s.close()
            raise DeadlineExceeded(f"connecting to shim {self.address}: timed out") from None
        except OSError as e:
            s.close()
            raise Unavailable(f"shim not reachable at {self.address}: {e.strerror or e}") from None
        self._sock = s

    def call(self, method: str, timeout=_DEFAULT, **params) -> dict:
        """Call *method* with *params*; returns the result dict. *timeout* in seconds (None: wait
        forever; default: the client's). Raises the shim's error, Unavailable or DeadlineExceeded."""
        if self._sock is None:
            self._open()
        rid, line = self._calls.request(method, params)
        self._sock.settimeout(self.timeout if timeout is _DEFAULT else timeout)
        try:
            self._sock.sendall(line)
            while True:
                while b"\n" not in self._buf:
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        self.close()
                        raise Unavailable(f"shim at {self.address} closed the connection during {method}")
                    self._buf += chunk
                raw, self._buf = self._buf.split(b"\n", 1)
                reply = self._calls.parse(raw)
                if reply is None:
                    self.close()
                    raise Unavailable(f"shim at {self.address} sent a malformed reply to {method}")
                if reply.get("id") == rid or reply.get("id") is None:
                    break
        except socket.timeout:
            self.close()
            raise DeadlineExceeded(f"shim at {self.address} did not answer {method} in time") from None
        except OSError as e:
            self.close()
            raise Unavailable(f"shim at {self.address}: {method}: {e.strerror or e}") from None
        return self._calls.result(reply)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buf = b""

    def __enter__(self) -> "ShimClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(address: str, timeout: float | None = 10.0) -> ShimClient:
    """Shorthand for :meth:`ShimClient.connect`."""
    return ShimClient.connect(address, timeout)
