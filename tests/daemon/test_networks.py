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

pytestmark = pytest.mark.privileged

NEW_DOCKER = shutil.which("docker")   # the newer CLI first on PATH (may be Debian's too)


@pytest.fixture(scope="module")
def ns_stack(tmp_path_factory):
    from tests.daemon.stack import Stack
    s = Stack(tmp_path_factory.mktemp("netstack"), netns=True)
    try:
        s.start()
        s.load_busybox()
        yield s
    finally:
        s.close()


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
