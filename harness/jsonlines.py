"""JSON-lines files the harness reads (the ledger, failpoint traces): one reader."""

from __future__ import annotations

import json


def read(path: str) -> list[dict]:
    """The JSON objects of *path*, one per line; a torn last line (a writer killed mid-write) and
    garbage lines are skipped; a missing file is ``[]``."""
    entries = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return entries
