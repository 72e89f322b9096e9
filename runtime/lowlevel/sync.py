"""The sync channel between capsize-runc and the init it forks (runc's "sync pipe").

A SOCK_STREAM socketpair carrying one JSON object per line. Messages (``type``):

* child -> parent: ``pid`` (``{"pid": host pid of the init}``, from the intermediate process),
  ``hooks`` (namespaces and mounts are ready: run prestart/createRuntime hooks),
  ``ready`` (the init is set up and about to block on the exec FIFO), ``error``
  (``{"error": CapsizeError.to_dict()}``);
* parent -> child: ``continue`` (after the hooks ran, or after the parent placed the process in
  its cgroup).

End of file means the peer died; :func:`recv` raises :class:`~runtime.errors.Unavailable`.
"""

from __future__ import annotations

import json
import socket

from runtime.errors import DeadlineExceeded, Unavailable


class Channel:
    """One end of the sync socketpair."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(a), cls(b)

    def send(self, msg_type: str, **fields) -> None:
        fields["type"] = msg_type
        self.sock.sendall(json.dumps(fields).encode() + b"\n")

    def recv(self, timeout: float | None = 60.0) -> dict:
        """The next message; Unavailable on EOF, DeadlineExceeded after *timeout* seconds."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise DeadlineExceeded(f"no word from the container's init within {timeout}s") from None
            if not chunk:
                raise Unavailable("the container's init exited before finishing its set-up")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def expect(self, msg_type: str, timeout: float | None = 60.0) -> dict:
        """Receive one message; re-raise a child's error; anything but *msg_type* is a protocol error."""
        from runtime.errors import CapsizeError, from_dict
        msg = self.recv(timeout)
        if msg.get("type") == "error":
            raise from_dict(msg.get("error") or {})
        if msg.get("type") != msg_type:
            raise CapsizeError(f"sync: expected {msg_type!r} from the init, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        self.sock.close()
