"""What an engine has made in its own network namespace: links, netfilter rules, port proxies.

Read-only, from the host, by entering the engine's namespace (the nsfs bind mount the engine
adapter names: :attr:`harness.engines.base.Engine.netns_path`, ``<workdir>/netns`` on both
engines) with ``nsenter --net=<path>``; the host's own namespace is never read or changed here.

* :func:`links` — ``ip -json -details link show`` in the namespace: ``[{"ifname", "ifindex",
  "kind" (veth | bridge | None), "master", "operstate", "link_index", "link_netnsid"}]``;
* :func:`peer_indexes` — the ``link_index`` (the host end's ifindex) of every interface of a
  process's network namespace (a container's ``eth0@ifN``);
* :func:`ruleset` — ``nft list ruleset`` lines (dockerd 20.10's iptables is iptables-nft on
  Debian 12, so its rules are listed too);
* :func:`proxies` — the userland port proxies (``docker-proxy``, ``capsize-proxy``) running in
  the namespace, with the container address and ports of their command line.

Errors: :class:`~runtime.errors.Unavailable` (the namespace is gone, a tool failed), with the
command's last stderr line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

from runtime.errors import Unavailable
from runtime.runtimes import which

#: Process names of userland port proxies (dockerd's, capsized's).
PROXY_NAMES = ("docker-proxy", "capsize-proxy")


def run(netns_path: str, argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run *argv* in the network namespace bound at *netns_path* (``nsenter --net``; the host's
    mount namespace is kept). Never raises for a non-zero exit; Unavailable when it cannot run."""
    nsenter = which("nsenter")
    if not nsenter:
        raise Unavailable("nsenter not found: install util-linux")
    try:
        return subprocess.run([nsenter, f"--net={netns_path}", "--", *argv], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{' '.join(argv)} in {netns_path}: no answer within {timeout:g}s") from None


def _checked(netns_path: str, argv: list[str]) -> str:
    r = run(netns_path, argv)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise Unavailable(f"{' '.join(argv)} in {netns_path}: {last}")
    return r.stdout


def links(netns_path: str) -> list[dict]:
    """The links of the namespace (see the module doc). Unavailable."""
    out = _checked(netns_path, [which("ip") or "ip", "-json", "-details", "link", "show"])
    found = []
    for link in json.loads(out or "[]"):
        found.append({"ifname": link.get("ifname"), "ifindex": link.get("ifindex"),
                      "kind": (link.get("linkinfo") or {}).get("info_kind"), "master": link.get("master"),
                      "operstate": link.get("operstate"), "flags": link.get("flags", []),
                      "link_index": link.get("link_index"), "link_netnsid": link.get("link_netnsid")})
    return found


def peer_indexes(pid: int) -> set[int]:
    """The ``link_index`` of each interface in the network namespace of process *pid* (a
    container's veth ends name their host ends so). Empty when the process is gone."""
    try:
        return {x["link_index"] for x in links(f"/proc/{pid}/ns/net") if x.get("link_index")}
    except Unavailable:
        return set()


def ruleset(netns_path: str) -> list[str]:
    """``nft list ruleset`` of the namespace, one stripped line each. Unavailable."""
    nft = which("nft")
    if not nft:
        raise Unavailable("nft not found: install nftables (scripts/setup.sh does)")
    return [line.strip() for line in _checked(netns_path, [nft, "list", "ruleset"]).splitlines() if line.strip()]


def _flag(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def proxies(netns_inode: int) -> list[dict]:
    """The port proxies in the namespace with inode *netns_inode*: ``[{"pid", "name", "argv",
    "container_ip", "container_port", "host_port", "proto"}]`` (from docker-proxy's flags
    ``-container-ip``, ``-container-port``, ``-host-port``, ``-proto``, which capsize-proxy takes
    too, :mod:`runtime.proxy.cli`; its name is its second word, after the venv's python)."""
    from harness.reference.cleanup import find_processes, net_namespace_inode
    found = []
    # capsize-proxy is a console script: its command line is ``<venv>/python3 <venv>/capsize-proxy ...``
    for p in find_processes(lambda argv, p: any(os.path.basename(a) in PROXY_NAMES for a in (argv or [])[:2])):
        if net_namespace_inode(p.pid) != netns_inode:
            continue
        argv = p.info["cmdline"]
        name = next(os.path.basename(a) for a in argv[:2] if os.path.basename(a) in PROXY_NAMES)
        found.append({"pid": p.pid, "name": name, "argv": argv,
                      "container_ip": _flag(argv, "-container-ip", "--container-ip"),
                      "container_port": _flag(argv, "-container-port", "--container-port"),
                      "host_port": _flag(argv, "-host-port", "--host-port"),
                      "proto": _flag(argv, "-proto", "--proto")})
    return found


# -- what is left: snapshot at the run's start, compared after ------------------------------------

#: The kinds :func:`leftovers` reports (:class:`harness.engines.base.HostState` fields).
KINDS = ("veth", "bridge", "rule", "proxy")
_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")
_ADDRESS = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d+))?(?![\d.])")
_IFNAME = re.compile(r'[io]ifname !?=? ?"([^"]+)"')


