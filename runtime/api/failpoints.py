"""Crash points: the one registry of named failpoints across capsize's four tiers, and their trigger.

A crash point is a moment where a crash matters — a durable write, a call across a tier
boundary, an event publish, a host operation (DESIGN.md, "Crash points"). Each has an id
``<tier>.<operation>.<step>`` (``runtimed.task.create.after-shim-start``), registered once here
(:func:`points`: id -> :class:`Point`: tier, doc), and one line at the point in the tier's code::

    failpoints.hit("runtimed.task.create.after-shim-start")

Tiers (the process that passes the point): ``daemon`` (capsized), ``runtimed``
(capsize-runtimed), ``shim`` (capsize-shim), ``lowlevel`` (capsize-runc), and ``host`` — the host
operations of :mod:`runtime.host` (``host.mount``), passed by whichever tier calls them.

**Arming** (the lab's side): a process started with ``CAPSIZE_FAILPOINTS_DIR=<dir>`` in its
environment (the harness's capsize engine gives it to capsized and capsize-runtimed; the shims
and capsize-runc inherit it) is in *lab mode*; without it :func:`hit` is one global check and
returns. In lab mode :func:`hit` reads ``<dir>/armed.json`` (re-read when its mtime changes: one
stat(2) per hit), ``{"trace": bool, "points": {id: term}}``:

* ``trace``: every point passed is appended to ``<dir>/trace.jsonl`` as a JSON line
  ``{"id", "pid", "proc", "t"}`` (``proc``: the process's command, ``t``: Unix seconds);
* an armed *term* (FreeBSD fail(9)'s grammar, as containerd's failpoints and the shim's
  annotations: ``[<pct>%][<count>*]<type>[(<arg>)]`` joined by ``->``) decides what the Nth hit
  does; N counts the hits of that id across every process of the engine (``<dir>/hits/<id>``,
  one byte appended per hit), so ``2*off->kill`` kills whichever process passes the point the
  third time, be it a daemon or the second capsize-runc. Types: ``off`` (proceed), ``kill``
  (SIGKILL the process itself: a crash of that tier), ``panic`` (exit 2 at once),
  ``delay(dur)`` (sleep *dur*, ``2s``/``500ms``/seconds; an asyncio daemon's loop stalls with
  it), ``error(msg)`` (raise :class:`~runtime.errors.CapsizeError` *msg*, internal, 500/exit 1).
  Before acting, the hit is recorded in ``<dir>/fired.jsonl``: ``{"id", "hit", "action",
  "pid", "proc", "t"}`` (fsynced: the evidence survives the kill).

Standard library only and cheap to import: the shim and capsize-runc import it on every start.
"""

from __future__ import annotations

import os

ENV_DIR = "CAPSIZE_FAILPOINTS_DIR"
ARMED, TRACE, FIRED, HITS = "armed.json", "trace.jsonl", "fired.jsonl", "hits"
TIERS = ("daemon", "runtimed", "shim", "lowlevel", "host")
KINDS = ("off", "error", "delay", "panic", "kill")
#: the command of each tier's process -> its tier (``proc`` in the trace)
PROC_TIERS = {"capsized": "daemon", "capsize-runtimed": "runtimed", "capsize-shim": "shim",
              "capsize-runc": "lowlevel"}

_TERM = r"^\s*(?:(\d+(?:\.\d+)?)%)?\s*(?:(\d+)\*)?\s*([a-z]+)\s*(?:\((.*)\))?\s*$"  # compiled when used


class Point:
    """A registered crash point: ``id``, ``tier`` (one of :data:`TIERS`), ``doc`` (one line)."""

    __slots__ = ("id", "tier", "doc")

    def __init__(self, id: str, tier: str, doc: str):  # noqa: A002 - the field's name
        self.id, self.tier, self.doc = id, tier, doc


_POINTS: dict[str, Point] = {}


def _register(tier: str, operation: str, steps: tuple[str, ...], doc: str) -> None:
    for step in steps:
        pid = f"{tier}.{operation}.{step}" if step else f"{tier}.{operation}"
        _POINTS[pid] = Point(pid, tier, doc)


