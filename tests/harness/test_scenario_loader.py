"""Scenario parsing and every validation error: file:line:column, the field, the nearest word; exit 2."""

from __future__ import annotations

import glob
import os
import textwrap

import pytest

from harness.scenario import ScenarioError, load, load_all
from harness.scenario.schema import json_schema_text
from tests.conftest import REPO, VENV_BIN, run

GOOD = textwrap.dedent("""\
    name: demo
    engines: [capsize, docker]
    expected:
      code: {docker: 1, capsize: 0}
    setup:
      - container.run: {name: web, command: [sleep, "1000"]}
    steps:
      - fault.stop: {component: runtime}
        id: down
      - cli: docker stop -t 2 web
        id: stop
        expect: {exit_code: "${code}", stderr: "no exit event", duration: {max: 30s}}
      - fault.start: {component: runtime}
    teardown:
      - container.rm: {name: web, force: true}
    checks:
      - container.state: {name: web, status: exited, exit_code: 137, within: 15s}
      - process.absent: {role: shim, container: web, after: stop}
      - orphans.none: {}
      - cleanup.complete: {}
    """)


def write(tmp_path, text: str, name: str = "s.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_good_scenario_loads_with_per_engine_values(tmp_path):
    sc = load(write(tmp_path, GOOD))
    assert sc.engines == ["capsize", "docker"]
    assert sc.by_engine["docker"].steps[1].expect.exit_code == 1
    assert sc.by_engine["capsize"].steps[1].expect.exit_code == 0
    docker = sc.by_engine["docker"]
    assert docker.steps[1].params == ["docker", "stop", "-t", "2", "web"]
    assert docker.steps[1].expect.duration.max == 30.0
    checks = {c.kind: c for c in docker.checks}
    assert checks["container.state"].within == 15.0 and checks["container.state"].timing == ("end", None)
    assert checks["process.absent"].timing == ("after", "stop")
    assert checks["cleanup.complete"].timing == ("after", "teardown")


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_expected_values_per_cgroup_version(tmp_path, monkeypatch, layout):
    """``engine@v2`` / ``default@v1`` keys: the host's cgroup version (runtime.lowlevel.cgroups.layout,
    hybrid is v1) picks the value, most specific first (engine@vN, engine, default@vN, default)."""
    from harness.scenario import loader
    from runtime.lowlevel.cgroups import layout as real_layout
    assert real_layout() in ("v1", "v2")
    monkeypatch.setattr(loader, "cgroup_layout", lambda: layout)
    text = GOOD.replace("code: {docker: 1, capsize: 0}", "code: {docker@v2: 2, docker: 1, default@v1: 5, default: 0}")
    sc = load(write(tmp_path, text))
    assert sc.by_engine["docker"].steps[1].expect.exit_code == (2 if layout == "v2" else 1)
    assert sc.by_engine["capsize"].steps[1].expect.exit_code == (0 if layout == "v2" else 5)
    for bad in ("docker@v3", "dockr@v2", "default@"):
        with pytest.raises(ScenarioError, match=f"'{bad}' is not an engine .*optionally @v1 or @v2"):
            load(write(tmp_path, GOOD.replace("code: {docker: 1,", f"code: {{{bad}: 1,"), f"{bad}.yaml"))


BAD = [
    # (replace old -> new in GOOD, expected message, line, column)
    ("name: demo", "name: Demo", "name: String should match pattern", 1, 7),
    ("engines: [capsize, docker]", "engines: [capsize, dockr]", "(did you mean 'docker'?)", 2, 20),
    ("\nsetup:", "\nsetpu:", "unknown field 'setpu' (did you mean 'setup'?)", 5, 1),
    ("  - container.run:", "  - contaner.run:", "unknown action or field 'contaner.run' (did you mean 'container.run'?)", 6, 5),
    ("{name: web, command", "{nme: web, command", "unknown field 'nme' (did you mean 'name'?)", 6, 21),
    ("status: exited,", "status: exitd,", "(did you mean 'exited'?)", 17, 42),
    ("within: 15s", "within: 15q", "'15q' is not a duration", 17, 74),
    ('"${code}"', '"${cod}"', "${cod} is not in expected (did you mean 'code'?)", 12, 25),
    ("{docker: 1, capsize: 0}", "{docker: 1}", "expected.code has no value for engine capsize", 12, 25),
    ("stderr: \"no", "stder: \"no", "unknown field 'stder' (did you mean 'stderr'?)", 12, 36),
    ("container: web, after", "container: wbe, after", "no container 'wbe' is created by this scenario (did you mean 'web'?)", 18, 21),
    ("after: stop}", "after: sotp}", "no step with id 'sotp' (did you mean 'stop'?)", 18, 57),
    ("{component: runtime}\n    id: down", "{component: runtim}\n    id: down", "(did you mean 'runtime'?)", 8, 29),
    ("id: stop", "id: down", "'down' is used twice", 11, 9),
    ("    id: down\n", "    id: down\n    id: again\n", "duplicate key 'id' (first at line 9)", 10, 5),
    ("cli: docker stop", "cli: dockr stop", "start the command with 'docker'", 10, 10),
    ("[sleep, \"1000\"]}", "[sleep, \"1000\"}", "YAML:", 6, 55),
    ("  - orphans.none: {}", "  - orphans.none: {}\n  - sleep: 1s", "unknown check or field 'sleep'", 20, 5),
    ("  - fault.start: {component: runtime}", "  - fault.start: {component: shim}", "Input should be 'daemon' or 'runtime'", 13, 30),
    ("  - fault.start: {component: runtime}", "  - fault.kill: {component: shim}", "component shim needs container: <name>", 13, 17),
    ("  - fault.start: {component: runtime}", "  - fault.kill: {component: lowlevel}",
     "component lowlevel exists only on engine capsize", 13, 29),
    ("  - fault.start: {component: runtime}", "  - fault.service.stop: {unit: docker.service}",
     "fault.service.stop exists only on engine docker-systemd", 13, 5),
    ("command: [sleep, \"1000\"]}", "command: [sleep, \"1000\"], failpoints: {shim.delete: \"1*delay(2s)\"}}",
     "failpoints exist only on engine capsize", 6, 70),
    ("    id: stop\n", "    id: stop\n    background: true\n  - await: stp\n",
     "no background step with id 'stp'", 13, 12),
    ("  - fault.start: {component: runtime}", "  - fault.start: {component: runtime}\n    sleep: 1s",
     "a step has exactly one of", 13, 5),
    ("  - fault.start: {component: runtime}", "  - fault.kill: {component: daemon, signal: SIGNOPE}",
     "'SIGNOPE' is not a signal", 13, 45),
    ("process.absent: {role: shim,", "process.absent: {role: shim, pattern: '(', ",
     "bad regex '('", 18, 21),
]


@pytest.mark.parametrize("old,new,message,line,column", BAD, ids=[b[2][:40] for b in BAD])
def test_each_validation_error_names_file_line_column(tmp_path, old, new, message, line, column):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert message in str(e.value)
    assert (e.value.line, e.value.column) == (line, column), str(e.value)
    assert str(e.value).startswith(f"{path}:{line}:{column}: ")
    assert "\n" not in str(e.value)


def test_not_a_mapping_and_unreadable(tmp_path):
    with pytest.raises(ScenarioError, match=r":1:1: a scenario is a YAML mapping"):
        load(write(tmp_path, "- just\n- a list\n"))
    from runtime.errors import InvalidArgument
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        load_all([str(tmp_path / "missing.yaml")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidArgument, match="no scenario files"):
        load_all([str(empty)])


def test_duplicate_scenario_names(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ScenarioError, match="name 'demo' is used by"):
        load_all([str(tmp_path)])


def test_the_first_error_in_the_file_is_reported(tmp_path):
    # three bad top-level fields before a bad step: the first by position wins
    text = GOOD.replace("name: demo", "name: Bad Name!", 1)
    path = write(tmp_path, text + "timeout: forever\n")
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert e.value.line == 1 and "name:" in str(e.value), str(e.value)


def test_every_bad_file_is_reported(tmp_path):
    from harness.scenario.loader import ScenarioErrors
    write(tmp_path, GOOD.replace("name: demo", "name: Bad Name!", 1), "a.yaml")
    write(tmp_path, GOOD.replace("name: demo", "name: other", 1), "b.yaml")
    write(tmp_path, GOOD.replace("name: demo", "name: third\ndescripton: x", 1), "c.yaml")
    with pytest.raises(ScenarioErrors) as e:
        load_all([str(tmp_path)])
    assert [os.path.basename(err.path) for err in e.value.errors] == ["a.yaml", "c.yaml"]
    r = _capsize("validate", str(tmp_path))
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 2 and all(line.startswith("capsize: ") for line in lines), r.stderr
    assert "a.yaml:1:" in lines[0] and "c.yaml:2:1: unknown field 'descripton'" in lines[1]


def _capsize(*args, **kw):
    return run([os.path.join(VENV_BIN, "capsize"), *args], **kw)


def test_cli_bad_input_one_line_exit_2_nothing_started(tmp_path):
    path = write(tmp_path, GOOD.replace("status: exited,", "status: exitd,"))
    out = tmp_path / "runs"
    before = set(glob.glob("/tmp/capsize-*"))
    for argv in (["validate", path], ["run", "--engine", "docker", "--out", str(out), path], ["list", path]):
        r = _capsize(*argv)
        assert r.returncode == 2, r
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"capsize: {path}:17:42: "), r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
    assert not out.exists()  # no run directory: nothing started
    assert set(glob.glob("/tmp/capsize-*")) == before
    r = _capsize("run", "--engine", "nope", path)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_validate_and_list_the_repository_scenarios():
    r = _capsize("validate", os.path.join(REPO, "scenarios"))
    assert r.returncode == 0, r.stderr
    assert "seed-3-stop-with-runtime-down" in r.stdout
    r = _capsize("list", os.path.join(REPO, "scenarios"))
    assert r.returncode == 0 and "seed-1-process-tree" in r.stdout and "capsize,docker" in r.stdout


def test_seed_scenarios_exist_for_experiments_1_3_4():
    names = {s.name for s in load_all([os.path.join(REPO, "scenarios", "seed")])}
    assert {"seed-1-process-tree", "seed-3-stop-with-runtime-down", "seed-4-both-daemons-down"} <= names


def test_committed_json_schema_is_current():
    with open(os.path.join(REPO, "scenarios", "scenario.schema.json")) as f:
        assert f.read() == json_schema_text(), "run: capsize schema --out scenarios/scenario.schema.json"


def test_lowlevel_failpoints_take_host_terms(tmp_path):
    """``lowlevel.<op>`` failpoints reach capsize-runc as CAPSIZE_HOST_FAILPOINTS (runtime/host.py):
    only ``delay(N)`` / ``error(ERRNO)`` are valid; a fail(9) term is rejected where it is written."""
    from types import SimpleNamespace

    from harness.verbs.container import _create_kwargs
    text = GOOD.replace("engines: [capsize, docker]", "engines: [capsize]").replace(
        'command: [sleep, "1000"]}', 'command: [sleep, "1000"], failpoints: {lowlevel.pivot_root: "delay(3)"}}', 1)
    sc = load(write(tmp_path, text))
    spec = sc.by_engine["capsize"].setup[0].params
    ctx = SimpleNamespace(engine=SimpleNamespace(default_container_runtime=lambda: None))
    assert _create_kwargs(ctx, spec)["labels"] == {"io.capsize.lowlevel.failpoint.pivot_root": "delay(3)"}
    for bad in ("1*delay(3s)", "delay(soon)", "error(ebusy)", "panic"):
        with pytest.raises(ScenarioError) as e:
            load(write(tmp_path, text.replace('"delay(3)"', f'"{bad}"'), name="bad.yaml"))
        assert "a low-level (host) failpoint is delay(SECONDS) or error(ERRNO)" in str(e.value), bad
        assert e.value.line == 6


def test_shim_turns_lowlevel_annotations_into_host_failpoints():
    from runtime.errors import InvalidArgument
    from runtime.shim.failpoints import host_failpoints
    ann = {"io.capsize.lowlevel.failpoint.pivot_root": "delay(3)", "io.capsize.lowlevel.failpoint.umount": "error(EBUSY)",
           "io.capsize.shim.failpoint.start": "1*delay(2s)", "other": "x"}
    assert host_failpoints({"annotations": ann}) == "pivot_root=delay(3);umount=error(EBUSY)"
    assert host_failpoints({}) == ""
    with pytest.raises(InvalidArgument):
        host_failpoints({"annotations": {"io.capsize.lowlevel.failpoint.pivot_root": "1*delay(3s)"}})


def test_container_run_takes_pid_mode_and_init(tmp_path):
    """``pid_mode: host`` and ``init: true`` become the SDK's ``pid_mode``/``init`` (docker run --pid
    host --init); any other pid mode is refused where it is written."""
    from types import SimpleNamespace

    from harness.verbs.container import _create_kwargs
    text = GOOD.replace('command: [sleep, "1000"]}', 'command: [sleep, "1000"], pid_mode: host, init: true}', 1)
    spec = load(write(tmp_path, text)).by_engine["capsize"].setup[0].params
    ctx = SimpleNamespace(engine=SimpleNamespace(default_container_runtime=lambda: None))
    kw = _create_kwargs(ctx, spec)
    assert (kw["pid_mode"], kw["init"]) == ("host", True)
    plain = load(write(tmp_path, GOOD, name="plain.yaml")).by_engine["capsize"].setup[0].params
    assert "pid_mode" not in _create_kwargs(ctx, plain) and "init" not in _create_kwargs(ctx, plain)
    with pytest.raises(ScenarioError):
        load(write(tmp_path, text.replace("pid_mode: host", "pid_mode: container:x"), name="bad.yaml"))
