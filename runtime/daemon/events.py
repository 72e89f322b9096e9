"""The event bus behind ``GET /events`` (Engine API 1.41 ``SystemEvents``).

Every event is a dict in dockerd's shape::

    {"status": "die", "id": "<64 hex>", "from": "busybox:latest", "Type": "container",
     "Action": "die", "Actor": {"ID": "<64 hex>", "Attributes": {"exitCode": "137",
     "image": "busybox:latest", "name": "web", ...labels}}, "scope": "local",
     "time": 1764000000, "timeNano": 1764000000123456789}

(image events have no ``from``; their ``id`` is the image id or reference). Container actions:
create, start, die, kill, stop, destroy, pause, unpause, rename, restart, oom; image actions:
import, load, tag, untag, delete, save.

The bus keeps the last :data:`HISTORY` events for ``since``; subscribers get a bounded asyncio
queue each. Filters (``type``, ``event``, ``container`` (id prefix or name), ``image``,
``label``, ``scope``) are applied per subscriber. A subscriber that does not keep up (its queue
full) is dropped, so one stuck client never holds the daemon up.
"""

from __future__ import annotations

import asyncio
import collections
import time

from runtime.api import failpoints
from runtime.daemon.filters import match_labels, parse_filters

HISTORY = 1024
QUEUE_SIZE = 4096
FILTER_KEYS = {"type", "event", "container", "image", "label", "scope", "daemon", "network", "volume",
               "plugin", "node", "service", "secret", "config"}


def make_event(etype: str, action: str, actor_id: str, attributes: dict | None = None,
               image: str | None = None, time_ns: int | None = None) -> dict:
    ns = time_ns or time.time_ns()
    ev = {"status": action, "id": actor_id}
    if etype == "container":
        ev["from"] = image or ""
    ev.update({"Type": etype, "Action": action,
               "Actor": {"ID": actor_id, "Attributes": {k: str(v) for k, v in (attributes or {}).items()}},
               "scope": "local", "time": ns // 1_000_000_000, "timeNano": ns})
    return ev


def matches(ev: dict, filters: dict[str, list[str]]) -> bool:
    """Whether event *ev* passes parsed *filters* (values of one key are OR'ed, keys AND'ed)."""
    attrs = ev["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "type":
            ok = ev["Type"] in values
        elif key == "event":
            ok = any(ev["Action"] == v or ev["Action"].split(":", 1)[0] == v for v in values)
        elif key == "container":
            ok = ev["Type"] == "container" and any(
                ev["Actor"]["ID"].startswith(v) or attrs.get("name") == v.lstrip("/") for v in values)
        elif key == "image":
            names = {attrs.get("image"), ev.get("from"), attrs.get("name") if ev["Type"] == "image" else None,
                     ev["Actor"]["ID"] if ev["Type"] == "image" else None}
            names.discard(None)
            ok = any(v in names or f"{v}:latest" in names for v in values)
        elif key == "label":
            ok = match_labels(values, attrs)
        elif key == "scope":
            ok = "local" in values
        elif key == "volume":
            ok = ev["Type"] == "volume" and ev["Actor"]["ID"] in values
        else:
            ok = False  # networks, plugins...: capsize emits none
        if not ok:
            return False
    return True


class Subscription:
    def __init__(self, bus: "EventBus", filters: dict):
        self.bus = bus
        self.filters = filters
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def close(self) -> None:
        self.bus._subs.discard(self)


class EventBus:
    """Publishes events to subscribers and keeps a history; used on the daemon's event loop only."""

    def __init__(self):
        self.history: collections.deque = collections.deque(maxlen=HISTORY)
        self._subs: set[Subscription] = set()
        self.log = None  # optional callable(event) for the daemon's log

    def publish(self, etype: str, action: str, actor_id: str, attributes: dict | None = None,
                image: str | None = None) -> dict:
        failpoints.hit("daemon.event.publish")
        ev = make_event(etype, action, actor_id, attributes, image)
        self.history.append(ev)
        for sub in list(self._subs):
            if matches(ev, sub.filters):
                try:
                    sub.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    sub.dropped = True
                    sub.close()
        return ev

    def subscribe(self, filters_raw: str | None) -> Subscription:
        """A new subscription; raises InvalidArgument (400) for bad filters."""
        sub = Subscription(self, parse_filters(filters_raw, FILTER_KEYS))
        self._subs.add(sub)
        return sub

    def since(self, since_ns: int, until_ns: int | None, filters: dict) -> list[dict]:
        """Past events with ``since_ns <= timeNano`` (and ``<= until_ns``) passing *filters*."""
        return [ev for ev in self.history if ev["timeNano"] >= since_ns
                and (until_ns is None or ev["timeNano"] <= until_ns) and matches(ev, filters)]
