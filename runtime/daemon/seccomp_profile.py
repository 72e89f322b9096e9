"""The seccomp profile of a container's spec (``linux.seccomp``), as dockerd makes it.

* By default: Docker's default profile, as dockerd (:data:`DEFAULT_ENABLED`). Its cost is paid
  once per runtime root: capsize-runc caches the compiled BPF program
  (runtime/lowlevel/seccomp.py ``compiled_filter``); measured here, ``docker run --rm busybox
  true`` with it and with ``seccomp=unconfined``: the same median (0.121 vs 0.124 s, 20 pairs).
  Built with libseccomp in every create it cost about 42 ms. ``docker info`` lists
  ``name=seccomp,profile=default``.
* ``seccomp=builtin`` (a capsize extension; dockerd's ``--seccomp-profile=builtin``): Docker's
  default profile (``seccomp_default.json`` next to this module, in Docker's profile format:
  moby ``profiles/seccomp/default.json``'s rules as dockerd 20.10 resolves them for x86_64 —
  ``tests/reference/data/docker-config.json`` — with the rules that depend on capabilities,
  architecture and kernel kept as ``includes``/``excludes``).
* ``HostConfig.Privileged``, or ``SecurityOpt`` ``seccomp=unconfined``: no profile.
* ``seccomp=<JSON>`` (``docker run --security-opt seccomp=FILE`` sends the file's contents):
  that profile, Docker's format (``architectures`` or ``archMap``, ``syscalls`` with ``name`` or
  ``names``, ``includes``/``excludes`` on ``caps``, ``arches``, ``minKernel``).

:func:`for_container` resolves a profile the way moby's ``profiles/seccomp`` ``setupSeccomp``
does: the native architecture's ``archMap`` entry (with its sub-architectures), then every rule
whose ``includes`` hold (all of ``caps`` in the container's bounding set, the native arch in
``arches``, the kernel at least ``minKernel``) and whose ``excludes`` do not (none of ``caps``,
not the native arch). Errors: InvalidArgument (400) for a bad ``seccomp=`` option or profile.
"""

from __future__ import annotations

import json
import os
import platform

from runtime.errors import InvalidArgument

#: Whether a container without ``seccomp=`` in its SecurityOpt gets Docker's default profile (as dockerd).
DEFAULT_ENABLED = True

_DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")
_default_cache: dict | None = None

#: uname -m -> (libseccomp arch, Go arch names as profiles' ``arches`` use them)
_NATIVE = {"x86_64": ("SCMP_ARCH_X86_64", {"amd64", "x86_64"}), "aarch64": ("SCMP_ARCH_AARCH64", {"arm64", "aarch64"}),
           "ppc64le": ("SCMP_ARCH_PPC64LE", {"ppc64le"}), "s390x": ("SCMP_ARCH_S390X", {"s390x"}),
           "riscv64": ("SCMP_ARCH_RISCV64", {"riscv64"}), "i686": ("SCMP_ARCH_X86", {"386", "x86"}),
           "armv7l": ("SCMP_ARCH_ARM", {"arm"})}


def _default() -> dict:
    global _default_cache
    if _default_cache is None:
        with open(_DEFAULT_PATH) as f:
            _default_cache = json.load(f)
    return _default_cache


def _kernel() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def _min_kernel_ok(text: str) -> bool:
    try:
        major, _, minor = text.partition(".")
        return _kernel() >= (int(major), int(minor or 0))
    except ValueError:
        raise InvalidArgument(f"invalid kernel version {text!r} in seccomp profile") from None


def option(security_opt) -> str | None:
    """The ``seccomp`` value of ``HostConfig.SecurityOpt`` (``seccomp=X`` or ``seccomp:X``), or None."""
    value = None
    for opt in security_opt or []:
        if not isinstance(opt, str):
            continue
        key, sep, val = opt.partition("=")
        if not sep:
            key, sep, val = opt.partition(":")
        if key == "seccomp":
            if not val:
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
            value = val
    return value


def resolve(profile: dict, caps: list[str]) -> dict:
    """An OCI ``linux.seccomp`` from a Docker-format *profile* for a container with bounding set *caps*."""
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise InvalidArgument("invalid seccomp profile: expected an object with a syscalls list")
    machine = platform.machine()
    native, go_arches = _NATIVE.get(machine, ("", {machine}))
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, use either "
                              "'architectures' or 'archMap'")
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if isinstance(entry, dict) and entry.get("architecture") == native:
            arches = [native] + list(entry.get("subArchitectures") or [])
    out = {"defaultAction": profile.get("defaultAction") or "SCMP_ACT_ERRNO", "architectures": arches,
           "syscalls": []}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    capset = set(caps)
    for i, rule in enumerate(profile.get("syscalls") or []):
        if not isinstance(rule, dict):
            raise InvalidArgument(f"invalid seccomp profile: syscalls[{i}] is not an object")
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not all(c in capset for c in inc["caps"]):
            continue
        if inc.get("arches") and not go_arches & set(inc["arches"]):
            continue
        if inc.get("minKernel") and not _min_kernel_ok(str(inc["minKernel"])):
            continue
        if exc.get("caps") and any(c in capset for c in exc["caps"]):
            continue
        if exc.get("arches") and go_arches & set(exc["arches"]):
            continue
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument("use either 'name' or 'names' in a seccomp rule, not both")
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        r = {"names": names, "action": rule.get("action")}
        for key in ("args", "errnoRet"):
            if rule.get(key) is not None:
                r[key] = rule[key]
        out["syscalls"].append(r)
    return out


def for_container(host: dict, caps: list[str]) -> dict | None:
    """``linux.seccomp`` for a container with HostConfig *host* and bounding set *caps*, or None."""
    opt = option(host.get("SecurityOpt"))
    if host.get("Privileged") or opt == "unconfined":
        return None
    if opt is None and not DEFAULT_ENABLED:
        return None
    if opt is None or opt == "builtin":
        return resolve(_default(), caps)
    try:
        profile = json.loads(opt)
    except ValueError as e:
        raise InvalidArgument(f"Decoding seccomp profile failed: {e}") from None
    return resolve(profile, caps)
