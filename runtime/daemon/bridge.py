"""The bridge driver (libnetwork's ``bridge``): one Linux bridge per network in capsized's own
network namespace — ``capsize0`` for the default ``bridge`` network (dockerd's ``docker0``; IPAM
pool ``bridge``, 172.17.0.1/16 from Docker's default pools, :mod:`runtime.daemon.ipam`),
``br-<12 hex of the network id>`` for a user-defined one (as dockerd) — with the gateway address
on it, and for each container on it a veth pair: one end ``veth<7 hex>`` on the bridge (the
container id's first 7 for the default bridge, else those of sha256(container id/network id)),
the other moved into the container's sandbox as ``eth<N>`` (eth0 for its first network) with its
address, a MAC (the one asked for, else Docker's ``02:42`` + the four address bytes) and, when
the sandbox has none yet and the network is not ``--internal``, a default route through the
gateway (dockerd: the first network's gateway stays the default).

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
from runtime.errors import CapsizeError, InvalidArgument

DEVICE = "capsize0"          # dockerd's docker0
NETWORK = "bridge"           # the IPAM pool's (and the network's) name
SELF = "/proc/self/ns/net"   # capsized's own namespace (that of its main thread)


def mac_of(address: str) -> str:
    """Docker's MAC for an IPv4 *address*: ``02:42:`` and its four bytes (``02:42:ac:11:00:02``)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def _ensure_device(device: str, gateway: str, prefixlen: int) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=device)
        if not found:
            ip.link("add", ifname=device, kind="bridge")
            found = ip.link_lookup(ifname=device)
        index = found[0]
        if not any(a.get_attr("IFA_ADDRESS") == gateway for a in ip.get_addr(index=index)):
            ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ip.link("set", index=index, state="up")


def _make_veth(device: str, host_end: str, peer: str, sandbox_key: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        ip.link("add", ifname=host_end, kind="veth", peer={"ifname": peer})
        try:
            index = ip.link_lookup(ifname=host_end)[0]
            ip.link("set", index=index, master=ip.link_lookup(ifname=device)[0], state="up")
            with open(sandbox_key) as ns:
                ip.link("set", index=ip.link_lookup(ifname=peer)[0], net_ns_fd=ns.fileno())
        except BaseException:
            ip.link("del", ifname=host_end)
            raise


def _configure(peer: str, ifname: str, address: str, prefixlen: int, gateway: str | None, mac: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        index = ip.link_lookup(ifname=peer)[0]
        ip.link("set", index=index, ifname=ifname, address=mac)
        ip.addr("add", index=index, address=address, prefixlen=prefixlen)
        ip.link("set", index=index, state="up")
        if gateway and not any(r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY") for r in ip.route("dump")):
            ip.route("add", dst="default", gateway=gateway)


def free_ifname(sandbox_key: str) -> str:
    """The first ``eth<N>`` the sandbox at *sandbox_key* has not (netlink, on a thread joined to it)."""
    import socket
    names = {n for _, n in netns.run_in(sandbox_key, socket.if_nameindex)}
    return next(f"eth{i}" for i in range(len(names) + 1) if f"eth{i}" not in names)


def _delete_link(name: str) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ip:
        if ip.link_lookup(ifname=name):
            ip.link("del", ifname=name)


def host_ifname(cid: str, network_id: str, default: bool) -> str:
    """The bridge end's name of container *cid* on network *network_id* (see the module docstring)."""
    return "veth" + (cid[:7] if default else hashlib.sha256(f"{cid}/{network_id}".encode()).hexdigest()[:7])


def _check_mac(mac: str) -> str:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address: {mac}")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address: {mac} is a multicast address")
    return mac.lower()


class Bridge:
    """The bridge of one network: *device* in capsized's namespace, addresses from the IPAM pool
    *pool_key* of *ipam* (``request_pool(pool_key, subnet, gateway)``: made, or found again after
    a restart); *internal*: containers get no default route through it."""

    def __init__(self, ipam, pool_key: str, network_id: str, device: str = DEVICE, internal: bool = False,
                 subnet: str | None = None, gateway: str | None = None):
        self.ipam = ipam
        self.pool_key = pool_key
        self.network_id = network_id
        self.device = device
        self.internal = internal
        self.default = device == DEVICE
        self.pool = ipam.request_pool(pool_key, subnet, gateway)
        self.prefixlen = ipaddress.ip_network(self.pool["subnet"]).prefixlen
        try:
            netns.run_in(SELF, _ensure_device, device, self.pool["gateway"], self.prefixlen)
        except Exception as e:  # noqa: BLE001 - netlink's errors are OSError subclasses or its own
            raise CapsizeError(f"cannot set up bridge {device}: {e}") from None

    def attach(self, cid: str, sandbox_key: str, network_name: str, address: str | None = None,
               mac: str | None = None) -> dict:
        """Give container *cid* (its sandbox at *sandbox_key*) an endpoint on the bridge: the
        address *address* (``--ip``) or the next free one, MAC *mac* or Docker's; returns the
        runtime fields of its ``EndpointSettings`` (Engine API) with ``HostIfName`` and
        ``IfName`` (capsize's own, not shown) for :meth:`detach`."""
        mac = _check_mac(mac) if mac else None
        address = self.ipam.request_address(self.pool_key, address)
        host_end = host_ifname(cid, self.network_id, self.default)
        peer = "ceth" + host_end[4:]
        mac = mac or mac_of(address)
        try:
            netns.run_in(SELF, _make_veth, self.device, host_end, peer, sandbox_key)
            ifname = free_ifname(sandbox_key)
            netns.run_in(sandbox_key, _configure, peer, ifname, address, self.prefixlen,
                         None if self.internal else self.pool["gateway"], mac)
        except Exception as e:  # noqa: BLE001
            self._forget(host_end, address)
            raise CapsizeError(f"failed to attach {cid[:12]} to network {network_name}: {e}") from None
        return {"NetworkID": self.network_id,
                "EndpointID": hashlib.sha256(f"{cid}/{self.network_id}/{address}".encode()).hexdigest(),
                "Gateway": self.pool["gateway"], "IPAddress": address, "IPPrefixLen": self.prefixlen,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac,
                "HostIfName": host_end, "IfName": ifname}

    def _forget(self, host_end: str, address: str) -> None:
        try:
            netns.run_in(SELF, _delete_link, host_end)
        except Exception:  # noqa: BLE001 - gone with its namespace is the usual case
            pass
        self.ipam.release_address(self.pool_key, address)

    def detach(self, endpoint: dict) -> None:
        """Undo :meth:`attach`: the veth deleted (if its namespace still holds it), the address freed."""
        self._forget(endpoint.get("HostIfName") or "", endpoint.get("IPAddress") or "")

    def remove(self) -> None:
        """The bridge device deleted and the pool released (``docker network rm``)."""
        try:
            netns.run_in(SELF, _delete_link, self.device)
        except Exception as e:  # noqa: BLE001
            raise CapsizeError(f"cannot delete bridge {self.device}: {e}") from None
        self.ipam.release_pool(self.pool_key)

