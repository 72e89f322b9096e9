"""The harness's capsize-runtimed event follower resumes after a cursor (harness/engines/capsize_events.py).

A stream lost while the runtime daemon restarts must not lose what the new daemon published
before the harness re-subscribed (seed 3: the recovered ``/tasks/exit``), nor repeat what it
already saw from the same daemon run.
"""

from __future__ import annotations

import pytest

import json
import selectors
import subprocess
import sys
import time

from tests.highlevel.conftest import busybox_image_tar, daemon, runtimed  # noqa: F401 - fixtures


def _follow(address: str, after: str | None, want: int, timeout: float = 10.0) -> list[dict]:
    """Run the follower; return its first *want* envelopes (fewer if it goes quiet for 1 s)."""
    argv = [sys.executable, "-m", "harness.engines.capsize_events", "--address", address]
    if after:
        argv += ["--after", after]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    got, buf = [], b""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                break
            chunk = p.stdout.read1(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            got += [json.loads(line) for line in lines if line.strip()]
    finally:
        sel.close()
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    return got


@pytest.mark.privileged
def test_follower_replays_after_cursor_and_across_a_restart(daemon):  # noqa: F811 - fixture
    rt = daemon.client()
    address = daemon.client().address
    rt.create_container("a", "busybox", args=["true"])
    rt.update_container("a", labels={"k": "v"})
    rt.delete_container("a")
    history = _follow(address, "none:0", want=50, timeout=5)  # an unknown boot: everything held
    topics = [e["topic"] for e in history]
    assert topics[-3:] == ["/containers/create", "/containers/update", "/containers/delete"]
    create = history[-3]
    cursor = f"{create['boot_id']}:{create['seq']}"

    after = _follow(address, cursor, want=50, timeout=5)
    assert [e["topic"] for e in after] == ["/containers/update", "/containers/delete"], \
        "same daemon run: only what came after the cursor"

    daemon.stop()
    daemon.start()
    rt = daemon.client()
    rt.create_container("b", "busybox", args=["true"])
    rt.delete_container("b")
    replay = _follow(address, cursor, want=50, timeout=5)
    assert replay and all(e["boot_id"] != create["boot_id"] for e in replay), \
        "a new daemon run: nothing of the old run is repeated"
    assert [e["seq"] for e in replay] == list(range(1, len(replay) + 1)), "the new run from its first event"
    assert [e["topic"] for e in replay][-2:] == ["/containers/create", "/containers/delete"]

    live = _follow(address, None, want=1, timeout=1.5)
    assert live == [], "without a cursor the stream starts now: no replay"


def test_follower_refuses_a_malformed_cursor():
    r = subprocess.run([sys.executable, "-m", "harness.engines.capsize_events", "--address", "/nonexistent",
                        "--after", "no-seq-here"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == "capsize-events: --after wants BOOT_ID:SEQ, not 'no-seq-here'"
