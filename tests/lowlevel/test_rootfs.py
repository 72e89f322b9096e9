"""rootfs set-up logic: option parsing, secure joins, and the exact mount sequence (RecordingHost)."""

from __future__ import annotations

import os

from runtime import host as h
from runtime.host import RecordingHost
from runtime.lowlevel import rootfs
from runtime.lowlevel.spec import default_spec


def test_parse_options_splits_flags_propagation_and_data():
    flags, prop, data = rootfs.parse_options(["nosuid", "noexec", "mode=755", "size=65536k", "rprivate", "ro"])
    assert flags == h.MS_NOSUID | h.MS_NOEXEC | h.MS_RDONLY
    assert prop == h.MS_PRIVATE | h.MS_REC
    assert data == "mode=755,size=65536k"
    flags, _, _ = rootfs.parse_options(["ro", "rw", "rbind"])
    assert flags == h.MS_BIND | h.MS_REC


def test_secure_join_never_escapes_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc/passwd", root / "abs")          # absolute link: clamped to the root
    os.symlink("../../../../etc", root / "rel")       # relative link climbing out: clamped
    os.symlink("etc", root / "ok")
    r = str(root)
    assert rootfs.secure_join(r, "/abs") == f"{r}/etc/passwd"
    assert rootfs.secure_join(r, "/rel/shadow") == f"{r}/etc/shadow"
    assert rootfs.secure_join(r, "/../../x") == f"{r}/x"
    assert rootfs.secure_join(r, "/ok/hosts") == f"{r}/etc/hosts"
    assert rootfs.secure_join(r, "/new/dir") == f"{r}/new/dir"


def test_prepare_mount_sequence(tmp_path):
    """The privileged calls of the default spec's rootfs set-up, in order, without the kernel."""
    rfs = tmp_path / "rootfs"
    for d in ("proc", "dev", "sys", "tmp"):
        (rfs / d).mkdir(parents=True)
    config = default_spec()
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    class Host(RecordingHost):
        def mknod(self, path, mode, device):  # record, and leave a plain file for chmod/chown
            super().mknod(path, mode, device)
            open(path, "w").close()

    rec = Host()
    rootfs.prepare(config, str(rfs), cgroup=None, cgroupns=False, host=rec)
    r = str(rfs)
    mounts = [c for c in rec.calls if c[0] == "mount"]
    assert mounts[0] == ("mount", (None, "/", None, h.MS_SLAVE | h.MS_REC, None))
    assert mounts[1] == ("mount", (r, r, None, h.MS_BIND | h.MS_REC, None))
    assert [(m[1][1], m[1][2]) for m in mounts[2:]] == [
        (f"{r}/proc", "proc"), (f"{r}/dev", "tmpfs"), (f"{r}/dev/pts", "devpts"), (f"{r}/dev/shm", "tmpfs"),
        (f"{r}/dev/mqueue", "mqueue"), (f"{r}/sys", "sysfs")]
    assert mounts[3][1][4] == "mode=755,size=65536k"
    nodes = [c[1][0] for c in rec.calls if c[0] == "mknod"]
    assert nodes == [f"{r}/dev/{d}" for d in ("null", "zero", "full", "random", "urandom", "tty")]


def test_finalize_sequence_readonly_masked_root(tmp_path, monkeypatch):
    rec = RecordingHost()
    config = {"root": {"path": "rootfs", "readonly": True}, "mounts": [],
              "linux": {"readonlyPaths": ["/proc/sys", "/nonexistent"], "maskedPaths": ["/proc/version", "/proc/acpi"]}}
    rootfs.finalize(config, host=rec)
    ops = [(c[0], c[1][1]) for c in rec.calls]
    assert ops[0] == ("mount", "/proc/sys") and ops[1] == ("mount", "/proc/sys")  # bind, then ro remount
    assert ("mount", "/proc/version") in ops and rec.calls[2][1][0] == "/dev/null"
    assert ops[-1] == ("mount", "/")
    assert rec.calls[-1][1][3] & h.MS_RDONLY and rec.calls[-1][1][3] & h.MS_REMOUNT
    assert ("mount", "/nonexistent") not in ops
