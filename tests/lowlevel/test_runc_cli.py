"""capsize-runc's command line on the real kernel: every command, isolation, limits, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import CAPSIZE_RUNC, run


@pytest.fixture
def runc(runc_root, tmp_path, leak_scope):
    """``runc(*args)`` -> CompletedProcess of ``capsize-runc --root <tmp> --log <tmp>/log.json --log-format json``.

    The container id of ``create``/``run`` (the last argument) is registered on the leak scope:
    its default cgroup ``/capsize/<id>`` is this run's.
    """
    log = tmp_path / "runc-log.json"

    def call(*args, **kw):
        if args and args[0] in ("create", "run") and "/" not in args[-1]:
            leak_scope.own_cgroup(f"/capsize/{args[-1]}")
        return run([CAPSIZE_RUNC, "--root", runc_root, "--log", str(log), "--log-format", "json", *args], **kw)

    call.root = runc_root
    call.log = log
    return call


def _status(runc, cid):
    p = runc("state", cid)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _wait_status(runc, cid, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = _status(runc, cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def _cgroup_dirs(cid):
    """The container's cgroup in every v1 hierarchy (and the hybrid unified one), or on cgroup v2."""
    out = [d for d in (f"/sys/fs/cgroup/capsize/{cid}",) if os.path.isdir(d)]
    for ctrl in os.listdir("/sys/fs/cgroup"):
        d = f"/sys/fs/cgroup/{ctrl}/capsize/{cid}"
        if os.path.isdir(d):
            out.append(d)
    return out


def _run_fg(runc, make_bundle, script, cid="fg", edit=None):
    """Run ``sh -c script`` in the foreground; (exit status, stdout, stderr)."""
    bundle = make_bundle(["sh", "-c", script], edit=edit)
    p = runc("run", "--bundle", bundle, cid)
    return p.returncode, p.stdout, p.stderr


# -- spec -------------------------------------------------------------------------------------------

def test_spec_writes_default_config_and_refuses_to_overwrite(runc, tmp_path):
    p = runc("spec", "--bundle", str(tmp_path))
    assert p.returncode == 0, p.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["terminal"] is True   # runc spec's default
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert {ns["type"] for ns in config["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount"}
    p = runc("spec", "--bundle", str(tmp_path))
    assert p.returncode != 0 and "exists" in p.stderr


def test_version(runc):
    p = runc("--version")
    assert p.returncode == 0 and "capsize-runc version" in p.stdout and "spec: 1.0.2" in p.stdout


# -- lifecycle --------------------------------------------------------------------------------------

@pytest.mark.privileged
def test_create_start_kill_delete_lifecycle(runc, make_bundle, tmp_path):
    bundle = make_bundle(["sleep", "100"])
    pid_file = tmp_path / "init.pid"
    p = runc("create", "--bundle", bundle, "--pid-file", str(pid_file), "lc1")
    assert p.returncode == 0, p.stderr
    text = pid_file.read_text()
    assert text.isdigit(), repr(text)  # digits only, no newline, as runc
    pid = int(text)
    st = _status(runc, "lc1")
    assert st["status"] == "created" and st["pid"] == pid and st["id"] == "lc1"
    assert st["bundle"] == bundle and st["ociVersion"]
    # the init exists, blocked before exec: still capsize-runc's (python) image, not sleep
    assert os.path.exists(f"/proc/{pid}")
    assert b"sleep" not in open(f"/proc/{pid}/cmdline", "rb").read()
    # it was re-parented to us, the nearest subreaper
    assert int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    assert _cgroup_dirs("lc1"), "the cgroup exists from create on"
    assert runc("start", "lc1").returncode == 0
    st = _wait_status(runc, "lc1", "running")
    assert st["status"] == "running"
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] == b"sleep"
    # start again is refused
    p = runc("start", "lc1")
    assert p.returncode != 0 and "already running" in p.stderr
    # delete without force is refused while running
    p = runc("delete", "lc1")
    assert p.returncode != 0 and "not stopped: running" in p.stderr
    assert runc("kill", "lc1", "KILL").returncode == 0
    os.waitpid(pid, 0)
    assert _status(runc, "lc1")["status"] == "stopped"
    assert _status(runc, "lc1")["pid"] == 0
    p = runc("kill", "lc1")
    assert p.returncode != 0 and "not running" in p.stderr
    assert runc("delete", "lc1").returncode == 0
    assert not os.path.exists(os.path.join(runc.root, "lc1"))
    assert _cgroup_dirs("lc1") == []
    p = runc("state", "lc1")
    assert p.returncode != 0 and "does not exist" in p.stderr


