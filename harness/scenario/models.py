"""Typed scenario models (pydantic v2), assembled from the verb registry: what a scenario file
may say, validated before anything starts.

Shapes (YAML; see scenarios/README.md for the full reference):

* :class:`Scenario` — ``name``, ``description``, ``tags``, ``engines``, ``options``, ``expected``,
  ``setup``, ``steps``, ``teardown``, ``checks``, ``timeout``;
* :class:`Step` — exactly one action or fault key (every registered one: ``container.run``,
  ``cli``, ``fault.kill``, ``wait``...) plus ``id``, ``expect``, ``background``, ``engines``, ``timeout``;
* :class:`Check` — exactly one check key (``container.state``, ``orphans.none``...) plus the
  timing fields ``before`` / ``after`` (a step id, or ``teardown`` for ``after``), ``during``,
  ``within``, and ``engines``; :class:`CheckSpec` is the check without timing (``wait``'s ``for``).

The verbs, their parameter models and their rules (may run in the background, default timing)
come from :mod:`harness.verbs` (one registration per verb); the shared types (durations,
signals, text matches, expectations) from :mod:`harness.scenario.types`, re-exported here. Every
model forbids unknown keys, so a typo is an error (the loader adds the nearest valid word).
:func:`rebuild` assembles the models again after a verb was registered or removed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, Field, PrivateAttr, create_model, field_validator, model_validator

from harness import verbs
from harness.scenario.types import (ENGINES, ROLES, Duration, DurationBound, Empty, EngineName,  # noqa: F401
                                    EventMatch, Expect, FaultTarget, Model, Outcome, Role, Signal, Text,
                                    TextMatch, describe_text, parse_duration, parse_signal, text_matches)
from harness.verbs import flow, registry

RUNTIMES = ("capsize-runc", "runc", "crun")
#: The host's cgroup versions an ``expected`` key may name (``docker@v2``): as
#: :func:`runtime.lowlevel.cgroups.layout` says, a hybrid host is ``v1``.
CGROUP_LAYOUTS = ("v1", "v2")


def expected_keys(engine: str, cgroup: str) -> tuple[str, ...]:
    """The keys of an ``expected`` value tried for *engine* on a host of cgroup version *cgroup*
    (``v1``/``v2``), most specific first: ``docker@v2``, ``docker``, ``default@v2``, ``default``."""
    return (f"{engine}@{cgroup}", engine, f"default@{cgroup}", "default")
#: The fields of a check besides its kind.
TIMING_FIELDS = ("id", "before", "after", "during", "within", "engines")
#: The fields of a step besides its action.
STEP_FIELDS = ("id", "expect", "background", "engines", "timeout")


def _one_key(kind: str, keys, data: dict) -> str:
    present = [k for k in keys if k in data]
    if len(present) != 1:
        names = ", ".join(sorted(keys))
        if not present:
            raise ValueError(f"a {kind} needs one of: {names}")
        raise ValueError(f"a {kind} has exactly one of {names}; this one has {', '.join(present)}")
    return present[0]


def _bare_ok(params) -> bool:
    """Whether ``verb:`` with no value means ``verb: {}`` (a model without required fields)."""
    return isinstance(params, type) and issubclass(params, BaseModel) and \
        not any(f.is_required() for f in params.model_fields.values())


def _verb_fields(verb_list) -> dict:
    return {v.attr: (Optional[v.params], Field(None, alias=v.name)) for v in verb_list}


# -- checks ---------------------------------------------------------------------------------------

class _CheckKind(Model):
    """One check kind with its parameters; the kinds are the registry's (fields added by :func:`rebuild`)."""

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data):
        if isinstance(data, dict):
            key = _one_key("check", [v.name for v in registry.check_verbs()], data)
            if data.get(key) is None:  # `orphans.none:` with no value
                data = {**data, key: {}}
        return data

    @property
    def verb(self) -> registry.Verb:
        for v in registry.check_verbs():
            if getattr(self, v.attr, None) is not None:
                return v
        raise AssertionError("validated CheckSpec without a kind")

    @property
    def kind(self) -> str:
        return self.verb.name

    @property
    def params(self) -> Model:
        return getattr(self, self.verb.attr)