def normalize_rule(line: str) -> str:
    """A ruleset line without its packet/byte counters (they change as traffic flows)."""
    return _COUNTER.sub("", line)


def baseline(netns_path: str | None) -> dict:
    """What the engine's namespace holds now (at the run's start, before any container): link
    names, rule lines (normalized), proxy pids. ``{}`` without a namespace; ``{"error"}`` when
    it cannot be read."""
    if not netns_path:
        return {}
    try:
        return {"links": sorted(x["ifname"] for x in links(netns_path)),
                "rules": sorted({normalize_rule(r) for r in ruleset(netns_path)}),
                "proxies": sorted(p["pid"] for p in proxies(os.stat(netns_path).st_ino))}
    except (Unavailable, OSError) as e:
        return {"error": str(e)}


def live_view(engine) -> dict:
    """The engine's running containers and networks, asked of its daemon: ``{"pids": [...],
    "addresses": {ip: container name}, "bridges": {device: network name}}``; ``{"error"}``
    when the daemon cannot be asked. Bridge devices: the network's
    ``com.docker.network.bridge.name`` option, the engine's default bridge for ``bridge``,
    else ``br-<id[:12]>`` (dockerd's and capsized's naming); an engine whose ``GET /networks``
    answers 501 has its default bridge only."""
    import docker
    try:
        client = engine.client(timeout=10)
    except Exception as e:  # noqa: BLE001 - daemon down
        return {"error": f"the daemon cannot be asked ({str(e)[:80]})"}
    view = {"pids": [], "addresses": {}, "bridges": {}}
    try:
        for c in client.api.containers():
            try:
                info = client.api.inspect_container(c["Id"])
            except Exception:  # noqa: BLE001 - removed meanwhile
                continue
            if info["State"].get("Pid"):
                view["pids"].append(info["State"]["Pid"])
            for net in (info.get("NetworkSettings") or {}).get("Networks", {}).values():
                if net.get("IPAddress"):
                    view["addresses"][net["IPAddress"]] = info["Name"].lstrip("/")
        try:
            networks = client.api.networks()
        except docker.errors.APIError as e:
            if e.status_code != 501:
                raise
            # no networks API (an engine without user-defined networks): its default bridge only
            networks = [{"Name": "bridge", "Id": "", "Driver": "bridge",
                         "Options": {"com.docker.network.bridge.name": engine.default_bridge}}]
        for n in networks:
            if n.get("Driver") != "bridge":
                continue
            device = (n.get("Options") or {}).get("com.docker.network.bridge.name")
            if not device:
                device = engine.default_bridge if n["Name"] == "bridge" else "br-" + n["Id"][:12]
            view["bridges"][device] = n["Name"]
    except Exception as e:  # noqa: BLE001 - the daemon went away mid-way
        return {"error": f"the daemon did not answer ({str(e)[:80]})"}
    finally:
        client.close()
    return view


