"""The JSON Schema of scenario files, for editors (``capsize schema``; scenarios/scenario.schema.json).

Generated from the pydantic models (:mod:`harness.scenario.models`, read at each call: they are
rebuilt when a verb is registered), so it never disagrees with the validator about fields and
types. It cannot express everything the loader checks (exactly
one action per step, references between step ids, per-engine ``${name}`` values, which are
accepted wherever a value goes), so ``capsize validate`` remains the authority.
"""

from __future__ import annotations

import json

from harness.scenario import models

SCHEMA_ID = "https://capsize.invalid/scenario.schema.json"


def json_schema() -> dict:
    """The schema as a dict (JSON Schema draft 2020-12, as pydantic writes it)."""
    schema = models.Scenario.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "capsize scenario"
    return schema


def json_schema_text() -> str:
    """The schema as stable, indented JSON text (ends with a newline)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
