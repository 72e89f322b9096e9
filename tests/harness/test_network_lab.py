"""The lab's network side: cleanup.complete's veth/bridge/rule/proxy kinds read in the engine's
own namespace (real veths, a real bridge, a real nft rule and a real docker-proxy made there,
never in the host's), the network.reachable model, and the refusal to act in the harness's own
namespace."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

import pytest

from harness.engines import engine_class
from harness.observe import netstate
from harness.scenario.models import EngineOptions
from runtime.errors import CapsizeError
from runtime.runtimes import which
from tests.harness.conftest import needs_docker


def test_reachable_needs_exactly_one_target():
    from pydantic import ValidationError

    from harness.verbs.network import NetworkReachable
    with pytest.raises(ValidationError, match="exactly one of to, address_of, published"):
        NetworkReachable(container="a", port=80)
    with pytest.raises(ValidationError, match="exactly one"):
        NetworkReachable(container="a", to="b", address_of="b", port=80)
    with pytest.raises(ValidationError, match="from the engine's namespace"):
        NetworkReachable(container="a", published="b", port=80)
    assert NetworkReachable(to="10.0.0.1", port=80, reachable=False).reachable is False


def test_rule_counters_are_ignored():
    line = 'ip daddr 172.17.0.2 tcp dport 80 counter packets 12 bytes 720 accept'
    assert netstate.normalize_rule(line) == 'ip daddr 172.17.0.2 tcp dport 80 accept'


class _Ctx:
    def __init__(self, engine):
        self.engine = engine


class _NoNetns:
    name = "plain"
    netns_path = None


class _OwnNetns:
    name = "same"
    netns_path = "/proc/self/ns/net"


def test_faults_refuse_the_hosts_namespace():
    from harness.verbs.network import engine_netns
    with pytest.raises(CapsizeError, match="runs in the host's network namespace"):
        engine_netns(_Ctx(_NoNetns()))
    with pytest.raises(CapsizeError, match="the harness's own network namespace"):
        engine_netns(_Ctx(_OwnNetns()))


def _in(path, *argv):
    r = netstate.run(path, list(argv))
    assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r


@pytest.mark.privileged
@pytest.mark.reference
@needs_docker
def test_leftover_network_kinds_on_docker(leak_scope):
    """A live container with a published port on a user network is not a leftover; a veth pair,
    a bridge, an nft rule naming a gone address and a docker-proxy for it, made in dockerd's
    namespace, are each reported under their kind; removed, the report is empty again."""
    root = leak_scope.own_path(tempfile.mkdtemp(prefix="cz-nl-", dir="/tmp"))
    eng = engine_class("docker")(root, EngineOptions())
    proxy = None
    try:
        eng.start()
        path = eng.netns_path
        assert path and os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
        base = netstate.baseline(path)
        assert "docker0" in base["links"], base
        c = eng.client(timeout=60)
        try:
            c.networks.create("labnet", driver="bridge")
            web = c.containers.run("busybox", ["nc", "-ll", "-p", "8080", "-e", "echo", "pong"], name="web",
                                   detach=True, network="labnet", ports={"8080/tcp": 18080})
            web.reload()
            live = netstate.leftovers(eng, base)
            assert live == {k: [] for k in netstate.KINDS}, live
            # the container's veth and its port's proxy and rules are there, owned by it
            assert any(x["kind"] == "veth" for x in netstate.links(path))
            assert netstate.proxies(os.stat(path).st_ino)
            # now things no container or network owns, made in the engine's namespace only
            _in(path, "ip", "link", "add", "czl0", "type", "veth", "peer", "name", "czl1")
            _in(path, "ip", "link", "add", "br-czlab", "type", "bridge")
            _in(path, which("nft"), "add", "table", "ip", "czlab")
            _in(path, which("nft"), "add", "chain", "ip", "czlab", "c")
            _in(path, which("nft"), "add", "rule", "ip", "czlab", "c", "ip", "daddr", "172.18.0.99", "accept")
            dp = which("docker-proxy")
            if dp:
                # docker-proxy reports its start on fd 3 (dockerd's pipe): give it one
                proxy = subprocess.Popen([which("nsenter"), f"--net={path}", "--", "sh", "-c",
                                          f"exec {dp} -proto tcp -host-ip 127.0.0.1 -host-port 18099 "
                                          "-container-ip 172.18.0.99 -container-port 80 3>/dev/null"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 10
                while not any(p["host_port"] == "18099" for p in netstate.proxies(os.stat(path).st_ino)):
                    assert time.monotonic() < deadline, "docker-proxy did not start"
                    time.sleep(0.05)
            left = netstate.leftovers(eng, base)
            assert sorted(x.split()[1] for x in left["veth"]) == ["czl0", "czl1"], left
            assert [x.split()[1] for x in left["bridge"]] == ["br-czlab:"], left
            assert len(left["rule"]) == 1 and "172.18.0.99" in left["rule"][0], left
            if dp:
                assert len(left["proxy"]) == 1 and "172.18.0.99:80" in left["proxy"][0], left
            # the container's own things stay unreported while it runs; gone with it, nothing
            if proxy:
                proxy.kill()
                proxy.wait()
                proxy = None
            _in(path, "ip", "link", "delete", "czl0")
            _in(path, "ip", "link", "delete", "br-czlab")
            _in(path, which("nft"), "delete", "table", "ip", "czlab")
            web.remove(force=True)
            c.networks.get("labnet").remove()
            assert netstate.leftovers(eng, base) == {k: [] for k in netstate.KINDS}
        finally:
            c.close()
    finally:
        if proxy:
            proxy.kill()
            proxy.wait()
        eng.close()