class _CheckBase(_CheckKind):
    """A check with its timing. Default: at the end (after ``steps``, before ``teardown``);
    ``cleanup.complete`` defaults to ``after: teardown``. ``within``: keep re-evaluating for up
    to this long until it holds (convergence). ``during``: polled while the steps run; it must
    hold at every poll. ``events.order`` also defaults to after teardown (``delete`` comes
    with the container's removal)."""

    id: str | None = None
    before: str | None = None
    after: str | None = None
    during: bool = False
    within: Duration = 0.0
    engines: list[EngineName] | None = None
    #: ``file:line`` of this check in its scenario file (set by the loader; None when built in code).
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """``file:line`` where the check is written (for failure reports), or None."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _lift_timing(cls, data):
        # The timing may also be written inside the check's mapping (DESIGN.md's sketch):
        # {container.state: {name: web, within: 15s}} == {container.state: {name: web}, within: 15s}
        if isinstance(data, dict):
            data = dict(data)
            for key in [v.name for v in registry.check_verbs()]:
                inner = data.get(key)
                if isinstance(inner, dict) and any(k in inner for k in TIMING_FIELDS):
                    inner = dict(inner)
                    for k in TIMING_FIELDS:
                        if k in inner:
                            if k in data:
                                raise ValueError(f"{k} is given twice, inside and outside {key}")
                            data[k] = inner.pop(k)
                    data[key] = inner
        return data

    @model_validator(mode="after")
    def _timing(self):
        if sum(x is not None and x is not False for x in (self.before, self.after, self.during or None)) > 1:
            raise ValueError("a check holds at one time: before, after or during")
        if self.during and not self.verb.during:
            raise ValueError(f"{self.kind} is evaluated after teardown, not during the steps")
        return self

    @property
    def timing(self) -> tuple[str, str | None]:
        """``("before", id)``, ``("after", id)``, ``("after", "teardown")``, ``("during", None)`` or ``("end", None)``."""
        if self.before:
            return ("before", self.before)
        if self.after:
            return ("after", self.after)
        if self.during:
            return ("during", None)
        if self.verb.after_teardown:
            return ("after", "teardown")
        return ("end", None)

    @property
    def label(self) -> str:
        p = self.params.model_dump(exclude_defaults=True, by_alias=True)
        inner = ", ".join(f"{k}={v}" for k, v in p.items())
        return self.id or (f"{self.kind}({inner})" if inner else self.kind)


# -- steps ----------------------------------------------------------------------------------------

class _StepBase(Model):
    """One step: exactly one action key plus ``id``, ``expect``, ``background``, ``engines``, ``timeout``.

    ``background: true`` starts the action and goes on; ``await: <id>`` later waits for it (its
    ``expect`` is checked when it finishes). ``timeout`` bounds the action (default 120 s); a
    CLI or API call cut off by it ends ``unknown``.
    """

    id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")] | None = None
    expect: Expect | None = None
    background: bool = False
    engines: list[EngineName] | None = None
    timeout: Duration = 120.0
    #: ``file:line`` of this step in its scenario file (set by the loader; None when built in code).
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """``file:line`` where the step is written (for failure reports), or None."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data):
        if isinstance(data, dict):
            key = _one_key("step", [v.name for v in registry.step_verbs()], data)
            if data.get(key) is None and _bare_ok(registry.get(key).params):
                data = {**data, key: {}}
        return data

    @model_validator(mode="after")
    def _rules(self):
        if self.background and not self.verb.background:
            raise ValueError(f"{self.action} cannot run in the background")
        if self.background and not self.id:
            raise ValueError("a background step needs an id (await: <id> waits for it)")
        return self

    @property
    def verb(self) -> registry.Verb:
        for v in registry.step_verbs():
            if getattr(self, v.attr, None) is not None:
                return v
        raise AssertionError("validated Step without an action")

    @property
    def action(self) -> str:
        return self.verb.name

    @property
    def params(self) -> Any:
        return getattr(self, self.verb.attr)

    @property
    def label(self) -> str:
        p = self.params
        if isinstance(p, list):
            detail = " ".join(p)
        elif isinstance(p, BaseModel):
            detail = ", ".join(f"{k}={v}" for k, v in p.model_dump(exclude_defaults=True, by_alias=True).items()
                               if not isinstance(v, dict) or v)
        else:
            detail = str(p)
        return f"{self.action} {detail}".strip()


