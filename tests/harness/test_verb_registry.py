"""One registration makes a verb: a throwaway fault and check, registered in this test only, are
validated by the loader (with file:line errors), run by the runner, undone from the ledger at
teardown, and documented in the README's tables and the JSON Schema; unregistered, they are gone
from all of them."""

from __future__ import annotations

import os

import pytest

from harness.scenario import ScenarioError, load
from harness.scenario import models as m
from harness.scenario.schema import json_schema
from harness.scenario.types import Model
from harness.verbs import docs, registry
from tests.harness.conftest import by_id, run_text

README = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "README.md")


class Mark(Model):
    """Where the throwaway fault puts its mark."""

    path: str


class Marked(Model):
    path: str
    present: bool = True


def undo_unmark(spec: dict, engine=None) -> str:
    os.unlink(spec["path"])
    return f"removed {spec['path']}"


def fault_mark(ctx, step) -> dict:
    ctx.ledger.apply(ctx.run, step.action, {"path": step.params.path}, {"kind": "test-unmark", "path": step.params.path})
    with open(step.params.path, "w") as f:
        f.write("mark\n")
    return {"path": step.params.path}


def check_marked(ctx, p) -> registry.Verdict:
    there = os.path.exists(p.path)
    return registry.Verdict(registry.PASS if there == p.present else registry.FAIL,
                            expected={"present": p.present}, seen={"present": there})


@pytest.fixture
def throwaway():
    registry.register(registry.Verb(name="fault.test-mark", kind=registry.FAULT, params=Mark, run=fault_mark,
                                    doc="writes a mark file (throwaway test verb)",
                                    undo={"test-unmark": undo_unmark}))
    registry.register(registry.Verb(name="test.marked", kind=registry.CHECK, params=Marked, run=check_marked,
                                    doc="the mark file is there (throwaway test check)"))
    m.rebuild()
    try:
        yield
    finally:
        registry.unregister("fault.test-mark")
        registry.unregister("test.marked")
        m.rebuild()


def scenario(mark: str, extra: str = "") -> str:
    return f"""name: throwaway-verb
engines: [capsize]
steps:
  - fault.test-mark: {{path: {mark}{extra}}}
checks:
  - test.marked: {{path: {mark}}}
  - test.marked: {{path: {mark}, present: false}}
    after: teardown
"""


@pytest.mark.privileged
def test_a_verb_is_one_registration(throwaway, tmp_path):
    mark = str(tmp_path / "mark")
    # documented: a row in each generated table, a definition in the schema
    text = docs.render_readme(open(README).read())
    assert "| `fault.test-mark` | fault | `path` |" in text and "writes a mark file (throwaway test verb)" in text
    assert "| `test.marked` | `path`, `present` (True) |" in text
    schema = str(json_schema())
    assert "fault.test-mark" in schema and "test.marked" in schema
    # validated: a wrong parameter is one error line at its file:line
    bad = tmp_path / "bad.yaml"
    bad.write_text(scenario(mark, ", colour: red"))
    with pytest.raises(ScenarioError) as err:
        load(str(bad))
    assert err.value.line == 4 and "colour" in str(err.value), str(err.value)
    # run and undone: the mark is there at the end of the steps, the ledger's undo removes it
    entry = run_text(tmp_path, scenario(mark), engine="capsize")
    assert entry["status"] == "pass", entry["reason"]
    step = entry["steps"][0]
    assert step["action"] == "fault.test-mark" and step["outcome"] == "ok" and step["value"] == {"path": mark}
    assert step["source"].endswith("scenario.yaml:4")
    assert [r["result"] for r in entry["restored"]] == [f"removed {mark}"]
    assert not os.path.exists(mark)
    checks = entry["checks"]
    assert [(c["kind"], c["timing"], c["status"]) for c in checks] == [
        ("test.marked", "end", "pass"), ("test.marked", "after:teardown", "pass")]


@pytest.mark.privileged
def test_the_check_fails_when_it_does_not_hold(throwaway, tmp_path):
    """The throwaway check can fail: asked for a mark that was never made."""
    entry = run_text(tmp_path, """name: throwaway-fails
engines: [capsize]
checks:
  - test.marked: {path: /nonexistent/mark}
    id: marked
""", engine="capsize")
    c = by_id(entry)["marked"]
    assert entry["status"] == "fail" and c["status"] == "fail" and c["seen"] == {"present": False}
    assert c["source"].endswith("scenario.yaml:4")


def test_unregistered_verbs_are_gone(tmp_path):
    registry.register(registry.Verb(name="test.gone", kind=registry.CHECK, params=Marked, run=check_marked, doc="x"))
    m.rebuild()
    registry.unregister("test.gone")
    m.rebuild()
    assert "test.gone" not in docs.table("checks") and "test.gone" not in str(json_schema())
    p = tmp_path / "s.yaml"
    p.write_text("name: s\nengines: [capsize]\nchecks:\n  - test.gone: {path: /x}\n")
    with pytest.raises(ScenarioError) as err:
        load(str(p))
    assert err.value.line == 4


def test_a_verb_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.Verb(name="orphans.none", kind=registry.CHECK, params=Marked, run=check_marked,
                                        doc="again"))
