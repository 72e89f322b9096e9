"""The real docker CLI (Debian's 20.10) driving capsized: the container commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.daemon.stack import DOCKER

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def inspect(stack, ref):
    return json.loads(stack.ok("inspect", ref))[0]


def test_version_and_info(stack):
    out = stack.ok("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert out == "1.41 1.41"
    info = json.loads(stack.ok("info", "--format", "{{json .}}"))
    assert info["Images"] == 1 and info["LoggingDriver"] == "json-file"
    assert info["DockerRootDir"] == stack.root


def test_run_detached_ps_inspect_logs_stop_rm(stack):
    cid = stack.ok("run", "-d", "--name", "web", "busybox", "sh", "-c", "echo out; echo err >&2; exec sleep 1000")
    assert len(cid) == 64
    ps = stack.ok("ps", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Command}}")
    assert ps.startswith(cid[:12] + " web Up ")
    st = inspect(stack, "web")["State"]
    assert st["Running"] and st["Status"] == "running" and st["Pid"] > 0
    # the container's init is a real process, in its own pid namespace
    with open(f"/proc/{st['Pid']}/status") as f:
        assert "NSpid:\t%d\t1" % st["Pid"] in f.read()
    deadline = time.monotonic() + 5
    while "out" not in stack.cli("logs", "web").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    r = stack.cli("logs", "web")
    assert r.stdout == "out\n" and r.stderr == "err\n"
    r = stack.cli("logs", "-t", "--tail", "1", "web")
    assert r.stdout == "" and r.stderr.endswith("Z err\n") and len(r.stderr.split()[0]) == 30
    t0 = time.monotonic()
    assert stack.ok("stop", "-t", "1", cid[:8]) == cid[:8]
    assert 0.9 < time.monotonic() - t0 < 5          # sh as PID 1 ignores SIGTERM: the grace period, then SIGKILL
    st = inspect(stack, "web")["State"]
    assert (st["Status"], st["ExitCode"], st["Pid"]) == ("exited", 137, 0)
    assert "Exited (137)" in stack.ok("ps", "-a", "--filter", "name=web", "--format", "{{.Status}}")
    assert stack.ok("rm", "web") == "web"
    r = stack.cli("inspect", "web")
    assert r.returncode == 1 and "No such object: web" in r.stderr


def test_run_rm_attached_output_and_exit_code(stack):
    r = stack.cli("run", "--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "hello\n", "oops\n")
    assert stack.ok("ps", "-aq") == ""


def test_create_start_wait_kill_restart(stack):
    cid = stack.ok("create", "--name", "c1", "busybox", "sleep", "1000")
    assert inspect(stack, "c1")["State"]["Status"] == "created"
    assert stack.ok("start", "c1") == "c1"
    pid = inspect(stack, "c1")["State"]["Pid"]
    waiter = subprocess.Popen([DOCKER, "wait", "c1"], env=stack.env(), stdout=subprocess.PIPE, text=True)
    assert stack.ok("kill", "-s", "KILL", "c1") == "c1"
    out, _ = waiter.communicate(timeout=10)
    assert out.strip() == "137"
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert stack.ok("restart", "-t", "0", "c1") == "c1"
    st = inspect(stack, "c1")["State"]
    assert st["Running"] and st["Pid"] != pid
    r = stack.cli("kill", "--signal", "NOPE", "c1")
    assert r.returncode == 1 and "Invalid signal: NOPE" in r.stderr
    assert stack.ok("rm", "-f", cid) == cid


def test_rename_pause_top(stack):
    stack.ok("run", "-d", "--name", "old", "busybox", "sleep", "1000")
    stack.ok("rename", "old", "new")
    assert inspect(stack, "new")["Name"] == "/new"
    assert stack.cli("inspect", "old").returncode == 1
    stack.ok("pause", "new")
    assert "(Paused)" in stack.ok("ps", "--format", "{{.Status}}")
    r = stack.cli("pause", "new")
    assert r.returncode == 1 and "is already paused" in r.stderr
    stack.ok("unpause", "new")
    top = stack.ok("top", "new")
    assert top.splitlines()[0].split()[:2] == ["UID", "PID"] and "sleep 1000" in top
    stack.ok("rm", "-f", "new")


def test_errors_are_dockers(stack):
    r = stack.cli("run", "--name", "bad name!", "busybox", "true")
    assert r.returncode == 125
    assert "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in r.stderr
    stack.ok("run", "-d", "--name", "dup", "busybox", "sleep", "1000")
    r = stack.cli("run", "-d", "--name", "dup", "busybox", "true")
    assert r.returncode == 125 and 'Conflict. The container name "/dup" is already in use' in r.stderr
    r = stack.cli("rm", "dup")
    assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
    r = stack.cli("stop", "nosuch")
    assert r.returncode == 1 and r.stderr.strip() == "Error response from daemon: No such container: nosuch"
    r = stack.cli("run", "nosuch:tag", "true")
    assert r.returncode == 125 and "capsize never contacts Docker Hub" in r.stderr
    r = stack.cli("run", "busybox", "/no/such/binary")
    assert r.returncode == 127, r.stderr
    assert "Traceback" not in r.stderr
    r = stack.cli("unpause", "dup")
    assert r.returncode == 1 and "is not paused" in r.stderr


def test_ps_filters_and_limit(stack):
    a = stack.ok("run", "-d", "--name", "fa", "--label", "tier=web", "busybox", "sleep", "1000")
    b = stack.ok("run", "-d", "--name", "fb", "busybox", "true")
    stack.ok("wait", "fb")
    assert stack.ok("ps", "-q", "--no-trunc") == a
    assert set(stack.ok("ps", "-aq", "--no-trunc").split()) == {a, b}
    assert stack.ok("ps", "-aq", "--no-trunc", "--filter", "status=exited") == b
    assert stack.ok("ps", "-aq", "--no-trunc", "--filter", "label=tier=web") == a
    assert stack.ok("ps", "-aq", "--no-trunc", "--filter", "name=fb") == b
    assert stack.ok("ps", "-aq", "--no-trunc", "--filter", f"id={a[:10]}") == a
    assert stack.ok("ps", "-q", "--no-trunc", "-n", "1") == b   # newest first
    r = stack.cli("ps", "--filter", "status=bogus")
    assert r.returncode == 1 and "Invalid filter 'status=bogus'" in r.stderr


def test_logs_follow(stack):
    stack.ok("run", "-d", "--name", "tick", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done")
    t0 = time.monotonic()
    r = stack.cli("logs", "-f", "tick", timeout=20)
    assert r.stdout == "1\n2\n3\n"
    assert time.monotonic() - t0 < 5


def test_events_stream(stack):
    since = str(time.time() - 0.001)
    cid = stack.ok("run", "-d", "--name", "ev", "busybox", "sleep", "1000")
    stack.ok("stop", "-t", "0", "ev")
    stack.ok("rm", "ev")
    until = str(time.time() + 0.5)
    out = stack.ok("events", "--since", since, "--until", until, "--filter", "container=ev",
                   "--format", "{{json .}}")
    evs = [json.loads(l) for l in out.splitlines()]
    assert [e["Action"] for e in evs] == ["create", "start", "kill", "kill", "die", "stop", "destroy"]
    die = evs[4]
    assert die["id"] == cid and die["Actor"]["Attributes"]["exitCode"] == "137"
    assert die["Actor"]["Attributes"]["name"] == "ev" and die["from"] == "busybox"
    assert evs[2]["Actor"]["Attributes"]["signal"] == "15"


def test_kill_init_gives_die_event(stack):
    ev = subprocess.Popen([DOCKER, "events", "--filter", "event=die", "--format", "{{json .}}"],
                          env=stack.env(), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        stack.ok("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
        pid = inspect(stack, "victim")["State"]["Pid"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        line = ev.stdout.readline()
        assert time.monotonic() - t0 < 2
        assert json.loads(line)["Actor"]["Attributes"]["exitCode"] == "137"
    finally:
        ev.kill()
        ev.wait()
