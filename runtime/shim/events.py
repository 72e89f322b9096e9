"""Publishing task events to the runtime daemon's address, with a bounded queue and backoff.

The runtime daemon's address is a unix socket (``unix://`` prefix optional) that accepts JSON
lines. The shim connects, sends one event per line and reads one acknowledgement line per event
(any line, ``{"ok":true}`` by convention) before it sends the next::

    {"topic":"/tasks/exit","namespace":"default","timestamp":"2026-11-29T11:25:01.123456789Z",
     "seq":3,"event":{"container_id":"c1","id":"c1","pid":4242,"exit_status":0,
                      "exited_at":"2026-11-29T11:25:01.120000001Z"}}

An event leaves the queue only when acknowledged, so delivery is at least once and in order; a
receiver that went away between reading an event and acknowledging it sees it again (``seq``
counts from 1 in each shim; drop repeats by ``(event.container_id, seq)``). While the address
is unreachable, the queue holds at most :data:`QUEUE_MAX` events (the oldest is evicted and
logged when it overflows) and the shim retries with exponential backoff from
:data:`BACKOFF_MIN` to :data:`BACKOFF_MAX` seconds; an event waits :data:`ACK_TIMEOUT` seconds
for its acknowledgement before the connection is dropped and retried. Nothing here blocks the
shim: the socket is non-blocking and driven by the shim's loop. The exit status never depends on
delivery: it is in the exit file and in ``state`` first.

Topics and event fields (after containerd's ``events.Task*`` messages):
``/tasks/create`` {container_id, bundle, pid}; ``/tasks/start`` {container_id, pid};
``/tasks/oom``, ``/tasks/paused``, ``/tasks/resumed`` {container_id}; ``/tasks/exit``
{container_id, id, pid, exit_status, exited_at}; ``/tasks/delete`` {container_id, id, pid,
exit_status, exited_at}.
"""

from __future__ import annotations

import json
import socket
from collections import deque

from runtime.api import failpoints
from runtime.rfc3339 import format_nano
from runtime.shim.paths import path_of

QUEUE_MAX = 256
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0
ACK_TIMEOUT = 5.0


class Publisher:
    """Delivers events to one address in order (see the module docstring)."""

    def __init__(self, loop, address: str, namespace: str, log, queue_max: int = QUEUE_MAX):
        self.loop, self.namespace, self.log = loop, namespace, log
        self.path = path_of(address) if address else ""
        self.queue: deque[bytes] = deque()
        self.queue_max = max(2, queue_max)
        self.seq = 0
        self.delivered = 0
        self._sock: socket.socket | None = None
        self._inflight = False
        self._rbuf = b""
        self._backoff = BACKOFF_MIN
        self._retry_timer = None
        self._ack_timer = None

    # -- public ------------------------------------------------------------------------------
    def publish(self, topic: str, event: dict) -> None:
        """Queue an event for delivery (evicting the oldest queued one if the queue is full)."""
        failpoints.hit("shim.event.publish")
        self.seq += 1
        line = json.dumps({"topic": topic, "namespace": self.namespace, "timestamp": format_nano(),
                           "seq": self.seq, "event": event}, separators=(",", ":")) + "\n"
        if not self.path:
            self.log.info("event not published: no runtime address", topic=topic)
            return
        while len(self.queue) >= self.queue_max:
            idx = 1 if self._inflight else 0  # never the one awaiting its acknowledgement
            old = json.loads(self.queue[idx])
            del self.queue[idx]
            self.log.error("evicting event from queue: queue full", topic=old["topic"], seq=old["seq"])
        self.queue.append(line.encode())
        self._pump()

    def pending(self) -> int:
        """Events not yet acknowledged."""
        return len(self.queue)

    def close(self) -> None:
        self._disconnect()
        if self._retry_timer:
            self._retry_timer.cancel()

    # -- delivery ----------------------------------------------------------------------------
    def _pump(self) -> None:
        if not self.queue or self._inflight or self._retry_timer is not None:
            return
        if self._sock is None and not self._connect():
            self._schedule_retry()
            return
        try:
            data = self.queue[0]
            sent = self._sock.send(data)
            if sent != len(data):
                raise BlockingIOError("short send")
        except OSError as e:
            self.log.info("event delivery failed, will retry", error=str(e))
            self._disconnect()
            self._schedule_retry()
            return
        self._inflight = True
        self._ack_timer = self.loop.call_later(ACK_TIMEOUT, self._ack_timeout)

    def _connect(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.setblocking(False)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            return False
        self._sock = s
        self._rbuf = b""
        self.loop.add_reader(s.fileno(), self._readable)
        return True

    def _disconnect(self) -> None:
        if self._ack_timer:
            self._ack_timer.cancel()
            self._ack_timer = None
        self._inflight = False
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _schedule_retry(self) -> None:
        if self._retry_timer is None:
            self._retry_timer = self.loop.call_later(self._backoff, self._retry)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _retry(self) -> None:
        self._retry_timer = None
        self._pump()

    def _ack_timeout(self) -> None:
        self._ack_timer = None
        self.log.info("no acknowledgement for event, reconnecting")
        self._disconnect()
        self._schedule_retry()

    def _readable(self) -> None:
        try:
            data = self._sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._disconnect()
            self._schedule_retry()
            return
        self._rbuf += data
        while b"\n" in self._rbuf:
            _, self._rbuf = self._rbuf.split(b"\n", 1)
            if self._inflight and self.queue:
                self.queue.popleft()
                self.delivered += 1
                self._inflight = False
                if self._ack_timer:
                    self._ack_timer.cancel()
                    self._ack_timer = None
                self._backoff = BACKOFF_MIN
        if len(self._rbuf) > 4096:
            self._rbuf = b""
        self._pump()
