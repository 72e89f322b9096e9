"""Loading scenario files: YAML with line numbers, per-engine ``${name}`` substitution, validation.

:func:`load` returns a :class:`LoadedScenario` (the file, the raw data and one validated
:class:`~harness.scenario.models.Scenario` per engine it applies to) or raises
:class:`ScenarioError`, whose ``str()`` is one line ``file:line:column: field: message (did you
mean 'word'?)``. :func:`find_files` turns paths (files or directories, searched recursively for
``*.yaml``/``*.yml``) into scenario files. Nothing here starts anything.
"""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.engines import DEFAULT, capabilities, engine_class, engines_with
from harness.engines.base import CAPABILITY_NOTES
from harness.scenario import models as m
from harness.suggest import nearest
from harness.verbs import registry
from runtime.errors import InvalidArgument
from runtime.lowlevel.cgroups import layout as cgroup_layout

_VAR = re.compile(r"\$\{([^}]*)\}")


class ScenarioError(InvalidArgument):
    """A scenario file is wrong. ``str(err)`` is ``file:line:column: message``; exit code 2."""

    def __init__(self, path: str, line: int, column: int, message: str):
        super().__init__(f"{path}:{line}:{column}: {message}", path=path, line=line, column=column)
        self.path, self.line, self.column, self.detail = path, line, column, message


class NotApplicable(Exception):
    """The scenario needs a capability that an engine it names lacks by design (the engine class
    declares why: :attr:`harness.engines.base.Engine.missing`): n/a there, not an error."""


@dataclass
class LoadedScenario:
    """A validated scenario file: ``by_engine[engine]`` is the Scenario with that engine's values;
    ``not_applicable[engine]`` is why it is n/a on a named engine that lacks a capability by design."""

    path: str
    data: dict
    by_engine: dict[str, m.Scenario] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def engines(self) -> list[str]:
        """Every engine the file names, n/a ones included (in the file's order)."""
        order = self.data.get("engines") or list(self.by_engine)
        return [e for e in dict.fromkeys(order) if e in self.by_engine or e in self.not_applicable]

    @property
    def any(self) -> m.Scenario:
        return next(iter(self.by_engine.values()))


# -- YAML with positions ---------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    pass


