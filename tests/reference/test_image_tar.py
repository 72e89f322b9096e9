"""runtime.busybox.write_image_tar: a reproducible docker-save tarball (loads: test_docker, test_containerd)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from runtime import busybox
from runtime.errors import InvalidArgument

pytestmark = pytest.mark.reference


def _members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}


def test_image_tar_is_reproducible_and_consistent(tmp_path):
    a, b = io.BytesIO(), io.BytesIO()
    id_a = busybox.write_image_tar(a)
    id_b = busybox.write_image_tar(str(tmp_path / "img.tar"))
    b.write((tmp_path / "img.tar").read_bytes())
    assert a.getvalue() == b.getvalue() and id_a == id_b

    files = _members(a.getvalue())
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["busybox:latest"]
    config_bytes = files[manifest[0]["Config"]]
    assert id_a == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert manifest[0]["Config"] == id_a.split(":")[1] + ".json"
    config = json.loads(config_bytes)
    layer = files[manifest[0]["Layers"][0]]
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}
    assert config["os"] == "linux" and config["config"]["Cmd"] == ["sh"]
    # the layer is exactly the rootfs tar
    rootfs = io.BytesIO()
    busybox.write_rootfs_tar(rootfs)
    assert layer == rootfs.getvalue()
    layer_dir = manifest[0]["Layers"][0].split("/")[0]
    assert json.loads(files["repositories"]) == {"busybox": {"latest": layer_dir}}
    with tarfile.open(fileobj=io.BytesIO(a.getvalue())) as tar:
        assert {(m.uid, m.gid, m.mtime) for m in tar.getmembers()} == {(0, 0, busybox.EPOCH)}


@pytest.mark.parametrize("ref, repo, tag", [("lab/bb:1.0", "lab/bb", "1.0"), ("bb", "bb", "latest"),
                                            ("localhost:5000/bb", "localhost:5000/bb", "latest")])
def test_image_tar_reference(ref, repo, tag):
    out = io.BytesIO()
    busybox.write_image_tar(out, ref)
    files = _members(out.getvalue())
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == [f"{repo}:{tag}"]
    assert list(json.loads(files["repositories"])) == [repo]


@pytest.mark.parametrize("ref", ["", "busybox@sha256:00", "bad ref"])
def test_image_tar_bad_reference(ref):
    with pytest.raises(InvalidArgument, match="invalid image reference"):
        busybox.write_image_tar(io.BytesIO(), ref)
