"""Detach keys: the key sequence that ends an attach (or an attached exec) without stopping
anything, as dockerd's ``detachKeys`` (moby pkg/term ToBytes and its escape proxy).

A sequence is comma-separated keys, each a single character or ``ctrl-<x>`` where ``<x>`` is a
letter (ctrl-a = 1 ... ctrl-z = 26) or one of ``@ [ \\ ] ^ _`` (0, 27, 28, 29, 30, 31). The
default is ``ctrl-p,ctrl-q`` (16, 17). Given by the request (``detachKeys`` of
``POST /containers/{id}/attach``, ``DetachKeys`` of the exec config), else the default.

:class:`Scanner` watches the client's input: bytes that may begin the sequence are held back;
if the sequence completes, the attach detaches and those keys are never delivered; if it
breaks off, the held bytes are delivered, in order, as typed.

Errors: InvalidArgument (``Invalid detach keys (<keys>) provided``, 400, dockerd's text).
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

DEFAULT = "ctrl-p,ctrl-q"
_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(keys: str) -> bytes:
    """*keys* (see the module docstring; empty: the default) as bytes; InvalidArgument when bad."""
    keys = keys or DEFAULT
    out = bytearray()
    for key in keys.split(","):
        k = key.strip()
        if len(k) == 1:
            out.append(ord(k))
            continue
        if k.lower().startswith("ctrl-") and len(k) == 6:
            c = k[5]
            if c.isalpha() and c.isascii():
                out.append(ord(c.lower()) - ord("a") + 1)
                continue
            if c in _CTRL_SPECIAL:
                out.append(_CTRL_SPECIAL[c])
                continue
        raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    return bytes(out)


class Scanner:
    """Finds the detach sequence in a stream of input chunks (see the module docstring)."""

    def __init__(self, sequence: bytes):
        self.sequence = sequence
        self.held = b""   # a prefix of the sequence, typed but not delivered yet

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to deliver now, True when the sequence was completed: detach). Bytes that
        cannot begin the sequence pass in slices (``bytes.find``); only the rest is looked at one
        by one."""
        seq = self.sequence
        if not seq:
            return data, False
        first = seq[:1]
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if not self.held:
                j = data.find(first, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j
            b = data[i:i + 1]
            i += 1
            candidate = self.held + b
            if seq.startswith(candidate):
                if candidate == seq:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = first if b == first else b""
            if b != first:
                out += b
        return bytes(out), False
