"""Turn capsize-runc's init (or an exec'd process) into the OCI ``process``, just before execve.

Follows config.md "Process" and config-linux.md, and runc 1.1's order
(``libcontainer/standard_init_linux.go`` ``Init``, ``setns_init_linux.go``, ``init_linux.go``
``finalizeNamespace``/``setupUser``). :func:`finalize` does the whole sequence:

1. check everything first (rlimit names, capability names, user, env, seccomp), so that a bad
   config changes nothing;
2. ``process.rlimits`` (setrlimit; runc does it with prlimit from the parent at "procReady");
3. ``PR_SET_NO_NEW_PRIVS`` if ``process.noNewPrivileges``;
4. seccomp, when noNewPrivileges is off: loading a filter then needs CAP_SYS_ADMIN, so it goes
   before capabilities are dropped;
5. chdir(cwd) as root (a directory only root can enter still works);
6. drop the bounding set (needs CAP_SETPCAP, so before the uid change);
7. ``PR_SET_KEEPCAPS``, setgroups/setgid/setuid, umask, ``PR_SET_KEEPCAPS`` off;
8. chdir(cwd) again if it failed with EACCES/EPERM as root (a dir only the user can enter);
9. capset (effective, permitted, inheritable) and the ambient set;
10. look the executable up, as the container user, in the env's PATH (runc's exec.LookPath);
11. seccomp, when noNewPrivileges is on: as late as possible, so the fewest syscalls run under it.

It returns ``(path, argv, env)`` for os.execve. capsize-runc's init then waits on the exec FIFO
and execs, as runc 1.1 does after loading the late filter; ``capsize-runc exec`` execs at once.
Every privileged call goes through the ``host`` object (:mod:`runtime.host`).

Errors are the shared classes: InvalidArgument naming the field (``process.rlimits[1].type``),
NotFound for the executable and the cwd (runc's words), PermissionDenied when the kernel refuses.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.errors import CapsizeError, InvalidArgument, NotFound, PermissionDenied
from runtime.host import (HOST, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE,
                          PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS)
from runtime.lowlevel import capabilities

#: OCI ``process.rlimits[].type`` -> resource number (<asm-generic/resource.h>, getrlimit(2)).
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
RLIM_INFINITY = (1 << 64) - 1  # as uint64 in config.json

_ID_MAX = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to the kernel


def _bad(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why}", field=field)


def _strerror(code: int) -> str:
    """errno text in Go's spelling (lower case), as runc prints it."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def _kernel_error(e: OSError, message: str, field: str | None = None) -> CapsizeError:
    cls = PermissionDenied if e.errno in (errno.EPERM, errno.EACCES) else (
        InvalidArgument if e.errno == errno.EINVAL else CapsizeError)
    fields = {"field": field} if field else {}
    return cls(f"{message}: {_strerror(e.errno or errno.EIO)}", **fields)


# -- rlimits --------------------------------------------------------------------------------------

def parse_rlimits(rlimits, field: str = "process.rlimits") -> list[tuple[int, int, int]]:
    """Check ``process.rlimits`` (``[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]``) ->
    ``[(resource, soft, hard)]``. Values are uint64, ``2**64-1`` meaning unlimited.

    InvalidArgument names the entry: ``process.rlimits[1].type: wrong rlimit value: RLIMIT_FOO``
    (runc's words), a soft limit above the hard one, a negative or non-integer value.
    """
    if rlimits is None:
        return []
    if not isinstance(rlimits, list):
        raise _bad(field, "must be a list of {type, soft, hard}")
    out = []
    for i, rl in enumerate(rlimits):
        f = f"{field}[{i}]"
        if not isinstance(rl, dict):
            raise _bad(f, "must be an object with type, soft and hard")
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise _bad(f"{f}.type", f"wrong rlimit value: {kind}")
        values = []
        for key in ("soft", "hard"):
            v = rl.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= RLIM_INFINITY:
                raise _bad(f"{f}.{key}", "must be an integer between 0 and 2^64-1")
            values.append(v)
        soft, hard = values
        if soft > hard:
            raise _bad(f, f"soft limit {soft} is above hard limit {hard}")
        out.append((RLIMITS[kind], soft, hard))
    return out