@pytest.mark.privileged
def test_init_inherits_create_stdio(runc, make_bundle, tmp_path):
    bundle = make_bundle(["sh", "-c", "echo out; echo err >&2"])
    out, err = open(tmp_path / "out", "w"), open(tmp_path / "err", "w")
    p = subprocess.run([CAPSIZE_RUNC, "--root", runc.root, "create", "--bundle", bundle, "stdio1"],
                       stdout=out, stderr=err, timeout=30)
    out.close(), err.close()
    assert p.returncode == 0
    pid = _status(runc, "stdio1")["pid"]
    assert runc("start", "stdio1").returncode == 0
    os.waitpid(pid, 0)
    assert (tmp_path / "out").read_text() == "out\n"
    assert (tmp_path / "err").read_text() == "err\n"
    assert runc("delete", "stdio1").returncode == 0


@pytest.mark.privileged
def test_delete_of_created_container_kills_its_init(runc, make_bundle):
    assert runc("create", "--bundle", make_bundle(["sleep", "100"]), "del1").returncode == 0
    pid = _status(runc, "del1")["pid"]
    assert runc("delete", "del1").returncode == 0
    os.waitpid(pid, 0)
    assert not os.path.exists(os.path.join(runc.root, "del1"))
    assert _cgroup_dirs("del1") == []


@pytest.mark.privileged
def test_delete_force_of_running_container(runc, make_bundle):
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "del2").returncode == 0
    pid = _status(runc, "del2")["pid"]
    assert _status(runc, "del2")["status"] == "running"
    assert runc("delete", "--force", "del2").returncode == 0
    os.waitpid(pid, 0)
    assert _cgroup_dirs("del2") == []


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15", "term"])
@pytest.mark.privileged
def test_kill_signal_spellings(runc, make_bundle, sig):
    # PID 1 of a pid namespace only receives signals it has a handler for (SIGKILL/SIGSTOP
    # excepted): the init traps TERM and exits 143, so the exit status says the signal arrived.
    script = "trap 'exit 143' TERM; echo ready > /tmp/ready; while :; do sleep 0.05; done"
    bundle = make_bundle(["sh", "-c", script], edit=lambda c: c["root"].update(readonly=False))
    assert runc("run", "-d", "--bundle", bundle, "sig1").returncode == 0
    pid = _status(runc, "sig1")["pid"]
    deadline = time.monotonic() + 5
    while not os.path.exists(os.path.join(bundle, "rootfs/tmp/ready")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runc("kill", "sig1", sig).returncode == 0
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 143
    assert runc("delete", "sig1").returncode == 0


@pytest.mark.privileged
def test_kill_bad_signal(runc, make_bundle):
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "sig2").returncode == 0
    p = runc("kill", "sig2", "SIGNOPE")
    assert p.returncode != 0 and "SIGNOPE" in p.stderr
    assert runc("delete", "-f", "sig2").returncode == 0


