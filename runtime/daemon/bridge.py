"""The default ``bridge`` network (libnetwork's bridge driver, its ``docker0``): a bridge device
``capsize0`` in capsized's own network namespace, with the gateway address of the IPAM pool
``bridge`` (172.17.0.1/16 from Docker's default pools, :mod:`runtime.daemon.ipam`), and for each
container on it a veth pair: one end ``veth<7 hex of the id>`` on the bridge, the other moved
into the container's sandbox as ``eth0`` with its address, Docker's MAC (``02:42`` + the four
address bytes) and a default route through the gateway.

Only when capsized runs in a network namespace of its own (:func:`runtime.daemon.sandbox.scope`
``private``); in the host's, :class:`Bridge` is never made and containers keep ``lo`` only.
All links, addresses and routes go through netlink (pyroute2), each call on a thread of its own
joined to the right namespace (:func:`runtime.netns.run_in`; pyroute2's synchronous API cannot
run on capsized's event-loop thread). The veth goes with its sandbox (a namespace's devices die
with it); :meth:`Bridge.detach` deletes the bridge end anyway, for a namespace still held.

Errors: CapsizeError (500) with the kernel's text when a link cannot be made; the IPAM's errors.
"""

from __future__ import annotations

import hashlib
import ipaddress

from runtime import netns
from runtime.errors import CapsizeError

DEVICE = "capsize0"          # dockerd's docker0
NETWORK = "bridge"           # the IPAM pool's (and the network's) name
SELF = "/proc/self/ns/net"   # capsized's own namespace (that of its main thread)


def mac_of(address: str) -> str:
    """Docker's MAC for an IPv4 *address*: ``02:42:`` and its four bytes (``02:42:ac:11:00:02``)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def _ensure_device(gateway: str, prefixlen: int) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=DEVICE)
        if not found:
            ip.link("add", ifname=DEVICE, kind="bridge")
            found = ip.link_lookup(ifname=DEVICE)
        index = found[0]
        if not any(a.get_attr("IFA_ADDRESS") == gateway for a in ip.get_addr(index=index)):
            ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ip.link("set", index=index, state="up")


def _make_veth(host_end: str, peer: str, sandbox_key: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        ip.link("add", ifname=host_end, kind="veth", peer={"ifname": peer})
        try:
            index = ip.link_lookup(ifname=host_end)[0]
            ip.link("set", index=index, master=ip.link_lookup(ifname=DEVICE)[0], state="up")
            with open(sandbox_key) as ns:
                ip.link("set", index=ip.link_lookup(ifname=peer)[0], net_ns_fd=ns.fileno())
        except BaseException:
            ip.link("del", ifname=host_end)
            raise


def _configure_eth0(peer: str, address: str, prefixlen: int, gateway: str, mac: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        index = ip.link_lookup(ifname=peer)[0]
        ip.link("set", index=index, ifname="eth0", address=mac)
        ip.addr("add", index=index, address=address, prefixlen=prefixlen)
        ip.link("set", index=index, state="up")
        ip.route("add", dst="default", gateway=gateway)


def _delete_link(name: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        if ip.link_lookup(ifname=name):
            ip.link("del", ifname=name)


class Bridge:
    """The default bridge network of the daemon whose id is *daemon_id* (its IPAM is *ipam*)."""

    def __init__(self, ipam, daemon_id: str):
        self.ipam = ipam
        self.pool = ipam.request_pool(NETWORK)
        self.network_id = hashlib.sha256(f"{daemon_id}/{NETWORK}".encode()).hexdigest()
        self.prefixlen = ipaddress.ip_network(self.pool["subnet"]).prefixlen
        try:
            netns.run_in(SELF, _ensure_device, self.pool["gateway"], self.prefixlen)
        except Exception as e:  # noqa: BLE001 - netlink's errors are OSError subclasses or its own
            raise CapsizeError(f"cannot set up bridge {DEVICE}: {e}") from None

    def attach(self, cid: str, sandbox_key: str) -> dict:
        """Give container *cid* (its sandbox at *sandbox_key*) an endpoint on the bridge; returns
        it (``EndpointSettings`` of the Engine API, with ``HostIfName``) for :meth:`detach`."""
        address = self.ipam.request_address(NETWORK)
        host_end, peer = "veth" + cid[:7], "ceth" + cid[:7]
        mac = mac_of(address)
        try:
            netns.run_in(SELF, _make_veth, host_end, peer, sandbox_key)
            netns.run_in(sandbox_key, _configure_eth0, peer, address, self.prefixlen, self.pool["gateway"], mac)
        except Exception as e:  # noqa: BLE001
            self._forget(host_end, address)
            raise CapsizeError(f"failed to attach {cid[:12]} to network {NETWORK}: {e}") from None
        return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": self.network_id,
                "EndpointID": hashlib.sha256(f"{cid}/{address}".encode()).hexdigest(),
                "Gateway": self.pool["gateway"], "IPAddress": address, "IPPrefixLen": self.prefixlen,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac,
                "DriverOpts": None, "HostIfName": host_end}

    def _forget(self, host_end: str, address: str) -> None:
        try:
            netns.run_in(SELF, _delete_link, host_end)
        except Exception:  # noqa: BLE001 - gone with its namespace is the usual case
            pass
        self.ipam.release_address(NETWORK, address)

    def detach(self, endpoint: dict) -> None:
        """Undo :meth:`attach`: the bridge end deleted (if its namespace still holds it), the address freed."""
        self._forget(endpoint.get("HostIfName") or "", endpoint.get("IPAddress") or "")
