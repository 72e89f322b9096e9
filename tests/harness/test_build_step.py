"""The ``build`` step on both engines: a built image runs, build args reach the RUN, a second
build is served from the cache (``cached_steps``) unless ``no_cache``, a failing RUN ends the
step ``fail`` with its exit code and leaves no container; bad ``files`` paths are refused."""

from __future__ import annotations

import pytest
import yaml

from harness.scenario.loader import ScenarioError, load
from tests.harness.conftest import engine_params, run_text

ENGINES = engine_params()

DF = 'FROM busybox\nARG WHO=nobody\nCOPY f.txt /f.txt\nRUN echo "$WHO $(cat /f.txt)" > /out\nCMD ["cat", "/out"]\n'
BUILD = {"tag": "lab/b:1", "dockerfile": DF, "files": {"f.txt": "data"}, "build_args": {"WHO": "lab"}}

SCENARIO = yaml.safe_dump({
    "name": "build-step", "engines": ["capsize", "docker"],
    "steps": [
        {"build": BUILD, "id": "first", "expect": {"outcome": "ok", "stdout": {"regex": "Successfully built"}}},
        {"cli": "docker run --rm lab/b:1", "expect": {"exit_code": 0, "stdout": "lab data"}},
        {"build": BUILD, "id": "cached", "expect": {"outcome": "ok", "stdout": {"regex": "Using cache"}}},
        {"build": {**BUILD, "no_cache": True}, "id": "uncached", "expect": {"outcome": "ok"}},
        {"build": {"tag": "lab/bad:1", "dockerfile": "FROM busybox\nRUN exit 7\n"}, "id": "failing",
         "expect": {"outcome": "fail", "exit_code": 7}},
        {"cli": "docker ps -aq", "expect": {"exit_code": 0, "stdout": {"regex": "\\A\\s*\\Z"}}},
    ],
    "teardown": [{"cli": "docker rmi -f lab/b:1"}],
    "checks": [{"image.store.consistent": {}}],
}, sort_keys=False)


def _step(entry, sid):
    for s in entry["steps"]:
        if s.get("id") == sid:
            return s
    raise KeyError(sid)


@pytest.mark.parametrize("engine", ENGINES)
def test_build_step(tmp_path, engine):
    entry = run_text(tmp_path, SCENARIO, engine)
    assert entry["status"] == "pass", [(s.get("id"), s.get("status"), s.get("mismatches"), s.get("error"))
                                       for s in entry["steps"]] + [entry["checks"]]
    first, cached, uncached = (_step(entry, i)["value"] for i in ("first", "cached", "uncached"))
    assert first["cached_steps"] == 0 and cached["cached_steps"] == 4 and uncached["cached_steps"] == 0
    assert first["image_id"] == cached["image_id"] != uncached["image_id"]
    assert "returned a non-zero code: 7" in _step(entry, "failing")["error"]


def test_build_files_must_stay_in_the_context(tmp_path):
    for bad in ("/etc/x", "../x", "a/../../x", "Dockerfile"):
        path = tmp_path / "s.yaml"
        path.write_text(f"name: s\nsteps:\n  - build: {{dockerfile: 'FROM busybox', files: {{'{bad}': x}}}}\n")
        with pytest.raises(ScenarioError):
            load(str(path))