@pytest.mark.privileged
def test_kill_all_reaches_every_process(runc, make_bundle):
    bundle = make_bundle(["sh", "-c", "sleep 100 & sleep 100 & wait"])
    assert runc("run", "-d", "--bundle", bundle, "all1").returncode == 0
    deadline = time.monotonic() + 5
    while len(json.loads(runc("ps", "--format", "json", "all1").stdout)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = json.loads(runc("ps", "--format", "json", "all1").stdout)
    assert len(pids) == 3
    assert runc("kill", "--all", "all1", "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while runc("ps", "--format", "json", "all1").stdout.strip() != "[]" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(runc("ps", "--format", "json", "all1").stdout) == []
    assert runc("delete", "all1").returncode == 0


@pytest.mark.privileged
def test_run_foreground_returns_exit_status_and_removes_container(runc, make_bundle):
    status, out, err = _run_fg(runc, make_bundle, "echo hello; exit 7", cid="fg1")
    assert status == 7 and out == "hello\n", err
    assert not os.path.exists(os.path.join(runc.root, "fg1"))
    assert _cgroup_dirs("fg1") == []


@pytest.mark.privileged
def test_list_and_ps(runc, make_bundle):
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "ls1").returncode == 0
    assert runc("create", "--bundle", make_bundle(["sleep", "100"]), "ls2").returncode == 0
    p = runc("list")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert [l.split()[0] for l in lines[1:]] == ["ls1", "ls2"]
    assert [l.split()[2] for l in lines[1:]] == ["running", "created"]
    assert runc("list", "-q").stdout == "ls1\nls2\n"
    js = json.loads(runc("list", "--format", "json").stdout)
    assert [(s["id"], s["status"]) for s in js] == [("ls1", "running"), ("ls2", "created")]
    pid = _status(runc, "ls1")["pid"]
    assert json.loads(runc("ps", "--format", "json", "ls1").stdout) == [pid]
    table = runc("ps", "ls1").stdout
    assert "PID" in table.splitlines()[0] and "sleep" in table
    for cid in ("ls1", "ls2"):
        assert runc("delete", "-f", cid).returncode == 0


@pytest.mark.privileged
def test_pause_and_resume(runc, make_bundle):
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "pz1").returncode == 0
    p = runc("resume", "pz1")
    assert p.returncode != 0 and "not paused" in p.stderr
    assert runc("pause", "pz1").returncode == 0
    assert _status(runc, "pz1")["status"] == "paused"
    pid = _status(runc, "pz1")["pid"]
    assert open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("D", "S")
    assert runc("resume", "pz1").returncode == 0
    assert _status(runc, "pz1")["status"] == "running"
    assert runc("delete", "-f", "pz1").returncode == 0


@pytest.mark.privileged
def test_exec_into_running_container(runc, make_bundle):
    def edit(c):
        c["hostname"] = "inside"
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=edit), "ex1").returncode == 0
    p = runc("exec", "ex1", "sh", "-c", "hostname; echo $$; ls /sys/class/net; exit 3")
    assert p.returncode == 3, p.stderr
    host_name, pid, nets = p.stdout.split("\n", 2)
    assert host_name == "inside"
    assert int(pid) > 1  # a new process in the container's pid namespace, not its init
    assert nets.split() == ["lo"]
    p = runc("exec", "--env", "FOO=bar", "--cwd", "/tmp", "ex1", "sh", "-c", 'echo "$FOO $(pwd)"')
    assert p.stdout == "bar /tmp\n", p.stderr
    p = runc("exec", "ex1", "nonexistent-binary")
    assert p.returncode != 0 and "executable file not found" in p.stderr
    assert runc("delete", "-f", "ex1").returncode == 0


@pytest.mark.privileged
def test_exec_detached_with_pid_file(runc, make_bundle, tmp_path):
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "ex2").returncode == 0
    pf = tmp_path / "exec.pid"
    p = runc("exec", "-d", "--pid-file", str(pf), "ex2", "sleep", "50")
    assert p.returncode == 0, p.stderr
    pid = int(pf.read_text())
    assert pid in json.loads(runc("ps", "--format", "json", "ex2").stdout)
    # The exec'd process was re-parented to us. When the init of a pid namespace is killed, the
    # kernel does not let it finish exiting until every process of the namespace is reaped — so
    # while `delete -f` waits for the init, we must reap the exec'd process, as a shim does.
    proc = subprocess.Popen([CAPSIZE_RUNC, "--root", runc.root, "delete", "-f", "ex2"])
    os.waitpid(pid, 0)
    assert proc.wait(timeout=30) == 0


