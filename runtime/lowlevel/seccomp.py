"""OCI ``linux.seccomp`` (config-linux.md "Seccomp") -> a libseccomp filter, loaded as runc 1.1 does.

The config's shape::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
     "flags": ["SECCOMP_FILTER_FLAG_LOG"],
     "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1,
                   "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                             "op": "SCMP_CMP_MASKED_EQ"}]}]}

Three steps, so that a caller can do each at the right moment:

* :func:`parse` checks the config and names the first bad field (InvalidArgument); pure Python.
* :func:`build_filter` turns it into a libseccomp filter through ``pyseccomp`` (ctypes), following
  runc 1.1's ``libcontainer/seccomp/seccomp_linux.go``: the native architecture plus the listed
  ones; libseccomp's own no_new_privs bit switched off (NNP is ``process.noNewPrivileges``'s
  business); a rule whose action equals the default action is skipped; a syscall name
  libseccomp cannot resolve is skipped (it does not exist on this kernel/arch); conditions on
  the same argument index become one rule each, otherwise one rule with all conditions;
  ``errnoRet`` defaults to EPERM for ERRNO and TRACE; binary-tree optimisation above 32 rules.
* :func:`load` installs it (seccomp_load(3), through ``host.seccomp_load``).

:func:`load_filter` does all three. :func:`compiled_filter` is what ``create`` and ``exec`` use:
the BPF program libseccomp generates for a profile (seccomp_export_bpf(3)) is cached in the
runtime's state directory, ``<root>/@seccomp/<sha256 of the checked profile and machine>.bpf``
(``@`` cannot start a container id), and loaded with seccomp(2) ``SECCOMP_SET_MODE_FILTER`` and
the profile's flags, as seccomp_load(3) does. Only the first container with a given profile
pays for pyseccomp and libseccomp (about 40 ms measured here); crun caches its filters likewise.

``SCMP_ACT_NOTIFY`` needs a seccomp agent listening on
``listenerPath`` and raises :class:`~runtime.errors.Unimplemented`; so does a missing libseccomp
("seccomp not supported: ..."): a configured filter is never silently ignored.

The -ENOSYS patch (runc 1.1's ``patchbpf``): on x86_64, with a default action other than
ALLOW, the compiled program starts with a stub that makes a native syscall numbered above every
syscall the profile names fail with ENOSYS (a syscall newer than the profile: the caller's libc
then falls back, as it would on an older kernel) instead of the default action
(:func:`enosys_stub`). Not done for other architectures, x32 numbers or the uncached
:func:`build_filter` path.

Import cost: this module is pure Python; ``pyseccomp`` (ctypes, and an ``ldconfig -p`` run to
find libseccomp) is imported on first use only. Inside a container that import cannot find the
host's libseccomp, so call :func:`preload` (or :func:`build_filter`) *before* pivot_root or
setns into the container's mount namespace.
"""

from __future__ import annotations

import errno as _errno
import os

from runtime import atomicfile
from runtime.errors import CapsizeError, InvalidArgument, PermissionDenied, Unimplemented
from runtime.host import HOST

# SECCOMP_RET_* action values (<linux/seccomp.h>), which libseccomp's SCMP_ACT_* map to.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

#: OCI action name -> base action value; ERRNO and TRACE carry errnoRet in their low 16 bits.
ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}

#: OCI operator name -> libseccomp's enum scmp_compare value.
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

