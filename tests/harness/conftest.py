"""Helpers for the harness's tests: run a scenario text on an engine, in-process or through the CLI."""

from __future__ import annotations

import json
import os

import pytest

from harness.engines import engine_class
from harness.ledger import LEDGER, Ledger
from harness.runner import run_scenario
from harness.scenario import load
from tests.conftest import VENV_BIN, run

needs_docker = pytest.mark.skipif(engine_class("docker").unavailable(None) is not None,
                                  reason=str(engine_class("docker").unavailable(None)))


def engine_params(*names: str) -> list:
    """``pytest.param`` per engine *names* (default capsize and docker), each skipped with the
    engine's own reason where it is unavailable here."""
    return [pytest.param(e, marks=pytest.mark.skipif(engine_class(e).unavailable(None) is not None,
                                                     reason=str(engine_class(e).unavailable(None))))
            for e in (names or ("capsize", "docker"))]


def run_text(tmp_path, text: str, engine: str = "docker", **kw) -> dict:
    """Run the scenario *text* on *engine* in this process; returns its journal entry."""
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    out = tmp_path / "runs"
    out.mkdir(exist_ok=True)
    return run_scenario(load(str(path)), engine, str(out), Ledger(str(out / LEDGER)), **kw)


def by_id(entry: dict) -> dict[str, dict]:
    """The entry's check results by their ``id`` (label)."""
    return {c["check"]: c for c in entry["checks"]}


def capsize(*args, **kw):
    return run([os.path.join(VENV_BIN, "capsize"), *args], **kw)


def journal_of(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "journal.json")) as f:
        return json.load(f)
