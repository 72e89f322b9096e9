"""runtime.atomicfile: replace-by-rename, durability as a parameter, clean failures (no root)."""

import os
import stat

import pytest

from runtime import atomicfile


@pytest.mark.parametrize("durable", [True, False])
def test_write_replaces_and_leaves_no_temporary(tmp_path, durable):
    path = tmp_path / "f.json"
    path.write_text("old")
    atomicfile.write(str(path), "new ✓", durable=durable)
    assert path.read_text(encoding="utf-8") == "new ✓"
    atomicfile.write(str(path), b"\x00bytes", durable=durable)
    assert path.read_bytes() == b"\x00bytes"
    assert os.listdir(tmp_path) == ["f.json"]


def test_mode_of_a_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        atomicfile.write(str(tmp_path / "secret"), "x", durable=False, mode=0o600)
        atomicfile.write(str(tmp_path / "open"), "x", durable=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "secret").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "open").st_mode) == 0o644


def test_durable_fsyncs_file_and_directory_and_volatile_does_not(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    atomicfile.write(str(tmp_path / "a"), "1", durable=False)
    assert synced == []
    atomicfile.write(str(tmp_path / "b"), "2", durable=True)
    assert len(synced) == 2 and synced[0].startswith(str(tmp_path / "b") + atomicfile.TEMP_INFIX)
    assert synced[1] == str(tmp_path)


def test_a_reader_never_sees_a_partial_file(tmp_path):
    """A child rewrites the file in a loop; every read sees one whole version."""
    path = str(tmp_path / "f")
    versions = [bytes([65 + i]) * (1 << 16) for i in range(4)]
    atomicfile.write(path, versions[0], durable=False)
    pid = os.fork()
    if pid == 0:
        try:
            for i in range(400):
                atomicfile.write(path, versions[i % 4], durable=False)
        finally:
            os._exit(0)
    try:
        seen = set()
        while not os.waitpid(pid, os.WNOHANG)[0]:
            with open(path, "rb") as f:
                data = f.read()
            assert data in versions
            seen.add(data[:1])
    finally:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    assert seen


def test_failure_raises_and_removes_the_temporary(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()  # rename(2) of a file over a directory fails: EISDIR
    with pytest.raises(IsADirectoryError):
        atomicfile.write(str(target), "x", durable=True)
    assert os.listdir(tmp_path) == ["dir"]
    with pytest.raises(FileNotFoundError):
        atomicfile.write(str(tmp_path / "missing" / "f"), "x", durable=False)


def test_temp_names_are_distinct_and_in_the_same_directory(tmp_path):
    names = {atomicfile.temp_name(str(tmp_path / "f")) for _ in range(100)}
    assert len(names) == 100
    assert all(os.path.dirname(n) == str(tmp_path) and f".tmp-{os.getpid()}-" in n for n in names)


def test_fsync_dir_errors(tmp_path):
    atomicfile.fsync_dir(str(tmp_path))
    with pytest.raises(NotADirectoryError):
        (tmp_path / "f").write_text("x")
        atomicfile.fsync_dir(str(tmp_path / "f"))