# -- isolation --------------------------------------------------------------------------------------

@pytest.mark.privileged
def test_isolation_pid_hostname_network_mounts(runc, make_bundle):
    def edit(c):
        c["hostname"] = "isolated"
    status, out, err = _run_fg(runc, make_bundle, "echo $$; hostname; ls /sys/class/net; cat /proc/self/mounts",
                               cid="iso1", edit=edit)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "isolated"
    assert lines[2].split() == ["lo"]
    mounts = [l.split()[1] for l in lines[3:]]
    assert "/" in mounts and "/proc" in mounts and "/dev" in mounts
    # no host mount is visible: nothing from /work, /tmp or the host's cgroup tree paths
    assert not [m for m in mounts if m.startswith(("/work", "/tmp/", "/run/"))], mounts


@pytest.mark.privileged
@pytest.mark.parametrize("prop, tag", [("unbindable", "unbindable"), ("shared", "shared:")])
def test_rootfs_propagation_is_the_new_roots(runc, make_bundle, prop, tag):
    # config-linux.md "Rootfs Mount Propagation"; an unbindable "/" used to refuse the rootfs bind
    # (EINVAL, runtime-tools linux_rootfs_propagation): it is applied after pivot_root
    def edit(c):
        c["linux"]["rootfsPropagation"] = prop
    status, out, err = _run_fg(runc, make_bundle, "cat /proc/self/mountinfo", cid=f"prop-{prop}", edit=edit)
    assert status == 0, err
    root = [ln.split(" - ")[0].split()[6:] for ln in out.splitlines() if ln.split()[4] == "/"]
    assert root and any(f.startswith(tag) for f in root[-1]), out


@pytest.mark.privileged
def test_loopback_is_up_in_new_network_namespace(runc, make_bundle):
    status, out, err = _run_fg(runc, make_bundle, "cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags",
                               cid="lo1")
    assert status == 0, err
    assert int(out.split()[1], 16) & 1  # IFF_UP


@pytest.mark.privileged
def test_root_readonly_and_masked_and_readonly_paths(runc, make_bundle):
    # /proc/keys and /proc/timer_list are in the default maskedPaths and exist on this kernel
    script = ("touch /x 2>/dev/null && echo rw || echo ro; "
              "wc -c < /proc/timer_list; "
              "cat /proc/keys | wc -c; ls /sys/firmware | wc -l; "
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-rw || echo sys-ro; "
              "touch /dev/shm/y && echo shm-rw")
    status, out, err = _run_fg(runc, make_bundle, script, cid="ro1")
    assert out.split() == ["ro", "0", "0", "0", "sys-ro", "shm-rw"], (out, err)


@pytest.mark.privileged
def test_devices_and_dev_symlinks(runc, make_bundle):
    script = "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1; readlink /dev/fd; readlink /dev/ptmx"
    status, out, err = _run_fg(runc, make_bundle, script, cid="dev1")
    assert status == 0, err
    lines = out.split()
    assert lines[:6] == ["c"] * 6
    assert lines[6:] == ["/proc/self/fd", "pts/ptmx"]


@pytest.mark.privileged
def test_process_user_env_cwd_rlimits_caps(runc, make_bundle):
    def edit(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
        c["process"]["env"].append("HELLO=world")
        c["process"]["cwd"] = "/tmp"
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]
        c["root"]["readonly"] = False
    script = ("id -u; id -g; id -G; echo $HELLO; pwd; ulimit -n; ulimit -Hn; "
              "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status")
    status, out, err = _run_fg(runc, make_bundle, script, cid="usr1", edit=edit)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[:7] == ["1000", "1000", "1000 2000", "world", "/tmp", "256", "512"]
    fields = dict(l.split(":\t") for l in lines[7:])
    # CAP_AUDIT_WRITE(29) CAP_KILL(5) CAP_NET_BIND_SERVICE(10) — runc spec's default set
    assert int(fields["CapBnd"], 16) == (1 << 29) | (1 << 5) | (1 << 10)
    # runc's default spec has no inheritable set, so the ambient set cannot be raised and a
    # non-root user ends with no effective capabilities — exactly what runc 1.1 gives too.
    assert int(fields["CapEff"], 16) == 0
    assert fields["NoNewPrivs"] == "1"


