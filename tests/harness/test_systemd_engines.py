"""The engines under systemd (docker-systemd, capsize-systemd) and their vocabulary, on a host
without systemd: availability says why, the systemd scenarios load, validate and run as n/a,
validation errors point at file:line:column, drop-ins are undone by the ledger (also by
``capsize recover``), journald entries are normalised, service.state is n/a elsewhere.
The scenarios themselves run for real in the VMs (vagrant/ci.sh)."""

from __future__ import annotations

import datetime
import glob
import os
import textwrap
import xml.etree.ElementTree as ET

import pytest

from harness import checks, ledger
from harness.context import RunContext
from harness.engines import NAMES, engine_class
from harness.engines import systemd as sd
from harness.scenario import ScenarioError, load, load_all
from harness.scenario import models as m
from tests.conftest import REPO
from tests.harness.conftest import capsize, journal_of

SYSTEMD_DIR = os.path.join(REPO, "scenarios", "systemd")
NO_SYSTEMD = not os.path.isdir("/run/systemd/system")
needs_no_systemd = pytest.mark.skipif(not NO_SYSTEMD, reason="systemd is PID 1 here: the n/a path does not apply")


def test_both_engines_are_registered():
    assert {"docker-systemd", "capsize-systemd"} <= set(NAMES)
    # the capability is declared on the engine classes (SystemdUnits), nowhere else
    from harness.engines import engines_with
    assert set(engines_with("systemd")) == {"docker-systemd", "capsize-systemd"}
    assert engine_class("capsize-systemd").__name__ == "CapsizeSystemdEngine"


@needs_no_systemd
@pytest.mark.parametrize("name", ["docker-systemd", "capsize-systemd"])
def test_unavailable_without_systemd_says_why(name):
    why = engine_class(name).unavailable(m.EngineOptions())
    assert why == f"engine unavailable: systemd is not PID 1 here ({name} is for the VMs)"


def test_capsize_systemd_maps_roles_to_the_repository_units(tmp_path):
    eng = engine_class("capsize-systemd")(str(tmp_path), m.EngineOptions())
    assert eng.unit_of("daemon") == "capsized.service"
    assert eng.unit_of("runtime") == "capsize-runtimed.service"
    assert eng.unit_of("daemon", socket=True) == "capsized.socket"
    for unit in ("capsized.service", "capsize-runtimed.service", "capsized.socket"):
        assert os.path.exists(os.path.join(REPO, "vagrant", "units", unit))
    # the API socket is the socket unit's ListenStream (systemd is asked where it runs)
    listen = [line.split("=", 1)[1].strip() for line in open(os.path.join(REPO, "vagrant", "units", "capsized.socket"))
              if line.startswith("ListenStream=")]
    if NO_SYSTEMD:
        assert eng.api_socket() == listen[0] and eng.docker_host == "unix://" + listen[0]
    # shims, containers and the runtime's events are found as on the capsize engine, under /run/capsize
    assert eng.state == "/run/capsize" and eng.runtime_address == "/run/capsize/runtimed.sock"
    assert eng.runtime_events_argv()[-2:] == ["--address", "/run/capsize/runtimed.sock"]
    assert [(s.component, s.path, s.format) for s in eng.log_sources()] == [
        ("daemon", "capsized.service", "journald"), ("runtime", "capsize-runtimed.service", "journald")]
    with pytest.raises(Exception, match="only the daemon has a socket unit"):
        eng.unit_of("runtime", socket=True)
    docker = engine_class("docker-systemd")(str(tmp_path), m.EngineOptions())
    assert (docker.unit_of("daemon"), docker.unit_of("runtime"), docker.unit_of("daemon", socket=True)) == \
        ("docker.service", "containerd.service", "docker.socket")


def test_close_removes_nothing_when_the_scenario_made_no_container(tmp_path):
    eng = engine_class("capsize-systemd")(str(tmp_path), m.EngineOptions())
    assert eng.close() == []  # no tracked container: the system's daemons are not even asked


def test_the_systemd_scenarios_load_for_both_engines():
    loaded = load_all([SYSTEMD_DIR])
    names = {s.name for s in loaded}
    assert names == {"systemd-e2-activation", "systemd-e2-cannot-connect", "systemd-killmode-process",
                     "systemd-killmode-control-group"}
    for s in loaded:
        assert s.engines == ["docker-systemd", "capsize-systemd"]
    kc = {s.name: s for s in loaded}["systemd-killmode-control-group"].by_engine["capsize-systemd"]
    dropin = kc.steps[0]
    assert dropin.action == "fault.service.dropin"
    assert dict(dropin.params.settings) == {"KillMode": "control-group"}
    assert dropin.params.resolve(engine_class("capsize-systemd")("/tmp/x", m.EngineOptions())) == \
        "capsize-runtimed.service"
    assert dropin.params.resolve(engine_class("docker-systemd")("/tmp/x", m.EngineOptions())) == "containerd.service"
    after_teardown = [c for c in kc.checks if c.kind == "service.state" and c.timing == ("after", "teardown")]
    assert after_teardown and after_teardown[0].params.properties == {"KillMode": "process"}