# -- the registry ---------------------------------------------------------------------------------
# shim methods (runtime.api.shim.METHODS) and runtimed routes (runtime.api.runtimed.ROUTES) are
# listed literally so that this module imports nothing; tests compare them with those contracts.
SHIM_METHODS = ("connect", "create", "start", "state", "kill", "wait", "pids", "pause", "resume", "delete",
                "exec", "resize", "shutdown", "update")
RUNTIMED_ROUTES = ("version", "namespaces", "gc", "events", "registry_login", "image_list", "image_import",
                   "image_commit", "image_pull", "image_get", "image_export", "image_tag", "image_push",
                   "image_delete", "container_list", "container_create", "container_get", "container_update",
                   "container_delete", "snapshot_mounts", "snapshot_changes", "snapshot_export", "task_list",
                   "task_create", "task_get", "task_start", "task_kill", "task_wait", "task_pause", "task_resume",
                   "task_pids", "task_update", "task_exec", "task_exec_get", "task_resize", "task_delete")
#: runtime.host's operations (the names its ``Host._fault`` takes)
HOST_OPS = ("capset", "chown", "mkdir", "mknod", "mount", "pivot_root", "prctl", "rmdir", "seccomp_load",
            "setdomainname", "setgid", "setgroups", "sethostname", "setns", "setrlimit", "setuid", "setxattr",
            "umount", "unshare", "write")


def points() -> dict[str, Point]:
    """Every registered crash point, id -> :class:`Point` (built on first use: the shim and
    capsize-runc, which only :func:`hit`, never pay for it)."""
    if not _POINTS:
        _build()
    return _POINTS


def _build() -> None:
    for _r in RUNTIMED_ROUTES:
        _register("daemon", f"runtimed.{_r}", ("before-call", "after-call"),
                  f"capsized's call of capsize-runtimed's route {_r} (runtime.api.runtimed.ROUTES): "
                  "before the request is sent / after its reply is read")
    _register("daemon", "container.store", ("before-write", "after-write", "after-delete"),
              "capsized writes a container's record (config.v2.json, store.py: create and save) / removes its directory")
    _register("daemon", "event.publish", ("",), "capsized publishes an event to its clients (docker events)")
    for _m in SHIM_METHODS:
        _register("runtimed", f"shim.{_m}", ("before-call", "after-call"),
                  f"capsize-runtimed's call of the shim's method {_m} (runtime.api.shim.METHODS): before "
                  "the request is written / after the reply arrives")
        _register("shim", _m, ("before", "after"),
                  f"the shim serves its method {_m}: before the work / after it, before the reply is sent")
    _register("runtimed", "task.create", ("after-task-dir", "after-snapshot-mount", "after-bundle-write",
                                           "before-shim-start", "after-shim-start"),
              "capsize-runtimed's task create: the task dir and record, the rootfs mounted, config.json "
              "written, capsize-shim start run")
    _register("runtimed", "task.delete", ("before-rootfs-unmount", "after-task-dir-remove"),
              "capsize-runtimed's task delete: the rootfs unmounted, the task dir removed")
    _register("runtimed", "task.record", ("after-write",), "capsize-runtimed writes a task's record (task.json)")
    _register("runtimed", "snapshot.prepare", ("before-commit", "after-commit"),
              "a snapshot is prepared: its dirs made, its metadata row committed (sqlite)")
    _register("runtimed", "snapshot.mount", ("after",), "an overlay snapshot mounted at a rootfs")
    _register("runtimed", "snapshot.remove", ("before-commit", "after-commit"),
              "a snapshot removed: its metadata row deleted (sqlite commit) / its dirs removed")
    _register("runtimed", "container.metadata", ("after-commit",),
              "a container record committed to the metadata database (create/delete)")
    _register("runtimed", "content.commit", ("before-rename", "after-rename"),
              "a blob moves from its ingest to the content store under its digest")
    _register("runtimed", "event.publish", ("",), "capsize-runtimed publishes an event to its subscribers")
    _register("shim", "exitfile.write", ("before", "after"), "the shim writes the init's exit status file")
    _register("shim", "event.publish", ("",), "the shim queues an event for capsize-runtimed (/tasks/*)")
    _register("shim", "runtime.invoke", ("before", "after"),
              "the shim runs the low-level runtime (create, start, kill, delete, exec ...): before / right after its posix_spawn")
    _register("lowlevel", "create", ("after-state-dir", "after-cgroup", "after-fork", "after-state-write"),
              "capsize-runc create: state dir made, cgroup made, the init forked, state.json written")
    _register("lowlevel", "start", ("before-exec-fifo",), "capsize-runc start: before it opens the exec FIFO")
    _register("lowlevel", "delete", ("before-cgroup-remove", "after-state-remove"),
              "capsize-runc delete: before the cgroup is removed / after state.json is removed")
    _register("lowlevel", "kill", ("before",), "capsize-runc kill: before the signal is sent")
    for _op in HOST_OPS:
        _register("host", _op, ("",), f"runtime.host's {_op} (any tier calling it), before the kernel call")


