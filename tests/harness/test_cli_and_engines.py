"""`capsize run` (journal, JUnit, exit codes), `capsize engine`, the pytest plugin, engine availability,
and the repository's scenarios on the docker engine."""

from __future__ import annotations

import glob
import json
import os
import xml.etree.ElementTree as ET

import pytest

from harness.engines import engine_class
from harness.engines.capsize import _tier_missing
from harness.scenario import find_files
from tests.conftest import REPO, VENV_BIN, reap_children, run
from tests.harness.conftest import capsize, journal_of, needs_docker

SMALL = """\
name: small
engines: [docker, docker-systemd]
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
steps:
  - cli: docker ps --format "{{.Names}}"
    expect: {stdout: web}
teardown:
  - container.rm: {name: web, force: true}
checks:
  - container.state: {name: web, status: running}
  - cleanup.complete: {}
"""


def test_engine_availability_says_why():
    for name in ("capsize", "docker", "docker-systemd"):
        why = engine_class(name).unavailable(None)
        assert why is None or why.startswith("engine unavailable: ")
    why = engine_class("capsize").unavailable(None)
    if _tier_missing("daemon"):
        assert why.startswith("engine unavailable: capsized not built yet")
    elif _tier_missing("runtime"):
        assert why.startswith("engine unavailable: capsize-runtimed not built yet")
    if not os.path.isdir("/run/systemd/system"):
        assert "systemd is not PID 1" in engine_class("docker-systemd").unavailable(None)


@pytest.mark.reference
@needs_docker
def test_run_writes_journal_junit_summary_and_exit_code(tmp_path):
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL)
    junit = tmp_path / "out.xml"
    r = capsize("run", "--engine", "docker", "--engine", "docker-systemd", "--out", str(tmp_path / "runs"),
                "--junit", str(junit), str(scenario), timeout=180)
    reap_children()
    systemd = engine_class("docker-systemd").unavailable(None) is None
    assert r.returncode == (0 if systemd else 3), r.stdout + r.stderr  # n/a is not "every check held"
    run_dir = glob.glob(str(tmp_path / "runs" / "*-small"))[0]
    j = journal_of(run_dir)
    assert j["schema"] == "capsize.journal/1" and j["run"]["finished"]
    docker = [e for e in j["runs"] if e["engine"] == "docker"][0]
    assert docker["status"] == "pass" and docker["steps"][1]["stdout"].strip() == "web"
    assert {"faults", "orphans", "events", "snapshots", "logs", "checks"} <= set(docker)
    if not systemd:
        na = [e for e in j["runs"] if e["engine"] == "docker-systemd"][0]
        assert na["status"] == "n/a" and "systemd is not PID 1" in na["reason"]
        assert all(c["status"] == "n/a" for c in na["checks"])
    for path in (junit, os.path.join(run_dir, "junit.xml")):
        cases = ET.parse(path).getroot().findall("testcase")
        assert [c.get("name") for c in cases] == ["small[docker]", "small[docker-systemd]"]
    assert "small" in open(os.path.join(run_dir, "summary.txt")).read()
    # a failing check makes exit code 1
    scenario.write_text(SMALL.replace("status: running", "status: paused").replace(", docker-systemd", ""))
    r = capsize("run", "-q", "--engine", "docker", "--out", str(tmp_path / "runs"), str(scenario), timeout=180)
    reap_children()
    assert r.returncode == 1 and "FAIL" in r.stdout


@pytest.mark.privileged
@pytest.mark.parametrize("engine", [
    pytest.param(None, id="default-capsize"),
    pytest.param("docker", marks=[pytest.mark.reference, needs_docker], id="docker")])
def test_engine_up_env_status_down(engine, leak_scope):
    """`capsize engine up` starts capsize's own engine unless --engine says otherwise (as `run`)."""
    import tempfile
    root = leak_scope.own_path(tempfile.mkdtemp(prefix="cz-eng-", dir="/tmp"))  # short: socket paths are limited
    which = ["--engine", engine] if engine else []
    r = capsize("engine", "up", *which, "--root", root, timeout=120)
    try:
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("export DOCKER_HOST=unix://")
        assert f"engine {engine or 'capsize'} is up in {root}" in r.stderr, r.stderr
        host = r.stdout.strip().split("=", 1)[1]
        env = capsize("engine", "env", *which, "--root", root)
        assert env.stdout.strip() == f"export DOCKER_HOST={host}"
        assert capsize("engine", "status", *which, "--root", root).returncode == 0
        docker = run(["docker", "run", "-d", "--name", "poke", "busybox", "sleep", "100"],
                     env={**os.environ, "DOCKER_HOST": host}, timeout=60)
        assert docker.returncode == 0, docker.stderr
        version = run(["docker", "version", "--format", "{{.Server.Version}}"],
                      env={**os.environ, "DOCKER_HOST": host}, timeout=60)
        assert version.returncode == 0, version.stderr
        again = capsize("engine", "up", *which, "--root", root)
        assert again.returncode == 5 and "already up" in again.stderr
    finally:
        down = capsize("engine", "down", *which, "--root", root, timeout=180)
        reap_children()
    assert down.returncode == 0, down.stderr
    assert not os.path.exists(root)
    assert capsize("engine", "status", *which, "--root", root).returncode == 3


