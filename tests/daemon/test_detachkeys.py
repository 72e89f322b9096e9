"""Detach keys (runtime/daemon/detachkeys.py): dockerd's key syntax and the escape scanner."""

from __future__ import annotations

import pytest

from runtime.daemon.detachkeys import DEFAULT, Scanner, parse
from runtime.errors import InvalidArgument


def test_parse_as_dockerd():
    assert parse("") == parse(DEFAULT) == b"\x10\x11"
    assert parse("ctrl-x,x") == b"\x18x"
    assert parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes([0, 27, 28, 29, 30, 31])
    assert parse("a,ctrl-A") == b"a\x01"
    for bad in ("ctrl-xx", "ctrl-1", "ab", "ctrl-", ","):
        with pytest.raises(InvalidArgument, match=r"Invalid detach keys"):
            parse(bad)


def test_scanner_holds_a_prefix_and_detaches_only_on_the_whole_sequence():
    s = Scanner(b"\x10\x11")
    assert s.feed(b"ls\r") == (b"ls\r", False)
    assert s.feed(b"a\x10") == (b"a", False)          # ctrl-p held back
    assert s.feed(b"b") == (b"\x10b", False)          # broken off: delivered in order
    assert s.feed(b"\x10\x10") == (b"\x10", False)    # the second may begin the sequence
    assert s.feed(b"\x11rest") == (b"", True)         # completed across chunks: detach
    s = Scanner(b"\x18x")
    assert s.feed(b"echo\x18x") == (b"echo", True)
