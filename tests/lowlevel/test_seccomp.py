"""linux.seccomp -> libseccomp filters, loaded into real processes (forked children)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.lowlevel.forkrun import run_in_child, status_fields
from runtime.errors import InvalidArgument, PermissionDenied, Unimplemented
from runtime.host import PR_SET_NO_NEW_PRIVS, RecordingHost, HOST
from runtime.lowlevel import process, seccomp

PROFILE_PATH = os.path.join(os.path.dirname(__file__), "data", "seccomp-docker-like.json")
LIBC = ctypes.CDLL(None, use_errno=True)
SYS_CLONE3 = {"x86_64": 435, "aarch64": 435}.get(os.uname().machine)
ADDR_NO_RANDOMIZE = 0x0040000
UNAME26 = 0x0020000
AF_VSOCK = 40


@pytest.fixture(scope="module")
def docker_profile() -> dict:
    """A profile shaped like moby's default (what dockerd writes into config.json for amd64):
    ERRNO/EPERM default, ~350 allowed names (some unknown here), arg conditions on socket,
    personality and clone, clone3 -> ENOSYS."""
    with open(PROFILE_PATH) as f:
        return json.load(f)


def _call(fn, *args) -> int:
    """Call a libc function; 0 on success, else errno."""
    ctypes.set_errno(0)
    ret = fn(*args)
    return ctypes.get_errno() if ret == -1 else 0


def _mkdir_errno(path: str) -> int:
    try:
        os.mkdir(path)
    except OSError as e:
        return e.errno
    os.rmdir(path)
    return 0


# -- checking the config -----------------------------------------------------------------------

@pytest.mark.parametrize("config, field", [
    ({}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_FOO"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]},
     "linux.seccomp.architectures[1]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}, "linux.seccomp.flags[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                                     {"names": ["mkdir"], "action": "SCMP_ACT_DENY"}]},
     "linux.seccomp.syscalls[1].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "mkdir", "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SAME"}]}]},
     "linux.seccomp.syscalls[0].args[0].op"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2 ** 64, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].value"),
])
def test_bad_config_is_rejected_with_the_field_named(config, field):
    with pytest.raises(InvalidArgument) as err:
        seccomp.parse(config)
    assert err.value.fields["field"] == field
    assert str(err.value).startswith(field + ": ")


def test_notify_is_unimplemented():
    with pytest.raises(Unimplemented, match="SCMP_ACT_NOTIFY"):
        seccomp.parse({"defaultAction": "SCMP_ACT_NOTIFY"})
    with pytest.raises(Unimplemented, match=r"syscalls\[0\].action: SCMP_ACT_NOTIFY .*listenerPath"):
        seccomp.parse({"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})


def test_the_docker_like_profile_parses(docker_profile):
    profile = seccomp.parse(docker_profile)
    assert profile.default == seccomp.ACT_ERRNO | errno.EPERM
    assert [a for a, _ in profile.architectures] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert sum(len(names) for _, names, _, _ in profile.rules) > 300
    clone3 = [r for r in profile.rules if r[1] == ["clone3"]]
    assert clone3[0][2] == seccomp.ACT_ERRNO | errno.ENOSYS


# -- loading into real processes -------------------------------------------------------------------

def _mkdir_under(config, path):
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load_filter(config)
    return {"mkdir": _mkdir_errno(path), "exists": os.path.exists(path),
            "seccomp": status_fields()["Seccomp"], "getpid": os.getpid() > 0}


def test_errno_rule_makes_mkdir_fail_with_that_errno(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    out = run_in_child(_mkdir_under, config, str(tmp_path / "d"))
    assert out.error is None, out
    assert out.value == {"mkdir": errno.EXDEV, "exists": False, "seccomp": "2", "getpid": True}


def test_errno_without_errno_ret_is_eperm(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    out = run_in_child(_mkdir_under, config, str(tmp_path / "d"))
    assert out.value["mkdir"] == errno.EPERM


def _chroot_under(config):
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load_filter(config)
    os.chroot("/")  # not in the allowed list
    return "survived"


def test_kill_default_kills_the_child_with_sigsys(docker_profile):
    config = dict(docker_profile, defaultAction="SCMP_ACT_KILL")
    config.pop("defaultErrnoRet")
    out = run_in_child(_chroot_under, config)
    assert out.signal == signal.SIGSYS, out
    assert out.value is None


def test_kill_process_rule_kills_with_sigsys():
    out = run_in_child(_chroot_under, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    assert out.signal == signal.SIGSYS, out


def _probe(tmp) -> dict:
    """What a few syscalls Docker's profile decides about give, under the loaded filter."""
    result = {"seccomp": status_fields()["Seccomp"], "mkdir": _mkdir_errno(os.path.join(tmp, "d"))}
    try:
        os.chroot("/")
        result["chroot"] = 0
    except OSError as e:
        result["chroot"] = e.errno
    result["personality_no_randomize"] = _call(LIBC.personality, ctypes.c_ulong(ADDR_NO_RANDOMIZE))
    result["socket_vsock"] = _call(LIBC.socket, AF_VSOCK, 1, 0)
    return result


