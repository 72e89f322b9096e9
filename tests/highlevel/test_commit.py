"""Layers as diffs through capsize-runtimed: a container's snapshot committed as an image (its
upper dir as an OCI layer tar, whiteouts and opaque dirs), its changes, its export, and what a
failed commit leaves (nothing)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from runtime.errors import FailedPrecondition, NotFound
from tests.highlevel.conftest import run_task

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

SCRIPT = ("mkdir -p /new/sub && echo hi > /new/sub/f && ln /new/sub/f /new/hard && "
          "rm /etc/hostname && rm -rf /home && mkdir /home && touch /home/x && "
          "echo more >> /etc/passwd && setfattr -n user.k -v v /new/sub/f 2>/dev/null; true")


def run_to_exit(rt, cid, args):
    run_task(rt, cid, args)
    status = rt.wait_task(cid, timeout=30)["exit_status"]
    rt.delete_task(cid)
    return status


def commit(rt, cid, **kw):
    body = dict(parent="busybox:latest", snapshot=cid, config={"Cmd": ["sh"]}, history={"created_by": "test"})
    body.update(kw)
    return rt.call(rt.calls.commit_image(**body))


def test_commit_changes_export_and_round_trip(runtimed, busybox_image_tar, tmp_path):
    d = runtimed()
    rt = d.client("moby")
    rt.import_image(busybox_image_tar)
    base = rt.image("busybox")
    assert run_to_exit(rt, "c1", ["sh", "-c", SCRIPT]) == 0

    changes = rt.call(rt.calls.snapshot_changes("c1"))["changes"]
    got = {(c["Path"], c["Kind"]) for c in changes}
    assert {("/new", 1), ("/new/sub", 1), ("/new/sub/f", 1), ("/new/hard", 1), ("/etc", 0),
            ("/etc/hostname", 2), ("/etc/passwd", 0), ("/home", 2)} <= got, changes
    assert [c["Path"] for c in changes] == sorted(c["Path"] for c in changes)

    img = commit(rt, "c1", name="committed:v1", author="me", comment="first")
    assert img["name"] == "committed:v1" and img["diff_ids"][:-1] == base["diff_ids"]
    assert img["config"] == {"Cmd": ["sh"]} and img["author"] == "me" and img["comment"] == "first"
    assert img["history"][-1]["created_by"] == "test" and "empty_layer" not in img["history"][-1]
    new_diff = img["diff_ids"][-1]
    blob = os.path.join(d.root, "runtimed", "content", "blobs", "sha256", new_diff.split(":")[1])
    data = open(blob, "rb").read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == new_diff, "stored uncompressed: digest = diff id"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "etc/.wh.hostname" in members and members["etc/.wh.hostname"].size == 0
    assert "home/.wh..wh..opq" in members and "home/x" in members and members["home"].isdir(), sorted(members)
    assert members["new/hard"].islnk() or members["new/sub/f"].islnk()
    assert not any(n.startswith(("/", "./")) for n in members)

    # a container of the committed image sees the changes; the first container is not needed
    rt.delete_container("c1")
    run_task(rt, "c2", ["sh", "-c", "cat /new/sub/f; test -e /etc/hostname || echo gone; ls /home; "
                                    "tail -1 /etc/passwd"], image="committed:v1")
    assert rt.wait_task("c2", timeout=30)["exit_status"] == 0
    with open(rt.task("c2")["log_path"]) as f:
        assert "".join(json.loads(line)["log"] for line in f) == "hi\ngone\nx\nmore\n"
    rt.delete_task("c2")

    # export: the whole tree, read-only view unmounted afterwards
    out = tmp_path / "export.tar"
    with open(out, "wb") as f:
        rt.call(rt.calls.snapshot_export("c2"), out=f)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "new/sub/f", "home/x"} <= names and "etc/hostname" not in names
    assert not any(".wh." in n for n in names)
    assert not [n for n in os.listdir(os.path.join(d.root, "runtimed", "tmp")) if n.startswith("view-")]

    # a docker-save of it re-imports under another root with the same id and diff ids
    save = tmp_path / "save.tar"
    rt.export_image("committed:v1", str(save))
    d2 = runtimed()
    (again,) = d2.client("moby").import_image(str(save))
    assert again["id"] == img["id"] and again["diff_ids"] == img["diff_ids"]

    # config-only commit, and keep_replaced leaves the old image under its digest (dangling)
    rt.delete_container("c2")
    cfg = commit(rt, None, parent="committed:v1", name="committed:v1", config={"Cmd": ["true"]}, keep_replaced=True)
    assert cfg["diff_ids"] == img["diff_ids"] and cfg["history"][-1]["empty_layer"] is True
    names = {i["name"]: i["id"] for i in rt.images()}
    assert names["committed:v1"] == cfg["id"] and names[img["id"]] == img["id"]


def test_commit_refusals_leave_nothing(runtimed, busybox_image_tar):
    d = runtimed()
    rt = d.client("moby")
    rt.import_image(busybox_image_tar)
    before_blobs = sorted(os.listdir(os.path.join(d.root, "runtimed", "content", "blobs", "sha256")))
    with pytest.raises(NotFound):
        commit(rt, "nosuch")
    with pytest.raises(NotFound):
        commit(rt, None, parent="nosuch:1")
    rt.create_container("c1", "busybox", args=["true"])
    with pytest.raises(FailedPrecondition, match="not on the top layer"):
        commit(rt, "c1", parent=None)
    rt.delete_container("c1")
    assert sorted(os.listdir(os.path.join(d.root, "runtimed", "content", "blobs", "sha256"))) == before_blobs
    assert [i["name"] for i in rt.images()] == ["busybox:latest"]
