"""The UDP half of capsize-proxy: datagrams to the published port are relayed to the container
from one connected upstream socket per client address (its replies go back to that client from
the published port), as docker-proxy's UDP proxy; a client's mapping is dropped after
:data:`IDLE_TIMEOUT` seconds without traffic (docker-proxy's ``UDPConnTrackTimeout``, 90 s).
"""

from __future__ import annotations

import selectors
import socket
import time

IDLE_TIMEOUT = 90.0
#: the largest UDP payload over IPv4 (docker-proxy's ``UDPBufSize``)
BUFSIZE = 65507


def serve(listener: socket.socket, target: tuple[str, int], idle: float = IDLE_TIMEOUT) -> None:
    """Relay datagrams between *listener* (a bound UDP socket) and *target* forever."""
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    clients: dict[tuple, list] = {}    # client address -> [upstream socket, last activity]
    while True:
        for key, _ in sel.select(timeout=min(idle, 5.0)):
            if key.data is None:
                try:
                    data, addr = listener.recvfrom(BUFSIZE)
                except (InterruptedError, BlockingIOError, ConnectionRefusedError):
                    continue
                entry = clients.get(addr)
                if entry is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.setblocking(False)
                    up.connect(target)
                    entry = clients[addr] = [up, 0.0]
                    sel.register(up, selectors.EVENT_READ, addr)
                entry[1] = time.monotonic()
                try:
                    entry[0].send(data)
                except OSError:   # ICMP unreachable reported late, a full buffer: the datagram is lost
                    pass
            else:
                addr = key.data
                entry = clients.get(addr)
                if entry is None:
                    continue
                try:
                    data = entry[0].recv(BUFSIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:   # ECONNREFUSED: nothing listens in the container (yet)
                    continue
                entry[1] = time.monotonic()
                try:
                    listener.sendto(data, addr)
                except OSError:
                    pass
        now = time.monotonic()
        for addr in [a for a, e in clients.items() if now - e[1] > idle]:
            up = clients.pop(addr)[0]
            sel.unregister(up)
            up.close()