_LE, _64, _N32 = 0x40000000, 0x80000000, 0x20000000  # AUDIT_ARCH_* flag bits (<linux/audit.h>)
#: OCI architecture name -> AUDIT_ARCH_* value (libseccomp's SCMP_ARCH_*); the names runc 1.1 knows.
ARCHITECTURES = {
    "SCMP_ARCH_X86": 3 | _LE,
    "SCMP_ARCH_X86_64": 62 | _64 | _LE,
    "SCMP_ARCH_X32": 62 | _LE,
    "SCMP_ARCH_ARM": 40 | _LE,
    "SCMP_ARCH_AARCH64": 183 | _64 | _LE,
    "SCMP_ARCH_MIPS": 8,
    "SCMP_ARCH_MIPS64": 8 | _64,
    "SCMP_ARCH_MIPS64N32": 8 | _64 | _N32,
    "SCMP_ARCH_MIPSEL": 8 | _LE,
    "SCMP_ARCH_MIPSEL64": 8 | _64 | _LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _64 | _LE | _N32,
    "SCMP_ARCH_PPC": 20,
    "SCMP_ARCH_PPC64": 21 | _64,
    "SCMP_ARCH_PPC64LE": 21 | _64 | _LE,
    "SCMP_ARCH_S390": 22,
    "SCMP_ARCH_S390X": 22 | _64,
    "SCMP_ARCH_RISCV64": 243 | _64 | _LE,
}

# libseccomp filter attributes (enum scmp_filter_attr).
_ATTR_CTL_NNP = 3
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9  # report the kernel's errno from seccomp_load, not -ECANCELED

#: OCI flag -> libseccomp attribute to switch on (None: accepted, nothing to do — runc ignores TSYNC).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": None,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}

#: libseccomp attribute -> the seccomp(2) SECCOMP_FILTER_FLAG_* that seccomp_load(3) passes for it.
_ATTR_LOAD_FLAGS = {_ATTR_CTL_LOG: 2, _ATTR_CTL_SSB: 4}
#: seccomp(2)'s syscall number per machine (uname -m); elsewhere compiled_filter uses libseccomp.
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "i686": 354, "armv7l": 383, "riscv64": 277,
               "ppc64le": 358, "s390x": 348}
_SECCOMP_SET_MODE_FILTER = 1
#: Cache directory under the runtime root, and the version of what its files hold.
CACHE_DIR = "@seccomp"
_CACHE_FORMAT = "capsize-bpf/2"   # 2: with the -ENOSYS stub

_NR_SCMP_ERROR = -1  # what seccomp_syscall_resolve_name() returns for an unknown name
_MAX_ARGS = 6
_U64 = (1 << 64) - 1

FIELD = "linux.seccomp"


class Profile:
    """A checked ``linux.seccomp``: :attr:`default` action value, :attr:`architectures`
    ``[(name, audit_arch)]``, :attr:`attributes` ``[libseccomp attr]`` and :attr:`rules`
    ``[(field, names, action, [(index, op, value, valueTwo)])]``."""

    __slots__ = ("default", "architectures", "attributes", "rules")

    def __init__(self, default, architectures, attributes, rules):
        self.default = default
        self.architectures = architectures
        self.attributes = attributes
        self.rules = rules


def _bad(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why}", field=field)


