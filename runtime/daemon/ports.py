"""Published ports (``docker run -p/-P``): what a container asks for, the host ports it gets, and
how inspect and the container list show them (libnetwork's bridge driver ``port_mapping.go``
and ``portallocator``, dockerd's ``nat`` package; Engine API 1.41 ``HostConfig.PortBindings``,
``NetworkSettings.Ports``, ``ContainerSummary.Ports``).

Asked for (:func:`requests`, checked at create by :func:`validate`):

* ``HostConfig.PortBindings`` — ``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``: the key is
  ``PORT[/tcp|udp]`` (tcp when no protocol); ``HostPort`` is ``N``, a range ``N-M`` (the first
  port of it that is free, as dockerd) or ``""``/``"0"`` (an ephemeral port); ``HostIp`` an IPv4
  or IPv6 address, ``""`` meaning both ``0.0.0.0`` and, when the kernel has IPv6, ``::`` (dockerd
  20.10 publishes both: measured, two ``docker-proxy`` processes).
* ``HostConfig.PublishAllPorts`` (``-P``) — an ephemeral port for every ``Config.ExposedPorts``
  key (``EXPOSE``, ``--expose``) that has no binding.

Given (:func:`publish`, at start, in capsized's own network namespace only, for a container with
an endpoint on a bridge): for each binding a host port — the one asked for, else the next free
one of the kernel's ephemeral range (``net.ipv4.ip_local_port_range`` of capsized's namespace,
49153-65535 when unreadable, dockerd's fallback), one sequence per (address, protocol) starting
after the last one given, as dockerd's port allocator — its socket bound by capsized (so that a
bind failure is seen before any process starts) and handed to a ``capsize-proxy``
(:mod:`runtime.daemon.proxies`); then the DNAT rules are written (:meth:`Networks.sync_rules
<runtime.daemon.networks.Networks.sync_rules>`, :class:`runtime.daemon.netfilter.Dnat`). The
result is kept in the container's record (``PortMappings``: ``[{"Proto", "HostIp", "HostPort",
"ContainerIp", "ContainerPort", "Device"}]``) while it runs; :func:`unpublish` undoes it all.

A port already given to another container (the same protocol and port on the same address, or
either address unspecified: ``0.0.0.0`` and any IPv4 address) fails the start with dockerd's
text: ``driver failed programming external connectivity on endpoint NAME (ENDPOINT-ID): Bind for
0.0.0.0:8080 failed: port is already allocated``; a port held by any other listener with
``... Error starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use``
(both measured on dockerd 20.10). Nothing is left of a failed publish: sockets closed, no proxy,
no rule (and the caller releases the endpoint and its address).

Views: :func:`inspect_ports` (``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp", "HostPort"}],
"3000/tcp": null}`` while running, ``{}`` otherwise) and :func:`summary_ports` (``[{"IP",
"PrivatePort", "PublicPort", "Type"}]``, ``{"PrivatePort", "Type"}`` for an exposed port that is
not published; ``[]`` when not running) — what ``docker port`` and ``docker ps`` print.

Errors: InvalidArgument (400) for malformed bindings, Unimplemented (501) for ``sctp`` and for
publishing while capsized runs in the host's network namespace, CapsizeError (500) for a start
whose ports cannot be published.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

from runtime.errors import CapsizeError, InvalidArgument, Unimplemented

PROTOCOLS = ("tcp", "udp")
#: dockerd's port allocator's range when ``ip_local_port_range`` cannot be read
DEFAULT_RANGE = (49153, 65535)
#: ephemeral or range candidates tried after a bind failure (dockerd's ``maxAllocatePortAttempts``)
MAX_ATTEMPTS = 10
UNSPECIFIED = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Request:
    """One binding asked for: host ports *first*..*last* (0, 0: ephemeral) on *host_ip* (``""``:
    every unspecified address) for *container_port*/*proto*."""

    proto: str
    container_port: int
    host_ip: str
    first: int
    last: int


def parse_key(key) -> tuple[int, str]:
    """``"80/tcp"`` -> (80, "tcp"); InvalidArgument / Unimplemented (sctp)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"invalid port specification: {key!r}")
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto == "sctp":
        raise Unimplemented(f"capsize does not publish or expose sctp ports ({key})")
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f'invalid port specification: "{port}"')
    return int(port), proto


def _host_range(value) -> tuple[int, int]:
    if value in (None, "", "0"):
        return 0, 0
    text = str(value)
    lo, sep, hi = text.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise InvalidArgument(f"invalid hostPort: {text}")
    first, last = int(lo), int(hi) if sep else int(lo)
    if not (0 < first < 65536 and 0 < last < 65536) or last < first:
        raise InvalidArgument(f"invalid hostPort: {text}")
    return first, last


def _host_ip(value) -> str:
    if value in (None, ""):
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidArgument(f"invalid IP address: {value}") from None


def requests(cfg: dict, host: dict) -> list[Request]:
    """The bindings *cfg* (``Config``) and *host* (``HostConfig``) ask for (module docstring)."""
    out = []
    bindings = host.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidArgument("PortBindings must be an object")
    for key in sorted(bindings, key=lambda k: parse_key(k)):
        port, proto = parse_key(key)
        items = bindings[key] or []
        if not isinstance(items, list) or not all(isinstance(b, dict) for b in items):
            raise InvalidArgument(f"PortBindings[{key}] must be a list of PortBinding objects")
        for b in items:
            out.append(Request(proto, port, _host_ip(b.get("HostIp")), *_host_range(b.get("HostPort"))))
    if host.get("PublishAllPorts"):
        bound = {parse_key(k) for k in bindings}
        for key in sorted(cfg.get("ExposedPorts") or {}, key=lambda k: parse_key(k)):
            port, proto = parse_key(key)
            if (port, proto) not in bound:
                out.append(Request(proto, port, "", 0, 0))
    return out


def exposed(cfg: dict, host: dict) -> list[tuple[int, str]]:
    """(port, proto) of every exposed or bound port, sorted (what inspect's ``Ports`` keys are)."""
    keys = set(cfg.get("ExposedPorts") or {}) | set(host.get("PortBindings") or {})
    return sorted({parse_key(k) for k in keys})


def validate(cfg: dict, host: dict, private: bool) -> None:
    """At create: the bindings parse; publishing needs capsized in a namespace of its own (*private*)."""
    for key in cfg.get("ExposedPorts") or {}:
        parse_key(key)
    asked = requests(cfg, host)
    mode = host.get("NetworkMode") or "default"
    if asked and not private and mode not in ("host", "none"):
        raise Unimplemented("capsize cannot publish ports (-p, -P) while capsized runs in the host's network "
                            "namespace (containers have only the loopback interface there): run it in a network "
                            "namespace of its own (capsize engine up), or use --network host")


# -- allocation -------------------------------------------------------------------------------------

def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral range in capsized's namespace (:data:`DEFAULT_RANGE` when unreadable)."""
    try:
        with open(path) as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
        return (lo, hi) if 0 < lo <= hi < 65536 else DEFAULT_RANGE
    except (OSError, ValueError):
        return DEFAULT_RANGE


def conflict(a_ip: str, b_ip: str) -> bool:
    """Whether two bindings of one protocol and port on *a_ip* and *b_ip* collide (the same
    address, or an unspecified one and any of its family)."""
    if a_ip == b_ip:
        return True
    va, vb = ipaddress.ip_address(a_ip).version, ipaddress.ip_address(b_ip).version
    return va == vb and (a_ip in UNSPECIFIED or b_ip in UNSPECIFIED)


def has_ipv6() -> bool:
    """Whether the kernel has IPv6 in capsized's namespace (``/proc/net/if_inet6`` exists)."""
    return socket.has_ipv6 and os.path.exists("/proc/net/if_inet6")


def _addresses(host_ip: str) -> list[str]:
    return [host_ip] if host_ip else (["0.0.0.0", "::"] if has_ipv6() else ["0.0.0.0"])


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Allocator:
    """The host ports given out, per capsized (dockerd's port allocator): what the running
    containers' ``PortMappings`` hold, and the last ephemeral port per (address, protocol)."""

    def __init__(self):
        self.last: dict[tuple[str, str], int] = {}

    @staticmethod
    def taken(daemon, proto: str, ip: str, port: int, extra: list[dict]) -> bool:
        held = [m for c in daemon.containers.values() for m in (getattr(c, "PortMappings", None) or [])]
        return any(m["Proto"] == proto and m["HostPort"] == port and conflict(m["HostIp"], ip)
                   for m in held + extra)

    def candidates(self, req: Request, ip: str):
        """Ports to try for *req* on *ip*, in order: the one asked for, a range's ports, or the
        ephemeral range from after the last one given (wrapping once)."""
        if req.first:
            yield from range(req.first, req.last + 1)
            return
        lo, hi = ephemeral_range()
        start = self.last.get((ip, req.proto), lo - 1) + 1
        if not lo <= start <= hi:
            start = lo
        yield from range(start, hi + 1)
        yield from range(lo, start)


def _endpoint(daemon, c) -> tuple[dict, object] | tuple[None, None]:
    """The endpoint the ports go to (the first with an address on a bridge that is not internal,
    else the first with an address: dockerd's gateway endpoint) and its bridge."""
    found = []
    for ep in c.Networks.values():
        br = daemon.networks.bridge(ep.get("NetworkID") or "")
        if br is not None and ep.get("IPAddress"):
            found.append((ep, br))
    for ep, br in found:
        if not br.internal:
            return ep, br
    return found[0] if found else (None, None)


def _bind_error(proto: str, ip: str, port: int, e: OSError) -> str:
    family = "6" if ":" in ip else "4"
    text = (e.strerror or str(e))
    text = text[:1].lower() + text[1:]
    return f"Error starting userland proxy: listen {proto}{family} {_hostport(ip, port)}: bind: {text}"


def publish(daemon, c) -> None:
    """Publish *c*'s ports (module docstring): sockets bound, proxies started, rules written,
    ``c.PortMappings`` set. CapsizeError with dockerd's text; nothing is left when it fails."""
    from runtime.daemon import proxies
    from runtime.proxy.cli import open_listener
    asked = requests(c.Config, c.HostConfig)
    c.PortMappings = []
    if not asked or not daemon.networks.private:
        return
    ep, br = _endpoint(daemon, c)
    if ep is None:
        return
    allocator = daemon.port_allocator
    made: list[tuple[dict, socket.socket]] = []

    def fail(text: str):
        for _, s in made:
            s.close()
        raise CapsizeError(f"driver failed programming external connectivity on endpoint {c.name} "
                           f"({ep['EndpointID']}): {text}")

    for req in asked:
        for ip in _addresses(req.host_ip):
            extra = [m for m, _ in made]
            tries, error = 0, None
            for port in allocator.candidates(req, ip):
                if Allocator.taken(daemon, req.proto, ip, port, extra):
                    if req.first == req.last and req.first:
                        fail(f"Bind for {ip}:{port} failed: port is already allocated")
                    continue
                try:
                    sock = open_listener(req.proto, ip, port)
                except OSError as e:
                    error = _bind_error(req.proto, ip, port, e)
                    tries += 1
                    if (req.first == req.last and req.first) or tries >= MAX_ATTEMPTS:
                        fail(error)
                    continue
                if not req.first:
                    allocator.last[(ip, req.proto)] = port
                made.append(({"Proto": req.proto, "HostIp": ip, "HostPort": port,
                              "ContainerIp": ep["IPAddress"], "ContainerPort": req.container_port,
                              "Device": br.device}, sock))
                break
            else:
                fail(error or (f"Bind for {ip}:{req.first}-{req.last} failed: port is already allocated"
                               if req.first else "all ports are allocated"))
    try:
        proxies.start(daemon.config.exec_root, c.ID, made)
    except BaseException:
        for _, s in made:
            s.close()
        raise
    for _, s in made:
        s.close()   # the proxies hold them now
    c.PortMappings = [m for m, _ in made]
    try:
        daemon.networks.sync_rules()
    except BaseException:
        unpublish(daemon, c)
        raise


def unpublish(daemon, c) -> None:
    """Undo :func:`publish` (also for proxies a previous capsized started): proxies stopped,
    ``PortMappings`` emptied, rules written again when there were some."""
    from runtime.daemon import proxies
    proxies.stop(daemon.config.exec_root, c.ID)
    had = bool(getattr(c, "PortMappings", None))
    c.PortMappings = []
    if had:
        try:
            daemon.networks.sync_rules()
        except CapsizeError as e:
            daemon.log.error("cannot remove the port rules", container=c.ID, error=e.message)


def dnat_rules(daemon) -> list:
    """:class:`runtime.daemon.netfilter.Dnat` of every IPv4 mapping the containers hold (a
    container holds them from its start to its stop: :func:`publish`, :func:`unpublish`)."""
    from runtime.daemon.netfilter import Dnat
    return [Dnat(m["Proto"], m["HostIp"], m["HostPort"], m["ContainerIp"], m["ContainerPort"], m["Device"])
            for c in daemon.containers.values()
            for m in (getattr(c, "PortMappings", None) or []) if ":" not in m["HostIp"]]


def sweep(daemon) -> list[str]:
    """At start-up, after the reconcile: every container that is not running (nor paused) but
    holds mappings or proxies (a crash left them) is unpublished, and the proxies recorded for
    unknown containers are stopped; returns the ids."""
    from runtime.daemon import proxies
    done = []
    for c in list(daemon.containers.values()):
        if c.State.Status not in ("running", "paused") and (c.PortMappings or proxies.read(daemon.config.exec_root, c.ID)):
            unpublish(daemon, c)
            done.append(c.ID)
    return done + proxies.sweep(daemon)


# -- views ------------------------------------------------------------------------------------------

def inspect_ports(c) -> dict:
    """``NetworkSettings.Ports`` of *c* (module docstring)."""
    if not c.State.running:
        return {}
    out: dict = {f"{p}/{proto}": None for p, proto in exposed(c.Config, c.HostConfig)}
    for m in c.PortMappings or []:
        key = f"{m['ContainerPort']}/{m['Proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": m["HostIp"], "HostPort": str(m["HostPort"])}]
    return out


def summary_ports(c) -> list[dict]:
    """``Ports`` of *c*'s ``GET /containers/json`` item (module docstring)."""
    if not c.State.running:
        return []
    out = []
    for key, bindings in inspect_ports(c).items():
        port, proto = parse_key(key)
        if not bindings:
            out.append({"PrivatePort": port, "Type": proto})
        for b in bindings or []:
            out.append({"IP": b["HostIp"], "PrivatePort": port, "PublicPort": int(b["HostPort"]), "Type": proto})
    return out
