"""``python -m harness.engines.capsize_events --address SOCK``: capsize-runtimed's event stream
as JSON lines on stdout (every namespace), for the harness's runtime event collector. Exits
non-zero when the daemon is unreachable or goes away (the collector then re-subscribes)."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="capsize-events")
    p.add_argument("--address", required=True)
    a = p.parse_args(argv)
    from runtime.errors import CapsizeError
    from runtime.highlevel.client import RuntimeClient
    try:
        with RuntimeClient(a.address).subscribe() as events:
            for env in events:
                sys.stdout.write(json.dumps(env, sort_keys=True) + "\n")
                sys.stdout.flush()
    except (CapsizeError, OSError) as e:
        sys.stderr.write(f"capsize-events: {e}\n")
        return 6
    return 0


if __name__ == "__main__":
    sys.exit(main())
