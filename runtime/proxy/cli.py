"""``capsize-proxy``: the command line of capsized's userland port proxy, docker-proxy's flags::

    capsize-proxy -proto tcp|udp -host-ip IP -host-port N -container-ip IP -container-port N
                  [-use-listen-fd]

With ``-use-listen-fd`` the published socket, already bound (and for TCP listening) by capsized,
is file descriptor 3 (moby's docker-proxy flag of the same name): capsized sees a bind failure
itself, with the kernel's errno, before any process starts. Without it the proxy binds
``host-ip:host-port`` itself (SO_REUSEADDR; IPV6_V6ONLY for an IPv6 address, as Go's listeners)
and exits 1 with one line on stderr when it cannot. It runs until killed (SIGTERM, SIGKILL).
The host end may be IPv4 or IPv6; the container's address is IPv4.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

PROTOCOLS = ("tcp", "udp")
LISTEN_FD = 3


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="capsize-proxy", description="capsized's userland port proxy")
    p.add_argument("-proto", "--proto", default="tcp", choices=PROTOCOLS)
    p.add_argument("-host-ip", "--host-ip", default="0.0.0.0")
    p.add_argument("-host-port", "--host-port", type=int, required=True)
    p.add_argument("-container-ip", "--container-ip", required=True)
    p.add_argument("-container-port", "--container-port", type=int, required=True)
    p.add_argument("-use-listen-fd", "--use-listen-fd", action="store_true")
    a = p.parse_args(argv)
    for name in ("host_ip", "container_ip"):
        try:
            ipaddress.ip_address(getattr(a, name))
        except ValueError:
            p.error(f"invalid -{name.replace('_', '-')} {getattr(a, name)!r}")
    for name in ("host_port", "container_port"):
        if not 0 < getattr(a, name) < 65536:
            p.error(f"invalid -{name.replace('_', '-')} {getattr(a, name)}")
    return a


def open_listener(proto: str, host_ip: str, host_port: int) -> socket.socket:
    """The published socket, bound (TCP: listening): what capsized hands over as fd 3. OSError."""
    family = socket.AF_INET6 if ipaddress.ip_address(host_ip).version == 6 else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip, host_port))
        if proto == "tcp":
            s.listen(socket.SOMAXCONN)
    except BaseException:
        s.close()
        raise
    return s


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    if a.use_listen_fd:
        listener = socket.socket(fileno=LISTEN_FD)
    else:
        try:
            listener = open_listener(a.proto, a.host_ip, a.host_port)
        except OSError as e:
            print(f"capsize-proxy: listen {a.proto} {a.host_ip}:{a.host_port}: {e.strerror}", file=sys.stderr)
            return 1
    target = (a.container_ip, a.container_port)
    try:
        if a.proto == "tcp":
            from runtime.proxy import tcp
            tcp.serve(listener, target)
        else:
            from runtime.proxy import udp
            udp.serve(listener, target)
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"capsize-proxy: {a.proto} {a.host_ip}:{a.host_port}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
