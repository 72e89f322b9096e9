"""OCI ``linux.resources`` -> the cgroup file writes that apply them, on cgroup v1 and v2.

Follows config-linux.md "Control groups" (OCI runtime spec 1.0.2) and, where the spec leaves it
open, runc 1.1's libcontainer (``cgroups/fs`` for v1, ``cgroups/fs2`` for v2):

* :func:`validate` checks the whole resources object first and returns it normalised, so that bad
  input changes nothing: a wrong type or value raises :class:`~runtime.errors.InvalidArgument`
  naming the field (``linux.resources.memory.limit``); a valid value capsize-runc cannot honour
  (realtime CPU, hugepages, device throttling, ...) raises :class:`~runtime.errors.Unimplemented`.
* :func:`plan_v1` / :func:`plan_v2` turn the normalised object into an ordered list of
  :class:`Write` ``(field, path, value)`` plus notes (things deliberately not enforced). They only
  read cgroup files (to pick between alternatives, e.g. ``blkio.weight`` vs ``blkio.bfq.weight``);
  the caller performs the writes through its ``host``.

Units are the spec's: memory in bytes, CPU quota/period in microseconds, cpu shares and block I/O
weight as relative weights. Zero (or null) means "not set" for every number except
``pids.limit``, where 0 and -1 both mean no limit ("max"); -1 means "unlimited" for memory and
CPU quota.

This module is imported by capsize-runc on every ``create``: standard library only.
"""

from __future__ import annotations

import os

from runtime.errors import FailedPrecondition, InvalidArgument, Unimplemented

PREFIX = "linux.resources"

#: runc's default device rules, appended after the config's own rules (runc 1.1 specconv
#: ``AllowedDevices``; checked against runc 1.1.5's devices.list): mknod of anything, and
#: null, random, full, tty, zero, urandom, /dev/pts/*, ptmx, tun. ``(type, major, minor, access)``,
#: ``None`` is the wildcard ``*``.
DEFAULT_ALLOWED_DEVICES = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)

#: The "standard set" a v2 host accepts without an eBPF device filter: runc's defaults plus
#: /dev/console (5:1), which Docker's default spec allows. ``(type, major, minor) -> access``.
STANDARD_DEVICES = {(t, ma, mi): acc for t, ma, mi, acc in DEFAULT_ALLOWED_DEVICES}
STANDARD_DEVICES[("c", 5, 1)] = "rwm"

V2_DEVICES_NOTE = ("cgroup v2: device rules are not enforced (capsize-runc has no eBPF device "
                   "filter; the rules given are the default ones)")

_INT64_MAX = (1 << 63) - 1
def _is_cpu_list(v: str) -> bool:
    """``N``, ``N-M`` items joined by commas (cpuset.cpus/mems syntax). No ``re``: this module is
    imported on every capsize-runc create, and ``re`` costs milliseconds to import."""
    def item(i: str) -> bool:
        lo, dash, hi = i.partition("-")
        return lo.isdigit() and lo.isascii() and (not dash or (hi.isdigit() and hi.isascii()))
    return bool(v) and all(item(i) for i in v.split(","))


_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _is_unified_key(key: str) -> bool:
    """``<controller>.<file>``: a lowercase letter, then ``[a-z0-9_]*``, a dot, ``[a-z0-9_.]+``."""
    ctrl, dot, rest = key.partition(".")
    return (bool(dot and ctrl and rest) and ctrl[0] in _LOWER
            and all(c in _LOWER or c.isdigit() and c.isascii() or c == "_" for c in ctrl)
            and all(c in _LOWER or c.isdigit() and c.isascii() or c in "_." for c in rest))
#: Interface files of the cgroup core that the runtime owns; ``unified`` may not write them.
_UNIFIED_FORBIDDEN = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.type",
                      "cgroup.kill", "cgroup.freeze"}