def leftovers(engine, base: dict) -> dict[str, list[str]]:
    """Per kind of :data:`KINDS`, what the engine's namespace holds that is neither in *base*
    (:func:`baseline`) nor owned by a live container or network (:func:`live_view`):

    * ``veth`` — a veth whose ifindex no running container's interface names as its peer;
    * ``bridge`` — a bridge device of no network the engine lists;
    * ``rule`` — a new rule line naming an address no running container holds (other than a
      network's gateway or subnet) or an interface that no longer exists;
    * ``proxy`` — a port proxy for an address no running container holds.

    Empty lists without a namespace (an engine in the host's namespace: its devices are not
    the lab's to judge); one line per kind when the namespace or the daemon cannot be read."""
    path = engine.netns_path
    out = {k: [] for k in KINDS}
    if not path or not base:
        return out
    if "error" in base:
        return {k: [f"no baseline: {base['error']}"] for k in KINDS}
    view = live_view(engine)
    if "error" in view:
        return {k: [view["error"]] for k in KINDS}
    try:
        now = links(path)
        rules = {normalize_rule(r) for r in ruleset(path)}
        procs = proxies(os.stat(path).st_ino)
    except (Unavailable, OSError) as e:
        return {k: [str(e)] for k in KINDS}
    peers = set().union(*(peer_indexes(pid) for pid in view["pids"])) if view["pids"] else set()
    now = _settled(path, now, peers)
    names = {x["ifname"] for x in now}
    known = set(base.get("links", []))
    for x in now:
        if x["kind"] == "veth" and x["ifindex"] not in peers:
            out["veth"].append(f"veth {x['ifname']} (ifindex {x['ifindex']}, master {x['master']}): "
                               f"no running container's end")
        elif x["kind"] == "bridge" and x["ifname"] not in view["bridges"] and x["ifname"] not in known:
            out["bridge"].append(f"bridge {x['ifname']}: of no network the engine lists")
    live = set(view["addresses"])
    gateways = own_addresses(path)
    for line in sorted(rules - set(base.get("rules", []))):
        hosts = {m.group(1) for m in _ADDRESS.finditer(line) if m.group(2) in (None, "32")}
        hosts -= {"0.0.0.0", "127.0.0.1"}
        gone_ifs = {i for i in _IFNAME.findall(line) if i not in names and not i.endswith("*")}
        stale = sorted(a for a in hosts if a not in live and a not in gateways)
        if stale or gone_ifs:
            out["rule"].append(f"{line}  [{', '.join(stale + sorted(gone_ifs))} gone]")
    old = set(base.get("proxies", []))
    for p in procs:
        if p["pid"] not in old and p["container_ip"] not in live:
            out["proxy"].append(f"{p['name']} pid {p['pid']} for {p['container_ip']}:{p['container_port']} "
                                f"(host port {p['host_port']}): no running container has that address")
    return out


#: Seconds to let the kernel finish destroying dead namespaces before a veth counts as left.
VETH_SETTLE = 3.0


def _settled(path: str, now: list[dict], peers: set, timeout: float = VETH_SETTLE) -> list[dict]:
    """*now* again once the veths of no live peer are gone, or after *timeout* s: the kernel
    destroys a namespace's devices asynchronously (``cleanup_net`` on a work queue) after its
    last reference goes, so a just-removed container's veth may outlive it by a moment."""
    deadline = time.monotonic() + timeout
    while any(x["kind"] == "veth" and x["ifindex"] not in peers for x in now) and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            now = links(path)
        except Unavailable:
            break
    return now


def own_addresses(netns_path: str) -> set[str]:
    """The IPv4 addresses of the namespace's own interfaces (bridge gateways, lo)."""
    try:
        out = _checked(netns_path, [which("ip") or "ip", "-json", "-4", "addr", "show"])
    except Unavailable:
        return set()
    return {a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", []) if a.get("local")}
