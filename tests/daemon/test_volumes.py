"""Volumes of capsized's local driver, through the real docker CLI (20.10) and the docker SDK.

Every volume lives under the stack's private root (``<root>/daemon/volumes/<name>/_data``); the
stack's teardown removes the root, and each test removes the volumes it made so the shared
stack's other tests see none.
"""

from __future__ import annotations

import json
import os
import signal
import time

import docker
import pytest

from tests.daemon.stack import Stack

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def vroot(stack) -> str:
    return os.path.join(stack.root, "daemon", "volumes")


def names(stack, *flt) -> list[str]:
    return stack.ok("volume", "ls", "-q", *flt).split()


@pytest.fixture(autouse=True)
def _no_volumes_left(request):
    """After each test (its containers removed by _clean_containers first): no volume is left."""
    yield
    if "stack" in request.fixturenames:     # a fresh stack goes whole, its root with it
        s = request.getfixturevalue("stack")
        if s.daemon is not None and s.daemon.poll() is None:
            s.remove_all()
            left = names(s)
            if left:
                s.cli("volume", "rm", "-f", *left)
            assert names(s) == [], left


def test_create_ls_inspect_rm_and_layout(stack):
    assert stack.ok("volume", "create", "--label", "tier=db", "data1") == "data1"
    assert stack.ok("volume", "create", "data1") == "data1"          # idempotent, as dockerd
    v = json.loads(stack.ok("volume", "inspect", "data1"))[0]
    assert v["Name"] == "data1" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"tier": "db"} and v["Options"] is None
    assert v["Mountpoint"] == os.path.join(vroot(stack), "data1", "_data")
    assert os.path.isdir(v["Mountpoint"]) and v["CreatedAt"].endswith("Z")
    with open(os.path.join(vroot(stack), "data1", "volume.json")) as f:
        assert json.load(f)["Name"] == "data1"
    anon = stack.ok("volume", "create")
    assert len(anon) == 64
    assert sorted(names(stack)) == sorted(["data1", anon])
    assert names(stack, "-f", "name=ata") == ["data1"]
    assert names(stack, "-f", "label=tier=db") == ["data1"]
    assert names(stack, "-f", "label=tier=web") == []
    r = stack.cli("volume", "create", "a")
    assert r.returncode == 1 and '"a" includes invalid characters for a local volume name' in r.stderr
    r = stack.cli("volume", "create", "-d", "nfs", "x1")
    assert r.returncode == 1 and 'plugin "nfs" not found' in r.stderr
    r = stack.cli("volume", "inspect", "nope")
    assert r.returncode == 1 and "No such volume: nope" in r.stderr
    r = stack.cli("volume", "rm", "nope")
    assert r.returncode == 1 and "No such volume: nope" in r.stderr
    assert stack.cli("volume", "rm", "-f", "nope").returncode == 0
    assert stack.ok("volume", "rm", "data1", anon) == f"data1\n{anon}"
    assert names(stack) == [] and os.listdir(vroot(stack)) == []


def test_named_volume_shared_between_containers_ro_and_in_use(stack):
    out = stack.ok("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c",
                   "echo hello > /data/f && sync && grep ' /data ' /proc/mounts")
    assert " /data " in out
    with open(os.path.join(vroot(stack), "shared", "_data", "f")) as f:
        assert f.read() == "hello\n"
    assert stack.ok("run", "--rm", "-v", "shared:/data:ro", "busybox", "cat", "/data/f") == "hello"
    r = stack.cli("run", "--rm", "-v", "shared:/data:ro", "busybox", "touch", "/data/g")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    cid = stack.ok("create", "--name", "user1", "-v", "shared:/data", "busybox", "true")
    r = stack.cli("volume", "rm", "shared")
    assert r.returncode == 1 and f"remove shared: volume is in use - [{cid}]" in r.stderr
    r = stack.cli("volume", "rm", "-f", "shared")        # force does not take a volume from a container
    assert r.returncode == 1 and "volume is in use" in r.stderr
    assert names(stack, "-f", "dangling=false") == ["shared"]
    assert names(stack, "-f", "dangling=true") == []
    assert "shared" not in stack.ok("volume", "prune", "-f")
    stack.ok("rm", "user1")
    assert names(stack, "-f", "dangling=true") == ["shared"]
    assert "shared" in stack.ok("volume", "prune", "-f")
    assert names(stack) == []


