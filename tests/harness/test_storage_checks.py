"""volume.content and cleanup.complete's `volume` kind on both engines: each passes when it should
and FAILS on a crafted bad case (a wrong content, a missing file, a volume left behind)."""

from __future__ import annotations

import pytest

from harness.scenario.loader import ScenarioError, load
from tests.harness.conftest import by_id, engine_params, run_text

ENGINES = engine_params()

SCENARIO = """\
name: storage-checks
engines: [capsize, docker]
setup:
  - container.run:
      name: web
      volumes: ["labdata:/data", "/anon"]
      command: [sh, -c, 'echo hello > /data/greeting; echo x > /anon/f; sync; sleep 1000']
steps:
  - wait: {for: {volume.content: {volume: labdata, path: greeting, equals: "hello\\n"}}, timeout: 10s}
    id: written
teardown:
  - container.rm: {name: web, force: true}
checks:
  - {id: equals, volume.content: {volume: labdata, path: greeting, equals: "hello\\n"}}
  - {id: contains, volume.content: {volume: labdata, path: greeting, contains: hell}}
  - {id: anonymous, volume.content: {container: web, destination: /anon, path: f, equals: "x\\n"}}
  - {id: bad-content, volume.content: {volume: labdata, path: greeting, equals: "bye\\n"}}
  - {id: bad-missing, volume.content: {volume: labdata, path: nothing, contains: x}}
  - {id: absent, volume.content: {volume: labdata, path: nothing, absent: true}}
  - {id: escape, volume.content: {volume: labdata, path: ../../../../../etc/hostname, absent: true}}
  - {id: left, cleanup.complete: {}}
  - {id: left-known, cleanup.complete: {leaks: [volume]}}
"""

EXPECTED = {"equals": "pass", "contains": "pass", "anonymous": "pass", "bad-content": "fail",
            "bad-missing": "fail", "absent": "pass", "escape": "pass", "left": "fail", "left-known": "pass"}


@pytest.mark.parametrize("engine", ENGINES)
def test_volume_checks_and_the_volume_leftover_kind(tmp_path, engine):
    entry = run_text(tmp_path, SCENARIO, engine)
    c = by_id(entry)
    assert {k: c[k]["status"] for k in EXPECTED} == EXPECTED, {k: (c[k]["status"], c[k]["seen"]) for k in c}
    # rm -f without -v leaves both volumes: the named one and the anonymous one
    left = c["left"]["seen"]["volume"]
    assert len(left) == 2 and any("labdata" in v for v in left), left


def test_volume_content_needs_one_volume_and_one_expectation(tmp_path):
    for bad in ("{path: f, equals: x}", "{volume: v, container: web, destination: /d, path: f, equals: x}",
                "{container: web, path: f, equals: x}", "{volume: v, path: f}",
                "{volume: v, path: f, equals: x, absent: true}"):
        path = tmp_path / "s.yaml"
        path.write_text("name: s\nsteps: []\nchecks:\n  - volume.content: " + bad + "\n")
        with pytest.raises(ScenarioError):
            load(str(path))
