"""``docker stats`` and ``docker update`` on capsized, through the real docker CLIs (Debian's 20.10
and the newer one on PATH) and the docker SDK: numbers read from the container's cgroup, the
stream, a stopped container's zeros; limits applied live to the cgroup (capsized -> runtimed ->
shim -> capsize-runc ``update``) and kept for the next start; dockerd's refusals."""

from __future__ import annotations

import os
import shutil
import subprocess

import docker
import pytest

from runtime.daemon.oci import cgroups_path
from runtime.lowlevel.cgroups import Cgroup
from tests.daemon.stack import CGROUP_PARENT, DOCKER

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

NEW_CLI = shutil.which("docker")
CLIS = [DOCKER] + ([NEW_CLI] if NEW_CLI and os.path.realpath(NEW_CLI) != os.path.realpath(DOCKER) else [])


class _C:
    def __init__(self, cid):
        self.ID, self.HostConfig = cid, {}


def cgroup_file(cid: str, controller: str, v1_name: str, v2_name: str) -> str:
    cg = Cgroup.for_container(cid, cgroups_path(_C(cid), CGROUP_PARENT))
    if cg.layout == "v2":
        return open(os.path.join(cg.dirs[""], v2_name)).read().strip()
    d = next(d for k, d in cg.dirs.items() if controller in k.split(","))
    return open(os.path.join(d, v1_name)).read().strip()


def test_sdk_stats_one_shot_stream_and_stopped(stack):
    c = stack.client()
    box = c.containers.run("busybox", ["sh", "-c", "while :; do :; done"], name="busy", detach=True, mem_limit="64m")
    try:
        s = box.stats(stream=False)
        assert s["id"] == box.id and s["name"] == "/busy"
        assert s["memory_stats"]["limit"] == 64 * 1024 * 1024 and s["memory_stats"]["usage"] > 0
        assert s["pids_stats"]["current"] == 1
        used = s["cpu_stats"]["cpu_usage"]["total_usage"] - s["precpu_stats"]["cpu_usage"]["total_usage"]
        system = s["cpu_stats"]["system_cpu_usage"] - s["precpu_stats"]["system_cpu_usage"]
        assert system > 0 and 0.3 < used / system * s["cpu_stats"]["online_cpus"] <= 1.2   # one busy CPU
        stream = box.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
        stream.close()
        box.stop(timeout=0)
        s = box.stats(stream=False)
        assert s["read"] == "0001-01-01T00:00:00Z" and s["memory_stats"] == {}
    finally:
        box.remove(force=True)


@pytest.mark.parametrize("binary", CLIS, ids=[os.path.basename(os.path.dirname(c)) + "-docker" for c in CLIS])
def test_cli_stats_no_stream(stack, binary):
    stack.ok("run", "-d", "--name", "st", "-m", "32m", "busybox", "sleep", "1000")
    try:
        r = subprocess.run([binary, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "st"],
                           env=stack.env(), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        name, usage, _, limit, pids = r.stdout.split()
        assert (name, limit, pids) == ("st", "32MiB", "1") and usage.endswith("iB")
    finally:
        stack.cli("rm", "-f", "st")


@pytest.mark.parametrize("binary", CLIS, ids=[os.path.basename(os.path.dirname(c)) + "-docker" for c in CLIS])
def test_cli_update_applies_live_and_keeps_for_the_next_start(stack, binary):
    stack.ok("run", "-d", "--name", "up", "-m", "64m", "busybox", "sleep", "1000")
    cid = stack.ok("inspect", "-f", "{{.Id}}", "up")
    try:
        r = subprocess.run([binary, "update", "-m", "128m", "--cpu-shares", "512", "--pids-limit", "40",
                            "--restart", "on-failure:2", "up"], env=stack.env(), capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") == str(128 << 20)
        assert cgroup_file(cid, "pids", "pids.max", "pids.max") == "40"
        assert stack.ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} "
                        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
                        "up") == f"{128 << 20} 512 40 on-failure:2"
        stack.ok("stop", "-t", "0", "up")
        stack.ok("update", "-m", "96m", "up")   # stopped: kept for the next start
        stack.ok("start", "up")
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") == str(96 << 20)
        assert cgroup_file(cid, "pids", "pids.max", "pids.max") == "40"
        stack.ok("update", "--pids-limit", "-1", "up")
        assert cgroup_file(cid, "pids", "pids.max", "pids.max") == "max"
        for args, text in [(("-m", "1m"), "Minimum memory limit allowed is 6MB"),
                           (("--kernel-memory", "10m"), "capsize cannot update KernelMemory"),
                           (("-m", "20m", "--memory-swap", "10m"), "Minimum memoryswap limit should be larger")]:
            r = stack.cli("update", *args, "up")
            assert r.returncode != 0 and text in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") == str(96 << 20)   # unchanged
    finally:
        stack.cli("rm", "-f", "up")


def test_sdk_update_cpus_and_a_container_that_never_ran(stack):
    c = stack.client()
    box = c.containers.create("busybox", ["sleep", "1000"], name="upc")

    def raw_update(body):
        return c.api._result(c.api._post_json(c.api._url("/containers/{0}/update", box.id), data=body), True)
    try:
        assert box.update(mem_limit="50m", restart_policy={"Name": "unless-stopped"})["Warnings"] == []
        raw_update({"PidsLimit": 25})
        box.start()   # never ran: the next start's spec took the update
        assert cgroup_file(box.id, "pids", "pids.max", "pids.max") == "25"
        assert cgroup_file(box.id, "memory", "memory.limit_in_bytes", "memory.max") == str(50 << 20)
        box.update(cpu_period=100000, cpu_quota=20000)
        assert cgroup_file(box.id, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] == "20000"
        with pytest.raises(docker.errors.APIError) as e:   # both at once: dockerd's conflict
            raw_update({"NanoCpus": 500_000_000, "CpuQuota": 30000})
        assert e.value.status_code == 400 and "Conflicting options: Nano CPUs and CPU" in str(e.value)
        with pytest.raises(docker.errors.APIError) as e:
            raw_update({"RestartPolicy": {"Name": "sometimes"}})
        assert e.value.status_code == 400
        box.reload()
        assert box.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    finally:
        box.remove(force=True)
