"""Create-time checks of a container's settings, with dockerd's statuses and texts.

dockerd checks a create request's values (not only their JSON types, which
:mod:`runtime.daemon.validate` checks) in ``verifyContainerSettings`` (daemon/container.go) and
``verifyPlatformContainerSettings`` / ``verifyPlatformContainerResources``
(daemon/daemon_unix.go), before anything is recorded; a refused value is a 400 at create, not a
failure at start in the low-level runtime's words. :func:`verify` does the same for what
capsized runs, with the texts dockerd 20.10 answers on this machine (measured against the
private dockerd of :mod:`harness.reference.docker`):

=====================================  ==========================================================
``WorkingDir`` relative                ``the working directory 'tmp' is invalid, it needs to be an
                                       absolute path``
``Memory`` in (0, 6 MiB)               ``Minimum memory limit allowed is 6MB`` (``linuxMinMemory``,
                                       6291456 bytes)
``MemoryReservation`` in (0, 6 MiB)    ``Minimum memory reservation allowed is 6MB``
``MemorySwap`` > 0, < ``Memory``       ``Minimum memoryswap limit should be larger than memory
                                       limit, see usage``
``MemorySwap`` > 0 without ``Memory``  ``You should always set the Memory limit when using
                                       Memoryswap limit, see usage``
``MemorySwappiness`` outside 0-100     ``Invalid value: 200, valid memory swappiness range is 0-100``
                                       (-1, what old clients send for "unset", is accepted)
``CpuQuota`` in (0, 1000)              ``CPU cfs quota can not be less than 1ms (i.e. 1000)``
``CpuPeriod`` outside 1 ms-1 s         ``CPU cfs period can not be less than 1ms (i.e. 1000) or
                                       larger than 1s (i.e. 1000000)``
``NanoCpus`` outside 0.01-NCPU         ``Range of CPUs is from 0.01 to 2.00, as there are only 2
                                       CPUs available``
``OomScoreAdj`` outside ±1000          ``Invalid value 5000, range for oom score adj is [-1000, 1000]``
``CapAdd`` / ``CapDrop`` unknown       ``invalid CapAdd: unknown capability: "CAP_FOO"`` (names
                                       upper-cased, ``CAP_`` prefixed; ``ALL`` allowed)
``Ulimits`` unknown name               ``invalid ulimit type: foo`` (go-units' ``ParseUlimit``,
                                       the CLI's words: dockerd 20.10 itself accepts it at create
                                       and fails at start)
``Ulimits`` Soft > Hard                ``ulimit soft limit must be less than or equal to hard
                                       limit: 10 > 2`` (go-units, as above)
=====================================  ==========================================================

The rules shared with ``docker update`` (Memory, MemorySwap, NanoCpus, CpuQuota, CpuPeriod,
BlkioWeight) are :func:`runtime.daemon.resources.check_values`'s. Mount specifications are checked by :mod:`runtime.daemon.hostconfig` (unknown type, relative
target, missing source, duplicate mount point) and restart policies by
:mod:`runtime.daemon.restart`. Raises :class:`runtime.errors.InvalidArgument` (400).
"""

from __future__ import annotations

from runtime.daemon import resources
from runtime.errors import InvalidArgument
from runtime.lowlevel.capabilities import CAPABILITIES

MIN_MEMORY = resources.MIN_MEMORY
#: go-units' ulimit names (``--ulimit NAME=SOFT[:HARD]``) -> OCI ``process.rlimits[].type``
ULIMITS = {name: "RLIMIT_" + name.upper() for name in (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack")}
ULIMITS["as"] = "RLIMIT_AS"


def _int(host: dict, key: str) -> int:
    v = host.get(key)
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def capability(name: str) -> str:
    """*name* as Docker normalises it (``net_admin`` -> ``CAP_NET_ADMIN``; ``ALL`` -> ``CAP_ALL``)."""
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def caps(host: dict, key: str) -> list:
    """``HostConfig.CapAdd`` / ``CapDrop`` as a list (a strslice: one string is a list of one)."""
    v = host.get(key) or []
    return [v] if isinstance(v, str) else list(v)


def _check_caps(host: dict, key: str) -> None:
    for c in caps(host, key):
        cap = capability(c) if isinstance(c, str) else str(c)
        if cap != "CAP_ALL" and cap not in CAPABILITIES:
            raise InvalidArgument(f'invalid {key}: unknown capability: "{cap}"')


def rlimits(host: dict) -> list[dict]:
    """``HostConfig.Ulimits`` (``[{"Name", "Soft", "Hard"}]``) as OCI ``process.rlimits``
    (``[{"type": "RLIMIT_NOFILE", "soft", "hard"}]``); InvalidArgument for a bad one (table above)."""
    out = []
    for u in host.get("Ulimits") or []:
        if not isinstance(u, dict):
            raise InvalidArgument(f"invalid ulimit argument: {u!r}")
        name = u.get("Name")
        if name not in ULIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        soft, hard = u.get("Soft") or 0, u.get("Hard") or 0
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (soft, hard)):
            raise InvalidArgument(f"invalid ulimit argument: {u!r}")
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out.append({"type": ULIMITS[name], "soft": soft & ((1 << 64) - 1), "hard": hard & ((1 << 64) - 1)})
    return out


def verify(cfg: dict, host: dict) -> None:
    """Refuse at create what dockerd refuses at create (module docstring); *cfg* is the request's
    ``Config`` part, *host* its ``HostConfig``."""
    wd = cfg.get("WorkingDir")
    if wd and not wd.startswith("/"):
        raise InvalidArgument(f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    memory, swap, reservation = _int(host, "Memory"), _int(host, "MemorySwap"), _int(host, "MemoryReservation")
    if memory == 0 and swap > 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    # Memory, MemorySwap, NanoCpus, CpuPeriod/CpuQuota, BlkioWeight: the rules docker update applies too
    resources.check_values({k: host[k] for k in (*resources.FIELDS, "NanoCpus") if _int(host, k)}, {})
    if reservation and reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    swappiness = host.get("MemorySwappiness")
    if isinstance(swappiness, int) and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    adj = _int(host, "OomScoreAdj")
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    _check_caps(host, "CapAdd")
    _check_caps(host, "CapDrop")
    rlimits(host)
