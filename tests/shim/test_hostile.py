"""Issue #20: hostile and malformed clients of one shim (hypothesis-generated JSON lines) get
error replies, never stop it serving others and never delay its exit report.

Generated: arbitrary bytes, arbitrary JSON values (objects with and without ``method``, ``id``
and ``params`` of every type), nesting far past :data:`runtime.jsonfast.MAX_DEPTH`, oversized
lines, methods that do not exist; only methods that change nothing (``connect``, ``state``,
``pids``, unknown ones) are sent with real names, so that the container's life is its own.
Meanwhile a stalled client holds a half-written line and another never reads its replies.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from runtime.errors import CLASSES
from tests.shim.test_api import _raw

pytestmark = pytest.mark.privileged

CODES = {cls.code for cls in CLASSES}
SAFE_METHODS = ["connect", "state", "pids", "frobnicate", "", "CONNECT"]

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)
_request = st.fixed_dictionaries({"method": st.sampled_from(SAFE_METHODS)},
                                 optional={"id": _json, "params": _json})
_deep = st.integers(min_value=300, max_value=20000).map(lambda n: ('{"id":1,"method":"state","params":' + "[" * n
                                                                    + "]" * n + "}").encode())
_line = st.one_of(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
                  _json.map(lambda v: json.dumps(v).encode()),
                  _request.map(lambda v: json.dumps(v).encode()), _deep)


def test_hostile_clients_do_not_stop_the_shim_nor_delay_its_exit(shims, runc_bin):
    shim = shims.start(["sh", "-c", "sleep 8; exit 3"], runtime=runc_bin)
    shim.call("create")
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)   # half a line, then silence
    stalled.connect(shim.address[len("unix://"):])
    stalled.sendall(b'{"id":1,"method":"sta')
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)      # asks a lot, never reads
    deaf.connect(shim.address[len("unix://"):])
    deaf.setblocking(False)
    try:
        for _ in range(2000):
            deaf.send(b'{"id":1,"method":"state"}\n' * 50)
    except BlockingIOError:
        pass
    waiter = shim.new_client(timeout=30)
    t0 = time.monotonic()
    shim.call("start")
    sent = 0

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(lines=st.lists(_line, min_size=1, max_size=5))
    def hostile(lines):
        nonlocal sent
        replies = _raw(shim, b"\n".join(lines) + b"\n", timeout=10)
        sent += len(lines)
        assert len(replies) == len([ln for ln in lines if ln.strip()])
        for r in replies:
            assert set(r) <= {"id", "result", "error"}
            if "error" in r:
                assert r["error"]["code"] in CODES, r

    hostile()
    fuzzed = time.monotonic() - t0
    assert shim.call("state")["pid"] > 0
    result = waiter.call("wait")
    elapsed = time.monotonic() - t0
    assert result["exit_status"] == 3, result
    assert elapsed < max(8, fuzzed) + 2.0, (elapsed, fuzzed)   # the exit report was not held up
    assert sent >= 150
    stalled.close()
    deaf.close()
