"""``docker cp`` on capsized (``/containers/{id}/archive``) through the real docker CLIs (Debian's
20.10 and the newer one on PATH) and the docker SDK (``put_archive``/``get_archive``): both ways,
running, stopped and created containers, volumes, the path-stat header, symlinks that must not
reach the host, and errors."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

import docker
import pytest

from tests.daemon.stack import DOCKER

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

NEW_CLI = shutil.which("docker")
CLIS = [DOCKER] + ([NEW_CLI] if NEW_CLI and os.path.realpath(NEW_CLI) != os.path.realpath(DOCKER) else [])


def cli(stack, binary, *args, timeout=30):
    return subprocess.run([binary, *args], env=stack.env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def tar_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode, info.uid, info.gid = len(data), 0o640, 1234, 1234
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def untar(chunks) -> dict:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        return {m.name: (t.extractfile(m).read() if m.isfile() else m.type) for m in t.getmembers()}


@pytest.mark.parametrize("binary", CLIS, ids=[os.path.basename(os.path.dirname(c)) + "-docker" for c in CLIS])
def test_cli_cp_both_ways_running_and_stopped(stack, binary, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("hello\n")
    os.symlink("/etc/passwd", src / "sub" / "link")
    stack.ok("run", "-d", "--name", "cpbox", "-v", "cpvol:/data", "busybox", "sleep", "1000")
    try:
        r = cli(stack, binary, "cp", str(src / "sub"), "cpbox:/tmp/")
        assert r.returncode == 0, r.stderr
        out = stack.ok("exec", "cpbox", "sh", "-c", "cat /tmp/sub/f.txt; readlink /tmp/sub/link; stat -c %u:%g /tmp/sub/f.txt")
        assert out.split() == ["hello", "/etc/passwd", "0:0"]   # owned by root without -a, as dockerd
        r = cli(stack, binary, "cp", str(src / "sub" / "f.txt"), "cpbox:/data/renamed.txt")   # into the volume
        assert r.returncode == 0, r.stderr
        assert stack.ok("exec", "cpbox", "cat", "/data/renamed.txt") == "hello"
        back = tmp_path / "back"
        r = cli(stack, binary, "cp", "cpbox:/tmp/sub", str(back))
        assert r.returncode == 0, r.stderr
        assert (back / "f.txt").read_text() == "hello\n" and os.readlink(back / "link") == "/etc/passwd"
        r = cli(stack, binary, "cp", "cpbox:/etc/hostname", "-")   # a tar on stdout
        assert r.returncode == 0 and "hostname" in r.stdout
        stack.ok("stop", "-t", "0", "cpbox")
        r = cli(stack, binary, "cp", str(src / "sub" / "f.txt"), "cpbox:/stopped.txt")
        assert r.returncode == 0, r.stderr
        r = cli(stack, binary, "cp", "cpbox:/data/renamed.txt", str(tmp_path / "from-volume.txt"))   # stopped: the volume's source
        assert r.returncode == 0 and (tmp_path / "from-volume.txt").read_text() == "hello\n", r.stderr
        stack.ok("start", "cpbox")
        assert stack.ok("exec", "cpbox", "cat", "/stopped.txt") == "hello"
        r = cli(stack, binary, "cp", "cpbox:/nosuch", str(tmp_path / "x"))
        assert r.returncode == 1 and ("Could not find the file /nosuch in container cpbox" in r.stderr   # newer CLIs
                                      or "No such container:path: cpbox:/nosuch" in r.stderr), r.stderr   # 20.10: its HEAD's 404
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        stack.cli("rm", "-f", "-v", "cpbox")
        stack.cli("volume", "rm", "cpvol")


def test_sdk_put_and_get_archive_and_stat(stack):
    c = stack.client()
    box = c.containers.create("busybox", ["sleep", "1000"], name="sdkcp")
    try:
        assert box.put_archive("/tmp", tar_of({"made": None, "made/a.txt": b"A" * 10})) is True   # created: the snapshot
        box.start()
        assert box.put_archive("/tmp", tar_of({"b.txt": b"bee"})) is True
        chunks, stat = box.get_archive("/tmp/made")
        assert stat["name"] == "made" and stat["mode"] & (1 << 31) and stat["linkTarget"] == ""
        assert untar(chunks) == {"made": tarfile.DIRTYPE, "made/a.txt": b"A" * 10}
        chunks, stat = box.get_archive("/tmp/b.txt")
        assert (stat["name"], stat["size"], stat["mode"]) == ("b.txt", 3, 0o640) and untar(chunks) == {"b.txt": b"bee"}
        box.exec_run(["ln", "-s", "/tmp/b.txt", "/tmp/ln"])
        head = c.api.head(c.api._url("/containers/{0}/archive", box.id), params={"path": "/tmp/ln"})
        assert head.status_code == 200
        import base64
        import json
        link = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
        assert link["linkTarget"] == "/tmp/b.txt" and link["mode"] & (1 << 27)
        with pytest.raises(docker.errors.NotFound):
            box.get_archive("/no/such")
        with pytest.raises(docker.errors.APIError) as e:   # the extraction point is a file
            box.put_archive("/tmp/b.txt", tar_of({"x": b"x"}))
        assert e.value.status_code == 400
        with pytest.raises(docker.errors.APIError) as e:
            box.put_archive("/tmp", b"this is not a tar archive" * 40)
        assert e.value.status_code == 400
        with pytest.raises(docker.errors.APIError) as e:
            c.api.put_archive(box.id, "relative", tar_of({"x": b"x"}))
        assert e.value.status_code == 400
    finally:
        box.remove(force=True)


def test_symlinks_in_the_container_never_reach_the_host(stack, tmp_path):
    """A container's symlink to / (or ..) is resolved in the container: a copy through it lands in
    the container's root, and a read through it reads the container's file (CVE-2018-15664)."""
    marker = tmp_path / "host-only.txt"
    marker.write_text("host\n")
    c = stack.client()
    box = c.containers.run("busybox", ["sleep", "1000"], name="evil", detach=True)
    try:
        box.exec_run(["sh", "-c", f"ln -s / /tmp/root; ln -s ../../../../../{tmp_path} /tmp/up; "
                                  f"mkdir -p {tmp_path}; echo container > {marker}"])
        assert box.put_archive("/tmp/root", tar_of({"planted.txt": b"x"}))
        assert not os.path.exists("/planted.txt")
        assert box.exec_run(["cat", "/planted.txt"]).output == b"x"
        chunks, _ = box.get_archive("/tmp/up/host-only.txt")
        assert untar(chunks) == {"host-only.txt": b"container\n"}
        assert box.put_archive("/tmp/up", tar_of({"host-only.txt": b"overwritten"}))
        assert marker.read_text() == "host\n"
        box.stop(timeout=0)   # stopped: the snapshot, chrooted likewise
        assert box.put_archive("/tmp/root", tar_of({"planted2.txt": b"y"}))
        assert not os.path.exists("/planted2.txt")
        chunks, _ = box.get_archive("/tmp/up/host-only.txt")
        assert untar(chunks) == {"host-only.txt": b"overwritten"}
    finally:
        box.remove(force=True)


def test_read_only_rootfs_refuses_a_put_outside_its_volumes(stack):
    r = stack.cli("run", "-d", "--name", "ro", "--read-only", "-v", "/scratch", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    c = stack.client()
    box = c.containers.get("ro")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            box.put_archive("/tmp", tar_of({"x": b"x"}))
        assert e.value.status_code == 403 and "read-only" in str(e.value)
        assert box.put_archive("/scratch", tar_of({"x": b"x"}))
        assert box.exec_run(["cat", "/scratch/x"]).output == b"x"
    finally:
        box.remove(force=True, v=True)
