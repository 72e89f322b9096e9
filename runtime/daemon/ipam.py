"""capsized's IPv4 address management (libnetwork's default IPAM driver, ``ipams/default``):
pools (subnets) for networks and addresses in them, never one handed out twice, kept on disk.

State: ``<root>/daemon/network/ipam.json``, ``{"pools": {network_id: {"subnet": "a.b.c.d/n",
"gateway": "a.b.c.e", "allocated": [addresses], "last": address}}}``, written atomically (a
rename) before a call returns, so a SIGKILL of capsized at any point leaves either the old or
the new state and a restart hands out nothing that was handed out before; fsync'ed too only when
*durable* (``capsized --fsync-state``, as the container records: then a power loss keeps it).

* :meth:`Ipam.request_pool` — a subnet for a network: the one asked for (``--subnet``; it must not
  overlap another pool: ``Pool overlaps with other one on this address space``), else the first
  free of Docker's default pools (``172.17.0.0/16`` .. ``172.31.0.0/16``, then
  ``192.168.0.0/20`` .. ``192.168.240.0/20``: dockerd's ``default-address-pools``); the gateway is
  the one asked for (``--gateway``, inside the subnet) or the subnet's first address.
* :meth:`Ipam.request_address` — an address of a pool: the one asked for (``--ip``; ``Address
  already in use`` when taken), else the next free one after the last handed out (libnetwork's
  bitmap walks on from its cursor, so a freed address is not reused at once); the network, the
  broadcast address and the gateway are never handed out. None left: ``no available IPv4
  addresses on this network's address pools``.
* :meth:`Ipam.release_address`, :meth:`Ipam.release_pool`.
* :meth:`Ipam.retain` — at start-up: a pool's addresses no container holds any more are freed
  (an address is saved when handed out, before the container's record names it: a capsized
  killed in between leaves it allocated).

Errors: InvalidArgument (400) for malformed or out-of-subnet input, AlreadyExists (409) for a
taken address or an overlapping subnet, Unavailable (503) for an exhausted pool or no free
default pool, NotFound (404) for an unknown pool.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os

from runtime import atomicfile
from runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable

#: dockerd's default address pools (base, size): 172.17-31.0.0/16, then 192.168.x.0/20
DEFAULT_POOLS = tuple((f"172.{i}.0.0/16", 16) for i in range(17, 32)) + (("192.168.0.0/16", 20),)


def _network(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None
    if net.version != 4:
        raise InvalidArgument(f"capsize has IPv4 networks only: {text}")
    return net


def _address(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid IPv4 address: {text}") from None


def default_subnets():
    """Docker's default subnets, in the order dockerd hands them out."""
    for base, size in DEFAULT_POOLS:
        yield from ipaddress.ip_network(base).subnets(new_prefix=size)


class Ipam:
    """The pools and addresses under ``<data_root>/daemon/network/`` (loaded at construction)."""

    def __init__(self, data_root: str, durable: bool = True):
        self.path = os.path.join(data_root, "daemon", "network", "ipam.json")
        self.durable = durable
        try:
            with open(self.path) as f:
                self.pools: dict[str, dict] = json.load(f).get("pools") or {}
        except FileNotFoundError:
            self.pools = {}

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        atomicfile.write(self.path, json.dumps({"pools": self.pools}, sort_keys=True), durable=self.durable,
                         mode=0o600)

    def _pool(self, network_id: str) -> dict:
        try:
            return self.pools[network_id]
        except KeyError:
            raise NotFound(f"no address pool for network {network_id}") from None

    def request_pool(self, network_id: str, subnet: str | None = None, gateway: str | None = None) -> dict:
        """A pool for *network_id*: ``{"subnet", "gateway"}`` (see the module docstring)."""
        if network_id in self.pools:
            return {k: self.pools[network_id][k] for k in ("subnet", "gateway")}
        taken = [ipaddress.ip_network(p["subnet"]) for p in self.pools.values()]
        if subnet:
            net = _network(subnet)
            if any(net.overlaps(t) for t in taken):
                raise AlreadyExists("Pool overlaps with other one on this address space")
        else:
            if gateway:
                raise InvalidArgument("a gateway needs a subnet (--subnet)")
            net = next((n for n in default_subnets() if not any(n.overlaps(t) for t in taken)), None)
            if net is None:
                raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the "
                                  "defaults to assign to the network")
        if net.num_addresses < 4:
            raise InvalidArgument(f"subnet {net} is too small for a network")
        gw = _address(gateway) if gateway else net.network_address + 1
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"no matching subnet for gateway {gw}")
        self.pools[network_id] = {"subnet": str(net), "gateway": str(gw), "allocated": [], "last": str(gw)}
        self._save()
        return {"subnet": str(net), "gateway": str(gw)}

    def release_pool(self, network_id: str) -> None:
        if self.pools.pop(network_id, None) is not None:
            self._save()

    def request_address(self, network_id: str, address: str | None = None) -> str:
        """An address of *network_id*'s pool (the one asked for, else the next free); see the module docstring."""
        pool = self._pool(network_id)
        net = ipaddress.ip_network(pool["subnet"])
        used = set(pool["allocated"]) | {pool["gateway"]}
        reserved = {str(net.network_address), str(net.broadcast_address)}
        if address:
            ip = _address(address)
            if ip not in net or str(ip) in reserved:
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {ip}")
            if str(ip) in used:
                raise AlreadyExists("Address already in use")
            chosen = str(ip)
        else:
            chosen = self._next_free(net, used | reserved, ipaddress.IPv4Address(pool["last"]))
            if chosen is None:
                raise Unavailable(f"no available IPv4 addresses on this network's address pools: {network_id}")
            pool["last"] = chosen
        pool["allocated"].append(chosen)
        self._save()
        return chosen

    @staticmethod
    def _next_free(net, used: set[str], last) -> str | None:
        first, end = int(net.network_address) + 1, int(net.broadcast_address)   # [first, end)
        start = int(last) + 1 if first <= int(last) + 1 < end else first
        for i in itertools.chain(range(start, end), range(first, start)):
            if str(ipaddress.IPv4Address(i)) not in used:
                return str(ipaddress.IPv4Address(i))
        return None

    def release_address(self, network_id: str, address: str) -> None:
        """Give *address* back to *network_id*'s pool (unknown pool or address: nothing to do)."""
        pool = self.pools.get(network_id)
        if pool is not None and address in pool["allocated"]:
            pool["allocated"].remove(address)
            self._save()

    def retain(self, network_id: str, keep: set[str]) -> list[str]:
        """Free every address of *network_id*'s pool that is not in *keep* (one save); returns
        the addresses freed, in allocation order (unknown pool: nothing to do, ``[]``)."""
        pool = self.pools.get(network_id)
        if pool is None:
            return []
        dropped = [a for a in pool["allocated"] if a not in keep]
        if dropped:
            pool["allocated"] = [a for a in pool["allocated"] if a in keep]
            self._save()
        return dropped
