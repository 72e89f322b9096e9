"""Networks as objects in capsized (runtime/daemon/networks.py, endpoints.py, routes_networks.py):
user-defined bridges with real devices and veths in capsized's own namespace, through the real
docker CLIs and the SDK; each test leaves no bridge, veth or sandbox (checked)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import pytest

from runtime import netns
from tests.daemon.stack import booted, veth_between

pytestmark = pytest.mark.privileged

NEW_DOCKER = shutil.which("docker")   # the newer CLI first on PATH (may be Debian's too)


@pytest.fixture(scope="module")
def ns_stack(tmp_path_factory):
    with booted(tmp_path_factory.mktemp("netstack"), netns=True) as s:
        yield s


@pytest.fixture
def s(ns_stack):
    yield ns_stack
    ns_stack.remove_all()
    for name in ns_stack.ok("network", "ls", "-q", "--filter", "type=custom").split():
        ns_stack.cli("network", "rm", name)
    assert _links(ns_stack, "br-") == [] and _links(ns_stack, "veth") == [], "a bridge or veth was left"
    d = os.path.join(ns_stack.state, "netns")
    assert not [n for n in (os.listdir(d) if os.path.isdir(d) else [])], "a sandbox was left"


def _links(s, prefix: str = "") -> list[str]:
    return sorted(n for _, n in netns.run_in(s.netns_path, socket.if_nameindex) if n.startswith(prefix))


def _inspect(s, *args) -> dict:
    return json.loads(s.ok(*args))[0]


def test_predefined_networks_are_listed_and_cannot_be_removed(s):
    out = s.ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert sorted(out.splitlines()) == ["bridge bridge local", "host host local", "none null local"]
    br = _inspect(s, "network", "inspect", "bridge")
    assert br["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    assert br["Options"]["com.docker.network.bridge.name"] == "capsize0" and br["Containers"] == {}
    r = s.cli("network", "rm", "bridge")
    assert r.returncode != 0 and "bridge is a pre-defined network and cannot be removed" in r.stderr
    r = s.cli("network", "inspect", "nosuch")
    assert r.returncode != 0 and "no such network: nosuch" in r.stderr.lower()


def test_create_inspect_ls_rm_with_events(s):
    since = str(int(time.time()) - 1)
    nid = s.ok("network", "create", "--subnet", "10.31.0.0/24", "--gateway", "10.31.0.254", "--label", "a=b",
               "front")
    rec = _inspect(s, "network", "inspect", "front")
    assert rec["Id"] == nid and rec["Driver"] == "bridge" and rec["Scope"] == "local"
    assert rec["IPAM"] == {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.31.0.0/24",
                                                                           "Gateway": "10.31.0.254"}]}
    assert rec["Labels"] == {"a": "b"} and rec["Internal"] is False and "UserSubnet" not in rec
    assert "br-" + nid[:12] in _links(s, "br-")
    auto = s.ok("network", "create", "--internal", "back")
    assert _inspect(s, "network", "inspect", auto)["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16",
                                                                         "Gateway": "172.18.0.1"}]
    r = s.cli("network", "create", "front")
    assert r.returncode != 0 and "network with name front already exists" in r.stderr
    r = s.cli("network", "create", "--subnet", "10.31.0.0/16", "overlap")
    assert r.returncode != 0 and "overlaps" in r.stderr
    assert s.ok("network", "ls", "-q", "--filter", "label=a=b", "--no-trunc") == nid
    assert s.ok("network", "ls", "--filter", "name=bac", "--format", "{{.Name}}") == "back"
    assert s.ok("network", "ls", "--filter", "id=" + nid[:6], "--format", "{{.Name}}") == "front"
    assert sorted(s.ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").split()) == ["back", "front"]
    assert s.ok("network", "ls", "--filter", "driver=null", "--format", "{{.Name}}") == "none"
    s.ok("network", "rm", "front", "back")
    assert _links(s, "br-") == []
    ev = s.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
              "--filter", "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert ev.splitlines() == ["create front", "create back", "destroy front", "destroy back"]
    ipam = json.load(open(os.path.join(s.root, "daemon", "network", "ipam.json")))
    assert set(ipam["pools"]) == {"bridge"}


def test_containers_on_a_user_network_with_ip_alias_and_mac(s):
    s.ok("network", "create", "--subnet", "10.32.0.0/24", "appnet")
    a = s.ok("run", "-d", "--network", "appnet", "--ip", "10.32.0.50", "--network-alias", "db",
             "--mac-address", "02:00:00:00:00:aa", "--name", "na", "busybox", "sleep", "100")
    b = s.ok("run", "-d", "--network", "appnet", "--name", "nb", "busybox", "sleep", "100")
    na = _inspect(s, "inspect", a)["NetworkSettings"]
    ep = na["Networks"]["appnet"]
    assert ep["IPAddress"] == "10.32.0.50" and ep["Gateway"] == "10.32.0.1" and ep["IPPrefixLen"] == 24
    assert ep["MacAddress"] == "02:00:00:00:00:aa" and ep["Aliases"] == ["db", a[:12]]
    assert ep["IPAMConfig"] == {"IPv4Address": "10.32.0.50"} and "HostIfName" not in ep
    assert na["IPAddress"] == ""   # the top-level fields are the default bridge's only (dockerd)
    assert s.ok("exec", a, "cat", "/sys/class/net/eth0/address") == "02:00:00:00:00:aa"
    assert "0% packet loss" in s.ok("exec", b, "ping", "-c", "1", "-W", "2", "10.32.0.50")
    net = _inspect(s, "network", "inspect", "appnet")
    assert net["Containers"][a]["Name"] == "na" and net["Containers"][a]["IPv4Address"] == "10.32.0.50/24"
    assert set(net["Containers"]) == {a, b}
    r = s.cli("run", "-d", "--network", "appnet", "--ip", "10.32.0.50", "busybox", "sleep", "1")
    assert r.returncode != 0 and "Address already in use" in r.stderr
    r = s.cli("network", "rm", "appnet")
    assert r.returncode != 0 and "has active endpoints" in r.stderr
    import docker   # the CLI drops --ip and --network-alias on the default network: the API refuses them
    api = s.client().api
    for ep, text in ((api.create_endpoint_config(ipv4_address="172.17.0.9"), "user specified IP address is "
                      "supported only"), (api.create_endpoint_config(aliases=["x"]), "network-scoped alias")):
        with pytest.raises(docker.errors.APIError) as e:
            api.create_container("busybox", "true", networking_config=api.create_networking_config({"bridge": ep}),
                                 host_config=api.create_host_config(network_mode="bridge"))
        assert e.value.status_code == 400 and text in str(e.value)
    r = s.cli("run", "--rm", "--network", "nosuch", "busybox", "true")
    assert r.returncode != 0 and "network nosuch not found" in r.stderr
    s.ok("stop", "-t", "0", a)
    stopped = _inspect(s, "inspect", a)["NetworkSettings"]["Networks"]["appnet"]
    assert stopped["IPAddress"] == "" and stopped["Aliases"] == ["db", a[:12]]
    s.ok("start", a)
    assert _inspect(s, "inspect", a)["NetworkSettings"]["Networks"]["appnet"]["IPAddress"] == "10.32.0.50"


def test_connect_and_disconnect_a_running_container(s):
    s.ok("network", "create", "one")
    s.ok("network", "create", "two")
    a = s.ok("run", "-d", "--network", "one", "busybox", "sleep", "100")
    b = s.ok("run", "-d", "--network", "two", "busybox", "sleep", "100")
    b_ip = _inspect(s, "inspect", b)["NetworkSettings"]["Networks"]["two"]["IPAddress"]
    s.ok("network", "connect", "--alias", "extra", "two", a)
    nets = _inspect(s, "inspect", a)["NetworkSettings"]["Networks"]
    assert set(nets) == {"one", "two"} and nets["two"]["Aliases"] == ["extra", a[:12]]
    assert s.ok("exec", a, "cat", "/sys/class/net/eth1/address") == nets["two"]["MacAddress"]
    assert "0% packet loss" in s.ok("exec", a, "ping", "-c", "1", "-W", "2", b_ip)
    r = s.cli("network", "connect", "two", a)
    assert r.returncode != 0 and "already exists in network two" in r.stderr
    s.ok("network", "disconnect", "two", a)
    assert set(_inspect(s, "inspect", a)["NetworkSettings"]["Networks"]) == {"one"}
    assert s.cli("exec", a, "ping", "-c", "1", "-W", "1", b_ip).returncode != 0   # bridges isolated (nftables)
    assert "eth1" not in s.ok("exec", a, "ls", "/sys/class/net").split()
    r = s.cli("network", "disconnect", "two", a)
    assert r.returncode != 0 and "is not connected to network two" in r.stderr
    c = s.ok("create", "busybox", "true")   # a stopped container: its record only
    s.ok("network", "connect", "one", c)
    assert set(_inspect(s, "inspect", c)["NetworkSettings"]["Networks"]) == {"bridge", "one"}
    r = s.cli("network", "connect", "one", s.ok("create", "--network", "host", "busybox", "true"))
    assert r.returncode != 0 and "cannot be connected to any other network" in r.stderr


def test_prune_removes_networks_no_running_container_uses(s):
    s.ok("network", "create", "--label", "keep=1", "kept")
    s.ok("network", "create", "unused")
    s.ok("network", "create", "used")
    s.ok("run", "-d", "--network", "used", "busybox", "sleep", "100")
    out = s.ok("network", "prune", "-f", "--filter", "label!=keep=1")
    assert out.splitlines() == ["Deleted Networks:", "unused"]
    names = s.ok("network", "ls", "--format", "{{.Name}}").split()
    assert "kept" in names and "used" in names and "unused" not in names


def test_the_sdk_and_the_newer_cli(s):
    client = s.client()
    net = client.networks.create("sdknet", driver="bridge", labels={"k": "v"})
    ctr = client.containers.run("busybox", ["sleep", "100"], detach=True, network="sdknet")
    net.reload()
    assert [c.id for c in net.containers] == [ctr.id]
    ctr.reload()
    assert ctr.attrs["NetworkSettings"]["Networks"]["sdknet"]["NetworkID"] == net.id
    net.disconnect(ctr)
    net.connect(ctr, aliases=["web"])
    ctr.reload()
    assert ctr.attrs["NetworkSettings"]["Networks"]["sdknet"]["Aliases"] == ["web", ctr.id[:12]]
    ctr.remove(force=True)
    net.remove()
    if NEW_DOCKER and os.path.realpath(NEW_DOCKER) != "/usr/bin/docker":
        from tests.conftest import run
        env = s.env()
        r = run([NEW_DOCKER, "network", "create", "newcli"], env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        r = run([NEW_DOCKER, "run", "--rm", "--network", "newcli", "busybox", "cat", "/sys/class/net/eth0/operstate"],
                env=env, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == "up", r.stderr
        r = run([NEW_DOCKER, "network", "inspect", "newcli", "--format", "{{.Name}}"], env=env, timeout=60)
        assert r.stdout.strip() == "newcli"
        assert run([NEW_DOCKER, "network", "rm", "newcli"], env=env, timeout=60).returncode == 0


def test_networks_and_addresses_survive_a_daemon_sigkill(tmp_path):
    """A SIGKILLed capsized (no live-restore) finds its user-defined network and bridge again,
    removes the veth of the container it stops, and the container starts on it again."""
    from tests.daemon.stack import Stack
    s = Stack(tmp_path / "crash", netns=True)
    try:
        s.start()
        s.load_busybox()
        nid = s.ok("network", "create", "--subnet", "10.33.0.0/24", "durable")
        a = s.ok("run", "-d", "--network", "durable", "busybox", "sleep", "100")
        s.kill_daemon()
        s.start_daemon()
        assert _inspect(s, "network", "inspect", "durable")["Id"] == nid
        assert "br-" + nid[:12] in _links(s, "br-")
        assert _links(s, "veth") == []   # the container was stopped (no live-restore): its veth went
        ipam = json.load(open(os.path.join(s.root, "daemon", "network", "ipam.json")))
        assert ipam["pools"][nid]["allocated"] == []
        s.ok("start", a)   # the IPAM's cursor walks on (libnetwork's): the next address
        assert _inspect(s, "inspect", a)["NetworkSettings"]["Networks"]["durable"]["IPAddress"] == "10.33.0.3"
        s.ok("rm", "-f", a)
        s.ok("network", "rm", "durable")
        assert _links(s, "br-") == [] and _links(s, "veth") == []
    finally:
        s.close()


def test_names_on_a_user_network_through_etc_hosts(s):
    """capsized writes /etc/hosts, /etc/resolv.conf, /etc/hostname (inspect's paths, bind mounts);
    on a user-defined network peers resolve by name and alias, and a peer that stops or
    disconnects is gone from the others' /etc/hosts; the default bridge has no names."""
    s.ok("network", "create", "names")
    a = s.ok("run", "-d", "--network", "names", "--name", "alpha", "--network-alias", "db", "busybox", "sleep", "100")
    b = s.ok("run", "-d", "--network", "names", "--name", "beta", "--hostname", "bee", "busybox", "sleep", "100")
    ia = _inspect(s, "inspect", a)
    ip_a = ia["NetworkSettings"]["Networks"]["names"]["IPAddress"]
    ip_b = _inspect(s, "inspect", b)["NetworkSettings"]["Networks"]["names"]["IPAddress"]
    cdir = os.path.join(s.root, "daemon", "containers", a)
    assert (ia["HostsPath"], ia["ResolvConfPath"], ia["HostnamePath"]) == (
        os.path.join(cdir, "hosts"), os.path.join(cdir, "resolv.conf"), os.path.join(cdir, "hostname"))
    hosts_b = s.ok("exec", b, "cat", "/etc/hosts")
    assert f"{ip_b}\tbee" in hosts_b and f"{ip_a}\talpha db {a[:12]}" in hosts_b
    assert s.ok("exec", b, "cat", "/etc/hostname") == "bee"
    for name in ("alpha", "db", a[:12]):
        assert "0% packet loss" in s.ok("exec", b, "ping", "-c", "1", "-W", "2", name), name
    assert f"{ip_b}\tbeta" in s.ok("exec", a, "cat", "/etc/hosts")   # a's file was rewritten when b came
    s.ok("stop", "-t", "0", b)
    assert "beta" not in s.ok("exec", a, "cat", "/etc/hosts")
    s.ok("start", b)
    s.ok("network", "disconnect", "names", b)
    assert "beta" not in s.ok("exec", a, "cat", "/etc/hosts")
    c = s.ok("run", "-d", "--name", "gamma", "busybox", "sleep", "100")   # the default bridge: no names
    d = s.ok("run", "-d", "--name", "delta", "busybox", "sleep", "100")
    assert "gamma" not in s.ok("exec", d, "cat", "/etc/hosts")
    assert s.cli("exec", d, "ping", "-c", "1", "-W", "1", "gamma").returncode != 0
    assert " /etc/hosts " in s.ok("exec", c, "cat", "/proc/mounts")   # a bind mount, not the image's file


def test_dns_options_and_add_host(s):
    out = s.ok("run", "--rm", "--dns", "10.9.9.9", "--dns-search", "lab.example", "--dns-option", "ndots:2",
               "--add-host", "svc:10.1.2.3", "--add-host", "gw:host-gateway", "busybox", "sh", "-c",
               "cat /etc/resolv.conf; echo ---; cat /etc/hosts")
    resolv, hosts = out.split("---")
    assert resolv.split("\n")[:3] == ["nameserver 10.9.9.9", "search lab.example", "options ndots:2"]
    assert "10.1.2.3\tsvc" in hosts and "172.17.0.1\tgw" in hosts
    assert hosts.strip().startswith("127.0.0.1\tlocalhost")
    import docker   # the CLI checks --add-host itself: the daemon's own check, through the SDK
    for kw, text in (({"extra_hosts": {"bad": "notanip"}}, "invalid IP address in add-host: notanip"),
                     ({"dns": ["nope"]}, "nope is not an ip address")):
        with pytest.raises(docker.errors.APIError) as e:
            s.client().containers.create("busybox", "true", **kw)
        assert e.value.status_code == 400 and text in str(e.value)
    plain = s.ok("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert "nameserver 127." not in plain and "nameserver" in plain   # localhost servers filtered
    ro = s.cli("run", "--rm", "--read-only", "busybox", "sh", "-c", "echo x >> /etc/hosts")
    assert ro.returncode != 0 and "Read-only" in ro.stderr


def _nft_table(s) -> str:
    from tests.conftest import run
    r = run(["nsenter", f"--net={s.netns_path}", "--", "nft", "list", "table", "inet", "capsize"], timeout=20)
    return r.stdout if r.returncode == 0 else ""


def _drop_uplink(s) -> None:
    """Delete the uplink veth (both ends) if it is there."""
    def drop():
        from pyroute2 import IPRoute
        with IPRoute() as ip:
            for i in ip.link_lookup(ifname="vethupl0"):
                ip.link("del", index=i)
    netns.run_in(s.netns_path, drop)


def _uplink(s, outside: str) -> None:
    """A veth from the engine's namespace (10.250.0.1/30, named veth* as capsized's own) to a test
    namespace *outside* (10.250.0.2/30) that has no route back to any bridge: only masqueraded
    traffic can get an answer there."""
    veth_between(s.netns_path, ("vethupl0", "10.250.0.1"), outside, ("vethupl1", "10.250.0.2"))


def _listener(outside: str):
    def bind():
        ls = socket.socket()
        ls.bind(("10.250.0.2", 8080))
        ls.listen(4)
        ls.settimeout(8)
        return ls
    return netns.run_in(outside, bind)


def test_isolation_internal_and_masquerade_with_nftables(s, tmp_path):
    """table inet capsize in the engine's namespace: bridges cannot reach each other, --internal
    has no route or forward out, traffic leaving a bridge is masqueraded (a far namespace with no
    route back answers it, and sees the engine's address); none of it in the host's namespace."""
    outside = str(tmp_path / "outside")
    netns.create(outside)
    try:
        pub_id = s.ok("network", "create", "pub")
        s.ok("network", "create", "--internal", "priv")
        table = _nft_table(s)
        assert "masquerade" in table and f'"br-{pub_id[:12]}"' in table and '"capsize0"' in table, table
        a = s.ok("run", "-d", "--network", "pub", "busybox", "sleep", "100")
        c = s.ok("run", "-d", "--network", "priv", "busybox", "sleep", "100")
        d = s.ok("run", "-d", "busybox", "sleep", "100")   # the default bridge
        ip = {x: _inspect(s, "inspect", x)["NetworkSettings"]["Networks"] for x in (a, c, d)}
        ip_d = ip[d]["bridge"]["IPAddress"]
        assert s.cli("exec", a, "ping", "-c", "1", "-W", "1", ip_d).returncode != 0   # bridge to bridge: dropped
        assert s.cli("exec", d, "ping", "-c", "1", "-W", "1", ip[a]["pub"]["IPAddress"]).returncode != 0
        assert "0% packet loss" in s.ok("exec", a, "ping", "-c", "1", "-W", "2", ip[a]["pub"]["Gateway"])
        assert "default" not in s.ok("exec", c, "ip", "route")   # --internal: no route out
        _uplink(s, outside)
        ls = _listener(outside)
        peers = []

        def serve():
            try:
                conn, peer = ls.accept()
            except OSError:
                return
            peers.append((peer, conn.recv(16)))
            conn.close()
        import threading
        t = threading.Thread(target=serve)
        t.start()
        try:
            assert s.cli("exec", a, "sh", "-c", "echo hi | nc -w 3 10.250.0.2 8080", timeout=30).returncode == 0
            t.join(10)
            assert peers and peers[0][0][0] == "10.250.0.1", peers   # masqueraded to the uplink's address
            assert peers[0][1] == b"hi\n"
            r = s.cli("exec", c, "sh", "-c", "echo hi | nc -w 2 10.250.0.2 8080", timeout=30)
            assert r.returncode != 0
        finally:
            ls.close()
            t.join(10)
        s.ok("rm", "-f", a, c, d)
        s.ok("network", "rm", "pub", "priv")
        table = _nft_table(s)
        assert "br-" not in table and '"capsize0"' in table
    finally:
        _drop_uplink(s)   # explicitly: a removed netns takes its veth end with it only when the
        netns.remove(outside)   # kernel's asynchronous netns clean-up runs, which may be later
    assert _links(s, "vethupl") == []


def test_netfilter_refuses_the_hosts_namespace():
    """The test process runs in the host's namespace: the rule writer refuses before nft runs."""
    from runtime.daemon import netfilter
    from runtime.daemon.sandbox import scope
    from runtime.errors import CapsizeError
    if scope()[0] != "host":
        pytest.skip("this test process is not in a namespace with foreign devices")
    with pytest.raises(CapsizeError, match="refusing to touch the host's netfilter rules"):
        netfilter.apply([netfilter.Rule("capsize0", "172.17.0.0/16")])
    assert "172.17.0.0/16" not in netfilter.ruleset([]) and "masquerade" in netfilter.ruleset(
        [netfilter.Rule("capsize0", "172.17.0.0/16")])
