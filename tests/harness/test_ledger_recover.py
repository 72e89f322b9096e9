"""The fault ledger and `capsize recover` after a SIGKILLed harness: nothing is left that it cannot undo."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time

import pytest

from harness.ledger import LEDGER, engines_up, outstanding, read
from harness.pids import tracer_of
from harness.reference import cleanup
from tests.conftest import VENV_BIN, reap_children
from tests.harness.conftest import capsize, needs_docker

pytestmark = [pytest.mark.reference, needs_docker]

CRASH = """\
name: crash
engines: [docker]
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
steps:
  - fault.pause: {component: container, container: web}
  - fault.socket.close: {}
  - fault.syscall.delay: {component: runtime, syscall: nanosleep, delay: 1ms}
  - snapshot: all-applied
  - sleep: 300s
"""


def test_recover_undoes_every_fault_of_a_sigkilled_harness(tmp_path):
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(CRASH)
    out = tmp_path / "runs"
    # Ctrl-C reaches a foreground process whose SIGINT is not ignored; a suite started in the
    # background by a non-interactive shell (`make test &`) inherits SIGINT ignored, and Python
    # keeps it so in the harness: give the harness the default disposition a terminal's would have
    harness = subprocess.Popen([os.path.join(VENV_BIN, "capsize"), "run", "-q", "--engine", "docker",
                                "--out", str(out), str(scenario)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        run_dir = ledger = None
        while time.monotonic() < deadline:
            dirs = os.listdir(out) if out.exists() else []
            if dirs:
                run_dir = str(out / dirs[0])
                ledger = os.path.join(run_dir, LEDGER)
                if len(outstanding(read(ledger))) == 3 and os.path.exists(os.path.join(run_dir, "crash--docker",
                                                                                       "snapshots.jsonl")):
                    snaps = open(os.path.join(run_dir, "crash--docker", "snapshots.jsonl")).read()
                    if "all-applied" in snaps:
                        break
            assert harness.poll() is None, "the harness ended early"
            time.sleep(0.1)
        else:
            pytest.fail("the faults were not all applied within 60 s")
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    entries = read(ledger)
    faults = outstanding(entries)
    assert [f["fault"] for f in faults] == ["fault.pause", "fault.socket.close", "fault.syscall.delay"]
    workdir = engines_up(entries)[0]["record"]["workdir"]
    # the faults are still applied: the container is stopped, the socket moved, containerd traced
    paused_pid = faults[0]["undo"]["pid"]
    assert open(f"/proc/{paused_pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"
    sock = faults[1]["target"]["socket"]
    assert not os.path.exists(sock) and os.path.exists(sock + ".capsize-closed")
    traced = faults[2]["undo"]["processes"][0]["pid"]
    assert tracer_of(traced) != 0
    r = capsize("recover", run_dir, timeout=180)
    reap_children()
    assert r.returncode == 0, r.stderr
    assert f"sent SIGCONT to pid {paused_pid}" in r.stdout
    assert f"moved {sock}.capsize-closed back to {sock}" in r.stdout
    assert "terminated pid" in r.stdout
    assert "engine docker at " + workdir + " removed" in r.stdout
    after = read(ledger)
    assert outstanding(after) == [] and engines_up(after) == []
    assert not os.path.exists(workdir)
    assert cleanup.mounts_under(workdir) == []
    assert cleanup.find_processes(lambda argv, p: any(workdir in a for a in argv)) == []
    # a second recover finds nothing to do
    r2 = capsize("recover", run_dir)
    assert r2.returncode == 0 and "nothing left to undo" in r2.stdout


INTERRUPTED = """\
name: interrupted
engines: [docker]
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
steps:
  - fault.pause: {component: runtime}
  - snapshot: paused
  - sleep: 300s
teardown:
  - container.rm: {name: web, force: true}
checks:
  - cleanup.complete: {}
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_still_runs_teardown_and_records_it(tmp_path, sig):
    scenario = tmp_path / "interrupted.yaml"
    scenario.write_text(INTERRUPTED)
    out = tmp_path / "runs"
    # Ctrl-C reaches a foreground process whose SIGINT is not ignored; a suite started in the
    # background by a non-interactive shell (`make test &`) inherits SIGINT ignored, and Python
    # keeps it so in the harness: give the harness the default disposition a terminal's would have
    harness = subprocess.Popen([os.path.join(VENV_BIN, "capsize"), "run", "-q", "--engine", "docker",
                                "--out", str(out), str(scenario)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snaps = glob.glob(str(out / "*" / "interrupted--docker" / "snapshots.jsonl"))
        if snaps and "paused" in open(snaps[0]).read():
            break
        time.sleep(0.1)
    harness.send_signal(sig)
    assert harness.wait(120) == 130
    reap_children()
    run_dir = glob.glob(str(out / "*"))[0]
    j = json.load(open(os.path.join(run_dir, "journal.json")))
    assert [e["status"] for e in j["runs"]] == ["interrupted"]
    steps = j["runs"][0]["steps"]
    assert any(s["section"] == "teardown" and s["status"] == "ok" for s in steps)  # teardown ran, recorded
    assert [r["fault"] for r in j["runs"][0]["restored"]] == ["fault.pause"]       # the paused runtime resumed
    assert [c["status"] for c in j["runs"][0]["checks"]] == ["pass"]                # and nothing was left
    entries = read(os.path.join(run_dir, LEDGER))
    assert outstanding(entries) == [] and engines_up(entries) == []
    assert "interrupted" in open(os.path.join(run_dir, "summary.txt")).read().lower()


def test_runc_state_scan_never_opens_the_exec_fifo(tmp_path):
    """Removing a docker engine scans runc state dirs for the workdir's path: a created (not
    started) container's ``exec.fifo`` must be skipped, not opened (that blocks for ever once its
    init is gone: a harness hung in its teardown after runtime-killed-during-start on Docker)."""
    import threading

    from harness.reference.containerd import _mentions
    d = tmp_path / "runc" / "moby" / "c1"
    d.mkdir(parents=True)
    os.mkfifo(d / "exec.fifo")
    (d / "state.json").write_text(json.dumps({"bundle": "/work/x/bundle"}))
    found = []
    t = threading.Thread(target=lambda: found.append(_mentions(str(d), "/work/x")), daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # blocked in open(exec.fifo): release it, then fail
        os.close(os.open(d / "exec.fifo", os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("_mentions opened the exec FIFO and blocked")
    assert found == [True]
    assert _mentions(str(d), "/elsewhere") is False
