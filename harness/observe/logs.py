"""Component logs, normalised to ``{"wall", "mono", "time", "component", "level", "msg", "fields", "line"}``.

Sources (:class:`harness.engines.base.LogSource`): logrus ``logfmt`` files (dockerd,
containerd: ``time="..." level=info msg="..." key=value``), capsize's JSON lines (``time, level,
msg, component, ...``) and journald units (systemd-python, under systemd). Files are read from
their start (each scenario run has a fresh engine, so its logs are this run's, start-up included); ``wall`` is the
line's own time when it has one (else when it was read) and ``mono`` the monotonic clock at that
wall time. :meth:`LogCollector.poll` reads what is new; :meth:`LogCollector.save` copies this
run's part of each log into ``logs/<component>.log`` and writes ``logs/logs.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

from runtime import rfc3339

_LOGFMT = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line: str) -> dict:
    """``key=value`` pairs of a logfmt line; quoted values are unescaped."""
    out = {}
    for key, value in _LOGFMT.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        out[key] = value
    return out


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch from an RFC 3339 time (:func:`runtime.rfc3339.parse`; nanoseconds
    allowed, a missing offset read as UTC), or None when *text* is not one."""
    if not text:
        return None
    text = text.strip()
    if len(text) >= 19 and text[-1] not in "Zz" and text[-6:-5] not in ("+", "-"):
        text += "Z"  # some components' text logs write UTC without the Z
    try:
        return rfc3339.parse(text) / 1e9
    except ValueError:
        return None


def normalise(component: str, fmt: str, line: str, read_wall: float, clock: tuple[float, float]) -> dict:
    """One log record from one line. *clock* = (wall, mono) taken together, to map wall -> mono."""
    line = line.rstrip("\n")
    fields: dict = {}
    if fmt == "jsonl":
        try:
            fields = json.loads(line)
            if not isinstance(fields, dict):
                fields = {"msg": line}
        except ValueError:
            fields = {"msg": line}
    else:
        fields = parse_logfmt(line)
        if "msg" not in fields:
            fields = {"msg": line}
    wall = parse_time(str(fields.get("time") or "")) or read_wall
    rest = {k: v for k, v in fields.items() if k not in ("time", "level", "msg")}
    return {"wall": wall, "mono": clock[1] + (wall - clock[0]), "time": fields.get("time"),
            "component": component, "level": str(fields.get("level") or "info"),
            "msg": str(fields.get("msg", "")), "fields": rest, "line": line}


class LogCollector:
    """Reads the engine's log sources from their current ends; thread-safe."""

    def __init__(self, sources):
        self.sources = list(sources)
        self.clock = (time.time(), time.monotonic())
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self._offsets = {}
        self._start = {}
        self._journal = {}
        for s in self.sources:
            if s.format == "journald":
                self._journal[s.component] = self._open_journal(s.path)
            else:
                self._offsets[s.path] = 0
                self._start[s.path] = 0

    @staticmethod
    def _open_journal(unit: str):
        try:
            from systemd import journal
        except ImportError:
            return None
        r = journal.Reader()
        r.add_match(_SYSTEMD_UNIT=unit)
        r.seek_tail()
        r.get_previous()
        return r

    def journal_record(self, component: str, entry: dict, now: float) -> dict:
        """One record from a journald entry: its MESSAGE is a JSON line (capsize's units), logfmt
        (dockerd, containerd) or plain text; ``wall`` is the entry's ``__REALTIME_TIMESTAMP``."""
        ts = entry.get("__REALTIME_TIMESTAMP")
        wall = ts.timestamp() if ts else now
        msg = entry.get("MESSAGE", "")
        if isinstance(msg, bytes):
            msg = msg.decode(errors="replace")
        msg = str(msg)
        if msg.lstrip().startswith("{"):
            rec = normalise(component, "jsonl", msg, wall, self.clock)
        else:
            fields = parse_logfmt(msg)
            rec = normalise(component, "logfmt", msg if "msg" in fields else f'msg={json.dumps(msg)}', wall,
                            self.clock)
            rec["line"] = msg
        rec["wall"], rec["mono"] = wall, self.clock[1] + (wall - self.clock[0])
        rec["fields"]["pid"] = entry.get("_PID")
        return rec

    def poll(self) -> list[dict]:
        """Read every source's new complete lines; returns all records so far (a copy)."""
        with self._lock:
            now = time.time()
            for s in self.sources:
                if s.format == "journald":
                    reader = self._journal.get(s.component)
                    for entry in (reader or []):
                        self.records.append(self.journal_record(s.component, entry, now))
                    continue
                try:
                    with open(s.path, "rb") as f:
                        f.seek(self._offsets.get(s.path, 0))
                        data = f.read()
                except OSError:
                    continue
                end = data.rfind(b"\n")
                if end < 0:
                    continue
                self._offsets[s.path] += end + 1
                for raw in data[:end + 1].decode(errors="replace").splitlines():
                    if raw.strip():
                        self.records.append(normalise(s.component, s.format, raw, now, self.clock))
            return list(self.records)

    def save(self, directory: str) -> None:
        """Copy this run's part of every file source to ``<directory>/<component>.log``; all
        normalised records to ``<directory>/logs.jsonl``."""
        os.makedirs(directory, exist_ok=True)
        records = self.poll()
        for s in self.sources:
            if s.format == "journald":  # this run's entries of the unit, one line each
                with open(os.path.join(directory, f"{s.component}.log"), "w") as f:
                    for r in records:
                        if r["component"] == s.component:
                            f.write(r["line"] + "\n")
                continue
            try:
                with open(s.path, "rb") as src, open(os.path.join(directory, f"{s.component}.log"), "wb") as dst:
                    src.seek(self._start.get(s.path, 0))
                    dst.write(src.read())
            except OSError:
                continue
        with open(os.path.join(directory, "logs.jsonl"), "w") as f:
            for r in records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
