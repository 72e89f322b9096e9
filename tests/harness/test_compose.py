"""docker-compose 1.29.2 (from PyPI, in a virtualenv of its own) drives the engine under test:
``up -d`` of a two-service file (a default ``<project>_default`` network, the services reaching
each other by service name), ``ps``, ``logs``, ``down`` — and ``down`` leaves no container
and no network behind.

The virtualenv is made by the test itself and kept across runs in ``$CAPSIZE_COMPOSE_VENV``
(default ``~/.cache/capsize/compose-venv``), rebuilt when its pins change. docker-compose
1.29.2 needs PyYAML < 6, whose 5.4 sdist does not build with Cython 3 under pip's build
isolation on Python 3.11 (``'build_ext' object has no attribute 'cython_sources'``), so PyYAML
is built first without isolation against Cython < 3.

An engine without user-defined networks (``POST /networks/create`` refused) is skipped with
that reason: compose needs one for every project.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import time

import pytest

from harness.engines import engine_class
from harness.scenario.models import EngineOptions
from tests.harness.conftest import engine_params

PINS = ("docker-compose==1.29.2", "docker==5.0.3", "requests<2.32", "urllib3<2")
#: built first, without build isolation (see the module doc)
BUILD_FIRST = (("cython<3", "wheel", "setuptools"), ("--no-build-isolation", "pyyaml>=5.4,<6"))
VENV = os.environ.get("CAPSIZE_COMPOSE_VENV") or os.path.expanduser("~/.cache/capsize/compose-venv")

COMPOSE_FILE = """\
version: "3.8"
services:
  srv:
    image: busybox
    command: ["nc", "-ll", "-p", "8080", "-e", "echo", "pong"]
  cli:
    image: busybox
    depends_on: [srv]
    command: ["sh", "-c", "until nc -w 2 srv 8080; do sleep 0.3; done; echo reached-srv; exec sleep 1000"]
"""


def compose_binary() -> str:
    """``<venv>/bin/docker-compose``, the venv made (or remade, when its pins changed) under a lock."""
    os.makedirs(os.path.dirname(VENV), exist_ok=True)
    marker = os.path.join(VENV, "capsize-pins.txt")
    want = "\n".join(PINS + tuple(" ".join(s) for s in BUILD_FIRST)) + "\n"
    with open(VENV + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(marker) as f:
                if f.read() == want:
                    return os.path.join(VENV, "bin", "docker-compose")
        except OSError:
            pass
        subprocess.run(["rm", "-rf", VENV], check=True)
        subprocess.run(["python3", "-m", "venv", VENV], check=True, capture_output=True, timeout=120)
        pip = os.path.join(VENV, "bin", "pip")
        for args in (*BUILD_FIRST, PINS):
            r = subprocess.run([pip, "install", "-q", "--disable-pip-version-check", *args],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["?"])[-1]
                if any(w in r.stderr for w in ("NewConnectionError", "Temporary failure in name resolution",
                                               "No matching distribution")):
                    pytest.skip(f"PyPI is not reachable for the compose virtualenv: {last}")
                pytest.fail(f"pip install {' '.join(args)} failed: {last}")
        with open(marker, "w") as f:
            f.write(want)
    return os.path.join(VENV, "bin", "docker-compose")


def user_networks_refusal(client) -> str | None:
    """None when the engine creates a user-defined network (``POST /networks/create``); else why not."""
    import docker
    name = f"czprobe-{os.getpid()}"
    try:
        net = client.api.create_network(name, driver="bridge")
    except docker.errors.APIError as e:
        return f"POST /networks/create answered {e.status_code}: {e.explanation}"
    client.api.remove_network(net["Id"])
    return None


@pytest.mark.privileged
@pytest.mark.parametrize("engine", engine_params())
def test_compose_up_ps_logs_down(engine, leak_scope, tmp_path):
    root = leak_scope.own_path(tempfile.mkdtemp(prefix="cz-co-", dir="/tmp"))
    eng = engine_class(engine)(root, EngineOptions())
    try:
        eng.start()
        client = eng.client(timeout=60)
        try:
            why = user_networks_refusal(client)
            if why:
                pytest.skip(f"engine {engine} lacks user-defined networks, which compose needs: {why}")
            compose = compose_binary()
            (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
            env = {k: v for k, v in eng.cli_env().items() if not k.startswith("COMPOSE_")}
            env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"

            def dc(*args, timeout=120):
                return subprocess.run([compose, "-p", "czt", "-f", str(tmp_path / "docker-compose.yml"), *args],
                                      capture_output=True, text=True, env=env, timeout=timeout,
                                      stdin=subprocess.DEVNULL)

            up = dc("up", "-d")
            assert up.returncode == 0, up.stderr
            assert "czt_default" in up.stderr, up.stderr   # compose made the project's network
            ps = dc("ps")
            assert ps.returncode == 0, ps.stderr
            rows = [line for line in ps.stdout.splitlines() if line.startswith("czt_")]
            assert len(rows) == 2 and all(" Up" in r for r in rows), ps.stdout
            deadline = time.monotonic() + 30
            while True:
                logs = dc("logs", "cli")
                assert logs.returncode == 0, logs.stderr
                if "reached-srv" in logs.stdout:
                    break
                assert time.monotonic() < deadline, f"cli never reached srv by name: {logs.stdout[-500:]}"
                time.sleep(0.5)
            assert "pong" in logs.stdout, logs.stdout
            net = client.api.inspect_network("czt_default")
            assert len(net["Containers"]) == 2, net["Containers"]
            down = dc("down", "-t", "1")
            assert down.returncode == 0, down.stderr
            assert [c["Names"] for c in client.api.containers(all=True)] == []
            assert [n["Name"] for n in client.api.networks() if n["Name"].startswith("czt_")] == []
        finally:
            client.close()
    finally:
        eng.close()
