"""Images through the real CLI (import, load, save, tag, rmi, images) and the Engine API's edges:
versioned paths, /_ping negotiation headers, Docker's JSON errors for bad input, the docker SDK."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from runtime import busybox
from tests.daemon.rawhttp import raw


@pytest.mark.privileged
def test_import_tag_save_load_rmi(stack, tmp_path):
    import time
    since = f"{time.time() - 0.001:.6f}"
    rootfs = str(tmp_path / "rootfs.tar")
    busybox.write_rootfs_tar(rootfs)
    image_id = stack.ok("import", rootfs, "imported:v1")
    assert image_id.startswith("sha256:")
    assert stack.ok("images", "--format", "{{.Repository}}:{{.Tag}}", "imported") == "imported:v1"
    assert stack.ok("run", "--rm", "imported:v1", "echo", "from-import") == "from-import"
    stack.ok("tag", "imported:v1", "imported:v2")
    assert set(stack.ok("images", "-q", "--no-trunc", "imported").split()) == {image_id}
    saved = str(tmp_path / "saved.tar")
    stack.ok("save", "-o", saved, "imported:v2")
    with tarfile.open(saved) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["imported:v2"]
    assert stack.ok("rmi", "imported:v2") == "Untagged: imported:v2"
    out = stack.ok("rmi", "imported:v1").splitlines()
    assert out == ["Untagged: imported:v1", f"Deleted: {image_id}"]
    assert "Loaded image: imported:v2" in stack.ok("load", "-i", saved)
    assert stack.ok("images", "-q", "--no-trunc", "imported:v2") == image_id
    r = stack.cli("rmi", "nosuch:image")
    assert r.returncode == 1 and "No such image: nosuch:image" in r.stderr
    stack.ok("rmi", "imported:v2")
    out = stack.ok("events", "--since", since, "--until", f"{time.time() + 0.2:.6f}", "--filter", "type=image",
                   "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert out.splitlines() == ["import " + image_id, "tag imported:v2", "save imported:v2", "untag " + image_id,
                                "untag " + image_id, "delete " + image_id, "load " + image_id,
                                "untag " + image_id, "delete " + image_id]


@pytest.mark.privileged
def test_rmi_conflict_with_a_container(stack):
    stack.ok("tag", "busybox", "inuse:x")
    stack.ok("create", "--name", "user", "inuse:x", "true")
    r = stack.cli("rmi", stack.image_id)
    assert r.returncode == 1 and "conflict: unable to delete" in r.stderr
    assert stack.ok("rmi", "inuse:x") == "Untagged: inuse:x"     # another tag remains: only untagged
    stack.ok("rm", "user")


@pytest.mark.privileged
def test_ping_headers_and_versions(stack):
    status, hdrs, body = raw(stack, "GET", "/_ping")
    assert (status, body) == (200, b"OK") and hdrs["api-version"] == "1.41" and hdrs["ostype"] == "linux"
    status, hdrs, body = raw(stack, "HEAD", "/_ping")
    assert status == 200 and hdrs["api-version"] == "1.41"
    status, _, body = raw(stack, "GET", "/v1.41/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.41"
    status, _, body = raw(stack, "GET", "/v1.99/version")
    assert status == 400 and "client version 1.99 is too new" in json.loads(body)["message"]
    status, _, body = raw(stack, "GET", "/v1.41/nothing/here")
    assert status == 404 and json.loads(body) == {"message": "page not found"}


@pytest.mark.parametrize("body,status,text", [
    (b"{not json", 400, "invalid character"),
    (b"[]", 400, "expected an object"),
    (b'{"Image": "busybox", "Cmd": 5}', 400,
     "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"),
    (b'{"Image": "nosuch:1", "Cmd": ["true"]}', 404, "No such image: nosuch:1"),
    (b'{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}', 400,
     "invalid restart policy"),
    (b'{"Cmd": ["true"]}', 400, "Config cannot be empty"),
    (b'{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "always"}}}',
     400, "AutoRemove"),
])
@pytest.mark.privileged
def test_bad_create_requests(stack, body, status, text):
    got, hdrs, payload = raw(stack, "POST", "/v1.41/containers/create", body, {"Content-Type": "application/json"})
    assert got == status and hdrs["content-type"].startswith("application/json")
    assert text in json.loads(payload)["message"]
    assert stack.ok("ps", "-aq") == ""


@pytest.mark.privileged
def test_bad_query_values(stack):
    cid = stack.ok("create", "busybox", "true")
    for path, text in [(f"/containers/{cid}/stop?t=soon", "invalid value for t"),
                       (f"/containers/{cid}/kill?signal=SIGNOPE", "Invalid signal"),
                       (f"/containers/{cid}/wait?condition=whenever", "invalid condition"),
                       (f"/containers/{cid}/rename?name=a%20b", "Invalid container name")]:
        status, _, payload = raw(stack, "POST", "/v1.41" + path)
        assert status == 400 and text in json.loads(payload)["message"], (path, payload)
    status, _, payload = raw(stack, "POST", f"/v1.41/containers/{cid}/kill")
    assert status == 409 and "is not running" in json.loads(payload)["message"]
    status, _, _ = raw(stack, "GET", "/v1.41/containers/json?filters=%7Bbad")
    assert status == 400
    stack.ok("rm", cid)


@pytest.mark.privileged
def test_sdk_lifecycle(stack):
    import docker
    client = stack.client()
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.41"
    out = client.containers.run("busybox", ["sh", "-c", "echo sdk-out"], remove=True)
    assert out == b"sdk-out\n"
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="sdk1", labels={"a": "b"})
    c.reload()
    assert c.status == "running" and c.labels == {"a": "b"}
    assert [x.id for x in client.containers.list(filters={"label": "a=b"})] == [c.id]
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    assert c.top()["Titles"][:2] == ["UID", "PID"]
    c.rename("sdk2")
    c.stop(timeout=0)
    assert c.wait()["StatusCode"] == 137
    c.reload()
    assert c.name == "sdk2" and c.attrs["State"]["ExitCode"] == 137
    c.start()
    c.kill()
    assert c.wait(condition="not-running")["StatusCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("sdk2")
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("nosuch:img", ["true"])
    assert any("busybox:latest" in i.tags for i in client.images.list())
    img = client.images.get("busybox")
    assert img.id == stack.image_id
    events = client.events(decode=True, since=0, until=int(__import__("time").time()) + 1,
                           filters={"type": "container", "container": "sdk2"})
    assert "destroy" in [e["Action"] for e in events]