def _compose(path: str, text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioError(path, line, col, f"YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(path, 1, 1, f"YAML: {e}") from None


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _check_duplicates(path: str, node: yaml.Node) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key in seen:
                raise ScenarioError(path, *_pos(k), f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = k.start_mark.line + 1
            _check_duplicates(path, v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(path, item)


def _child(node: yaml.Node, part: Any, key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and part in m.TIMING_FIELDS:
        # a check's timing may sit inside its kind's mapping (Check._lift_timing)
        found = _direct(node, part, key)
        if found is None:
            for _, v in node.value:
                if isinstance(v, yaml.MappingNode) and _direct(v, part, key) is not None:
                    return _direct(v, part, key)
        return found
    return _direct(node, part, key)


def _direct(node: yaml.Node, part: Any, key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                return k if key else v
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def node_at(root: yaml.Node, loc: tuple, key: bool = False) -> yaml.Node:
    """The deepest YAML node along *loc* (parts that are not in the file, e.g. union tags, are skipped).

    With *key*, the last part's key node (to point at an unknown key rather than its value)."""
    node = root
    for i, part in enumerate(loc):
        nxt = _child(node, part, key=key and i == len(loc) - 1)
        if nxt is not None:
            node = nxt
    return node


# -- nearest valid word ------------------------------------------------------------------------------

def _unwrap(t):
    """The model/list/dict types inside Optional/Annotated/Union annotations."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(t)[0])
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(t) if a is not type(None)]
        return members
    return t


def _descend(t, part):
    for cand in (t if isinstance(t, list) else [t]):
        cand = _unwrap(cand)
        if isinstance(cand, list):
            r = _descend(cand, part)
            if r is not None:
                return r
            continue
        origin = typing.get_origin(cand)
        if isinstance(part, int) and origin is list:
            return typing.get_args(cand)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(cand)[1]
        if isinstance(cand, type) and issubclass(cand, BaseModel) and isinstance(part, str):
            if part == cand.__name__:
                return cand
            for name, f in cand.model_fields.items():
                if part in (name, f.alias):
                    return f.annotation
    return None


def allowed_keys(t) -> list[str]:
    """The keys a mapping of type *t* (a model, or a union holding one) may have."""
    for cand in (t if isinstance(t, list) else [t]):
        cand = _unwrap(cand)
        if isinstance(cand, list):
            keys = allowed_keys(cand)
            if keys:
                return keys
        elif isinstance(cand, type) and issubclass(cand, BaseModel):
            return [f.alias or n for n, f in cand.model_fields.items()]
    return []


def _type_at(loc: tuple):
    t = m.Scenario
    for part in loc:
        t = _descend(t, part)
        if t is None:
            return None
    return t


# -- substitution ------------------------------------------------------------------------------------

def _substitute(path: str, value: Any, node: yaml.Node | None, values: dict[str, Any], engine: str) -> Any:
    if isinstance(value, str) and "${" in value:
        def lookup(name: str):
            if name not in values:
                line, col = _pos(node) if node is not None else (1, 1)
                raise ScenarioError(path, line, col, f"${{{name}}} is not in expected{nearest(name, values)}")
            per = values[name]
            for key in m.expected_keys(engine, cgroup_layout()):
                if key in per:
                    return per[key]
            line, col = _pos(node) if node is not None else (1, 1)
            raise ScenarioError(path, line, col, f"expected.{name} has no value for engine {engine} (and no default)")
        whole = _VAR.fullmatch(value.strip())
        if whole:
            return lookup(whole.group(1))
        return _VAR.sub(lambda mt: str(lookup(mt.group(1))), value)
    if isinstance(value, dict):
        return {k: _substitute(path, v, _child(node, k) if node is not None else None, values, engine)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(path, v, _child(node, i) if node is not None else None, values, engine)
                for i, v in enumerate(value)]
    return value


# -- loading -----------------------------------------------------------------------------------------

def _validation_error(path: str, root: yaml.Node, err: ValidationError, engine: str, n_engines: int) -> ScenarioError:
    """The first error in the file: per top-level item (a field, one step, one check) the most
    specific of pydantic's errors (unknown keys and missing fields first, then the longest
    location: a union reports every alternative), then the one that comes first in the file."""
    rank = {"extra_forbidden": 0, "missing": 1}
    groups: dict[tuple, list[dict]] = {}
    for e in err.errors(include_url=False):
        groups.setdefault(tuple(e["loc"][:2]), []).append(e)
    found = [_one_error(path, root, sorted(g, key=lambda x: (rank.get(x["type"], 2), -len(x["loc"])))[0],
                        engine, n_engines) for g in groups.values()]
    return min(found, key=lambda se: (se.line, se.column))


def _one_error(path: str, root: yaml.Node, e: dict, engine: str, n_engines: int) -> ScenarioError:
    loc = tuple(e["loc"])
    shown = ".".join(str(p) for p in loc if _in_file(p))
    if e["type"] == "extra_forbidden":
        node = node_at(root, loc, key=True)
        parent = _type_at(tuple(p for p in loc[:-1]))
        msg = f"unknown field {loc[-1]!r}{nearest(loc[-1], allowed_keys(parent) if parent is not None else [])}"
    elif e["type"] == "missing":
        node = node_at(root, loc[:-1])
        msg = f"missing field {loc[-1]!r}"
    else:
        node = node_at(root, loc)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":
            choices = re.findall(r"'([^']*)'", msg)
            msg += nearest(e.get("input", ""), choices)
    where = f"{shown}: " if shown else ""
    suffix = f" [engine {engine}]" if n_engines > 1 and "${" in _raw_text(node) else ""
    return ScenarioError(path, *_pos(node), f"{where}{msg}{suffix}")


def _in_file(part) -> bool:
    """Whether a pydantic location part is a key or index of the file (not a union member's tag)."""
    return not isinstance(part, str) or not part[:1].isupper() and "[" not in part and part != "check"


def _raw_text(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else ""


def _prepass(path: str, root: yaml.Node, data: dict) -> None:
    """Unknown action/check keys with the nearest valid word, before pydantic's generic messages."""
    actions = [v.name for v in registry.step_verbs()]
    checks = [v.name for v in registry.check_verbs()]
    step_keys = set(actions) | set(m.STEP_FIELDS)
    check_keys = set(checks) | set(m.TIMING_FIELDS)
    top = allowed_keys(m.Scenario)
    for key in data:
        if key not in top:
            raise ScenarioError(path, *_pos(node_at(root, (key,), key=True)),
                                f"unknown field {key!r}{nearest(key, top)}")
    for section, keys, verbs, what in (("setup", step_keys, actions, "action"),
                                       ("steps", step_keys, actions, "action"),
                                       ("teardown", step_keys, actions, "action"),
                                       ("checks", check_keys, checks, "check")):
        items = data.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ScenarioError(path, *_pos(node_at(root, (section,))), f"{section}: a list is needed")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ScenarioError(path, *_pos(node_at(root, (section, i))),
                                    f"{section}.{i}: a mapping with one {what} is needed, e.g. "
                                    + ("'- sleep: 1s'" if what == "action" else "'- orphans.none: {}'"))
            for key in item:
                if key not in keys:
                    raise ScenarioError(path, *_pos(node_at(root, (section, i, key), key=True)),
                                        f"{section}.{i}: unknown {what} or field {key!r}{nearest(key, keys)}")
            if not any(k in verbs for k in item):
                raise ScenarioError(path, *_pos(node_at(root, (section, i))),
                                    f"{section}.{i}: no {what}: use one of {', '.join(sorted(verbs))}")


def _missing_capability(path: str, root: yaml.Node, loc: tuple, verb, params, engine: str, where: str,
                        noun: str, what: str) -> None:
    """Raise ScenarioError for the first capability *verb* with *params* needs that *engine*
    lacks (its class declares them: :meth:`harness.engines.base.Engine.capabilities`)."""
    have = capabilities(engine)
    lacks = engine_class(engine).missing
    for need in verb.needs_of(params):
        if need.capability in have:
            continue
        if need.capability in lacks:
            raise NotApplicable(f"{where}: {need.what}: engine {engine} lacks it ({lacks[need.capability]})")
        only = engines_with(need.capability)
        note = CAPABILITY_NOTES.get(need.capability)
        node = node_at(root, loc + (verb.name, need.field)) if need.field else \
            node_at(root, loc + (verb.name,), key=True)
        restrict = (f"restrict the {what} (engines: [{only[0]}]) or the scenario" if need.field is None
                    else f"restrict the {what} with engines: [{only[0]}]") if only else "no engine has it"
        raise ScenarioError(path, *_pos(node), f"{where}: {need.what} only on {noun} {', '.join(only) or 'none'}"
                            + (f" ({note})" if note else "") + f": {restrict}")


def _crossref(path: str, root: yaml.Node, sc: m.Scenario, engine: str) -> None:
    """References between parts: ids, await/before/after targets, containers, engine capabilities."""
    ids: dict[str, tuple] = {}
    containers: set[str] = set()
    for section, i, step in sc.all_steps():
        if step.id:
            if step.id in ids or step.id == "teardown":
                raise ScenarioError(path, *_pos(node_at(root, (section, i, "id"))),
                                    f"{section}.{i}.id: {step.id!r} is used twice (or reserved)")
            ids[step.id] = (section, i)
        if step.verb.creates is not None:
            containers.update(step.verb.creates(step.params))
    for section, i, step in sc.all_steps():
        loc = (section, i)
        if step.engines and engine not in step.engines:
            continue
        verb, params = step.verb, step.params
        if verb.awaits:
            target = ids.get(params)
            if target is None or not sc_step(sc, target).background:
                raise ScenarioError(path, *_pos(node_at(root, loc + (verb.name,))),
                                    f"{section}.{i}.{verb.name}: no background step with id {params!r}"
                                    + nearest(params, [k for k, v in ids.items() if sc_step(sc, v).background]))
        _missing_capability(path, root, loc, verb, params, engine, f"{section}.{i}", "engine", "step")
        name = getattr(params, verb.container_field) if verb.container_field else None
        if name and name not in containers:
            raise ScenarioError(path, *_pos(node_at(root, loc + (verb.name, verb.container_field))),
                                f"{section}.{i}: no container {name!r} is created by this scenario"
                                + nearest(name, containers))
    for j, check in enumerate(sc.checks):
        loc = ("checks", j)
        for field_name in ("before", "after"):
            target = getattr(check, field_name)
            if target and target not in ids and not (field_name == "after" and target == "teardown"):
                raise ScenarioError(path, *_pos(node_at(root, loc + (field_name,))),
                                    f"checks.{j}.{field_name}: no step with id {target!r}"
                                    + nearest(target, list(ids) + ["teardown"]))
        verb, p = check.verb, check.params
        for ref in ("entered_since", "since"):   # a check's parameter naming a step id
            since = getattr(p, ref, None)
            if since and since not in ids:
                raise ScenarioError(path, *_pos(node_at(root, loc + (check.kind, ref))),
                                    f"checks.{j}.{check.kind}.{ref}: no step with id {since!r}"
                                    + nearest(since, list(ids)))
        if not check.engines or engine in check.engines:
            _missing_capability(path, root, loc, verb, p, engine, f"checks.{j}", "engines", "check")
        name = getattr(p, verb.container_field) if verb.container_field else None
        if name and name not in containers:
            raise ScenarioError(path, *_pos(node_at(root, loc + (check.kind,))),
                                f"checks.{j}.{check.kind}: no container {name!r} is created by this scenario"
                                + nearest(name, containers))


def sc_step(sc: m.Scenario, where: tuple) -> m.Step:
    section, i = where
    return getattr(sc, section)[i]


def load(path: str) -> LoadedScenario:
    """Read, validate and cross-check the scenario file *path* for every engine it names.

    Raises ScenarioError (one line with file:line:column) for anything wrong, InvalidArgument
    when the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(path, 1, 1, "not UTF-8 text") from None
    root = _compose(path, text)
    if root is None or not isinstance(root, yaml.MappingNode):
        raise ScenarioError(path, 1, 1, "a scenario is a YAML mapping with name, steps and checks")
    _check_duplicates(path, root)
    data = yaml.load(text, Loader=_Loader)
    _prepass(path, root, data)
    loaded = LoadedScenario(path=path, data=data)
    expected = data.get("expected") or {}
    if not isinstance(expected, dict) or not all(isinstance(v, dict) for v in expected.values()):
        raise ScenarioError(path, *_pos(node_at(root, ("expected",))),
                            "expected: a mapping of name -> {engine: value, default: value}")
    engines = data.get("engines", list(m.Scenario.model_fields["engines"].default))
    if not isinstance(engines, list) or not engines:
        engines = [DEFAULT]  # let the model report the type error
    for engine in dict.fromkeys(engines):
        if engine not in m.ENGINES:
            raise ScenarioError(path, *_pos(node_at(root, ("engines", engines.index(engine)))),
                                f"engines: unknown engine {engine!r}{nearest(engine, m.ENGINES)}")
        try:
            subst = {k: (_substitute(path, v, _child(root, k), expected, engine) if k != "expected" else v)
                     for k, v in data.items()}
            try:
                sc = m.Scenario.model_validate(subst)
            except ValidationError as err:
                raise _validation_error(path, root, err, engine, len(engines)) from None
        except ScenarioError:
            # an engine lacking a capability by design needs no expected values for a scenario
            # that is n/a there: judge it on another engine's reading of the file
            why = _not_applicable_on(path, root, loaded, engine)
            if why is None:
                raise
            loaded.not_applicable[engine] = why
            continue
        try:
            _crossref(path, root, sc, engine)
        except NotApplicable as e:
            loaded.not_applicable[engine] = str(e)
            continue
        _place(path, root, sc)
        loaded.by_engine[engine] = sc
    return loaded


def _not_applicable_on(path: str, root: yaml.Node, loaded: LoadedScenario, engine: str) -> str | None:
    """Why the scenario is n/a on *engine* (a capability it lacks by design), judged on the first
    engine's reading of it; None when it applies (or no other engine read it)."""
    if not engine_class(engine).missing or not loaded.by_engine:
        return None
    try:
        _crossref(path, root, loaded.any, engine)
    except NotApplicable as e:
        return str(e)
    except ScenarioError:
        return None
    return None


def _place(path: str, root: yaml.Node, sc: m.Scenario) -> None:
    """Give every step and check of *sc* its ``file:line`` (``source``) from the YAML nodes."""
    for section in ("setup", "steps", "teardown", "checks"):
        for i, item in enumerate(getattr(sc, section)):
            node = _direct(_direct(root, section) or root, i)
            if node is not None:
                item._source = f"{path}:{_pos(node)[0]}"


def find_files(paths: list[str]) -> list[str]:
    """Scenario files from *paths*: files as given, directories searched for ``*.yaml``/``*.yml``
    (sorted; files named ``schema*`` and hidden dirs skipped). Raises InvalidArgument for a
    path that does not exist or a directory without scenario files."""
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            inside = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                inside += [os.path.join(dirpath, f) for f in sorted(filenames)
                           if f.endswith((".yaml", ".yml")) and not f.startswith("schema")]
            if not inside:
                raise InvalidArgument(f"{p}: no scenario files (*.yaml) in this directory")
            found += inside
        elif os.path.exists(p):
            found.append(p)
        else:
            raise InvalidArgument(f"{p}: no such file or directory")
    return list(dict.fromkeys(found))


class ScenarioErrors(InvalidArgument):
    """Several scenario files are wrong: :attr:`errors` (ScenarioError), one line each in ``str``."""

    def __init__(self, errors: list[ScenarioError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def load_all(paths: list[str]) -> list[LoadedScenario]:
    """Load every scenario file under *paths*. Names must be unique. Every bad file is reported:
    one ScenarioError for one, ScenarioErrors (a line per file) for several."""
    result, names, errors = [], {}, []
    for path in find_files(paths):
        try:
            sc = load(path)
        except ScenarioError as e:
            errors.append(e)
            continue
        if sc.name in names:
            errors.append(ScenarioError(path, 1, 1, f"name {sc.name!r} is used by {names[sc.name]} too"))
            continue
        names[sc.name] = path
        result.append(sc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ScenarioErrors(errors)
    return result
