"""``docker run --init`` and ``--pid host`` on capsized (issue #21's options), through the real
docker CLI 20.10 and the docker SDK."""

from __future__ import annotations

import os

import pytest

from runtime.daemon import initproc

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

try:
    initproc.binary()
    HAVE_INIT = True
except Exception:   # noqa: BLE001 - FailedPrecondition: this host has no docker-init/tini-static
    HAVE_INIT = False


@pytest.mark.skipif(not HAVE_INIT, reason="no docker-init/tini-static on this host (Debian's tini)")
def test_init_is_pid_1_reaps_orphans_and_passes_the_status(stack):
    out = stack.ok("run", "--rm", "--init", "busybox", "sh", "-c",
                   "sh -c 'sleep 0.2 &'; sleep 0.6; ps -o pid,stat,comm")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows[0][0] == "1" and rows[0][-1] == "docker-init"
    assert not [r for r in rows if r[1].startswith("Z")], out   # the orphaned sleep was reaped by tini
    r = stack.cli("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7")
    assert r.returncode == 7
    stack.ok("run", "-d", "--name", "ini", "--init", "busybox", "sleep", "1000")
    assert stack.ok("inspect", "-f", "{{.HostConfig.Init}}", "ini") == "true"
    top = stack.ok("top", "ini")   # docker top keeps working: both processes, host pids
    assert "/sbin/docker-init -- sleep 1000" in top and top.count("sleep 1000") == 2, top
    stack.ok("stop", "-t", "5", "ini")   # tini forwards SIGTERM to sleep: no 137 after the grace period
    assert stack.ok("inspect", "-f", "{{.State.ExitCode}}", "ini") == "143"


def test_pid_host_sees_the_host_pids(stack):
    out = stack.ok("run", "--rm", "--pid", "host", "busybox", "sh", "-c", "cat /proc/1/comm; echo $$")
    comm, pid = out.split()
    with open("/proc/1/comm") as f:
        assert comm == f.read().strip()
    assert int(pid) > 1
    c = stack.client()
    box = c.containers.run("busybox", ["sleep", "1000"], pid_mode="host", detach=True)
    try:
        box.reload()
        assert box.attrs["HostConfig"]["PidMode"] == "host"
        assert os.readlink(f"/proc/{box.attrs['State']['Pid']}/ns/pid") == os.readlink("/proc/self/ns/pid")
        assert [row[1] for row in box.top()["Processes"]] == [str(box.attrs["State"]["Pid"])]   # PID column
    finally:
        box.remove(force=True)


def test_bad_pid_modes_are_refused_in_one_line(stack):
    r = stack.cli("create", "--pid", "container:nosuch", "busybox", "true")
    assert r.returncode != 0 and "PID namespace" in r.stderr and "Traceback" not in r.stderr
    import docker
    c = stack.client()
    with pytest.raises(docker.errors.APIError) as e:
        c.api.create_container("busybox", ["true"], host_config={"PidMode": "bogus"})
    assert e.value.status_code == 400 and "invalid PID mode" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        c.api.create_container("busybox", ["true"], host_config={"Init": "yes"})
    assert e.value.status_code == 400
    assert stack.ok("ps", "-aq") == ""