def _uint(value, field: str, top: int = _U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise _bad(field, f"must be an integer between 0 and {top}")
    return value


def _action(name, errno_ret, field: str, errno_field: str) -> int:
    if name not in ACTIONS:
        raise _bad(field, f"unknown action {name!r} (one of {', '.join(sorted(ACTIONS))})")
    if name == "SCMP_ACT_NOTIFY":
        raise Unimplemented(f"{field}: SCMP_ACT_NOTIFY is not supported by capsize-runc "
                            "(it needs a seccomp agent on linux.seccomp.listenerPath)", field=field)
    base = ACTIONS[name]
    if base in (ACT_ERRNO, ACT_TRACE):
        ret = _errno.EPERM if errno_ret is None else _uint(errno_ret, errno_field, 0xFFFF)
        return base | ret
    return base  # errnoRet means nothing for the other actions; runc ignores it too


def parse(seccomp: dict, field: str = FIELD) -> Profile:
    """Check an OCI ``linux.seccomp`` object; InvalidArgument names the first bad field.

    Unknown syscall names are not an error here (they are skipped when the filter is built);
    ``SCMP_ACT_NOTIFY`` anywhere raises Unimplemented.
    """
    if not isinstance(seccomp, dict):
        raise _bad(field, "must be an object")
    if "defaultAction" not in seccomp:
        raise _bad(f"{field}.defaultAction", "is required")
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"),
                      f"{field}.defaultAction", f"{field}.defaultErrnoRet")

    archs = []
    for i, arch in enumerate(seccomp.get("architectures") or []):
        if arch not in ARCHITECTURES:
            raise _bad(f"{field}.architectures[{i}]",
                       f"unknown architecture {arch!r} (one of {', '.join(sorted(ARCHITECTURES))})")
        archs.append((arch, ARCHITECTURES[arch]))

    attrs = []
    for i, flag in enumerate(seccomp.get("flags") or []):
        if flag not in FLAGS:
            raise _bad(f"{field}.flags[{i}]", f"seccomp flag {flag!r} is not known to capsize-runc "
                                              f"(one of {', '.join(sorted(FLAGS))})")
        if FLAGS[flag] is not None:
            attrs.append(FLAGS[flag])

    rules = []
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _bad(f"{field}.syscalls", "must be a list")
    for i, call in enumerate(syscalls):
        cf = f"{field}.syscalls[{i}]"
        if not isinstance(call, dict):
            raise _bad(cf, "must be an object")
        names = call.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _bad(f"{cf}.names", "must be a list of syscall names")
        if "action" not in call:
            raise _bad(f"{cf}.action", "is required")
        action = _action(call["action"], call.get("errnoRet"), f"{cf}.action", f"{cf}.errnoRet")
        conds = []
        args = call.get("args") or []
        if not isinstance(args, list) or len(args) > _MAX_ARGS:
            raise _bad(f"{cf}.args", f"must be a list of at most {_MAX_ARGS} conditions")
        for j, arg in enumerate(args):
            af = f"{cf}.args[{j}]"
            if not isinstance(arg, dict):
                raise _bad(af, "must be an object")
            index = _uint(arg.get("index"), f"{af}.index", _MAX_ARGS - 1)
            op = arg.get("op")
            if op not in OPERATORS:
                raise _bad(f"{af}.op", f"unknown operator {op!r} (one of {', '.join(sorted(OPERATORS))})")
            conds.append((index, OPERATORS[op], _uint(arg.get("value", 0), f"{af}.value"),
                          _uint(arg.get("valueTwo", 0), f"{af}.valueTwo")))
        rules.append((cf, names, action, conds))
    return Profile(default, archs, attrs, rules)


def _pyseccomp():
    """Import pyseccomp (and so dlopen libseccomp); Unimplemented if that is impossible."""
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as e:
        raise Unimplemented(f"seccomp not supported: libseccomp cannot be loaded ({e})") from None
    return pyseccomp


def preload() -> None:
    """Load libseccomp now (through pyseccomp). Call it before pivot_root/setns into the container's
    mount namespace when ``linux.seccomp`` is set; raises Unimplemented if libseccomp is missing."""
    _pyseccomp()


def _oserror(e: OSError, what: str, field: str) -> CapsizeError:
    code = e.errno or _errno.EINVAL
    msg = f"{what}: {os.strerror(code).lower()}"
    if code in (_errno.EPERM, _errno.EACCES):
        return PermissionDenied(msg, field=field)
    if code in (_errno.EINVAL, _errno.EDOM, _errno.EEXIST, _errno.EOPNOTSUPP):
        return InvalidArgument(msg, field=field)
    return CapsizeError(msg, field=field)


