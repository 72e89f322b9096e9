"""``StdinOnce`` on capsized, as measured on the private dockerd (harness.reference.docker) with
both docker CLIs (Debian's 20.10 and the newer one on PATH) and the docker SDK: a client whose
input ends closes the container's stdin (``docker run -i`` piped or at EOF, ``docker start -ai``
of a ``create -i`` container, an SDK attach socket half-closed), ctrl-D typed on ``run -it``
ends ``cat`` through the container's pty, and without ``StdinOnce`` the container's stdin stays
open after the attach's input ends. Docker's answers on this machine were the same for every
case asserted here (measured 2026-12-07)."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from harness.terminal import Terminal
from tests.daemon.test_exec import CLIS
from tests.daemon.test_tty import IDS

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def _run(stack, binary, data: bytes, *args, timeout=30):
    return subprocess.run([binary, *args], input=data, capture_output=True, timeout=timeout, env=stack.env())


@pytest.mark.parametrize("binary", CLIS, ids=IDS)
def test_input_at_eof_reaches_the_container(stack, binary):
    for data, args in [(b"hi\n", ()), (b"", ()), (b"hi\n", ("-a", "stdin", "-a", "stdout"))]:
        r = _run(stack, binary, data, "run", "-i", *args, "--rm", "busybox", "cat")
        assert (r.returncode, r.stdout, r.stderr) == (0, data, b""), (args, r)
    # -t with a pipe for stdin: the CLI refuses before asking the engine (as with Docker)
    r = _run(stack, binary, b"hi\n", "run", "-i", "-t", "--rm", "busybox", "cat")
    assert r.returncode == 1 and b"the input device is not a TTY" in r.stderr, r
    # create -i records StdinOnce; start -ai's input ending closes the container's stdin
    cid = subprocess.run([binary, "create", "-i", "busybox", "cat"], capture_output=True, text=True,
                         env=stack.env(), timeout=30).stdout.strip()
    assert json.loads(stack.ok("inspect", cid))[0]["Config"]["StdinOnce"] is True
    r = _run(stack, binary, b"again\n", "start", "-ai", cid)
    assert (r.returncode, r.stdout) == (0, b"again\n"), r
    assert stack.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 0"
    stack.ok("rm", cid)
    assert stack.ok("ps", "-aq") == ""


@pytest.mark.parametrize("binary", CLIS, ids=IDS)
def test_ctrl_d_on_a_tty_ends_cat(stack, binary):
    with Terminal([binary, "run", "-it", "--rm", "busybox", "cat"], env=stack.env()) as t:
        time.sleep(0.5)
        t.type("typed\r")
        t.expect("typed")
        t.type("\x04")                 # the container's pty turns ctrl-D into EOF for cat
        assert t.wait(15) == 0
    assert stack.ok("ps", "-aq") == ""


def _create_attached(cl, stdin_once: bool) -> str:
    api = cl.api   # the SDK has no stdin_once argument: POST /containers/create with the Engine API's fields
    body = {"Image": "busybox", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": stdin_once,
            "AttachStdin": True, "AttachStdout": True}
    return api._result(api._post_json(api._url("/containers/create"), data=body), True)["Id"]


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_sdk_attach_half_close(stack):
    cl = stack.client()
    cid = _create_attached(cl, stdin_once=True)
    s = cl.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    try:
        cl.api.start(cid)
        s._sock.sendall(b"via sdk\n")
        s._sock.shutdown(socket.SHUT_WR)     # the attach's input ends: with StdinOnce, cat sees EOF
        assert cl.api.wait(cid, timeout=15)["StatusCode"] == 0
        assert _read_all(s._sock) == b"\x01\x00\x00\x00\x00\x00\x00\x08via sdk\n"   # stdout frame, as dockerd
    finally:
        s._sock.close()
    # without StdinOnce the container's stdin stays open after the attach's input ends
    cid = _create_attached(cl, stdin_once=False)
    s = cl.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
    try:
        cl.api.start(cid)
        s._sock.sendall(b"x\n")
        s._sock.shutdown(socket.SHUT_WR)
        time.sleep(1)
        assert cl.api.inspect_container(cid)["State"]["Running"] is True
    finally:
        s._sock.close()
        cl.api.remove_container(cid, force=True)