@pytest.mark.privileged
def test_join_network_namespace_by_path(runc, make_bundle):
    name = f"capsize-test-ns{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"], check=True)
        path = f"/run/netns/{name}"

        def edit(c):
            for ns in c["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = path
        status, out, err = _run_fg(runc, make_bundle, "ls /sys/class/net", cid="nsj1", edit=edit)
        assert status == 0, err
        assert sorted(out.split()) == ["lo", "veth0", "veth1"]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.mark.privileged
def test_hostname_without_uts_namespace_is_refused(runc, make_bundle):
    def edit(c):
        c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "uts"]
    bundle = make_bundle(["true"], edit=edit)
    p = runc("create", "--bundle", bundle, "uts1")
    assert p.returncode != 0 and "UTS namespace" in p.stderr
    assert not os.path.exists(os.path.join(runc.root, "uts1")) and _cgroup_dirs("uts1") == []


# -- limits -----------------------------------------------------------------------------------------

@pytest.mark.privileged
def test_pids_limit_stops_a_fork_loop(runc, make_bundle):
    def edit(c):
        c["linux"]["resources"]["pids"] = {"limit": 10}
    # the inner shell forks sleeps until fork fails (busybox sh then dies with status 2); the
    # outer shell (PID 1) inherits the orphaned sleeps and counts the processes
    script = ("sh -c 'i=0; while [ $i -lt 30 ]; do sleep 2 & i=$((i+1)); done'; echo inner=$?; "
              "set -- /proc/[0-9]*; echo $#")  # a glob: counting must not need a fork
    status, out, err = _run_fg(runc, make_bundle, script, cid="pids1", edit=edit)
    assert status == 0, err
    inner, count = out.split()
    assert inner == "inner=2" and "can't fork" in err, (out, err)
    assert 5 <= int(count) <= 10, out


@pytest.mark.privileged
def test_memory_limit_ends_a_hog(runc, make_bundle):
    def edit(c):
        c["linux"]["resources"]["memory"] = {"limit": 32 * 1024 * 1024}
    # busybox awk building an ever longer string: allocates until the cgroup's OOM killer ends it
    status, out, err = _run_fg(runc, make_bundle,
                               "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo survived-$?", cid="mem1", edit=edit)
    assert "survived-137" in out, (status, out, err)


