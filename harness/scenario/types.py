"""The shared types of scenario files (pydantic v2): durations, signals, text matches, roles,
container names, expectations, component targets and event matches.

Used by the verb families (:mod:`harness.verbs`) for their parameter models and by
:mod:`harness.scenario.models` for the Step, Check and Scenario models. Durations are seconds
(int/float) or strings with a unit: ``500ms``, ``2s``, ``1.5m``. Text matches are a string
(substring) or ``{regex: ...}`` / ``{equals: ...}``. Every model forbids unknown keys, so a
typo is an error (the loader adds the nearest valid word).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from harness.engines import NAMES
from harness.engines.base import ALL_ROLES
from runtime import signals

#: Engine names, as the engine package declares them (:data:`harness.engines.NAMES`).
ENGINES = NAMES
EngineName = Literal[NAMES]
#: Roles a fault or a check can name; an engine declares the ones it has
#: (:attr:`harness.engines.base.Engine.roles`: ``lowlevel`` on capsize's engines only).
ROLES = ALL_ROLES
Role = Literal[ALL_ROLES]
RUNTIMES = ("capsize-runc", "runc", "crun")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``2``, ``2.5``, ``"500ms"``, ``"2s"``, ``"1.5m"``, ``"1h"``. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 2s, 500ms, 1m")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration: use seconds or a string like 2s, 500ms, 1m")


Duration = Annotated[float, BeforeValidator(parse_duration),
                     WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                                               {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"}],
                                     "description": "seconds, or a string like 500ms, 2s, 1m"})]


def parse_signal(value: Any) -> int:
    """A signal number from ``9``, ``"9"``, ``"KILL"``, ``"SIGKILL"`` (:func:`runtime.signals.parse`).
    Raises ValueError with the scenario author's wording."""
    if isinstance(value, bool):
        raise ValueError("a signal is a name like SIGKILL or a number")
    try:
        return signals.parse(value)
    except ValueError:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            raise ValueError(f"signal {int(value)} is out of range 1..{signals.MAX}") from None
    raise ValueError(f"{value!r} is not a signal: use a name like SIGKILL, SIGTERM, SIGSTOP or a number")


Signal = Annotated[int, BeforeValidator(parse_signal),
                   WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 64},
                                             {"type": "string", "pattern": "^(SIG)?[A-Z0-9+-]+$|^[0-9]+$"}],
                                   "description": "a signal name (SIGKILL, KILL) or number"})]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# -- text matching and expectations ---------------------------------------------------------------

class TextMatch(Model):
    """Match a text: ``regex`` (re.search) or ``equals`` (whole text, stripped)."""

    regex: str | None = None
    equals: str | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.regex is None) == (self.equals is None):
            raise ValueError("give exactly one of regex, equals")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as e:
                raise ValueError(f"bad regex: {e}") from None
        return self

    def matches(self, text: str) -> bool:
        if self.regex is not None:
            return re.search(self.regex, text or "") is not None
        return (text or "").strip() == self.equals.strip()

    def describe(self) -> str:
        return f"/{self.regex}/" if self.regex is not None else f"== {self.equals!r}"


Text = Union[str, TextMatch]


def text_matches(pattern: Text, text: str) -> bool:
    """True when *text* contains *pattern* (a string) or matches it (a :class:`TextMatch`)."""
    if isinstance(pattern, str):
        return pattern in (text or "")
    return pattern.matches(text)


def describe_text(pattern: Text) -> str:
    return f"contains {pattern!r}" if isinstance(pattern, str) else pattern.describe()


class DurationBound(Model):
    min: Duration | None = None
    max: Duration | None = None


Outcome = Literal["ok", "fail", "unknown"]


class Expect(Model):
    """What a step's result must be. Unset fields are not checked; the default is ``outcome: ok``.

    ``outcome``: ok | fail | unknown (Jepsen's: ok = it happened, fail = it certainly did not,
    unknown = the outcome could not be known, e.g. the connection broke mid-call). ``exit_code``:
    the CLI's exit code, or the status code ``container.wait`` returned. ``status_code``: the
    HTTP status of an Engine API error. ``error``: the error text (the API's message, or the
    CLI's stderr). ``duration``: bounds in seconds.
    """

    outcome: Outcome | list[Outcome] | None = None
    exit_code: int | list[int] | None = None
    status_code: int | None = None
    error: Text | None = None
    stdout: Text | None = None
    stderr: Text | None = None
    duration: DurationBound | None = None



# -- shared by several verb families ----------------------------------------------------------------

# No parameters (``orphans.none: {}``, ``fault.syscall.clear: {}``).
class Empty(Model):
    pass


ContainerName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")]


class FaultTarget(Model):
    """A component by role; ``container`` names the container for ``shim`` and ``container``."""

    component: Role
    container: ContainerName | None = None

    @model_validator(mode="after")
    def _needs_container(self):
        if self.component in ("shim", "container") and not self.container:
            raise ValueError(f"component {self.component} needs container: <name>")
        if self.component in ("daemon", "runtime") and self.container:
            raise ValueError(f"component {self.component} takes no container")
        return self


class EventMatch(Model):
    """An event: ``source`` daemon|runtime, ``action`` (dockerd's Action such as ``die``; containerd's
    topic such as ``/tasks/exit``), ``container`` (a scenario name), ``attrs`` (all must equal)."""

    source: Literal["daemon", "runtime"] = "daemon"
    action: str
    container: ContainerName | None = None
    attrs: dict[str, str] = {}