def build_filter(seccomp, field: str = FIELD):
    """A libseccomp filter (``pyseccomp.SyscallFilter``, not loaded) for an OCI ``linux.seccomp``
    (a dict, or a :class:`Profile` from :func:`parse`). Raises InvalidArgument for a bad config or
    a rule libseccomp refuses, Unimplemented for NOTIFY or a missing libseccomp."""
    profile = seccomp if isinstance(seccomp, Profile) else parse(seccomp, field)
    lib = _pyseccomp()
    try:
        filt = lib.SyscallFilter(profile.default)
    except OSError as e:
        raise _oserror(e, "error creating seccomp filter", f"{field}.defaultAction") from None
    for i, (name, arch) in enumerate(profile.architectures):
        try:
            filt.add_arch(arch)
        except OSError as e:
            if e.errno != _errno.EEXIST:  # the native architecture is always there
                raise _oserror(e, f"error adding architecture {name} to seccomp filter",
                               f"{field}.architectures[{i}]") from None
    try:
        for attr in profile.attributes:
            filt.set_attr(attr, 1)
        filt.set_attr(_ATTR_CTL_NNP, 0)  # libseccomp would set no_new_privs on load otherwise
    except OSError as e:
        raise _oserror(e, "error setting seccomp filter attribute", f"{field}.flags") from None
    try:
        filt.set_attr(_ATTR_API_SYSRAWRC, 1)
    except OSError:
        pass  # libseccomp < 2.5: load errors then read "operation canceled"
    if len(profile.rules) > 32:
        try:
            filt.set_attr(_ATTR_CTL_OPTIMIZE, 2)  # binary tree, as runc (not fatal if unsupported)
        except OSError:
            pass
    for cf, names, action, conds in profile.rules:
        if action == profile.default:
            continue  # redundant: libseccomp refuses a rule with the default action
        args = [lib.Arg(index, op, a, b) for index, op, a, b in conds]
        per_index = [c[0] for c in conds]
        split = len(set(per_index)) != len(per_index)
        for name in names:
            nr = lib.resolve_syscall(lib.Arch.NATIVE, name)
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to libseccomp on this architecture: skipped, as runc does
            try:
                if split:  # conditions on the same argument: one rule per condition, as runc
                    for arg in args:
                        filt.add_rule(action, nr, arg)
                else:
                    filt.add_rule(action, nr, *args)
            except OSError as e:
                raise _oserror(e, f"error adding seccomp rule for syscall {name}", cf) from None
    return filt


_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_SECCOMP_RET_ERRNO = 0x00050000


def enosys_stub(profile: Profile) -> bytes:
    """The BPF prefix of the -ENOSYS patch (module docstring), or b"" when it does not apply:
    ``ld arch; jne x86_64 -> prog; ld nr; jge X32 bit -> prog; jgt MAX -> ret ERRNO(ENOSYS)``,
    MAX being the highest native number of a syscall the profile names."""
    import struct
    if os.uname().machine != "x86_64" or profile.default == ACT_ALLOW:
        return b""
    lib = _pyseccomp()
    top = -1
    for _, names, _, _ in profile.rules:
        for name in names:
            top = max(top, lib.resolve_syscall(lib.Arch.NATIVE, name))
    if top < 0:
        return b""

    def ins(code, jt, jf, k):
        return struct.pack("=HBBI", code, jt, jf, k)
    ld_abs, jeq_k, jge_k, jgt_k, ret_k = 0x20, 0x15, 0x35, 0x25, 0x06
    return b"".join((
        ins(ld_abs, 0, 0, 4),                          # 0: A = seccomp_data.arch
        ins(jeq_k, 0, 4, _AUDIT_ARCH_X86_64),          # 1: not x86_64 -> 6
        ins(ld_abs, 0, 0, 0),                          # 2: A = seccomp_data.nr
        ins(jge_k, 2, 0, _X32_SYSCALL_BIT),            # 3: x32 -> 6
        ins(jgt_k, 0, 1, top),                         # 4: nr <= MAX -> 6
        ins(ret_k, 0, 0, _SECCOMP_RET_ERRNO | _errno.ENOSYS),   # 5
    ))                                                 # 6: the profile's program


