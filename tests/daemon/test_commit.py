"""docker commit / diff / export / history / image inspect on capsized, through both docker CLIs
and the SDK; a committed image saved from capsize loads into a private real dockerd and runs
the same, and a dockerd-saved image loads into capsize."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from tests.daemon.stack import Stack

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

NEW_CLI = shutil.which("docker")   # the newer CLI first on PATH (may be Debian's too)


def images(stack) -> list[str]:
    return stack.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()


@pytest.fixture(autouse=True)
def _no_images_left(request):
    """Each test removes the images it made: only busybox stays in the shared stack."""
    yield
    if "stack" not in request.fixturenames:
        return
    s = request.getfixturevalue("stack")
    if s.daemon is not None and s.daemon.poll() is None:
        s.remove_all()
        for ref in images(s):
            if ref != "busybox:latest":
                s.cli("rmi", "-f", ref)
        for iid in s.ok("images", "-q", "-f", "dangling=true").split():
            s.cli("rmi", "-f", iid)


def test_commit_diff_history_inspect_with_the_cli(stack):
    stack.ok("run", "--name", "c1", "busybox", "sh", "-c",
             "mkdir /data && echo one > /data/f && rm /etc/nsswitch.conf && echo x >> /etc/group")
    diff = stack.ok("diff", "c1").splitlines()
    assert {"A /data", "A /data/f", "C /etc", "D /etc/nsswitch.conf", "C /etc/group"} <= set(diff), diff
    out = stack.ok("commit", "-m", "first", "-a", "me", "-c", "ENV STAGE=one", "-c", 'CMD ["cat", "/data/f"]',
                   "-c", "EXPOSE 8080", "-c", "WORKDIR /data", "-c", "LABEL tier=test", "c1", "made:v1")
    assert out.startswith("sha256:") and len(out) == 71
    img = json.loads(stack.ok("image", "inspect", "made:v1"))[0]
    base = json.loads(stack.ok("image", "inspect", "busybox"))[0]
    assert img["Id"] == out and img["RepoTags"] == ["made:v1"]
    assert img["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"] and len(img["RootFS"]["Layers"]) == 2
    assert img["Author"] == "me" and img["Comment"] == "first"
    cfg = img["Config"]
    assert cfg["Cmd"] == ["cat", "/data/f"] and "STAGE=one" in cfg["Env"] and cfg["WorkingDir"] == "/data"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}} and cfg["Labels"] == {"tier": "test"}
    assert stack.ok("run", "--rm", "made:v1") == "one"
    assert stack.ok("run", "--rm", "made:v1", "sh", "-c", "test -e /etc/nsswitch.conf || pwd") == "/data"
    hist = stack.ok("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", "made:v1")
    top = hist.splitlines()[0].split("|")
    assert top == [out, "sh -c mkdir /data && echo one > /data/f && rm /etc/nsswitch.conf && echo x >> /etc/group",
                   "first"], hist
    base_hist = stack.ok("history", "-q", "busybox").splitlines()
    assert len(hist.splitlines()) == 1 + len(base_hist) and hist.splitlines()[1].startswith("<missing>|")
    # the new CLI on PATH speaks to it the same way
    if NEW_CLI and os.path.realpath(NEW_CLI) != "/usr/bin/docker":
        r = subprocess.run([NEW_CLI, "diff", "c1"], capture_output=True, text=True, env=stack.env(), timeout=60)
        assert r.returncode == 0 and "A /data/f" in r.stdout, r.stderr
        r = subprocess.run([NEW_CLI, "history", "-q", "made:v1"], capture_output=True, text=True,
                           env=stack.env(), timeout=60)
        assert r.returncode == 0 and r.stdout.split()[0] == out[7:19], r.stderr
    # a bad change and an unknown container: one clear line, nothing made
    r = stack.cli("commit", "-c", "RUN true", "c1", "bad:1")
    assert r.returncode == 1 and "run is not a valid change command" in r.stderr
    r = stack.cli("commit", "nosuch", "bad:2")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr
    assert "bad:1" not in images(stack) and "bad:2" not in images(stack)


def test_recommit_leaves_the_old_image_dangling_and_running_commit_pauses(stack):
    stack.ok("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo a > /a; sleep 300")
    events = subprocess.Popen(["/usr/bin/docker", "events", "--format", "{{.Type}} {{.Action}}"],
                              stdout=subprocess.PIPE, text=True, env=stack.env())
    try:
        first = stack.ok("commit", "live", "again:1")
        second = stack.ok("commit", "-c", "ENV X=2", "live", "again:1")
    finally:
        stack.ok("pause", "live")   # a marker event after the commits
        stack.ok("unpause", "live")
        events.terminate()
        seen = events.communicate(timeout=10)[0].splitlines()
    assert first != second
    assert json.loads(stack.ok("inspect", "live"))[0]["State"]["Status"] == "running"
    assert seen[:4] == ["container pause", "container unpause", "container commit", "image tag"], seen
    dangling = stack.ok("images", "-q", "--no-trunc", "-f", "dangling=true").split()
    assert first in dangling and second not in dangling
    assert stack.ok("images", "-q", "--no-trunc", "again:1") == second
    # --pause=false commits without a pause
    stack.ok("commit", "--pause=false", "live", "again:2")


def test_export_and_sdk(stack, tmp_path):
    c = stack.client()
    ctr = c.containers.run("busybox", ["sh", "-c", "echo sdk > /sdk && mkdir -p /d/e && ln -s ../sdk /d/link"],
                           detach=True)
    ctr.wait(timeout=30)
    assert {"Path": "/sdk", "Kind": 1} in ctr.diff()
    img = ctr.commit(repository="sdk", tag="v1", changes=["CMD cat /sdk"], message="via sdk")
    assert img.tags == ["sdk:v1"] and img.attrs["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /sdk"]
    assert c.containers.run("sdk:v1", remove=True).decode() == "sdk\n"
    assert [h["Comment"] for h in img.history()][0] == "via sdk"
    path = tmp_path / "exp.tar"
    with open(path, "wb") as f:
        for chunk in ctr.export():
            f.write(chunk)
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["sdk"].isfile() and members["d/link"].issym() and members["d/link"].linkname == "../sdk"
    assert "bin/busybox" in members and not any(".wh." in n for n in members)
    out = stack.cli("export", "-o", str(tmp_path / "cli.tar"), ctr.id)
    assert out.returncode == 0 and tarfile.is_tarfile(tmp_path / "cli.tar")
    ctr.remove()


@pytest.mark.reference
@pytest.mark.skipif(not shutil.which("dockerd"), reason="dockerd not installed")
def test_committed_image_round_trips_through_real_docker(stack, tmp_path):
    from harness.reference.docker import DockerStack
    stack.ok("run", "--name", "rt", "busybox", "sh", "-c", "echo built-by-capsize > /msg && rm /etc/nsswitch.conf")
    iid = stack.ok("commit", "-c", 'CMD ["cat", "/msg"]', "rt", "roundtrip:1")
    save = tmp_path / "cap.tar"
    stack.ok("save", "-o", str(save), "roundtrip:1")
    with DockerStack(str(tmp_path / "ref"), network="none") as ref:
        try:
            r = ref.cli("load", "-i", str(save))
            assert r.returncode == 0, r.stderr
            insp = json.loads(ref.cli("image", "inspect", "roundtrip:1").stdout)[0]
            assert insp["Id"] == iid, "the same config digest: the image loads unchanged"
            assert insp["RootFS"]["Layers"] == json.loads(stack.ok("image", "inspect", "roundtrip:1"))[0]["RootFS"]["Layers"]
            r = ref.cli("run", "--rm", "--network", "none", "roundtrip:1")
            assert (r.returncode, r.stdout) == (0, "built-by-capsize\n"), r.stderr
            # the deletion travels as a whiteout in the committed layer (not /etc/hostname: capsized
            # and dockerd bind-mount their own there, which rm cannot remove)
            with tarfile.open(save) as tar:
                top = json.load(tar.extractfile("manifest.json"))[0]["Layers"][-1]
                with tarfile.open(fileobj=tar.extractfile(top)) as layer:
                    assert "etc/.wh.nsswitch.conf" in layer.getnames(), layer.getnames()
            # the other way: an image dockerd committed loads into capsize and runs the same
            r = ref.cli("run", "--name", "dk", "--network", "none", "roundtrip:1", "sh", "-c",
                        "echo from-dockerd > /other && rm /msg")
            assert r.returncode == 0, r.stderr
            r = ref.cli("commit", "-c", 'CMD ["cat", "/other"]', "dk", "fromdocker:1")
            assert r.returncode == 0, r.stderr
            dk_id = r.stdout.strip()
            r = ref.cli("save", "-o", str(tmp_path / "dk.tar"), "fromdocker:1")
            assert r.returncode == 0, r.stderr
            ref.cli("rm", "-f", "dk")
        finally:
            for x in ref.client().containers.list(all=True):
                x.remove(force=True)
    stack.ok("load", "-i", str(tmp_path / "dk.tar"))
    assert stack.ok("images", "-q", "--no-trunc", "fromdocker:1") == dk_id
    assert stack.ok("run", "--rm", "fromdocker:1") == "from-dockerd"
    assert stack.cli("run", "--rm", "fromdocker:1", "cat", "/msg").returncode != 0
    hist = stack.ok("history", "--format", "{{.CreatedBy}}", "fromdocker:1").splitlines()
    assert len(hist) == 3 and "from-dockerd" in hist[0]