def _under_docker_profile(config, tmp):
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load_filter(config)
    result = _probe(tmp)
    pid = os.fork()  # clone(SIGCHLD): allowed by the MASKED_EQ condition
    if pid == 0:
        os._exit(7)
    result["fork_exit"] = os.WEXITSTATUS(os.waitpid(pid, 0)[1])
    result["clone3"] = _call(LIBC.syscall, SYS_CLONE3, None, 0)
    result["clone_newuser"] = _call(LIBC.unshare, 0x10000000)
    result["personality_query"] = _call(LIBC.personality, ctypes.c_ulong(0xFFFFFFFF))
    fd = LIBC.socket(1, 1, 0)  # AF_UNIX, SOCK_STREAM
    result["socket_unix"] = fd >= 0
    os.close(fd)
    return result


@pytest.mark.skipif(SYS_CLONE3 is None, reason="clone3's number is only known here for x86_64/aarch64")
def test_docker_like_profile_loads_and_filters(docker_profile, tmp_path):
    out = run_in_child(_under_docker_profile, docker_profile, str(tmp_path))
    assert out.error is None, out
    assert out.value == {
        "seccomp": "2", "mkdir": 0, "chroot": errno.EPERM, "fork_exit": 7,
        "clone3": errno.ENOSYS, "clone_newuser": errno.EPERM,
        "personality_query": 0, "personality_no_randomize": errno.EPERM,
        "socket_vsock": errno.EPERM, "socket_unix": True,
    }


def _personality_under(config):
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load_filter(config)
    return [_call(LIBC.personality, ctypes.c_ulong(p)) for p in (ADDR_NO_RANDOMIZE, UNAME26, 0xFFFFFFFF)]


def test_conditions_on_the_same_argument_become_separate_rules():
    # runc: two conditions on arg 0 are OR-ed (one rule each), not AND-ed (which never matches).
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
         "args": [{"index": 0, "value": ADDR_NO_RANDOMIZE, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": UNAME26, "op": "SCMP_CMP_EQ"}]}]}
    out = run_in_child(_personality_under, config)
    assert out.value == [errno.EACCES, errno.EACCES, 0], out


def test_flags_and_redundant_rules_are_accepted(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW",
              "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
              "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # = default: skipped
                           {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]}
    out = run_in_child(_mkdir_under, config, str(tmp_path / "d"))
    assert out.value == {"mkdir": 0, "exists": False, "seccomp": "2", "getpid": True}, out


def _load_without_nnp(config, keep):
    process.apply_capabilities({s: keep for s in ("bounding", "effective", "permitted")})
    try:
        seccomp.load_filter(config)
    except PermissionDenied as e:
        return {"error": str(e), "seccomp": status_fields()["Seccomp"]}
    return {"seccomp": status_fields()["Seccomp"], "nnp": status_fields()["NoNewPrivs"]}


@pytest.mark.privileged
def test_without_no_new_privs_loading_needs_cap_sys_admin():
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}]}
    out = run_in_child(_load_without_nnp, config, ["CAP_KILL"])
    assert out.value["seccomp"] == "0"
    assert out.value["error"].startswith("error loading seccomp filter into kernel: permission denied")
    out = run_in_child(_load_without_nnp, config, ["CAP_SYS_ADMIN"])
    # libseccomp's own NNP bit is off: the filter loads and no_new_privs stays unset.
    assert out.value == {"seccomp": "2", "nnp": "0"}, out


def test_recording_host_records_the_load_and_makes_none(docker_profile):
    host = RecordingHost()
    seccomp.load_filter(docker_profile, host=host)
    assert [op for op, _ in host.calls] == ["seccomp_load"]
    assert status_fields()["Seccomp"] == "0"


