"""Issue #20 for capsize-runtimed's HTTP API: hostile and malformed requests (hypothesis) are
answered with one of runtime/errors.py's classes, never a 500, and it keeps serving."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from runtime.errors import CLASSES
from tests.daemon.rawhttp import raw

pytestmark = pytest.mark.privileged

CODES = {cls.code for cls in CLASSES}
STATUSES = {cls.http_status for cls in CLASSES} | {200, 201, 204, 413, 431}
PATHS = ["/v1/namespaces/default/containers", "/v1/namespaces/default/tasks",
         "/v1/namespaces/default/tasks/nope/start", "/v1/namespaces/%2F/containers", "/v1/x/../../etc"]

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=12)
_body = st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode()),
                  st.integers(401, 50000).map(lambda n: b'{"id":' + b"[" * n + b"]" * n + b"}"))


def _sock(stack) -> str:
    return os.path.join(stack.state, "runtimed.sock")


def test_runtimed_refuses_hostile_requests_and_keeps_serving(stack):
    @settings(max_examples=120, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(PATHS), body=_body)
    def one(path, body):
        status, _, payload = raw(stack, "POST", path, body, {"Content-Type": "application/json"},
                                 sock=_sock(stack))
        assert status in STATUSES and status != 500, (status, payload[:200])
        if status >= 400:
            assert json.loads(payload)["code"] in CODES

    one()
    status, _, payload = raw(stack, "POST", PATHS[0], b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",
                             {"Content-Type": "application/json"}, sock=_sock(stack))
    assert status == 400 and b"exceeded max depth" in payload
    status, _, _ = raw(stack, "GET", "/v1/version", headers={"X-Big": "y" * (200 << 10)}, sock=_sock(stack))
    assert status == 431
    status, _, payload = raw(stack, "POST", PATHS[0], b"{}", {"Content-Length": str(128 << 20)}, sock=_sock(stack))
    assert status == 413, payload
    status, _, _ = raw(stack, "GET", "/v1/version", sock=_sock(stack))
    assert status == 200
    log = open(os.path.join(stack.logs, "runtimed.log"), errors="replace").read()
    assert '"internal error"' not in log