def test_inspect_mounts_anonymous_and_rm_v(stack):
    cid = stack.ok("create", "--name", "mnt", "-v", "/anon", "-v", "named1:/data:ro",
                   "--mount", "type=volume,dst=/m2", "busybox", "true")
    mounts = {m["Destination"]: m for m in json.loads(stack.ok("inspect", "-f", "{{json .Mounts}}", "mnt"))}
    assert set(mounts) == {"/anon", "/data", "/m2"}
    named = mounts["/data"]
    assert named == {"Type": "volume", "Name": "named1", "Source": os.path.join(vroot(stack), "named1", "_data"),
                     "Destination": "/data", "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}
    anon = [mounts["/anon"]["Name"], mounts["/m2"]["Name"]]
    assert all(len(n) == 64 for n in anon) and mounts["/anon"]["RW"]
    cfg = json.loads(stack.ok("inspect", "-f", "{{json .Config.Volumes}}", "mnt"))
    assert cfg == {"/anon": {}}                          # the CLI sends -v /dst as Config.Volumes
    assert sorted(names(stack)) == sorted(anon + ["named1"])
    assert stack.ok("rm", "-v", cid) == cid
    assert names(stack) == ["named1"]                    # rm -v: the anonymous ones only
    # without -v anonymous volumes stay
    stack.ok("create", "--name", "mnt2", "-v", "/keep", "busybox", "true")
    kept = json.loads(stack.ok("inspect", "-f", "{{json .Mounts}}", "mnt2"))[0]["Name"]
    stack.ok("rm", "mnt2")
    assert sorted(names(stack)) == sorted(["named1", kept])
    # docker run --rm removes its anonymous volumes
    stack.ok("run", "--rm", "-v", "/gone", "busybox", "true")
    assert sorted(names(stack)) == sorted(["named1", kept])
    stack.ok("volume", "rm", "named1", kept)


def test_copy_up_of_image_content(stack):
    out = stack.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd")
    assert out.startswith("root:x:0:0:")
    data = os.path.join(vroot(stack), "etcvol", "_data")
    assert os.path.isfile(os.path.join(data, "passwd"))
    with open(os.path.join(data, "passwd"), "a") as f:
        f.write("extra:x:9:9::/:/bin/sh\n")
    # an existing, non-empty volume is not filled again
    assert "extra:x:9:9" in stack.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd")
    # nocopy: an empty volume
    # (only the mount points of the engine's /etc/hostname, hosts, resolv.conf, as under dockerd)
    assert set(stack.ok("run", "--rm", "-v", "empty1:/etc:nocopy", "busybox", "ls", "-A", "/etc").split()) <= {
        "hostname", "hosts", "resolv.conf"}
    # an anonymous volume over /bin (a directory of the image) gets its content too
    assert stack.ok("run", "--rm", "-v", "/bin", "busybox", "/bin/busybox", "true") == ""
    # a mount point the image lacks: an empty volume
    assert stack.ok("run", "--rm", "--mount", "type=volume,src=newdir,dst=/nowhere", "busybox",
                    "ls", "-A", "/nowhere") == ""
    assert not [line for line in open("/proc/self/mountinfo") if "copyup" in line]
    assert not os.listdir(os.path.join(stack.state, "copyup"))
    stack.ok("volume", "rm", "etcvol", "empty1", "newdir")


def test_oci_spec_binds_the_volume(stack):
    stack.ok("create", "--name", "specv", "-v", "specvol:/data:ro", "busybox", "true")
    cid = stack.ok("inspect", "-f", "{{.Id}}", "specv")
    stack.ok("start", "specv")
    time.sleep(0.2)
    st = json.loads(stack.ok("inspect", "specv"))[0]["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    # the event stream tells the volume's life
    ev = stack.ok("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=volume",
                  "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.container}}")
    assert f"create specvol" in ev and f"mount specvol {cid}" in ev and f"unmount specvol {cid}" in ev
    stack.ok("rm", "specv")
    stack.ok("volume", "rm", "specvol")
    ev = stack.ok("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "volume=specvol",
                  "--format", "{{.Action}}")
    assert ev.split()[-1] == "destroy"


def test_sdk_volumes_and_containers_run(stack):
    cl = stack.client()
    v = cl.volumes.create("sdkvol", labels={"k": "v"})
    assert v.name == "sdkvol" and v.attrs["Labels"] == {"k": "v"}
    assert cl.volumes.get("sdkvol").attrs["Mountpoint"].endswith("/daemon/volumes/sdkvol/_data")
    assert [x.name for x in cl.volumes.list()] == ["sdkvol"]
    out = cl.containers.run("busybox", ["sh", "-c", "echo sdk > /v/file; cat /v/file"], remove=True,
                            volumes={"sdkvol": {"bind": "/v", "mode": "rw"}})
    assert out == b"sdk\n"
    c = cl.containers.create("busybox", "true", volumes=["sdkvol:/v:ro"])
    with pytest.raises(docker.errors.APIError) as ei:
        cl.volumes.get("sdkvol").remove()
    assert ei.value.status_code == 409 and "volume is in use" in ei.value.explanation
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        cl.volumes.get("nope")
    cl.volumes.create("other")
    res = cl.volumes.prune(filters={"label": "k=v"})
    assert res["VolumesDeleted"] == ["sdkvol"] and res["SpaceReclaimed"] == 4
    assert [x.name for x in cl.volumes.list()] == ["other"]
    cl.volumes.get("other").remove()
    # the low-level API: Config.Volumes (what an image's VOLUME gives) and HostConfig.Mounts
    api = cl.api
    m = docker.types.Mount("/ro", "mnt1", type="volume", read_only=True)
    cid = api.create_container("busybox", "true", volumes=["/img"],
                               host_config=api.create_host_config(mounts=[m]))["Id"]
    mounts = {x["Destination"]: x for x in api.inspect_container(cid)["Mounts"]}
    assert mounts["/ro"]["Name"] == "mnt1" and mounts["/ro"]["RW"] is False
    assert mounts["/img"]["Type"] == "volume" and len(mounts["/img"]["Name"]) == 64
    api.remove_container(cid, v=True)
    assert [x.name for x in cl.volumes.list()] == ["mnt1"]
    cl.volumes.get("mnt1").remove()


def test_bad_volume_specs(stack):
    r = stack.cli("run", "--rm", "--mount", "type=volume,src=bad/name,dst=/x", "busybox", "true")
    assert r.returncode == 125 and "invalid volume name" in r.stderr
    r = stack.cli("run", "--rm", "-v", "v2:relative", "busybox", "true")
    assert r.returncode == 125 and "mount path must be absolute" in r.stderr
    r = stack.cli("run", "--rm", "-v", "v2:/x:shared", "busybox", "true")
    assert r.returncode == 125 and "invalid mode" in r.stderr
    # a create refused after its volumes were made (a user capsize cannot run) leaves none, and its name free
    r = stack.cli("create", "--name", "failed1", "-u", "nobody", "-v", "made1:/x", "-v", "/y", "busybox", "true")
    assert r.returncode == 1 and "numeric users only" in r.stderr
    assert names(stack) == [] and stack.ok("ps", "-aq") == ""
    stack.ok("create", "--name", "failed1", "busybox", "true")
    stack.ok("rm", "failed1")


def _wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _shim_pid(stack, cid: str) -> int:
    import psutil
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and "capsize-shim" in " ".join(cmd[:2]) and cid in cmd and stack.workdir in " ".join(cmd):
            return p.pid
    raise AssertionError(f"no shim for {cid}")


def test_volume_data_survives_sigkill_of_shim_runtimed_and_capsized(fresh):
    s = fresh
    cid = s.ok("run", "-d", "--name", "writer", "-v", "crashvol:/data", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 64 ]; do echo line$i >> /data/log; i=$((i+1)); done; "
               "dd if=/dev/zero of=/data/blob bs=4096 count=16 2>/dev/null; sync; "
               "echo synced > /data/done; sync; exec sleep 1000")
    data = os.path.join(vroot(s), "crashvol", "_data")
    assert _wait(lambda: os.path.exists(os.path.join(data, "done")))
    os.kill(_shim_pid(s, cid), signal.SIGKILL)
    s.kill_runtime()
    s.kill_daemon()
    s.start_runtime()
    s.start_daemon()
    assert names(s) == ["crashvol"]
    v = json.loads(s.ok("volume", "inspect", "crashvol"))[0]
    assert v["Mountpoint"] == data
    assert _wait(lambda: json.loads(s.ok("inspect", "writer"))[0]["State"]["Status"] == "exited")
    # the container still names its volume: in use until it goes
    r = s.cli("volume", "rm", "crashvol")
    assert r.returncode == 1 and f"volume is in use - [{cid}]" in r.stderr
    out = s.ok("run", "--rm", "-v", "crashvol:/data", "busybox", "sh", "-c",
               "wc -l < /data/log; wc -c < /data/blob; cat /data/done")
    assert out.split() == ["64", "65536", "synced"]
    s.ok("rm", "writer")
    s.ok("volume", "rm", "crashvol")
    assert os.listdir(vroot(s)) == []


def test_interrupted_create_and_remove_leave_nothing(fresh):
    s = fresh
    s.ok("volume", "create", "keepme")
    # what a SIGKILL in the middle of a create or a remove leaves: a staging or a doomed directory
    for leftover in (".new-half", ".del-gone"):
        os.makedirs(os.path.join(vroot(s), leftover, "_data"))
    s.kill_daemon()
    s.start_daemon()
    assert names(s) == ["keepme"]
    assert sorted(os.listdir(vroot(s))) == ["keepme"]
    s.ok("volume", "rm", "keepme")


def test_volumes_listed_after_restart(tmp_path):
    s = Stack(tmp_path / "dm")
    try:
        s.start()
        s.load_busybox()
        s.ok("volume", "create", "--label", "a=b", "persist1")
        s.ok("create", "--name", "holder", "-v", "/anonp", "-v", "persist1:/p", "busybox", "true")
        anon = [m["Name"] for m in json.loads(s.ok("inspect", "-f", "{{json .Mounts}}", "holder"))
                if m["Destination"] == "/anonp"][0]
        s.stop_daemon()
        s.start_daemon()
        assert sorted(names(s)) == sorted(["persist1", anon])
        assert json.loads(s.ok("volume", "inspect", "persist1"))[0]["Labels"] == {"a": "b"}
        assert names(s, "-f", "dangling=true") == []     # the references are rebuilt from the containers
        s.ok("rm", "-v", "holder")
        assert names(s) == ["persist1"]
        s.ok("volume", "rm", "persist1")
    finally:
        s.close()
