"""The TCP half of capsize-proxy: accept on the published port, connect to the container's
address, copy both ways with splice(2) through a pipe (zero copy; ``os.splice``, Linux) — a
thread per direction, as docker-proxy's two ``io.Copy`` goroutines.

An end of input (the peer's FIN) is passed on as ``shutdown(SHUT_WR)`` of the other socket
(half-close kept, as docker-proxy's ``CloseWrite``); a reset or any other error closes both
directions. A container that refuses the connection gets the client's connection closed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading

#: bytes moved per splice(2) call; the pipe is sized to it when the kernel allows (F_SETPIPE_SZ)
CHUNK = 1 << 20
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_MORE", 4)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    for size in (CHUNK, 1 << 18):
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, size)
            break
        except OSError:   # above /proc/sys/fs/pipe-max-size for this user
            continue
    return r, w


def _copy_splice(src: socket.socket, dst: socket.socket) -> None:
    r, w = _pipe()
    try:
        s, d = src.fileno(), dst.fileno()
        while True:
            n = os.splice(s, w, CHUNK, flags=_FLAGS)
            if n == 0:
                return
            while n:
                n -= os.splice(r, d, n, flags=_FLAGS)
    finally:
        os.close(r)
        os.close(w)


def _copy_plain(src: socket.socket, dst: socket.socket) -> None:
    buf = memoryview(bytearray(CHUNK))
    while True:
        n = src.recv_into(buf)
        if n == 0:
            return
        dst.sendall(buf[:n])


_copy = _copy_splice if hasattr(os, "splice") else _copy_plain


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        _copy(src, dst)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    """Accept on *listener* (bound and listening) forever, proxying each connection to *target*
    (``(container_ip, container_port)``). Returns only when *listener* fails (OSError)."""
    while True:
        try:
            client, _ = listener.accept()
        except InterruptedError:
            continue
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()
