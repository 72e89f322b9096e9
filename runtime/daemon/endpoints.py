"""A container's endpoints on networks (libnetwork's endpoints and dockerd's
``daemon/container_operations.go``): which networks it is on, and its veths while it runs.

A container keeps ``Networks`` (:class:`runtime.daemon.model.Container`): network name ->
Engine API ``EndpointSettings`` (``IPAMConfig``, ``Links``, ``Aliases``, ``NetworkID``,
``EndpointID``, ``Gateway``, ``IPAddress``, ``IPPrefixLen``, ``IPv6Gateway``,
``GlobalIPv6Address``, ``GlobalIPv6PrefixLen``, ``MacAddress``, ``DriverOpts``), plus capsize's
own ``HostIfName``/``IfName`` (the veth's two names) while attached, never shown. The runtime
fields are filled while it runs and emptied when it stops, as dockerd's inspect shows them.

* :func:`configure` — at create, from ``HostConfig.NetworkMode`` and
  ``NetworkingConfig.EndpointsConfig`` (API 1.41: one network at most, dockerd's ``Container
  cannot be connected to network endpoints: A, B``): ``default``/``bridge`` -> ``bridge``,
  ``host``, ``none``, a network's name or id -> that network (400 ``network X not found``),
  ``container:<ref>`` -> none of its own. ``--ip`` (``IPAMConfig.IPv4Address``) needs a
  user-defined network with a subnet given at create (``user specified IP address is supported
  only when connecting to networks with user configured subnets``); ``--network-alias`` needs a
  user-defined network (``network-scoped alias is supported only for containers in user defined
  networks``). On a user-defined network the container's short id is one more alias (as dockerd).
* :func:`attach_all` — at start, after the sandbox is made: a veth on each network's bridge, in
  order (eth0, eth1...); ``--mac-address`` (``Config.MacAddress``) for the first; events
  ``network connect``. A failure detaches what was attached and raises.
* :func:`detach_all` — when the task is gone (or at the sweep): every veth and address released;
  events ``network disconnect``.
* :func:`connect` / :func:`disconnect` — ``POST /networks/{id}/connect`` / ``disconnect``: on a
  running container at once, on a stopped one in its record only.
* :func:`attached` — the ``Containers`` of ``GET /networks/{id}``.

Only in capsized's own namespace are veths made (``Networks.private``); in the host's the
endpoints stay empty and the container has ``lo`` only. Names (``/etc/hosts``) are
:mod:`runtime.daemon.hostsfile`'s, told after each change here.

Errors: InvalidArgument (400), NotFound (404), PermissionDenied (403: ``host``/``none`` and a
shared namespace cannot be connected), AlreadyExists (409: already connected), the bridge's.
"""

from __future__ import annotations

from runtime.daemon.networks import PREDEFINED
from runtime.errors import AlreadyExists, CapsizeError, InvalidArgument, NotFound, PermissionDenied

