"""docker pull / push / login / logout through capsized against a real private registry
(Debian's docker-registry, :mod:`harness.reference.registry`), with the real docker CLI:
capsized runs in a network namespace of its own, the transfer runs in capsize-runtimed."""

from __future__ import annotations

import json
import os

import pytest

from harness.reference.registry import unavailable
from tests.daemon.stack import booted
from tests.highlevel.test_registry import registry  # noqa: F401 - the fixture

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with booted(tmp_path_factory.mktemp("rg"), netns=True) as s:
        yield s


def test_push_rmi_pull_run(engine, registry):
    reg = registry()
    ref = f"{reg.address}/lab/busybox:1"
    engine.ok("tag", "busybox:latest", ref)
    out = engine.ok("push", ref)
    assert f"The push refers to repository [{reg.address}/lab/busybox]" in out
    assert "1: digest: sha256:" in out
    pushed = engine.ok("push", ref)
    assert "Layer already exists" in pushed
    engine.ok("rmi", ref)
    out = engine.ok("pull", ref)
    assert "Pull complete" in out or "Already exists" in out
    assert f"Status: Downloaded newer image for {ref}" in out
    assert engine.ok("run", "--rm", ref, "echo", "pulled-and-ran") == "pulled-and-ran"
    assert f"Status: Image is up to date for {ref}" in engine.ok("pull", ref)
    engine.ok("rmi", ref)


def test_pull_errors_as_docker(engine, registry):
    reg = registry()
    r = engine.cli("pull", f"{reg.address}/busybox:nope")
    assert r.returncode == 1
    assert f"Error response from daemon: manifest for {reg.address}/busybox:nope not found: manifest unknown" \
        in r.stderr
    reg.stop()
    r = engine.cli("pull", f"{reg.address}/busybox:latest")
    assert r.returncode == 1
    assert f'Error response from daemon: Get "http://{reg.address}/v2/": dial tcp {reg.address}: connect: ' \
           f"connection refused" in r.stderr
    assert f"{reg.address}" not in engine.ok("images", "--format", "{{.Repository}}")


def test_login_push_logout(engine, registry):
    reg = registry(users={"alice": "s3cret"})
    ref = f"{reg.address}/private:1"
    engine.ok("tag", "busybox:latest", ref)
    r = engine.cli("push", ref)
    assert r.returncode == 1 and r.stderr.strip() == "no basic auth credentials"
    r = engine.cli("login", "-u", "alice", "-p", "wrong", reg.address)
    assert r.returncode == 1
    assert f"login attempt to http://{reg.address}/v2/ failed with status: 401 Unauthorized" in r.stderr
    assert "Login Succeeded" in engine.ok("login", "-u", "alice", "-p", "s3cret", reg.address)
    with open(os.path.join(engine.workdir, "cli", "config.json")) as f:
        assert reg.address in json.load(f)["auths"]
    engine.ok("push", ref)
    engine.ok("rmi", ref)
    engine.ok("pull", ref)
    engine.ok("rmi", ref)
    engine.ok("logout", reg.address)
    r = engine.cli("pull", ref)
    assert r.returncode == 1 and "no basic auth credentials" in r.stderr


@pytest.mark.reference
@pytest.mark.skipif(not __import__("shutil").which("dockerd"), reason="dockerd not installed")
def test_round_trips_with_real_docker(engine, registry, tmp_path):
    """Pushed by capsize, pulled and run by a private dockerd; and the other way round. dockerd
    runs in the host's namespace (network none) to share the host-loopback registry."""
    from harness.reference.docker import DockerStack
    reg = registry()
    mine, theirs = f"{reg.address}/from/capsize:1", f"{reg.address}/from/docker:1"
    engine.ok("tag", "busybox:latest", mine)
    engine.ok("push", mine)
    with DockerStack(str(tmp_path / "ref"), network="none") as ref:
        r = ref.cli("pull", mine)
        assert r.returncode == 0, r.stderr
        r = ref.cli("run", "--rm", "--network", "none", mine, "echo", "capsize-made")
        assert r.returncode == 0 and r.stdout.strip() == "capsize-made", r.stderr
        ref.import_busybox("busybox:latest")
        assert ref.cli("tag", "busybox:latest", theirs).returncode == 0
        r = ref.cli("push", theirs)
        assert r.returncode == 0, r.stderr
    out = engine.ok("pull", theirs)
    assert f"Status: Downloaded newer image for {theirs}" in out
    assert engine.ok("run", "--rm", theirs, "echo", "docker-made") == "docker-made"
    engine.ok("rmi", mine, theirs)


def test_error_table_is_dockerds(engine, registry, tmp_path):
    """Every case of tests/daemon/registry_errors.py gives dockerd's status, text and CLI output
    (the table measured on a private dockerd: tests/daemon/data/registry-errors.json), and the
    content store is consistent afterwards (nothing half-made)."""
    from tests.daemon.registry_errors import CASES, DATA, measure
    with open(DATA) as f:
        want = json.load(f)["cases"]
    got = measure(engine.cli, engine.sock, registry(), registry(users={"alice": "s3cret"}), str(tmp_path))
    assert sorted(got) == sorted(CASES) == sorted(want)
    for case in CASES:
        assert got[case] == want[case], case
    from runtime.highlevel.fsck import PROBLEMS, verify
    report = verify(engine.root)
    assert {k: report[k] for k in PROBLEMS} == {k: [] for k in PROBLEMS}
    assert report["partial_ingests"] == []
