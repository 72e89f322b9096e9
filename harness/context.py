"""The state one scenario run shares between actions, faults and checks.

:class:`RunContext` holds the engine adapter, the ledger, the collectors, the container registry
(scenario name -> full container id), background actions and the run's clock. :class:`ActionResult`
is what every action and fault returns: a Jepsen-style ``outcome`` (``ok``: it happened,
``fail``: it certainly did not, ``unknown``: it could not be known) with the facts seen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ActionResult:
    """One action's result. Times: ``wall`` (epoch s), ``mono`` (monotonic s), ``duration`` (s)."""

    outcome: str = "ok"
    wall: float = 0.0
    mono: float = 0.0
    duration: float = 0.0
    exit_code: int | None = None
    status_code: int | None = None
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    value: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != {}}


@dataclass
class Background:
    """An action running in a thread (``background: true``); ``result`` is set when it ends."""

    step: Any
    thread: threading.Thread
    result: ActionResult | None = None
    record: dict | None = None


class RunContext:
    """Everything one scenario × engine run shares. Created by the runner."""

    def __init__(self, run: str, scenario, engine, directory: str, ledger):
        self.run = run
        self.scenario = scenario
        self.engine = engine
        self.dir = directory
        self.ledger = ledger
        self.events = None
        self.logs = None
        self.reaper = None
        self.containers: dict[str, str] = {}
        #: Earlier ids of reused names, oldest first (``web`` removed, a new ``web`` created): still
        #: the scenario's containers for cleanup.complete, events.order and snapshots.
        self.retired: dict[str, list[str]] = {}
        #: Right after each step a check names as ``since``: the containers' init and shim
        #: identities (:meth:`remember_step_processes`; ``process.same``).
        self.step_snapshots: dict[str, dict] = {}
        #: The step ids checks name as ``since`` (set by the runner).
        self.since_steps: set[str] = set()
        #: ``(pid, create_time)`` of each zombie seen in a snapshot -> monotonic time first seen so.
        self.zombies_seen: dict[tuple[int, float], float] = {}
        #: volume name -> scenario container name that mounted it (seen in inspect's ``Mounts``)
        self.volumes_seen: dict[str, str] = {}
        #: the engine's network namespace at the run's start (:meth:`remember_network_baseline`)
        self.net_baseline: dict = {}
        self.background: dict[str, Background] = {}
        self.snapshots: list[dict] = []
        self.snapshot_sink = None
        self.notes: list[dict] = []
        self.tracers: list = []  # strace processes (subprocess.Popen) of fault.syscall.delay
        self.step_started: dict[str, float] = {}  # step id -> monotonic time its action began
        self.t0_wall = time.time()
        self.t0_mono = time.monotonic()
        self._lock = threading.Lock()

    def t(self, mono: float | None = None) -> float:
        """Seconds since the run started (monotonic)."""
        return round((time.monotonic() if mono is None else mono) - self.t0_mono, 6)

    def note(self, kind: str, **fields) -> None:
        """A journal note (adoptions, reaps, warnings), timestamped."""
        with self._lock:
            self.notes.append({"kind": kind, "wall": time.time(), "t": self.t(), **fields})

    # -- containers ---------------------------------------------------------------------------
    def remember(self, name: str, cid: str, mounts: list | None = None) -> None:
        """Scenario container *name* is *cid* now; an earlier id of the name is kept (retired).
        *mounts*: its inspect's ``Mounts`` when the caller has them (else asked of the daemon)."""
        with self._lock:
            old = self.containers.get(name)
            if old and old != cid and old not in self.retired.get(name, []):
                self.retired.setdefault(name, []).append(old)
            self.containers[name] = cid
        self.engine.track_container(cid)
        self._note_volumes(name, cid, mounts)

    def _note_volumes(self, name: str, cid: str, mounts: list | None) -> None:
        """The volumes container *cid* mounts (anonymous ones are made at create), from inspect."""
        if mounts is None:
            try:
                client = self.engine.client(timeout=5)
                try:
                    mounts = client.api.inspect_container(cid).get("Mounts")
                finally:
                    client.close()
            except Exception:  # noqa: BLE001 - daemon down: the volumes are looked up no further
                return
        with self._lock:
            for m in mounts or []:
                if m.get("Type") == "volume" and m.get("Name"):
                    self.volumes_seen.setdefault(m["Name"], name)

    def leftover_volumes(self) -> list[str]:
        """Of the volumes the scenario's containers mounted, those the engine still has, one
        string each; a daemon that cannot be asked is said so (one entry)."""
        with self._lock:
            seen = dict(self.volumes_seen)
        if not seen:
            return []
        import docker.errors
        left = []
        try:
            client = self.engine.client(timeout=5)
        except Exception as e:  # noqa: BLE001 - daemon down
            return [f"volumes {sorted(seen)}: the daemon cannot be asked ({str(e)[:80]})"]
        try:
            for vol, owner in sorted(seen.items()):
                try:
                    client.api.inspect_volume(vol)
                except docker.errors.NotFound:
                    continue
                except Exception as e:  # noqa: BLE001
                    left.append(f"volume {vol} of {owner}: cannot be asked ({str(e)[:80]})")
                    continue
                left.append(f"volume {vol} (of {owner})")
        finally:
            client.close()
        return left

    def host_state(self) -> dict[str, list[str]]:
        """:meth:`Engine.host_state` of every scenario container, plus the volumes they left."""
        from harness.observe import netstate
        hs = self.engine.host_state(self.all_container_ids())
        hs.volume = self.leftover_volumes()
        for kind, found in netstate.leftovers(self.engine, self.net_baseline).items():
            setattr(hs, kind, found)
        return hs.as_dict()

    def remember_network_baseline(self) -> None:
        """What the engine's network namespace holds before the scenario's first step (its own
        bridge, default devices and rules): the base of the network kinds of cleanup.complete."""
        from harness.observe import netstate
        self.net_baseline = netstate.baseline(self.engine.netns_path)

    def container_ids(self, name: str) -> list[str]:
        """Every id scenario container *name* has had, oldest first (the current one last)."""
        cid = self.container_id(name)
        with self._lock:
            old = list(self.retired.get(name, []))
        return old + ([cid] if cid and cid not in old else [])

    def all_container_ids(self) -> list[str]:
        """Every id of every scenario container, the retired ones too."""
        with self._lock:
            return list(dict.fromkeys([c for ids in self.retired.values() for c in ids] + list(self.containers.values())))

    def container_id(self, name: str) -> str | None:
        """The full id of scenario container *name*: remembered, else asked of the daemon, else
        found in the daemon's ``create`` events; None if it never existed."""
        cid = self.containers.get(name)
        if cid:
            return cid
        mounts = None
        try:
            client = self.engine.client(timeout=5)
            try:
                found = client.api.inspect_container(name)
                cid, mounts = found["Id"], found.get("Mounts") or []
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - daemon down or no such container
            cid = None
        if not cid and self.events is not None:
            for e in self.events.snapshot():
                if e["source"] == "daemon" and e["action"] == "create" and e.get("name") == name:
                    cid = e["container"]
        if cid:
            self.remember(name, cid, mounts)
        return cid

    def names_by_id(self) -> dict[str, str]:
        """``{id: name}`` of every scenario container (a retired id maps to its name too)."""
        with self._lock:
            out = {cid: name for name, ids in self.retired.items() for cid in ids}
            out.update({cid: name for name, cid in self.containers.items()})
            return out

    def remember_step_processes(self, step_id: str) -> None:
        """After step *step_id*: per scenario container name, its id then
        and its init's and its shim's ``(pid, create_time)`` (``process.same``'s ``since``)."""
        from harness.pids import identify
        ids = {}
        with self._lock:
            current = dict(self.containers)
        for name, cid in current.items():
            ids[name] = {"id": cid}
            for role in ("container", "shim"):
                try:
                    ids[name][role] = identify(self.engine.pids(role, cid))
                except Exception:  # noqa: BLE001 - a role the engine lacks, or it is down
                    ids[name][role] = []
        with self._lock:
            self.step_snapshots[step_id] = {"t": self.t(), "processes": ids}

    # -- snapshots ----------------------------------------------------------------------------
    def take_snapshot(self, label: str, host_state: bool = False) -> int:
        """A process-tree snapshot (plus host state when asked); returns its index in snapshots.jsonl."""
        import json

        from harness.observe.proctree import snapshot
        snap = snapshot(self.engine, label, self.names_by_id())
        snap["t"] = self.t(snap["mono"])
        if host_state:
            snap["host_state"] = self.host_state()
        with self._lock:
            for q in snap["processes"]:
                if q["status"] == "zombie":
                    self.zombies_seen.setdefault((q["pid"], q.get("create_time")), snap["mono"])
            snap["index"] = len(self.snapshots)
            self.snapshots.append({"index": snap["index"], "label": label, "t": snap["t"]})
            if self.snapshot_sink:
                self.snapshot_sink.write(json.dumps(snap, sort_keys=True) + "\n")
                self.snapshot_sink.flush()
        self.last_snapshot = snap
        return snap["index"]
