"""Events: the daemon's bus (publish, subscribe with topic filters, a replay buffer) and the socket
on which shims deliver their task events.

Envelope (containerd's ``events.Envelope``, plus a sequence number)::

    {"seq": 12, "boot_id": "3f2a...", "timestamp": "2026-11-29T11:25:01.123456789Z",
     "namespace": "default", "topic": "/tasks/exit",
     "event": {"container_id": "c1", "id": "c1", "pid": 4242, "exit_status": 0,
               "exited_at": "...", "exit_source": "shim"}}

``seq`` counts from 1 in each run of the daemon, ``boot_id`` names the run (a client that sees
it change knows it missed nothing before ``seq`` 1 only if it asks for a replay from 0). The
bus keeps the last :data:`HISTORY` envelopes, so a subscriber can ask for everything after a
``seq`` it saw (``since``): that is how a client sees what the daemon published while it was
starting, before anyone could subscribe (recovered exits, cleaned-up shims).

A subscription's filters: ``topics`` (exact topics, or prefixes ending in ``/`` or ``*``:
``/tasks/*``) and ``namespaces``; empty means all. A subscriber that falls :data:`QUEUE_MAX`
events behind is dropped (its stream ends), so a stuck client cannot hold the daemon's memory.

Shim events (:class:`ShimEventServer`): the socket ``<state>/runtimed/events.sock`` reads JSON
lines ``{"topic", "namespace", "timestamp", "seq", "event"}`` (runtime.shim.events), hands each
to the daemon's handler with the sending shim's pid (SO_PEERCRED) and answers ``{"ok":true}``
when it is handled, which is when the shim drops it from its queue.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import struct

from runtime.api import failpoints
from runtime.api import topics
from runtime.rfc3339 import format_nano

HISTORY = 4096
QUEUE_MAX = 10000

#: Every topic published (the contract: :mod:`runtime.api.topics`).
TOPICS = topics.TOPICS


def topic_matches(patterns: list[str], topic: str) -> bool:
    if not patterns:
        return True
    for p in patterns:
        if p == topic or (p.endswith("*") and topic.startswith(p[:-1])) or (p.endswith("/") and topic.startswith(p)):
            return True
    return False


class Subscription:
    """A stream of envelopes: ``async for env in sub`` (ends when the bus drops it or closes)."""

    def __init__(self, bus: "EventBus", topics: list[str], namespaces: list[str]):
        self.bus, self.topics, self.namespaces = bus, list(topics), list(namespaces)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.dropped = False

    def wants(self, env: dict) -> bool:
        return topic_matches(self.topics, env["topic"]) and (not self.namespaces or env["namespace"] in self.namespaces)

    def _offer(self, env: dict | None) -> None:
        if env is not None and self.queue.qsize() >= QUEUE_MAX:
            self.dropped = True
            self.bus._subs.discard(self)
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(env)

    def close(self) -> None:
        self.bus._subs.discard(self)

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        env = await self.queue.get()
        if env is None:
            raise StopAsyncIteration
        return env


class EventBus:
    """Publishes envelopes to subscribers, in publication order. Use from the event loop only."""

    def __init__(self, log=None, history: int = HISTORY):
        self.boot_id = os.urandom(16).hex()
        self.seq = 0
        self.log = log
        self._history: collections.deque = collections.deque(maxlen=history)
        self._subs: set[Subscription] = set()

    def publish(self, topic: str, namespace: str, event: dict, timestamp: str | None = None) -> dict:
        failpoints.hit("runtimed.event.publish")
        self.seq += 1
        env = {"seq": self.seq, "boot_id": self.boot_id, "timestamp": timestamp or format_nano(),
               "namespace": namespace, "topic": topic, "event": event}
        self._history.append(env)
        if self.log is not None:
            self.log.debug("event published", topic=topic, namespace=namespace, seq=self.seq)
        for sub in list(self._subs):
            if sub.wants(env):
                sub._offer(env)
        return env

    def subscribe(self, topics=(), namespaces=(), since: int | None = None) -> Subscription:
        """A new subscription; with *since*, first the buffered envelopes with ``seq > since``."""
        sub = Subscription(self, topics, namespaces)
        if since is not None:
            for env in self._history:
                if env["seq"] > since and sub.wants(env):
                    sub._offer(env)
        self._subs.add(sub)
        return sub

    def close(self) -> None:
        for sub in list(self._subs):
            sub._offer(None)
        self._subs.clear()


def _peer_pid(sock: socket.socket | None) -> int:
    if sock is None:
        return 0
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except OSError:
        return 0


class ShimEventServer:
    """Receives shims' events on *path* and awaits ``handler(message: dict, shim_pid: int)`` for
    each, in order per connection, before acknowledging it."""

    def __init__(self, path: str, handler, log):
        self.path, self.handler, self.log = path, handler, log
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=1 << 20)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid = _peer_pid(writer.get_extra_info("socket"))
        self._conns.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    self.log.warning("shim event line too long: connection dropped", shim_pid=pid)
                    break
                except OSError:
                    break
                if not line:
                    break
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict) or not isinstance(msg.get("topic"), str):
                        raise ValueError("not an event object")
                except ValueError as e:
                    self.log.warning("malformed shim event ignored", shim_pid=pid, error=str(e))
                else:
                    try:
                        await self.handler(msg, pid)
                    except Exception as e:  # noqa: BLE001 - one bad event must not stop the stream
                        self.log.error("cannot handle shim event", topic=msg.get("topic"), error=repr(e))
                writer.write(b'{"ok":true}\n')
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
