"""Linux capabilities: the ``CAP_*`` name <-> number table and the OCI capability sets.

The table follows ``<linux/capability.h>`` (capabilities(7)) from ``CAP_CHOWN`` (0) up to
``CAP_CHECKPOINT_RESTORE`` (40, Linux 5.9). An OCI ``process.capabilities`` object
(config.md "Process", Linux process) has up to five sets — ``bounding``, ``effective``,
``permitted``, ``inheritable``, ``ambient`` — each a list of ``"CAP_*"`` names.

Masks are Python ints, bit *n* = capability number *n* (the layout of ``CapEff:`` and friends in
``/proc/<pid>/status`` and of capset(2)'s two 32-bit halves).

Two rules, as runc applies them:

* a name that is in this table but above the running kernel's ``CAP_LAST_CAP``
  (``/proc/sys/kernel/cap_last_cap``) is ignored: the kernel has no such capability;
* a name that is not in the table is an error here (:class:`~runtime.errors.InvalidArgument`
  naming the field, e.g. ``process.capabilities.bounding[2]``). runc 1.1 only logs a warning
  and ignores it; crun rejects it. A typo that silently drops a capability is worse than an error.

Pure Python, no ctypes: imported by capsize-runc on every invocation.
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

#: Capability names by number (index = number), as in <linux/capability.h>.
NAMES: tuple[str, ...] = (
    "CAP_CHOWN",               # 0
    "CAP_DAC_OVERRIDE",        # 1
    "CAP_DAC_READ_SEARCH",     # 2
    "CAP_FOWNER",              # 3
    "CAP_FSETID",              # 4
    "CAP_KILL",                # 5
    "CAP_SETGID",              # 6
    "CAP_SETUID",              # 7
    "CAP_SETPCAP",             # 8
    "CAP_LINUX_IMMUTABLE",     # 9
    "CAP_NET_BIND_SERVICE",    # 10
    "CAP_NET_BROADCAST",       # 11
    "CAP_NET_ADMIN",           # 12
    "CAP_NET_RAW",             # 13
    "CAP_IPC_LOCK",            # 14
    "CAP_IPC_OWNER",           # 15
    "CAP_SYS_MODULE",          # 16
    "CAP_SYS_RAWIO",           # 17
    "CAP_SYS_CHROOT",          # 18
    "CAP_SYS_PTRACE",          # 19
    "CAP_SYS_PACCT",           # 20
    "CAP_SYS_ADMIN",           # 21
    "CAP_SYS_BOOT",            # 22
    "CAP_SYS_NICE",            # 23
    "CAP_SYS_RESOURCE",        # 24
    "CAP_SYS_TIME",            # 25
    "CAP_SYS_TTY_CONFIG",      # 26
    "CAP_MKNOD",               # 27
    "CAP_LEASE",               # 28
    "CAP_AUDIT_WRITE",         # 29
    "CAP_AUDIT_CONTROL",       # 30
    "CAP_SETFCAP",             # 31
    "CAP_MAC_OVERRIDE",        # 32
    "CAP_MAC_ADMIN",           # 33
    "CAP_SYSLOG",              # 34
    "CAP_WAKE_ALARM",          # 35
    "CAP_BLOCK_SUSPEND",       # 36
    "CAP_AUDIT_READ",          # 37
    "CAP_PERFMON",             # 38
    "CAP_BPF",                 # 39
    "CAP_CHECKPOINT_RESTORE",  # 40
)

#: ``"CAP_*"`` name -> capability number.
CAPABILITIES: dict[str, int] = {name: number for number, name in enumerate(NAMES)}

#: The highest capability number this table knows (CAP_CHECKPOINT_RESTORE).
CAP_LAST_KNOWN = len(NAMES) - 1

#: The OCI capability sets, in the order config.md lists them.
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

#: OCI set name -> field of /proc/<pid>/status (proc(5)).
STATUS_FIELDS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
                 "inheritable": "CapInh", "ambient": "CapAmb"}


def number(name: str, field: str = "capability") -> int:
    """The number of capability *name* (``"CAP_KILL"`` -> 5); InvalidArgument naming *field* if unknown."""
    try:
        return CAPABILITIES[name]
    except (KeyError, TypeError):
        raise InvalidArgument(f"{field}: unknown capability {name!r}", field=field) from None


def name(cap: int) -> str:
    """The ``CAP_*`` name of capability number *cap*; a number beyond the table gives its decimal
    string (as libcap's cap_to_name does)."""
    return NAMES[cap] if 0 <= cap <= CAP_LAST_KNOWN else str(cap)


def last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    """The running kernel's CAP_LAST_CAP; :data:`CAP_LAST_KNOWN` if *path* cannot be read."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return CAP_LAST_KNOWN


def to_mask(names, field: str = "capabilities", last: int | None = None) -> int:
    """Mask of the capability *names* (a list of ``"CAP_*"`` strings).

    Unknown names raise InvalidArgument naming ``field[i]``; known names above *last*
    (default: the running kernel's CAP_LAST_CAP) are left out, as runc does.
    """
    if names is None:
        return 0
    if not isinstance(names, (list, tuple)):
        raise InvalidArgument(f"{field}: must be a list of capability names", field=field)
    if last is None:
        last = last_cap()
    mask = 0
    for i, cap_name in enumerate(names):
        n = number(cap_name, f"{field}[{i}]")
        if n <= last:
            mask |= 1 << n
    return mask


def to_names(mask: int) -> list[str]:
    """The names of the capabilities set in *mask*, lowest number first."""
    return [name(n) for n in range(mask.bit_length()) if mask >> n & 1]


def parse(caps: dict | None, field: str = "process.capabilities", last: int | None = None) -> dict[str, int]:
    """An OCI ``process.capabilities`` object -> ``{set: mask}`` for all five :data:`SETS`.

    A missing set is empty; ``caps=None`` (no ``capabilities`` in the config) gives five empty
    sets, which is what runc 1.1 applies then (every capability dropped). Unknown keys are
    ignored (config.md: runtimes ignore unknown properties). Raises InvalidArgument naming
    the field for a non-object, a non-list set or an unknown name.
    """
    if caps is None:
        return {s: 0 for s in SETS}
    if not isinstance(caps, dict):
        raise InvalidArgument(f"{field}: must be an object with lists of capability names", field=field)
    if last is None:
        last = last_cap()
    return {s: to_mask(caps.get(s), f"{field}.{s}", last) for s in SETS}


def read_sets(pid: int | str = "self") -> dict[str, int]:
    """The capability sets of process *pid* from ``/proc/<pid>/status``: ``{set: mask}``."""
    wanted = {v: k for k, v in STATUS_FIELDS.items()}
    sets = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in wanted:
                sets[wanted[key]] = int(value.strip(), 16)
    return sets
