"""The checks of issue #21 on both engines: container.exit, process.same, runtime.task, orphans.none
with zombie ages, and ids that survive name reuse; each must pass when it should and FAIL on a
crafted bad case (a check that cannot fail proves nothing)."""

from __future__ import annotations

import pytest

from harness.engines import engine_class
from tests.harness.conftest import by_id, engine_params, run_text

ENGINES = engine_params()

SCENARIO = """\
name: lifecycle-checks
engines: [capsize, docker]
options: {live_restore: true}
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
    id: started
  - container.run: {name: quick, command: [sh, -c, "exit 3"]}
steps:
  - wait: {for: {container.state: {name: quick, status: exited}}, timeout: 10s}
  - fault.kill: {component: daemon}
    id: daemon-killed
  - fault.start: {component: daemon}
    id: daemon-back
  - container.run: {name: zomb, command: [sh, -c, "sleep 0.1 & exec sleep 1000"]}
  - sleep: 0.4s
    id: zombie-made
  - container.rm: {name: web, force: true}
  - container.run: {name: web, command: [sleep, "1000"]}
    id: web-again
teardown:
  - container.rm: {name: web, force: true}
  - container.rm: {name: quick, force: true}
  - container.rm: {name: zomb, force: true}
checks:
  - {id: exit-real, container.exit: {name: quick, provenance: real, exit_code: 3, no_error: true}}
  - {id: exit-bad-provenance, container.exit: {name: quick, provenance: unknown}}
  - {id: exit-bad-code, container.exit: {name: quick, exit_code: 0}}
  - {id: exit-not-exited, container.exit: {name: web}, after: web-again}
  - {id: same-init, process.same: {container: web, since: started}, after: daemon-back}
  - {id: same-shim, process.same: {container: web, role: shim, since: started}, after: daemon-back}
  - {id: same-bad, process.same: {container: web, since: started}, after: web-again}
  - {id: task-daemon-down, runtime.task: {container: web, status: running}, after: daemon-killed}
  - {id: task-bad, runtime.task: {container: web, status: stopped}, after: daemon-killed}
  - {id: task-quick-gone, runtime.task: {container: quick, status: absent}}
  - {id: orphans-ok, orphans.none: {within: 3s}, after: daemon-back}
  - {id: zombie-too-old, orphans.none: {zombie_max_age: 300ms, parent_role: container}, after: zombie-made}
  - {id: zombie-other-parent, orphans.none: {zombie_max_age: 10s, parent_role: shim}, after: zombie-made}
  - {id: order-both-ids, events.order: {container: web, source: daemon}}
  - {id: cleanup-ok, cleanup.complete: {}}
"""

EXPECTED = {
    "exit-real": "pass", "exit-bad-provenance": "fail", "exit-bad-code": "fail", "exit-not-exited": "fail",
    "same-init": "pass", "same-shim": "pass", "same-bad": "fail",
    "task-daemon-down": "pass", "task-bad": "fail", "task-quick-gone": "pass",
    "orphans-ok": "pass", "zombie-too-old": "fail", "zombie-other-parent": "pass",
    "order-both-ids": "pass", "cleanup-ok": "pass",
}


@pytest.mark.privileged
@pytest.mark.parametrize("engine", ENGINES)
def test_lifecycle_checks_pass_and_fail(tmp_path, engine):
    entry = run_text(tmp_path, SCENARIO, engine=engine)
    failed = [s for s in entry["steps"] if s.get("status") == "failed"]
    assert not failed, failed
    c = by_id(entry)
    got = {k: v["status"] for k, v in c.items()}
    assert got == EXPECTED, {k: (v["status"], v["reason"], v["seen"]) for k, v in c.items() if got[k] != EXPECTED[k]}
    assert c["exit-real"]["seen"]["provenance"] == "real"
    assert "provenance real, not unknown" in c["exit-bad-provenance"]["reason"]
    assert "has not exited" in c["exit-not-exited"]["reason"]
    assert "a restart, not an adoption" in c["same-bad"]["reason"]
    # the zombie is reported with its parent and age, and was waited for past the limit
    zombies = c["zombie-too-old"]["evidence"][0]["zombies"]
    assert zombies and zombies[0]["parent_role"] == "container" and zombies[0]["zombie_ms"] >= 300, zombies
    # the old `web` id stayed tracked: events.order covered both ids, cleanup.complete both
    old, new = entry["retired_containers"]["web"][0], entry["containers"]["web"]
    assert old != new
    assert set(c["order-both-ids"]["seen"]) == {f"daemon {old[:12]}", f"daemon {new[:12]}"}


