"""capsize-runtimed's JSON files on disk (task records, bundle configs), written crash-safely.

A file is replaced atomically and durably (:func:`runtime.atomicfile.write` with
``durable=True``: temporary file, fsync, rename, fsync of the directory), so a reader (or a
daemon restarted after a SIGKILL or a power cut) sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import json

from runtime import atomicfile


def write_json_atomic(path: str, obj) -> None:
    """*obj* as indented, key-sorted JSON (one trailing newline) to *path*; raises OSError."""
    atomicfile.write(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", durable=True)


def read_json(path: str):
    """The JSON in *path*, or None when it is missing or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
