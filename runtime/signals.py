"""Signal names and numbers: ``9``, ``"9"``, ``"KILL"``, ``"SIGKILL"``, ``"sigkill"`` -> 9.

What ``docker kill --signal``, ``docker stop`` (``StopSignal``), ``runc kill`` and the shim's
``kill`` accept (signal(7); the names of Python's :class:`signal.Signals`, with or without the
``SIG`` prefix, any case; numbers 1..64, the range of Linux signals up to SIGRTMAX).

:func:`parse` returns the number or raises :class:`ValueError` with a neutral message; each tier
wraps it in its own error and wording (dockerd's ``Invalid signal: X``, runc's ``unknown signal
"X"``...). :func:`name` is the inverse for messages. Standard library only; ``signal`` (which
imports ``enum``) is imported only when a name has to be looked up, so capsize-runc's
``kill 9`` pays nothing.
"""

from __future__ import annotations

#: The highest signal number Linux has (SIGRTMAX on x86_64 and aarch64).
MAX = 64


def parse(value) -> int:
    """The signal number for *value* (int, digits, or a name with or without ``SIG``, any case).

    Raises ValueError for a bool, a number outside 1..64, or a name that is not a signal.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a signal")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and value.isascii()):
        n = int(value)
        if 1 <= n <= MAX:
            return n
        raise ValueError(f"signal {n} is out of range 1..{MAX}")
    if isinstance(value, str) and value:
        import signal
        upper = value.upper()
        key = upper if upper.startswith("SIG") else "SIG" + upper
        try:
            return int(signal.Signals[key])
        except KeyError:
            pass
    raise ValueError(f"{value!r} is not a signal")


def name(number: int) -> str:
    """``SIGKILL`` for 9; ``SIG<n>`` for a number Python has no name for."""
    import signal
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"
