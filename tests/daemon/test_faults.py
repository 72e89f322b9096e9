"""Faults: the runtime daemon stopped (seed E3), capsized killed (-9) and restarted with and
without --live-restore, exits that happen while capsized is down, SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from runtime.api import exits

pytestmark = [pytest.mark.privileged, pytest.mark.slow]


def state(stack, ref):
    return json.loads(stack.ok("inspect", ref))[0]["State"]


def wait_for(pred, timeout=15.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_with_runtime_down_then_recovery(fresh):
    s = fresh
    cid = s.ok("run", "-d", "--name", "web", "busybox", "sleep", "1000")
    pid = state(s, "web")["Pid"]
    s.stop_runtime()
    assert alive(pid)                                   # stopping the runtime stops no container
    assert "Up " in s.ok("ps", "--format", "{{.Status}}")
    t0 = time.monotonic()
    r = s.cli("stop", "-t", "2", "web", timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 1
    assert r.stderr.strip() == ("Error response from daemon: cannot stop container: web: tried to kill container, "
                                "but did not receive an exit event")
    assert 2 <= took < 30
    assert wait_for(lambda: not alive(pid), 5)          # killed directly, by pid
    assert state(s, "web")["Running"]                   # no exit event yet: still running for the daemon
    r = s.cli("run", "-d", "busybox", "true", timeout=30)   # another runtime-down path: a quick, clear error
    assert r.returncode == 125 and "capsize-runtimed is not reachable" in r.stderr
    s.start_runtime()
    st = wait_for(lambda: (lambda x: x if not x["Running"] else None)(state(s, "web")), 15)
    assert st and (st["Status"], st["ExitCode"]) == ("exited", 137)
    out = s.ok("events", "--since", "0", "--until", str(time.time() + 0.2), "--filter", "event=die",
               "--filter", f"container={cid}", "--format", "{{json .}}")
    assert [json.loads(l)["Actor"]["Attributes"]["exitCode"] for l in out.splitlines()] == ["137"]
    assert s.ok("run", "--rm", "busybox", "echo", "back") == "back"


@pytest.mark.parametrize("live_restore", [False, True], ids=["no-live-restore", "live-restore"])
def test_daemon_kill9_and_restart(fresh, live_restore):
    s = fresh
    s.ok("run", "-d", "--name", "long", "--stop-timeout", "1", "busybox", "sleep", "1000")
    s.ok("run", "-d", "--name", "quits", "busybox", "sh", "-c", "sleep 1; exit 7")
    s.ok("run", "-d", "--rm", "--name", "gone", "busybox", "sh", "-c", "sleep 1; exit 0")
    pid = state(s, "long")["Pid"]
    s.kill_daemon()
    r = s.cli("ps")
    assert r.returncode == 1 and f"Cannot connect to the Docker daemon at {s.host}. Is the docker daemon running?" \
        in r.stderr
    time.sleep(1.5)                                     # "quits" and "gone" exit while nobody listens
    assert alive(pid)
    s.live_restore = live_restore
    took = s.start_daemon()
    names = set(s.ok("ps", "-a", "--format", "{{.Names}}").split())
    assert names == {"long", "quits"}                   # the --rm container that exited meanwhile is removed
    q = state(s, "quits")
    assert (q["Status"], q["ExitCode"]) == ("exited", 7)    # the real exit status, from the shim's exit file
    st = state(s, "long")
    if live_restore:
        assert st["Running"] and st["Pid"] == pid and alive(pid)
        assert took < 5
    else:
        assert (st["Status"], st["ExitCode"]) == ("exited", 137) and not alive(pid)
    s.ok("rm", "-f", "long", "quits")


def test_sigterm_shutdown_stops_containers_without_live_restore(fresh):
    s = fresh
    s.ok("run", "-d", "--name", "aa", "--stop-signal", "KILL", "busybox", "sleep", "1000")
    pid = state(s, "aa")["Pid"]
    assert s.stop_daemon() == 0
    assert not alive(pid)
    assert not os.path.exists(s.sock) and not os.path.exists(s.pidfile)
    s.start_daemon()
    assert state(s, "aa")["ExitCode"] == 137


def test_restart_policies(fresh):
    s = fresh
    s.ok("run", "-d", "--name", "onf", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    st = wait_for(lambda: (lambda x: x if x["Status"] == "exited" and
                           json.loads(s.ok("inspect", "onf"))[0]["RestartCount"] == 2 else None)(state(s, "onf")), 15)
    assert st and st["ExitCode"] == 3
    s.ok("run", "-d", "--name", "alw", "--restart", "always", "busybox", "sleep", "1000")
    pid = state(s, "alw")["Pid"]
    os.kill(pid, signal.SIGKILL)
    st = wait_for(lambda: (lambda x: x if x["Running"] and x["Pid"] != pid else None)(state(s, "alw")), 10)
    assert st, "an 'always' container is restarted after its init is killed"
    s.ok("stop", "-t", "0", "alw")                      # a user's stop is not undone
    time.sleep(0.5)
    assert state(s, "alw")["Status"] == "exited"
    s.stop_daemon()
    s.start_daemon()                                    # but 'always' starts again with the daemon
    assert wait_for(lambda: state(s, "alw")["Running"], 10)
    s.ok("rm", "-f", "alw", "onf")


def test_exit_status_when_the_shim_died_while_both_daemons_were_down(fresh):
    """capsized and capsize-runtimed down, then the shim is killed: no exit file exists, so the
    restarted runtime cleans up the dead shim by force-deleting the live container — SIGKILL, 137,
    published with exit_source "cleanup-kill" — and capsized reports that 137 labelled as the
    clean-up's kill (State.Error, the die event's exitCodeSource), never a fake 0."""
    s = fresh
    cid = s.ok("run", "-d", "--name", "orphan", "busybox", "sleep", "1000")
    with open(os.path.join(s.state, "runtimed", "tasks", "capsize", cid, "shim.pid")) as f:
        shim = int(f.read())
    s.kill_daemon()
    s.stop_runtime()
    os.kill(shim, signal.SIGKILL)
    s.start_runtime()
    s.start_daemon()
    assert wait_for(lambda: state(s, "orphan")["Status"] == "exited", 10)
    st = state(s, "orphan")
    assert (st["Status"], st["ExitCode"]) == ("exited", 137), st
    assert exits.provenance_of_error(st["Error"]) == "cleanup-kill", st
    assert die_events(s, "orphan") == [("137", "cleanup-kill")]
    s.ok("rm", "orphan")


def die_events(s, name):
    out = s.ok("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", f"container={name}",
               "--filter", "event=die", "--format", "{{json .Actor.Attributes}}")
    return [(a["exitCode"], a.get("exitCodeSource")) for a in map(json.loads, out.splitlines())]


TRAP3 = 'trap "exit 3" TERM; while :; do sleep 0.1; done'


def _kill_shim_and_runtime_then_exit(s, name):
    """The issue #21 recipe: runtime and shim SIGKILLed, then the init exits on its own (3)."""
    cid = s.ok("run", "-d", "--name", name, "busybox", "sh", "-c", TRAP3)
    init = state(s, name)["Pid"]
    with open(os.path.join(s.state, "runtimed", "tasks", "capsize", cid, "shim.pid")) as f:
        shim = int(f.read())
    s.kill_runtime()
    os.kill(shim, signal.SIGKILL)
    assert wait_for(lambda: not alive(shim), 10)
    os.kill(init, signal.SIGTERM)
    assert wait_for(lambda: not alive(init), 10), "the init exits on its own (3), unrecorded"
    return cid


