"""image.store.consistent on both engines: sound right after start and after a build, FAILS on a
crafted corrupted blob (capsize: a layer blob in runtimed's content store; docker: an image
config in dockerd's imagedb), and the store readers change nothing."""

from __future__ import annotations

import glob
import os
from types import SimpleNamespace

import pytest

from harness.engines import engine_class
from harness.scenario.models import EngineOptions
from harness.verbs import storage_checks
from harness.verbs.registry import FAIL, PASS
from harness.verbs.storage_checks import ImageStoreCheck
from tests.harness.conftest import engine_params

ENGINES = engine_params()


def _blob_files(eng) -> list[str]:
    if eng.name == "capsize":
        return sorted(glob.glob(os.path.join(eng.root, "runtimed", "content", "blobs", "sha256", "*")))
    return sorted(glob.glob(os.path.join(eng.workdir, "dk", "data", "image", "*", "imagedb", "content",
                                         "sha256", "*")))


@pytest.mark.parametrize("engine", ENGINES)
def test_store_sound_then_corrupted_blob_fails(tmp_path, engine):
    eng = engine_class(engine)(str(tmp_path), EngineOptions())
    eng.start()
    try:
        ctx = SimpleNamespace(engine=eng)
        before = {f: os.stat(f).st_mtime_ns for f in _blob_files(eng)}
        v = storage_checks.image_store_consistent(ctx, ImageStoreCheck())
        assert v.status == PASS, (v.seen, v.evidence)
        assert v.evidence[0]["counts"]["images"] >= 1
        assert {f: os.stat(f).st_mtime_ns for f in _blob_files(eng)} == before  # read only
        victim = max(before, key=os.path.getsize)
        with open(victim, "r+b") as f:  # one byte flipped: same size, other digest
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))
        v = storage_checks.image_store_consistent(ctx, ImageStoreCheck(save=False))
        assert v.status == FAIL, v.seen
        bad = v.evidence[0]["bad_digests"]
        assert [b["digest"] for b in bad] == ["sha256:" + os.path.basename(victim)], bad
        assert "bad_digests: 1" in v.seen
        v = storage_checks.image_store_consistent(ctx, ImageStoreCheck(save=False, allow=["bad_digests"]))
        if engine == "capsize":  # a layer blob: nothing else is affected
            assert v.status == PASS, v.seen
        else:  # an image config: dockerd's store can no longer reach that image's layers
            assert v.status == FAIL and v.seen == "dangling_snapshots: 1", v.seen
    finally:
        eng.close()


def test_capsize_store_orphan_dir_and_unreferenced_blob(tmp_path):
    """Without a daemon: a store made by runtimed's own classes, then a stray snapshot directory
    and a blob no image names: both reported; a missing store is an error, not an empty report."""
    from runtime.errors import CapsizeError
    from runtime.highlevel.content import ContentStore
    from runtime.highlevel.fsck import verify
    from runtime.highlevel.metadata import Metadata
    base = tmp_path / "runtimed"
    with pytest.raises(CapsizeError):
        verify(str(tmp_path))
    store = ContentStore(str(base / "content"))
    (base / "snapshots").mkdir()
    Metadata(str(base / "metadata.db")).close()
    report = verify(str(tmp_path))
    assert not any(report[k] for k in ("bad_digests", "orphan_dirs", "unreferenced_blobs")), report
    digest = store.put(b"nobody's blob")
    (base / "snapshots" / "stray").mkdir()
    report = verify(str(tmp_path))
    assert report["unreferenced_blobs"] == [digest]
    assert report["orphan_dirs"] == ["stray"]
    assert report["bad_digests"] == []
