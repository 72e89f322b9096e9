"""The foundation shared by every tier: errors, the host interface, the busybox image, the CLI basics."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import tarfile

import pytest

from runtime import busybox, errors
from runtime import host as h
from tests.conftest import VENV_BIN, run


# -- errors -----------------------------------------------------------------------------------------

def test_error_mapping_is_stable():
    table = {cls.__name__: (cls.code, cls.exit_code, cls.http_status) for cls in (
        errors.CapsizeError, errors.InvalidArgument, errors.NotFound, errors.AlreadyExists,
        errors.FailedPrecondition, errors.Unavailable, errors.DeadlineExceeded,
        errors.PermissionDenied, errors.Unimplemented)}
    assert table == {
        "CapsizeError": ("internal", 1, 500), "InvalidArgument": ("invalid-argument", 2, 400),
        "NotFound": ("not-found", 3, 404), "AlreadyExists": ("already-exists", 4, 409),
        "FailedPrecondition": ("failed-precondition", 5, 409), "Unavailable": ("unavailable", 6, 503),
        "DeadlineExceeded": ("deadline-exceeded", 7, 504), "PermissionDenied": ("permission-denied", 8, 403),
        "Unimplemented": ("unimplemented", 9, 501)}
    assert errors.exit_code_for(ValueError("x")) == 1 and errors.http_status_for(ValueError("x")) == 500


def test_errors_round_trip_over_the_wire():
    err = errors.NotFound("container does not exist: x", id="x")
    back = errors.from_dict(err.to_dict())
    assert type(back) is errors.NotFound and str(back) == "container does not exist: x" and back.fields == {"id": "x"}
    unknown = errors.from_dict({"code": "from-the-future", "message": "m"})
    assert type(unknown) is errors.CapsizeError and str(unknown) == "m"


# -- host interface ---------------------------------------------------------------------------------

def test_recording_host_records_and_performs_nothing(tmp_path):
    rec = h.RecordingHost()
    rec.mount("tmpfs", str(tmp_path), "tmpfs", h.MS_NOSUID, "size=1m")
    rec.mkdir(str(tmp_path / "cg"))
    rec.write(str(tmp_path / "nope"), "1")
    assert rec.calls == [("mount", ("tmpfs", str(tmp_path), "tmpfs", h.MS_NOSUID, "size=1m")),
                         ("mkdir", (str(tmp_path / "cg"),)), ("write", (str(tmp_path / "nope"), "1"))]
    assert not (tmp_path / "cg").exists() and not (tmp_path / "nope").exists()
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def test_real_host_mount_error_names_the_call(tmp_path):
    with pytest.raises(OSError) as e:
        h.Host().mount("none", str(tmp_path / "missing"), "tmpfs", 0, None)
    assert e.value.errno == errno.ENOENT and "mount(" in str(e.value) and "missing" in str(e.value)


def test_failpoints_inject_errors_and_delays(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPSIZE_HOST_FAILPOINTS", "mkdir=error(EBUSY); rmdir=delay(0.05)")
    host = h.Host()
    with pytest.raises(OSError) as e:
        host.mkdir(str(tmp_path / "x"))
    assert e.value.errno == errno.EBUSY and "injected" in str(e.value)
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    import time
    t0 = time.monotonic()
    host.rmdir(str(tmp_path / "y"))
    assert time.monotonic() - t0 >= 0.05 and not (tmp_path / "y").exists()


@pytest.mark.privileged
def test_runc_failpoint_reaches_the_cli(make_bundle, runc_root):
    """A fault injected at the host seam makes capsize-runc fail cleanly, leaving nothing."""
    bundle = make_bundle(["true"])
    p = run([os.path.join(VENV_BIN, "capsize-runc"), "--root", runc_root, "create", "--bundle", bundle, "fp1"],
            env={**os.environ, "CAPSIZE_HOST_FAILPOINTS": "pivot_root=error(EINVAL)"})
    assert p.returncode != 0 and "pivot_root" in p.stderr and "injected" in p.stderr
    assert not os.path.exists(os.path.join(runc_root, "fp1"))


# -- the busybox image ------------------------------------------------------------------------------

def test_rootfs_tar_is_reproducible_and_complete(tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    busybox.write_rootfs_tar(str(a))
    busybox.write_rootfs_tar(str(b))
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(b.read_bytes()).hexdigest()
    with tarfile.open(a) as t:
        names = {m.name: m for m in t.getmembers()}
        passwd = t.extractfile("etc/passwd").read().decode()
    assert names["bin/busybox"].isfile() and names["bin/sh"].issym() and names["bin/sh"].linkname == "busybox"
    assert names["usr/bin/env"].linkname == "../../bin/busybox"
    assert names["tmp"].mode == 0o1777 and all(m.mtime == busybox.EPOCH and m.uid == 0 for m in names.values())
    assert passwd.startswith("root:x:0:0:")


@pytest.mark.privileged
def test_rootfs_dir_runs_busybox(tmp_path):
    root = busybox.write_rootfs(str(tmp_path / "rootfs"))
    out = subprocess.run(["chroot", root, "/bin/sh", "-c", "echo $((6*7)); ls /usr/bin/env"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.split() == ["42", "/usr/bin/env"], out.stderr


def test_static_check_rejects_dynamic_binaries():
    assert busybox._is_static_elf(busybox.busybox_path())
    assert not busybox._is_static_elf("/usr/bin/python3.11")
    assert not busybox._is_static_elf("/etc/passwd")


# -- capsize's own command line ---------------------------------------------------------------------

CAPSIZE = os.path.join(VENV_BIN, "capsize")


def test_image_rootfs_and_bundle_commands(tmp_path):
    p = run([CAPSIZE, "image", "rootfs", "--out", str(tmp_path / "bb.tar")])
    assert p.returncode == 0 and tarfile.is_tarfile(tmp_path / "bb.tar")
    p = run([CAPSIZE, "image", "bundle", str(tmp_path / "b"), "--", "echo", "hi"])
    assert p.returncode == 0, p.stderr
    import json
    assert json.loads((tmp_path / "b" / "config.json").read_text())["process"]["args"] == ["echo", "hi"]
    p = run([CAPSIZE, "image", "bundle", str(tmp_path / "b")])
    assert p.returncode == 2 and "exists" in p.stderr and len(p.stderr.splitlines()) == 1


def test_image_rootfs_to_a_pipe_is_the_same_tar(tmp_path):
    """`--out -` streams to a pipe (no seeking) and gives the very bytes of the file form."""
    p = run([CAPSIZE, "image", "rootfs", "--out", str(tmp_path / "file.tar")])
    assert p.returncode == 0, p.stderr
    piped = subprocess.run([CAPSIZE, "image", "rootfs", "--out", "-"], stdout=subprocess.PIPE, timeout=60)
    assert piped.returncode == 0
    assert hashlib.sha256(piped.stdout).hexdigest() == hashlib.sha256((tmp_path / "file.tar").read_bytes()).hexdigest()


def test_bad_usage_is_one_line_exit_2():
    p = run([CAPSIZE, "no-such-command"])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.privileged
def test_demo_shows_the_container_isolated():
    p = run([CAPSIZE, "demo"], timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "the container is PID 1 of its own pid namespace, has its own hostname and only lo: yes" in p.stdout
