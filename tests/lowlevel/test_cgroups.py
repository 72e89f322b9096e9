"""runtime.lowlevel.cgroups on the real kernel: cgroup v1 (this host's layout) and cgroup v2.

v1 tests use the host's hierarchies directly. v2 tests run in a forked child that unshares a
private mount namespace and mounts a cgroup2 filesystem at a temporary directory, pointing the
module at it with CAPSIZE_CGROUP_ROOT; that is the same hierarchy as the host's (controller-less)
/sys/fs/cgroup/unified, so lifecycle (create/add/pids/freeze/thaw/cgroup.kill/destroy) is real
there, while v2 *limits* are only checked against a RecordingHost on a fake directory tree.
Every cgroup made here is named capsize-test-cg-*, and removed by the ``cgname`` fixture at the
latest.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import traceback

import pytest

from runtime import busybox
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented
from runtime.host import CLONE_NEWCGROUP, CLONE_NEWNS, HOST, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_REC, RecordingHost
from runtime.lowlevel import cgroup_resources as cr
from runtime.lowlevel import cgroups
from runtime.lowlevel.cgroups import Cgroup
from tests.conftest import SESSION_TAG

BUSYBOX = busybox.busybox_path()
MiB = 1 << 20


def _host_layout() -> str | None:
    """The host's cgroup layout, or None where this user can write no cgroup filesystem (non-root)."""
    try:
        return cgroups.layout()
    except FailedPrecondition:
        return None


_V1_HOST = pytest.mark.skipif(_host_layout() != "v1", reason="needs a cgroup v1 (or hybrid) host")


def v1_only(test):
    """Tests of the host's own v1 hierarchies: privileged (root), and skipped on cgroup v2 hosts (the VMs)."""
    return pytest.mark.privileged(_V1_HOST(test))


# -- helpers ------------------------------------------------------------------------------------

def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _cpu_ticks(pid: int) -> int:
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _scrub(name: str) -> None:
    """Remove every cgroup called *name* (and below) in every hierarchy, killing what is inside."""
    bases = set()
    for m in cgroups._discover().mounts:
        bases.add(m.mountpoint)
    try:
        own = cgroups._own_cgroups()
        for m in cgroups._discover().mounts:
            key = ",".join(sorted(m.key.split(","))) if m.key else ""
            if key in own:
                bases.add(os.path.join(m.mountpoint, own[key].lstrip("/")))
    except OSError:
        pass
    for top in [os.path.join(base, sub) for base in bases for sub in (name, f"capsize/{name}")]:
        if not os.path.isdir(top):
            continue
        for d, _, _ in os.walk(top):
            for f, v in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if os.path.exists(os.path.join(d, f)):
                    HOST.write(os.path.join(d, f), v)
        deadline = time.monotonic() + 5
        for d in [d for d, _, _ in os.walk(top, topdown=False)]:
            while True:
                for pid in _read(os.path.join(d, "cgroup.procs")).split() if os.path.isdir(d) else []:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    HOST.rmdir(d)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        if top.endswith(f"/capsize/{name}"):
            try:
                HOST.rmdir(os.path.dirname(top))  # the default parent, unless others use it
            except OSError:
                pass


@pytest.fixture
def cgname():
    """A unique top-level cgroup name, scrubbed from every hierarchy after the test."""
    name = f"capsize-test-cg-{SESSION_TAG}-{secrets.token_hex(4)}"  # the leak check knows it
    yield name
    _scrub(name)