class Write(tuple):
    """One cgroup file write: ``(field, path, value)``; *field* is the OCI field it comes from."""

    __slots__ = ()

    def __new__(cls, field: str, path: str, value: str):
        return super().__new__(cls, (field, path, value))

    field = property(lambda self: self[0])
    path = property(lambda self: self[1])
    value = property(lambda self: self[2])


# -- validation --------------------------------------------------------------------------------

def _bad(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid {field}: {why}", field=field)


def _unsupported(field: str, why: str) -> Unimplemented:
    return Unimplemented(f"{field} is not supported by capsize-runc: {why}", field=field)


def _section(resources: dict, name: str) -> dict:
    field = f"{PREFIX}.{name}"
    value = resources.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(field, "must be an object")
    return value   # unknown properties are ignored (config.md: runtimes MUST ignore them)


def _int(section: dict, name: str, field: str, lo: int, hi: int = _INT64_MAX, special=()) -> int:
    """The integer at *name*: 0 when absent, null or 0; else in [lo, hi] or one of *special*."""
    v = section.get(name)
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(field, f"must be an integer, not {v!r}")
    if v == 0 or v in special or lo <= v <= hi:
        return v
    also = "".join(f", or {s}" for s in special)
    raise _bad(field, f"{v} is out of range ({lo}..{hi}{also}, or 0 for unset)")


def _limit(section: dict, name: str, field: str) -> int:
    """A memory amount in bytes: 0 = unset, -1 = unlimited, else positive."""
    return _int(section, name, field, lo=1, special=(-1,))


def _unimplemented_if_set(section: dict, names, prefix: str, why: str) -> None:
    for name in names:
        v = section.get(name)
        if v not in (None, 0, False, "", [], {}):
            raise _unsupported(f"{prefix}.{name}", why)


def _cpu_list(section: dict, name: str, field: str) -> str:
    v = section.get(name)
    if v is None or v == "":
        return ""
    if not isinstance(v, str):
        raise _bad(field, f"must be a string like \"0-2,4\", not {v!r}")
    v = v.strip()
    if not _is_cpu_list(v):
        raise _bad(field, f"{v!r} is not a list of numbers and ranges like \"0-2,4\"")
    for part in v.split(","):
        a, _, b = part.partition("-")
        if b and int(b) < int(a):
            raise _bad(field, f"range {part!r} ends before it starts")
    return v


def _device_rule(i: int, rule) -> tuple[bool, str, int | None, int | None, str] | None:
    """One ``linux.resources.devices`` rule as ``(allow, type, major, minor, access)``; None for a
    rule left with no permission (config-linux.md "Allowed Device List")."""
    field = f"{PREFIX}.devices[{i}]"
    if not isinstance(rule, dict):
        raise _bad(field, "must be an object")
    allow = rule.get("allow")
    if not isinstance(allow, bool):
        raise _bad(f"{field}.allow", "is required and must be true or false")
    dtype = rule.get("type") or "a"
    if dtype not in ("a", "b", "c"):
        raise _bad(f"{field}.type", f"{dtype!r} is not one of \"a\", \"b\", \"c\"")
    nums = []
    for name in ("major", "minor"):
        n = rule.get(name)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < -1):
            raise _bad(f"{field}.{name}", f"must be a device number or -1 for any, not {n!r}")
        nums.append(None if n is None or n == -1 else n)
    access = rule.get("access") or "rwm"
    if not isinstance(access, str):
        raise _bad(f"{field}.access", f"must be a string of r, w and m, not {access!r}")
    if not set(access) <= set("rwm"):
        # runc 1.1 keeps only the r, w and m of an access string (devices.Permissions.toSet);
        # the kernel would refuse the others (devices.allow/deny: EINVAL)
        from runtime.lowlevel import log
        log.warning(f"{field}.access: {access!r}: only r, w and m are device permissions; "
                    f"{''.join(sorted(set(access) - set('rwm')))!r} ignored")
    perms = "".join(c for c in "rwm" if c in access)
    return (allow, dtype, nums[0], nums[1], perms) if perms else None


