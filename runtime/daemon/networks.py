"""capsized's networks as objects (libnetwork's controller and its store): the predefined
``bridge``, ``host`` and ``none`` and the user-defined bridge networks, their records and views.

State: ``<root>/daemon/network/networks.json``, ``{"networks": {id: record}}`` for the
user-defined networks only (the predefined ones are made again at every start, with ids
derived from the engine id so that they never change), written atomically (a rename) before a
call returns; a record is the Engine API ``Network`` without ``Containers``. Each bridge network
has a :class:`runtime.daemon.bridge.Bridge` (device ``capsize0`` or ``br-<id[:12]>``), made at
create and found again (or made again) at start-up; after each change of the bridges the
netfilter table is written again (:meth:`Networks.sync_rules`, :mod:`runtime.daemon.netfilter`:
isolation between bridges, ``--internal``, masquerade).

* :meth:`Networks.get` — by full id, full name, then unique id prefix (dockerd's order);
  404 ``network X not found``; an ambiguous prefix is 400 ``network X is ambiguous (N matches found
  based on ID prefix)``.
* :meth:`Networks.create` — ``POST /networks/create`` body ``NetworkCreateRequest``: ``Name``,
  ``Driver`` (``bridge``, the default; others 501), ``Internal``, ``Labels``, ``IPAM``
  ``{"Driver": "default", "Config": [{"Subnet", "Gateway"}]}`` (one IPv4 config at most; an
  ``IPRange`` or ``AuxiliaryAddresses`` is 501), ``Options`` (``com.docker.network.bridge.name``
  names the device; others 501 rather than ignored), ``EnableIPv6`` (501), ``Attachable`` (kept, as dockerd's local bridge), ``CheckDuplicate``
  (always: a taken name is 409 ``network with name NAME already exists``). In the host's network
  namespace (:func:`runtime.daemon.sandbox.scope` ``host``) capsized makes no bridge: 501.
* :meth:`Networks.remove` — the bridge device goes and its pool is released; a predefined network
  is 403 ``NAME is a pre-defined network and cannot be removed``; one with a running container on
  it is 409 ``error while removing network: network NAME id ID has active endpoints``.
* :meth:`Networks.view` — ``GET /networks/{id}`` (``Network``): ``Containers`` maps the id of each
  container attached now to ``{"Name", "EndpointID", "MacAddress", "IPv4Address": "a.b.c.d/n",
  "IPv6Address": ""}``.

Errors are :mod:`runtime.errors` classes with dockerd's texts (see each method).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from runtime import atomicfile
from runtime.daemon import bridge as bridgemod
from runtime.daemon.clock import rfc3339
from runtime.daemon.names import new_id
from runtime.errors import (AlreadyExists, CapsizeError, FailedPrecondition, InvalidArgument, NotFound,
                            PermissionDenied, Unimplemented)

PREDEFINED = ("bridge", "host", "none")
DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
#: the ``Options`` capsize honours (others are refused, not ignored)
OPTION_DEVICE = "com.docker.network.bridge.name"
DEFAULT_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0", OPTION_DEVICE: bridgemod.DEVICE,
    "com.docker.network.driver.mtu": "1500",
}


def record(name: str, nid: str, driver: str, created_ns: int, ipam_config: list, internal: bool = False,
           options: dict | None = None, labels: dict | None = None, ipam_options=None) -> dict:
    """A network's record: the Engine API ``Network`` fields but ``Containers``."""
    return {"Name": name, "Id": nid, "Created": rfc3339(created_ns), "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": ipam_options, "Config": ipam_config},
            "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": options or {}, "Labels": labels or {}}


def _str_dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"{what} must be an object of strings")
    return dict(value)


