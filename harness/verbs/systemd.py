"""Engines under systemd: faults on units (``fault.service.*``) and the ``service.state`` check.

One registration each (:mod:`harness.verbs.registry`); each needs the engine capability
``systemd`` (:attr:`harness.engines.systemd.SystemdUnits.systemd`). A unit is named by role
(``component: daemon|runtime``, ``socket: true``: each engine acts on its own units) or by name.
Undo kinds: ``service`` (``systemctl <verb> <unit>``: a stopped unit is started again) and
``dropin`` (remove the systemd drop-in at ``path``, then ``systemctl daemon-reload``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from harness.engines.systemd import dropin_path, remove_dropin, systemctl
from harness.scenario.types import Model
from harness.verbs.registry import FAIL, PASS, Verdict, check, fault
from runtime.errors import Unimplemented


def require_systemd(engine) -> None:
    """Raise Unimplemented unless *engine* declares the capability ``systemd``."""
    if "systemd" not in engine.capabilities():
        raise Unimplemented(f"engine {engine.name} has no systemd units")


UnitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9@_.:-]+\.(service|socket)$")]


class UnitRef(Model):
    """A systemd unit, by name (``unit: docker.service``) or by role, so that one scenario names
    the right unit on each engine: ``component: daemon`` (docker.service, capsized.service),
    ``component: runtime`` (containerd.service, capsize-runtimed.service), ``component: daemon,
    socket: true`` (docker.socket, capsized.socket). Engines under systemd only."""

    unit: UnitName | None = None
    component: Literal["daemon", "runtime"] | None = None
    socket: bool = False

    @model_validator(mode="after")
    def _one(self):
        if (self.unit is None) == (self.component is None):
            raise ValueError("name the unit with exactly one of unit, component")
        if self.socket and self.component != "daemon":
            raise ValueError("socket: true is for component: daemon (its socket unit)")
        return self

    def resolve(self, engine) -> str:
        """The unit's name on *engine*; Unimplemented when the engine has no capability ``systemd``."""
        require_systemd(engine)
        if self.unit:
            return self.unit
        return engine.unit_of(self.component, socket=self.socket)

    def describe(self) -> str:
        return self.unit or (f"{self.component}'s socket unit" if self.socket else f"{self.component}'s unit")


class FaultService(UnitRef):
    """``fault.service.stop|start|restart``: ``systemctl <verb>`` on a unit (engines under systemd).
    A stop is undone (ledger) by a start of the same unit."""


class FaultDropin(UnitRef):
    """``fault.service.dropin``: a runtime drop-in ``/run/systemd/system/<unit>.d/*.conf`` with
    ``[section]`` and ``settings`` (e.g. ``{KillMode: control-group}``), then ``daemon-reload``.
    It takes effect at the unit's next stop/start (KillMode: at its next stop). The undo
    (ledger; before teardown) removes it and reloads again."""

    section: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z]+$")] = "Service"
    #: A list value gives one line per item (``Environment: [A=1, B=2]``).
    settings: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]+$")], str | int | bool | list[str | int]] = {}
    #: Settings cleared first with an empty assignment (``[ExecStart]`` writes ``ExecStart=``, so
    #: that ``settings``' ExecStart replaces the unit's instead of adding a second one).
    reset: list[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]+$")]] = []
    #: The file's name (``/run/systemd/system/<unit>.d/50-capsize-<run>-<name>.conf``); default:
    #: the step's id, else its position: several drop-ins per unit live side by side.
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")] | None = None

    @field_validator("settings")
    @classmethod
    def _lines(cls, v):
        for k, val in v.items():
            if any("\n" in str(x) for x in (val if isinstance(val, list) else [val])):
                raise ValueError(f"setting {k}: one line only")
        return v

    @model_validator(mode="after")
    def _some(self):
        if not self.settings and not self.reset:
            raise ValueError("give at least one setting, e.g. {KillMode: control-group}, or a reset")
        return self


class ServiceStateCheck(UnitRef):
    """A systemd unit's properties as ``systemctl show`` prints them: every one in ``properties``
    must be equal (``{ActiveState: active, KillMode: process}``); ``entered_since: <step id>``:
    the unit (re)entered the active state after that step began (``ActiveEnterTimestampMonotonic``),
    i.e. it was started again — with a new main PID for a service that had been stopped."""

    properties: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]+$")], str] = {}
    entered_since: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")] | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.properties and self.entered_since is None:
            raise ValueError("give properties, entered_since or both")
        return self




def undo_service(spec: dict, engine=None) -> str:
    r = systemctl(spec["verb"], spec["unit"])
    return f"systemctl {spec['verb']} {spec['unit']}: exit {r.returncode} {r.stderr.strip()}".strip()


def undo_dropin(spec: dict, engine=None) -> str:
    return remove_dropin(spec["path"])


_UNIT_DOC = ("a unit, by role — `component` (`daemon`, `runtime`) and `socket: true` (the daemon's socket unit) — "
             "or by name, `unit` (`docker.service`)")


