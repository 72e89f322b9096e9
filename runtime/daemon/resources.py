"""A container's resource limits: ``HostConfig`` fields <-> OCI ``linux.resources``, written once
for ``create`` (:func:`runtime.daemon.oci.build_spec`) and ``docker update``.

Fields (Engine API 1.41 ``Resources``; units as the API's: bytes, CPU shares, µs, nano-CPUs):
``Memory`` -> ``memory.limit``, ``MemorySwap`` -> ``memory.swap`` (memory + swap; -1 unlimited),
``MemoryReservation`` -> ``memory.reservation``, ``CpuShares`` -> ``cpu.shares``, ``CpuPeriod`` /
``CpuQuota`` -> ``cpu.period`` / ``cpu.quota``, ``NanoCpus`` -> ``cpu.period`` 100000 and
``cpu.quota`` NanoCpus/10^4 (as dockerd), ``CpusetCpus`` / ``CpusetMems`` -> ``cpu.cpus`` /
``cpu.mems``, ``PidsLimit`` -> ``pids.limit`` (0 and -1: unlimited), ``BlkioWeight`` ->
``blockIO.weight``. Zero means "not set" (as dockerd, except ``PidsLimit`` on update, where 0 and
-1 lift the limit).

:func:`check_update` validates a ``POST /containers/{id}/update`` body (``UpdateConfig``:
these fields plus ``RestartPolicy``) with dockerd's texts (daemon/daemon_unix.go
``verifyPlatformContainerResources``, ``verifyContainerResources``): InvalidArgument (400) for
a bad value or a conflict, Unimplemented (501) for a field capsize cannot apply (kernel
memory, realtime CPU, per-device block I/O, ...).
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument, Unimplemented

#: ``HostConfig`` resource fields ``docker update`` may change, and their OCI place
FIELDS = {"Memory": ("memory", "limit"), "MemorySwap": ("memory", "swap"),
          "MemoryReservation": ("memory", "reservation"), "CpuShares": ("cpu", "shares"),
          "CpuPeriod": ("cpu", "period"), "CpuQuota": ("cpu", "quota"), "CpusetCpus": ("cpu", "cpus"),
          "CpusetMems": ("cpu", "mems"), "PidsLimit": ("pids", "limit"), "BlkioWeight": ("blockIO", "weight")}
#: fields of ``UpdateConfig`` capsize cannot apply: refused when set
REFUSED = ("KernelMemory", "KernelMemoryTCP", "CpuRealtimePeriod", "CpuRealtimeRuntime", "BlkioWeightDevice",
           "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
           "DeviceCgroupRules", "Devices", "DeviceRequests", "Ulimits", "CpuCount", "CpuPercent",
           "IOMaximumIOps", "IOMaximumBandwidth", "OomKillDisable")
MIN_MEMORY = 6 * 1024 * 1024   # dockerd's linuxMinMemory
NANO_PERIOD = 100_000           # µs: the CFS period dockerd uses for NanoCpus


def oci(host: dict, lift_pids: bool = False) -> dict:
    """OCI ``linux.resources`` for the resource fields set in *host* (module docstring); with
    *lift_pids* a ``PidsLimit`` of 0 becomes "unlimited" (-1) instead of "not set"."""
    res: dict = {}
    for field, (section, key) in FIELDS.items():
        value = host.get(field)
        if field == "PidsLimit" and lift_pids and value is not None and value <= 0:
            value = -1
        if value in (None, 0, ""):
            continue
        res.setdefault(section, {})[key] = value
    nano = host.get("NanoCpus")
    if nano:
        cpu = res.setdefault("cpu", {})
        cpu["period"], cpu["quota"] = NANO_PERIOD, int(nano) * NANO_PERIOD // 1_000_000_000
    return res


def _int(body: dict, field: str):
    value = body.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidArgument(f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                              f"UpdateConfig.{field} of type int64")
    return value


def check_update(body: dict, current: dict) -> dict:
    """The ``HostConfig`` fields *body* (an ``UpdateConfig``) changes, validated against the
    container's *current* ``HostConfig`` (module docstring)."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object (UpdateConfig)")
    for field in REFUSED:
        if body.get(field):
            raise Unimplemented(f"capsize cannot update {field}")
    changes = {}
    for field in list(FIELDS) + ["NanoCpus"]:
        if field in ("CpusetCpus", "CpusetMems"):
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"json: cannot unmarshal into Go struct field UpdateConfig.{field} of type string")
        else:
            value = _int(body, field)
        if value not in (None, "") and (value != 0 or field == "PidsLimit"):
            changes[field] = value
    check_values(changes, current)
    return changes


def check_values(changes: dict, current: dict) -> None:
    """The value rules dockerd applies to resource fields at create and at update (its
    ``verifyPlatformContainerResources``): *changes* are the fields set (non-zero), *current*
    the container's ``HostConfig`` before (``{}`` at create). InvalidArgument with dockerd's texts."""
    memory = changes.get("Memory", current.get("Memory") or 0)
    if "Memory" in changes and 0 < changes["Memory"] < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = changes.get("MemorySwap", current.get("MemorySwap") or 0)
    if memory > 0 and swap > 0 and swap < memory:
        if "MemorySwap" in changes:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        raise InvalidArgument("Memory limit should be smaller than already set memoryswap limit, update "
                              "the memoryswap at the same time")
    if "NanoCpus" in changes:
        if changes.get("CpuPeriod") or (current.get("CpuPeriod") and "CpuPeriod" not in changes):
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if changes.get("CpuQuota") or (current.get("CpuQuota") and "CpuQuota" not in changes):
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        ncpu = os.cpu_count() or 1
        if changes["NanoCpus"] < 10_000_000 or changes["NanoCpus"] > ncpu * 1_000_000_000:
            raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if ("CpuPeriod" in changes or "CpuQuota" in changes) and current.get("NanoCpus") and "NanoCpus" not in changes:
        raise InvalidArgument("Conflicting options: CPU Period/Quota cannot be updated as NanoCPUs has already been set")
    if "CpuPeriod" in changes and not 1000 <= changes["CpuPeriod"] <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if "CpuQuota" in changes and 0 < changes["CpuQuota"] < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if "BlkioWeight" in changes and not 10 <= changes["BlkioWeight"] <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
