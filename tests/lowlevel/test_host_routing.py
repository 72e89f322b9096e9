"""Every privileged operation of a create goes through runtime.host: setrlimit and chown too.

RecordingHost sees them (so the exact sequence can be asserted without the kernel), and
``CAPSIZE_HOST_FAILPOINTS`` reaches them (so a fault can be injected at the one seam).
"""

from __future__ import annotations

import errno
import io
import os
import resource
import tarfile

import pytest

from runtime import host as h
from runtime.errors import PermissionDenied
from runtime.host import Host, RecordingHost
from runtime.lowlevel import process, rootfs
from runtime.lowlevel.spec import default_spec
from tests.lowlevel.forkrun import run_in_child

PATH = "PATH=/usr/local/bin:/usr/bin:/bin"
INFINITY = process.RLIM_INFINITY


def _finalize_recorded(proc):
    rec = RecordingHost()
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    process.finalize(proc, host=rec)
    return {"calls": [[op, list(args)] for op, args in rec.calls if op == "setrlimit"],
            "unchanged": list(resource.getrlimit(resource.RLIMIT_NOFILE)) == list(before)}


def test_recording_host_sees_the_rlimits_of_a_create_in_order():
    proc = {"args": ["true"], "env": [PATH], "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                        {"type": "RLIMIT_CORE", "soft": 0, "hard": INFINITY}]}
    out = run_in_child(_finalize_recorded, proc)
    assert out.error is None, out
    assert out.value["calls"] == [["setrlimit", [resource.RLIMIT_NOFILE, 100, 200]],
                                  ["setrlimit", [resource.RLIMIT_CORE, 0, INFINITY]]]
    assert out.value["unchanged"], "a RecordingHost changes nothing"


def test_recording_host_sees_the_device_chowns_of_a_create(tmp_path):
    rfs = tmp_path / "rootfs"
    for d in ("proc", "dev", "sys", "tmp"):
        (rfs / d).mkdir(parents=True)
    config = default_spec()
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                   "fileMode": 0o600, "uid": 1000, "gid": 1001}]

    class Host(RecordingHost):
        def mknod(self, path, mode, device):  # record, and leave a plain file for chmod
            super().mknod(path, mode, device)
            open(path, "w").close()

    rec = Host()
    rootfs.prepare(config, str(rfs), cgroup=None, cgroupns=False, host=rec)
    r = str(rfs)
    chowns = [args for op, args in rec.calls if op == "chown"]
    assert chowns == [(f"{r}/dev/{d}", 0, 0) for d in ("null", "zero", "full", "random", "urandom", "tty")] + \
        [(f"{r}/dev/fuse", 1000, 1001)]
    ops = [op for op, _ in rec.calls]
    assert ops.index("mknod") < ops.index("chown"), "a node is made, then given away"


def _apply_with_failpoint(rlimits, spec):
    os.environ["CAPSIZE_HOST_FAILPOINTS"] = spec
    try:
        process.apply_rlimits(rlimits, host=Host())
    except PermissionDenied as e:
        return {"error": "PermissionDenied", "message": str(e),
                "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}
    return {"nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}


def test_host_failpoints_reach_setrlimit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = [{"type": "RLIMIT_NOFILE", "soft": min(soft, 64), "hard": min(hard, 128)}]
    out = run_in_child(_apply_with_failpoint, want, "setrlimit=error(EPERM)")
    assert out.error is None, out
    assert out.value["error"] == "PermissionDenied"
    assert out.value["message"] == f"error setting rlimit type {resource.RLIMIT_NOFILE}: operation not permitted"
    assert out.value["nofile"] == [soft, hard], "the injected error comes before the call"
    out = run_in_child(_apply_with_failpoint, want, "chown=error(EIO)")  # another op's point: no effect
    assert out.value == {"nofile": [min(soft, 64), min(hard, 128)]}


def _real_setrlimit_errors():
    host = Host()
    out = {}
    for name, soft, hard in (("above", 10, 5), ("raise", 10, resource.getrlimit(resource.RLIMIT_NOFILE)[1] + 1)):
        if name == "raise":
            process.apply_capabilities(None)  # no CAP_SYS_RESOURCE any more
        try:
            host.setrlimit(resource.RLIMIT_NOFILE, soft, hard)
            out[name] = None
        except OSError as e:
            out[name] = [errno.errorcode[e.errno], str(e)]
    return out


@pytest.mark.privileged
def test_real_setrlimit_failures_are_oserrors_with_the_errno():
    out = run_in_child(_real_setrlimit_errors)
    assert out.error is None, out
    assert out.value["above"][0] == "EINVAL" and out.value["above"][1].startswith(
        f"[Errno {errno.EINVAL}] setrlimit({resource.RLIMIT_NOFILE}, 10, 5)")
    assert out.value["raise"][0] == "EPERM"


def test_real_chown_and_its_failpoint(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("x")
    link = tmp_path / "l"
    link.symlink_to(path)
    Host().chown(str(link), -1, os.getgid(), follow_symlinks=False)  # lchown: the link itself
    Host().chown(str(path), os.getuid(), os.getgid())
    with pytest.raises(FileNotFoundError, match="chown"):
        Host().chown(str(tmp_path / "missing"), 0, 0)
    monkeypatch.setenv("CAPSIZE_HOST_FAILPOINTS", "chown=error(EROFS)")
    with pytest.raises(OSError, match="injected by CAPSIZE_HOST_FAILPOINTS") as e:
        Host().chown(str(path), 0, 0)
    assert e.value.errno == errno.EROFS


def test_layer_unpack_gives_files_away_and_sets_xattrs_through_the_host(tmp_path):
    from runtime.highlevel.unpack import apply_layer
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("etc")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o755, 0, 0
        tar.addfile(d)
        f = tarfile.TarInfo("etc/shadow")
        f.size, f.mode, f.uid, f.gid = 3, 0o640, 0, 42
        f.pax_headers = {"SCHILY.xattr.user.capsize": "yes"}
        tar.addfile(f, io.BytesIO(b"abc"))
        o = tarfile.TarInfo("etc/.wh..wh..opq")
        tar.addfile(o, io.BytesIO(b""))
    buf.seek(0)
    target = tmp_path / "layer"
    target.mkdir()
    rec = RecordingHost()
    apply_layer(buf, str(target), host=rec)
    t = str(target)
    assert ("chown", (f"{t}/etc", 0, 0, {"follow_symlinks": False})) in rec.calls
    assert ("chown", (f"{t}/etc/shadow", 0, 42, {"follow_symlinks": False})) in rec.calls
    assert ("setxattr", (f"{t}/etc/shadow", "user.capsize", b"yes", {"follow_symlinks": False})) in rec.calls
    assert ("setxattr", (f"{t}/etc", "trusted.overlay.opaque", b"y", {"follow_symlinks": False})) in rec.calls
    assert (target / "etc" / "shadow").read_bytes() == b"abc"


def test_recording_host_records_every_host_method():
    """No privileged method of Host is missed by RecordingHost (it would run for real)."""
    ops = {n for n, v in vars(Host).items() if callable(v) and not n.startswith("_")}
    assert ops <= set(vars(RecordingHost)), ops - set(vars(RecordingHost))
    assert {"setrlimit", "chown", "setxattr"} <= ops
    assert h.HOST.__class__ is Host