@needs_no_systemd
def test_capsize_run_of_the_systemd_scenarios_is_na_here(tmp_path):
    junit = tmp_path / "j.xml"
    r = capsize("run", "-q", "--engine", "docker-systemd", "--engine", "capsize-systemd", "--out",
                str(tmp_path / "runs"), "--junit", str(junit), SYSTEMD_DIR, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr  # n/a, not a failure
    j = journal_of(glob.glob(str(tmp_path / "runs" / "*-systemd"))[0])
    assert len(j["runs"]) == 8
    for e in j["runs"]:
        assert e["status"] == "n/a"
        assert e["reason"] == f"engine unavailable: systemd is not PID 1 here ({e['engine']} is for the VMs)"
        assert e["checks"] and all(c["status"] == "n/a" for c in e["checks"])
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert len(cases) == 8 and all(c.find("skipped") is not None for c in cases)
    assert not glob.glob("/run/systemd/system/*.d/50-capsize-*")


SCEN = textwrap.dedent("""\
    name: svc
    engines: [docker-systemd, capsize-systemd]
    setup:
      - container.run: {name: web, command: [sleep, "1000"]}
    steps:
      - fault.service.dropin: {component: runtime, settings: {KillMode: control-group}}
        id: dropin
      - fault.service.restart: {component: runtime}
        id: restarted
    checks:
      - service.state: {component: runtime, properties: {ActiveState: active}, entered_since: restarted}
      - cleanup.complete: {}
    """)

BAD = [
    # (old -> new in SCEN, message, line, column)
    ("engines: [docker-systemd, capsize-systemd]", "engines: [docker-systemd, capsize]",
     "fault.service.dropin exists only on engine docker-systemd, capsize-systemd", 6, 5),
    ("entered_since: restarted}", "entered_since: restared}",
     "entered_since: no step with id 'restared' (did you mean 'restarted'?)", 11, 91),
    ("{component: runtime}\n", "{component: runtime, unit: containerd.service}\n",
     "name the unit with exactly one of unit, component", 8, 28),
    ("{component: runtime}\n", "{component: runtime, socket: true}\n",
     "socket: true is for component: daemon", 8, 28),
    ("settings: {KillMode: control-group}", "settings: {}", "give at least one setting", 6, 27),
    ("settings: {KillMode: control-group}", "settings: {killMode: control-group}", "should match pattern", 6, 69),
    ("{component: runtime, properties: {ActiveState: active}, entered_since: restarted}", "{component: runtime}",
     "give properties, entered_since or both", 11, 20),
    ("fault.service.restart: {component: runtime}", "fault.service.restart: {unit: containerd}",
     "String should match pattern", 8, 35),
]


@pytest.mark.parametrize("old,new,message,line,column", BAD, ids=[b[2][:40] for b in BAD])
def test_systemd_vocabulary_errors_name_file_line_column(tmp_path, old, new, message, line, column):
    assert old in SCEN
    path = tmp_path / "s.yaml"
    path.write_text(SCEN.replace(old, new, 1))
    with pytest.raises(ScenarioError) as e:
        load(str(path))
    assert message in str(e.value), str(e.value)
    assert (e.value.line, e.value.column) == (line, column), str(e.value)
    assert str(e.value).startswith(f"{path}:{line}:{column}: ")


def test_service_state_on_an_engine_without_systemd_is_a_load_error_unless_restricted(tmp_path):
    text = textwrap.dedent("""\
        name: s2
        engines: [capsize, capsize-systemd]
        steps:
          - sleep: 0.1
        checks:
          - service.state: {component: daemon, properties: {ActiveState: active}}
        """)
    path = tmp_path / "s2.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load(str(path))
    assert (e.value.line, e.value.column) == (6, 5)
    assert "service.state exists only on engines docker-systemd, capsize-systemd" in str(e.value)
    path.write_text(text.replace("{ActiveState: active}}", "{ActiveState: active}, engines: [capsize-systemd]}"))
    assert load(str(path)).engines == ["capsize", "capsize-systemd"]


def test_service_state_is_na_on_an_engine_without_units(tmp_path):
    eng = engine_class("capsize")(str(tmp_path), m.EngineOptions())
    ctx = RunContext("r", None, eng, str(tmp_path), None)
    spec = m.CheckSpec.model_validate({"service.state": {"component": "runtime", "properties": {"KillMode": "process"}}})
    v = checks.evaluate_once(ctx, spec)
    assert v.status == checks.NA and v.reason == "engine capsize has no systemd units"


def test_a_dropin_that_cannot_be_loaded_is_removed_again(tmp_path, monkeypatch):
    """write_dropin writes, then daemon-reload; without systemd the reload fails: Unavailable, and
    nothing is left (the real DROPIN_ROOT is never touched on this host)."""
    if not NO_SYSTEMD:
        pytest.skip("systemd is PID 1 here: the reload would succeed")
    from runtime.errors import Unavailable
    monkeypatch.setattr(sd, "DROPIN_ROOT", str(tmp_path))
    with pytest.raises(Unavailable, match="daemon-reload"):
        sd.write_dropin("containerd.service", "50-capsize-x", "Service", {"KillMode": "control-group"})
    assert not os.path.exists(tmp_path / "containerd.service.d" / "50-capsize-x.conf")


def test_ledger_undoes_a_dropin_also_through_recover(tmp_path):
    unit_dir = tmp_path / "containerd.service.d"
    unit_dir.mkdir()
    path = unit_dir / "50-capsize-r.conf"
    path.write_text("[Service]\nKillMode=control-group\n")
    run_dir = tmp_path / "run"
    led = ledger.Ledger(str(run_dir / ledger.LEDGER))
    led.apply("r", "fault.service.dropin", {"unit": "containerd.service"},
              {"kind": "dropin", "path": str(path), "unit": "containerd.service"})
    done, problems = ledger.recover(str(run_dir))
    assert not path.exists() and not unit_dir.exists()  # the drop-in and its empty directory
    assert len(done) == 1 and f"removed {path}" in done[0]
    assert ledger.outstanding(ledger.read(str(run_dir / ledger.LEDGER))) == []
    assert ledger.undo({"kind": "dropin", "path": str(path)}) == f"{path} is gone: nothing to do"


def test_journald_entries_are_normalised(tmp_path):
    from harness.observe.logs import LogCollector
    lc = LogCollector([])
    ts = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
    rec = lc.journal_record("runtime", {"MESSAGE": '{"time": "2026-11-29T12:00:00.5Z", "level": "warning", '
                                                   '"msg": "cleaning up dead shim", "component": "runtimed", '
                                                   '"id": "abc"}',
                                        "__REALTIME_TIMESTAMP": ts, "_PID": 42}, 0.0)
    assert (rec["component"], rec["level"], rec["msg"]) == ("runtime", "warning", "cleaning up dead shim")
    assert rec["fields"]["id"] == "abc" and rec["fields"]["pid"] == 42 and rec["wall"] == ts.timestamp()
    rec = lc.journal_record("runtime", {"MESSAGE": 'time="2026-11-29T12:00:00Z" level=info msg="starting containerd"',
                                        "__REALTIME_TIMESTAMP": ts}, 0.0)
    assert (rec["level"], rec["msg"]) == ("info", "starting containerd")
    rec = lc.journal_record("daemon", {"MESSAGE": b"plain text line", "__REALTIME_TIMESTAMP": ts}, 0.0)
    assert rec["msg"] == "plain text line" and rec["line"] == "plain text line"


def test_dropin_text_resets_execstart_and_writes_list_values():
    """A drop-in that replaces ExecStart= must clear it first (systemd.service(5): a second
    ExecStart= is an error for Type=notify); list values give one line each, in order."""
    text = sd.dropin_text("Service", {"ExecStart": "/opt/capsize/bin/capsized -H fd:// --live-restore",
                                      "Environment": ["CAPSIZED_OPTS=--live-restore", "A=1"], "Delegate": True},
                          reset=["ExecStart"])
    lines = text.splitlines()
    assert lines[1:] == ["[Service]", "ExecStart=", "ExecStart=/opt/capsize/bin/capsized -H fd:// --live-restore",
                         "Environment=CAPSIZED_OPTS=--live-restore", "Environment=A=1", "Delegate=yes"]


def test_dropin_step_params_reset_name_and_several_per_unit():
    from harness.verbs.systemd import FaultDropin, dropin_name
    p = FaultDropin.model_validate({"component": "daemon", "reset": ["ExecStart"],
                                    "settings": {"ExecStart": "/bin/true", "Environment": ["X=1", "Y=2"]}})
    assert p.reset == ["ExecStart"] and p.settings["Environment"] == ["X=1", "Y=2"]
    with pytest.raises(ValueError, match="at least one setting"):
        FaultDropin.model_validate({"component": "daemon"})
    with pytest.raises(ValueError, match="at least one setting"):
        FaultDropin.model_validate({"component": "daemon", "settings": {}})
    # a reset alone is a drop-in, with or without an empty settings mapping
    assert FaultDropin.model_validate({"component": "daemon", "settings": {}, "reset": ["ExecStart"]}).reset == ["ExecStart"]
    with pytest.raises(ValueError, match="one line only"):
        FaultDropin.model_validate({"component": "daemon", "settings": {"Environment": ["A=1\nB=2"]}})
    # two steps of one run: two files side by side, not one overwritten
    a, b = dropin_name("run 1", "live-restore"), dropin_name("run 1", "killmode")
    assert a != b and a == "50-capsize-run-1-live-restore"
    assert sd.dropin_path("capsized.service", a) != sd.dropin_path("capsized.service", b)
