"""The fault ledger: every fault is written down before it is applied, and its undoing after.

``<run dir>/ledger.jsonl``, one JSON object per line, flushed and fsync'd before the harness acts,
so that a harness killed at any moment (SIGKILL included) leaves a ledger from which
``capsize recover`` undoes every fault still applied and removes every engine still up:

======================  =========================================================================
``op``                  fields
======================  =========================================================================
``engine.up``           ``run``, ``record`` (the adapter's :meth:`~harness.engines.base.Engine.record`),
                        written *before* the engine starts
``engine.down``         ``run``, ``problems``
``fault.apply``         ``run``, ``id``, ``fault`` (the step's action), ``target``, ``undo`` (below,
                        or null for what cannot be undone: a kill)
``fault.undo``          ``run``, ``id``, ``by`` (``harness`` | ``recover``), ``result``
======================  =========================================================================

Undo specs (``undo.kind``) are registered by the faults that write them, with the function that
replays them (:mod:`harness.verbs.registry`):
``signal`` (send ``signal`` to ``pid`` if it is still the process started at ``create_time``:
SIGCONT after a pause), ``start`` (start ``role`` again: done by the harness before teardown; on
recovery the engine's removal covers it), ``rename`` (move ``from`` back to ``to``: a closed API
socket) in :mod:`harness.verbs.faults`; ``untrace`` (detach the strace tracing ``processes``) and
``terminate`` (end a helper such as strace: SIGTERM, SIGKILL after 5 s) in
:mod:`harness.verbs.syscall`; ``service`` (``systemctl <verb> <unit>``) and ``dropin`` (remove
the systemd drop-in at ``path``, then ``systemctl daemon-reload``) in :mod:`harness.verbs.systemd`.
Every entry has ``seq``, ``wall`` and ``mono``.
"""

from __future__ import annotations

import json
import os
import threading
import time

from harness import jsonlines
from harness.verbs import registry

LEDGER = "ledger.jsonl"


class Ledger:
    """Append-only ledger at *path* (created with its directory)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = threading.Lock()
        self._seq = len(read(path)) if os.path.exists(path) else 0
        self._n = 0

    def _write(self, entry: dict) -> dict:
        with self._lock:
            entry = {"seq": self._seq, "wall": time.time(), "mono": time.monotonic(), **entry}
            self._seq += 1
            with open(self.path, "a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            return entry

    def engine_up(self, run: str, record: dict) -> None:
        self._write({"op": "engine.up", "run": run, "record": record})

    def engine_down(self, run: str, problems: list[str]) -> None:
        self._write({"op": "engine.down", "run": run, "problems": problems})

    def apply(self, run: str, fault: str, target: dict, undo: dict | None) -> str:
        """Record a fault about to be applied; returns its id."""
        with self._lock:
            self._n += 1
            fid = f"{run}#{self._n}"
        self._write({"op": "fault.apply", "run": run, "id": fid, "fault": fault, "target": target, "undo": undo})
        return fid

    @property
    def applied(self) -> int:
        """How many faults this ledger recorded (never decreases: undone ones count too)."""
        return self._n

    def undone(self, run: str, fid: str, by: str, result: str) -> None:
        self._write({"op": "fault.undo", "run": run, "id": fid, "by": by, "result": result})

    def outstanding(self, run: str | None = None) -> list[dict]:
        """Applied faults with an undo spec that were not undone (oldest first)."""
        return outstanding(read(self.path), run)


def read(path: str) -> list[dict]:
    """The ledger's entries (:func:`harness.jsonlines.read`: a torn last line is ignored)."""
    return jsonlines.read(path)


def outstanding(entries: list[dict], run: str | None = None) -> list[dict]:
    done = {e["id"] for e in entries if e.get("op") == "fault.undo"}
    return [e for e in entries if e.get("op") == "fault.apply" and e.get("undo") and e["id"] not in done
            and (run is None or e["run"] == run)]


def engines_up(entries: list[dict]) -> list[dict]:
    """``engine.up`` entries without a later ``engine.down`` for the same run."""
    down = {e["run"] for e in entries if e.get("op") == "engine.down"}
    return [e for e in entries if e.get("op") == "engine.up" and e["run"] not in down]


def undo(spec: dict, engine=None) -> str:
    """Undo one fault per its *spec* with the function its fault registered for ``spec["kind"]``
    (:func:`harness.verbs.registry.replay_undo`); returns what was done (one line). *engine*: the
    running engine (without one, a ``start`` is left to the engine's removal)."""
    return registry.replay_undo(spec, engine)


def recover(run_dir: str) -> tuple[list[str], list[str]]:
    """Undo every outstanding fault of the run at *run_dir* and remove every engine still up.

    Returns ``(done, problems)``, one line each. Writes ``fault.undo`` (by ``recover``) and
    ``engine.down`` entries, so a second call does nothing.
    """
    import harness.verbs  # noqa: F401 - every family's undo kinds
    from harness.engines import engine_class
    path = os.path.join(run_dir, LEDGER)
    if not os.path.exists(path):
        from runtime.errors import NotFound
        raise NotFound(f"{run_dir}: no {LEDGER} here (is it a run directory?)")
    ledger = Ledger(path)
    entries = read(path)
    done, problems = [], []
    for e in reversed(outstanding(entries)):
        try:
            result = undo(e["undo"])
        except OSError as err:
            result = f"failed: {err}"
            problems.append(f"{e['id']} {e['fault']}: {err}")
        ledger.undone(e["run"], e["id"], "recover", result)
        done.append(f"{e['id']} {e['fault']}: {result}")
    for e in engines_up(entries):
        record = e["record"]
        try:
            errs = engine_class(record["engine"]).recover(record)
        except Exception as err:  # noqa: BLE001 - report and go on with the next engine
            errs = [f"{type(err).__name__}: {err}"]
        ledger.engine_down(e["run"], errs)
        problems += errs
        done.append(f"{e['run']}: engine {record['engine']} at {record.get('workdir')} removed"
                    + (f" with problems: {'; '.join(errs)}" if errs else ""))
    return done, problems
