"""``docker stats``: a container's resource usage read from its cgroup (Engine API 1.41
``GET /containers/{id}/stats``, the ``ContainerStats`` object), on cgroup v1 and v2.

:func:`sample` reads one ``ContainerStats`` (without ``precpu_stats``, which the caller fills
with the previous sample) from the container's cgroup, found as capsize-runc makes it
(:class:`runtime.lowlevel.cgroups.Cgroup`, the container's ``linux.cgroupsPath``). Fields, as
dockerd's libcontainerd stats on each layout (daemon/stats_collector and daemon/stats/*):

* ``read``: RFC 3339 time of the sample; ``id``, ``name`` (``/NAME``); ``num_procs`` 0;
  ``storage_stats`` ``{}``; no ``networks`` (a capsize container has only ``lo``, as Docker's
  ``--network none`` shows none);
* ``pids_stats``: ``{"current", "limit"}`` (``pids.current``, ``pids.max``; no limit when ``max``);
* ``cpu_stats``: ``cpu_usage`` ``{"total_usage", "usage_in_kernelmode", "usage_in_usermode"}`` in
  ns (v1: ``cpuacct.usage``, ``cpuacct.stat`` in USER_HZ ticks, plus ``percpu_usage`` from
  ``cpuacct.usage_percpu``; v2: ``cpu.stat`` ``usage_usec``/``system_usec``/``user_usec``),
  ``system_cpu_usage`` (ns: the ``cpu`` line of ``/proc/stat``), ``online_cpus``,
  ``throttling_data`` ``{"periods", "throttled_periods", "throttled_time"}`` (ns);
* ``memory_stats``: ``usage``, ``limit`` (the cgroup's limit, at most the host's memory),
  ``stats`` (every ``memory.stat`` key); v1 also ``max_usage`` and ``failcnt``;
* ``blkio_stats``: ``io_service_bytes_recursive`` and ``io_serviced_recursive`` as lists of
  ``{"major", "minor", "op", "value"}`` (v1: ``blkio.throttle.*``, ops ``Read``/``Write``/...;
  v2: ``io.stat``, ops ``read``/``write``), the other lists null.

:func:`empty` is the zero object dockerd answers for a container that is not running.
"""

from __future__ import annotations

import os

from runtime.lowlevel.cgroups import read_file as _read
from runtime.rfc3339 import format_nano

_ZERO_TIME = "0001-01-01T00:00:00Z"
_USER_HZ = os.sysconf("SC_CLK_TCK")
_BLKIO_LISTS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                "io_time_recursive", "sectors_recursive")


def _int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None   # "max"


def _kv(path: str) -> dict[str, int]:
    out = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def system_cpu_usage() -> int:
    """ns of CPU time the host spent, all CPUs and states (``/proc/stat``'s ``cpu`` line)."""
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("cpu "):
            return sum(int(v) for v in line.split()[1:8]) * 1_000_000_000 // _USER_HZ
    return 0


def host_memory() -> int:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _empty_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def empty(cid: str, name: str) -> dict:
    """The ``ContainerStats`` of a container that is not running (zeros, ``read`` the zero time)."""
    return {"read": _ZERO_TIME, "preread": _ZERO_TIME, "id": cid, "name": "/" + name, "num_procs": 0,
            "pids_stats": {}, "blkio_stats": {k: None for k in _BLKIO_LISTS}, "storage_stats": {},
            "cpu_stats": _empty_cpu(), "precpu_stats": _empty_cpu(), "memory_stats": {}}


def _dir(dirs: dict, controller: str) -> str | None:
    if "" in dirs and len(dirs) == 1:
        return dirs[""]          # v2: one directory
    for key, d in dirs.items():
        if key and controller in key.split(","):
            return d
    return None


