"""The verb registry: every scenario action, fault and check is registered here once.

A registration (:func:`register`, or the :func:`action` / :func:`fault` / :func:`check`
decorators on the executor) carries everything the harness needs to know about a verb:

* ``name`` — the scenario key (``container.run``, ``fault.kill``, ``orphans.none``);
* ``kind`` — ``action`` | ``fault`` | ``check``;
* ``params`` — its pydantic parameter model (or an annotated scalar type: ``cli``'s argv,
  ``sleep``'s duration, ``snapshot``'s label, ``await``'s step id);
* the executor — an action: ``(ctx, step) -> ActionResult``; a fault: ``(ctx, step) -> dict``
  of facts (wrapped into an ActionResult: ``fail`` with the message for a
  :class:`~runtime.errors.CapsizeError` or an ``OSError``); a check: ``(ctx, params) -> Verdict``;
* ``undo`` (faults) — ``{undo kind: function(spec, engine) -> str}``: what the ledger replays
  for the ``fault.apply`` entries it writes (before teardown, and in ``capsize recover``, where
  *engine* is None);
* ``needs`` — the engine capabilities it needs (``systemd``, ``failpoints``,
  ``role:lowlevel``; see :mod:`harness.engines.base`): a tuple for the verb itself, or a
  function of the parameters returning :class:`Need` items for a parameter (``component:
  lowlevel``), which the loader reports at that field;
* ``doc`` — its one documentation line (scenarios/README.md's tables, :mod:`harness.verbs.docs`).

The Step and Check models (:mod:`harness.scenario.models`), the loader's checks, the runner's
dispatch, the ledger's undo, the JSON Schema and the README's verb tables all read the
registry; :mod:`harness.verbs` imports every family module, so importing it fills the registry.
Standard library only (pydantic is not needed to register).
"""

from __future__ import annotations

import keyword
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

ACTION, FAULT, CHECK = "action", "fault", "check"
KINDS = (ACTION, FAULT, CHECK)
PASS, FAIL, NA = "pass", "fail", "n/a"


class Need(NamedTuple):
    """A capability a verb's parameters need: ``capability`` (``role:lowlevel``), the parameter
    ``field`` that asks for it (the loader points there; None: the verb's key), and ``what``, the
    subject of the loader's message ("component lowlevel exists", "failpoints exist")."""

    capability: str
    field: str | None
    what: str


class Verdict:
    """One evaluation of a check: ``status`` (pass | fail | n/a), ``expected``, ``seen``,
    ``evidence`` (a list of JSON-able items), ``reason``."""

    def __init__(self, status: str, expected=None, seen=None, evidence=None, reason: str = ""):
        self.status, self.expected, self.seen = status, expected, seen
        self.evidence, self.reason = evidence or [], reason


@dataclass(frozen=True)
class Verb:
    """One registered verb (see the module doc for the fields)."""

    name: str
    kind: str
    params: Any
    run: Callable | None
    doc: str
    #: Parameters column of the README table for a scalar verb (a model's is generated).
    params_doc: str = ""
    needs: tuple[str, ...] | Callable[[Any], Iterable[Need]] = ()
    undo: dict[str, Callable[[dict, Any], str]] = field(default_factory=dict)
    #: Actions and faults: may run with ``background: true``.
    background: bool = False
    #: ``await``: the runner waits for a background step instead of executing (no executor).
    awaits: bool = False
    #: The parameter naming a scenario container that must be created by the scenario.
    container_field: str | None = None
    #: Scenario container names this step creates: ``f(params) -> [name, ...]``.
    creates: Callable[[Any], list[str]] | None = None
    #: Checks: evaluated after teardown by default (``cleanup.complete``, ``events.order``).
    after_teardown: bool = False
    #: Checks: may be ``during: true``.
    during: bool = True
    #: Checks: the column "passes when" of the README.
    passes: str = ""

    @property
    def attr(self) -> str:
        """The Python attribute of the Step/CheckSpec field for this verb (``fault.kill`` -> ``fault_kill``)."""
        name = self.name.replace(".", "_").replace("-", "_")
        return name + "_" if keyword.iskeyword(name) else name

    def needs_of(self, params) -> list[Need]:
        """The capabilities this verb needs with these *params* (the verb's own first)."""
        if callable(self.needs):
            return list(self.needs(params))
        return [Need(c, None, f"{self.name} exists") for c in self.needs]


_VERBS: dict[str, Verb] = {}
_UNDO: dict[str, Callable[[dict, Any], str]] = {}


