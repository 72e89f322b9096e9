"""Published ports (runtime/daemon/ports.py, proxies.py, capsize-proxy, the DNAT chain of
netfilter.py) on a capsized in its own network namespace: Docker's shapes through the real CLI
and the SDK, traffic through the proxy (127.0.0.1) and through DNAT (from another namespace),
Docker's text for a taken port with nothing half-made, and what a SIGKILLed capsized leaves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from runtime import netns

pytestmark = pytest.mark.privileged

SERVE = "nc -ll -p 8080 -e echo pong"


@pytest.fixture(scope="module")
def ps(tmp_path_factory):
    from tests.daemon.stack import booted
    with booted(tmp_path_factory.mktemp("portstack"), netns=True) as s:
        yield s
    assert _proxies(s) == [], "a capsize-proxy was left"


def _proxies(s) -> list[str]:
    ino = os.stat(s.netns_path).st_ino if os.path.exists(s.netns_path) else None
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            if any(os.path.basename(a) == b"capsize-proxy" for a in argv[:2]) and \
                    os.stat(f"/proc/{pid}/ns/net").st_ino == ino:
                out.append(pid)
        except OSError:
            continue
    return out


def _table(s) -> str:
    return subprocess.run(["nsenter", f"--net={s.netns_path}", "nft", "list", "table", "inet", "capsize"],
                          capture_output=True, text=True).stdout


def _get(s, host: str, port: int, path: str | None = None) -> bytes:
    def go():
        end = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection((host, port), timeout=3) as c:
                    return c.recv(100)
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
    return netns.run_in(path or s.netns_path, go)


@pytest.fixture
def s(ps):
    yield ps
    ps.remove_all()
    assert _proxies(ps) == [] and "dnat" not in _table(ps), "a proxy or DNAT rule was left"


def _ipv6(s) -> bool:
    return netns.run_in(s.netns_path, lambda: os.path.exists("/proc/self/net/if_inet6"))


def test_publish_shapes_and_traffic(s, tmp_path):
    s.ok("run", "-d", "--name", "web", "-p", "18080:8080", "-p", "127.0.0.1::9000/udp", "-P", "--expose", "3000",
         "busybox", "sh", "-c", SERVE)
    lo, hi = (int(x) for x in netns.run_in(s.netns_path, lambda: open("/proc/sys/net/ipv4/ip_local_port_range").read()).split())
    ports = json.loads(s.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"))
    both = ["0.0.0.0", "::"] if _ipv6(s) else ["0.0.0.0"]
    assert [b["HostIp"] for b in ports["8080/tcp"]] == both and {b["HostPort"] for b in ports["8080/tcp"]} == {"18080"}
    assert ports["9000/udp"][0]["HostIp"] == "127.0.0.1" and lo <= int(ports["9000/udp"][0]["HostPort"]) <= hi
    assert lo <= int(ports["3000/tcp"][0]["HostPort"]) <= hi
    assert "8080/tcp -> 0.0.0.0:18080" in s.ok("port", "web")
    assert "0.0.0.0:18080->8080/tcp" in s.ok("ps", "--format", "{{.Ports}}")
    summary = s.client().api.containers(filters={"name": "web"})[0]["Ports"]
    assert {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 18080, "Type": "tcp"} in summary
    assert len(_proxies(s)) == 2 * len(both) + 1
    assert _get(s, "127.0.0.1", 18080) == b"pong\n"   # the proxy
    assert "tcp dport 18080 dnat ip to" in _table(s)
    # another namespace, a veth to the engine's: DNAT (still answers with the proxies killed)
    client = str(tmp_path / "client-ns")
    netns.create(client)
    try:
        from tests.daemon.stack import veth_between
        veth_between(s.netns_path, ("vethczcl", "10.199.0.1"), client, ("czpeer", "10.199.0.2"))
        for pid in _proxies(s):
            os.kill(int(pid), 9)
        assert _get(s, "10.199.0.1", 18080, client) == b"pong\n"
    finally:
        netns.remove(client)
    s.ok("rm", "-f", "web")
    assert _proxies(s) == [] and "dnat" not in _table(s)


def test_taken_port_fails_with_dockers_text_and_leaves_nothing(s):
    s.ok("run", "-d", "--name", "one", "-p", "18181:8080", "busybox", "sh", "-c", SERVE)
    before = set(_proxies(s))
    r = s.cli("run", "-d", "--name", "two", "-p", "18181:8080", "busybox", "sleep", "30")
    assert r.returncode == 125
    assert "driver failed programming external connectivity on endpoint two (" in r.stderr
    assert "Bind for 0.0.0.0:18181 failed: port is already allocated" in r.stderr
    assert set(_proxies(s)) == before and _table(s).count("dnat") == 1
    net = json.loads(s.ok("network", "inspect", "bridge"))[0]["Containers"]
    assert [v["Name"] for v in net.values()] == ["one"]
    # any other listener in the engine's namespace
    held = netns.run_in(s.netns_path, lambda: (lambda x: (x.bind(("0.0.0.0", 18182)), x.listen(), x)[2])(socket.socket()))
    try:
        r = s.cli("run", "-d", "--name", "three", "-p", "18182:80", "busybox", "sleep", "30")
        assert r.returncode == 125 and ("Error starting userland proxy: listen tcp4 0.0.0.0:18182: bind: "
                                        "address already in use") in r.stderr, r.stderr
    finally:
        held.close()
    assert set(_proxies(s)) == before


def test_sdk_ports_on_a_user_network(s):
    s.ok("network", "create", "pnet")
    try:
        c = s.client().containers.run("busybox", ["sh", "-c", SERVE], detach=True, network="pnet",
                                      ports={"8080/tcp": ("127.0.0.1", 18383)})
        c.reload()
        assert c.ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18383"}]}
        assert _get(s, "127.0.0.1", 18383) == b"pong\n"
        assert 'iifname != "br-' in _table(s)
        c.remove(force=True)
    finally:
        s.cli("network", "rm", "pnet")


@pytest.fixture
def own(tmp_path):
    """A stack of the test's own (it kills and restarts capsized)."""
    from tests.daemon.stack import booted
    with booted(tmp_path / "own", netns=True) as st:
        yield st
    assert _proxies(st) == [], "a capsize-proxy was left"


def test_sigkill_restart_with_and_without_live_restore(own):
    s = own
    s.ok("run", "-d", "--name", "kept", "-p", "18484:8080", "busybox", "sh", "-c", SERVE)
    s.ok("run", "-d", "--name", "dies", "-p", "18485:8080", "busybox", "sh", "-c", SERVE)
    dies_pid = int(s.ok("inspect", "-f", "{{.State.Pid}}", "dies"))
    s.kill_daemon()
    os.kill(dies_pid, 9)   # dies while capsized is down
    s.live_restore = True
    try:
        s.start_daemon()
        assert _get(s, "127.0.0.1", 18484) == b"pong\n"
        ports = json.loads(s.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "kept"))
        assert ports["8080/tcp"][0]["HostPort"] == "18484" and "dport 18484" in _table(s)
        assert "dport 18485" not in _table(s) and s.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "dies") == "{}"
        assert len(_proxies(s)) == len(ports["8080/tcp"])
        s.kill_daemon()
    finally:
        s.live_restore = False
    s.start_daemon()   # without live-restore: stopped, its ports gone
    assert s.ok("inspect", "-f", "{{.State.Status}}", "kept") == "exited"
    assert _proxies(s) == [] and "dnat" not in _table(s)
