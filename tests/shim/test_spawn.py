"""How shims are spawned: the shim template (the default) and a fresh interpreter (exec)."""

from __future__ import annotations

import pytest

import os
import signal
import threading

from runtime.shim.template import socket_path
from tests.conftest import reap_children
from tests.shim.conftest import pid_alive, wait_gone

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def _templates() -> list[int]:
    """Live shim templates re-parented to this test process."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read().startswith(b"capsize-shim template"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == os.getpid():
            found.append(int(pid))
    return found


def _title(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().rstrip(b"\0").decode()
    with open(f"/proc/{pid}/comm") as f:
        return cmdline, f.read().strip()


def test_template_is_shared_and_leaves_when_idle(shims, event_sink, runc_bin):
    a = shims.start(["sleep", "100"], runtime=runc_bin)
    b = shims.start(["sleep", "100"], runtime=runc_bin)
    templates = _templates()
    assert len(templates) == 1
    tpath = socket_path("/run/capsize/s", event_sink.address)
    assert os.path.exists(tpath)
    for shim in (a, b):
        cmdline, comm = _title(shim.pid)
        assert comm == "capsize-shim"
        assert cmdline.startswith("capsize-shim serve ") and f"--id {shim.id}" in cmdline
        assert f"--namespace {shim.namespace}" in cmdline
        assert os.getsid(shim.pid) == shim.pid and os.getpgid(shim.pid) == shim.pid
    for shim in (a, b):
        shim.call("create")
        shim.call("start")
        shim.call("kill", signal=9)
        shim.call("wait")
        shim.call("delete")
        shim.call("shutdown")
        assert wait_gone(shim.pid)
    assert wait_gone(templates[0], 5)  # no shim left: the template goes too
    assert not os.path.exists(tpath) and not os.path.exists(tpath + ".lock")


def test_killing_the_template_harms_no_shim(shims, runc_bin):
    a = shims.start(["sleep", "100"], runtime=runc_bin)
    a.call("create")
    a.call("start")
    [template] = _templates()
    os.kill(template, signal.SIGKILL)
    assert wait_gone(template)
    assert a.call("state")["status"] == "running"
    b = shims.start(["sh", "-c", "exit 6"], runtime=runc_bin)  # a new template is made
    assert len(_templates()) == 1 and _templates()[0] != template
    b.call("create")
    b.call("start")
    assert b.call("wait")["exit_status"] == 6
    assert pid_alive(a.pid)


def test_concurrent_starts_make_one_template(shims, runc_bin):
    bundles = [shims.bundle(["sleep", "100"]) for _ in range(4)]
    results = [None] * 4

    def start(i):
        results[i] = shims.start_cli(*bundles[i], runc_bin)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    from tests.shim.conftest import Shim
    for (bundle, cid), p in zip(bundles, results):
        assert p.returncode == 0, p.stderr
        assert "warning" not in p.stderr
        shims.started.append(Shim(bundle, cid, "default", p.stdout.strip(), runc_bin))
    assert len(_templates()) == 1
    addresses = {s.address for s in shims.started}
    assert len(addresses) == 4


def test_exec_mode(shims, runc_bin):
    bundle, cid = shims.bundle(["sh", "-c", "exit 9"])
    p = shims.start_cli(bundle, cid, runc_bin, extra=["--spawn", "exec"])
    assert p.returncode == 0, p.stderr
    from tests.shim.conftest import Shim
    shim = Shim(bundle, cid, "default", p.stdout.strip(), runc_bin)
    shims.started.append(shim)
    assert _templates() == []
    cmdline, comm = _title(shim.pid)
    assert comm == "capsize-shim" and cmdline.startswith("capsize-shim serve ") and f"--id {cid}" in cmdline
    assert os.getsid(shim.pid) == shim.pid
    shim.call("create")
    shim.call("start")
    assert shim.call("wait")["exit_status"] == 9
    p = shims.start_cli(bundle, cid, runc_bin, extra=["--spawn", "sideways"])
    assert p.returncode == 0  # the shim serves already: its address, nothing started
    reap_children()


def test_bad_spawn_mode(shims, runc_bin):
    bundle, cid = shims.bundle(["true"])
    p = shims.start_cli(bundle, cid, runc_bin, extra=["--spawn", "sideways"])
    assert p.returncode == 2 and "--spawn" in p.stderr and p.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(bundle, "address"))
    assert not os.path.exists(os.path.join(bundle, "options.json"))


def test_unusable_template_falls_back_to_exec(shims, event_sink, runc_bin):
    tpath = socket_path("/run/capsize/s", event_sink.address)
    os.makedirs(os.path.join(tpath, "blocker"))  # a template cannot bind there
    try:
        bundle, cid = shims.bundle(["sh", "-c", "exit 2"])
        p = shims.start_cli(bundle, cid, runc_bin)
        assert p.returncode == 0 and "warning: no shim template" in p.stderr
        from tests.shim.conftest import Shim
        shim = Shim(bundle, cid, "default", p.stdout.strip(), runc_bin)
        shims.started.append(shim)
        shim.call("create")
        shim.call("start")
        assert shim.call("wait")["exit_status"] == 2
        assert _templates() == []
    finally:
        os.rmdir(os.path.join(tpath, "blocker"))
        os.rmdir(tpath)
        if os.path.exists(tpath + ".lock"):
            os.unlink(tpath + ".lock")