def _blkio_v1(d: str, name: str) -> list[dict]:
    out = []
    for line in (_read(os.path.join(d, name)) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out


def _io_v2(d: str) -> tuple[list[dict], list[dict]]:
    nbytes, nios = [], []
    for line in (_read(os.path.join(d, "io.stat")) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for op in ("read", "write"):
            nbytes.append({"major": major, "minor": minor, "op": op, "value": int(kv.get(op[0] + "bytes", 0))})
            nios.append({"major": major, "minor": minor, "op": op, "value": int(kv.get(op[0] + "ios", 0))})
    return nbytes, nios


def sample(cgroup, cid: str, name: str) -> dict:
    """One ``ContainerStats`` of the container whose cgroup is *cgroup* (a
    :class:`runtime.lowlevel.cgroups.Cgroup`); ``precpu_stats`` is left to the caller."""
    dirs = cgroup.dirs
    v2 = cgroup.layout == "v2"
    out = empty(cid, name)
    out["read"] = format_nano()
    del out["preread"], out["precpu_stats"]
    pids = _dir(dirs, "pids")
    current = _int(os.path.join(pids, "pids.current")) if pids else None
    if current is not None:   # the controller is there (on v2, enabled for the cgroup)
        out["pids_stats"] = {"current": current}
        limit = _int(os.path.join(pids, "pids.max"))
        if limit:
            out["pids_stats"]["limit"] = limit
    cpu = out["cpu_stats"]
    if v2:
        st = _kv(os.path.join(dirs[""], "cpu.stat"))
        cpu["cpu_usage"] = {"total_usage": st.get("usage_usec", 0) * 1000,
                            "usage_in_kernelmode": st.get("system_usec", 0) * 1000,
                            "usage_in_usermode": st.get("user_usec", 0) * 1000}
        cpu["throttling_data"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                  "throttled_time": st.get("throttled_usec", 0) * 1000}
    else:
        acct = _dir(dirs, "cpuacct")
        if acct:
            ticks = _kv(os.path.join(acct, "cpuacct.stat"))
            percpu = [int(v) for v in (_read(os.path.join(acct, "cpuacct.usage_percpu")) or "").split()]
            cpu["cpu_usage"] = {"total_usage": _int(os.path.join(acct, "cpuacct.usage")) or 0,
                                "percpu_usage": percpu,
                                "usage_in_kernelmode": ticks.get("system", 0) * 1_000_000_000 // _USER_HZ,
                                "usage_in_usermode": ticks.get("user", 0) * 1_000_000_000 // _USER_HZ}
        cpudir = _dir(dirs, "cpu")
        if cpudir:
            st = _kv(os.path.join(cpudir, "cpu.stat"))
            cpu["throttling_data"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                      "throttled_time": st.get("throttled_time", 0)}
    cpu["system_cpu_usage"] = system_cpu_usage()
    cpu["online_cpus"] = online_cpus()
    mem = _dir(dirs, "memory")
    if mem and os.path.exists(os.path.join(mem, "memory.current" if v2 else "memory.usage_in_bytes")):
        hostmem = host_memory()
        if v2:
            limit = _int(os.path.join(mem, "memory.max"))
            out["memory_stats"] = {"usage": _int(os.path.join(mem, "memory.current")) or 0,
                                   "stats": _kv(os.path.join(mem, "memory.stat")),
                                   "limit": min(limit, hostmem) if limit else hostmem}
        else:
            limit = _int(os.path.join(mem, "memory.limit_in_bytes")) or hostmem
            out["memory_stats"] = {"usage": _int(os.path.join(mem, "memory.usage_in_bytes")) or 0,
                                   "max_usage": _int(os.path.join(mem, "memory.max_usage_in_bytes")) or 0,
                                   "failcnt": _int(os.path.join(mem, "memory.failcnt")) or 0,
                                   "stats": _kv(os.path.join(mem, "memory.stat")),
                                   "limit": min(limit, hostmem) if hostmem else limit}
    if v2:
        nbytes, nios = _io_v2(dirs[""])
        out["blkio_stats"].update(io_service_bytes_recursive=nbytes, io_serviced_recursive=nios)
    else:
        blk = _dir(dirs, "blkio")
        if blk:
            out["blkio_stats"].update(
                io_service_bytes_recursive=_blkio_v1(blk, "blkio.throttle.io_service_bytes_recursive"),
                io_serviced_recursive=_blkio_v1(blk, "blkio.throttle.io_serviced_recursive"))
    return out
