"""The OCI process attributes on real processes (forked children), and finalize's order."""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile

import pytest

from tests.lowlevel.forkrun import exec_in_child, run_in_child, status_fields
from runtime.errors import InvalidArgument, NotFound
from runtime.host import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP,
                          PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, HOST, RecordingHost)
from runtime.lowlevel import capabilities as caps
from runtime.lowlevel import process

PROFILE_PATH = os.path.join(os.path.dirname(__file__), "data", "seccomp-docker-like.json")
DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_MASK = (1 << 29) | (1 << 5) | (1 << 10)
UID, GID = 4242, 4343  # not in the host's /etc/passwd
PATH = "PATH=/usr/local/bin:/usr/bin:/bin"


def _docker_profile() -> dict:
    with open(PROFILE_PATH) as f:
        return json.load(f)


# -- executable lookup -----------------------------------------------------------------------------

@pytest.fixture
def bindir(tmp_path):
    """tmp/bin with `tool` (0755), `plain` (0644) and a directory `sub`."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "tool").write_text("#!/bin/sh\n")
    (d / "tool").chmod(0o755)
    (d / "plain").write_text("data\n")
    (d / "plain").chmod(0o644)
    (d / "sub").mkdir()
    return d


def test_bare_name_is_searched_in_the_envs_path(bindir, tmp_path):
    env = [f"PATH=/nonexistent:{bindir}", "TERM=xterm"]
    assert process.resolve_executable("tool", env, "/") == str(bindir / "tool")
    assert process.resolve_executable("sh", ["PATH=/bin", "PATH=/usr/bin"], "/") == "/usr/bin/sh"  # last wins


def test_lookup_errors_have_runcs_words(bindir, tmp_path):
    env = [f"PATH={bindir}"]
    cases = {
        ("foo", "/"): 'exec: "foo": executable file not found in $PATH',
        ("plain", "/"): 'exec: "plain": executable file not found in $PATH',  # not executable: skipped
        ("sub", "/"): 'exec: "sub": executable file not found in $PATH',      # a directory: skipped
        ("/x", "/"): 'exec: "/x": stat /x: no such file or directory',
        (str(bindir / "sub"), "/"): f'exec: "{bindir}/sub": permission denied',
        (str(bindir / "plain"), "/"): f'exec: "{bindir}/plain": permission denied',
        ("./nope", str(bindir)): 'exec: "./nope": stat ./nope: no such file or directory',
        ("plain/x", str(bindir)): 'exec: "plain/x": stat plain/x: not a directory',
    }
    for (name, cwd), message in cases.items():
        with pytest.raises(NotFound) as err:
            process.resolve_executable(name, env, cwd)
        assert str(err.value) == message


def test_relative_names_resolve_against_cwd(bindir):
    assert process.resolve_executable("./tool", [], str(bindir)) == f"{bindir}/./tool"
    with pytest.raises(NotFound, match='exec: "tool": cannot run executable found relative to current directory'):
        process.resolve_executable("tool", ["PATH=bin"], str(bindir.parent))
    with pytest.raises(NotFound, match="cannot run executable found relative"):
        process.resolve_executable("tool", ["PATH=:/nonexistent"], str(bindir))  # "" means "."


def test_no_path_in_env_finds_no_bare_name_as_runc(bindir):
    with pytest.raises(NotFound, match=r'exec: "sh": executable file not found in \$PATH'):
        process.resolve_executable("sh", ["TERM=xterm"], "/")
    assert process.resolve_executable("tool", [], "/", default_path=str(bindir)) == str(bindir / "tool")


# -- environment ----------------------------------------------------------------------------------

def test_env_later_wins_and_home_comes_from_passwd(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:4242:4343::/home/app:/bin/sh\n")
    env = process.build_env([PATH, "A=1", "B=x=y", "A=2"], UID, passwd=str(passwd))
    assert env == {"PATH": PATH[5:], "B": "x=y", "A": "2", "HOME": "/home/app"}
    assert list(env) == ["PATH", "B", "A", "HOME"]
    assert process.build_env([], 0, passwd=str(passwd))["HOME"] == "/root"
    assert process.build_env([], 7, passwd=str(passwd))["HOME"] == "/"
    assert process.build_env([], 0, passwd=str(tmp_path / "missing"))["HOME"] == "/"
    assert process.build_env(["HOME=/srv"], UID, passwd=str(passwd))["HOME"] == "/srv"
    assert process.build_env(["HOME="], UID, passwd=str(passwd))["HOME"] == "/home/app"  # empty: as runc


@pytest.mark.parametrize("env, message", [
    (["A=1", "NOEQUALS"], 'process.env[1]: invalid environment variable: "NOEQUALS"'),
    (["=x"], 'process.env[0]: environment variable name can\'t be empty: "=x"'),
    (["A\0B=1"], "process.env[0]: environment variable name can't contain null"),
    (["A=1\0"], "process.env[0]: environment variable value can't contain null"),
])
def test_bad_env_is_rejected_in_runcs_words(env, message):
    with pytest.raises(InvalidArgument) as err:
        process.build_env(env)
    assert str(err.value).startswith(message)


# -- rlimits --------------------------------------------------------------------------------------

def _rlimits_then_read(rlimits, first_drop_caps=False):
    if first_drop_caps:
        process.apply_capabilities(None)
    process.apply_rlimits(rlimits)
    return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE), "core": resource.getrlimit(resource.RLIMIT_CORE)}


def test_rlimits_are_set_on_the_real_process():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    core_hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    core = {"type": "RLIMIT_CORE", "soft": 0,
            "hard": process.RLIM_INFINITY if core_hard == resource.RLIM_INFINITY else core_hard}
    out = run_in_child(_rlimits_then_read, [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": min(hard, 500)}, core])
    assert out.error is None, out
    assert out.value["nofile"] == [100, min(hard, 500)]
    assert out.value["core"] == [0, core_hard]


@pytest.mark.privileged
def test_raising_a_hard_limit_without_cap_sys_resource_is_refused():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = run_in_child(_rlimits_then_read, [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": hard + 1}], True)
    assert out.error == "PermissionDenied", out
    assert out.message.startswith("error setting rlimit type 7: ")


@pytest.mark.parametrize("rlimits, message", [
    ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}],
     "process.rlimits[1].type: wrong rlimit value: RLIMIT_FOO"),
    ([{"type": "RLIMIT_NOFILE", "soft": 2000, "hard": 1000}],
     "process.rlimits[0]: soft limit 2000 is above hard limit 1000"),
    ([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1000}], "process.rlimits[0].soft: must be an integer"),
    ([{"type": "RLIMIT_NOFILE", "soft": 1}], "process.rlimits[0].hard: must be an integer"),
])
def test_bad_rlimits_are_rejected_before_any_is_set(rlimits, message):
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    with pytest.raises(InvalidArgument) as err:
        process.apply_rlimits(rlimits)
    assert str(err.value).startswith(message)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


# -- oom_score_adj, no_new_privs ---------------------------------------------------------------

def _oom(values, drop_caps_after_first=False):
    seen = []
    for i, v in enumerate(values):
        process.set_oom_score_adj(v)
        with open("/proc/self/oom_score_adj") as f:
            seen.append(int(f.read()))
        if drop_caps_after_first and i == 0:
            process.apply_capabilities(None)
    return seen


@pytest.mark.privileged
def test_oom_score_adj_is_written_to_proc():
    out = run_in_child(_oom, [500, 900])
    assert out.value == [500, 900], out
    # Below the minimum (0, or the last value written with CAP_SYS_RESOURCE) needs that capability.
    out = run_in_child(_oom, [500, -100], True)
    assert out.error == "PermissionDenied", out
    assert out.message == "error writing -100 to /proc/self/oom_score_adj: permission denied"


def test_oom_score_adj_of_another_process():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the target: waits until told to exit
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        process.set_oom_score_adj(321, pid=pid)
        with open(f"/proc/{pid}/oom_score_adj") as f:
            assert f.read().strip() == "321"
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_oom_score_adj_range_and_recording():
    host = RecordingHost()
    process.set_oom_score_adj(-17, pid=42, host=host)
    assert host.calls == [("write", ("/proc/42/oom_score_adj", "-17"))]
    for bad in (1001, -1001, "5", True):
        with pytest.raises(InvalidArgument, match="process.oomScoreAdj: must be an integer between -1000 and 1000"):
            process.set_oom_score_adj(bad, host=host)
    assert len(host.calls) == 1


def _nnp():
    before = status_fields()["NoNewPrivs"]
    process.set_no_new_privileges()
    return [before, status_fields()["NoNewPrivs"]]


def test_no_new_privileges():
    assert run_in_child(_nnp).value == ["0", "1"]
    host = RecordingHost()
    process.set_no_new_privileges(host)
    assert host.calls == [("prctl", (PR_SET_NO_NEW_PRIVS, 1))]


# -- user -------------------------------------------------------------------------------------------

def _user_then_read(user, then_caps=None):
    before = caps.read_sets()
    process.apply_user(user)
    after_user = caps.read_sets()
    if then_caps is not None:
        process.set_capabilities(then_caps)
    mask = os.umask(0)
    f = status_fields()
    return {"uid": f["Uid"], "gid": f["Gid"], "groups": f["Groups"], "umask": mask,
            "before": before, "after_user": after_user, "end": caps.read_sets()}


@pytest.mark.privileged
def test_apply_user_sets_ids_groups_and_umask_and_keeps_permitted_caps():
    out = run_in_child(_user_then_read, {"uid": UID, "gid": GID, "additionalGids": [5, 6], "umask": 0o027})
    assert out.error is None, out
    v = out.value
    assert (v["uid"], v["gid"], v["groups"], v["umask"]) == (f"{UID}\t" * 3 + str(UID), f"{GID}\t" * 3 + str(GID),
                                                             "5 6", 0o027)
    # PR_SET_KEEPCAPS: permitted survives the uid change, effective is cleared by the kernel
    assert v["after_user"]["permitted"] == v["before"]["permitted"] != 0
    assert v["after_user"]["effective"] == 0


@pytest.mark.privileged
def test_apply_user_clears_groups_and_keeps_umask_when_absent():
    mask = os.umask(0o022)
    os.umask(mask)
    out = run_in_child(_user_then_read, {"uid": 0, "gid": 0})
    assert out.error is None, out
    assert out.value["groups"] == "" and out.value["umask"] == mask


@pytest.mark.privileged
def test_capabilities_survive_the_uid_change():
    out = run_in_child(_user_then_read, {"uid": UID, "gid": GID},
                       {"effective": DEFAULT, "permitted": DEFAULT, "inheritable": DEFAULT, "ambient": DEFAULT})
    assert out.error is None, out
    assert out.value["end"]["effective"] == out.value["end"]["ambient"] == DEFAULT_MASK


def test_apply_user_recording_host_sequence():
    host = RecordingHost()
    process.apply_user({"uid": 7, "gid": 8, "additionalGids": [9]}, host=host)
    assert host.calls == [("prctl", (PR_SET_KEEPCAPS, 1)), ("setgroups", ([9],)), ("setgid", (8,)),
                          ("setuid", (7,)), ("prctl", (PR_SET_KEEPCAPS, 0))]
    with pytest.raises(InvalidArgument, match=r"process.user.additionalGids\[1\]"):
        process.apply_user({"uid": 7, "additionalGids": [1, -1]}, host=host)
    with pytest.raises(InvalidArgument, match="process.user.umask"):
        process.apply_user({"umask": 0o1777}, host=host)
    assert len(host.calls) == 5


# -- finalize -------------------------------------------------------------------------------------

def _finalize_recorded(proc, seccomp):
    host = RecordingHost()
    path, argv, env = process.finalize(proc, host=host, seccomp=seccomp)
    return {"calls": [[op, [] if op == "seccomp_load" else list(args)] for op, args in host.calls],
            "path": path, "argv": argv, "env": env, "cwd": os.getcwd()}


def _expected_sequence(nnp: bool, uid: int, gid: int) -> list:
    last = caps.last_cap()
    drops = [["prctl", [PR_CAPBSET_DROP, n]] for n in range(last + 1) if n not in (5, 10, 29)]
    user = [["prctl", [PR_SET_KEEPCAPS, 1]], ["setgroups", [[]]], ["setgid", [gid]], ["setuid", [uid]],
            ["prctl", [PR_SET_KEEPCAPS, 0]]]
    capset = [["capset", [DEFAULT_MASK, DEFAULT_MASK, DEFAULT_MASK]],
              ["prctl", [PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL]]] + \
             [["prctl", [PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n]] for n in (5, 10, 29)]
    seccomp = [["seccomp_load", []]]
    if nnp:  # runc: NNP first, the filter last, just before execve
        return [["prctl", [PR_SET_NO_NEW_PRIVS, 1]]] + drops + user + capset + seccomp
    return seccomp + drops + user + capset  # runc: filter before the capabilities are dropped


@pytest.mark.parametrize("nnp", [True, False])
def test_finalize_follows_runcs_order(nnp, tmp_path):
    proc = {"args": ["sh", "-c", "true"], "cwd": str(tmp_path), "env": [PATH, "X=1"],
            "user": {"uid": UID, "gid": GID}, "noNewPrivileges": nnp,
            "capabilities": {s: DEFAULT for s in caps.SETS}}
    out = run_in_child(_finalize_recorded, proc, _docker_profile())
    assert out.error is None, out
    calls = out.value["calls"]
    # runc's fixStdioPermissions: stdio not /dev/null and not the user's is given to the user
    # (keeping its group) just before the user changes
    chowns = [i for i, c in enumerate(calls) if c[0] == "chown"]
    assert all(calls[i][1][0] in ("/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2")
               and calls[i][1][1] == UID for i in chowns), calls
    if chowns:
        assert calls[chowns[-1] + 1] == ["prctl", [PR_SET_KEEPCAPS, 1]] and chowns == list(
            range(chowns[0], chowns[-1] + 1))
    assert [c for c in calls if c[0] != "chown"] == _expected_sequence(nnp, UID, GID)
    assert out.value["path"] == "/usr/bin/sh" and out.value["argv"] == ["sh", "-c", "true"]
    assert out.value["env"] == {"PATH": PATH[5:], "X": "1", "HOME": "/"}
    assert out.value["cwd"] == str(tmp_path)


@pytest.mark.privileged
def test_finalize_then_exec_gives_the_process_its_attributes():
    proc = {"args": ["cat", "/proc/self/status", "/proc/self/limits"], "cwd": "/", "env": [PATH],
            "user": {"uid": UID, "gid": GID, "additionalGids": [GID + 1]}, "noNewPrivileges": True,
            "capabilities": {s: DEFAULT for s in caps.SETS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]}
    out = exec_in_child(process.finalize, proc, seccomp=_docker_profile())
    assert out.error is None and out.exit_code == 0, out
    text = out.output.decode()
    f = status_fields(text)
    assert f["Uid"].split() == [str(UID)] * 4 and f["Gid"].split() == [str(GID)] * 4
    assert f["Groups"] == str(GID + 1)
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "2"
    for oci, field in caps.STATUS_FIELDS.items():
        assert int(f[field], 16) == DEFAULT_MASK, (oci, f[field])  # ambient -> effective at exec
    nofile = next(line for line in text.splitlines() if line.startswith("Max open files"))
    assert nofile.split()[3:5] == ["256", "512"]


@pytest.mark.privileged
def test_finalize_env_and_home_reach_the_program():
    proc = {"args": ["env"], "env": [PATH, "A=1", "A=2"], "user": {"uid": UID, "gid": GID},
            "capabilities": None}
    out = exec_in_child(process.finalize, proc)
    assert out.error is None and out.exit_code == 0, out
    assert sorted(out.output.decode().split()) == sorted([PATH, "A=2", "HOME=/"])


@pytest.mark.privileged
def test_finalize_without_nnp_loads_the_filter_while_still_privileged():
    # runc loads it before dropping CAP_SYS_ADMIN: with no capabilities left it would be refused.
    proc = {"args": ["cat", "/proc/self/status"], "env": [PATH], "capabilities": None, "noNewPrivileges": False}
    out = exec_in_child(process.finalize, proc, seccomp=_docker_profile())
    assert out.error is None and out.exit_code == 0, out
    f = status_fields(out.output.decode())
    assert f["Seccomp"] == "2" and f["NoNewPrivs"] == "0" and int(f["CapEff"], 16) == 0


def _drop_dac_then_finalize(proc):
    keep = [c for c in caps.NAMES if c not in ("CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH")]
    keep_mask = caps.to_mask(keep) & caps.read_sets()["permitted"]
    HOST.capset(keep_mask, keep_mask, 0)
    first = None
    try:
        os.chdir(proc["cwd"])
    except PermissionError:
        first = "EACCES as root"
    process.finalize(proc)
    return {"first": first, "cwd": os.getcwd(), "uid": os.getuid()}


@pytest.mark.privileged
def test_cwd_only_the_user_can_enter_is_retried_after_the_uid_change():
    d = tempfile.mkdtemp(prefix="capsize-cwd-")
    try:
        os.chown(d, UID, GID)
        os.chmod(d, 0o700)
        proc = {"args": ["/bin/true"], "cwd": d, "env": [PATH], "user": {"uid": UID, "gid": GID},
                "capabilities": None}
        out = run_in_child(_drop_dac_then_finalize, proc)
        assert out.error is None, out
        assert out.value == {"first": "EACCES as root", "cwd": d, "uid": UID}
    finally:
        shutil.rmtree(d)


def _finalize_error(proc, seccomp=None):
    host = RecordingHost()
    try:
        process.finalize(proc, host=host, seccomp=seccomp)
    except Exception as e:  # noqa: BLE001
        return {"error": type(e).__name__, "message": str(e), "calls": len(host.calls),
                "nnp": status_fields()["NoNewPrivs"]}
    return None


@pytest.mark.parametrize("proc, seccomp, error, message, changed", [
    ({"args": ["true"], "cwd": "/nonexistent-capsize", "env": [PATH]}, None, "NotFound",
     'chdir to cwd ("/nonexistent-capsize") set in config.json failed: no such file or directory', False),
    ({"args": ["true"], "cwd": "/etc/passwd", "env": [PATH]}, None, "NotFound",
     'chdir to cwd ("/etc/passwd") set in config.json failed: not a directory', False),
    ({"args": ["nope-capsize"], "env": [PATH], "capabilities": None}, None, "NotFound",
     'exec: "nope-capsize": executable file not found in $PATH', True),
    ({"args": ["true"], "env": [PATH], "rlimits": [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}],
      "noNewPrivileges": True}, None, "InvalidArgument", "process.rlimits[0].type: wrong rlimit value: RLIMIT_NOPE", False),
    ({"args": ["true"], "env": [PATH], "capabilities": {"bounding": ["CAP_NOPE"]}, "noNewPrivileges": True},
     None, "InvalidArgument", "process.capabilities.bounding[0]: unknown capability 'CAP_NOPE'", False),
    ({"args": ["true"], "env": ["BROKEN"], "noNewPrivileges": True}, None, "InvalidArgument",
     'process.env[0]: invalid environment variable: "BROKEN"', False),
    ({"args": ["true"], "env": [PATH], "noNewPrivileges": True},
     {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}, "InvalidArgument",
     "linux.seccomp.architectures[0]: unknown architecture 'SCMP_ARCH_PDP11'", False),
    ({"args": [], "env": [PATH]}, None, "InvalidArgument", "process.args: must be a non-empty list", False),
])
def test_finalize_errors(proc, seccomp, error, message, changed):
    out = run_in_child(_finalize_error, proc, seccomp)
    assert out.value is not None, out
    assert out.value["error"] == error
    assert out.value["message"].startswith(message)
    if not changed:  # checked before anything was changed
        assert out.value["calls"] == 0 and out.value["nnp"] == "0"
