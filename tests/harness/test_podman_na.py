"""A scenario that needs a capability an engine lacks by design (Podman: no runtime daemon) is n/a
on that engine with the reason, never an error; one it has runs there; the capability the engine
lacks without a declared reason stays a load error."""

from __future__ import annotations

import textwrap

import pytest

from harness.engines import capabilities, engine_class
from harness.runner import run_scenario
from harness.scenario import ScenarioError, load

NEEDS_RUNTIME = textwrap.dedent("""\
    name: needs-runtime
    engines: [docker, podman]
    expected:
      code: {docker: 137}
    setup:
      - container.run: {name: web, command: [sleep, "1000"]}
    steps:
      - fault.stop: {component: runtime}
    checks:
      - container.state: {name: web, exit_code: "${code}"}
""")


def test_podman_declares_what_it_lacks():
    cls = engine_class("podman")
    assert capabilities("podman") == {"role:daemon", "role:shim", "role:container"}
    assert "no runtime daemon" in cls.missing["role:runtime"]


def test_scenario_needing_the_runtime_is_na_on_podman(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(NEEDS_RUNTIME)
    loaded = load(str(p))
    assert list(loaded.by_engine) == ["docker"] and loaded.engines == ["docker", "podman"]
    why = loaded.not_applicable["podman"]
    assert why.startswith("steps.0:") and "engine podman lacks it (Podman has no runtime daemon" in why
    entry = run_scenario(loaded, "podman", str(tmp_path), None)
    assert entry["status"] == "n/a" and entry["reason"] == why
    assert [c["status"] for c in entry["checks"]] == ["n/a"]


def test_scenario_podman_can_run_needs_its_values(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(NEEDS_RUNTIME.replace("fault.stop: {component: runtime}", "fault.stop: {component: daemon}"))
    with pytest.raises(ScenarioError, match="expected.code has no value for engine podman"):
        load(str(p))


def test_lowlevel_on_docker_stays_an_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(NEEDS_RUNTIME.replace("fault.stop: {component: runtime}", "fault.kill: {component: lowlevel}")
                 .replace("[docker, podman]", "[docker]"))
    with pytest.raises(ScenarioError, match="only on engine"):
        load(str(p))