class Networks:
    """Every network of one capsized (loaded by :meth:`boot`); used on the event loop."""

    def __init__(self, data_root: str, daemon_id: str, durable: bool = False):
        self.path = os.path.join(data_root, "daemon", "network", "networks.json")
        self.data_root = data_root
        self.daemon_id = daemon_id
        self.durable = durable
        self.records: dict[str, dict] = {}     # id -> record, predefined first
        self.bridges: dict[str, bridgemod.Bridge] = {}   # id -> its bridge (private scope only)
        self.ipam = None
        self.private = False
        #: the published ports' DNAT rules (:func:`runtime.daemon.ports.dnat_rules`, set by the daemon)
        self.port_rules = list

    def predefined_id(self, name: str) -> str:
        return hashlib.sha256(f"{self.daemon_id}/{name}".encode()).hexdigest()

    # -- start-up ---------------------------------------------------------------------------
    def boot(self, private: bool, log) -> None:
        """Make the predefined networks, load the user-defined ones and (in a namespace of
        capsized's own, *private*) every bridge: netlink calls, run off the event loop. A
        network whose bridge cannot be made again is logged and kept (its containers' starts fail)."""
        self.private = private
        created = time.time_ns()
        try:
            with open(self.path) as f:
                saved = json.load(f).get("networks") or {}
        except FileNotFoundError:
            saved = {}
        for name in PREDEFINED:
            nid = self.predefined_id(name)
            self.records[nid] = record(name, nid, DRIVERS[name], created, [],
                                       options=DEFAULT_BRIDGE_OPTIONS if name == "bridge" else {})
        if private:
            from runtime.daemon.ipam import Ipam
            self.ipam = Ipam(self.data_root, durable=self.durable)
            nid = self.predefined_id("bridge")
            br = bridgemod.Bridge(self.ipam, bridgemod.NETWORK, nid)
            self.bridges[nid] = br
            self.records[nid]["IPAM"]["Config"] = [{"Subnet": br.pool["subnet"], "Gateway": br.pool["gateway"]}]
            self.records[nid]["IPAM"]["Options"] = None
        for nid, rec in saved.items():
            self.records[nid] = rec
            if private:
                try:
                    self.bridges[nid] = self._bridge(rec)
                except CapsizeError as e:
                    log.error("cannot set up the bridge of a network", network=rec["Name"], error=e.message)
        self.sync_rules()   # a crash's table replaced by one made from what is found

    def _bridge(self, rec: dict) -> bridgemod.Bridge:
        cfg = (rec["IPAM"]["Config"] or [{}])[0]
        device = rec["Options"].get(OPTION_DEVICE) or "br-" + rec["Id"][:12]
        return bridgemod.Bridge(self.ipam, rec["Id"], rec["Id"], device, internal=rec["Internal"],
                                subnet=cfg.get("Subnet"), gateway=cfg.get("Gateway"))

    def sync_rules(self) -> None:
        """``table inet capsize`` made again for the bridges there are now (:mod:`runtime.daemon.netfilter`)."""
        from runtime.daemon import netfilter
        if self.private:
            netfilter.apply([netfilter.Rule(br.device, br.pool["subnet"], br.internal)
                             for br in self.bridges.values()], self.port_rules())

    def _save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        custom = {nid: r for nid, r in self.records.items() if r["Name"] not in PREDEFINED}
        atomicfile.write(self.path, json.dumps({"networks": custom}, sort_keys=True), durable=self.durable,
                         mode=0o600)

    # -- lookups ----------------------------------------------------------------------------
    def get(self, ref: str) -> dict:
        """The record named or identified by *ref* (module docstring); NotFound otherwise."""
        if ref in self.records:
            return self.records[ref]
        for r in self.records.values():
            if r["Name"] == ref:
                return r
        hits = [r for nid, r in self.records.items() if ref and nid.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(hits)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def find(self, ref: str) -> dict | None:
        try:
            return self.get(ref)
        except NotFound:
            return None

    def bridge(self, nid: str) -> bridgemod.Bridge | None:
        return self.bridges.get(nid)

    @staticmethod
    def builtin(rec: dict) -> bool:
        return rec["Name"] in PREDEFINED

    # -- create / remove --------------------------------------------------------------------
    def create(self, body: dict) -> dict:
        """``POST /networks/create`` (see the module docstring); returns the new record."""
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("network name is required" if not name else "Name must be a string")
        if not _NAME.match(name):
            raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        driver = body.get("Driver") or "bridge"
        if name in PREDEFINED or any(r["Name"] == name for r in self.records.values()):
            if name in PREDEFINED and driver in ("host", "null"):
                raise PermissionDenied(f"only one instance of \"{name}\" network is allowed")
            raise AlreadyExists(f"network with name {name} already exists")
        if driver != "bridge":
            raise Unimplemented(f"capsize has the bridge network driver only, not {driver!r}")
        if body.get("EnableIPv6"):
            raise Unimplemented("capsize has IPv4 networks only (--ipv6)")
        config_from = body.get("ConfigFrom") or {}
        if body.get("Ingress") or body.get("ConfigOnly") or (isinstance(config_from, dict) and config_from.get("Network")):
            raise Unimplemented("capsize has no swarm networks (--ingress, --config-only, --config-from)")
        attachable = body.get("Attachable", False)   # a local bridge takes it as dockerd does (swarm's flag)
        if not isinstance(attachable, bool):
            raise InvalidArgument("Attachable must be a boolean")
        labels = _str_dict(body.get("Labels"), "Labels")
        options = _str_dict(body.get("Options"), "Options")
        extra = sorted(k for k in options if k != OPTION_DEVICE)
        if extra:
            raise Unimplemented(f"capsize does not support the bridge driver options {', '.join(extra)}")
        device = options.get(OPTION_DEVICE)
        if device is not None and not (0 < len(device) < 16 and "/" not in device and " " not in device):
            raise InvalidArgument(f"invalid bridge name {device!r}")
        internal = body.get("Internal", False)
        if not isinstance(internal, bool):
            raise InvalidArgument("Internal must be a boolean")
        ipam = body.get("IPAM") or {}
        if not isinstance(ipam, dict):
            raise InvalidArgument("IPAM must be an object")
        if (ipam.get("Driver") or "default") != "default":
            raise Unimplemented(f"capsize has the default IPAM driver only, not {ipam['Driver']!r}")
        configs = ipam.get("Config") or []
        if not isinstance(configs, list) or not all(isinstance(x, dict) for x in configs):
            raise InvalidArgument("IPAM.Config must be a list of objects")
        if len(configs) > 1:
            raise Unimplemented("capsize takes one IPv4 subnet per network")
        cfg = configs[0] if configs else {}
        if cfg.get("IPRange") or cfg.get("AuxiliaryAddresses"):
            raise Unimplemented("capsize does not support --ip-range or --aux-address")
        if not self.private:
            raise Unimplemented("capsized runs in the host's network namespace, where it makes no bridge: run it "
                                "in a network namespace of its own (capsize engine up) to create networks")
        nid = new_id()
        rec = record(name, nid, "bridge", time.time_ns(), [], internal=internal, options=options, labels=labels,
                     ipam_options=_str_dict(ipam.get("Options"), "IPAM.Options"))
        rec["IPAM"]["Config"] = [{k: cfg[k] for k in ("Subnet", "Gateway") if cfg.get(k)}]
        rec["Attachable"] = attachable
        try:
            br = self._bridge(rec)
        except BaseException:
            self.ipam.release_pool(nid)
            raise
        rec["IPAM"]["Config"] = [{"Subnet": br.pool["subnet"], "Gateway": br.pool["gateway"]}]
        rec["UserSubnet"] = bool(cfg.get("Subnet"))   # --ip needs it (capsize's own field, not shown)
        self.bridges[nid] = br
        self.records[nid] = rec
        try:
            self._save()
            self.sync_rules()
        except BaseException:
            self.records.pop(nid)
            self.bridges.pop(nid).remove()
            self._save()
            raise
        return rec

    def remove(self, rec: dict, attached: list[str]) -> None:
        """``DELETE /networks/{id}``; *attached*: the ids of the containers attached now."""
        if self.builtin(rec):
            raise PermissionDenied(f"{rec['Name']} is a pre-defined network and cannot be removed")
        if attached:
            raise FailedPrecondition(f"error while removing network: network {rec['Name']} id {rec['Id']} "
                                     f"has active endpoints")
        br = self.bridges.pop(rec["Id"], None)
        del self.records[rec["Id"]]
        self._save()
        if br is not None:
            br.remove()
            self.sync_rules()
        elif self.ipam is not None:
            self.ipam.release_pool(rec["Id"])

    # -- views ------------------------------------------------------------------------------
    @staticmethod
    def view(rec: dict, containers: dict[str, dict]) -> dict:
        """``Network`` of the Engine API: *rec* with ``Containers`` (id -> ``EndpointResource``)."""
        return {**{k: v for k, v in rec.items() if k != "UserSubnet"}, "Containers": containers}

    def event_attributes(self, rec: dict, **extra) -> dict:
        return {"name": rec["Name"], "type": rec["Driver"], **extra}