class EngineOptions(Model):
    """Engine options: ``live_restore`` (dockerd's --live-restore; capsized's equivalent),
    ``runtime`` (the low-level runtime: capsize-runc, runc or crun), ``network`` (docker: netns|none)."""

    live_restore: bool = False
    runtime: Literal["capsize-runc", "runc", "crun"] | None = None
    network: Literal["netns", "none"] = "netns"



class _ScenarioBase(Model):
    """A scenario file, after per-engine substitution of ``${name}`` from ``expected``."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    description: str = ""
    tags: list[str] = []
    engines: list[EngineName] = ["capsize", "docker"]
    options: EngineOptions = EngineOptions()
    #: Per-engine expected values: ``{name: {engine: value, default: value}}``, used as ``${name}``;
    #: a key may name the host's cgroup version too, ``docker@v2``, ``default@v1`` (:func:`expected_keys`).
    expected: dict[str, dict[str, Any]] = {}

    @field_validator("expected")
    @classmethod
    def _expected(cls, v):
        for name, per in v.items():
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", name):
                raise ValueError(f"expected value name {name!r}: letters, digits and _ only")
            for key in per:
                base, at, version = key.partition("@")
                if (base not in ENGINES and base != "default") or (at and version not in CGROUP_LAYOUTS):
                    raise ValueError(f"expected.{name}: {key!r} is not an engine (one of {', '.join(ENGINES)}, "
                                     f"default), optionally @v1 or @v2 (the host's cgroup version)")
        return v

    def all_steps(self):
        """``(section, index, step)`` over setup, steps and teardown."""
        for section in ("setup", "steps", "teardown"):
            for i, step in enumerate(getattr(self, section)):
                yield section, i, step


CheckSpec: type[_CheckKind]
Check: type[_CheckBase]
Step: type[_StepBase]
Scenario: type[_ScenarioBase]
Condition = flow.Condition
WaitSpec = flow.WaitSpec


def rebuild() -> None:
    """Assemble CheckSpec, Check, Step and Scenario from the registry (again), and point
    ``wait``'s condition at the new CheckSpec. Called at import; again after a verb was
    registered or unregistered (:func:`harness.verbs.registry.register`)."""
    global CheckSpec, Check, Step, Scenario
    checks = _verb_fields(registry.check_verbs())
    CheckSpec = create_model("CheckSpec", __base__=_CheckKind, __module__=__name__,
                             __doc__="One check kind with its parameters (no timing): "
                                     "``{container.state: {name: web, ...}}``.", **checks)
    flow.Condition.model_rebuild(force=True, _types_namespace={"CheckSpec": CheckSpec})
    flow.WaitSpec.model_rebuild(force=True)
    Check = create_model("Check", __base__=_CheckBase, __module__=__name__, __doc__=_CheckBase.__doc__, **checks)
    Step = create_model("Step", __base__=_StepBase, __module__=__name__, __doc__=_StepBase.__doc__,
                        **_verb_fields(registry.step_verbs()))
    Scenario = create_model("Scenario", __base__=_ScenarioBase, __module__=__name__, __doc__=_ScenarioBase.__doc__,
                            setup=(list[Step], []), steps=(list[Step], []), teardown=(list[Step], []),
                            checks=(list[Check], []), timeout=(Duration, 600.0))


assert verbs.verbs(), "harness.verbs registered nothing"
rebuild()