class CompiledFilter:
    """A BPF program libseccomp generated (seccomp_export_bpf(3)), loadable without libseccomp.

    :attr:`program` is the raw ``struct sock_filter`` array (8 bytes per instruction),
    :attr:`flags` the SECCOMP_FILTER_FLAG_* bits; :meth:`load` is what ``host.seccomp_load`` calls.
    """

    __slots__ = ("program", "flags")

    def __init__(self, program: bytes, flags: int):
        if not program or len(program) % 8 or len(program) // 8 > 4096:  # BPF_MAXINSNS
            raise ValueError(f"not a BPF program ({len(program)} bytes)")
        self.program, self.flags = program, flags

    def load(self) -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) on the calling thread; OSError on refusal."""
        import ctypes
        from runtime.host import _lib

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        buf = ctypes.create_string_buffer(self.program, len(self.program))
        prog = SockFprog(len(self.program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        libc = _lib()
        if libc.syscall(_NR_SECCOMP[os.uname().machine], _SECCOMP_SET_MODE_FILTER, self.flags,
                        ctypes.byref(prog)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


def compiled_filter(seccomp, cache_root: str, field: str = FIELD):
    """The filter for an OCI ``linux.seccomp``, from the cache under *cache_root* when it has it.

    A :class:`CompiledFilter` (read from ``<cache_root>/@seccomp/<key>.bpf``, or built with
    libseccomp, exported and cached atomically); on a machine whose seccomp(2) number is not
    known, the libseccomp filter of :func:`build_filter`. Errors as :func:`build_filter`; a cache
    that cannot be written is only a missed saving.
    """
    profile = seccomp if isinstance(seccomp, Profile) else parse(seccomp, field)
    machine = os.uname().machine
    if machine not in _NR_SECCOMP:
        return build_filter(profile, field)
    from runtime.digest import sha256_hex
    from runtime.jsonfast import dumps
    flags = 0
    for attr in profile.attributes:
        flags |= _ATTR_LOAD_FLAGS.get(attr, 0)
    key = sha256_hex(dumps([_CACHE_FORMAT, machine, profile.default, profile.architectures,
                            profile.attributes, [r[1:] for r in profile.rules]]))
    cache = os.path.join(cache_root, CACHE_DIR)
    path = os.path.join(cache, key + ".bpf")
    try:
        with open(path, "rb") as f:
            return CompiledFilter(f.read(), flags)
    except (OSError, ValueError):
        pass
    filt = build_filter(profile, field)
    rfd, wfd = os.pipe()
    try:
        try:
            filt.export_bpf(os.fdopen(wfd, "wb", closefd=False))
        except OSError as e:
            raise _oserror(e, "error exporting seccomp filter", field) from None
        os.close(wfd)
        wfd = -1
        chunks = []
        while chunk := os.read(rfd, 65536):
            chunks.append(chunk)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    compiled = CompiledFilter(enosys_stub(profile) + b"".join(chunks), flags)
    try:
        os.makedirs(cache, mode=0o700, exist_ok=True)
        atomicfile.write(path, compiled.program, durable=False)
    except OSError:
        pass
    return compiled


def load(filt, host=HOST) -> None:
    """Install a built filter on the calling thread (seccomp_load(3) via ``host.seccomp_load``).

    Without no_new_privs the kernel requires CAP_SYS_ADMIN: PermissionDenied then.
    """
    try:
        host.seccomp_load(filt)
    except OSError as e:
        err = _oserror(e, "error loading seccomp filter into kernel", FIELD)
        if isinstance(err, PermissionDenied):
            err = PermissionDenied(f"{err.message} (without noNewPrivileges, loading a seccomp "
                                   "filter needs CAP_SYS_ADMIN)", field=FIELD)
        raise err from None


def load_filter(seccomp: dict, host=HOST) -> None:
    """Check, build and load an OCI ``linux.seccomp`` into the calling process (irreversible).

    Errors: InvalidArgument naming the field (unknown action, operator, architecture, flag, bad
    value), Unimplemented (SCMP_ACT_NOTIFY; "seccomp not supported: ..." without libseccomp),
    PermissionDenied (loading without CAP_SYS_ADMIN and without no_new_privs).
    """
    load(build_filter(seccomp), host=host)
