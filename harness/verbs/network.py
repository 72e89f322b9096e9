"""Network verbs: the ``network.reachable`` check and the faults on what an engine's bridge
driver made (a port proxy, a container's veth, a bridge, the IPAM pool).

One registration each (:mod:`harness.verbs.registry`). Everything acts inside the engine's own
network namespace (:attr:`harness.engines.base.Engine.netns_path`, entered with ``nsenter
--net``), never the host's: a fault on an engine without one (the docker engine with option
``network: none``) fails with that reason, and so does one whose namespace is the harness's own.

* ``network.reachable`` — TCP from container ``container`` (``docker exec <c> nc -w T HOST
  PORT``: busybox nc, connect and read what the peer says) or, without ``container``, from the
  engine's namespace (a socket connect there) to ``to`` (a name, alias or address, resolved as
  the container resolves it), to the address of container ``address_of`` (its inspect's
  ``NetworkSettings.Networks[network].IPAddress``) or to the published host port of
  ``published`` (inspect's ``NetworkSettings.Ports["PORT/tcp"]``, dialled on 127.0.0.1 for a
  0.0.0.0 binding). Evidence: the command, its exit code and output, the addresses of both ends.
* ``fault.proxy.kill`` — SIGKILL the userland proxies (docker-proxy, capsize-proxy) serving a
  container's published ports (no undo: the daemon owns them);
* ``fault.veth.delete`` — delete the host end of a container's veth (the pair goes with it; no undo);
* ``fault.bridge.down`` — ``ip link set <bridge> down`` of a network (undo kind ``link-up``);
* ``fault.ipam.fill`` — start containers on a network until the daemon refuses one for want
  of addresses (undo kind ``remove-containers``: force-removes them).
"""

from __future__ import annotations

import socket
import time

from pydantic import Field, model_validator

from harness.observe import netstate
from harness.reference.cleanup import net_namespace_inode
from harness.scenario.types import ContainerName, Duration, Model
from harness.verbs.registry import FAIL, PASS, Verdict, check, fault
from runtime.errors import CapsizeError


