"""The container's terminal (``process.terminal``), made as runc makes it: ``--console-socket``.

runc's protocol (runc docs/terminals.md, "Detached New Terminal"): the caller listens on a unix
socket and passes its path as ``--console-socket``; the runtime connects to it (before anything
is created, so a bad path fails the command at once), and the process being set up — the init
of ``create``/``run``, or the process of ``exec`` — opens a new pseudo-terminal *inside the
container* (``/dev/ptmx``, the container's own devpts instance), makes the slave its stdin,
stdout, stderr and controlling terminal, and sends the master over the socket as one
``SCM_RIGHTS`` message (payload: the master's name, ``/dev/ptmx``). For the init the slave is
also bind-mounted onto ``/dev/console`` (OCI config-linux.md "/dev/console"). The caller holds
the master from then on; the runtime keeps no copy. ``process.consoleSize`` (``{"height",
"width"}``, characters) is applied to the new terminal (TIOCSWINSZ).

Standard library only (capsize-runc starts on every container).
"""

from __future__ import annotations

import fcntl   # at import time: the init uses them after pivot_root, out of reach of the host's
import os      # library (the parent imports this module before it forks)
import socket
import struct
import termios

#: <asm-generic/ioctls.h>: TIOCGPTN (_IOR('T', 0x30, unsigned int)), TIOCSPTLCK (_IOW('T', 0x31, int))
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def connect(path: str) -> socket.socket:
    """A connection to the caller's console socket *path*; Unavailable when nothing listens."""
    from runtime.errors import Unavailable
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise Unavailable(f"console socket {path}: {e.strerror}") from None
    return s


def open_pty() -> tuple[int, int, str]:
    """A new pty from ``/dev/ptmx`` of the current mount namespace: (master fd, slave fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))   # unlockpt(3)
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        path = f"/dev/pts/{n}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave, path


def set_size(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ on terminal *fd*: *height* rows, *width* columns."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def setup(sock_fd: int, proc: dict, mount_console: bool, host=None) -> None:
    """In the process being set up: a new pty, its master sent over *sock_fd* (then closed), the
    slave as stdio and controlling terminal (a new session), bound onto /dev/console when
    *mount_console* (the init, after pivot_root). Raises OSError."""
    master, slave, path = open_pty()
    try:
        size = proc.get("consoleSize") or {}
        if size.get("height") or size.get("width"):
            set_size(slave, int(size.get("height") or 0), int(size.get("width") or 0))
        if mount_console:
            from runtime import host as h
            host = host or h.HOST
            if not os.path.lexists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            host.mount(path, "/dev/console", None, h.MS_BIND, None)
        with socket.socket(fileno=os.dup(sock_fd)) as s:
            socket.send_fds(s, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
        os.close(sock_fd)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    os.close(slave)


def local_pair() -> tuple[socket.socket, socket.socket]:
    """For a foreground ``run``/``exec`` with a terminal and no ``--console-socket``: a connected
    pair ``(ours, theirs)``; *theirs* stands in for the console socket, the master arrives on
    *ours* (:func:`receive_master`), and :class:`Relay` connects it to our stdio, as runc does
    (runc 1.1 ``tty.go``: setupProcessPipes/recvtty, console.SetRaw on a terminal stdin)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for s in (a, b):
        s.set_inheritable(False)
    return a, b


def receive_master(sock: socket.socket) -> int:
    """The pty master fd sent over *sock* (one SCM_RIGHTS message); closes *sock*. OSError when
    none came (the process failed before making its terminal)."""
    try:
        _, fds, _, _ = socket.recv_fds(sock, 64, 1)
    finally:
        sock.close()
    if not fds:
        raise OSError("no terminal master was received from the container")
    os.set_inheritable(fds[0], False)
    return fds[0]


class Relay:
    """Our stdin -> the pty *master* -> our stdout, in two threads, until the terminal closes.

    If our stdin is a terminal it is put into raw mode and its size given to the pty (restored
    by :meth:`close`), so the container's terminal is the user's. The input side stops at EOF
    of stdin without closing the master (the process keeps its terminal)."""

    def __init__(self, master: int):
        import threading
        self.master = master
        self.saved = None
        if os.isatty(0):
            import tty
            self.saved = termios.tcgetattr(0)
            try:
                fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
            except OSError:
                pass
            tty.setraw(0)
        self.out = threading.Thread(target=self._copy, args=(master, 1), daemon=True)
        self.out.start()
        threading.Thread(target=self._copy, args=(0, master), daemon=True).start()

    @staticmethod
    def _copy(src: int, dst: int) -> None:
        while True:
            try:
                data = os.read(src, 1 << 16)
            except OSError:   # EIO on the master once every slave fd is closed
                return
            if not data:
                return
            try:
                while data:
                    data = data[os.write(dst, data):]
            except OSError:
                return

    def close(self, timeout: float = 2.0) -> None:
        """Wait (up to *timeout* s) for the output to drain, restore our terminal, close the master."""
        self.out.join(timeout)
        if self.saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        os.close(self.master)