def apply_rlimits(rlimits: list[dict], host=HOST) -> None:
    """setrlimit(2) (``host.setrlimit``) each of ``process.rlimits`` on the calling process, in order.

    Raising a hard limit needs CAP_SYS_RESOURCE: PermissionDenied
    (``error setting rlimit type 7: operation not permitted``, runc's words).
    """
    for number, soft, hard in parse_rlimits(rlimits):
        try:
            host.setrlimit(number, soft, hard)
        except OSError as e:
            raise _kernel_error(e, f"error setting rlimit type {number}", "process.rlimits") from None


# -- oom_score_adj --------------------------------------------------------------------------------

def set_oom_score_adj(value: int, pid: int | str = "self", host=HOST) -> None:
    """Write ``process.oomScoreAdj`` (-1000..1000) to ``/proc/<pid>/oom_score_adj`` via ``host.write``.

    A value below the process's minimum (0, or the last value written with CAP_SYS_RESOURCE)
    needs CAP_SYS_RESOURCE (PermissionDenied, proc(5)); a value out of range is InvalidArgument
    and writes nothing.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        raise _bad("process.oomScoreAdj", f"must be an integer between -1000 and 1000, not {value!r}")
    path = f"/proc/{pid}/oom_score_adj"
    try:
        host.write(path, str(value))
    except FileNotFoundError:
        raise NotFound(f"process {pid} does not exist ({path})") from None
    except OSError as e:
        raise _kernel_error(e, f"error writing {value} to {path}", "process.oomScoreAdj") from None


# -- user -----------------------------------------------------------------------------------------

def parse_user(user, field: str = "process.user") -> tuple[int, int, list[int], int | None]:
    """Check ``process.user`` -> ``(uid, gid, additional_gids, umask or None)``."""
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise _bad(field, "must be an object with uid and gid")

    def ident(v, f):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _ID_MAX:
            raise _bad(f, f"must be an integer between 0 and {_ID_MAX}")
        return v

    uid = ident(user.get("uid", 0), f"{field}.uid")
    gid = ident(user.get("gid", 0), f"{field}.gid")
    extra = user.get("additionalGids")
    if extra is None:
        gids = []
    elif isinstance(extra, list):
        gids = [ident(g, f"{field}.additionalGids[{i}]") for i, g in enumerate(extra)]
    else:
        raise _bad(f"{field}.additionalGids", "must be a list of gids")
    umask = user.get("umask")
    if umask is not None:
        if isinstance(umask, bool) or not isinstance(umask, int) or not 0 <= umask <= 0o777:
            raise _bad(f"{field}.umask", "must be an integer between 0 and 0o777")
    return uid, gid, gids, umask


def _setgroups_allowed() -> bool:
    """False when /proc/self/setgroups says "deny" (an unprivileged user namespace)."""
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def apply_user(user: dict, host=HOST) -> None:
    """Become ``process.user``: supplementary groups, gid, uid, then umask (runc's setupUser).

    *user* is ``{"uid", "gid", "additionalGids", "umask"}``. The groups are exactly
    ``additionalGids`` — ``setgroups([])`` when absent, as runc clears them (the gid is explicit,
    so /etc/group adds nothing). setgroups is skipped when the user namespace denies it, unless
    groups were asked for (PermissionDenied). The umask is left alone when not given (config.md).

    The uid change is wrapped in ``PR_SET_KEEPCAPS`` on/off, so a non-root uid keeps its permitted
    capabilities (the kernel clears the effective and ambient sets; :func:`set_capabilities`
    sets them again). Kernel refusals raise PermissionDenied.
    """
    uid, gid, gids, umask = parse_user(user)
    try:
        host.prctl(PR_SET_KEEPCAPS, 1)
        if _setgroups_allowed():
            host.setgroups(gids)
        elif gids:
            raise PermissionDenied("cannot set additionalGids: setgroups is denied in this user namespace",
                                   field="process.user.additionalGids")
        host.setgid(gid)
        host.setuid(uid)
        host.prctl(PR_SET_KEEPCAPS, 0)
    except OSError as e:
        raise _kernel_error(e, f"unable to setup user {uid}:{gid}", "process.user") from None
    if umask is not None:
        os.umask(umask)


# -- capabilities ---------------------------------------------------------------------------------

def check_capabilities(caps: dict | None) -> dict[str, int]:
    """Check ``process.capabilities`` -> ``{set: mask}`` (:func:`capabilities.parse`), and that the
    effective set is within the permitted one (capset(2) would refuse it): InvalidArgument."""
    sets = capabilities.parse(caps)
    extra = sets["effective"] & ~sets["permitted"]
    if extra:
        missing = ", ".join(capabilities.to_names(extra))
        raise _bad("process.capabilities.effective", f"{missing} not in the permitted set")
    return sets


def drop_bounding_set(caps: dict | None, host=HOST) -> None:
    """Drop from the bounding set every capability (up to the kernel's CAP_LAST_CAP) not in
    ``caps["bounding"]``: one ``prctl(PR_CAPBSET_DROP, n)`` each. Needs CAP_SETPCAP, so it runs
    before the uid change. EINVAL (a capability this kernel lacks) is ignored, as runc does."""
    last = capabilities.last_cap()
    keep = capabilities.parse(caps, last=last)["bounding"]
    for n in range(last + 1):
        if keep >> n & 1:
            continue
        try:
            host.prctl(PR_CAPBSET_DROP, n)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise _kernel_error(e, f"unable to drop {capabilities.name(n)} from the bounding set",
                                    "process.capabilities.bounding") from None


def set_capabilities(caps: dict | None, host=HOST) -> None:
    """capset(2) the effective, permitted and inheritable sets, then the ambient set.

    The ambient set is cleared (``PR_CAP_AMBIENT_CLEAR_ALL``) and each listed capability raised
    (``PR_CAP_AMBIENT_RAISE``). The kernel only allows raising a capability that is both
    permitted and inheritable; runc 1.1 ignores the refusal, so a listed ambient capability
    missing from either set is skipped here (runc's default config lists no inheritable set).
    InvalidArgument when an effective capability is not permitted; PermissionDenied when the
    kernel refuses capset (e.g. permitting a capability the process does not have).
    """
    sets = check_capabilities(caps)
    eff, prm, inh, amb = sets["effective"], sets["permitted"], sets["inheritable"], sets["ambient"]
    try:
        host.capset(eff, prm, inh)
    except OSError as e:
        raise _kernel_error(e, "unable to apply caps", "process.capabilities") from None
    try:
        host.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        for n in range(amb.bit_length()):
            if (amb & prm & inh) >> n & 1:
                host.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: no ambient capabilities (Linux < 4.3)
            raise _kernel_error(e, "unable to set ambient caps", "process.capabilities.ambient") from None


def apply_capabilities(caps: dict | None, host=HOST) -> None:
    """Apply ``process.capabilities`` ({bounding, effective, permitted, inheritable, ambient} of
    ``"CAP_*"`` names) to a process whose uid does not change: bounding set, then capset and
    ambient. ``None`` drops every capability (runc 1.1). Unknown names -> InvalidArgument naming
    the field; names above the kernel's CAP_LAST_CAP are ignored."""
    check_capabilities(caps)  # before changing anything
    drop_bounding_set(caps, host)
    set_capabilities(caps, host)


def set_no_new_privileges(host=HOST) -> None:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1)``: execve can no longer grant privileges (setuid bits,
    file capabilities). Irreversible; inherited by children."""
    try:
        host.prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise _kernel_error(e, "prctl(SET_NO_NEW_PRIVS)", "process.noNewPrivileges") from None


# -- environment ----------------------------------------------------------------------------------

def _passwd_home(uid: int, passwd: str) -> str | None:
    try:
        with open(passwd, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2].isdigit() and int(parts[2]) == uid:
                    return parts[5] or None
    except OSError:
        pass
    return None


def build_env(env: list[str], uid: int = 0, passwd: str = "/etc/passwd") -> dict:
    """``process.env`` (``["KEY=value", ...]``) -> the environment for execve, a dict in order.

    A later entry for a key wins. ``HOME`` is set when absent or empty: the home of *uid* in the
    container's ``/etc/passwd`` (*passwd*), else ``/`` (runc's setupUser). Errors are
    InvalidArgument naming ``process.env[i]``, in runc's words: ``invalid environment variable``
    (no ``=``), ``environment variable name can't be empty``, NUL in a name or value.
    """
    if env is None:
        env = []
    if not isinstance(env, list):
        raise _bad("process.env", "must be a list of KEY=value strings")
    out: dict[str, str] = {}
    for i, pair in enumerate(env):
        field = f"process.env[{i}]"
        if not isinstance(pair, str) or "=" not in pair:
            raise _bad(field, f"invalid environment variable: {_quote(str(pair))}")
        key, _, value = pair.partition("=")
        if not key:
            raise _bad(field, f"environment variable name can't be empty: {_quote(pair)}")
        if "\0" in key:
            raise _bad(field, f"environment variable name can't contain null(\\x00): {_quote(pair)}")
        if "\0" in value:
            raise _bad(field, f"environment variable value can't contain null(\\x00): {_quote(pair)}")
        out.pop(key, None)
        out[key] = value
    if not out.get("HOME"):
        out["HOME"] = _passwd_home(uid, passwd) or "/"
    return out


# -- executable lookup ----------------------------------------------------------------------------

def _quote(s: str) -> str:
    """Go's strconv.Quote for the common case (runc prints names with %q)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


_DENIED = "denied"


def _executable(path: str) -> OSError | str | None:
    """Go 1.19's findExecutable: None if *path* is a non-directory with any execute bit,
    :data:`_DENIED` if it is a directory or has none, the stat(2) error otherwise."""
    try:
        st = os.stat(path)
    except OSError as e:
        return e
    if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
        return None
    return _DENIED


def resolve_executable(args0: str, env: list[str], cwd: str, *, default_path: str | None = None) -> str:
    """Find the file to execve for ``process.args[0]``, as runc 1.1 does (Go 1.19's exec.LookPath)
    before it waits on the exec FIFO, so that a bad name fails ``create``.

    A name containing ``/`` is checked as is (relative to *cwd*); a bare name is searched in the
    ``PATH`` of *env* (the last ``PATH=`` wins). runc does not default PATH: without one a bare
    name is not found; pass *default_path* to search that instead. Returns the path (absolute
    when *cwd* is). Raises NotFound with runc's words:

    * ``exec: "foo": executable file not found in $PATH``
    * ``exec: "/x": stat /x: no such file or directory``
    * ``exec: "/etc": permission denied`` (a directory, or no execute bit)
    * ``exec: "ls": cannot run executable found relative to current directory`` (Go's ErrDot:
      found through a relative PATH entry)
    """
    name = args0
    if "/" in name:
        full = os.path.join(cwd, name)
        err = _executable(full)
        if err is None:
            return full
        if err is _DENIED:
            raise NotFound(f"exec: {_quote(name)}: permission denied", field="process.args")
        raise NotFound(f"exec: {_quote(name)}: stat {name}: {_strerror(err.errno or errno.ENOENT)}",
                       field="process.args")
    search = None
    for pair in env or []:
        if isinstance(pair, str) and pair.startswith("PATH="):
            search = pair[5:]
    if search is None:
        search = default_path or ""
    for d in search.split(":") if search else []:
        d = d or "."  # an empty entry means the current directory (shell semantics)
        candidate = os.path.normpath(os.path.join(d, name))
        if _executable(os.path.join(cwd, candidate)) is None:
            if not os.path.isabs(candidate):
                raise NotFound(f"exec: {_quote(name)}: cannot run executable found relative to current directory",
                               field="process.args")
            return candidate
    raise NotFound(f"exec: {_quote(name)}: executable file not found in $PATH", field="process.args")


# -- the whole sequence ---------------------------------------------------------------------------

def _chdir(cwd: str) -> OSError | None:
    try:
        os.chdir(cwd)
        return None
    except OSError as e:
        return e


def _cwd_error(cwd: str, e: OSError) -> NotFound:
    # runc wraps the bare errno from unix.Chdir: "...failed: no such file or directory"
    return NotFound(f"chdir to cwd ({_quote(cwd)}) set in config.json failed: {_strerror(e.errno or errno.ENOENT)}",
                    field="process.cwd")


def fix_stdio_permissions(uid: int, host=HOST) -> None:
    """Give stdin, stdout and stderr to *uid* (keeping their group), unless already its or
    /dev/null, so a non-root process can use its terminal (runc 1.1's fixStdioPermissions).
    EINVAL, EPERM and EROFS are ignored, as runc does."""
    try:
        null = os.stat("/dev/null").st_rdev
    except OSError:
        null = None
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (null is not None and st.st_rdev == null):
            continue
        try:
            host.chown(f"/proc/self/fd/{fd}", uid, st.st_gid)   # the magic link: the fd's own file
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise


def finalize(process: dict, host=HOST, *, seccomp=None) -> tuple[str, list[str], dict]:
    """Make the calling process the OCI ``process`` and return ``(path, argv, env)`` for os.execve.

    Runs inside the container (after pivot_root, or after joining it for ``capsize-runc exec``),
    in runc 1.1's order (see the module docstring). *process* is config.json's ``process``;
    *seccomp* is ``linux.seccomp`` (a dict, or a filter from :func:`seccomp.build_filter` made
    before pivot_root) or None. Everything is checked before anything changes. Raises
    InvalidArgument (a bad field, named), NotFound (cwd, executable — runc's words),
    PermissionDenied / Unimplemented (kernel or libseccomp refusals).

    Not done here: ``oomScoreAdj`` (:func:`set_oom_score_adj`, set earlier by the caller),
    the terminal, apparmor/selinux, and closing inherited fds.
    """
    if not isinstance(process, dict):
        raise _bad("process", "must be an object")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise _bad("process.args", "must be a non-empty list of strings")
    cwd = process.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise _bad("process.cwd", "must be an absolute path")
    rlimits = parse_rlimits(process.get("rlimits"))
    uid, _, _, _ = parse_user(process.get("user"))
    caps = process.get("capabilities")
    check_capabilities(caps)
    env = build_env(process.get("env"), uid)
    nnp = bool(process.get("noNewPrivileges"))
    filt = None
    if seccomp is not None:
        from runtime.lowlevel import seccomp as sc
        filt = seccomp if not isinstance(seccomp, (dict, sc.Profile)) else sc.build_filter(seccomp)

    if rlimits:
        apply_rlimits(process.get("rlimits"), host)
    if nnp:
        set_no_new_privileges(host)
    if filt is not None and not nnp:
        sc.load(filt, host)
    chdir_error = _chdir(cwd)
    if chdir_error is not None and chdir_error.errno not in (errno.EACCES, errno.EPERM):
        raise _cwd_error(cwd, chdir_error)
    drop_bounding_set(caps, host)
    fix_stdio_permissions(uid, host)
    apply_user(process.get("user"), host)
    if chdir_error is not None:
        retry = _chdir(cwd)
        if retry is not None:
            raise _cwd_error(cwd, retry)
    set_capabilities(caps, host)
    path = resolve_executable(args[0], [f"{k}={v}" for k, v in env.items()], cwd)
    if filt is not None and nnp:
        sc.load(filt, host)
    return path, list(args), env
