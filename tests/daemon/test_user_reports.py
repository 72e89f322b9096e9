"""Problems a new user met with capsized, each through the real docker CLI or the SDK."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time

import pytest

from tests.conftest import SESSION_TAG
from tests.daemon.stack import DOCKER


def inspect(stack, ref):
    return json.loads(stack.ok("inspect", ref))[0]


# -- 1. a start that fails -----------------------------------------------------------------------

@pytest.mark.privileged
def test_run_rm_missing_command_fails_promptly_and_removes(stack):
    t0 = time.monotonic()
    r = stack.cli("run", "--rm", "busybox", "nosuchcmd", timeout=30)
    assert r.returncode == 127, r
    assert time.monotonic() - t0 < 20
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr
    assert r.stderr.count("executable file not found") == 1, r.stderr   # not also as output
    assert r.stdout == ""
    end = time.monotonic() + 5
    while stack.ok("ps", "-aq") and time.monotonic() < end:
        time.sleep(0.05)
    assert stack.ok("ps", "-aq") == ""


@pytest.mark.privileged
def test_failed_start_leaves_no_runtime_error_in_the_log(stack):
    r = stack.cli("run", "--name", "nocmd", "busybox", "nosuchcmd")
    assert r.returncode == 127 and r.stderr.count("executable file not found") == 1, r
    st = inspect(stack, "nocmd")["State"]
    assert st["Status"] == "created" and st["ExitCode"] == 127
    logs = stack.cli("logs", "nocmd")
    assert logs.stdout == "" and logs.stderr == "", logs


# -- 2. mounts and refused host config -----------------------------------------------------------

@pytest.mark.privileged
def test_bind_mounts(stack, tmp_path):
    src = tmp_path / "x"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    assert stack.ok("run", "--rm", "-v", f"{src}:/sc", "busybox", "cat", "/sc/hello") == "hi"
    stack.ok("run", "--rm", "-v", f"{src}:/sc", "busybox", "sh", "-c", "echo w > /sc/new")
    assert (src / "new").read_text() == "w\n"
    r = stack.cli("run", "--rm", "-v", f"{src}:/sc:ro", "busybox", "touch", "/sc/nope")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r
    # a missing -v source is created; --mount type=bind refuses it
    missing = tmp_path / "made" / "here"
    stack.ok("run", "--rm", "-v", f"{missing}:/m", "busybox", "true")
    assert missing.is_dir()
    r = stack.cli("run", "--rm", "--mount", f"type=bind,source={tmp_path}/absent,target=/a", "busybox", "true")
    assert r.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/absent' in r.stderr
    # inspect's Mounts, as dockerd's
    cid = stack.ok("create", "-v", f"{src}:/sc:ro", "--mount", f"type=bind,src={src},dst=/b",
                   "--mount", "type=tmpfs,dst=/tm,tmpfs-size=1048576", "busybox", "true")
    mounts = {m["Destination"]: m for m in inspect(stack, cid)["Mounts"]}
    assert mounts["/sc"] == {"Type": "bind", "Source": str(src), "Destination": "/sc", "Mode": "ro",
                             "RW": False, "Propagation": "rprivate"}
    assert mounts["/b"] == {"Type": "bind", "Source": str(src), "Destination": "/b", "Mode": "", "RW": True,
                            "Propagation": "rprivate"}
    assert mounts["/tm"]["Type"] == "tmpfs" and mounts["/tm"]["RW"] is True


@pytest.mark.privileged
def test_tmpfs_mounts(stack):
    out = stack.ok("run", "--rm", "--tmpfs", "/t:size=1m", "busybox", "sh", "-c",
                   "grep ' /t ' /proc/mounts; echo x > /t/f && cat /t/f")
    assert "tmpfs /t tmpfs" in out and "size=1024k" in out and "noexec" in out and out.endswith("x")
    out = stack.ok("run", "--rm", "--mount", "type=tmpfs,dst=/u,tmpfs-size=2097152,tmpfs-mode=1770",
                   "busybox", "grep", " /u ", "/proc/mounts")
    assert "size=2048k" in out and "mode=1770" in out
    out = stack.ok("run", "--rm", "--shm-size", "8m", "busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert "size=8192k" in out


@pytest.mark.parametrize("args, status, text", [
    (["--volumes-from", "other"], 125, "capsize does not support VolumesFrom"),
    (["--mount", "type=volume,src=v,dst=/data,volume-driver=nfs"], 125, "the local volume driver only"),
    (["-v", "bad name:/data"], 125, "invalid volume specification"),
    (["-p", "8080:80"], 125, "capsize cannot publish ports"),
    (["--add-host", "a:host-gateway"], 125, "unable to derive the IP value for host-gateway"),
    (["--device", "/dev/null:/dev/xnull"], 125, "capsize does not support Devices"),
    (["--network", "container:abc"], 125, "No such container: abc"),
    (["--network", "container:abc", "-p", "80:80"], 125, "conflicting options: port publishing"),
    (["--network", "nosuchnet"], 125, "network nosuchnet not found"),
    (["--privileged"], 125, "capsize does not support Privileged"),
])
@pytest.mark.privileged
def test_refused_host_config(stack, args, status, text):
    r = stack.cli("run", "--rm", *args, "busybox", "true", timeout=30)
    assert r.returncode == status and text in r.stderr, r
    assert "Traceback" not in r.stderr
    assert stack.ok("ps", "-aq") == ""


@pytest.mark.privileged
def test_refusals_are_json_with_docker_statuses(stack):
    import docker
    cl = stack.client()
    with pytest.raises(docker.errors.APIError) as ei:
        cl.containers.create("busybox", "true", volumes_from=["other"])
    assert ei.value.status_code == 501 and "VolumesFrom" in ei.value.explanation
    with pytest.raises(docker.errors.APIError) as ei:
        cl.containers.create("busybox", "true", ports={"80/tcp": 8080})
    assert ei.value.status_code == 501
    with pytest.raises(docker.errors.APIError) as ei:
        cl.containers.create("busybox", "true", mounts=[docker.types.Mount("/a", "/nonexistent-capsize", "bind")])
    assert ei.value.status_code == 400


# -- 3. input -----------------------------------------------------------------------------------

def _cli_with_input(stack, data: bytes, *args, timeout=30):
    return subprocess.run([DOCKER, *args], input=data, capture_output=True, timeout=timeout, env=stack.env())


@pytest.mark.privileged
def test_piped_input_reaches_the_container(stack):
    r = _cli_with_input(stack, b"piped-in\n", "run", "-i", "--rm", "busybox", "cat")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"piped-in\n", b""), r
    big = b"".join(b"line %06d\n" % i for i in range(20000))   # more than a pipe's buffer
    r = _cli_with_input(stack, big, "run", "-i", "--rm", "busybox", "wc", "-c")
    assert r.returncode == 0 and r.stdout.strip() == str(len(big)).encode(), r
    r = _cli_with_input(stack, b"", "run", "-i", "--rm", "busybox", "cat")     # EOF at once
    assert (r.returncode, r.stdout) == (0, b""), r
    r = _cli_with_input(stack, b"a\nb\n", "run", "-i", "--rm", "busybox", "sh", "-c", "read x; echo got $x; exit 3")
    assert (r.returncode, r.stdout) == (3, b"got a\n"), r
    assert stack.ok("ps", "-aq") == ""


@pytest.mark.privileged
def test_input_without_attach_stays_open(stack):
    # -i -d: stdin is open (nothing sends, nothing closes it): cat keeps running, as with Docker
    cid = stack.ok("run", "-i", "-d", "busybox", "cat")
    time.sleep(0.5)
    assert inspect(stack, cid)["State"]["Running"] is True
    stack.ok("rm", "-f", cid)
    # without -i the container's stdin is /dev/null
    r = _cli_with_input(stack, b"lost\n", "run", "--rm", "busybox", "cat")
    assert (r.returncode, r.stdout) == (0, b""), r


# -- 4. cgroup parent ---------------------------------------------------------------------------

def _cgroup_of(pid: int) -> set[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.strip().split(":", 2)[2] for line in f}


@pytest.mark.privileged
def test_cgroup_parent_per_container(stack):
    parent = f"/capsize-test-{SESSION_TAG}"
    try:
        cid = stack.ok("run", "-d", "--cgroup-parent", parent, "busybox", "sleep", "100")
        pid = inspect(stack, cid)["State"]["Pid"]
        assert f"{parent}/{cid}" in _cgroup_of(pid)
        assert inspect(stack, cid)["HostConfig"]["CgroupParent"] == parent
        stack.ok("rm", "-f", cid)
        assert glob.glob(f"/sys/fs/cgroup/*{parent}/{cid}") + glob.glob(f"/sys/fs/cgroup{parent}/{cid}") == []
    finally:
        _remove_cgroup_parent(parent)


def _remove_cgroup_parent(parent: str) -> None:
    """rmdir the test's cgroup parent in every hierarchy (children first)."""
    for d in sorted(glob.glob(f"/sys/fs/cgroup/*{parent}") + glob.glob(f"/sys/fs/cgroup/*/*{parent}")
                    + glob.glob(f"/sys/fs/cgroup{parent}"), reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.mark.privileged
def test_daemon_cgroup_parent_flag(fresh):
    parent = f"/capsize-engine-{SESSION_TAG}"
    try:
        fresh.stop_daemon()
        fresh.start_daemon("--cgroup-parent", parent)
        cid = fresh.ok("run", "-d", "busybox", "sleep", "100")
        pid = inspect(fresh, cid)["State"]["Pid"]
        assert f"{parent}/{cid}" in _cgroup_of(pid)
        fresh.ok("rm", "-f", cid)
    finally:
        fresh.remove_all()
        _remove_cgroup_parent(parent)


# -- 5. the runtime daemon comes back after capsized started -------------------------------------

@pytest.mark.privileged
def test_runtime_back_late_reconciles_as_at_start(fresh):
    cid = fresh.ok("run", "-d", "--name", "late", "busybox", "sleep", "1000")
    fresh.kill_daemon()
    fresh.kill_runtime()
    fresh.start_daemon("--runtime-wait", "1")
    assert inspect(fresh, "late")["State"]["Running"] is True   # what was recorded; nothing checked yet
    fresh.start_runtime()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        st = inspect(fresh, "late")["State"]
        if not st["Running"]:
            break
        time.sleep(0.1)
    assert st["Status"] == "exited", st          # no live-restore: stopped, as at start-up
    assert st["ExitCode"] in (137, 143), st
    log = open(os.path.join(fresh.logs, "capsized.log")).read()
    assert "reconciling containers as at start-up" in log
    fresh.ok("rm", cid)
