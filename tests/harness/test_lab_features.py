"""Small harness features used by the lifecycle scenarios: ``fault.start listen``, the event
streams' re-subscription probe."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from harness.observe.events import _connected_unix_socket
from harness.verbs.faults import FaultDaemon


def test_listen_is_for_the_daemon_only():
    assert FaultDaemon(component="daemon", listen="activator").listen == "activator"
    assert FaultDaemon(component="daemon").listen == "socket"
    with pytest.raises(ValidationError, match="listen is for the daemon only"):
        FaultDaemon(component="runtime", listen="fd")
    with pytest.raises(ValidationError):
        FaultDaemon(component="daemon", listen="tcp")


_HOLDER = """
import socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
print("listening", flush=True)
sys.stdin.readline()
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.connect(path)
conn, _ = srv.accept()
print("connected", flush=True)
sys.stdin.readline()
cli.close()
conn.close()
print("closed", flush=True)
sys.stdin.readline()
"""


def test_connected_unix_socket_probe(tmp_path):
    """Probed on a fresh interpreter of its own (the test process itself may hold connections of
    earlier tests): a listening socket is not a connection, an accepted pair is, closed it is not."""
    import subprocess
    import sys
    path = str(tmp_path / "s.sock")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "listening"
        assert not _connected_unix_socket(holder.pid)
        holder.stdin.write("\n"); holder.stdin.flush()
        assert holder.stdout.readline().strip() == "connected"
        assert _connected_unix_socket(holder.pid)
        holder.stdin.write("\n"); holder.stdin.flush()
        assert holder.stdout.readline().strip() == "closed"
        assert not _connected_unix_socket(holder.pid)
        holder.stdin.write("\n"); holder.stdin.flush()
        assert holder.wait(10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not _connected_unix_socket(2 ** 22 + 7)  # no such process


def test_run_directories_are_claimed_by_mkdir(tmp_path):
    """Runs started in the same second into the same --out get distinct directories, never a shared one."""
    from harness.journal import new_run_dir
    for attempt in range(5):  # three calls within one second (a tick between them: again)
        base = str(tmp_path / f"runs{attempt}")
        made = [new_run_dir(base, "seed 1/process tree") for _ in range(3)]
        if len({os.path.basename(d)[:15] for d in made}) == 1:
            break
    assert len(set(made)) == 3 and all(os.path.isdir(d) for d in made)
    names = sorted(os.path.basename(d) for d in made)
    assert names[0].endswith("-seed-1-process-tree") and {n[-2:] for n in names[1:]} == {"-2", "-3"}
