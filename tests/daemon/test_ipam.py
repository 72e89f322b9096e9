"""capsized's IPAM (runtime/daemon/ipam.py): Docker's default pools, gateways, addresses never
handed out twice, state kept across a new instance (a restart). Pure: files only."""

from __future__ import annotations

import json
import os

import pytest

from runtime.daemon.ipam import Ipam
from runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable


def test_default_pools_in_dockers_order(tmp_path):
    ipam = Ipam(str(tmp_path), durable=False)
    assert ipam.request_pool("bridge") == {"subnet": "172.17.0.0/16", "gateway": "172.17.0.1"}
    assert ipam.request_pool("n1") == {"subnet": "172.18.0.0/16", "gateway": "172.18.0.1"}
    assert ipam.request_pool("n1")["subnet"] == "172.18.0.0/16"      # idempotent per network
    for i in range(19, 32):
        assert ipam.request_pool(f"x{i}")["subnet"] == f"172.{i}.0.0/16"
    assert ipam.request_pool("y")["subnet"] == "192.168.0.0/20"
    ipam.release_pool("n1")
    assert ipam.request_pool("z")["subnet"] == "172.18.0.0/16"       # a freed pool is free again


def test_requested_subnet_and_gateway(tmp_path):
    ipam = Ipam(str(tmp_path), durable=False)
    assert ipam.request_pool("a", "10.9.0.0/24", "10.9.0.254") == {"subnet": "10.9.0.0/24", "gateway": "10.9.0.254"}
    with pytest.raises(AlreadyExists, match="Pool overlaps"):
        ipam.request_pool("b", "10.9.0.128/25")
    with pytest.raises(InvalidArgument, match="invalid CIDR address: 10.9.0/33"):
        ipam.request_pool("b", "10.9.0/33")
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway 10.8.0.1"):
        ipam.request_pool("b", "10.10.0.0/24", "10.8.0.1")
    with pytest.raises(InvalidArgument, match="needs a subnet"):
        ipam.request_pool("b", None, "10.8.0.1")
    assert "b" not in ipam.pools    # a refused request changes nothing


def test_addresses_never_twice_and_persisted(tmp_path):
    ipam = Ipam(str(tmp_path), durable=False)
    ipam.request_pool("n", "10.1.0.0/29")         # .1 gateway, .2-.6 usable, .7 broadcast
    got = [ipam.request_address("n") for _ in range(5)]
    assert got == ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(Unavailable, match="no available IPv4 addresses"):
        ipam.request_address("n")
    ipam.release_address("n", "10.1.0.3")
    again = Ipam(str(tmp_path), durable=False)     # a restart: the same state from disk
    assert again.pools == ipam.pools
    assert again.request_address("n") == "10.1.0.3"
    with pytest.raises(AlreadyExists, match="Address already in use"):
        again.request_address("n", "10.1.0.4")
    with pytest.raises(AlreadyExists):
        again.request_address("n", "10.1.0.1")    # the gateway
    with pytest.raises(InvalidArgument, match="contain the IP address"):
        again.request_address("n", "10.1.0.7")    # broadcast
    with pytest.raises(NotFound):
        again.request_address("nosuch")
    with open(os.path.join(str(tmp_path), "daemon", "network", "ipam.json")) as f:
        assert sorted(json.load(f)["pools"]["n"]["allocated"]) == got


def test_a_freed_address_is_not_reused_at_once(tmp_path):
    ipam = Ipam(str(tmp_path), durable=False)
    ipam.request_pool("n", "10.2.0.0/24")
    a = ipam.request_address("n")
    ipam.release_address("n", a)
    b = ipam.request_address("n")
    assert (a, b) == ("10.2.0.2", "10.2.0.3")
    assert ipam.request_address("n", "10.2.0.2") == "10.2.0.2"   # asked for: given


def test_retain_frees_what_no_container_holds_in_one_save(tmp_path, monkeypatch):
    ipam = Ipam(str(tmp_path), durable=False)
    ipam.request_pool("n", "10.3.0.0/24")
    got = [ipam.request_address("n") for _ in range(4)]
    saves = []
    monkeypatch.setattr(ipam, "_save", lambda: saves.append(1))
    assert ipam.retain("n", {got[1], got[3], "10.9.9.9"}) == [got[0], got[2]]
    assert ipam.pools["n"]["allocated"] == [got[1], got[3]] and len(saves) == 1
    assert ipam.retain("n", {got[1], got[3]}) == [] and len(saves) == 1   # nothing to free: no write
    assert ipam.retain("nosuch", set()) == []
    monkeypatch.undo()
    ipam.retain("n", set())
    assert Ipam(str(tmp_path), durable=False).pools["n"]["allocated"] == []   # saved
