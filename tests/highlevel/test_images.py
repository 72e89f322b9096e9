"""Images through capsize-runtimed: every import format, whiteouts seen from a real container,
hostile archives refused without a trace, export round trips, garbage collection."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from runtime import busybox
from runtime.errors import AlreadyExists, InvalidArgument, NotFound
from tests.highlevel.conftest import run_task
from tests.highlevel.layers import docker_save, layer_tar, oci_layout, sha256

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def blobs(d) -> list[str]:
    return sorted(os.listdir(os.path.join(d.root, "runtimed", "content", "blobs", "sha256")))


def snapshot_dirs(d) -> list[str]:
    return sorted(os.listdir(os.path.join(d.root, "runtimed", "snapshots")))


def run_and_wait(rt, cid, args, image="busybox:latest") -> tuple[int, str]:
    """Run *args* in a new container; returns (exit status, its stdout+stderr); removes it all."""
    run_task(rt, cid, args, image=image)
    status = rt.wait_task(cid, timeout=30)["exit_status"]
    with open(rt.task(cid)["log_path"]) as f:
        output = "".join(json.loads(line)["log"] for line in f)
    rt.delete_task(cid)
    rt.delete_container(cid)
    return status, output


@pytest.fixture(scope="module")
def busybox_layer(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("bblayer") / "rootfs.tar"
    busybox.write_rootfs_tar(str(path))
    return path.read_bytes()


def test_import_rootfs_tar(runtimed, busybox_tar):
    d = runtimed()
    rt = d.client()
    with pytest.raises(InvalidArgument, match="needs a name"):
        rt.import_image(busybox_tar)  # auto: a plain rootfs, so docker import's name is required
    (img,) = rt.import_image(busybox_tar, format="rootfs", name="imported")
    assert img["name"] == "imported:latest"
    assert img["diff_ids"] == [sha256(open(busybox_tar, "rb").read())]
    assert img["config"] == {} and img["os"] == "linux"
    with pytest.raises(InvalidArgument, match="no command"):
        rt.create_container("nocmd", "imported")
    assert rt.containers() == [], "a refused container leaves nothing"
    assert run_and_wait(rt, "r1", ["sh", "-c", "echo from-rootfs; exit 3"], image="imported") == (3, "from-rootfs\n")


def test_import_docker_save(runtimed, busybox_image_tar, tmp_path):
    d = runtimed()
    rt = d.client("moby")
    with d.client().subscribe(topics=["/images/"]) as events:
        (img,) = rt.import_image(busybox_image_tar)
        env = events.next(timeout=5)
    assert (env["topic"], env["namespace"], env["event"]["name"]) == ("/images/create", "moby", "busybox:latest")
    expected_id = busybox.write_image_tar(str(tmp_path / "again.tar"))
    assert img["id"] == expected_id, "the image ID is the config digest, as docker images shows it"
    assert img["target"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert img["config"]["Cmd"] == ["sh"]
    assert rt.image("busybox")["id"] == expected_id
    assert d.client().images() == [], "images are per namespace"
    assert run_and_wait(rt, "s1", ["sh", "-c", "cat /etc/hostname; exit 7"]) == (7, "busybox\n")
    # importing the same archive again changes nothing and publishes nothing new
    rt.import_image(busybox_image_tar)
    assert len(rt.images()) == 1


def test_layered_docker_save_with_whiteouts(runtimed, busybox_layer, tmp_path):
    d = runtimed()
    rt = d.client()
    files = layer_tar([("dir", "a"), ("file", "a/x", b"x"), ("file", "a/y", b"y"), ("dir", "b"),
                       ("file", "b/z", b"z"), ("file", "keep", b"k")])
    deletes = layer_tar([("whiteout", "a/x"), ("dir", "b"), ("opaque", "b"), ("file", "b/new", b"new"),
                         ("whiteout", "keep"), ("whiteout", "etc/hostname")])
    archive = str(tmp_path / "layered.tar")
    docker_save(archive, [{"tags": ["layered:1"], "layers": [busybox_layer, files, deletes]}])
    (img,) = rt.import_image(archive)
    assert len(img["diff_ids"]) == 3
    assert len(snapshot_dirs(d)) == 3, "one committed snapshot per layer"
    script = ("test ! -e /a/x && test -e /a/y && test ! -e /b/z && test -e /b/new && test ! -e /keep "
              "&& test ! -e /etc/hostname && test -e /etc/passwd && ls /b && echo merged-ok")
    assert run_and_wait(rt, "w1", ["sh", "-c", script], image="layered:1") == (0, "new\nmerged-ok\n")
    # a second image on the same first two layers unpacks only its own third layer
    other = str(tmp_path / "other.tar")
    docker_save(other, [{"tags": ["layered:2"], "layers": [busybox_layer, files, layer_tar([("file", "c", b"c")])]}])
    rt.import_image(other)
    assert len(snapshot_dirs(d)) == 4, "shared layers are unpacked once"


@pytest.mark.parametrize("variant", ["tag-and-name", "annotation", "nested-index"])
def test_import_oci_layout(runtimed, busybox_layer, tmp_path, variant):
    d = runtimed()
    rt = d.client()
    extra = layer_tar([("file", "etc/motd", b"oci layout\n")], compress=True)
    layers = [layer_tar([("raw", ti, data) for ti, data in _members(busybox_layer)], compress=True), extra]
    archive = str(tmp_path / "oci.tar")
    if variant == "tag-and-name":
        digest = oci_layout(archive, layers, ref="v1")
        with pytest.raises(InvalidArgument, match="give a name"):
            rt.import_image(archive)
        (img,) = rt.import_image(archive, name="lab/oci-bb")  # a single image takes the given name
        assert img["name"] == "lab/oci-bb:latest"
    elif variant == "annotation":
        digest = oci_layout(archive, layers, ref="v1", name_annotation="registry.test/lab/bb:v1")
        (img,) = rt.import_image(archive, format="oci-archive")
        assert img["name"] == "registry.test/lab/bb:v1"
    else:
        digest = oci_layout(archive, layers, ref="lab/nested:v2", nested_index=True)
        (img,) = rt.import_image(archive)
        assert img["name"] == "lab/nested:v2"
    assert img["target"]["digest"] == digest, "the platform's manifest is the image's target"
    status, out = run_and_wait(rt, "o1", ["cat", "/etc/motd"], image=img["name"])
    assert (status, out) == (0, "oci layout\n")


def _members(layer: bytes):
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        for m in tar.getmembers():
            yield m, (tar.extractfile(m).read() if m.isreg() else None)


def test_tampered_oci_blob_is_refused(runtimed, tmp_path):
    d = runtimed()
    rt = d.client()
    archive = str(tmp_path / "bad.tar")
    oci_layout(archive, [layer_tar([("file", "f", b"data" * 100)])], ref="x/y:z", tamper=True)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        rt.import_image(archive)
    assert rt.images() == [] and blobs(d) == [] and snapshot_dirs(d) == []


@pytest.mark.parametrize("hostile", [
    [("symlink", "evil", "/tmp"), ("file", "evil/capsize-hl-escape", b"pwned")],
    [("file", "../capsize-hl-escape", b"pwned")],
    [("hardlink", "shadow", "../../../../etc/shadow")],
    [("symlink", "up", "../../../../../../"), ],
])
def test_malicious_tar_is_refused_and_leaves_nothing(runtimed, busybox_layer, tmp_path, hostile):
    d = runtimed()
    rt = d.client()
    archive = str(tmp_path / "evil.tar")
    docker_save(archive, [{"tags": ["evil:latest"], "layers": [busybox_layer, layer_tar(hostile)]}])
    with d.client().subscribe(topics=["/images/"]) as events:
        with pytest.raises(InvalidArgument, match="unsafe layer"):
            rt.import_image(archive)
        with pytest.raises(Exception, match="no event"):
            events.next(timeout=0.3)
    assert not os.path.exists("/tmp/capsize-hl-escape")
    assert rt.images() == [], "no image recorded"
    assert blobs(d) == [] and snapshot_dirs(d) == [], "nothing of the failed import is left"
    assert os.listdir(os.path.join(d.root, "runtimed", "content", "ingest")) == []
    rootfs = str(tmp_path / "evil-rootfs.tar")
    with open(rootfs, "wb") as f:
        f.write(layer_tar(hostile))
    with pytest.raises(InvalidArgument, match="unsafe layer"):
        rt.import_image(rootfs, format="rootfs", name="evil2")
    assert rt.images() == [] and blobs(d) == [] and snapshot_dirs(d) == []


def test_bad_archives(runtimed, busybox_layer, tmp_path):
    d = runtimed()
    rt = d.client()
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar" * 100)
    with pytest.raises(InvalidArgument, match="archive/tar: invalid tar header"):
        rt.import_image(str(garbage))
    with pytest.raises(InvalidArgument, match="unknown format"):
        rt.import_image(str(garbage), format="zip")
    lying = str(tmp_path / "lying.tar")
    config = {"os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    docker_save(lying, [{"tags": ["lying:1"], "layers": [busybox_layer], "config": config}])
    with pytest.raises(InvalidArgument, match="diff ID"):
        rt.import_image(lying)
    assert rt.images() == [] and blobs(d) == [] and snapshot_dirs(d) == []


def test_export_round_trip(runtimed, busybox_image_tar, busybox_layer, tmp_path):
    d = runtimed()
    rt = d.client()
    (img,) = rt.import_image(busybox_image_tar)
    out = str(tmp_path / "export.tar")
    rt.export_image("busybox:latest", out)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["busybox:latest"]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()
        assert sha256(layer) == img["diff_ids"][0]
        assert json.load(tar.extractfile("repositories")) == {"busybox": {"latest": img["diff_ids"][0][7:]}}
    (again,) = rt.with_namespace("other").import_image(out)
    assert (again["id"], again["diff_ids"]) == (img["id"], img["diff_ids"])
    # a gzip-layered OCI image exports with uncompressed layers
    oci = str(tmp_path / "oci.tar")
    oci_layout(oci, [layer_tar([("raw", ti, data) for ti, data in _members(busybox_layer)], compress=True)],
               ref="lab/gz:1")
    (gz,) = rt.import_image(oci)
    rt.export_image("lab/gz:1", out)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert sha256(tar.extractfile(manifest[0]["Layers"][0]).read()) == gz["diff_ids"][0]
    with pytest.raises(NotFound):
        rt.export_image("no-such-image", str(tmp_path / "none.tar"))


def test_delete_and_garbage_collection(runtimed, busybox_image_tar):
    d = runtimed()
    rt = d.client()
    rt.import_image(busybox_image_tar)
    rt.create_container("keeper", "busybox", args=["true"])
    with pytest.raises(AlreadyExists):
        rt.create_container("keeper", "busybox", args=["true"])
    assert len(snapshot_dirs(d)) == 2, "the duplicate made no second snapshot"
    with d.client().subscribe(topics=["/images/delete"]) as events:
        result = rt.delete_image("busybox:latest", sync=True)
        assert events.next(timeout=5)["event"] == {"name": "busybox:latest"}
    assert result["gc"]["snapshots_removed"] == 0, "the container's snapshot chain is still referenced"
    assert len(snapshot_dirs(d)) == 2
    assert result["gc"]["blobs_removed"] == 3, "manifest, config and layer are garbage"
    with pytest.raises(NotFound):
        rt.image("busybox:latest")
    rt.delete_container("keeper")
    report = rt.gc()
    assert report["snapshots_removed"] == 1
    assert blobs(d) == [] and snapshot_dirs(d) == []
    with pytest.raises(NotFound):
        rt.delete_image("busybox:latest")
