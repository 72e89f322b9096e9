"""The nearest valid word for a typo: `` (did you mean 'x'?)`` in the harness's error messages."""

from __future__ import annotations

import difflib


def nearest(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of *choices* (difflib ratio >= 0.6), or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
