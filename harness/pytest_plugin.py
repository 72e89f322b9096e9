"""pytest collects scenario files: one test item per scenario × engine (``pytest scenarios/``).

Registered through the ``pytest11`` entry point ``capsize`` (pyproject.toml), so every pytest
of this environment has it; it imports nothing heavy until a scenario file is collected or run
(only ``os`` and ``pytest`` at import), and a run without scenario files is unchanged. Collects
``*.yaml``/``*.yml`` files that lie below a directory named ``scenarios``; a file that does not
validate is a collection error with the loader's ``file:line:column`` message. Each item runs the
scenario on one engine with :func:`harness.runner.run_scenario`; an engine unavailable here makes
the item *skipped* with the reason (n/a), a failed step or check fails it with the evidence.
Everything is also recorded in one run directory per session (``--capsize-out``, default
``reports/runs``), journal included, so pytest's own ``--junitxml`` and the journal agree.

Options: ``--capsize-engine NAME`` (repeatable; default: every engine the scenario names),
``--capsize-out DIR``, ``--capsize-keep-going``.

State is per session, on ``config.stash`` (:class:`SessionRun`); the module keeps none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass
class SessionRun:
    """The session's run directory (``<--capsize-out>/<stamp>-pytest``), its journal and its ledger,
    made when the first scenario item runs."""
    dir: str
    journal: object
    ledger: object


RUN = pytest.StashKey[SessionRun]()


def session_run(config) -> SessionRun:
    """The session's :class:`SessionRun`, made on first use."""
    run = config.stash.get(RUN, None)
    if run is None:
        from harness import journal as jr
        from harness.ledger import LEDGER, Ledger
        d = jr.new_run_dir(config.getoption("capsize_out"), "pytest")
        run = config.stash[RUN] = SessionRun(d, jr.Journal(d, ["pytest"]), Ledger(os.path.join(d, LEDGER)))
    return run


def pytest_addoption(parser):
    g = parser.getgroup("capsize", "capsize scenarios")
    g.addoption("--capsize-engine", action="append", default=None, metavar="NAME",
                help="run scenarios on this engine (repeatable; default: the engines each scenario names)")
    g.addoption("--capsize-out", default=os.path.join("reports", "runs"), metavar="DIR",
                help="parent of the session's run directory")
    g.addoption("--capsize-keep-going", action="store_true", help="run the remaining steps after a failed one")


def pytest_configure(config):
    config.addinivalue_line("markers", "capsize_engine(name): the engine a scenario item runs on")


def _is_scenario(path) -> bool:
    return path.suffix in (".yaml", ".yml") and not path.name.startswith("schema") and "scenarios" in path.parts[:-1]


def pytest_collect_file(parent, file_path):
    if _is_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        from harness.scenario import load
        from runtime.errors import CapsizeError
        try:
            loaded = load(str(self.path))
        except CapsizeError as e:
            raise self.CollectError(str(e)) from None
        wanted = self.config.getoption("capsize_engine")
        for engine in loaded.engines:
            if wanted and engine not in wanted:
                continue
            item = ScenarioItem.from_parent(self, name=f"{loaded.name}[{engine}]", loaded=loaded, engine=engine)
            item.add_marker(pytest.mark.capsize_engine(engine))
            yield item

    class CollectError(Exception):
        pass


class ScenarioItem(pytest.Item):
    def __init__(self, *, loaded, engine, **kw):
        super().__init__(**kw)
        self.loaded, self.engine = loaded, engine
        self.entry = None

    def runtest(self):
        from harness.runner import run_scenario
        if os.geteuid() != 0:
            pytest.skip("capsize scenarios need root")
        run = session_run(self.config)
        self.entry = run_scenario(self.loaded, self.engine, run.dir, run.ledger,
                                  keep_going=self.config.getoption("capsize_keep_going"))
        run.journal.add(self.entry)
        if self.entry["status"] == "n/a":
            pytest.skip(self.entry["reason"])
        if self.entry["status"] != "pass":
            raise ScenarioFailed(self.entry)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScenarioFailed):
            from harness.journal import summary_text
            run = self.config.stash.get(RUN, None)
            return summary_text([excinfo.value.entry]) + f"\nrun directory: {run.dir if run else None}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.loaded.name} on {self.engine}"


class ScenarioFailed(Exception):
    def __init__(self, entry):
        super().__init__(entry.get("reason"))
        self.entry = entry


def pytest_sessionfinish(session, exitstatus):
    run = session.config.stash.get(RUN, None)
    if run is not None:
        from harness import journal as jr
        run.journal.write(finished=True)
        entries = run.journal.data["runs"]
        with open(os.path.join(run.dir, "summary.txt"), "w") as f:
            f.write(jr.summary_text(entries))
        jr.write_junit(os.path.join(run.dir, "junit.xml"), entries)