@pytest.mark.reference
@needs_docker
def test_pytest_collects_one_item_per_scenario_and_engine(tmp_path):
    """The plugin comes from the ``pytest11`` entry point: a plain ``pytest FILE`` collects it."""
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "small.yaml").write_text(SMALL)
    (d / "broken.yaml").write_text(SMALL.replace("status: running", "status: runing"))
    r = run([os.path.join(VENV_BIN, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(d / "small.yaml"), "--capsize-out", str(tmp_path / "runs"), "-rs"],
            cwd=str(tmp_path), timeout=240)
    reap_children()
    assert r.returncode == 0, r.stdout[-3000:]
    assert "1 passed" in r.stdout
    if engine_class("docker-systemd").unavailable(None):
        assert "1 skipped" in r.stdout and "systemd is not PID 1" in r.stdout
    assert glob.glob(str(tmp_path / "runs" / "*-pytest" / "journal.json"))
    r = run([os.path.join(VENV_BIN, "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(d / "broken.yaml")], cwd=str(tmp_path), timeout=60)
    assert r.returncode == 2 and "broken.yaml:11:" in r.stdout and "did you mean 'running'" in r.stdout


REPO_SCENARIOS = [os.path.relpath(p, REPO) for p in find_files([os.path.join(REPO, "scenarios")])]


@pytest.mark.reference
@pytest.mark.slow
@needs_docker
@pytest.mark.parametrize("path", REPO_SCENARIOS)
def test_repository_scenarios_pass_on_docker(tmp_path, path):
    """Every scenario in scenarios/ that applies to Docker records its measured behaviour and
    passes on it (capsize-only ones, e.g. lowlevel-killed-mid-create, say why in their description)."""
    from harness.scenario import load
    if "docker" not in load(os.path.join(REPO, path)).engines:
        pytest.skip(f"{path} is capsize only")
    r = capsize("run", "-q", "--engine", "docker", "--out", str(tmp_path), os.path.join(REPO, path), timeout=300)
    reap_children()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    j = journal_of(glob.glob(str(tmp_path / "*"))[0])
    assert [e["status"] for e in j["runs"]] == ["pass"]
    assert json.dumps(j)  # serialisable


@pytest.mark.slow
@pytest.mark.skipif(engine_class("capsize").unavailable(None) is not None,
                    reason=str(engine_class("capsize").unavailable(None)))
def test_seed_process_tree_on_the_capsize_engine(tmp_path):
    """The capsize adapter end to end: its four tiers started privately, seed 1 passes, all removed."""
    path = os.path.join(REPO, "scenarios", "seed", "1-process-tree.yaml")
    r = capsize("run", "-q", "--engine", "capsize", "--out", str(tmp_path), path, timeout=300)
    reap_children()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    entry = journal_of(glob.glob(str(tmp_path / "*"))[0])["runs"][0]
    assert entry["engine"] == "capsize" and entry["status"] == "pass"
    assert not os.path.exists(entry["engine_started"]["record"]["workdir"])


def test_capsize_classifies_capsize_runc_run_by_its_interpreter(tmp_path):
    """capsize-runc is a Python script: ``python3 .../capsize-runc --root ... create`` is the
    lowlevel role (argv[1]), as runc's own argv[0] is; its forked init in the cgroup is the container."""
    from types import SimpleNamespace

    from harness.engines.capsize import CapsizeEngine
    eng = CapsizeEngine(str(tmp_path), SimpleNamespace(live_restore=False, runtime=None))
    argv = ["/venv/bin/python3", "/venv/bin/capsize-runc", "--root", f"{tmp_path}/state/runc/capsize", "create", "x"]
    assert eng.classify(10, 1, argv, "0::/") == ("lowlevel", None)
    assert eng.classify(11, 10, argv, "0::/capsize/abc") == ("container", "abc")
    assert eng.classify(12, 1, ["/usr/sbin/runc", "init"], "0::/") == ("lowlevel", None)
    assert eng.classify(13, 1, ["/venv/bin/python3", "/venv/bin/capsize", "run"], "0::/") == (None, None)
