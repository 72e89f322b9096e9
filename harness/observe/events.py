"""Continuous event collection from the daemon (Engine API ``GET /events``) and the runtime.

Every event is normalised to ``{"seq", "wall", "mono", "time", "source", "type", "action",
"container", "name", "attrs"}``: ``source`` is ``daemon`` or ``runtime``; ``action`` is dockerd's
``Action`` (``create``, ``start``, ``die``, ``destroy``...) or the runtime's topic
(``/tasks/exit``...); ``container`` is the full container id; ``time`` is the event's own
timestamp (RFC 3339); ``wall``/``mono`` are when the harness received it. Both streams are
re-subscribed when their daemon restarts: the daemon's with ``since`` = the last event seen, so
a reconnect loses nothing dockerd still has; the runtime's with the engine's replay cursor where
it has one (capsize-runtimed: ``boot_id:seq``, so what a restarted runtime published before the
stream was back is replayed), else from "now", as ``ctr events`` can.
Each event is also appended to *sink* (``events.jsonl``) as it arrives.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timezone

from harness.observe.proctree import disown, own
from runtime.errors import CapsizeError


class EventCollector:
    """Collects both sources in two threads. *engine*: the adapter; *sink*: a path or None."""

    def __init__(self, engine, sink: str | None = None):
        self.engine = engine
        self.sink = open(sink, "a", buffering=1) if sink else None
        self.events: list[dict] = []
        self.subscriptions: list[dict] = []  # (source, wall, mono, "connected"|"lost")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seen: set[tuple] = set()
        self._since: float = time.time() - 1.0
        self._stream = None
        self._ctr: subprocess.Popen | None = None
        self._ctr_started: float = 0.0
        self._runtime_cursor: str | None = None  # the engine's replay cursor of the last runtime event
        self._daemon_subscribed: float = 0.0
        self._threads = [threading.Thread(target=self._daemon_loop, name="events-daemon", daemon=True)]
        if engine.runtime_events_argv() is not None:
            self._threads.append(threading.Thread(target=self._runtime_loop, name="events-runtime", daemon=True))

    # -- public ---------------------------------------------------------------------------------
    def runtime_subscribed(self, since: float) -> bool:
        """Whether the runtime's event stream was (re)started after *since* (monotonic) and is
        connected to the runtime now: the stream's process holds a connected unix socket. A
        stream that has not reconnected yet after a runtime restart would miss events."""
        p = self._ctr
        if p is None or p.poll() is not None or self._ctr_started < since:
            return False
        return _connected_unix_socket(p.pid)

    def wait_daemon_subscribed(self, since: float, timeout: float = 10.0) -> bool:
        """Wait until the daemon's event stream was (re)subscribed after *since* (monotonic); False
        after *timeout*. The re-subscription asks for the events since the last one seen, but a
        restarted daemon has none of its predecessor's: what it emits before would be lost."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._daemon_subscribed > since:
                return True
            time.sleep(0.01)
        return False

    def wait_runtime_subscribed(self, since: float, timeout: float = 10.0) -> bool:
        """Wait until :meth:`runtime_subscribed`; False after *timeout* (or without a runtime stream)."""
        if len(self._threads) < 2:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.runtime_subscribed(since):
                return True
            p = self._ctr
            if p is not None and p.poll() is None and self._ctr_started < since:
                p.terminate()  # started while the runtime was down: it may be stuck dialling; re-subscribe
            time.sleep(0.01)
        return False

    def start(self) -> "EventCollector":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        p = self._ctr
        if p is not None and p.poll() is None:
            p.terminate()
        for t in self._threads:
            t.join(5)
        if p is not None:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            disown(p.pid)
        if self.sink:
            self.sink.close()
            self.sink = None

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def matching(self, source: str, action: str, container: str | None = None,
                 attrs: dict | None = None) -> list[dict]:
        """Events of *source* with *action*, for container id *container* (None: any), whose attrs
        include *attrs* (values compared as strings)."""
        out = []
        for e in self.snapshot():
            if e["source"] != source or e["action"] != action:
                continue
            if container and e["container"] != container:
                continue
            if attrs and any(str(e["attrs"].get(k)) != str(v) for k, v in attrs.items()):
                continue
            out.append(e)
        return out

    # -- internals ------------------------------------------------------------------------------
    def _add(self, event: dict) -> None:
        with self._lock:
            event["seq"] = len(self.events)
            self.events.append(event)
            if self.sink:
                self.sink.write(json.dumps(event, sort_keys=True) + "\n")

    def _note(self, source: str, what: str, detail: str = "") -> None:
        with self._lock:
            self.subscriptions.append({"source": source, "what": what, "detail": detail[:200],
                                       "wall": time.time(), "mono": time.monotonic()})

    def _daemon_running(self) -> bool:
        """Whether a daemon process runs. The stream never dials a daemon that does not: behind a
        socket-activation unit (or systemd-socket-activate) the dial itself would start it, and
        the scenario, not the observer, must be what activates it (seed E2). Events missed
        meanwhile come back with ``since`` on the next subscription."""
        try:
            return bool(self.engine.pids("daemon"))
        except CapsizeError:
            return False

    def _daemon_loop(self) -> None:
        connected = False
        while not self._stop.is_set():
            if not self._daemon_running():
                if connected:
                    self._note("daemon", "lost", "the daemon is not running")
                    connected = False
                self._stop.wait(0.2)
                continue
            client = None
            try:
                client = self.engine.client(timeout=5)
                stream = client.events(decode=True, since=f"{self._since:.9f}")
                self._stream = stream
                self._daemon_subscribed = time.monotonic()  # the request is made: subscribed
                if not connected:
                    self._note("daemon", "connected")
                    connected = True
                for raw in stream:
                    self._daemon_event(raw)
                    if self._stop.is_set():
                        break
            except Exception as e:  # noqa: BLE001 - the daemon is down or went away: retry
                if connected:
                    self._note("daemon", "lost", str(e))
                    connected = False
            finally:
                self._stream = None
                self._daemon_subscribed = 0.0
                if client is not None:
                    try:
                        client.close()
                    except Exception:  # noqa: BLE001
                        pass
            self._stop.wait(0.2)

    def _daemon_event(self, raw: dict) -> None:
        tn = raw.get("timeNano") or int(raw.get("time", 0) * 1e9)
        actor = raw.get("Actor") or {}
        key = (tn, raw.get("Type"), raw.get("Action"), actor.get("ID"))
        if key in self._seen:
            return
        self._seen.add(key)
        self._since = max(self._since, tn / 1e9)
        attrs = dict(actor.get("Attributes") or {})
        kind = raw.get("Type") or ""
        self._add({"wall": time.time(), "mono": time.monotonic(),
                   "time": datetime.fromtimestamp(tn / 1e9, timezone.utc).isoformat(timespec="microseconds"),
                   "source": "daemon", "type": kind, "action": (raw.get("Action") or "").split(":")[0],
                   "full_action": raw.get("Action"),
                   "container": actor.get("ID") if kind == "container" else None,
                   "name": attrs.get("name") if kind == "container" else None, "attrs": attrs})

    def _runtime_loop(self) -> None:
        connected = False
        while not self._stop.is_set():
            try:
                p = subprocess.Popen(self.engine.runtime_events_argv(after=self._runtime_cursor),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True)
            except (OSError, CapsizeError):  # the engine is not up (yet)
                self._stop.wait(0.2)
                continue
            own(p.pid)
            self._ctr = p
            started = time.monotonic()
            self._ctr_started = started
            for line in p.stdout:
                if not connected:
                    self._note("runtime", "connected")
                    connected = True
                parsed = self.engine.parse_runtime_event(line)
                if parsed:
                    self._runtime_cursor = parsed.get("cursor") or self._runtime_cursor
                    self._add({"wall": time.time(), "mono": time.monotonic(), "time": parsed.get("time"),
                               "source": "runtime", "type": parsed.get("namespace") or "",
                               "action": parsed["action"], "container": parsed.get("container"),
                               "name": None, "attrs": parsed.get("attrs") or {}})
            p.wait()
            disown(p.pid)
            self._ctr = None
            if connected or time.monotonic() - started > 1.0:
                if connected:
                    self._note("runtime", "lost", f"event stream exited with {p.returncode}")
                connected = False
            self._stop.wait(0.2)


def _connected_unix_socket(pid: int) -> bool:
    """Whether process *pid* holds a unix socket in state SS_CONNECTED (``/proc/<pid>/net/unix``)."""
    import os
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                # Num RefCount Protocol Flags Type St Inode [Path]; St 03 = SS_CONNECTED
                if len(parts) >= 7 and parts[5] == "03" and parts[6] in inodes:
                    return True
    except OSError:
        return False
    return False