LEFT_RUNNING = """\
name: left-running
engines: [capsize]
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
checks:
  - {id: cleanup-bad, cleanup.complete: {}}
  - {id: cleanup-ignoring-sockets, cleanup.complete: {ignore: [process, mount, cgroup, netns, state]}}
"""


@pytest.mark.privileged
@pytest.mark.skipif(engine_class("capsize").unavailable(None) is not None, reason="capsize engine unavailable")
def test_capsize_shim_socket_is_a_leftover(tmp_path):
    """A container left running leaves its shim's socket in /run/capsize/s: cleanup.complete sees
    it (a socket kind on capsize as on Docker), and the engine's removal still removes it."""
    import os
    c = by_id(run_text(tmp_path, LEFT_RUNNING, engine="capsize"))
    assert c["cleanup-bad"]["status"] == "fail"
    socks = c["cleanup-bad"]["seen"]["socket"]
    assert socks and socks[0].startswith("/run/capsize/s/"), c["cleanup-bad"]["seen"]
    assert c["cleanup-ignoring-sockets"]["status"] == "fail"   # the socket alone fails it
    assert not os.path.lexists(socks[0].split(" ")[0])


SHIM_KILLED = """\
name: shim-killed-provenance
engines: [capsize, docker]
setup:
  - container.run: {name: web, command: [sleep, "1000"]}
steps:
  - fault.kill: {component: shim, container: web}
  - wait: {for: {container.state: {name: web, status: exited}}, timeout: 10s}
    id: exited
teardown:
  - container.rm: {name: web, force: true}
checks:
  - {id: cleanup-kill, container.exit: {name: web, provenance: cleanup-kill, exit_code: 137}, after: exited}
  - {id: claimed-real, container.exit: {name: web, provenance: real}, after: exited}
  - {id: task-gone, runtime.task: {container: web, status: absent, within: 5s}, after: exited}
"""


@pytest.mark.privileged
@pytest.mark.parametrize("engine", ENGINES)
def test_made_up_exit_is_told_apart(tmp_path, engine):
    """The shim is SIGKILLed with its init alive: the runtime's clean-up kills the init. capsize
    labels that 137 (cleanup-kill), so a check claiming a real exit FAILS; Docker does not label it
    (containerd publishes the clean-up's exit as an ordinary one): cleanup-kill is n/a there, and
    dockerd's die (255) disagreeing with its inspect (137) fails container.exit."""
    c = by_id(run_text(tmp_path, SHIM_KILLED, engine=engine))
    got = {k: v["status"] for k, v in c.items()}
    if engine == "capsize":
        assert got == {"cleanup-kill": "pass", "claimed-real": "fail", "task-gone": "pass"}, c
        assert "provenance cleanup-kill, not real" in c["claimed-real"]["reason"]
        assert c["cleanup-kill"]["seen"]["die_exit_code_source"] == "cleanup-kill"
        assert c["cleanup-kill"]["seen"]["error"].startswith("exit status 137 from the clean-up")
    else:
        assert got["task-gone"] == "pass", c
        # dockerd's die says 255 while inspect says 137 (docker-baseline.md): that disagreement fails
        if c["cleanup-kill"]["seen"]["die_exit_code"] not in (None, c["cleanup-kill"]["seen"]["exit_code"]):
            assert got["cleanup-kill"] == got["claimed-real"] == "fail", c
            assert "is not inspect's ExitCode" in c["claimed-real"]["reason"]
        else:
            assert got["cleanup-kill"] == "n/a" and "looks like a real exit" in c["cleanup-kill"]["reason"], c
