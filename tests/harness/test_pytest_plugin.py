"""The pytest plugin (harness/pytest_plugin.py) comes from the ``pytest11`` entry point, is lazy,
and keeps its state on the session (pure tests: collection only, nothing is run)."""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import entry_points

from tests.conftest import REPO, VENV_BIN

PYTHON = os.path.join(VENV_BIN, "python")
SCENARIO = os.path.join(REPO, "scenarios", "seed", "3-stop-with-runtime-down.yaml")


def test_the_entry_point_names_the_plugin():
    eps = [e for e in entry_points(group="pytest11") if e.name == "capsize"]
    assert [e.value for e in eps] == ["harness.pytest_plugin"]


def test_plain_pytest_collects_a_scenario_file_per_engine(tmp_path):
    r = subprocess.run([PYTHON, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", SCENARIO],
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "seed-3-stop-with-runtime-down[capsize]" in r.stdout
    assert "seed-3-stop-with-runtime-down[docker]" in r.stdout


def test_a_run_without_scenarios_imports_nothing_heavy(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    code = ("import sys, pytest, json\n"
            f"rc = pytest.main(['-q', '-p', 'no:cacheprovider', {str(tmp_path / 'test_x.py')!r}])\n"
            "heavy = ('yaml', 'pydantic', 'docker', 'psutil', 'jinja2', 'rich', 'aiohttp')\n"
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] in heavy),"
            " sorted(m for m in sys.modules if m.startswith('harness'))]))\n")
    r = subprocess.run([PYTHON, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    rc, heavy, harness = json.loads(r.stdout.strip().splitlines()[-1])
    assert rc == 0 and heavy == [], r.stdout
    assert harness == ["harness", "harness.pytest_plugin"]


def test_the_plugin_keeps_no_module_state():
    import harness.pytest_plugin as plugin
    names = [n for n, v in vars(plugin).items()
             if not n.startswith("__") and isinstance(v, (dict, list, set)) and n != "RUN"]
    assert names == []
    assert hasattr(plugin, "RUN") and callable(plugin.session_run)