def tier_of(point_id: str) -> str:
    """The tier of *point_id*; raises KeyError for an unknown id."""
    return points()[point_id].tier


# -- the fail(9) term grammar ---------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"`` (seconds) -> seconds; raises InvalidArgument."""
    from runtime.errors import InvalidArgument
    t = text.strip()
    scale = 1.0
    for suffix, factor in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0)):
        if t.endswith(suffix):
            t, scale = t[:-len(suffix)], factor
            break
    try:
        value = float(t) * scale
    except ValueError:
        raise InvalidArgument(f"bad duration {text!r} (e.g. 2s, 500ms)") from None
    if value < 0:
        raise InvalidArgument(f"bad duration {text!r}: negative")
    return value


class Term:
    """One fail(9) term: ``pct`` (float or None), ``count`` (int or None), ``kind``, ``arg``."""

    __slots__ = ("pct", "count", "kind", "arg")

    def __init__(self, pct, count, kind, arg):
        self.pct, self.count, self.kind, self.arg = pct, count, kind, arg


def parse_terms(spec: str, kinds: tuple[str, ...] = KINDS) -> list[Term]:
    """``"1*off->kill"`` -> its :class:`Term` list; raises InvalidArgument for a malformed one."""
    import re
    from runtime.errors import InvalidArgument
    terms = []
    for raw in spec.split("->"):
        m = re.match(_TERM, raw, re.S)
        if not m or m.group(3) not in kinds:
            raise InvalidArgument(f"bad failpoint term {raw.strip()!r} in {spec!r}: "
                                  f"want [pct%][count*]type[(arg)], type one of {', '.join(kinds)}")
        kind, arg = m.group(3), m.group(4)
        if kind == "delay":
            arg = parse_duration(arg or "")
        elif kind == "error":
            arg = (arg or "").strip() or "failpoint"
        terms.append(Term(float(m.group(1)) if m.group(1) else None, int(m.group(2)) if m.group(2) else None,
                          kind, arg))
    return terms


def action_at(terms: list[Term], n: int) -> tuple[str, object] | None:
    """What the *n*-th hit (1-based) does under *terms*: ``(kind, arg)``, or None (proceed).
    Counts are consumed in order; a term without a count applies to every later hit."""
    for term in terms:
        if term.count is not None:
            if n > term.count:
                n -= term.count
                continue
        if term.pct is not None and int.from_bytes(os.urandom(2), "little") % 10000 >= term.pct * 100:
            return None
        return None if term.kind == "off" else (term.kind, term.arg)
    return None


def spell(hit_n: int, kind: str = "kill", arg: str = "") -> str:
    """The term that acts on hit *hit_n* only: ``spell(3)`` -> ``"2*off->1*kill"``."""
    act = f"{kind}({arg})" if arg else kind
    return f"{hit_n - 1}*off->1*{act}" if hit_n > 1 else f"1*{act}"


