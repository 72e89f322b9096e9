"""One raw HTTP/1.0 request on a daemon's unix socket, for tests that send what no client library
would (huge headers, lying Content-Length, deep JSON)."""

from __future__ import annotations

import socket


def raw(stack, method: str, path: str, body: bytes = b"", headers: dict | None = None,
        timeout: float = 10, sock: str | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.0 request on ``stack.sock`` (or *sock*): (status, headers, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock or stack.sock)
        head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\n"
        hdrs = {"Content-Length": str(len(body)), **(headers or {})}
        for k, v in hdrs.items():
            head += f"{k}: {v}\r\n"
        try:
            s.sendall(head.encode() + b"\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server answered (and closed) before reading everything: read its answer
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), hdrs, payload
