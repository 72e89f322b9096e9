"""``python -m harness.engines.capsize_events --address SOCK [--after BOOT:SEQ]``: capsize-runtimed's
event stream as JSON lines on stdout (every namespace), for the harness's runtime event collector.

Without ``--after`` the stream starts now (live events only). With ``--after BOOT:SEQ`` (the
``boot_id`` and ``seq`` of the last envelope the collector saw before its stream was lost) it
first replays what the daemon still holds (``GET /v1/events?since=0``, runtime/highlevel/events.py)
and skips what was already seen: envelopes of the same daemon run with ``seq <= SEQ``. A daemon
that restarted meanwhile has a new ``boot_id``, so everything it published since it started —
recovered exits, cleaned-up shims, published before anyone could subscribe — is delivered.

Exits 6 when the daemon is unreachable or goes away (the collector then re-subscribes with the
cursor of the last line it read), 2 for a malformed ``--after``.
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_cursor(text: str) -> tuple[str, int]:
    """``"BOOT:SEQ"`` -> (boot_id, seq); raises ValueError."""
    boot, sep, seq = text.rpartition(":")
    if not sep or not boot or not seq.isdigit():
        raise ValueError(f"--after wants BOOT_ID:SEQ, not {text!r}")
    return boot, int(seq)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="capsize-events")
    p.add_argument("--address", required=True)
    p.add_argument("--after", default=None, help="BOOT_ID:SEQ of the last envelope already seen")
    a = p.parse_args(argv)
    try:
        after = parse_cursor(a.after) if a.after else None
    except ValueError as e:
        sys.stderr.write(f"capsize-events: {e}\n")
        return 2
    from runtime.errors import CapsizeError
    from runtime.highlevel.client import RuntimeClient
    try:
        with RuntimeClient(a.address).subscribe(since=0 if after else None) as events:
            for env in events:
                if after and env.get("boot_id") == after[0] and int(env.get("seq") or 0) <= after[1]:
                    continue
                sys.stdout.write(json.dumps(env, sort_keys=True) + "\n")
                sys.stdout.flush()
    except (CapsizeError, OSError) as e:
        sys.stderr.write(f"capsize-events: {e}\n")
        return 6
    return 0


if __name__ == "__main__":
    sys.exit(main())