# -- the trigger ----------------------------------------------------------------------------------
_DIR = os.environ.get(ENV_DIR) or None
_armed: dict = {}
_armed_stamp = None
_terms: dict[str, list[Term]] = {}


_PROC: list[str] = []


def _proc() -> str:
    """This process's tier command (``capsize-shim``...): argv[0], else the first argument of
    /proc/self/cmdline naming one (a shim forked by the ``python -c`` template); cached."""
    if not _PROC:
        import sys
        name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        if name not in PROC_TIERS:
            try:
                with open("/proc/self/cmdline", "rb") as f:
                    args = [os.path.basename(a.decode(errors="replace")) for a in f.read().split(b"\0")]
                name = next((a for a in args if a in PROC_TIERS), None) or next(
                    (t for a in args for t in PROC_TIERS if t in a), name or "python")
            except OSError:
                pass
        _PROC.append(name)
    return _PROC[0]


def _append(name: str, record: dict, sync: bool = False) -> None:
    import json
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(os.path.join(_DIR, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _load() -> dict:
    global _armed, _armed_stamp, _terms
    try:
        st = os.stat(os.path.join(_DIR, ARMED))
    except OSError:
        _armed, _armed_stamp, _terms = {}, None, {}
        return _armed
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    if stamp != _armed_stamp:
        import json
        try:
            with open(os.path.join(_DIR, ARMED)) as f:
                _armed = json.load(f) or {}
            _terms = {k: parse_terms(str(v)) for k, v in (_armed.get("points") or {}).items()}
        except (OSError, ValueError, Exception):  # noqa: BLE001 - a bad file arms nothing
            _armed, _terms = {}, {}
        _armed_stamp = stamp
    return _armed


def _count(point_id: str) -> int:
    d = os.path.join(_DIR, HITS)
    os.makedirs(d, exist_ok=True)
    fd = os.open(os.path.join(d, point_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def hit(point_id: str) -> None:
    """Pass crash point *point_id* (an id of :func:`points`): nothing outside lab mode; in lab
    mode trace it and do what its armed term says (module docstring). Raises CapsizeError for an
    ``error`` term; ``kill`` and ``panic`` do not return."""
    if _DIR is None:
        return
    _lab_hit(point_id)


def _lab_hit(point_id: str) -> None:
    import time
    armed = _load()
    if armed.get("trace"):
        _append(TRACE, {"id": point_id, "pid": os.getpid(), "proc": _proc(), "t": round(time.time(), 6)})
    terms = _terms.get(point_id)
    if not terms:
        return
    n = _count(point_id)
    action = action_at(terms, n)
    if action is None:
        return
    kind, arg = action
    _append(FIRED, {"id": point_id, "hit": n, "action": kind, "pid": os.getpid(), "proc": _proc(),
                    "t": round(time.time(), 6)}, sync=True)
    if kind == "kill":
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "panic":
        os._exit(2)
    elif kind == "delay":
        time.sleep(float(arg))
    elif kind == "error":
        from runtime.errors import CapsizeError
        raise CapsizeError(f"{arg} (failpoint {point_id})", failpoint=point_id)


def hit_runtimed_call(method: str, path: str, step: str) -> None:
    """Pass ``daemon.runtimed.<route>.<step>`` for capsized's request *method* *path* (the route's
    handler name from :data:`runtime.api.runtimed.ROUTES`, matched only in lab mode)."""
    if _DIR is None:
        return
    name = _route_name(method, path.split("?", 1)[0])
    if name:
        _lab_hit(f"daemon.runtimed.{name}.{step}")


_ROUTE_RES: list = []


def _route_name(method: str, path: str) -> str | None:
    if not _ROUTE_RES:
        import re
        from runtime.api.runtimed import ROUTES
        for m, template, name in ROUTES:
            _ROUTE_RES.append((m, re.compile("^" + re.sub(r"\{[a-z]+\}", "[^/]+", template) + "$"), name))
    for m, rx, name in _ROUTE_RES:
        if m == method and rx.match(path):
            return name
    return None
