"""capsized's netfilter rules: one nftables table, ``table inet capsize``, owned by this module
alone and written whole (libnetwork's iptables chains ``DOCKER-ISOLATION-STAGE-*`` and the nat
``POSTROUTING`` masquerade, done with nftables). Only ever in capsized's own network namespace.

The table (``nft -f -``, one transaction: the old table deleted and the new one made, so a
reader sees the old rules or the new ones, never half; :func:`ruleset` gives the text)::

    table inet capsize {
        chain forward {          # type filter hook forward priority filter; policy accept
            iifname "br-a" oifname != "br-a" drop          # br-a is --internal: nothing in or out
            oifname "br-a" iifname != "br-a" drop
            iifname "capsize0" oifname { "br-b" } drop    # no traffic between different bridges
            ...
        }
        chain postrouting {      # type nat hook postrouting priority srcnat; policy accept
            ip saddr 172.17.0.0/16 oifname != "capsize0" masquerade   # each non-internal bridge
        }
        chain prerouting {       # type nat hook prerouting priority dstnat; policy accept
            fib daddr type local jump ports                 # dockerd: -m addrtype --dst-type LOCAL -j DOCKER
        }
        chain output {           # type nat hook output priority -100 (dstnat); policy accept
            ip daddr != 127.0.0.0/8 fib daddr type local jump ports   # locally originated (not loopback)
        }
        chain ports {            # dockerd's nat DOCKER chain: one DNAT per published IPv4 port
            iifname != "capsize0" tcp dport 8080 dnat ip to 172.17.0.2:80
            iifname != "capsize0" ip daddr 127.0.0.1 udp dport 9000 dnat ip to 172.17.0.2:90
        }
    }

The ``ports`` chains (:class:`Dnat`, from :mod:`runtime.daemon.ports`) exist only while a port
is published. As dockerd with its userland proxy, traffic from the container's own bridge and to
127.0.0.0/8 is not DNATed: the proxy (``capsize-proxy``) serves it.

:func:`apply` runs it for a set of :class:`Rule` inputs (one per bridge network) and is called
after every network create/remove and at start-up (a SIGKILLed capsized's table is replaced by
one made from the networks it finds: no stale rule survives a restart); :func:`remove` deletes
the table; :func:`read` gives ``nft -j list table inet capsize`` parsed (``None``: no table).

The host's namespace is refused: :func:`apply` first checks (:func:`runtime.daemon.sandbox.scope`)
that capsized's namespace has no device but its own, and raises CapsizeError ("refusing to
touch the host's netfilter rules") otherwise — a second guard behind capsized making no bridge
there. Errors: CapsizeError with ``nft``'s own message when it fails; Unavailable (503) when the
``nft`` tool is missing (apt package ``nftables``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

FAMILY = "inet"
TABLE = "capsize"
NFT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Rule:
    """One bridge network's input to the ruleset: its device, subnet and ``--internal``."""

    device: str
    subnet: str
    internal: bool = False


@dataclass(frozen=True)
class Dnat:
    """One published IPv4 port: *host_ip* (``0.0.0.0``: any local address) *host_port*/*proto*
    to *container_ip*:*container_port* behind bridge *device*."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    device: str


def _quote(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _port_chains(ports: list[Dnat]) -> list[str]:
    if not ports:
        return []
    rules = []
    for p in ports:
        daddr = "" if p.host_ip == "0.0.0.0" else f"ip daddr {p.host_ip} "
        rules.append(f"iifname != {_quote(p.device)} {daddr}{p.proto} dport {p.host_port} "
                     f"dnat ip to {p.container_ip}:{p.container_port}")
    return ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
            "    fib daddr type local jump ports", "  }",
            "  chain output {", "    type nat hook output priority -100; policy accept;",
            "    ip daddr != 127.0.0.0/8 fib daddr type local jump ports", "  }",
            "  chain ports {", *("    " + r for r in rules), "  }"]


def ruleset(bridges: list[Rule], ports: list[Dnat] | None = None) -> str:
    """The ``nft -f`` text that replaces the table with the rules for *bridges* and the published
    *ports* (module docstring)."""
    forward, nat = [], []
    devices = [b.device for b in bridges]
    for b in bridges:
        dev = _quote(b.device)
        if b.internal:
            forward.append(f"iifname {dev} oifname != {dev} drop")
            forward.append(f"oifname {dev} iifname != {dev} drop")
        others = [_quote(d) for d in devices if d != b.device]
        if others:
            forward.append(f"iifname {dev} oifname {{ {', '.join(others)} }} drop")
        if not b.internal:
            nat.append(f"ip saddr {b.subnet} oifname != {dev} masquerade")
    body = "\n".join([
        f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}", f"table {FAMILY} {TABLE} {{",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;",
        *("    " + r for r in forward), "  }",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
        *("    " + r for r in nat), "  }", *_port_chains(ports or []), "}", ""])
    return body


def _nft(args: list[str], text: str | None = None) -> subprocess.CompletedProcess:
    from runtime.errors import CapsizeError, Unavailable
    tool = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
    if tool is None:
        raise Unavailable("the nft tool is missing (apt package nftables): capsized cannot set netfilter rules")
    try:
        r = subprocess.run([tool, *args], input=text, capture_output=True, text=True, timeout=NFT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CapsizeError(f"nft {' '.join(args)} did not finish in {NFT_TIMEOUT:g}s") from None
    if r.returncode != 0:
        raise CapsizeError(f"nft {' '.join(args)}: {r.stderr.strip() or 'exit ' + str(r.returncode)}")
    return r


def _guard() -> None:
    from runtime.daemon.sandbox import scope
    from runtime.errors import CapsizeError
    where, foreign = scope()
    if where != "private":
        raise CapsizeError("refusing to touch the host's netfilter rules: capsized's network namespace has "
                           f"devices it did not make ({', '.join(foreign)})")


def apply(bridges: list[Rule], ports: list[Dnat] | None = None) -> None:
    """Replace ``table inet capsize`` with the rules for *bridges* and *ports* (after the namespace check)."""
    _guard()
    _nft(["-f", "-"], ruleset(bridges, ports))


def remove() -> None:
    """Delete the table (nothing to do when it is missing)."""
    _guard()
    if read() is not None:
        _nft(["delete", "table", FAMILY, TABLE])


def read() -> list[dict] | None:
    """The table as ``nft -j`` lists it (its ``nftables`` items but ``metainfo``); None when absent."""
    from runtime.errors import CapsizeError
    try:
        r = _nft(["-j", "list", "table", FAMILY, TABLE])
    except CapsizeError as e:
        if "No such file or directory" in e.message:
            return None
        raise
    return [item for item in json.loads(r.stdout).get("nftables", []) if "metainfo" not in item]
