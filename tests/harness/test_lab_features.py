"""Small harness features used by the lifecycle scenarios: ``fault.start listen``, the event
streams' re-subscription probe."""

from __future__ import annotations

import os
import socket

import pytest
from pydantic import ValidationError

from harness.observe.events import _connected_unix_socket
from harness.scenario import models as m


def test_listen_is_for_the_daemon_only():
    assert m.FaultDaemon(component="daemon", listen="activator").listen == "activator"
    assert m.FaultDaemon(component="daemon").listen == "socket"
    with pytest.raises(ValidationError, match="listen is for the daemon only"):
        m.FaultDaemon(component="runtime", listen="fd")
    with pytest.raises(ValidationError):
        m.FaultDaemon(component="daemon", listen="tcp")


def test_connected_unix_socket_probe(tmp_path):
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        # a listening socket is not a connection
        assert not _connected_unix_socket(os.getpid())
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect(path)
        conn, _ = srv.accept()
        assert _connected_unix_socket(os.getpid())
        cli.close()
        conn.close()
        assert not _connected_unix_socket(os.getpid())
    finally:
        srv.close()
    assert not _connected_unix_socket(2 ** 22 + 7)  # no such process
