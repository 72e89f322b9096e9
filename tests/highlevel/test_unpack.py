"""Layer unpacking on the real filesystem: whiteouts as overlayfs wants them, and hostile tars refused."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from runtime.errors import InvalidArgument
from runtime.highlevel.unpack import apply_layer
from tests.highlevel.layers import layer_tar, sha256


def apply(entries, target, compress=False) -> dict:
    data = layer_tar(entries, compress)
    os.makedirs(target, exist_ok=True)
    return apply_layer(io.BytesIO(data), str(target))


@pytest.mark.privileged
def test_regular_layer_and_diff_id(tmp_path):
    entries = [("dir", "a"), ("file", "a/x", b"hello", 0o4755), ("symlink", "a/l", "x"),
               ("symlink", "abs", "/bin/busybox"), ("hardlink", "a/h", "a/x"), ("fifo", "p"),
               ("file", "deep/er/file", b"made parents")]
    raw = layer_tar(entries)
    for compress in (False, True):
        target = tmp_path / f"fs{compress}"
        result = apply(entries, target, compress)
        assert result["diff_id"] == sha256(raw), "the diff ID is the sha256 of the uncompressed tar"
        assert result["compression"] == ("gzip" if compress else "none")
        assert (target / "a/x").read_bytes() == b"hello"
        assert stat.S_IMODE(os.stat(target / "a/x").st_mode) == 0o4755, "setuid survives the chown"
        assert os.readlink(target / "a/l") == "x"
        assert os.readlink(target / "abs") == "/bin/busybox", "absolute targets stay: resolved in the container"
        assert os.stat(target / "a/h").st_ino == os.stat(target / "a/x").st_ino
        assert stat.S_ISFIFO(os.lstat(target / "p").st_mode)
        assert (target / "deep/er/file").read_bytes() == b"made parents"
        assert int(os.stat(target / "a/x").st_mtime) == 1577836800


@pytest.mark.privileged
def test_whiteouts_become_overlayfs_whiteouts(tmp_path):
    target = tmp_path / "fs"
    apply([("dir", "a"), ("whiteout", "a/gone"), ("dir", "b"), ("opaque", "b"), ("file", "b/new", b"n"),
           ("whiteout", "top"), ("file", "a/.wh..wh.plnk", b"")], target)
    st = os.lstat(target / "a/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0), "a whiteout is a 0/0 char device"
    assert stat.S_ISCHR(os.lstat(target / "top").st_mode)
    assert os.getxattr(target / "b", "trusted.overlay.opaque") == b"y"
    assert (target / "b/new").read_bytes() == b"n"
    assert not os.path.lexists(target / "a/.wh.gone") and not os.path.lexists(target / "b/.wh..wh..opq")
    assert not os.path.lexists(target / "a/.wh..wh.plnk"), "AUFS bookkeeping entries are skipped"


@pytest.mark.parametrize("entries, why", [
    ([("file", "../escape", b"x")], "'..' component"),
    ([("file", "a/../../escape", b"x")], "'..' component"),
    ([("raw", tarfile.TarInfo("/etc/capsize-escape"), None)], "absolute path"),
    pytest.param([("symlink", "evil", "/tmp"), ("file", "evil/capsize-escape", b"x")], "goes through the symlink",
                 marks=pytest.mark.privileged),  # the symlink is made (and lchowned) first: root
    ([("symlink", "evil", "../../../../../tmp"), ], "pointing outside the layer"),
    ([("hardlink", "h", "../../etc/passwd")], "'..' component"),
    ([("hardlink", "h", "/etc/passwd")], "absolute path"),
    ([("hardlink", "h", "not/there")], "not in the layer"),
    pytest.param([("symlink", "d", "/etc"), ("hardlink", "h", "d/passwd")], "goes through the symlink",
                 marks=pytest.mark.privileged),
    ([("whiteout", ".")], "whiteout without a name"),
    ([("raw", tarfile.TarInfo("a/../../x"), None)], "'..' component"),
])
def test_hostile_entries_are_refused(tmp_path, entries, why):
    target = tmp_path / "fs"
    outside = tmp_path / "outside-marker"
    with pytest.raises(InvalidArgument, match="unsafe layer") as info:
        apply(entries, target)
    assert why in str(info.value)
    assert not os.path.exists("/tmp/capsize-escape") and not os.path.exists("/etc/capsize-escape")
    assert not outside.exists()


@pytest.mark.privileged
def test_file_replacing_a_symlink_is_written_in_place(tmp_path):
    # a later entry with the same name as a symlink replaces the link; it never writes through it
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    target = tmp_path / "fs"
    apply([("symlink", "f", str(victim)), ("file", "f", b"new")], target)
    assert victim.read_bytes() == b"untouched"
    assert (target / "f").read_bytes() == b"new" and not os.path.islink(target / "f")


def test_not_a_tar_is_refused(tmp_path):
    (tmp_path / "fs").mkdir()
    with pytest.raises(InvalidArgument, match="not valid gzip data"):
        apply_layer(io.BytesIO(b"\x1f\x8b" + b"garbage" * 100), str(tmp_path / "fs"))
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        apply_layer(io.BytesIO(b"x" * 700), str(tmp_path / "fs"))
