"""harness.terminal (a program on a pty of its own) and the ``terminal`` action's parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.terminal import Terminal


def test_a_program_on_its_own_pty_typed_into_resized_and_read_back():
    with Terminal(["sh"], env={"PATH": "/usr/bin:/bin", "PS1": "$ "}, rows=20, cols=50) as t:
        t.type("tty; stty size\r")
        t.expect("20 50")
        assert "/dev/pts/" in t.screen
        t.resize(31, 77)        # the window changed: the terminal's size follows (SIGWINCH to sh)
        t.type("stty size\r")
        t.expect("31 77")
        with pytest.raises(TimeoutError) as err:
            t.expect("never printed", timeout=0.3)
        assert "31 77" in str(err.value)   # the error shows the screen
        t.type("echo $((40+2)); exit 4\r")
        assert t.wait(10) == 4
        assert "42" in t.screen and "\x1b" not in t.screen and "\r" not in t.screen


def test_terminal_interactions_are_exactly_one_thing():
    from harness.verbs.terminal import Interaction, TerminalSession
    assert Interaction(type="ls\r").type == "ls\r"
    assert Interaction(resize=[40, 100]).resize == (40, 100)
    for bad in ({"type": "a", "expect": "b"}, {}, {"detach": False}):
        with pytest.raises(ValidationError):
            Interaction(**bad)
    s = TerminalSession(command="docker run -it --name x busybox sh", script=[{"expect": "# "}, {"detach": True}])
    assert s.command[:2] == ["docker", "run"] and s.rows == 24
    with pytest.raises(ValidationError):
        TerminalSession(command="ls -l")   # the docker CLI only, as for `cli`
