"""Issue #20's proof: schemathesis drives a private capsized with the Engine API 1.41 document.

Bounded (``CAPSIZE_FUZZ_EXAMPLES`` per operation, default 25; ``CAPSIZE_FUZZ_SECONDS``, default
40) and reproducible (a fixed seed); ``make fuzz`` runs the same test longer. Asserts: no 5xx
but 501, no response of an implemented route outside the document's shapes, no request without
an answer within 15 s, the daemon healthy afterwards (``docker ps``, ``docker run --rm busybox
true``), no ``internal error`` in its log, and (the suite's leak check, after the stack's close)
nothing left behind.
"""

from __future__ import annotations

import os

import pytest

from tests.daemon import apifuzz
from tests.daemon.stack import ping

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

EXAMPLES = int(os.environ.get("CAPSIZE_FUZZ_EXAMPLES", "25"))
SECONDS = float(os.environ.get("CAPSIZE_FUZZ_SECONDS", "40"))


@pytest.mark.skipif(not os.path.exists(apifuzz.spec_path()), reason="the Engine API document is not beside the repo")
def test_schemathesis_finds_no_500_no_hang_and_leaves_the_daemon_healthy(fresh):
    result = apifuzz.fuzz(fresh.sock, examples=EXAMPLES, seconds=SECONDS)
    print(f"\nfuzz: {result['sent']} requests in {result['seconds']} s, statuses {dict(result['statuses'])}, "
          f"{len(result['by_operation'])} operations, {len(result['skipped'])} skipped")
    assert not result["failures"], "\n".join(result["failures"][:30])
    assert result["sent"] >= 5 * len(result["by_operation"]) // 2
    assert len(result["by_operation"]) >= 60          # the document's operations, less the skipped ones
    assert set(result["statuses"]) - {501} & {200, 201, 204, 400, 404}   # implemented routes answered
    assert ping(fresh.sock, timeout=2)
    fresh.ok("ps", "-a")
    fresh.ok("run", "--rm", "busybox", "true")
    log = open(os.path.join(fresh.logs, "capsized.log"), errors="replace").read()
    assert '"internal error"' not in log
