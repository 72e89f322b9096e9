"""Step expectations: outcome (Jepsen's ok/fail/unknown), exit code, error text, duration."""

from harness.context import ActionResult
from harness.runner import expectation_mismatches
from harness.scenario.models import Expect


def test_default_is_outcome_ok():
    assert expectation_mismatches(None, ActionResult(outcome="ok")) == []
    assert expectation_mismatches(None, ActionResult(outcome="fail", error="boom"))[0].startswith(
        "outcome: expected ok, got fail (boom)")
    assert expectation_mismatches(None, ActionResult(outcome="unknown"))


def test_exit_code_text_and_duration():
    e = Expect.model_validate({"exit_code": 1, "stderr": "no exit event", "duration": {"min": "1s", "max": 2}})
    good = ActionResult(outcome="fail", exit_code=1, stderr="x: no exit event\n", duration=1.5)
    assert expectation_mismatches(e, good) == []
    bad = ActionResult(outcome="fail", exit_code=0, stderr="other", duration=2.5)
    m = expectation_mismatches(e, bad)
    assert [x.split(":")[0] for x in m] == ["exit_code", "stderr", "duration"]
    assert expectation_mismatches(e, ActionResult(outcome="fail", exit_code=1, stderr="no exit event",
                                                  duration=0.5))[0].startswith("duration: expected at least 1s")


def test_regex_equals_outcome_lists_and_status_code():
    e = Expect.model_validate({"outcome": ["fail", "unknown"], "error": {"regex": "^Cannot .* running\\?$"},
                               "status_code": 409})
    assert expectation_mismatches(e, ActionResult(outcome="unknown", error="Cannot x running?", status_code=409)) == []
    assert len(expectation_mismatches(e, ActionResult(outcome="ok", error="nope", status_code=500))) == 3
    eq = Expect.model_validate({"stdout": {"equals": "web running"}})
    assert expectation_mismatches(eq, ActionResult(outcome="ok", stdout="web running\n")) == []
    assert expectation_mismatches(eq, ActionResult(outcome="ok", stdout="web running x\n"))