def register(verb: Verb) -> Verb:
    """Add *verb* (a second registration of a name is an error: a verb is defined once).
    Its undo kinds join the ledger's table (one function per kind; shared kinds must be the same
    function)."""
    if verb.kind not in KINDS:
        raise ValueError(f"verb {verb.name}: kind {verb.kind!r} is not one of {', '.join(KINDS)}")
    if verb.name in _VERBS:
        raise ValueError(f"verb {verb.name} is registered twice")
    for kind, fn in verb.undo.items():
        if _UNDO.get(kind, fn) is not fn:
            raise ValueError(f"undo kind {kind!r} of {verb.name} is registered with another function")
    _VERBS[verb.name] = verb
    _UNDO.update(verb.undo)
    return verb


def unregister(name: str) -> None:
    """Remove verb *name* and the undo kinds no other verb shares (for tests of throwaway verbs;
    the Step/Check models must be rebuilt after: :func:`harness.scenario.models.rebuild`)."""
    verb = _VERBS.pop(name)
    still = {k for v in _VERBS.values() for k in v.undo}
    for kind in verb.undo:
        if kind not in still:
            _UNDO.pop(kind, None)


def _decorator(kind: str, name: str, params, doc: str, **kw):
    def wrap(fn):
        register(Verb(name=name, kind=kind, params=params, run=fn, doc=doc, **kw))
        return fn
    return wrap


def action(name: str, params, doc: str, **kw):
    """Decorator: register the executor ``fn(ctx, step) -> ActionResult`` as action *name*."""
    return _decorator(ACTION, name, params, doc, **kw)


def fault(name: str, params, doc: str, **kw):
    """Decorator: register ``fn(ctx, step) -> facts dict`` as fault *name* (write the ledger's
    ``fault.apply`` with one of its ``undo`` kinds before acting)."""
    return _decorator(FAULT, name, params, doc, **kw)


def check(name: str, params, doc: str, **kw):
    """Decorator: register ``fn(ctx, params) -> Verdict`` as check *name*."""
    return _decorator(CHECK, name, params, doc, **kw)


def get(name: str) -> Verb:
    """The verb *name*; KeyError when none is registered."""
    return _VERBS[name]


def verbs(*kinds: str) -> list[Verb]:
    """Registered verbs of *kinds* (all without), in registration order."""
    return [v for v in _VERBS.values() if not kinds or v.kind in kinds]


def step_verbs() -> list[Verb]:
    """What a step may do: actions and faults."""
    return verbs(ACTION, FAULT)


def check_verbs() -> list[Verb]:
    return verbs(CHECK)


def undo_kinds() -> dict[str, Callable[[dict, Any], str]]:
    return dict(_UNDO)


def replay_undo(spec: dict, engine=None) -> str:
    """Undo one fault per its ledger *spec* (``{"kind": ..., ...}``) with the function its fault
    registered for that kind; returns what was done (one line). *engine*: the running engine
    (None in ``capsize recover``)."""
    fn = _UNDO.get(spec.get("kind"))
    if fn is None:
        return f"unknown undo kind {spec.get('kind')!r}: nothing done"
    return fn(spec, engine)


def undo_outstanding(ctx, fault_name: str) -> list[str]:
    """Undo, now, every outstanding ``fault.apply`` of fault *fault_name* in this run (a fault
    that ends another, e.g. ``fault.socket.open``); marks them undone by the harness and returns
    what each undo did (one line each)."""
    done = []
    for e in ctx.ledger.outstanding(ctx.run):
        if e["fault"] == fault_name:
            done.append(replay_undo(e["undo"], ctx.engine))
            ctx.ledger.undone(ctx.run, e["id"], "harness", done[-1])
    return done


def execute(ctx, step):
    """Run the action or fault of *step* (not ``await``); returns an ActionResult and never
    raises for what the engine does (a CapsizeError is a ``fail`` outcome)."""
    from harness.context import ActionResult
    from runtime.errors import CapsizeError
    verb = get(step.action)
    start_wall, start = time.time(), time.monotonic()
    try:
        if verb.kind == FAULT:
            res = ActionResult(wall=start_wall, mono=start)
            try:
                res.value = verb.run(ctx, step) or {}
                res.outcome = "ok"
            except OSError as e:
                res.outcome, res.error = "fail", f"{type(e).__name__}: {e}"
            res.duration = time.monotonic() - start
            return res
        return verb.run(ctx, step)
    except CapsizeError as e:
        return ActionResult(outcome="fail", wall=start_wall, mono=start, error=str(e),
                            duration=time.monotonic() - start)


def evaluate_once(ctx, spec) -> Verdict:
    """One evaluation of a check spec (``spec.kind``, ``spec.params``; no timing); an
    :class:`~runtime.errors.Unimplemented` from the engine is n/a with its message."""
    from runtime.errors import Unimplemented
    try:
        return get(spec.kind).run(ctx, spec.params)
    except Unimplemented as e:
        return Verdict(NA, reason=str(e))