def _service(ctx, step, verb: str) -> dict:
    eng, led, run = ctx.engine, ctx.ledger, ctx.run
    unit = step.params.resolve(eng)  # Unimplemented (a CapsizeError): the step fails with it
    undo = {"kind": "service", "verb": "start", "unit": unit} if verb == "stop" else None
    fid = led.apply(run, step.action, {"unit": unit}, undo)
    facts = eng.service(verb, unit)
    if verb in ("start", "restart"):
        for e in led.outstanding(run):
            if e["fault"] == "fault.service.stop" and e["target"]["unit"] == unit:
                led.undone(run, e["id"], "harness", f"started by step ({fid})")
    return facts


@fault("fault.service.stop", FaultService, f"`systemctl stop` on {_UNIT_DOC}; undone (ledger) by a start. "
       "The result has the unit's main PID before and after", needs=("systemd",), undo={"service": undo_service})
def fault_service_stop(ctx, step) -> dict:
    return _service(ctx, step, "stop")


@fault("fault.service.start", FaultService, "`systemctl start` on a unit as for `fault.service.stop` "
       "(settles its stop)", needs=("systemd",))
def fault_service_start(ctx, step) -> dict:
    return _service(ctx, step, "start")


@fault("fault.service.restart", FaultService, "`systemctl restart` on a unit as for `fault.service.stop`",
       needs=("systemd",))
def fault_service_restart(ctx, step) -> dict:
    return _service(ctx, step, "restart")


@fault("fault.service.dropin", FaultDropin, "a runtime drop-in `/run/systemd/system/<unit>.d/50-capsize-<run>-<name>.conf` "
       "(one per step: several per unit) with `[section]` (default `Service`), `reset` (`[ExecStart]`: an empty "
       "`ExecStart=` first) and `settings` (`{KillMode: control-group}`; a list: one line each), then "
       "`daemon-reload` (KillMode applies at the unit's next stop, ExecStart/Environment at its next start; "
       "capsized: `Environment: CAPSIZED_OPTS=--live-restore`); undone (ledger; `capsize recover` too) by removing it and "
       "reloading", needs=("systemd",), undo={"dropin": undo_dropin})
def fault_service_dropin(ctx, step) -> dict:
    p, eng = step.params, ctx.engine
    unit = p.resolve(eng)
    # by default the step's id, else a number that never repeats in the run (an undone drop-in's
    # number is not reused: two drop-ins never share a file)
    name = dropin_name(ctx.run, p.name or step.id or str(ctx.ledger.applied + 1))
    path = dropin_path(unit, name)
    ctx.ledger.apply(ctx.run, step.action, {"unit": unit, "section": p.section, "settings": dict(p.settings),
                                            "reset": list(p.reset)},
                     {"kind": "dropin", "path": path, "unit": unit})
    eng.add_dropin(unit, name, p.section, p.settings, p.reset)
    return {"unit": unit, "path": path, "now": eng.unit_properties(unit, *dict.fromkeys([*p.reset, *p.settings]))}


def dropin_name(run: str, part: str) -> str:
    """``50-capsize-<run>-<part>``, reduced to characters safe in a unit file name."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{run}-{part}")
    return "50-capsize-" + safe[:100]


@check("service.state", ServiceStateCheck, "every property equals; with `entered_since`, the unit (re)entered "
       "active after that step began (`ActiveEnterTimestampMonotonic`: it was started again, a new main PID). "
       "Engines under systemd only (n/a elsewhere)", needs=("systemd",),
       params_doc=f"{_UNIT_DOC}, `properties` (`{{ActiveState: active, KillMode: process}}`: `systemctl show` "
                  "values), `entered_since` (a step id)")
def service_state(ctx, p: ServiceStateCheck) -> Verdict:
    """systemctl show's properties of the unit; ``entered_since``: ActiveEnterTimestampMonotonic
    (µs, CLOCK_MONOTONIC, the clock of time.monotonic()) after the step began."""
    unit = p.resolve(ctx.engine)
    names = list(p.properties) + ["ActiveState", "SubState", "MainPID", "ActiveEnterTimestampMonotonic"]
    seen = ctx.engine.unit_properties(unit, *dict.fromkeys(names))
    expected: dict = dict(p.properties)
    bad = [k for k, v in p.properties.items() if seen.get(k) != v]
    if p.entered_since is not None:
        began = ctx.step_started.get(p.entered_since)
        expected["entered_since"] = p.entered_since
        if began is None:
            return Verdict(FAIL, expected, seen, reason=f"step {p.entered_since} did not run")
        try:
            entered = int(seen.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
        except ValueError:
            entered = 0.0
        seen = {**seen, "entered_active_t": ctx.t(entered) if entered else None,
                "step_began_t": ctx.t(began)}
        if entered <= began or seen.get("ActiveState") != "active":
            bad.append("entered_since")
    why = [f"{k} is {seen.get(k)!r}" if k != "entered_since" else
           f"not (re)entered active since step {p.entered_since}" for k in bad]
    return Verdict(FAIL if bad else PASS, {"unit": unit, **expected}, seen, [{"unit": unit, "show": seen}],
                   f"{unit}: {', '.join(why)}" if bad else "")
