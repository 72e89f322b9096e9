"""Shared by the report tests: golden-file comparison and the data directory."""

from __future__ import annotations

import difflib
import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = os.path.join(DATA, "golden")
REAL = os.path.join(DATA, "real-seed3")  # a real journal: seed-3 on capsize and on Docker
UPDATE = os.environ.get("CAPSIZE_UPDATE_GOLDEN") == "1"


def golden(name: str, text: str) -> None:
    """*text* must equal ``data/golden/<name>`` byte for byte (CAPSIZE_UPDATE_GOLDEN=1 rewrites it)."""
    path = os.path.join(GOLDEN, name)
    if UPDATE:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    with open(path, encoding="utf-8", newline="") as f:
        want = f.read()
    if text != want:
        diff = "".join(list(difflib.unified_diff(want.splitlines(True), text.splitlines(True), "golden", "rendered"))[:60])
        raise AssertionError(f"{name} differs from its golden file (CAPSIZE_UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def read(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()
