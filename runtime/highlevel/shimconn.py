"""An asyncio client of one shim's JSON-lines API (:mod:`runtime.api.shim`), for capsize-runtimed.

The protocol half (request ids and lines, replies to results or errors) is
:class:`runtime.api.shim.Calls`, shared with the synchronous :mod:`runtime.shim.client`.

One connection per task, held for the task's life: requests carry ids and the shim answers them
in order; a reader coroutine matches replies to callers. The connection doubles as the shim's
liveness signal, as containerd's ttrpc connection does: when the shim process dies, the kernel
closes the socket and :attr:`ShimConnection.closed` (a future) completes — the daemon then
cleans up after the dead shim, unless it closed the connection itself or asked the shim to shut
down.

Errors: the shim's own error replies are raised as the shared classes
(:func:`runtime.errors.from_dict`); a shim that cannot be reached or goes away is
:class:`~runtime.errors.Unavailable`; no reply in time is
:class:`~runtime.errors.DeadlineExceeded` (the connection stays usable: a late reply is
recognised by its id and dropped). ``wait`` is never sent here: it would hold up the
connection; exits come as events.
"""

from __future__ import annotations

import asyncio

from runtime.api import failpoints
from runtime.api.shim import Calls
from runtime.errors import DeadlineExceeded, Unavailable
from runtime.shim.paths import path_of


class ShimConnection:
    def __init__(self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.address = address
        self._reader, self._writer = reader, writer
        self._calls = Calls()
        self._pending: dict[int, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future = loop.create_future()
        self._closing = False
        self._task = loop.create_task(self._read_loop())

    @classmethod
    async def connect(cls, address: str, timeout: float = 5.0) -> "ShimConnection":
        """Connect to the shim at *address*; Unavailable if nothing listens there."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path_of(address), limit=1 << 22), timeout)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"connecting to shim {address}: timed out") from None
        except OSError as e:
            raise Unavailable(f"shim not reachable at {address}: {e.strerror or e}") from None
        return cls(address, reader, writer)

    async def _read_loop(self) -> None:
        reason = "closed the connection"
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                reply = self._calls.parse(line)
                fut = self._pending.pop(reply.get("id"), None) if reply is not None else None
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (OSError, ValueError, asyncio.LimitOverrunError) as e:
            reason = f"connection failed: {e}"
        except asyncio.CancelledError:
            reason = "connection closed by the daemon"
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(Unavailable(f"shim at {self.address} {reason}"))
            self._pending.clear()
            self._writer.close()
            if not self.closed.done():
                self.closed.set_result(reason)

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    @property
    def closed_by_us(self) -> bool:
        return self._closing

    async def call(self, method: str, timeout: float | None = 10.0, **params) -> dict:
        """Send *method* with *params*; returns the reply's result. *timeout* in seconds."""
        if self.closed.done():
            raise Unavailable(f"shim at {self.address} is disconnected")
        failpoints.hit(f"runtimed.shim.{method}.before-call")
        rid, line = self._calls.request(method, params)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (OSError, RuntimeError) as e:
            self._pending.pop(rid, None)
            raise Unavailable(f"shim at {self.address}: {method}: {e}") from None
        try:
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            self._pending.pop(rid, None)
            raise DeadlineExceeded(f"shim at {self.address} did not answer {method} within {timeout:g}s",
                                   method=method) from None
        failpoints.hit(f"runtimed.shim.{method}.after-call")
        return self._calls.result(reply)

    def close(self) -> None:
        """Close the connection on purpose (not a shim failure)."""
        self._closing = True
        if not self._task.done():
            self._task.cancel()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the shim to close the connection; True if it did."""
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
            return True
        except asyncio.TimeoutError:
            return False
