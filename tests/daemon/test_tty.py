"""TTYs on capsized, driven the way a person drives them: the real docker CLIs (Debian's 20.10
and the newer one on PATH) on a pty of their own (harness.terminal: keys typed, the screen read
back), and the docker SDK. ``docker run -it busybox sh`` interactive, resize reaching the pty
(``stty size``), ctrl-p ctrl-q detaching and ``docker attach`` coming back, ``docker exec -it``,
``docker run -t`` (one raw stream, also in the logs), and ``docker stop`` of a TTY container."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.terminal import DETACH, Terminal
from tests.daemon.stack import DOCKER

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

NEW_CLI = shutil.which("docker")
CLIS = [DOCKER] + ([NEW_CLI] if NEW_CLI and os.path.realpath(NEW_CLI) != os.path.realpath(DOCKER) else [])
IDS = [os.path.basename(os.path.dirname(c)) + "-docker" for c in CLIS]


@pytest.mark.parametrize("binary", CLIS, ids=IDS)
def test_run_it_typed_resize_detach_attach_and_exec_it(stack, binary):
    name = "it" + str(CLIS.index(binary))
    with Terminal([binary, "run", "-it", "--name", name, "busybox", "sh"], env=stack.env(), rows=30, cols=100) as t:
        t.expect("# ")
        t.type("echo $((6*7)) $TERM\r")
        t.expect("42 xterm")
        t.type("stty size\r")
        t.expect("30 100")
        t.resize(41, 132)             # the CLI gets SIGWINCH and POSTs /containers/{id}/resize
        import time
        deadline = time.monotonic() + 10
        while "41 132" not in t.screen and time.monotonic() < deadline:
            t.type("stty size\r")
            try:
                t.expect("41 132", timeout=1)
            except TimeoutError:
                pass
        assert "41 132" in t.screen, t.screen
        t.type("tty\r")
        t.expect("/dev/pts/0")
        t.type(DETACH)
        assert t.wait(15) == 0
    assert stack.ok("inspect", "-f", "{{.State.Running}}", name) == "true"   # detached, not stopped
    with Terminal([binary, "exec", "-it", name, "sh"], env=stack.env(), rows=25, cols=90) as t:
        t.expect("# ")
        t.type("tty; stty size\r")
        t.expect("25 90")
        assert "/dev/pts/1" in t.screen
        t.type("exit 3\r")
        assert t.wait(15) == 3
    with Terminal([binary, "attach", "--detach-keys", "ctrl-x,x", name], env=stack.env()) as t:
        t.type("\r")
        t.expect("# ")
        t.type("echo still\r")
        t.expect("still")
        t.type(b"\x18x")
        # `docker attach` ends so on dockerd too (measured: scenario tty-attach-detach-keys)
        assert t.wait(15) == 1 and "read escape sequence" in t.screen, t.screen
    assert stack.ok("inspect", "-f", "{{.State.Running}}", name) == "true"
    with Terminal([binary, "attach", name], env=stack.env()) as t:
        t.type("\r")
        t.expect("# ")
        t.type("echo back; exit 5\r")
        t.expect("back")
        assert t.wait(15) == 5
    assert stack.ok("inspect", "-f", "{{.State.ExitCode}}", name) == "5"
    logs = stack.cli("logs", name)
    assert "42 xterm" in logs.stdout and "\r\n" in logs.stdout and logs.stderr == ""   # one raw stream
    stack.ok("rm", name)


def test_run_t_one_stream_and_stop_of_a_tty_container(stack):
    for runtime in ("capsize-runc", "runc", "crun"):   # the shim's low-level runtime, each
        r = stack.cli("run", "--rm", "-t", "--runtime", runtime, "busybox", "sh", "-c",
                      "echo out; echo err >&2; tty")
        assert r.returncode == 0 and r.stderr == "", (runtime, r.stderr)
        assert r.stdout.replace("\r\n", "\n") == "out\nerr\n/dev/pts/0\n", runtime
    stack.ok("run", "-d", "-t", "--name", "ttystop", "busybox", "sh")
    assert stack.ok("inspect", "-f", "{{.Config.Tty}} {{.State.Running}}", "ttystop") == "true true"
    stack.ok("stop", "-t", "1", "ttystop")     # sh as PID 1 ignores SIGTERM: SIGKILL after 1 s
    assert stack.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "ttystop") == "exited 137"
    stack.ok("rm", "ttystop")


def test_sdk_attach_exec_run_tty_and_resize(stack):
    client = stack.client()
    c = client.containers.run("busybox", ["sh", "-c", "while read l; do echo got:$l; done"], detach=True,
                              tty=True, stdin_open=True, name="sdktty")
    try:
        sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        raw = sock._sock
        raw.settimeout(10)
        raw.sendall(b"abc\n")
        seen = b""
        while b"got:abc" not in seen:
            chunk = raw.recv(4096)
            assert chunk, seen
            seen += chunk
        assert seen.startswith(b"abc")   # raw stream: the terminal's echo, no 8-byte frame header
        raw.close()
        res = c.exec_run(["sh", "-c", "tty; stty size"], tty=True)
        assert res.exit_code == 0 and b"/dev/pts/1" in res.output, res.output
        # TERM=xterm for a TTY exec only, as dockerd's CreateDaemonEnvironment (the container is -t)
        assert c.exec_run(["sh", "-c", "echo T=$TERM"]).output == b"T=\n"
        assert c.exec_run(["sh", "-c", "echo T=$TERM"], tty=True).output == b"T=xterm\r\n"
        c.resize(height=20, width=60)
        res = c.exec_run(["sh", "-c", "stty size < /dev/console"], tty=True)
        assert b"20 60" in res.output, res.output
        ex = client.api.exec_create(c.id, ["sh", "-c", "sleep 0.5; stty size"], tty=True)
        sock = client.api.exec_start(ex["Id"], socket=True, tty=True)
        client.api.exec_resize(ex["Id"], height=11, width=33)
        out = b""
        sock._sock.settimeout(10)
        while True:
            chunk = sock._sock.recv(4096)
            if not chunk:
                break
            out += chunk
        sock._sock.close()
        assert b"11 33" in out, out
        import docker
        with pytest.raises(docker.errors.APIError) as err:
            client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-xx"})
        assert err.value.status_code == 400 and "Invalid detach keys" in str(err.value)
    finally:
        c.remove(force=True)
