"""capsized's --config-file (dockerd's daemon.json keys): parsing, conflicts with flags, errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from runtime.daemon import config_file
from runtime.daemon.cli import parse_args
from tests.conftest import VENV_BIN


def _file(tmp_path, data) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_live_restore_and_others_from_the_file(tmp_path):
    path = _file(tmp_path, {"live-restore": True, "shutdown-timeout": 3, "cgroup-parent": "/cz",
                            "hosts": ["unix:///tmp/x.sock"]})
    c = parse_args(["--config-file", path, "--data-root", str(tmp_path / "root")])
    assert (c.live_restore, c.shutdown_timeout, c.cgroup_parent, c.hosts) == (True, 3, "/cz", ["unix:///tmp/x.sock"])
    assert c.data_root == str(tmp_path / "root")
    assert parse_args(["--config-file", _file(tmp_path, "{}")]).live_restore is False


def test_missing_default_file_is_no_configuration(monkeypatch, tmp_path):
    monkeypatch.setattr(config_file, "DEFAULT_PATH", str(tmp_path / "absent.json"))
    assert parse_args([]).live_restore is False


@pytest.mark.parametrize("data,args,error", [
    ({"live-restore": True}, ["--live-restore"],
     "specified both as a flag and in the configuration file: live-restore: (from flag: true, from file: true)"),
    ({"data-root": "/a"}, ["--data-root", "/b"], "data-root: (from flag: /b, from file: /a)"),
    ({"live-restore": True, "bogus": 1, "debug": True}, [],
     "don't match any configuration option: bogus, debug"),
    ({"live-restore": "yes"}, [], 'live-restore: a boolean is needed, not "yes"'),
    ({"shutdown-timeout": True}, [], "shutdown-timeout: a number is needed, not true"),
    ("[1]", [], "must hold a JSON object"),
    ("{", [], "invalid JSON"),
])
def test_bad_configuration_is_one_line_and_status_1(tmp_path, data, args, error):
    path = _file(tmp_path, data)
    r = subprocess.run([os.path.join(VENV_BIN, "capsized"), "--config-file", path, *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"capsized: unable to configure the daemon with file {path}: ")
    assert error in r.stderr, r.stderr


def test_a_named_file_must_exist(tmp_path):
    r = subprocess.run([os.path.join(VENV_BIN, "capsized"), "--config-file", str(tmp_path / "nope.json")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