# -- libseccomp availability and import cost --------------------------------------------------------

def _without_libseccomp(config):
    sys.modules["pyseccomp"] = None  # makes `import pyseccomp` fail, as when it is not installed
    seccomp.load_filter(config)


def test_missing_libseccomp_is_unimplemented_never_ignored():
    out = run_in_child(_without_libseccomp, {"defaultAction": "SCMP_ACT_ALLOW"})
    assert out.error == "Unimplemented"
    assert out.message.startswith("seccomp not supported: ")


def _in_empty_root(config, root, preload):
    if preload:
        seccomp.preload()
    else:
        sys.modules.pop("pyseccomp", None)  # as in a fresh capsize-runc that never loaded it
    os.chroot(root)
    os.chdir("/")
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load_filter(config)
    return status_fields()["Seccomp"] if os.path.exists("/proc/self/status") else "loaded"


@pytest.mark.privileged
def test_preload_makes_seccomp_work_after_the_root_changes(tmp_path):
    # Inside a container the host's libseccomp is out of reach: load it before pivot_root.
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}]}
    assert run_in_child(_in_empty_root, config, str(tmp_path), True).value == "loaded"
    out = run_in_child(_in_empty_root, config, str(tmp_path), False)
    assert out.error == "Unimplemented" and "seccomp not supported" in out.message, out


def test_imports_stay_light():
    code = ("import sys, runtime.lowlevel.process, runtime.lowlevel.seccomp, runtime.lowlevel.capabilities;"
            "print(sorted(m for m in ('ctypes', 'pyseccomp', 'json', 'typing', 'subprocess') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"


# -- the compiled-filter cache (seccomp.compiled_filter) --------------------------------------------

def _compiled_under_docker_profile(config, cache_root, tmp, without_libseccomp):
    if without_libseccomp:
        sys.modules["pyseccomp"] = None  # a cached program must load with no libseccomp at all
    filt = seccomp.compiled_filter(config, cache_root)
    assert isinstance(filt, seccomp.CompiledFilter)
    HOST.prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp.load(filt)
    return _probe(tmp)


@pytest.mark.skipif(os.uname().machine not in seccomp._NR_SECCOMP, reason="seccomp(2) number unknown here")
def test_compiled_filter_is_cached_and_filters_as_libseccomp_does(docker_profile, tmp_path):
    root = str(tmp_path / "root")
    want = {"seccomp": "2", "mkdir": 0, "chroot": errno.EPERM, "personality_no_randomize": errno.EPERM,
            "socket_vsock": errno.EPERM}
    first = run_in_child(_compiled_under_docker_profile, docker_profile, root, str(tmp_path), False)
    assert first.error is None and first.value == want, first
    cached = os.listdir(os.path.join(root, seccomp.CACHE_DIR))
    assert len(cached) == 1 and cached[0].endswith(".bpf")
    program = open(os.path.join(root, seccomp.CACHE_DIR, cached[0]), "rb").read()
    assert len(program) % 8 == 0 and len(program) // 8 > 100, "a whole BPF program, 8 bytes per instruction"
    again = run_in_child(_compiled_under_docker_profile, docker_profile, root, str(tmp_path), True)
    assert again.error is None and again.value == want, again
    other = dict(docker_profile, defaultErrnoRet=errno.EACCES)
    assert seccomp.compiled_filter(other, root).program != program, "another profile, another entry"
    assert len(os.listdir(os.path.join(root, seccomp.CACHE_DIR))) == 2


def test_compiled_filter_carries_the_load_flags(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW",
              "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]}
    filt = seccomp.compiled_filter(config, str(tmp_path))
    assert filt.flags == 2 | 4  # SECCOMP_FILTER_FLAG_LOG | SPEC_ALLOW; TSYNC is ignored, as runc


def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}]}
    good = seccomp.compiled_filter(config, str(tmp_path)).program
    (entry,) = os.listdir(tmp_path / seccomp.CACHE_DIR)
    (tmp_path / seccomp.CACHE_DIR / entry).write_bytes(b"\x00" * 5)  # not a BPF program
    assert seccomp.compiled_filter(config, str(tmp_path)).program == good
    assert (tmp_path / seccomp.CACHE_DIR / entry).read_bytes() == good