class NetworkReachable(Model):
    """From ``container`` (absent: the engine's network namespace, the host side) to exactly one
    of ``to`` (a name, alias or address), ``address_of`` (a scenario container's address on
    ``network``, or its only one) or ``published`` (a scenario container's published host port
    for ``port``), TCP ``port``; ``reachable``: what must be seen; ``timeout`` per attempt."""

    container: ContainerName | None = None
    to: str | None = None
    address_of: ContainerName | None = None
    published: ContainerName | None = None
    port: int = Field(ge=1, le=65535)
    network: str | None = None
    reachable: bool = True
    timeout: Duration = 3.0

    @model_validator(mode="after")
    def _one_target(self):
        given = [k for k in ("to", "address_of", "published") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of to, address_of, published")
        if self.published and self.container:
            raise ValueError("published ports are dialled from the engine's namespace: no container")
        return self


def _inspect(client, name_or_id: str) -> dict:
    import docker
    try:
        return client.api.inspect_container(name_or_id)
    except docker.errors.NotFound:
        raise CapsizeError(f"container {name_or_id} does not exist") from None


def addresses(info: dict) -> dict[str, str]:
    """``{network name: IPv4 address}`` of an inspected container (empty addresses left out)."""
    nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
    return {n: v["IPAddress"] for n, v in nets.items() if v.get("IPAddress")}


def _address_of(info: dict, network: str | None) -> str:
    found = addresses(info)
    name = info["Name"].lstrip("/")
    if network:
        if network not in found:
            raise CapsizeError(f"container {name} has no address on network {network} (it has: {found or 'none'})")
        return found[network]
    if len(found) != 1:
        raise CapsizeError(f"container {name} has {len(found)} addresses ({found}): name the network")
    return next(iter(found.values()))


def _published(info: dict, port: int) -> tuple[str, int]:
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    binds = ports.get(f"{port}/tcp") or []
    name = info["Name"].lstrip("/")
    if not binds:
        raise CapsizeError(f"container {name} publishes no host port for {port}/tcp (Ports: {ports or 'none'})")
    ip = binds[0].get("HostIp") or "0.0.0.0"
    return ("127.0.0.1" if ip in ("0.0.0.0", "::", "") else ip), int(binds[0]["HostPort"])


def engine_netns(ctx) -> str:
    """The engine's own network namespace; CapsizeError when it has none or it is the harness's."""
    path = ctx.engine.netns_path
    if not path:
        raise CapsizeError(f"engine {ctx.engine.name} runs in the host's network namespace: network faults "
                           "and host-side probes act only in an engine's own namespace")
    try:
        import os
        same = os.stat(path).st_ino == net_namespace_inode("self")
    except OSError as e:
        raise CapsizeError(f"the engine's network namespace {path}: {e.strerror}") from None
    if same:
        raise CapsizeError(f"{path} is the harness's own network namespace: refusing to act in it")
    return path


def dial(netns_path: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """TCP connect to *host*:*port* from the namespace at *netns_path*, then read for up to 0.5 s;
    ``(connected, what was read or the error)``."""
    from runtime import netns

    def go():
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(0.5)
                try:
                    data = s.recv(256)
                except OSError:
                    data = b""
                return True, data.decode(errors="replace")
        except OSError as e:
            return False, f"{type(e).__name__}: {e.strerror or e}"
    return netns.run_in(netns_path, go)


def _exec(client, cid: str, argv: list[str], timeout: float) -> tuple[int | None, str]:
    e = client.api.exec_create(cid, argv, stdout=True, stderr=True)
    out = client.api.exec_start(e["Id"]).decode(errors="replace")
    deadline = time.monotonic() + timeout + 5
    while True:
        code = client.api.exec_inspect(e["Id"]).get("ExitCode")
        if code is not None or time.monotonic() > deadline:
            return code, out
        time.sleep(0.05)


def _reachable(ctx, p: NetworkReachable) -> Verdict:
    expected = f"{'reachable' if p.reachable else 'not reachable'}"
    client = ctx.engine.client(timeout=p.timeout + 15)
    try:
        ends = {}
        if p.to:
            host, what = p.to, p.to
            if ctx.containers.get(p.to):   # a scenario container's name: show its addresses too
                ends[p.to] = addresses(_inspect(client, ctx.containers[p.to]))
        else:
            name = p.address_of or p.published
            info = _inspect(client, ctx.container_id(name) or name)
            ends[name] = addresses(info)
            if p.address_of:
                host, what = _address_of(info, p.network), f"{name}'s address"
            else:
                host, port = _published(info, p.port)
                what = f"{name}'s published port {p.port}/tcp"
        port = p.port if not p.published else port
        expected += f": {what} ({host}:{port})"
        if p.container:
            cid = ctx.container_id(p.container) or p.container
            ends[p.container] = addresses(_inspect(client, cid))
            argv = ["nc", "-w", str(max(1, round(p.timeout))), host, str(port)]
            code, out = _exec(client, cid, argv, p.timeout)
            ok = code == 0
            evidence = {"command": f"docker exec {p.container} {' '.join(argv)}", "exit_code": code,
                        "output": out.strip()[-500:]}
        else:
            path = engine_netns(ctx)
            ok, out = dial(path, host, port, p.timeout)
            evidence = {"command": f"connect({host}:{port}) in the engine's netns {path}", "connected": ok,
                        "output": out.strip()[-500:]}
    except CapsizeError as e:
        return Verdict(FAIL, expected, f"unavailable: {e}", reason=str(e))
    except Exception as e:  # noqa: BLE001 - the daemon is down or the exec failed
        from harness.outcome import classify_exception
        why = classify_exception(e)[1]
        return Verdict(FAIL, expected, f"unavailable: {why}", reason=f"the probe could not run: {why}")
    finally:
        client.close()
    evidence["addresses"] = ends
    seen = "reachable" if ok else "not reachable"
    if ok == p.reachable:
        return Verdict(PASS, expected, seen, [evidence])
    return Verdict(FAIL, expected, seen, [evidence],
                   reason=f"{what} ({host}:{port}) is {seen} from "
                          f"{p.container or 'the engine namespace'}: {evidence['output'][:200] or 'no output'}")


@check("network.reachable", NetworkReachable, "TCP from `container` (busybox nc in it) or from the engine's network "
       "namespace to `to` (name, alias, address), `address_of` (a container's address) or `published` (its "
       "published host port); `reachable: false`: must not connect; evidence: the command, its output, the "
       "addresses of both ends", container_field="container",
       passes="it connects (or, with `reachable: false`, it does not)")
def network_reachable(ctx, p: NetworkReachable) -> Verdict:
    return _reachable(ctx, p)


# -- faults ---------------------------------------------------------------------------------------

class FaultProxyKill(Model):
    """SIGKILL the port proxies of ``container`` (only the one for container ``port`` if given)."""

    container: ContainerName
    port: int | None = Field(None, ge=1, le=65535)


class FaultVethDelete(Model):
    """Delete the host end of ``container``'s veth (on ``network``, or its only one)."""

    container: ContainerName
    network: str | None = None


class FaultBridgeDown(Model):
    """Set the bridge device of ``network`` down (``bridge``: the default one)."""

    network: str


class FaultIpamFill(Model):
    """Start ``busybox sleep`` containers named ``<prefix>-1``, ``-2``, ... on ``network`` until
    the daemon refuses one (at most ``max``); the refused one is removed."""

    network: str
    prefix: str = Field("fill", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    max: int = Field(64, ge=1, le=1024)


def _container(ctx, client, name: str) -> tuple[str, dict]:
    cid = ctx.container_id(name)
    if not cid:
        raise CapsizeError(f"container {name} does not exist (it was never created)")
    return cid, _inspect(client, cid)


def _netns_and_container(ctx, name: str) -> tuple[str, str, dict]:
    """The engine's namespace (:func:`engine_netns`), scenario container *name*'s id and inspect."""
    path = engine_netns(ctx)
    client = ctx.engine.client(timeout=10)
    try:
        cid, info = _container(ctx, client, name)
    finally:
        client.close()
    return path, cid, info


def _bridge_device(client, engine, network: str) -> str:
    import docker
    try:
        n = client.api.inspect_network(network)
    except docker.errors.APIError as e:
        if network == "bridge" and e.status_code in (404, 501):
            return engine.default_bridge   # an engine without a networks API: its default bridge
        if e.status_code == 404:
            raise CapsizeError(f"network {network} does not exist") from None
        raise CapsizeError(f"network {network}: {e.explanation or e}") from None
    if n.get("Driver") != "bridge":
        raise CapsizeError(f"network {network} has driver {n.get('Driver')}, not bridge")
    return (n.get("Options") or {}).get("com.docker.network.bridge.name") or \
        (engine.default_bridge if n["Name"] == "bridge" else "br-" + n["Id"][:12])


def undo_link_up(spec: dict, engine=None) -> str:
    """Set ``device`` up again in the namespace ``netns`` (still bound: else nothing to do)."""
    from runtime import netns
    if not netns.is_mounted(spec["netns"]):
        return f"namespace {spec['netns']} is gone: nothing to do"
    r = netstate.run(spec["netns"], ["ip", "link", "set", spec["device"], "up"])
    if r.returncode != 0:
        return f"{spec['device']}: {r.stderr.strip() or 'gone'}: nothing to do"
    return f"set {spec['device']} up again"


def undo_remove_containers(spec: dict, engine=None) -> str:
    """Force-remove the containers ``names`` (made by fault.ipam.fill) that exist."""
    if engine is None:
        return "left to the engine's removal"
    import docker
    client = engine.client(timeout=30)
    gone = 0
    try:
        for name in spec["names"]:
            try:
                client.api.remove_container(name, force=True)
                gone += 1
            except docker.errors.NotFound:
                continue
    finally:
        client.close()
    return f"removed {gone} containers"


@fault("fault.proxy.kill", FaultProxyKill, "SIGKILL the userland port proxies (docker-proxy, capsize-proxy) of a "
       "container's published ports, found in the engine's network namespace (no undo: the daemon owns them)",
       container_field="container")
def fault_proxy_kill(ctx, step) -> dict:
    import os
    import signal

    from harness.pids import identify
    p = step.params
    path, _, info = _netns_and_container(ctx, p.container)
    mine = set(addresses(info).values())
    found = [x for x in netstate.proxies(os.stat(path).st_ino) if x["container_ip"] in mine
             and (p.port is None or x["container_port"] == str(p.port))]
    if not found:
        raise CapsizeError(f"no port proxy of container {p.container} runs in the engine's namespace "
                           f"(addresses {sorted(mine) or 'none'})")
    pids = [x["pid"] for x in found]
    ctx.ledger.apply(ctx.run, step.action, {"container": p.container, "processes": identify(pids)}, None)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return {"killed": [{k: x[k] for k in ("pid", "name", "container_ip", "container_port", "host_port")}
                       for x in found]}


@fault("fault.veth.delete", FaultVethDelete, "delete the host end of a container's veth in the engine's network "
       "namespace (the kernel removes the pair: the container keeps only lo there; no undo)",
       container_field="container")
def fault_veth_delete(ctx, step) -> dict:
    p = step.params
    path, cid, info = _netns_and_container(ctx, p.container)
    pid = info["State"].get("Pid")
    if not pid:
        raise CapsizeError(f"container {p.container} is not running")
    ifs = [x for x in netstate.links(f"/proc/{pid}/ns/net") if x.get("link_index")]
    if p.network:
        # the interface that holds the container's address on that network
        want = _address_of(info, p.network)
        r = netstate.run(f"/proc/{pid}/ns/net", ["ip", "-o", "-4", "addr", "show"])
        names = [ln.split()[1] for ln in r.stdout.splitlines() if f" {want}/" in ln]
        ifs = [x for x in ifs if x["ifname"] in names]
    if len(ifs) != 1:
        raise CapsizeError(f"container {p.container} has {len(ifs)} veth interfaces "
                           f"({[x['ifname'] for x in ifs]}): name the network")
    host_end = [x for x in netstate.links(path) if x["ifindex"] == ifs[0]["link_index"] and x["kind"] == "veth"]
    if not host_end:
        raise CapsizeError(f"the host end (ifindex {ifs[0]['link_index']}) of {p.container}'s "
                           f"{ifs[0]['ifname']} is not in the engine's namespace")
    dev = host_end[0]["ifname"]
    ctx.ledger.apply(ctx.run, step.action, {"container": p.container, "veth": dev}, None)
    r = netstate.run(path, ["ip", "link", "delete", dev])
    if r.returncode != 0:
        raise CapsizeError(f"ip link delete {dev}: {r.stderr.strip()}")
    return {"veth": dev, "master": host_end[0]["master"], "container_interface": ifs[0]["ifname"], "id": cid}


@fault("fault.bridge.down", FaultBridgeDown, "set a network's bridge device down in the engine's network namespace "
       "(`ip link set <bridge> down`; undone by setting it up)", undo={"link-up": undo_link_up})
def fault_bridge_down(ctx, step) -> dict:
    p = step.params
    path = engine_netns(ctx)
    client = ctx.engine.client(timeout=10)
    try:
        dev = _bridge_device(client, ctx.engine, p.network)
    finally:
        client.close()
    if not any(x["ifname"] == dev and x["kind"] == "bridge" for x in netstate.links(path)):
        raise CapsizeError(f"bridge {dev} of network {p.network} is not in the engine's namespace")
    ctx.ledger.apply(ctx.run, step.action, {"network": p.network, "device": dev},
                     {"kind": "link-up", "netns": path, "device": dev})
    r = netstate.run(path, ["ip", "link", "set", dev, "down"])
    if r.returncode != 0:
        raise CapsizeError(f"ip link set {dev} down: {r.stderr.strip()}")
    return {"network": p.network, "bridge": dev}


@fault("fault.ipam.fill", FaultIpamFill, "start `busybox sleep` containers `<prefix>-N` on a network until the "
       "daemon refuses one (its pool is full; a small `--subnet` network); facts: how many ran and the refusal "
       "(undone by removing them)", undo={"remove-containers": undo_remove_containers})
def fault_ipam_fill(ctx, step) -> dict:
    import docker
    p = step.params
    names = [f"{p.prefix}-{i}" for i in range(1, p.max + 1)]
    client = ctx.engine.client(timeout=60)
    started, refusal = 0, None
    try:
        try:
            client.api.inspect_network(p.network)
        except docker.errors.NotFound:
            raise CapsizeError(f"network {p.network} does not exist") from None
        ctx.ledger.apply(ctx.run, step.action, {"network": p.network, "prefix": p.prefix},
                         {"kind": "remove-containers", "names": names})
        kw = {"command": ["sleep", "1000"], "detach": True, "network": p.network}
        if ctx.engine.default_container_runtime():
            kw["runtime"] = ctx.engine.default_container_runtime()
        for name in names:
            c = None
            try:
                c = client.containers.create("busybox", name=name, **kw)
                ctx.remember(name, c.id, [])
                c.start()
                started += 1
            except docker.errors.APIError as e:
                # dockerd allocates the address at start, another engine may at create
                refusal = (e.explanation or str(e)).strip()
                if c is not None:
                    client.api.remove_container(c.id, force=True)
                break
    finally:
        client.close()
    if refusal is None:
        raise CapsizeError(f"{started} containers started on {p.network} and none was refused (max {p.max})")
    return {"network": p.network, "started": started, "refused": refusal}
