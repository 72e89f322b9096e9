"""capsize-proxy on loopback (runtime/proxy/): TCP bytes both ways with half-close, UDP replies to
each client, a taken port is one line and exit 1. Pure user-space; every process reaped."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

from tests.conftest import VENV_BIN

PROXY = os.path.join(VENV_BIN, "capsize-proxy")


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as x:
        x.bind(("127.0.0.1", 0))
        return x.getsockname()[1]


def _proxy(proto, port, target):
    return subprocess.Popen([PROXY, "-proto", proto, "-host-ip", "127.0.0.1", "-host-port", str(port),
                             "-container-ip", "127.0.0.1", "-container-port", str(target)])


def test_tcp_and_udp_round_trip():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))

    def echo():
        c, _ = srv.accept()
        while (d := c.recv(65536)):
            c.sendall(d)
        c.close()

    def uecho():
        d, a = u.recvfrom(65535)
        u.sendto(d.upper(), a)
    threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=uecho, daemon=True).start()
    tport, uport = _free_port(), _free_port(socket.SOCK_DGRAM)
    procs = [_proxy("tcp", tport, srv.getsockname()[1]), _proxy("udp", uport, u.getsockname()[1])]
    try:
        data = os.urandom(3_000_000)
        end = time.monotonic() + 10
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", tport), timeout=5)
                break
            except OSError:
                assert time.monotonic() < end
                time.sleep(0.05)
        threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)), daemon=True).start()
        got = bytearray()
        while (d := c.recv(1 << 20)):
            got += d
        c.close()
        assert bytes(got) == data
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k:
            k.settimeout(3)
            k.sendto(b"hello", ("127.0.0.1", uport))
            assert k.recvfrom(100) == (b"HELLO", ("127.0.0.1", uport))
        r = subprocess.run([PROXY, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", str(tport),
                            "-container-ip", "127.0.0.1", "-container-port", "1"], capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.strip() == f"capsize-proxy: listen tcp 127.0.0.1:{tport}: Address already in use"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        srv.close()
        u.close()
