"""The sync channel between capsize-runc and the init it forks (runc's "sync pipe").

Two pipes — parent to child, child to parent — carrying one JSON object per line. (Pipes, not
a socketpair: the ``socket`` module costs milliseconds of import on every create.) Both the
intermediate process and the init write to the same child-to-parent pipe; each message is far
below PIPE_BUF, so writes never interleave. Messages (``type``):

* child -> parent: ``pid`` (``{"pid": host pid of the init}``, from the intermediate process),
  ``hooks`` (namespaces and mounts are ready: run prestart/createRuntime hooks),
  ``ready`` (the init is set up and about to block on the exec FIFO), ``error``
  (``{"error": CapsizeError.to_dict()}``);
* parent -> child: ``continue`` (after the hooks ran, or after the parent placed the process in
  its cgroup).

End of file means every writer on the other side is gone; :meth:`Channel.recv` raises
:class:`~runtime.errors.Unavailable`.
"""

from __future__ import annotations

import os
import select

from runtime import jsonfast

from runtime.errors import CapsizeError, DeadlineExceeded, Unavailable, from_dict


class Channel:
    """One end of the sync channel: reads from *rfd*, writes to *wfd*."""

    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        """(parent end, child end); all four descriptors are close-on-exec."""
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        return cls(up_r, down_w), cls(down_r, up_w)

    def send(self, msg_type: str, **fields) -> None:
        fields["type"] = msg_type
        os.write(self.wfd, jsonfast.dumps(fields).encode() + b"\n")

    def recv(self, timeout: float | None = 60.0) -> dict:
        """The next message; Unavailable on EOF, DeadlineExceeded after *timeout* seconds."""
        while b"\n" not in self._buf:
            ready, _, _ = select.select([self.rfd], [], [], timeout)
            if not ready:
                raise DeadlineExceeded(f"no word from the container's init within {timeout}s")
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise Unavailable("the container's init exited before finishing its set-up")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return jsonfast.loads(line)

    def expect(self, msg_type: str, timeout: float | None = 60.0) -> dict:
        """Receive one message; re-raise a child's error; anything but *msg_type* is a protocol error."""
        msg = self.recv(timeout)
        if msg.get("type") == "error":
            raise from_dict(msg.get("error") or {})
        if msg.get("type") != msg_type:
            raise CapsizeError(f"sync: expected {msg_type!r} from the init, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = -1