@pytest.mark.privileged
def test_cpu_shares_and_quota_are_applied(runc, make_bundle):
    def edit(c):
        c["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=edit), "cpu1").returncode == 0
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2 (the cgv2 VM): runc's conversions
        base = "/sys/fs/cgroup/capsize/cpu1"
        assert open(f"{base}/cpu.weight").read().strip() == "20"   # 1 + (512 - 2) * 9999 // 262142
        assert open(f"{base}/cpu.max").read().strip() == "50000 100000"
    else:
        base = "/sys/fs/cgroup/cpu/capsize/cpu1"
        assert open(f"{base}/cpu.shares").read().strip() == "512"
        assert open(f"{base}/cpu.cfs_quota_us").read().strip() == "50000"
        assert open(f"{base}/cpu.cfs_period_us").read().strip() == "100000"
    assert runc("delete", "-f", "cpu1").returncode == 0


# -- errors leave nothing behind --------------------------------------------------------------------

def _nothing_left(runc, cid):
    assert not os.path.exists(os.path.join(runc.root, cid))
    assert _cgroup_dirs(cid) == []


@pytest.mark.privileged
def test_create_twice_is_already_exists(runc, make_bundle):
    bundle = make_bundle(["sleep", "100"])
    assert runc("create", "--bundle", bundle, "dup1").returncode == 0
    p = runc("create", "--bundle", bundle, "dup1")
    assert p.returncode != 0 and "container with id exists: dup1" in p.stderr
    assert runc("delete", "dup1").returncode == 0


def test_missing_container(runc):
    for cmd in (["start"], ["state"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"]):
        p = runc(*cmd, "ghost")
        assert p.returncode != 0 and "does not exist" in p.stderr, cmd


@pytest.mark.privileged
def test_executable_not_found_leaves_nothing(runc, make_bundle):
    p = runc("create", "--bundle", make_bundle(["no-such-binary"]), "enf1")
    assert p.returncode != 0
    assert 'exec: "no-such-binary": executable file not found in $PATH' in p.stderr
    _nothing_left(runc, "enf1")
    # and the error is a JSON record in the log file
    records = [json.loads(l) for l in runc.log.read_text().splitlines()]
    assert records[-1]["level"] == "error" and "executable file not found" in records[-1]["msg"]


def test_missing_rootfs_and_bad_config(runc, make_bundle, tmp_path):
    bundle = make_bundle(["true"])
    os.rename(os.path.join(bundle, "rootfs"), os.path.join(bundle, "elsewhere"))
    p = runc("create", "--bundle", bundle, "bad1")
    assert p.returncode != 0 and "rootfs" in p.stderr and "does not exist" in p.stderr
    _nothing_left(runc, "bad1")

    bundle2 = make_bundle(["true"], edit=lambda c: c["process"].update(args=[]))
    p = runc("create", "--bundle", bundle2, "bad2")
    assert p.returncode != 0 and "process.args" in p.stderr
    _nothing_left(runc, "bad2")

    bundle3 = make_bundle(["true"], edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"}))
    p = runc("create", "--bundle", bundle3, "bad3")
    assert p.returncode != 0 and "linux.namespaces[5].type" in p.stderr
    _nothing_left(runc, "bad3")

    (tmp_path / "notjson").mkdir()
    (tmp_path / "notjson" / "config.json").write_text("{nope")
    p = runc("create", "--bundle", str(tmp_path / "notjson"), "bad4")
    assert p.returncode != 0 and "invalid config.json" in p.stderr
    _nothing_left(runc, "bad4")

    p = runc("create", "--bundle", str(tmp_path / "nowhere"), "bad5")
    assert p.returncode != 0 and "config.json not found" in p.stderr
    _nothing_left(runc, "bad5")

    p = runc("create", "--bundle", bundle2, "bad/id")
    assert p.returncode != 0 and "invalid container id" in p.stderr


@pytest.mark.privileged
def test_start_of_stopped_container(runc, make_bundle):
    assert runc("run", "-d", "--bundle", make_bundle(["true"]), "st1").returncode == 0
    pid_gone = _wait_status(runc, "st1", "stopped")
    assert pid_gone["status"] == "stopped"
    p = runc("start", "st1")
    assert p.returncode != 0 and "stopped" in p.stderr
    assert runc("delete", "st1").returncode == 0


def test_usage_errors_are_one_line(runc):
    p = runc("frobnicate")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def _last_log_error(runc) -> dict:
    return [json.loads(line) for line in runc.log.read_text().splitlines()
            if json.loads(line)["level"] == "error"][-1]


def test_exit_codes_are_runcs_and_the_class_is_in_the_log(runc):
    # runc 1.1: 1 for its own errors, 255 when exec fails; the class goes to --log as "code"
    p = runc("state", "no-such-ctr")
    assert p.returncode == 1 and "no-such-ctr" in p.stderr
    assert _last_log_error(runc)["code"] == "not-found"
    p = runc("kill", "no-such-ctr", "BOGUS")
    assert p.returncode == 1
    p = runc("exec", "no-such-ctr", "true")
    assert p.returncode == 255 and _last_log_error(runc)["code"] == "not-found"


# -- hooks ------------------------------------------------------------------------------------------

@pytest.mark.privileged
def test_prestart_poststart_poststop_hooks_get_state_on_stdin(runc, make_bundle, tmp_path):
    out = tmp_path / "hooks.log"

    def hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {out}; echo ' {name}' >> {out}"]}

    def edit(c):
        c["hooks"] = {"prestart": [hook("prestart")], "poststart": [hook("poststart")],
                      "poststop": [hook("poststop")]}
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"], edit=edit), "hk1").returncode == 0
    assert runc("delete", "-f", "hk1").returncode == 0
    records = out.read_text().strip().splitlines()
    names = [r.rsplit(" ", 1)[1] for r in records]
    assert names == ["prestart", "poststart", "poststop"]
    states = [json.loads(r.rsplit(" ", 1)[0]) for r in records]
    assert all(s["id"] == "hk1" for s in states)
    assert states[0]["status"] == "created" and states[0]["pid"] > 0
    assert states[1]["status"] == "running"


@pytest.mark.privileged
def test_failing_prestart_hook_fails_create_and_leaves_nothing(runc, make_bundle):
    def edit(c):
        c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    p = runc("create", "--bundle", make_bundle(["sleep", "100"], edit=edit), "hk2")
    assert p.returncode != 0 and "error running hook #0 (prestart" in p.stderr and "nope" in p.stderr
    _nothing_left(runc, "hk2")


# -- terminal ---------------------------------------------------------------------------------------

class _ConsoleSocket:
    """A listening console socket (the caller's side of runc's --console-socket) that receives one
    pty master (SCM_RIGHTS) in a thread."""

    def __init__(self, path):
        import socket
        import threading
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(15)
        self.received = {}
        self.thread = threading.Thread(target=self._accept)
        self.thread.start()

    def _accept(self):
        import socket
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        self.received["name"], self.received["fd"] = msg, fds[0] if fds else -1

    def master(self) -> int:
        self.thread.join(timeout=15)
        self.server.close()
        os.unlink(self.path)
        return self.received.get("fd", -1)


def _read_all(master) -> str:
    """What the pty master gives until the slave side is closed (EIO)."""
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the slave side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return out.decode()


@pytest.mark.privileged
def test_terminal_through_console_socket(runc, make_bundle, tmp_path):
    """process.terminal: a pty of the container's own devpts (its first: /dev/pts/0), its size
    from process.consoleSize, the master sent over --console-socket (SCM_RIGHTS), the slave on
    /dev/console and as the init's stdio and controlling terminal, as runc does."""
    cs = _ConsoleSocket(tmp_path / "console.sock")

    def edit(c):
        c["process"]["terminal"] = True
        c["process"]["consoleSize"] = {"height": 31, "width": 97}
    bundle = make_bundle(["sh", "-c", "tty; echo size=$(stty size); ls -l /dev/console; read x; echo got=$x"],
                         edit=edit)
    p = runc("create", "--bundle", bundle, "--console-socket", cs.path, "tty1")
    master = cs.master()
    assert p.returncode == 0, p.stderr
    assert cs.received["name"] == b"/dev/ptmx" and master >= 0
    pid = _status(runc, "tty1")["pid"]
    assert runc("start", "tty1").returncode == 0
    os.write(master, b"typed\n")
    os.waitpid(pid, 0)
    text = _read_all(master)
    assert "/dev/pts/0" in text, text
    assert "size=31 97" in text, text
    assert "got=typed" in text, text
    assert runc("delete", "tty1").returncode == 0


@pytest.mark.privileged
def test_exec_with_terminal_through_console_socket(runc, make_bundle, tmp_path):
    """``exec --tty --console-socket``: the exec process gets a new pty of the container (the
    init has none: /dev/pts/0), the master arrives over the socket; without the socket a
    detached exec is refused as runc refuses it, a foreground one gets capsize-runc's own relay."""
    bundle = make_bundle(["sleep", "30"])
    assert runc("create", "--bundle", bundle, "tty3").returncode == 0
    init_pid = _status(runc, "tty3")["pid"]
    try:
        assert runc("start", "tty3").returncode == 0
        p = runc("exec", "--detach", "--tty", "tty3", "true")
        assert p.returncode == 255 and "console socket" in p.stderr
        p = runc("exec", "--tty", "tty3", "sh", "-c", "tty; exit 4")   # foreground: relayed to our stdout
        assert p.returncode == 4 and "/dev/pts/0" in p.stdout, (p.stdout, p.stderr)
        cs = _ConsoleSocket(tmp_path / "exec-console.sock")
        pid_file = tmp_path / "exec.pid"
        p = runc("exec", "--detach", "--tty", "--console-socket", cs.path, "--pid-file", str(pid_file),
                 "tty3", "sh", "-c", "tty; read x; echo got=$x")
        master = cs.master()
        assert p.returncode == 0, p.stderr
        assert master >= 0
        os.write(master, b"hello\n")
        text = _read_all(master)
        assert "/dev/pts/0" in text and "got=hello" in text, text
        os.waitpid(int(pid_file.read_text()), 0)   # the exec process was left to us, its subreaper
    finally:
        runc("delete", "--force", "tty3")
        os.waitpid(init_pid, 0)


def test_terminal_without_console_socket_is_refused(runc, make_bundle):
    bundle = make_bundle(["true"], edit=lambda c: c["process"].update(terminal=True))
    p = runc("create", "--bundle", bundle, "tty2")
    assert p.returncode != 0 and "console socket" in p.stderr
    assert not os.path.exists(os.path.join(runc.root, "tty2"))


@pytest.mark.privileged
def test_update_applies_resources_live(runc, make_bundle, tmp_path):
    """runc update: ``--resources FILE`` (OCI linux.resources) and the flags, written to the live
    cgroup and kept in the state's config; a bad value is one line, exit 2; a stopped container
    is refused."""
    from runtime.lowlevel.state import State
    assert runc("run", "-d", "--bundle", make_bundle(["sleep", "100"]), "up1").returncode == 0

    def cgroup_value(name):
        dirs = State.load(runc.root, "up1").cgroup_obj().dirs.values()
        return next(open(os.path.join(d, name)).read().strip() for d in dirs if os.path.exists(os.path.join(d, name)))
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 17}}))
    p = runc("update", "--resources", str(res), "up1")
    assert p.returncode == 0, p.stderr
    assert cgroup_value("pids.max") == "17"
    p = runc("update", "--pids-limit", "23", "up1")
    assert p.returncode == 0, p.stderr
    assert cgroup_value("pids.max") == "23"
    assert State.load(runc.root, "up1").config["linux"]["resources"]["pids"]["limit"] == 23
    p = runc("update", "--pids-limit", "lots", "up1")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "--pids-limit" in p.stderr
    res.write_text(json.dumps({"memory": {"limit": "big"}}))
    p = runc("update", "-r", str(res), "up1")
    assert p.returncode == 1 and "linux.resources.memory.limit" in p.stderr
    assert _last_log_error(runc)["code"] == "invalid-argument"
    assert cgroup_value("pids.max") == "23"   # bad input changed nothing
    assert runc("kill", "up1", "KILL").returncode == 0
    _wait_status(runc, "up1", "stopped")
    p = runc("update", "--pids-limit", "5", "up1")
    assert p.returncode != 0 and "stopped" in p.stderr
    assert runc("delete", "-f", "up1").returncode == 0


def test_dies_with_the_parent_the_shim_names(tmp_path):
    """CAPSIZE_RUNC_PARENT (runtime.runtimes.PARENT_ENV): capsize-runc dies at once (SIGKILL)
    when its parent is not that process any more, and runs normally under it."""
    from runtime.runtimes import PARENT_ENV
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    ok = subprocess.run([CAPSIZE_RUNC, "--version"], env=env, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "capsize-runc" in ok.stdout
    env[PARENT_ENV] = "1"   # not our pid: as if re-parented after the shim died
    gone = subprocess.run([CAPSIZE_RUNC, "--version"], env=env, capture_output=True, text=True, timeout=30)
    assert gone.returncode == -signal.SIGKILL and gone.stdout == ""