#: the fields of EndpointSettings a running endpoint fills (emptied when it stops)
RUNTIME_FIELDS = {"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                  "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": ""}
HIDDEN = ("HostIfName", "IfName")


def settings(rec: dict, cid: str, config: dict | None) -> dict:
    """The ``EndpointSettings`` of a container *cid* (not running) on network *rec*, from the
    client's ``EndpointConfig`` *config* (validated here)."""
    config = config or {}
    if not isinstance(config, dict):
        raise InvalidArgument("EndpointSettings must be an object")
    ipam = config.get("IPAMConfig") or None
    if ipam is not None:
        if not isinstance(ipam, dict):
            raise InvalidArgument("IPAMConfig must be an object")
        if ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
            raise InvalidArgument("capsize has IPv4 networks only (--ip6, --link-local-ip)")
        if ipam.get("IPv4Address"):
            if rec["Name"] in PREDEFINED or not rec.get("UserSubnet"):
                raise InvalidArgument("user specified IP address is supported only when connecting to networks "
                                      "with user configured subnets")
        ipam = {"IPv4Address": ipam.get("IPv4Address") or ""} if ipam.get("IPv4Address") else None
    aliases = config.get("Aliases") or None
    if aliases is not None:
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise InvalidArgument("Aliases must be a list of strings")
        if rec["Name"] in PREDEFINED:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
    if rec["Name"] not in PREDEFINED:
        aliases = list(aliases or [])
        if cid[:12] not in aliases:
            aliases.append(cid[:12])
    if config.get("Links"):
        raise InvalidArgument("capsize does not support links (--link)")
    return {"IPAMConfig": ipam, "Links": None, "Aliases": aliases, "NetworkID": rec["Id"], **RUNTIME_FIELDS,
            "DriverOpts": config.get("DriverOpts") or None}


def configure(networks, cid: str, host: dict, networking: dict | None) -> dict:
    """``Networks`` of a new container (module docstring)."""
    mode = host.get("NetworkMode") or "default"
    eps = (networking or {}).get("EndpointsConfig") or {}
    if not isinstance(eps, dict):
        raise InvalidArgument("EndpointsConfig must be an object")
    if len(eps) > 1:
        raise InvalidArgument("Container cannot be connected to network endpoints: " + ", ".join(eps))
    if mode.startswith("container:"):
        return {}
    ref = "bridge" if mode == "default" else mode
    try:
        rec = networks.get(ref)
    except NotFound as e:   # 400, not dockerd's 404: the CLI takes a 404 at create for a missing image
        raise InvalidArgument(e.message) from None
    config = next(iter(eps.values()), None) if eps else None
    if eps and next(iter(eps)) not in (mode, ref, rec["Name"], rec["Id"]):
        raise InvalidArgument(f"network {next(iter(eps))} not found: only the network of --network "
                              f"({rec['Name']}) can be configured at create")
    if rec["Driver"] in ("host", "null"):
        if config and (config.get("IPAMConfig") or config.get("Aliases")):
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        return {rec["Name"]: settings(rec, cid, None)}
    return {rec["Name"]: settings(rec, cid, config)}


def _record_of(networks, name: str, ep: dict) -> dict:
    rec = networks.find(ep.get("NetworkID") or "") or networks.find(name)
    if rec is None:
        raise NotFound(f"network {name} not found")
    return rec


def attached(daemon, nid: str) -> dict[str, dict]:
    """``Containers`` of network *nid*'s inspect: the running containers attached to it."""
    out = {}
    for c in daemon.containers.values():
        for ep in c.Networks.values():
            if ep.get("NetworkID") == nid and ep.get("EndpointID"):
                out[c.ID] = {"Name": c.name, "EndpointID": ep["EndpointID"], "MacAddress": ep["MacAddress"],
                             "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}", "IPv6Address": ""}
    return out


def _attach_one(daemon, c, name: str, ep: dict, sandbox_key: str, mac: str | None) -> None:
    networks = daemon.networks
    rec = _record_of(networks, name, ep)
    br = networks.bridge(rec["Id"])
    if br is None:
        if rec["Driver"] == "bridge" and networks.private:
            raise CapsizeError(f"network {rec['Name']} has no bridge (it could not be set up at start-up)")
        return
    want = (ep.get("IPAMConfig") or {}).get("IPv4Address") or None
    ep.update(br.attach(c.ID, sandbox_key, rec["Name"], address=want, mac=mac))
    daemon.events.publish("network", "connect", rec["Id"], networks.event_attributes(rec, container=c.ID))


def _detach_one(daemon, c, name: str, ep: dict) -> None:
    networks = daemon.networks
    if ep.get("HostIfName") or ep.get("IPAddress"):
        br = networks.bridge(ep.get("NetworkID") or "")
        if br is not None:
            try:
                br.detach(ep)
            except CapsizeError as e:
                daemon.log.error("cannot detach from a network", container=c.ID, network=name, error=e.message)
        rec = networks.find(ep.get("NetworkID") or "")
        if rec is not None:
            daemon.events.publish("network", "disconnect", rec["Id"], networks.event_attributes(rec, container=c.ID))
    for k in HIDDEN:
        ep.pop(k, None)
    ep.update(RUNTIME_FIELDS)


def attach_all(daemon, c, sandbox_key: str) -> None:
    """Attach running container *c* (sandbox at *sandbox_key*) to each of its networks."""
    if not daemon.networks.private:
        return
    mac = c.Config.get("MacAddress") or None
    try:
        for name, ep in c.Networks.items():
            _attach_one(daemon, c, name, ep, sandbox_key, mac)
            mac = None
    except BaseException:
        detach_all(daemon, c)
        raise
    daemon.names_changed(c)


def detach_all(daemon, c) -> None:
    """Every endpoint of *c* released (its sandbox is going or gone)."""
    had = any(ep.get("EndpointID") for ep in c.Networks.values())
    for name, ep in c.Networks.items():
        _detach_one(daemon, c, name, ep)
    if had:
        daemon.names_changed(c)


def _connectable(c) -> None:
    mode = c.HostConfig.get("NetworkMode") or "default"
    if mode.startswith("container:") or mode in ("host", "none"):
        raise PermissionDenied("container sharing network namespace with another container or host cannot be "
                               "connected to any other network")


def connect(daemon, rec: dict, c, config: dict | None) -> None:
    """``POST /networks/{id}/connect`` of container *c* to network *rec*."""
    if rec["Driver"] in ("host", "null"):
        raise PermissionDenied(f"container cannot be disconnected from host network or connected to host network"
                               if rec["Driver"] == "host" else
                               "container cannot be connected to the none network")
    _connectable(c)
    if rec["Name"] in c.Networks or any(ep.get("NetworkID") == rec["Id"] for ep in c.Networks.values()):
        raise AlreadyExists(f"endpoint with name {c.name} already exists in network {rec['Name']}")
    ep = settings(rec, c.ID, config)
    c.Networks[rec["Name"]] = ep
    if c.State.running and c.SandboxKey and daemon.networks.private:
        try:
            _attach_one(daemon, c, rec["Name"], ep, c.SandboxKey, None)
        except BaseException:
            del c.Networks[rec["Name"]]
            raise
        daemon.names_changed(c)


def disconnect(daemon, rec: dict, c, force: bool = False) -> None:
    """``POST /networks/{id}/disconnect`` of container *c* from network *rec*."""
    name = next((n for n, ep in c.Networks.items() if ep.get("NetworkID") == rec["Id"] or n == rec["Name"]), None)
    if name is None:
        if force:
            return
        raise InvalidArgument(f"container {c.ID} is not connected to network {rec['Name']}")
    if rec["Driver"] == "host":
        raise PermissionDenied("container cannot be disconnected from host network or connected to host network")
    ep = c.Networks.pop(name)
    was = bool(ep.get("EndpointID"))
    _detach_one(daemon, c, name, ep)
    if was:
        daemon.names_changed(c)


def view(ep: dict) -> dict:
    """An endpoint as inspect shows it (capsize's own fields left out)."""
    return {k: v for k, v in ep.items() if k not in HIDDEN}
