"""``docker exec`` on capsized through the real docker CLIs (Debian's 20.10 and the newer one on
PATH) and the docker SDK: output streams, exit codes (the process's; 126 for a start that failed, as dockerd 20.10), -d, -e, -u, -w,
-i, --privileged refused, the exec API's inspect and resize, exec events, and an exec that
leaves an orphan behind being reaped (no zombie under the shim)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.daemon.stack import DOCKER

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

NEW_CLI = shutil.which("docker")
CLIS = [DOCKER] + ([NEW_CLI] if NEW_CLI and os.path.realpath(NEW_CLI) != os.path.realpath(DOCKER) else [])


def cli(stack, binary, *args, input=None, timeout=30):
    return subprocess.run([binary, *args], env=stack.env(), capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def zombies_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z" and int(fields[1]) == pid:
                out.append(int(entry))
    return out


def shim_pid_of(stack, cid: str) -> int:
    from runtime.highlevel.client import RuntimeClient
    rt = RuntimeClient(os.path.join(stack.state, "runtimed.sock"), namespace="capsize")
    return rt.task(cid)["shim_pid"]


@pytest.fixture
def box(stack):
    stack.ok("run", "-d", "--name", "box", "busybox", "sleep", "1000")
    return stack.ok("inspect", "-f", "{{.Id}}", "box")


@pytest.mark.parametrize("binary", CLIS, ids=[os.path.basename(os.path.dirname(c)) + "-docker" for c in CLIS])
def test_cli_exec_streams_exit_codes_and_flags(stack, box, binary):
    r = cli(stack, binary, "exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = cli(stack, binary, "exec", "box", "nosuch")
    assert r.returncode == 126 and 'exec: "nosuch": executable file not found in $PATH' in r.stdout + r.stderr
    assert r.stdout.startswith("OCI runtime exec failed: ")
    r = cli(stack, binary, "exec", "box", "/etc")
    assert r.returncode == 126 and "permission denied" in r.stdout
    r = cli(stack, binary, "exec", "-e", "A=b", "-w", "/tmp", "-u", "1000:1000", "box",
            "sh", "-c", "echo $A $(pwd) $(id -u):$(id -g)")
    assert (r.returncode, r.stdout) == (0, "b /tmp 1000:1000\n")
    r = cli(stack, binary, "exec", "-i", "box", "sh", "-c", "tr a-z A-Z; exit 5", input="typed in\n")
    assert (r.returncode, r.stdout) == (5, "TYPED IN\n")
    r = cli(stack, binary, "exec", "-d", "box", "sh", "-c", "echo hidden; sleep 0.2")
    assert (r.returncode, r.stdout) == (0, "")
    r = cli(stack, binary, "exec", "--privileged", "box", "true")
    assert r.returncode != 0 and "privileged" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_exec_refused_where_docker_refuses_it(stack):
    stack.ok("create", "--name", "idle", "busybox", "sleep", "100")
    r = stack.cli("exec", "idle", "true")
    assert r.returncode != 0 and "is not running" in r.stderr
    stack.ok("run", "-d", "--name", "frozen", "busybox", "sleep", "100")
    stack.ok("pause", "frozen")
    r = stack.cli("exec", "frozen", "true")
    assert r.returncode != 0 and "is paused, unpause the container before exec" in r.stderr
    stack.ok("unpause", "frozen")


def test_sdk_exec_run_stream_demux_and_exit_codes(stack, box):
    c = stack.client().containers.get("box")
    res = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 2"])
    assert (res.exit_code, res.output) == (2, b"out\nerr\n")
    res = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (res.exit_code, res.output) == (0, (b"out\n", b"err\n"))
    res = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"], stream=True)
    assert res.exit_code is None and b"".join(res.output) == b"1\n2\n3\n"
    res = c.exec_run(["sh", "-c", "echo o; echo e >&2"], stream=True, demux=True)
    chunks = list(res.output)
    assert b"".join(o for o, _ in chunks if o) == b"o\n" and b"".join(e for _, e in chunks if e) == b"e\n"
    assert c.exec_run(["nosuch"]).exit_code == 126   # dockerd 20.10's, measured
    assert c.exec_run(["/etc"]).exit_code == 126
    res = c.exec_run(["sh", "-c", "echo $FOO $(id -u)"], environment={"FOO": "bar"}, user="1234")
    assert (res.exit_code, res.output) == (0, b"bar 1234\n")
    assert c.exec_run(["sleep", "0.1"], detach=True).output == ""   # the SDK reads the empty 200 as text


def test_exec_api_inspect_resize_and_events(stack, box):
    api = stack.client().api
    since = int(time.time()) - 1
    eid = api.exec_create("box", ["sh", "-c", "sleep 0.5; exit 4"])["Id"]
    ins = api.exec_inspect(eid)
    assert (ins["Running"], ins["ExitCode"], ins["Pid"], ins["ContainerID"]) == (False, None, 0, box)
    assert ins["ProcessConfig"] == {"tty": False, "entrypoint": "sh", "arguments": ["-c", "sleep 0.5; exit 4"]}
    api.exec_start(eid, detach=True)
    ins = api.exec_inspect(eid)
    assert ins["Running"] and ins["Pid"] > 0
    api.exec_resize(eid, height=20, width=80)   # no terminal: nothing to resize, as for Docker
    deadline = time.monotonic() + 10
    while api.exec_inspect(eid)["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    ins = api.exec_inspect(eid)
    assert (ins["Running"], ins["ExitCode"]) == (False, 4)
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        api.exec_resize(eid, height=20, width=80)
    assert e.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as e:
        api.exec_start(eid)
    assert e.value.status_code == 409 and "already run" in str(e.value)
    with pytest.raises(docker.errors.NotFound):
        api.exec_inspect("nosuch")
    events = [json.loads(line) for line in stack.ok(
        "events", "--since", str(since), "--until", str(int(time.time()) + 1),   # whole seconds
        "--format", "{{json .}}").splitlines()]
    mine = [(ev["Action"], ev["Actor"]["Attributes"].get("exitCode")) for ev in events
            if ev["Actor"]["Attributes"].get("execID") == eid]
    assert mine == [("exec_create: sh -c sleep 0.5; exit 4", None), ("exec_start: sh -c sleep 0.5; exit 4", None),
                    ("exec_die", "4")]


def test_exec_orphans_are_reaped_and_the_container_is_untouched(stack, box):
    shim = shim_pid_of(stack, box)
    pid = int(stack.ok("inspect", "-f", "{{.State.Pid}}", "box"))
    c = stack.client().containers.get("box")
    # the background sleep keeps the output open: the exec returns after the exit plus the grace
    t = time.monotonic()
    res = c.exec_run(["sh", "-c", "sleep 30 &"])
    assert res.exit_code == 0 and time.monotonic() - t < 5
    for _ in range(5):
        assert c.exec_run(["sh", "-c", "sleep 0.2 >/dev/null 2>&1 &"], detach=True).output == ""
    time.sleep(1.0)
    assert zombies_of(shim) == [], "an exec's process left as a zombie under the shim"
    st = json.loads(stack.ok("inspect", "box"))[0]["State"]
    assert (st["Running"], st["Pid"]) == (True, pid)


@pytest.mark.parametrize("tty", [False, True], ids=["fifos", "tty"])
def test_a_detached_exec_goes_on_and_exits_with_its_own_code(stack, box, tty):
    """exec -i with DetachKeys, detached by the keys: the process then writes 300 KB (more than a
    FIFO's or a pty's buffer) and exits 0: capsized drains and drops its output after the detach
    as dockerd does (a closed FIFO would fail its write: EPIPE, exit 1; a pty nobody reads would
    block it), and exec_die carries its real code. The SDK sends ``detachKeys`` (any case goes,
    as for dockerd's JSON)."""
    api = stack.client().api
    since = int(time.time()) - 1
    go = f"/tmp/go-{int(tty)}"
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; exec head -c 300000 /dev/zero"   # its code
    eid = api.exec_create("box", ["sh", "-c", script], stdin=True, tty=tty, detach_keys="ctrl-x,x")["Id"]
    raw = api.exec_start(eid, socket=True, tty=tty)._sock
    raw.settimeout(10)
    raw.sendall(b"\x18x")
    while raw.recv(4096):   # capsized ends the stream at the detach keys
        pass
    raw.close()
    assert api.exec_inspect(eid)["Running"]
    stack.ok("exec", "box", "touch", go)   # only now the detached process writes
    deadline = time.monotonic() + 15
    while api.exec_inspect(eid)["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    ins = api.exec_inspect(eid)
    assert (ins["Running"], ins["ExitCode"]) == (False, 0), ins
    events = [json.loads(line) for line in stack.ok(
        "events", "--since", str(since), "--until", str(int(time.time()) + 1), "--filter", "event=exec_die",
        "--format", "{{json .}}").splitlines()]
    die = [ev["Actor"]["Attributes"] for ev in events if ev["Actor"]["Attributes"].get("execID") == eid]
    assert len(die) == 1 and die[0]["exitCode"] == "0" and "exitCodeSource" not in die[0], die
