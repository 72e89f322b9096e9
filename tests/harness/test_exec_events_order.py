"""events.order with `execs: true` on both engines: each exec's create → start → exit on the
daemon's and the runtime's streams, by exec id; a container without execs FAILS it, and an
exec's /tasks/exit never counts as the container's own exit."""

from __future__ import annotations

import pytest

from tests.harness.conftest import by_id, engine_params, run_text

SCENARIO = """\
name: exec-events-order
engines: [capsize, docker]
setup:
  - container.run: {name: box, command: [sleep, "1000"]}
  - container.run: {name: idle, command: [sleep, "1000"]}
steps:
  - container.exec: {name: box, command: [sh, -c, "exit 3"]}
    expect: {outcome: ok, exit_code: 3}
  - container.exec: {name: box, command: ["true"]}
    expect: {outcome: ok, exit_code: 0}
  - sleep: 0.5s
    id: execs-done
teardown:
  - container.rm: {name: box, force: true}
  - container.rm: {name: idle, force: true}
checks:
  - {id: execs, events.order: {container: box, execs: true}, within: 5s, after: execs-done}
  - {id: no-execs, events.order: {container: idle, execs: true}, after: execs-done}
  - {id: box-not-exited-yet, events.order: {container: box, phases: [create, start, exit]}, after: execs-done}
  - {id: box-whole-life, events.order: {container: box}}
"""


@pytest.mark.parametrize("engine", engine_params())
def test_exec_events_in_order_per_exec(tmp_path, engine):
    entry = run_text(tmp_path, SCENARIO, engine)
    c = by_id(entry)
    got = {k: c[k]["status"] for k in ("execs", "no-execs", "box-not-exited-yet", "box-whole-life")}
    assert got == {"execs": "pass", "no-execs": "fail", "box-not-exited-yet": "fail", "box-whole-life": "pass"}, \
        {k: (c[k]["status"], c[k]["seen"]) for k in c}
    # two execs, each on each stream the engine has
    execs = {label.rsplit(" ", 1)[1] for label in c["execs"]["seen"] if " exec " in label}
    assert len(execs) == 2, c["execs"]["seen"]


def test_an_exec_has_no_delete_phase(tmp_path):
    from harness.scenario.loader import ScenarioError, load
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps: []\nchecks:\n  - events.order: {container: a, execs: true, phases: [create, delete]}\n")
    with pytest.raises(ScenarioError):
        load(str(path))
