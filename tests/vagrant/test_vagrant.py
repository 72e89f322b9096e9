"""The VM tooling in vagrant/, checked without a VM (the full VM run is `vagrant/ci.sh`).

- ``vagrant validate`` passes on the Vagrantfile without a box (both with and without the box's
  key in the cache) and fails on a broken provider option, so it really reads the libvirt block;
- every shell script passes ShellCheck (all severities) and ``sh -n``/``bash -n``;
- capsize's systemd units are well formed (``systemd-analyze verify``) and say what the design
  asks: capsized.socket activates capsized.service (Type=notify, ``-H fd://``),
  capsize-runtimed.service has KillMode=process;
- run-checks.sh --env-only writes its TSV, facts and JUnit on this host and touches nothing;
- compare.py renders host vs VMs, capsize vs Docker, and the harness's scenarios per VM and engine
  from a run directory.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VAGRANT_DIR = os.path.join(REPO, "vagrant")
SCRIPTS = sorted(f for f in os.listdir(VAGRANT_DIR) if f.endswith(".sh"))


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: scripts/setup.sh installs it")
    return path


def _vagrant(args, cwd, tmp_path, cache, timeout=120):
    env = dict(os.environ,
               VAGRANT_HOME=str(tmp_path / "vagrant.d"),
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1",
               CAPSIZE_VM_CACHE=str(cache))
    return subprocess.run([_need("vagrant")] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_vagrant_validate_without_box(tmp_path):
    p = _vagrant(["validate"], VAGRANT_DIR, tmp_path, tmp_path / "no-cache")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Vagrantfile validated successfully" in p.stdout


def test_vagrant_validate_with_key_and_both_machines(tmp_path):
    cache = tmp_path / "cache"
    (cache / "ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(cache / "ssh" / "capsize_vagrant_ed25519")], check=True)
    p = _vagrant(["validate"], VAGRANT_DIR, tmp_path, cache)
    assert p.returncode == 0, p.stdout + p.stderr
    # the two machines, cgroup v2 the primary one; nothing is created by `status` without a box
    s = _vagrant(["status", "--machine-readable"], VAGRANT_DIR, tmp_path, cache)
    assert s.returncode == 0, s.stdout + s.stderr
    states = {line.split(",")[1] for line in s.stdout.splitlines() if ",state," in line}
    assert states == {"cgv2", "cgv1"}


def test_vagrant_validate_catches_a_bad_libvirt_option(tmp_path):
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work, ignore=shutil.ignore_patterns(".vagrant", ".wheels"))
    vf = work / "Vagrantfile"
    text = vf.read_text()
    assert 'lv.driver = "qemu"' in text
    vf.write_text(text.replace('lv.driver = "qemu"', 'lv.driver = "qemu"\n    lv.no_such_option = 1'))
    p = _vagrant(["validate"], str(work), tmp_path, tmp_path / "no-cache")
    assert p.returncode != 0
    assert "no_such_option" in p.stdout + p.stderr


def test_vagrant_validate_catches_a_missing_script(tmp_path):
    work = tmp_path / "vagrant"
    shutil.copytree(VAGRANT_DIR, work, ignore=shutil.ignore_patterns(".vagrant", ".wheels"))
    (work / "provision.sh").unlink()
    p = _vagrant(["validate"], str(work), tmp_path, tmp_path / "no-cache")
    assert p.returncode != 0
    assert "provision.sh" in p.stdout + p.stderr


def test_scripts_are_there():
    assert {"build-box.sh", "build-wheels.sh", "ci.sh", "install-vm-tools.sh", "provision.sh",
            "run-checks.sh"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck(script):
    path = os.path.join(VAGRANT_DIR, script)
    assert os.access(path, os.X_OK), f"{script} is not executable"
    p = subprocess.run([_need("shellcheck"), "--external-sources", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    shell = "bash" if open(path).readline().strip().endswith("bash") else "sh"
    n = subprocess.run([shell, "-n", path], capture_output=True, text=True, timeout=30)
    assert n.returncode == 0, n.stderr


def test_shellcheck_is_not_blind(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/bin/sh\nrm -rf $1/*\n')
    p = subprocess.run([_need("shellcheck"), str(bad)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "SC2086" in p.stdout


def _unit(name: str) -> dict[str, list[str]]:
    """Unit file as {Section.Key: [values]} (systemd keys repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in open(os.path.join(VAGRANT_DIR, "units", name)):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def test_units_say_what_the_design_asks():
    sock = _unit("capsized.socket")
    assert sock["Socket.ListenStream"] == ["/run/capsize/capsized.sock"]
    assert sock["Socket.SocketMode"] == ["0660"]
    svc = _unit("capsized.service")
    assert svc["Service.Type"] == ["notify"]
    # socket-activated, with the options an /etc/default/capsized or a drop-in gives (live-restore)
    assert svc["Service.ExecStart"][0].split()[1:] == ["-H", "fd://", "$CAPSIZED_OPTS"]
    assert svc["Service.EnvironmentFile"] == ["-/etc/default/capsized"]
    assert "capsized.socket" in svc["Unit.Requires"][0].split()
    rt = _unit("capsize-runtimed.service")
    assert rt["Service.KillMode"] == ["process"]
    assert rt["Service.Delegate"] == ["yes"]
    for u in (svc, rt):
        assert u["Service.StandardOutput"] == ["journal"]


def test_units_verify():
    tool = _need("systemd-analyze")
    units = [os.path.join(VAGRANT_DIR, "units", u)
             for u in ("capsized.socket", "capsized.service", "capsize-runtimed.service")]
    p = subprocess.run([tool, "verify", "--man=no"] + units, capture_output=True, text=True, timeout=60)
    # The commands live in the VM's /opt/capsize; on this host they are missing, which is the only
    # complaint allowed.
    problems = [l for l in (p.stdout + p.stderr).splitlines()
                if l.strip() and "/opt/capsize/bin/" not in l]
    assert problems == [], "\n".join(problems)


@pytest.mark.privileged
def test_run_checks_env_only_on_this_host(tmp_path):
    out = tmp_path / "host"
    p = subprocess.run([os.path.join(VAGRANT_DIR, "run-checks.sh"), "--env-only", "--name", "host",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [l.split("\t") for l in (out / "checks.tsv").read_text().splitlines()]
    names = [r[0] for r in rows]
    assert names[:3] == ["env.pid1-systemd", "env.cgroup", "env.journald"]
    assert {"docker.e1.tree", "capsize.api", "capsize.runtimed", "harness.docker-systemd",
            "harness.capsize-systemd", "system.cleanup"} <= set(names)
    # seed E2 and the KillMode matrix are harness scenarios (scenarios/systemd), not bash checks
    assert not [n for n in names if ".e2." in n or ".killmode." in n]
    assert "harness.run" in names  # skipped with the others: --env-only does not run the harness
    by = {r[0]: r for r in rows}
    assert by["env.cgroup"][1] == "pass"
    assert all(by[n][1] == "skip" for n in names if not n.startswith("env."))
    suite = ET.parse(out / "junit-systemd.xml").getroot()
    assert suite.get("name") == "systemd-host"
    assert int(suite.get("tests")) == len(rows)
    assert int(suite.get("failures")) == 0
    assert int(suite.get("skipped")) == sum(r[1] == "skip" for r in rows)
    facts = json.loads((out / "facts.json").read_text())
    assert facts["kernel"] == os.uname().release
    assert facts["pid1"] == open("/proc/1/comm").read().strip()


@pytest.mark.privileged
def test_run_checks_fails_on_the_wrong_cgroup(tmp_path):
    out = tmp_path / "o"
    here = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    other = {"v1": "v2", "v2": "v1"}[here]
    p = subprocess.run([os.path.join(VAGRANT_DIR, "run-checks.sh"), "--env-only", "--cgroup", other,
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert f"but {other} asked for" in (out / "checks.tsv").read_text()


def test_provision_refuses_without_cgroup():
    p = subprocess.run([os.path.join(VAGRANT_DIR, "provision.sh")], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--cgroup" in p.stderr


def _write_col(run, col, rows, facts):
    d = run / col
    d.mkdir(parents=True)
    (d / "checks.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    (d / "facts.json").write_text(json.dumps(facts))


def test_compare_renders_host_vs_vms(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("compare", os.path.join(VAGRANT_DIR, "compare.py"))
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    run = tmp_path / "20990101T000000Z"
    (run).mkdir()
    (run / "timings.tsv").write_text("step\tseconds\nbuild-box\t1\ncgv2.up\t200\ncgv2.checks\t40\n"
                                     "cgv1.up\t260\n")
    _write_col(run, "host", [["env.cgroup", "pass", "0.01", "cgroup hybrid"],
                             ["docker.e2.activation", "skip", "0", "needs systemd"]],
               {"kernel": "6.1-host", "cgroup": "hybrid", "pid1": "process_api"})
    _write_col(run, "cgv1", [["env.cgroup", "pass", "0.02", "v1"],
                             ["docker.e2.activation", "fail", "1.5", "rc 1"],
                             ["capsize.e2.activation", "skip", "0", "not built"]],
               {"kernel": "6.1.0-vm", "cgroup": "v1", "pid1": "systemd"})
    _write_col(run, "cgv2", [["env.cgroup", "pass", "0.02", "v2"],
                             ["docker.e2.activation", "pass", "0.31", "ok"],
                             ["capsize.e2.activation", "skip", "0", "not built"]],
               {"kernel": "6.1.0-vm", "cgroup": "v2", "pid1": "systemd"})
    jdir = run / "cgv2" / "harness" / "20990101-000000-scenarios"
    jdir.mkdir(parents=True)
    (jdir / "journal.json").write_text(json.dumps({"runs": [
        {"scenario": "systemd-killmode-process", "engine": "docker-systemd", "status": "pass", "duration": 21.04,
         "checks": [{"status": "pass"}] * 8 + [{"status": "n/a"}]},
        {"scenario": "systemd-killmode-process", "engine": "capsize-systemd", "status": "fail", "duration": 30.5,
         "reason": "1 check(s) failed", "checks": [{"status": "pass"}] * 8 + [{"status": "fail"}]},
        {"scenario": "seed-1-process-tree", "engine": "docker-systemd", "status": "n/a", "checks": []},
    ]}))
    md = compare.render(str(run))
    assert "| check | host | cgv2 | cgv1 |" in md          # host first, then the VMs in run order
    assert "| docker.e2.activation | skip | pass 0.31s | **FAIL** 1.5s |" in md
    assert "| e2.activation | pass 0.31s | skip | **FAIL** 1.5s | skip |" in md
    assert "- `docker.e2.activation` on cgv1: rc 1" in md
    assert "| cgv1.up | 260 |" in md
    # the harness's scenarios per VM and engine; scenarios n/a everywhere are left out
    assert "| scenario | cgv2: docker-systemd | cgv2: capsize-systemd |" in md
    assert "| systemd-killmode-process | pass 21.0s (8/0/1) | **FAIL** 30.5s (8/1/0) |" in md
    assert "seed-1-process-tree" not in md
    assert "- scenario `systemd-killmode-process` on cgv2, engine capsize-systemd: 1 check(s) failed" in md
    assert md.rstrip().endswith("4 passed, 1 failed, 3 skipped over 3 columns (host, cgv2, cgv1)")
    assert compare.main([str(tmp_path / "missing")]) == 2


def _journal(path, runs):
    path.mkdir(parents=True)
    (path / "journal.json").write_text(json.dumps({"runs": runs}))


def _chk(name, status, **kw):
    return dict({"check": name, "status": status, "source": f"scenarios/x.yaml:{len(name)}", "timing": "end"}, **kw)


def test_compare_reports_the_library_and_v2_vs_v1(tmp_path):
    """The whole-library run (library/shard-K journals) and the cgroup tests' JUnit: counts per VM
    and engine, every scenario x engine that differs between cgroup v2 and v1 with the checks that
    say why (a check n/a on one version and held on the other included), the differing tests."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("compare", os.path.join(VAGRANT_DIR, "compare.py"))
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    run = tmp_path / "20990101T000000Z"
    run.mkdir()
    (run / "timings.tsv").write_text("step\tseconds\ncgv2.up\t200\ncgv2.checks\t900\ncgv1.up\t260\n")
    _write_col(run, "cgv2", [["library.run", "fail", "800", "2 shard(s)"]], {"cgroup": "v2", "pid1": "systemd"})
    _write_col(run, "cgv1", [["library.run", "pass", "700", "2 shard(s)"]], {"cgroup": "hybrid", "pid1": "systemd"})
    same = {"scenario": "kill-shim", "engine": "capsize", "status": "pass", "duration": 3, "checks": [_chk("a", "pass")]}
    _journal(run / "cgv2" / "library" / "shard-0" / "t-scenarios", [
        same,
        {"scenario": "seed-1-process-tree", "engine": "docker", "status": "fail", "duration": 4, "reason": "1 check(s) failed",
         "checks": [_chk("process.present(role=container)", "fail", expected="exactly 1", seen="0")]}])
    _journal(run / "cgv2" / "library" / "shard-1" / "t-scenarios", [
        {"scenario": "oom", "engine": "capsize", "status": "pass", "duration": 2,
         "checks": [_chk("container.exit", "pass"), _chk("memory.events", "pass")]}])
    _journal(run / "cgv1" / "library" / "shard-0" / "t-scenarios", [
        same,
        {"scenario": "seed-1-process-tree", "engine": "docker", "status": "pass", "duration": 4,
         "checks": [_chk("process.present(role=container)", "pass")]},
        {"scenario": "oom", "engine": "capsize", "status": "pass", "duration": 2,
         "checks": [_chk("container.exit", "pass"), _chk("memory.events", "n/a", reason="no memory.events on cgroup v1")]}])
    for col, outcome in (("cgv2", ""), ("cgv1", '<skipped message="cgroup v2 only"/>')):
        (run / col / "pytest").mkdir()
        (run / col / "pytest" / "junit-cgroup.xml").write_text(
            '<testsuites><testsuite><testcase classname="tests.lowlevel.test_cgroups" name="test_a"/>'
            f'<testcase classname="tests.lowlevel.test_cgroups" name="test_v2">{outcome}</testcase>'
            '</testsuite></testsuites>')
    md = compare.render(str(run))
    assert "| cgv2: docker | 0 | 1 | 0 | 0 |" in md and "| cgv1: capsize | 2 | 0 | 0 | 0 |" in md
    assert "## cgroup v2 vs v1: scenarios that differ" in md
    rows = [l for l in md.splitlines() if l.startswith("| seed-1-process-tree | docker | cgv2: fail | cgv1: pass |")]
    assert len(rows) == 1 and "expected exactly 1, seen 0" in rows[0]
    oom = [l for l in md.splitlines() if l.startswith("| oom | capsize | cgv2: pass | cgv1: pass |")]
    assert len(oom) == 1 and "memory.events: pass vs n/a" in oom[0] and "no memory.events on cgroup v1" in oom[0]
    assert not [l for l in md.splitlines() if l.startswith("| kill-shim | capsize | cgv2")]
    assert "| cgv2 | 2 | 0 | 0 | 0 |" in md and "| cgv1 | 1 | 0 | 0 | 1 |" in md
    assert "| tests.lowlevel.test_cgroups::test_v2 | pass | skip (cgroup v2 only) |" in md
    assert "- scenario `seed-1-process-tree` on cgv2, engine docker: 1 check(s) failed" in md


@pytest.mark.privileged
def test_run_checks_library_shards_and_cgroup_tests_on_this_host(tmp_path):
    """--library and --cgroup-tests for real, on a two-file library: each shard is its own
    `capsize run` on a fresh private capsize engine (run side by side), the per-engine line reads
    every shard's journal; the cgroup tests run from the tree with pytest. (PID 1 is not systemd
    here, so env.pid1-systemd fails and the run exits 1; the systemd scenario is n/a.)"""
    tree = tmp_path / "tree"
    for rel in ("seed/2-daemon-unreachable.yaml", "lifecycle/kill-container.yaml", "systemd/killmode-process.yaml"):
        (tree / "scenarios" / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(REPO, "scenarios", rel), tree / "scenarios" / rel)
    out = tmp_path / "out"
    venv_bin = os.path.dirname(os.path.abspath(os.sys.executable))
    env = dict(os.environ, PATH=venv_bin + os.pathsep + os.environ["PATH"], CAPSIZE_PY=os.sys.executable,
               CGROUP_TESTS_PATHS=os.path.join(REPO, "tests", "lowlevel", "test_cgroups.py"),
               CGROUP_TESTS_K="test_create_add_pids_destroy")
    p = subprocess.run([os.path.join(VAGRANT_DIR, "run-checks.sh"), "--name", "host", "--out", str(out),
                        "--tree", str(tree), "--library", "--private-engines", "capsize", "--shards", "2",
                        "--cgroup-tests"], capture_output=True, text=True, timeout=240, env=env)
    by = {r.split("\t")[0]: r.split("\t") for r in (out / "checks.tsv").read_text().splitlines()}
    assert p.returncode == 1 and by["env.pid1-systemd"][1] == "fail", p.stdout + p.stderr
    assert by["harness.run"][1] == "pass", by["harness.run"]          # rc 3: the systemd one is n/a here
    assert by["library.run"][1] == "pass", by["library.run"]
    assert by["library.run"][3].startswith("2 shard(s), capsize run rc 0 0 in ")
    shards = sorted((out / "library").iterdir())
    assert [s.name for s in shards] == ["shard-0", "shard-1"]
    # the files dealt round-robin (sorted), each shard's own run directory and JUnit
    dealt = [(s / "files.txt").read_text().split() for s in shards]
    assert sorted(os.path.relpath(f, tree) for d in dealt for f in d) == sorted(
        os.path.join("scenarios", r) for r in ("seed/2-daemon-unreachable.yaml", "lifecycle/kill-container.yaml",
                                               "systemd/killmode-process.yaml"))
    assert all((s / "junit.xml").exists() and glob.glob(str(s / "*" / "journal.json")) for s in shards)
    assert by["harness.capsize"][1] == "pass" and by["harness.capsize"][3] == "2 pass", by["harness.capsize"]
    assert by["cgroup.tests"][1] == "pass" and "1 passed" in by["cgroup.tests"][3], by["cgroup.tests"]
    cases = ET.parse(out / "pytest" / "junit-cgroup.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ["test_create_add_pids_destroy"]
