"""``capsize-runc events``: a container's resource statistics and OOM notifications (runc 1.1 ``events``).

Each event is one JSON line on stdout, runc's ``types.Event``: ``{"type": "stats", "id": ID,
"data": STATS}`` every ``--interval`` (a Go duration, default ``5s``), ``{"type": "oom", "id":
ID}`` when the kernel's OOM killer ends a process of the container (its ``oom_kill`` counter
grows, polled every 100 ms); ``--stats`` prints one stats event and exits. The stream ends, exit
0, when the container stops or is deleted.

STATS is a subset of runc's ``types.Stats`` in its field names, from the container's cgroup
(v1 or v2): ``cpu.usage`` {``total``, ``percpu``, ``kernel``, ``user``} in nanoseconds,
``memory`` {``usage``, ``swap``, ``kernel``, ``kernelTCP``: {``usage``, ``max``, ``limit``,
``failcnt``} in bytes, ``cache``, ``raw``: the memory.stat counters}, ``pids`` {``current``,
``limit``}; missing controllers give zeros. Standard library only.
"""

from __future__ import annotations

import os
import sys
import time

from runtime.errors import CapsizeError, InvalidArgument
from runtime.lowlevel.cgroups import read_file

_UNITS = (("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(text: str) -> float:
    """A Go ``time.Duration`` string (``5s``, ``100ms``, ``1m30s``) -> seconds; InvalidArgument
    for anything else or a duration that is not positive."""
    s, total = text.strip(), 0.0
    if not s:
        raise InvalidArgument(f"events: invalid duration {text!r}")
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        j = i
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = dict(_UNITS).get(s[i:j])
        try:
            total += float(s[:i]) * unit
        except (TypeError, ValueError):
            raise InvalidArgument(f"events: invalid duration {text!r}") from None
        s = s[j:]
    if total <= 0:
        raise InvalidArgument(f"events: duration must be greater than 0: {text!r}")
    return total


def _int(path: str | None) -> int:
    text = (read_file(path) if path else None) or ""
    text = text.strip()
    return int(text) if text.isdigit() else 0


def _kv(path: str | None) -> dict[str, int]:
    out = {}
    for line in ((read_file(path) if path else None) or "").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def stats(cg) -> dict:
    """runc's ``types.Stats`` (the subset in the module docstring) of cgroup *cg*."""
    v2 = cg.layout == "v2"
    cpu_dir, mem_dir, pids_dir = (cg._controller_dir(c) for c in ("cpuacct" if not v2 else "cpu", "memory", "pids"))
    if v2:
        st = _kv(cpu_dir and os.path.join(cpu_dir, "cpu.stat"))
        cpu = {"total": st.get("usage_usec", 0) * 1000, "percpu": [], "kernel": st.get("system_usec", 0) * 1000,
               "user": st.get("user_usec", 0) * 1000}
        raw = _kv(mem_dir and os.path.join(mem_dir, "memory.stat"))
        usage = _int(mem_dir and os.path.join(mem_dir, "memory.current"))
        limit = _int(mem_dir and os.path.join(mem_dir, "memory.max"))
        memory = {"usage": {"usage": usage, "max": _int(mem_dir and os.path.join(mem_dir, "memory.peak")),
                            "limit": limit, "failcnt": 0},
                  "swap": {"usage": _int(mem_dir and os.path.join(mem_dir, "memory.swap.current"))},
                  "cache": raw.get("file", 0), "raw": raw}
    else:
        p = (lambda d, f: d and os.path.join(d, f))
        percpu = ((read_file(p(cpu_dir, "cpuacct.usage_percpu")) if cpu_dir else None) or "").split()
        ticks = os.sysconf("SC_CLK_TCK")
        ust = _kv(p(cpu_dir, "cpuacct.stat"))
        cpu = {"total": _int(p(cpu_dir, "cpuacct.usage")), "percpu": [int(x) for x in percpu if x.isdigit()],
               "kernel": ust.get("system", 0) * 1_000_000_000 // ticks,
               "user": ust.get("user", 0) * 1_000_000_000 // ticks}
        raw = _kv(p(mem_dir, "memory.stat"))

        def entry(prefix: str) -> dict:
            return {k: _int(p(mem_dir, f"{prefix}.{f}")) for k, f in
                    (("usage", "usage_in_bytes"), ("max", "max_usage_in_bytes"), ("limit", "limit_in_bytes"),
                     ("failcnt", "failcnt"))}
        memory = {"usage": entry("memory"), "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                  "kernelTCP": entry("memory.kmem.tcp"), "cache": raw.get("cache", 0), "raw": raw}
    return {"cpu": {"usage": cpu, "throttling": {}}, "memory": memory,
            "pids": {"current": _int(pids_dir and os.path.join(pids_dir, "pids.current")),
                     "limit": _int(pids_dir and os.path.join(pids_dir, "pids.max"))},
            "blkio": {}, "hugetlb": {}}


def _emit(event: dict) -> None:
    from runtime.jsonfast import dumps
    sys.stdout.write(dumps(event) + "\n")
    sys.stdout.flush()


def events(root: str, container_id: str, interval: float = 5.0, stats_only: bool = False) -> None:
    """The event stream of the module docstring. Raises NotFound for an unknown container,
    FailedPrecondition when it is not running (runc: "container with id ... is not running")."""
    from runtime.errors import FailedPrecondition
    from runtime.lowlevel.state import State
    st = State.load(root, container_id)
    if st.status() == "stopped":
        raise FailedPrecondition(f"container with id {container_id} is not running", id=container_id)
    cg = st.cgroup_obj()
    if stats_only:
        _emit({"type": "stats", "id": container_id, "data": stats(cg)})
        return
    ooms = cg.oom_kills()
    next_stats = time.monotonic() + interval
    while True:
        time.sleep(min(0.1, max(0.0, next_stats - time.monotonic())))
        try:
            gone = State.load(root, container_id).status() == "stopped" or not cg.exists()
        except CapsizeError:   # deleted meanwhile: the stream ends
            gone = True
        now = cg.oom_kills() if not gone else ooms
        if now > ooms:
            ooms = now
            _emit({"type": "oom", "id": container_id})
        if gone:
            return
        if time.monotonic() >= next_stats:
            next_stats += interval
            _emit({"type": "stats", "id": container_id, "data": stats(cg)})