@pytest.fixture
def spawn():
    """Factory: ``spawn(script)`` runs busybox sh -c *script* (stdin/stdout pipes); killed after."""
    procs = []

    def start(script: str) -> subprocess.Popen:
        p = subprocess.Popen([BUSYBOX, "sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def _gate(p: subprocess.Popen) -> None:
    """Let a process started with ``read x; ...`` go on."""
    p.stdin.write("go\n")
    p.stdin.flush()


WAIT = "read x; "  # scripts start with this, so they can be put in a cgroup before they act
QUIET = "</dev/null >/dev/null 2>&1"  # for background children: they must not hold our pipes


@v1_only
# -- discovery and paths ------------------------------------------------------------------------

def test_hybrid_host_counts_as_v1_with_every_hierarchy():
    assert cgroups.layout() == "v1"
    cg = Cgroup.for_container("capsize-test-cg-x", None)
    keys = set(cg.dirs)
    # Separate cpu and cpuacct mounts, the named systemd hierarchy and the hybrid unified one.
    assert {"cpu", "cpuacct", "memory", "pids", "freezer", "devices", "cpuset", "name=systemd", ""} <= keys
    assert cg.dirs["memory"] == "/sys/fs/cgroup/memory/capsize/capsize-test-cg-x"
    assert cg.dirs[""] == "/sys/fs/cgroup/unified/capsize/capsize-test-cg-x"
    subsystems = [h[0] for h in cg.hierarchies()]
    assert "" not in subsystems and "name=systemd" in subsystems and "cpu" in subsystems
    assert ("memory", "/sys/fs/cgroup/memory", cg.dirs["memory"]) in cg.hierarchies()
    assert cgroups._discover() is cgroups._discover()  # mountinfo is read once per process


def test_mountinfo_parsing_of_comounted_and_named_hierarchies():
    text = ("30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
            "31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd\n"
            "32 25 0:28 /docker/abc /mnt/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate\n")
    entries = cgroups._parse_mountinfo(text)
    assert entries[0] == ("0:26", "/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct")
    assert entries[2][1:3] == ("/docker/abc", "/mnt/with space")


@v1_only
def test_paths_absolute_default_and_relative():
    cg = Cgroup.for_container("abc", "/capsize-test-cg-a/b/")
    assert cg.path == "/capsize-test-cg-a/b" and cg.dirs["pids"] == "/sys/fs/cgroup/pids/capsize-test-cg-a/b"
    assert cg.to_state()["prune"] == []
    default = Cgroup.for_container("abc", "")
    assert default.path == "/capsize/abc" and "/sys/fs/cgroup/pids/capsize" in default.to_state()["prune"]
    # Relative: under the caller's own cgroup in each hierarchy (here the memory one is nested).
    own = cgroups._own_cgroups()
    rel = Cgroup.for_container("abc", "capsize-test-cg-rel/x")
    assert rel.dirs["memory"] == os.path.normpath(f"/sys/fs/cgroup/memory/{own['memory']}/capsize-test-cg-rel/x")
    assert rel.dirs[""] == os.path.normpath(f"/sys/fs/cgroup/unified/{own['']}/capsize-test-cg-rel/x")


@v1_only
@pytest.mark.parametrize("path, words", [
    ("system.slice:docker:abc", "systemd cgroup driver is not supported"),
    ("/a/../../etc", "'..' is not allowed"),
    ("/", "root cgroup"),
    (42, "must be a string"),
])
def test_bad_cgroups_paths_are_refused(path, words):
    with pytest.raises(InvalidArgument, match=words) as e:
        Cgroup.for_container("abc", path)
    assert e.value.fields["field"] == "linux.cgroupsPath"


@v1_only
def test_bad_container_id_for_the_default_path():
    with pytest.raises(InvalidArgument, match="invalid container id"):
        Cgroup.for_container("../x", None)


@v1_only
def test_state_round_trip_and_bad_state():
    cg = Cgroup.for_container("abc", "/capsize-test-cg-s/abc")
    state = json.loads(json.dumps(cg.to_state()))
    again = Cgroup.from_state(state)
    assert again.to_state() == cg.to_state() and again.hierarchies() == cg.hierarchies()
    for bad in ({}, {"layout": "v3", "path": "/x", "dirs": {"": "/a"}, "mounts": {"": "/"}},
                {"layout": "v1", "path": "/x", "dirs": {"cpu": "rel"}, "mounts": {"cpu": "/"}}, None):
        with pytest.raises(InvalidArgument, match="invalid cgroup state"):
            Cgroup.from_state(bad)


@v1_only
# -- lifecycle on v1 ----------------------------------------------------------------------------

def test_create_add_pids_destroy(cgname, spawn):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    assert not cg.exists()
    cg.create()
    assert cg.exists() and all(os.path.isdir(d) for d in cg.dirs.values())
    # cpuset: the new levels got cpus and mems from their parents, or no task could join.
    for level in (os.path.dirname(cg.dirs["cpuset"]), cg.dirs["cpuset"]):
        assert _read(f"{level}/cpuset.cpus") == _read("/sys/fs/cgroup/cpuset/cpuset.cpus")
        assert _read(f"{level}/cpuset.mems") == _read("/sys/fs/cgroup/cpuset/cpuset.mems")
    cg.create()  # again: existing directories are fine

    p = spawn(WAIT + f"{BUSYBOX} sleep 60 {QUIET} & echo $!; wait")
    cg.add(p.pid)
    lines = _read(f"/proc/{p.pid}/cgroup").splitlines()
    assert len(lines) >= 10 and all(line.endswith(f":/{cgname}/c1") for line in lines), lines
    assert cg.pids() == [p.pid]
    _gate(p)
    child = int(p.stdout.readline())
    assert cg.pids() == sorted([p.pid, child])  # children are born inside
    # A process in a sub-cgroup counts too.
    sub = os.path.join(cg.dirs["pids"], "sub")
    HOST.mkdir(sub)
    HOST.write(f"{sub}/cgroup.procs", str(child))
    assert child in cg.pids()

    cg.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    cg.destroy()
    assert not cg.exists() and not os.path.exists(sub)
    cg.destroy()  # missing is fine


@v1_only
def test_add_errors(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    with pytest.raises(FailedPrecondition, match="does not exist"):
        cg.add(os.getpid())
    cg.create()
    dead = subprocess.Popen([BUSYBOX, "true"])
    dead.wait()
    with pytest.raises(NotFound, match="no such process"):
        cg.add(dead.pid)
    cg.destroy()


@v1_only
def test_create_failing_midway_removes_what_it_made(cgname, monkeypatch):
    from runtime.host import Host

    monkeypatch.setenv("CAPSIZE_HOST_FAILPOINTS", "write=error(EBUSY)")  # cpuset's copy fails
    cg = Cgroup.for_container("c1", f"/{cgname}/c1", host=Host())
    with pytest.raises(FailedPrecondition, match=rf"cannot create cgroup /{cgname}/c1: writing .*/cpuset\.cpus"):
        cg.create()
    assert not any(os.path.exists(os.path.join(m, cgname)) for m in cg.to_state()["mounts"].values())


@v1_only
def test_default_path_prunes_the_capsize_parent(cgname):
    parent = "/sys/fs/cgroup/pids/capsize"
    parent_existed = os.path.isdir(parent)
    cg = Cgroup.for_container(cgname, None)
    cg.create()
    assert os.path.isdir(f"{parent}/{cgname}")
    cg.destroy()
    assert not os.path.exists(f"{parent}/{cgname}")
    if not parent_existed and os.path.isdir(parent):
        # Only if another container (another engineer's test) uses it right now.
        assert any(os.path.isdir(os.path.join(parent, x)) for x in os.listdir(parent))


@v1_only
def test_relative_path_is_created_under_own_cgroup(cgname):
    cg = Cgroup.for_container("c1", f"{cgname}/c1")
    cg.create()
    own = cgroups._own_cgroups()
    assert os.path.isdir(os.path.normpath(f"/sys/fs/cgroup/memory/{own['memory']}/{cgname}/c1"))
    cg.destroy()
    assert not cg.exists()


@v1_only
def test_freeze_and_thaw_stop_and_resume_a_busy_process(cgname, spawn):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    p = spawn(WAIT + "while :; do :; done")
    cg.add(p.pid)
    _gate(p)
    assert not cg.frozen()
    cg.freeze()
    assert cg.frozen()
    before = _cpu_ticks(p.pid)
    time.sleep(0.3)
    assert _cpu_ticks(p.pid) == before  # frozen: no CPU time at all
    cg.thaw()
    assert not cg.frozen()
    time.sleep(0.3)
    assert _cpu_ticks(p.pid) > before
    cg.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    cg.destroy()


@v1_only
def test_kill_all_signals_every_process_and_keeps_a_paused_cgroup_paused(cgname, spawn):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    p = spawn(WAIT + "trap 'echo TERM; exit 3' TERM; "
                     f"for i in 1 2 3; do {BUSYBOX} sleep 60 {QUIET} & done; echo up; while :; do {BUSYBOX} sleep 0.05; done")
    cg.add(p.pid)
    _gate(p)
    assert p.stdout.readline() == "up\n"
    assert len(cg.pids()) >= 4
    cg.freeze()
    cg.kill_all(signal.SIGTERM)
    assert cg.frozen()  # a paused container stays paused
    cg.thaw()
    assert p.wait(timeout=10) == 3 and "TERM" in p.stdout.read()
    cg.kill_all(signal.SIGKILL)  # the sleeps are still there, reparented
    cg.destroy()
    assert not cg.exists()


@v1_only
def test_destroy_with_a_live_process_fails_clearly_and_changes_nothing(cgname, spawn):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    p = spawn(WAIT)
    cg.add(p.pid)
    t0 = time.monotonic()
    with pytest.raises(FailedPrecondition, match=rf"cannot destroy cgroup /{cgname}/c1: 1 process\(es\) "
                                                 rf"still in it \(pids {p.pid}\)"):
        cg.destroy(timeout=0.3)
    assert time.monotonic() - t0 < 3
    assert all(os.path.isdir(d) for d in cg.dirs.values())  # not half-done
    assert cg.pids() == [p.pid]
    cg.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    cg.destroy()
    assert not cg.exists()


@v1_only
# -- resources on v1 ----------------------------------------------------------------------------

def test_memory_limit_oom_kills_a_hog(cgname, spawn):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    cg.apply({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    assert int(_read(f"{cg.dirs['memory']}/memory.limit_in_bytes")) == 32 * MiB
    assert cg.oom_kills() == 0
    # dd with a 128 MiB block size allocates and fills a 128 MiB buffer: far past the limit.
    p = spawn(WAIT + f"exec {BUSYBOX} dd if=/dev/zero of=/dev/null bs=128M count=1")
    cg.add(p.pid)
    _gate(p)
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert cg.oom_kills() == 1
    cg.destroy()


FORK_LOOP = """
import os, sys, time
sys.stdin.readline()
kids, failed = [], 0
for _ in range(10):
    try:
        pid = os.fork()
    except BlockingIOError:  # EAGAIN: the pids controller refused the fork
        failed += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print(len(kids), failed, flush=True)
sys.stdin.readline()
"""


@v1_only
def test_pids_limit_stops_a_fork_loop(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    cg.apply({"pids": {"limit": 4}})
    assert _read(f"{cg.dirs['pids']}/pids.max") == "4"
    p = subprocess.Popen(["/usr/bin/python3", "-S", "-c", FORK_LOOP], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)
        _gate(p)
        assert p.stdout.readline().split() == ["3", "7"]  # itself and three children: 4
        assert len(cg.pids()) == 4
        assert int(_read(f"{cg.dirs['pids']}/pids.events").split()[1]) == 7
    finally:
        cg.kill_all(signal.SIGKILL)
        p.wait(timeout=10)
    cg.apply({"pids": {"limit": -1}})
    assert _read(f"{cg.dirs['pids']}/pids.max") == "max"
    cg.destroy()


def _blkio_weight_file(blkio_dir: str) -> str | None:
    """The weight file this host's v1 blkio offers in *blkio_dir*: ``blkio.weight`` (CFQ), else
    ``blkio.bfq.weight`` (BFQ), else None (no scheduler with weights: e.g. mq-deadline or none
    on every disk, as on this lab's VMs). The same order as runc's and capsize-runc's."""
    return next((f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(os.path.join(blkio_dir, f))), None)


def _apply_blkio_weight(cg: Cgroup, resources: dict, weight: int) -> str | None:
    """Apply *resources* plus ``blockIO.weight``: where the host has a weight file, the weight
    lands in it (returns the file); where it has none, apply refuses with the clear
    FailedPrecondition naming the field and changes nothing, and the rest is applied without
    the weight (returns None). Either way the caller checks *resources*' values."""
    file = _blkio_weight_file(cg.dirs["blkio"])
    if file is None:
        before = _read(f"{cg.dirs['cpu']}/cpu.shares")
        with pytest.raises(FailedPrecondition, match="no block I/O scheduler with weights") as e:
            cg.apply({**resources, "blockIO": {"weight": weight}})
        assert e.value.fields["field"] == "linux.resources.blockIO.weight"
        assert _read(f"{cg.dirs['cpu']}/cpu.shares") == before, "a refused apply wrote something"
        cg.apply(resources)
        return None
    cg.apply({**resources, "blockIO": {"weight": weight}})
    assert str(weight) in _read(f"{cg.dirs['blkio']}/{file}")
    return file


@v1_only
def test_cpu_cpuset_blkio_values_land_in_the_files(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    _apply_blkio_weight(cg, {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                             "memory": {"reservation": 16 * MiB, "swappiness": 10}}, 300)
    d = cg.dirs
    assert _read(f"{d['cpu']}/cpu.shares") == "512"
    assert _read(f"{d['cpu']}/cpu.cfs_quota_us") == "50000"
    assert _read(f"{d['cpu']}/cpu.cfs_period_us") == "100000"
    assert _read(f"{d['cpuset']}/cpuset.cpus") == "0"
    assert _read(f"{d['cpuset']}/cpuset.mems") == "0"
    assert int(_read(f"{d['memory']}/memory.soft_limit_in_bytes")) == 16 * MiB
    assert _read(f"{d['memory']}/memory.swappiness") == "10"
    cg.apply({"cpu": {"quota": -1}})
    assert _read(f"{d['cpu']}/cpu.cfs_quota_us") == "-1"
    cg.destroy()


@v1_only
def test_memory_and_swap_limits_grow_and_shrink_in_a_kernel_accepted_order(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    mem = cg.dirs["memory"]
    for limit, swap in ((64 * MiB, 128 * MiB), (256 * MiB, 512 * MiB), (32 * MiB, 48 * MiB), (-1, 0)):
        cg.apply({"memory": {"limit": limit, "swap": swap}})
        want = limit if limit > 0 else int(_read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        assert int(_read(f"{mem}/memory.limit_in_bytes")) == want
        want_swap = swap if swap > 0 else int(_read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"))
        assert int(_read(f"{mem}/memory.memsw.limit_in_bytes")) == want_swap
    cg.destroy()


@v1_only
def test_devices_deny_all_then_the_rules_then_runc_defaults(cgname, spawn):
    from runtime.lowlevel.spec import default_spec

    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    cg.apply(default_spec()["linux"]["resources"])
    listed = _read(f"{cg.dirs['devices']}/devices.list").splitlines()
    # What runc 1.1.5 gives for the same config on this host.
    assert sorted(listed) == sorted(["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                     "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"])
    # And the kernel enforces it: /dev/kmsg (1:11) is denied, /dev/null allowed.
    p = spawn(WAIT + f"{BUSYBOX} head -c 0 /dev/kmsg && echo kmsg-ok; echo x > /dev/null && echo null-ok")
    cg.add(p.pid)
    _gate(p)
    out, err = p.communicate(timeout=10)
    assert "null-ok" in out and "kmsg-ok" not in out and "Operation not permitted" in err
    cg.destroy()


@v1_only
@pytest.mark.parametrize("resources, exc, field", [
    ({"memory": {"limit": "1g"}}, InvalidArgument, "linux.resources.memory.limit"),
    ({"memory": {"limit": -2}}, InvalidArgument, "linux.resources.memory.limit"),
    ({"memory": {"limit": 64 * MiB, "swap": 32 * MiB}}, InvalidArgument, "linux.resources.memory.swap"),
    ({"memory": {"swap": 32 * MiB}}, InvalidArgument, "linux.resources.memory.swap"),
    ({"memory": {"swappiness": 101}}, InvalidArgument, "linux.resources.memory.swappiness"),
    ({"cpu": {"shares": 1}}, InvalidArgument, "linux.resources.cpu.shares"),
    ({"cpu": {"shares": True}}, InvalidArgument, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": 10}}, InvalidArgument, "linux.resources.cpu.quota"),
    ({"cpu": {"period": 5000000}}, InvalidArgument, "linux.resources.cpu.period"),
    ({"cpu": {"cpus": "1-0"}}, InvalidArgument, "linux.resources.cpu.cpus"),
    ({"cpu": {"mems": "zero"}}, InvalidArgument, "linux.resources.cpu.mems"),
    ({"cpu": {"realtimeRuntime": -5}}, InvalidArgument, "linux.resources.cpu.realtimeRuntime"),
    ({"pids": {"limit": -5}}, InvalidArgument, "linux.resources.pids.limit"),
    ({"blockIO": {"weight": 5}}, InvalidArgument, "linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}, Unimplemented,
     "linux.resources.blockIO.throttleReadBpsDevice"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, Unimplemented, "linux.resources.hugepageLimits"),
    ({"devices": [{"allow": "yes"}]}, InvalidArgument, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": True, "type": "x"}]}, InvalidArgument, "linux.resources.devices[0].type"),
    ({"devices": [{"allow": True, "access": 7}]}, InvalidArgument, "linux.resources.devices[0].access"),
    ({"unified": {"memory.max": "1"}}, InvalidArgument, "linux.resources.unified"),
])
def test_bad_values_name_the_field_and_change_nothing(cgname, resources, exc, field):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    files = {f: _read(f"{cg.dirs[c]}/{f}") for c, f in (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.shares"),
                                                        ("pids", "pids.max"), ("devices", "devices.list"))}
    # A valid limit alongside the bad field: validation comes first, so it is not written either.
    resources = {"pids": {"limit": 7}, **resources}
    with pytest.raises(exc) as e:
        cg.apply(resources)
    assert field in str(e.value) and e.value.fields["field"] == field
    assert "\n" not in str(e.value)
    assert files == {f: _read(f"{cg.dirs[c]}/{f}") for c, f in (
        ("memory", "memory.limit_in_bytes"), ("cpu", "cpu.shares"), ("pids", "pids.max"), ("devices", "devices.list"))}
    cg.destroy()


def test_unknown_properties_are_ignored_and_kernel_memory_only_warns(capsys):
    # config.md: a runtime MUST ignore unknown properties; runc 1.1 warns and ignores kmem limits.
    norm = cr.validate({"bogus": {}, "memory": {"limit": 64 * MiB, "limits": 1, "kernel": MiB, "kernelTCP": MiB},
                        "devices": [{"allow": False, "access": "rwm", "extra": 1}]})
    assert norm["memory"]["limit"] == 64 * MiB and norm["devices"][0][0] is False
    err = capsys.readouterr().err
    assert "level=warning" in err and "kernel memory settings are ignored" in err
    assert cr.validate({"memory": {"kernel": 0}}) and "warning" not in capsys.readouterr().err


def test_device_access_letters_other_than_rwm_are_dropped_with_a_warning(capsys):
    # runc 1.1 keeps the r, w, m of an access string (bats update.bats "minimal transition rules": "rwa")
    norm = cr.validate({"devices": [{"allow": False, "access": "rwm"},
                                    {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
                                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "x"}]})
    assert norm["devices"] == [(False, "a", None, None, "rwm"), (False, "c", 1, 11, "rw")]
    err = capsys.readouterr().err
    assert "level=warning" in err and "devices[1].access: 'rwa'" in err and "'a' ignored" in err
    assert "devices[2].access: 'x'" in err


@v1_only
def test_a_value_the_kernel_refuses_names_the_field(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    cg.create()
    with pytest.raises(InvalidArgument, match=r"invalid linux\.resources\.cpu\.cpus: the kernel refused it"):
        cg.apply({"cpu": {"cpus": "4095"}})  # no such CPU here
    cg.destroy()


@v1_only
def test_apply_before_create_fails_clearly(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    with pytest.raises(FailedPrecondition, match="does not exist.*create it first"):
        cg.apply({"pids": {"limit": 5}})


def test_missing_controller_is_a_clear_error():
    with pytest.raises(FailedPrecondition, match="cannot set linux.resources.pids.limit: the pids cgroup "
                                                 "controller is not available"):
        cr.plan_v1(cr.validate({"pids": {"limit": 3}}), {"memory": "/nonexistent"})


@v1_only
def test_recording_host_shows_the_exact_v1_writes(cgname):
    real = Cgroup.for_container("c1", f"/{cgname}/c1")
    real.create()
    rec = RecordingHost()
    cg = Cgroup.from_state(real.to_state(), host=rec)
    resources = {
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4, "minor": -1,
                                                        "access": "rw"}],
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 0},
    }
    d = real.dirs
    weight_file = _blkio_weight_file(d["blkio"])
    if weight_file is None:  # the refusal comes before any write: nothing is recorded
        with pytest.raises(FailedPrecondition, match="no block I/O scheduler with weights"):
            cg.apply({**resources, "blockIO": {"weight": 500}})
        assert rec.calls == []
        cg.apply(resources)
    else:
        cg.apply({**resources, "blockIO": {"weight": 500}})
    defaults = [("write", (f"{d['devices']}/devices.allow", r)) for r in (
        "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
        "c 136:* rwm", "c 10:200 rwm")]
    defaults.insert(9, ("write", (f"{d['devices']}/devices.allow", "c 5:2 rwm")))
    assert rec.calls == [
        ("write", (f"{d['cpuset']}/cpuset.cpus", "0-1")),
        ("write", (f"{d['cpuset']}/cpuset.mems", "0")),
        ("write", (f"{d['devices']}/devices.deny", "a")),
        ("write", (f"{d['devices']}/devices.deny", "a *:* rwm")),
        ("write", (f"{d['devices']}/devices.allow", "c 4:* rw")),
        *defaults,
        # A fresh cgroup's memsw limit is unlimited, so memsw shrinks: the memory limit goes first.
        ("write", (f"{d['memory']}/memory.limit_in_bytes", str(64 * MiB))),
        ("write", (f"{d['memory']}/memory.memsw.limit_in_bytes", str(128 * MiB))),
        ("write", (f"{d['memory']}/memory.soft_limit_in_bytes", str(32 * MiB))),
        ("write", (f"{d['cpu']}/cpu.shares", "1024")),
        ("write", (f"{d['cpu']}/cpu.cfs_period_us", "100000")),
        ("write", (f"{d['cpu']}/cpu.cfs_quota_us", "20000")),
        ("write", (f"{d['pids']}/pids.max", "max")),
        *([("write", (f"{d['blkio']}/{weight_file}", "500"))] if weight_file else []),
    ]
    real.destroy()


@v1_only
def test_recording_host_shows_create_mkdirs_and_cpuset_copies(cgname):
    rec = RecordingHost()
    cg = Cgroup.for_container("c1", f"/{cgname}/c1", host=rec)
    cg.create()
    mkdirs = [args[0] for op, args in rec.calls if op == "mkdir"]
    for d in cg.dirs.values():
        assert os.path.dirname(d) in mkdirs and d in mkdirs
    cpus = _read("/sys/fs/cgroup/cpuset/cpuset.cpus")
    assert ("write", (f"/sys/fs/cgroup/cpuset/{cgname}/cpuset.cpus", cpus)) in rec.calls
    assert not os.path.exists(f"/sys/fs/cgroup/pids/{cgname}")  # nothing was really made


# -- cgroup v2 ----------------------------------------------------------------------------------

def _unified_mount() -> str | None:
    """Where the host's cgroup2 hierarchy is mounted (the hybrid /sys/fs/cgroup/unified here)."""
    return next((m.mountpoint for m in cgroups._discover().mounts if m.key == ""), None)


def in_private_cgroup2(tmp_path, name: str, fn) -> None:
    """Run ``fn(root)`` in a forked child that sees a private cgroup2 mount at *root*.

    The child joins a fresh cgroup ``/<name>`` of the host's cgroup2 hierarchy, unshares a
    cgroup namespace there (so that cgroup is the root it sees), moves itself to ``/<name>/init``,
    unshares a private mount namespace and mounts cgroup2 at *root*; CAPSIZE_CGROUP_ROOT points
    the module at it. So the module's v2 code runs on the real kernel without touching the host's
    root cgroup. Fails the test with the child's traceback; checks the child left only ``init``.
    """
    unified = _unified_mount()
    if unified is None:
        pytest.skip("no cgroup2 hierarchy mounted on this host")
    top = os.path.join(unified, name)
    HOST.mkdir(top)
    HOST.mkdir(os.path.join(top, "init"))
    root = tmp_path / "cgroup2"
    root.mkdir()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(r)
            HOST.write(os.path.join(top, "cgroup.procs"), str(os.getpid()))
            HOST.unshare(CLONE_NEWCGROUP)
            HOST.write(os.path.join(top, "init", "cgroup.procs"), str(os.getpid()))
            HOST.unshare(CLONE_NEWNS)
            HOST.mount(None, "/", None, MS_REC | MS_PRIVATE)
            HOST.mount("cgroup2", str(root), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            os.environ[cgroups.ROOT_ENV] = str(root)
            fn(str(root))
            status = 0
        except BaseException:  # noqa: BLE001 - reported to the parent
            os.write(w, traceback.format_exc().encode())
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r) as f:
        report = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        pytest.fail(f"in the cgroup2 child:\n{report}", pytrace=False)
    left = [d for d in os.listdir(top) if os.path.isdir(os.path.join(top, d))]
    assert left == ["init"], f"the v2 test left cgroups behind: {left}"


def _v2_lifecycle(root: str) -> None:
    assert cgroups.layout() == "v2"
    assert cgroups._own_cgroups()[""] == "/init"  # inside the cgroup namespace
    cg = Cgroup.for_container("c1", "/ctr/c1")
    d = os.path.join(root, "ctr", "c1")
    assert cg.dirs == {"": d} and cg.hierarchies() == [("", root, d)]
    cg.create()
    assert os.path.isdir(d) and cg.exists()
    p = subprocess.Popen([BUSYBOX, "sh", "-c", WAIT + "while :; do :; done"], stdin=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)
        assert _read(f"/proc/{p.pid}/cgroup").splitlines()[-1] == "0::/ctr/c1"
        assert cg.pids() == [p.pid]
        _gate(p)
        cg.freeze()
        assert cg.frozen() and "frozen 1" in _read(f"{d}/cgroup.events")
        before = _cpu_ticks(p.pid)
        time.sleep(0.3)
        assert _cpu_ticks(p.pid) == before
        cg.thaw()
        assert not cg.frozen()
        time.sleep(0.2)
        assert _cpu_ticks(p.pid) > before
        with pytest.raises(FailedPrecondition, match="still in it"):
            cg.destroy(timeout=0.2)
        assert os.path.isdir(d)
        cg.kill_all(signal.SIGKILL)  # cgroup.kill
        assert p.wait(timeout=10) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cg.destroy()
    assert not os.path.exists(d)
    HOST.rmdir(os.path.join(root, "ctr"))
    # A relative path is taken from the own cgroup (here /init, in the namespace).
    rel = Cgroup.for_container("c2", "sub")
    assert rel.dirs == {"": os.path.join(root, "init", "sub")}


@pytest.mark.privileged
def test_v2_lifecycle_in_a_private_cgroup2_mount(tmp_path, cgname):
    in_private_cgroup2(tmp_path, cgname, _v2_lifecycle)


def _v2_kill_with_sigterm_and_state(root: str) -> None:
    cg = Cgroup.for_container("c1", "/ctr/c1")
    cg.create()
    again = Cgroup.from_state(json.loads(json.dumps(cg.to_state())))
    assert again.layout == "v2" and again.dirs == cg.dirs
    p = subprocess.Popen([BUSYBOX, "sh", "-c", WAIT + f"trap 'exit 4' TERM; while :; do {BUSYBOX} sleep 0.05; done"],
                         stdin=subprocess.PIPE, text=True)
    try:
        again.add(p.pid)
        _gate(p)
        time.sleep(0.1)
        again.kill_all(signal.SIGTERM)  # freeze, signal, thaw
        assert p.wait(timeout=10) == 4
        assert not again.frozen()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    deadline = time.monotonic() + 5
    while again.pids() and time.monotonic() < deadline:  # the last sleep, reparented, ends soon
        time.sleep(0.05)
    again.kill_all(signal.SIGKILL)
    again.destroy()
    HOST.rmdir(os.path.join(root, "ctr"))


@pytest.mark.privileged
def test_v2_kill_all_with_another_signal_freezes_signals_thaws(tmp_path, cgname):
    in_private_cgroup2(tmp_path, cgname, _v2_kill_with_sigterm_and_state)


def _v2_missing_controllers_and_default_devices(root: str) -> None:
    from runtime.lowlevel.spec import default_spec

    cg = Cgroup.for_container("c1", "/ctr/c1")
    cg.create()
    try:
        if "memory" in _read(os.path.join(root, "cgroup.controllers")).split():
            # a cgroup v2 host (the cgv2 VM): the memory controller is the cgroup2 hierarchy's
            cg.apply({"memory": {"limit": 64 * MiB}})
            assert _read(os.path.join(root, "ctr", "c1", "memory.max")).strip() == str(64 * MiB)
        else:
            # a hybrid host (this one): memory is bound to v1, so not available on cgroup2
            with pytest.raises(FailedPrecondition, match=r"cannot set linux\.resources\.memory\.limit: the memory "
                                                         r"controller is not enabled for .*/ctr/c1 \(cgroup.controllers:"):
                cg.apply({"memory": {"limit": 64 * MiB}})
        # The default device rules are accepted and recorded as not enforced.
        cg.apply(default_spec()["linux"]["resources"])
        assert cr.V2_DEVICES_NOTE in cg.notes and cr.V2_DEVICES_NOTE in cg.to_state()["notes"]
        assert cg.oom_kills() == 0
        with pytest.raises(InvalidArgument, match="linux.resources.unified"):
            cg.apply({"unified": {"cgroup.procs": "1"}})
    finally:
        cg.destroy()
        HOST.rmdir(os.path.join(root, "ctr"))
    # The default path's /capsize parent is pruned when it was made for this container alone.
    dflt = Cgroup.for_container("abc", None)
    dflt.create()
    assert os.path.isdir(os.path.join(root, "capsize", "abc"))
    dflt.destroy()
    assert not os.path.exists(os.path.join(root, "capsize"))


@pytest.mark.privileged
def test_v2_missing_controllers_and_default_devices(tmp_path, cgname):
    in_private_cgroup2(tmp_path, cgname, _v2_missing_controllers_and_default_devices)


# -- cgroup v2 limits, with a RecordingHost on a fake tree ---------------------------------------

def _fake_v2(tmp_path, controllers="cpuset cpu io memory pids", files=("memory.swap.max",)):
    root = tmp_path / "fake"
    ctr = root / "capsize" / "t"
    ctr.mkdir(parents=True)
    (ctr / "cgroup.controllers").write_text(controllers + "\n")
    for f in files:
        (ctr / f).write_text("max\n")
    rec = RecordingHost()
    state = {"layout": "v2", "path": "/capsize/t", "dirs": {"": str(ctr)}, "mounts": {"": str(root)}}
    return Cgroup.from_state(state, host=rec), rec, str(ctr)


def test_v2_recording_host_shows_the_exact_writes(tmp_path):
    cg, rec, d = _fake_v2(tmp_path)
    cg.apply({
        "pids": {"limit": 100},
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 16 * MiB},
        "blockIO": {"weight": 500},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                        "access": "rwm"}],
        "unified": {"memory.high": "50000000"},
    })
    assert rec.calls == [
        ("write", (f"{d}/pids.max", "100")),
        ("write", (f"{d}/memory.max", str(64 * MiB))),
        ("write", (f"{d}/memory.swap.max", str(32 * MiB))),  # OCI swap is memory+swap; v2's is swap alone
        ("write", (f"{d}/memory.low", str(16 * MiB))),
        ("write", (f"{d}/io.weight", "4950")),  # runc: 1 + (500-10)*9999/990
        ("write", (f"{d}/cpu.weight", "39")),  # runc: 1 + (1024-2)*9999/262142
        ("write", (f"{d}/cpu.max", "50000 100000")),
        ("write", (f"{d}/cpuset.cpus", "0-1")),
        ("write", (f"{d}/cpuset.mems", "0")),
        ("write", (f"{d}/memory.high", "50000000")),
    ]
    assert cg.notes == [cr.V2_DEVICES_NOTE]


def test_v2_unlimited_values_and_bfq(tmp_path):
    cg, rec, d = _fake_v2(tmp_path, files=("memory.swap.max", "io.bfq.weight"))
    cg.apply({"pids": {"limit": -1}, "memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "period": 50000},
              "blockIO": {"weight": 300}})
    assert rec.calls == [
        ("write", (f"{d}/pids.max", "max")),
        ("write", (f"{d}/memory.max", "max")),
        ("write", (f"{d}/memory.swap.max", "max")),
        ("write", (f"{d}/io.bfq.weight", "300")),
        ("write", (f"{d}/cpu.max", "max 50000")),
    ]


def test_v2_controller_missing_and_swap_accounting_off(tmp_path):
    cg, rec, _ = _fake_v2(tmp_path, controllers="memory", files=())
    with pytest.raises(FailedPrecondition, match=r"linux\.resources\.cpu\.shares: the cpu controller is not enabled"):
        cg.apply({"cpu": {"shares": 100}})
    cg.apply({"memory": {"limit": 8 * MiB, "swap": 16 * MiB}})
    assert [c[1][0].rsplit("/", 1)[1] for c in rec.calls] == ["memory.max"]
    assert any("swap accounting is off" in n for n in cg.notes)


@pytest.mark.parametrize("devices, ok", [
    ([{"allow": False, "access": "rwm"}], True),
    ([], True),
    ([{"allow": True, "access": "rwm"}], True),  # privileged: allow all is what no filter gives
    # Docker's default rules, fuse deny included (a no-op after "deny all").
    ([{"allow": False, "access": "rwm"}] + [{"allow": True, "type": "c", "major": a, "minor": b, "access": "rwm"}
                                            for a, b in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))]
     + [{"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}], True),
    ([{"allow": False, "access": "rwm"}, {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rw"}], False),
    ([{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3}], False),
    ([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
      {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}], False),
])
def test_v2_device_rules_default_or_unimplemented(tmp_path, devices, ok):
    cg, rec, _ = _fake_v2(tmp_path)
    if ok:
        cg.apply({"devices": devices})
        assert rec.calls == [] and (cg.notes == [cr.V2_DEVICES_NOTE] if devices else cg.notes == [])
    else:
        with pytest.raises(Unimplemented, match=r"linux\.resources\.devices\[\d\]: .*cannot be enforced on cgroup v2"):
            cg.apply({"devices": devices})
        assert rec.calls == []


def test_v2_create_enables_controllers_in_the_parents(tmp_path):
    root = tmp_path / "fake"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    rec = RecordingHost()
    state = {"layout": "v2", "path": "/capsize/t", "dirs": {"": f"{root}/capsize/t"}, "mounts": {"": str(root)}}
    Cgroup.from_state(state, host=rec).create()
    assert rec.calls == [
        ("write", (f"{root}/cgroup.subtree_control", "+cpu +pids")),
        ("mkdir", (f"{root}/capsize",)),
        ("mkdir", (f"{root}/capsize/t",)),
    ]


def test_conversions_follow_runc():
    assert cr.cpu_weight_from_shares(2) == 1 and cr.cpu_weight_from_shares(262144) == 10000
    assert cr.cpu_weight_from_shares(1024) == 39 and cr.cpu_weight_from_shares(0) == 0
    assert cr.io_weight_from_blkio(10) == 1 and cr.io_weight_from_blkio(1000) == 10000
    assert cr.swap_max_from_oci(-1, 5) == "max" and cr.swap_max_from_oci(0, 5) == ""
    assert cr.swap_max_from_oci(300, 100) == "200"


def test_freeze_without_a_freezer_is_a_clear_error():
    cg = Cgroup.from_state({"layout": "v1", "path": "/x", "dirs": {"pids": "/sys/fs/cgroup/pids/capsize-test-cg-nf"},
                            "mounts": {"pids": "/sys/fs/cgroup/pids"}})
    with pytest.raises(FailedPrecondition, match="freezer cgroup controller is not available"):
        cg.freeze()
    assert cg.frozen() is False


@v1_only
def test_freeze_of_a_missing_cgroup_fails_clearly(cgname):
    cg = Cgroup.for_container("c1", f"/{cgname}/c1")
    with pytest.raises(FailedPrecondition, match="does not exist"):
        cg.freeze()
