"""Reading a run directory: ``journal.json`` (schema checked) and each entry's side files.

:func:`load_run` returns a :class:`Run`: the journal's data and one :class:`Scenario` per entry
with its events (``events.jsonl``), snapshots (``snapshots.jsonl``) and normalised log records
(``logs/logs.jsonl``), each given ``t`` = seconds since that scenario run started (the journal's
own clock: steps, snapshots and notes carry both ``mono`` and ``t``, which fixes the offset).
A missing or unreadable side file is not an error: the scenario's ``problems`` say what was
missing, and the report shows it.

Schemas: ``capsize.journal/1`` is read. Any other version of ``capsize.journal`` (or a file that
is not a capsize journal) is refused with one line naming the file, the schema found and the
schema this capsize reads (:class:`~runtime.errors.InvalidArgument`, exit 2).
"""

from __future__ import annotations

import json
import os
import re

from runtime.errors import InvalidArgument, NotFound

SCHEMAS = ("capsize.journal/1",)


class Scenario:
    """One journal entry (a scenario × engine × repeat) with what its directory holds."""

    def __init__(self, entry: dict, base: str):
        self.entry = entry
        self.problems: list[str] = []
        d = os.path.join(base, entry.get("dir") or entry.get("run") or "")
        self.t0 = _offset(entry)
        has_dir = bool(entry.get("dir")) and os.path.isdir(d)
        self.events = self._jsonl(d, "events.jsonl", has_dir, "events")
        self.snapshots = self._jsonl(d, "snapshots.jsonl", has_dir, "snapshots")
        self.logs = self._jsonl(d, os.path.join("logs", "logs.jsonl"), has_dir, "logs")
        if self.t0 is None:
            self.t0 = _offset_from(self.snapshots)
        for rec in self.events + self.logs:
            rec["t"] = self.t(rec.get("mono"))
        self.events.sort(key=lambda e: (e["t"] if e["t"] is not None else -1.0, e.get("seq", 0)))
        self.snapshots.sort(key=lambda s: s.get("index", 0))
        # logs: stable by time, the file's order breaking ties
        self.logs = [r for _, r in sorted(enumerate(self.logs), key=lambda ir: (
            ir[1]["t"] if ir[1]["t"] is not None else -1.0, ir[0]))]

    def _jsonl(self, d: str, name: str, has_dir: bool, what: str) -> list[dict]:
        if not has_dir:
            if self.entry.get(what):
                self.problems.append(f"{what}: the run's directory {self.entry.get('dir')!r} is missing")
            return []
        path = os.path.join(d, name)
        if not os.path.exists(path):
            if self.entry.get(what):
                self.problems.append(f"{what}: {name} is missing")
            return []
        out = []
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    self.problems.append(f"{name}:{n}: not JSON (skipped)")
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def t(self, mono) -> float | None:
        """Seconds since the scenario run started, for a monotonic time (None if unknown)."""
        if mono is None or self.t0 is None:
            return None
        return float(mono) - self.t0

    # -- convenient fields ---------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.entry.get("run") or f"{self.entry.get('scenario')}--{self.entry.get('engine')}"

    @property
    def name(self) -> str:
        return self.entry.get("scenario", "?")

    @property
    def engine(self) -> str:
        return self.entry.get("engine", "?")

    @property
    def repeat(self) -> int:
        return int(self.entry.get("repeat") or 1)

    @property
    def status(self) -> str:
        return self.entry.get("status", "?")

    def names_by_id(self) -> dict[str, str]:
        return {cid: name for name, cid in sorted((self.entry.get("containers") or {}).items())}


class Run:
    """A loaded run directory: ``data`` (the journal), ``scenarios``, ``path`` of the journal."""

    def __init__(self, path: str, data: dict, scenarios: list[Scenario]):
        self.path = path
        self.data = data
        self.scenarios = scenarios

    @property
    def id(self) -> str:
        return (self.data.get("run") or {}).get("id") or os.path.basename(os.path.dirname(self.path))

    @property
    def dir(self) -> str:
        return os.path.dirname(self.path)


def _offset(entry: dict) -> float | None:
    """``mono - t`` of the run's clock, from the first record that has both."""
    for group in (entry.get("steps") or [], entry.get("notes") or []):
        for rec in group:
            if isinstance(rec.get("mono"), (int, float)) and isinstance(rec.get("t"), (int, float)):
                return float(rec["mono"]) - float(rec["t"])
    return None


def _offset_from(snapshots: list[dict]) -> float | None:
    for s in snapshots:
        if isinstance(s.get("mono"), (int, float)) and isinstance(s.get("t"), (int, float)):
            return float(s["mono"]) - float(s["t"])
    return None


def check_schema(path: str, data) -> None:
    """Refuse what this capsize cannot read, with one clear line."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: not a capsize journal (a JSON object with \"schema\" was expected)")
    schema = data.get("schema")
    if schema in SCHEMAS:
        return
    want = ", ".join(SCHEMAS)
    if schema is None:
        raise InvalidArgument(f"{path}: not a capsize journal (no \"schema\" field); this capsize reads {want}")
    m = re.fullmatch(r"capsize\.journal/(\d+)", str(schema))
    if m:
        newer = int(m.group(1)) > max(int(s.rsplit("/", 1)[1]) for s in SCHEMAS)
        raise InvalidArgument(f"{path}: journal schema {schema} is {'newer than' if newer else 'not'} what this "
                              f"capsize reads ({want})" + ("; upgrade capsize to report on it" if newer else ""))
    raise InvalidArgument(f"{path}: not a capsize journal (schema {schema!r}); this capsize reads {want}")


def journal_path(run: str) -> str:
    """``RUN/journal.json`` for a run directory, or *run* itself when it names a file."""
    path = os.path.join(run, "journal.json") if os.path.isdir(run) else run
    if not os.path.exists(path):
        raise NotFound(f"{run}: no journal.json (a run directory of `capsize run` was expected)")
    return path


def load_run(run: str) -> Run:
    """Load the run directory (or journal file) *run*; raises InvalidArgument/NotFound."""
    path = journal_path(run)
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as e:
        raise InvalidArgument(f"{path}: not JSON: {e}") from None
    check_schema(path, data)
    base = os.path.dirname(os.path.abspath(path))
    return Run(path, data, [Scenario(e, base) for e in data.get("runs") or []])