@pytest.mark.parametrize("daemon_down", [False, True], ids=["event", "reconcile"])
def test_exit_unrecorded_while_shim_dead_is_unknown_not_137(fresh, daemon_down):
    """Shim dead, then the init exits by itself: nobody records its 3. The clean-up must not
    present its 137 as real (issue #21): 255, State.Error saying why, die 255 labelled unknown —
    through the event path (capsized up) and through reconcile (capsized down meanwhile)."""
    s = fresh
    _kill_shim_and_runtime_then_exit(s, "web")
    if daemon_down:
        s.kill_daemon()
    s.start_runtime()
    if daemon_down:
        s.start_daemon()
    assert wait_for(lambda: state(s, "web")["Status"] == "exited", 15)
    st = state(s, "web")
    assert st["ExitCode"] == 255, st
    assert exits.provenance_of_error(st["Error"]) == "unknown", st
    # the reason: the clean-up's (its event replayed), or the reconcile's (the task is gone)
    assert "exited while its shim was dead" in st["Error"] or "no task" in st["Error"], st
    assert die_events(s, "web") == [("255", "unknown")]
    s.ok("rm", "-f", "web")


def test_real_exit_recorded_before_shim_died_is_real(fresh):
    """The init exits (3) while the runtime is down, the shim records it, then the shim dies:
    the exit file's 3 is real — inspect 3 with no State.Error, die 3 without exitCodeSource."""
    s = fresh
    cid = s.ok("run", "-d", "--name", "web", "busybox", "sh", "-c", TRAP3)
    init = state(s, "web")["Pid"]
    task = os.path.join(s.state, "runtimed", "tasks", "capsize", cid)
    with open(os.path.join(task, "shim.pid")) as f:
        shim = int(f.read())
    s.kill_daemon()
    s.kill_runtime()
    os.kill(init, signal.SIGTERM)
    assert wait_for(lambda: os.path.exists(os.path.join(task, "exit")), 10)
    os.kill(shim, signal.SIGKILL)
    assert wait_for(lambda: not alive(shim), 10)
    s.start_runtime()
    s.start_daemon()
    assert wait_for(lambda: state(s, "web")["Status"] == "exited", 15)
    st = state(s, "web")
    assert (st["ExitCode"], st["Error"]) == (3, ""), st
    assert die_events(s, "web") == [("3", None)]
    s.ok("rm", "-f", "web")


def test_start_cut_off_by_runtime_death_then_start_again(fresh):
    """The runtime daemon SIGKILLed while a start is in flight (the shim's ``start`` held by a
    failpoint) leaves a created task behind; the next ``docker start`` replaces that stale task
    instead of failing with "task ... already exists" (scenario lifecycle/runtime-killed-during-start)."""
    import subprocess
    s = fresh
    cid = s.ok("create", "--name", "web", "--label", "io.capsize.shim.failpoint.start=1*delay(3s)",
               "busybox", "sleep", "1000")
    starting = subprocess.Popen(["docker", "start", "web"], env=s.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    init_pid = os.path.join(s.state, "runtimed", "tasks", "capsize", cid, "init.pid")
    assert wait_for(lambda: os.path.exists(init_pid), 10)   # created; the start waits on the failpoint
    s.kill_runtime()
    _, err = starting.communicate(timeout=30)
    assert starting.returncode == 1, err
    s.start_runtime()
    assert state(s, "web")["Status"] == "created"
    r = s.cli("start", "web", timeout=30)
    assert r.returncode == 0, r.stderr                      # not "task ... already exists"
    st = state(s, "web")
    assert st["Running"] and alive(st["Pid"])
    s.ok("stop", "-t", "1", "web")
    s.ok("rm", "web")