def validate(resources) -> dict:
    """Check an OCI ``linux.resources`` object; return it normalised (every field present).

    Shape of the result: ``{"memory": {"limit", "reservation", "swap", "swappiness",
    "disable_oom_killer"}, "cpu": {"shares", "quota", "period", "cpus", "mems"}, "pids": {"limit"}
    (``None`` when unset), "blkio": {"weight"}, "devices": [(allow, type, major, minor, access)],
    "unified": {key: value}}`` with 0 / "" / None for unset values.

    Unknown properties are ignored (config.md: a runtime MUST ignore them); kernel memory limits
    (``memory.kernel``, ``kernelTCP``) are ignored with a warning on the log, as runc 1.1 does.
    Raises InvalidArgument naming the first bad field, Unimplemented for valid values of fields
    capsize-runc does not act on (realtime CPU on cgroup v2, CPU burst/idle, block I/O
    leaf weight / per-device weights / throttling, hugepage limits, network classes, rdma).
    """
    if resources is None:
        resources = {}
    if not isinstance(resources, dict):
        raise _bad(PREFIX, "must be an object")

    mem = _section(resources, "memory")
    p = f"{PREFIX}.memory"
    memory = {
        "limit": _limit(mem, "limit", f"{p}.limit"),
        "reservation": _limit(mem, "reservation", f"{p}.reservation"),
        "swap": _limit(mem, "swap", f"{p}.swap"),
    }
    if memory["swap"] > 0:
        if memory["limit"] <= 0:
            raise _bad(f"{p}.swap", "a memory+swap limit needs a memory limit (linux.resources.memory.limit)")
        if memory["swap"] < memory["limit"]:
            raise _bad(f"{p}.swap", f"the memory+swap limit ({memory['swap']}) must be at least the "
                                    f"memory limit ({memory['limit']})")
    swappiness = mem.get("swappiness")
    if swappiness is not None and (not isinstance(swappiness, int) or isinstance(swappiness, bool)
                                   or not 0 <= swappiness <= 100):
        raise _bad(f"{p}.swappiness", f"must be an integer in 0..100, not {swappiness!r}")
    memory["swappiness"] = swappiness
    oom = mem.get("disableOOMKiller")
    if oom is not None and not isinstance(oom, bool):
        raise _bad(f"{p}.disableOOMKiller", f"must be true or false, not {oom!r}")
    memory["disable_oom_killer"] = bool(oom)
    if any(mem.get(k) not in (None, 0) for k in ("kernel", "kernelTCP")):
        # runc 1.1 specconv: "Kernel memory settings are ignored and will be removed" (a warning)
        from runtime.lowlevel import log
        log.warning(f"{p}.kernel/kernelTCP: kernel memory settings are ignored and will be removed")
    _unimplemented_if_set(mem, ("useHierarchy", "checkBeforeUpdate"), p, "only the default (false) is supported")

    c = _section(resources, "cpu")
    p = f"{PREFIX}.cpu"
    cpu = {
        "shares": _int(c, "shares", f"{p}.shares", lo=2, hi=262144),
        "quota": _int(c, "quota", f"{p}.quota", lo=1000, special=(-1,)),
        "period": _int(c, "period", f"{p}.period", lo=1000, hi=1000000),
        "cpus": _cpu_list(c, "cpus", f"{p}.cpus"),
        "mems": _cpu_list(c, "mems", f"{p}.mems"),
        "rt_period": _int(c, "realtimePeriod", f"{p}.realtimePeriod", lo=1),
        "rt_runtime": _int(c, "realtimeRuntime", f"{p}.realtimeRuntime", lo=1, special=(-1,)),
    }
    _unimplemented_if_set(c, ("burst", "idle"), p, "CPU burst and idle scheduling")

    pi = _section(resources, "pids")
    pids_limit = None
    if pi.get("limit") is not None:
        pids_limit = _int(pi, "limit", f"{PREFIX}.pids.limit", lo=1, special=(-1,))

    b = _section(resources, "blockIO")
    p = f"{PREFIX}.blockIO"
    blkio = {"weight": _int(b, "weight", f"{p}.weight", lo=10, hi=1000)}
    _unimplemented_if_set(b, ("leafWeight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                              "throttleReadIOPSDevice", "throttleWriteIOPSDevice"), p,
                          "only blockIO.weight is supported")
    for name, why in (("hugepageLimits", "hugetlb limits"), ("network", "net_cls/net_prio"), ("rdma", "rdma limits")):
        _unimplemented_if_set(resources, (name,), PREFIX, why)

    devs = resources.get("devices")
    if devs is None:
        devs = []
    if not isinstance(devs, list):
        raise _bad(f"{PREFIX}.devices", "must be a list of device rules")
    devices = [d for d in (_device_rule(i, r) for i, r in enumerate(devs)) if d is not None]

    unified = resources.get("unified") or {}
    if not isinstance(unified, dict):
        raise _bad(f"{PREFIX}.unified", "must be an object of cgroup v2 file names to values")
    for key, value in unified.items():
        field = f"{PREFIX}.unified[{key!r}]"
        if not isinstance(key, str) or not _is_unified_key(key) or ".." in key:
            raise _bad(field, "the key must be a cgroup v2 interface file name like \"memory.high\"")
        if key in _UNIFIED_FORBIDDEN:
            raise _bad(field, f"{key} is managed by the runtime and cannot be set")
        if not isinstance(value, str):
            raise _bad(field, f"the value must be a string, not {value!r}")

    return {"memory": memory, "cpu": cpu, "pids": {"limit": pids_limit}, "blkio": blkio,
            "devices": devices, "unified": dict(unified)}


# -- helpers shared by both planners ------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _first_set(r: dict, fields: list[tuple[str, object]]) -> str | None:
    """The OCI name of the first field in *fields* ``(name, value)`` whose value is set."""
    for name, value in fields:
        if value not in (None, 0, "", False, [], {}):
            return name
    return None


def _missing(controller: str, field: str) -> FailedPrecondition:
    return FailedPrecondition(f"cannot set {field}: the {controller} cgroup controller is not available "
                              f"on this host", field=field)


def device_rule_string(dtype: str, major: int | None, minor: int | None, access: str) -> str:
    """The devices.allow / devices.deny line for a rule, e.g. ``"c 1:3 rwm"`` or ``"c 136:* rwm"``."""
    star = lambda n: "*" if n is None else str(n)  # noqa: E731
    return f"{dtype} {star(major)}:{star(minor)} {access}"


# -- cgroup v1 ----------------------------------------------------------------------------------

def plan_v1(res: dict, dirs: dict[str, str]) -> tuple[list[Write], list[str]]:
    """The writes for normalised resources *res* (from :func:`validate`) on cgroup v1.

    *dirs* maps each available controller (``"memory"``, ``"cpu"``, ...) to the container's
    directory in its hierarchy. Order follows runc's fs manager: cpuset, devices, memory, cpu,
    pids, blkio. Raises FailedPrecondition naming the field when a needed controller is missing,
    InvalidArgument for ``unified`` (a cgroup v2 feature).
    """
    writes: list[Write] = []
    notes: list[str] = []

    def need(controller: str, field: str) -> str:
        d = dirs.get(controller)
        if d is None:
            raise _missing(controller, field)
        return d

    if res["unified"]:
        raise InvalidArgument(f"invalid configuration: {PREFIX}.unified: unified resources need cgroup v2; "
                              f"this host uses cgroup v1", field=f"{PREFIX}.unified")   # runc's words first

    cpu = res["cpu"]
    for name in ("cpus", "mems"):
        if cpu[name]:
            field = f"{PREFIX}.cpu.{name}"
            writes.append(Write(field, os.path.join(need("cpuset", field), f"cpuset.{name}"), cpu[name]))

    if res["devices"]:
        field = f"{PREFIX}.devices"
        d = need("devices", field)
        writes.append(Write(field, os.path.join(d, "devices.deny"), "a"))
        rules = [(f"{field}[{i}]", r) for i, r in enumerate(res["devices"])]
        rules += [(f"{field} (runtime default)", (True,) + rule) for rule in DEFAULT_ALLOWED_DEVICES]
        for rule_field, (allow, dtype, major, minor, access) in rules:
            writes.append(Write(rule_field, os.path.join(d, "devices.allow" if allow else "devices.deny"),
                                device_rule_string(dtype, major, minor, access)))

    mem = res["memory"]
    field = _first_set(mem, [(f"{PREFIX}.memory.{k}", mem[v]) for k, v in (
        ("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"), ("swappiness", "swappiness"),
        ("disableOOMKiller", "disable_oom_killer"))])
    if field:
        d = need("memory", field)
        limit, swap = mem["limit"], mem["swap"]
        memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
        has_memsw = os.path.exists(memsw)
        if limit == -1 and swap == 0 and has_memsw:
            swap = -1  # runc: an unlimited memory update with no swap given also lifts the swap limit
        if swap and not has_memsw:
            notes.append("memory.swap not applied: swap accounting is off (no memory.memsw.limit_in_bytes)")
            swap = 0
        w_limit = Write(f"{PREFIX}.memory.limit", os.path.join(d, "memory.limit_in_bytes"), str(limit))
        w_swap = Write(f"{PREFIX}.memory.swap", memsw, str(swap))
        if limit and swap:
            # The kernel keeps memory.limit <= memsw.limit at every step: raise memsw first when
            # it grows (or goes unlimited), lower the memory limit first when memsw shrinks.
            current = _read(memsw)
            grows = swap == -1 or (current is not None and current.lstrip("-").isdigit() and swap > int(current))
            writes.extend([w_swap, w_limit] if grows else [w_limit, w_swap])
        elif limit:
            writes.append(w_limit)
        elif swap:
            writes.append(w_swap)
        if mem["reservation"]:
            writes.append(Write(f"{PREFIX}.memory.reservation", os.path.join(d, "memory.soft_limit_in_bytes"),
                                str(mem["reservation"])))
        if mem["swappiness"] is not None:
            writes.append(Write(f"{PREFIX}.memory.swappiness", os.path.join(d, "memory.swappiness"),
                                str(mem["swappiness"])))
        if mem["disable_oom_killer"]:
            writes.append(Write(f"{PREFIX}.memory.disableOOMKiller", os.path.join(d, "memory.oom_control"), "1"))

    order = [("shares", "cpu.shares", cpu["shares"]), ("period", "cpu.cfs_period_us", cpu["period"]),
             ("quota", "cpu.cfs_quota_us", cpu["quota"]),
             ("realtimePeriod", "cpu.rt_period_us", cpu["rt_period"]),
             ("realtimeRuntime", "cpu.rt_runtime_us", cpu["rt_runtime"])]
    if cpu["period"] and cpu["quota"]:
        # A shorter period with the old quota may exceed the parent's limit (EINVAL): then the
        # quota goes first (runc 1.1's cpu.Set retries in that order after the kernel refuses).
        current = _read(os.path.join(need("cpu", f"{PREFIX}.cpu.period"), "cpu.cfs_period_us"))
        if current is not None and current.isdigit() and cpu["period"] < int(current):
            order[1], order[2] = order[2], order[1]
    for name, file, value in order:
        if value:
            field = f"{PREFIX}.cpu.{name}"
            writes.append(Write(field, os.path.join(need("cpu", field), file), str(value)))

    limit = res["pids"]["limit"]
    if limit is not None:
        field = f"{PREFIX}.pids.limit"
        writes.append(Write(field, os.path.join(need("pids", field), "pids.max"),
                            str(limit) if limit > 0 else "max"))

    weight = res["blkio"]["weight"]
    if weight:
        field = f"{PREFIX}.blockIO.weight"
        d = need("blkio", field)
        for file in ("blkio.weight", "blkio.bfq.weight"):  # CFQ's, then BFQ's (runc's order)
            if os.path.exists(os.path.join(d, file)):
                writes.append(Write(field, os.path.join(d, file), str(weight)))
                break
        else:
            raise FailedPrecondition(f"cannot set {field}: no block I/O scheduler with weights "
                                     f"(neither blkio.weight nor blkio.bfq.weight in {d})", field=field)
    return writes, notes


# -- cgroup v2 ----------------------------------------------------------------------------------

def cpu_weight_from_shares(shares: int) -> int:
    """cgroup v2 ``cpu.weight`` (1..10000) for v1 ``cpu.shares`` (2..262144), runc's formula; 0 -> 0."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight_from_blkio(weight: int) -> int:
    """cgroup v2 ``io.weight`` (1..10000) for a v1 blkio weight (10..1000), runc's formula; 0 -> 0."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_max_from_oci(swap: int, limit: int) -> str:
    """cgroup v2 ``memory.swap.max`` (swap alone) for OCI memory.swap (memory+swap); "" = leave unset."""
    if swap == -1:
        return "max"
    if swap == 0:
        return ""
    return str(swap - limit)


def check_devices_v2(devices: list) -> None:
    """Accept device rules a cgroup v2 host can honour without an eBPF filter, or raise Unimplemented.

    Accepted: rules that start from "deny all" (or "allow all") and then only allow devices of the
    standard set (:data:`STANDARD_DEVICES`) or deny devices no earlier rule allowed (no-ops, like
    Docker's deny of /dev/fuse). Anything else would need enforcement capsize-runc cannot give.
    """
    allow_all = False
    allowed: list[tuple] = []
    for i, (allow, dtype, major, minor, access) in enumerate(devices):
        field = f"{PREFIX}.devices[{i}]"
        rule = device_rule_string(dtype, major, minor, access)
        why = (f"{'allow' if allow else 'deny'} rule {rule!r} cannot be enforced on cgroup v2: capsize-runc "
               f"has no eBPF device filter, so only the default rules are supported there")
        if dtype == "a":
            allow_all, allowed = allow, []
        elif allow_all:
            if not allow:
                raise Unimplemented(f"{field}: {why}", field=field)
        elif allow:
            std = STANDARD_DEVICES.get((dtype, major, minor))
            if std is None or not set(access) <= set(std):
                raise Unimplemented(f"{field}: {why}", field=field)
            allowed.append((dtype, major, minor, access))
        else:
            for t, ma, mi, acc in allowed:
                if (t == dtype and (major is None or ma is None or ma == major)
                        and (minor is None or mi is None or mi == minor) and set(acc) & set(access)):
                    raise Unimplemented(f"{field}: {why}", field=field)


def plan_v2(res: dict, d: str) -> tuple[list[Write], list[str]]:
    """The writes for normalised resources *res* on cgroup v2, in the container's directory *d*.

    Controllers are those listed in ``d/cgroup.controllers``. Order follows runc's fs2 manager:
    pids, memory, io, cpu, devices, cpuset, unified (last, so it overrides). Conversions: cpu.weight
    from shares and io.weight from blkio weight (runc's formulas), memory.swap.max = swap - limit.
    Raises FailedPrecondition naming the field when a controller is not enabled, Unimplemented
    for device rules that need an eBPF filter, InvalidArgument for a swap limit without a memory
    limit; devices that are the defaults are accepted with a note that they are not enforced.
    """
    writes: list[Write] = []
    notes: list[str] = []
    for name, key in (("realtimePeriod", "rt_period"), ("realtimeRuntime", "rt_runtime")):
        if res["cpu"][key]:
            raise _unsupported(f"{PREFIX}.cpu.{name}", "cgroup v2 has no realtime CPU limits (runc refuses them too)")
    available = set((_read(os.path.join(d, "cgroup.controllers")) or "").split())

    def need(controller: str, field: str) -> None:
        if controller not in available:
            raise FailedPrecondition(f"cannot set {field}: the {controller} controller is not enabled for {d} "
                                     f"(cgroup.controllers: {' '.join(sorted(available)) or 'none'})", field=field)

    limit = res["pids"]["limit"]
    if limit is not None:
        field = f"{PREFIX}.pids.limit"
        need("pids", field)
        writes.append(Write(field, os.path.join(d, "pids.max"), str(limit) if limit > 0 else "max"))

    mem = res["memory"]
    p = f"{PREFIX}.memory"
    if mem["swappiness"] is not None:
        raise _unsupported(f"{p}.swappiness", "cgroup v2 has no per-cgroup swappiness")
    if mem["disable_oom_killer"]:
        raise _unsupported(f"{p}.disableOOMKiller", "cgroup v2 cannot disable the OOM killer")
    field = _first_set(mem, [(f"{p}.limit", mem["limit"]), (f"{p}.swap", mem["swap"]),
                             (f"{p}.reservation", mem["reservation"])])
    if field:
        need("memory", field)
        if mem["limit"]:
            writes.append(Write(f"{p}.limit", os.path.join(d, "memory.max"),
                                "max" if mem["limit"] == -1 else str(mem["limit"])))
        swap = swap_max_from_oci(mem["swap"], mem["limit"])
        if swap:
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                writes.append(Write(f"{p}.swap", os.path.join(d, "memory.swap.max"), swap))
            else:
                notes.append("memory.swap not applied: swap accounting is off (no memory.swap.max)")
        if mem["reservation"]:
            writes.append(Write(f"{p}.reservation", os.path.join(d, "memory.low"),
                                "max" if mem["reservation"] == -1 else str(mem["reservation"])))

    weight = res["blkio"]["weight"]
    if weight:
        field = f"{PREFIX}.blockIO.weight"
        need("io", field)
        if os.path.exists(os.path.join(d, "io.bfq.weight")):
            writes.append(Write(field, os.path.join(d, "io.bfq.weight"), str(weight)))
        else:
            writes.append(Write(field, os.path.join(d, "io.weight"), str(io_weight_from_blkio(weight))))

    cpu = res["cpu"]
    p = f"{PREFIX}.cpu"
    if cpu["shares"]:
        need("cpu", f"{p}.shares")
        writes.append(Write(f"{p}.shares", os.path.join(d, "cpu.weight"), str(cpu_weight_from_shares(cpu["shares"]))))
    if cpu["quota"] or cpu["period"]:
        field = f"{p}.quota" if cpu["quota"] else f"{p}.period"
        need("cpu", field)
        value = str(cpu["quota"]) if cpu["quota"] > 0 else "max"
        if cpu["period"]:
            value += f" {cpu['period']}"
        writes.append(Write(field, os.path.join(d, "cpu.max"), value))

    if res["devices"]:
        check_devices_v2(res["devices"])
        notes.append(V2_DEVICES_NOTE)

    for name in ("cpus", "mems"):
        if cpu[name]:
            field = f"{p}.{name}"
            need("cpuset", field)
            writes.append(Write(field, os.path.join(d, f"cpuset.{name}"), cpu[name]))

    for key, value in res["unified"].items():
        field = f"{PREFIX}.unified[{key!r}]"
        controller = key.split(".", 1)[0]
        if controller != "cgroup":
            need(controller, field)
        writes.append(Write(field, os.path.join(d, key), value))
    return writes, notes
