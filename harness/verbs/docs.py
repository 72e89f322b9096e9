"""scenarios/README.md's verb tables, generated from the registry (:mod:`harness.verbs.registry`).

Two tables, each between markers in the README::

    <!-- generated: steps (capsize docs) -->   ...   <!-- end: steps -->
    <!-- generated: checks (capsize docs) -->  ...   <!-- end: checks -->

A row per verb: its name, its parameters (a model's fields by their scenario names, with the
choices of a ``Literal`` or the default; a scalar verb's ``params_doc``), what it needs of the
engine (capabilities, :meth:`harness.engines.base.Engine.capabilities`) and its documentation
line. :func:`render_readme` replaces the tables in a README's text; ``capsize docs`` writes them
(and the JSON Schema), ``capsize docs --check`` fails when the checked-in files differ.
"""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from harness.verbs import registry

TABLES = ("steps", "checks")


def _begin(name: str) -> str:
    return f"<!-- generated: {name} (capsize docs) -->"


def _end(name: str) -> str:
    return f"<!-- end: {name} -->"


def _choices(annotation) -> list[str]:
    """The values of a Literal inside *annotation* (Optional/list/Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    out = []
    for arg in typing.get_args(annotation) if origin is not None else ():
        out += [c for c in _choices(arg) if c not in out]
    return out


def params_text(verb: registry.Verb) -> str:
    """The parameters column of *verb*'s row."""
    if verb.params_doc:
        return verb.params_doc
    model = verb.params
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return "–"
    parts = []
    for name, f in model.model_fields.items():
        text = f"`{f.alias or name}`"
        choices = _choices(f.annotation)
        if choices:
            text += f" ({', '.join(choices)})"
        elif not f.is_required() and f.default not in (None, "", [], {}, False) and \
                isinstance(f.default, (str, int, float)):
            text += f" ({f.default:g} s)" if isinstance(f.default, float) else f" ({f.default})"
        parts.append(text)
    return ", ".join(parts) or "–"


def needs_text(verb: registry.Verb) -> str:
    """The needs column: the capabilities, or the first line of the function that derives them."""
    if callable(verb.needs):
        return (verb.needs.__doc__ or "").strip().splitlines()[0] if verb.needs.__doc__ else "by parameter"
    return ", ".join(f"`{c}`" for c in verb.needs) or "–"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(name: str) -> str:
    """The Markdown table *name* (``steps`` or ``checks``), without markers."""
    if name == "steps":
        rows = ["| action | kind | parameters | needs | what it does |", "|---|---|---|---|---|"]
        for v in registry.step_verbs():
            flags = " (background)" if v.background else ""
            rows.append(f"| `{v.name}` | {v.kind}{flags} | {_cell(params_text(v))} | {_cell(needs_text(v))} "
                        f"| {_cell(v.doc)} |")
    elif name == "checks":
        rows = ["| check | parameters | needs | passes when |", "|---|---|---|---|"]
        for v in registry.check_verbs():
            when = " (default time: after teardown)" if v.after_teardown else ""
            rows.append(f"| `{v.name}` | {_cell(params_text(v))} | {_cell(needs_text(v))} | {_cell(v.doc)}{when} |")
    else:
        raise ValueError(f"no table {name!r}: one of {', '.join(TABLES)}")
    return "\n".join(rows) + "\n"


def render_readme(text: str) -> str:
    """*text* with every generated table replaced by the registry's. Raises ValueError when a
    table's markers are missing."""
    for name in TABLES:
        pattern = re.compile(re.escape(_begin(name)) + r"\n.*?" + re.escape(_end(name)), re.S)
        if not pattern.search(text):
            raise ValueError(f"the README has no markers for the {name} table ({_begin(name)} ... {_end(name)})")
        text = pattern.sub(lambda _m: f"{_begin(name)}\n{table(name)}{_end(name)}", text)
    return text
