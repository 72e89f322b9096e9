"""Schemathesis over a daemon's unix socket, from the Engine API 1.41 document (moby's own).

:func:`fuzz` generates requests for every operation of the document (bodies, paths, queries,
headers; valid and invalid), sends each over the socket with a bounded timeout, and returns
what it saw: per operation the statuses, and the failures — a 5xx other than 501 (capsized's
"not implemented") and 503 (a peer down, never expected here), a request that timed out (a
hang), and for an implemented route (any status but 501) a response whose body is not of the
shapes the document gives for that status (schemathesis' ``response_schema_conformance``).

Operations that never end by design (``/events``, attach, wait, ``stats`` with ``stream``,
``logs`` with ``follow``) or reach the network (pull, push, build, ``/auth``, plugins) are
left out (:data:`SKIP`). The run is reproducible (hypothesis' derandomized generation: a fixed
seed) and bounded by ``examples`` per operation and a total of ``seconds``.
"""

from __future__ import annotations

import collections
import os
import time

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference", "engine-api-v1.41.yaml")

#: (method, path) of operations never sent: streams that do not end, network access
SKIP = {
    ("GET", "/events"), ("POST", "/containers/{id}/attach"), ("GET", "/containers/{id}/attach/ws"),
    ("POST", "/containers/{id}/wait"), ("GET", "/containers/{id}/stats"), ("GET", "/containers/{id}/logs"),
    ("POST", "/images/create"), ("POST", "/images/{name}/push"), ("POST", "/build"), ("POST", "/auth"),
    ("POST", "/plugins/pull"), ("POST", "/plugins/{name}/upgrade"), ("POST", "/session"),
    ("GET", "/images/search"), ("GET", "/distribution/{name}/json"), ("POST", "/exec/{id}/start"),
    ("GET", "/services/{id}/logs"), ("GET", "/tasks/{id}/logs"), ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
}
#: statuses that are failures whatever the route
BAD_STATUSES = {500, 502, 504}


def spec_path() -> str:
    return os.path.abspath(os.environ.get("CAPSIZE_ENGINE_API_SPEC", SPEC))


def fuzz(sock: str, examples: int = 3, seconds: float = 50.0, timeout: float = 15.0,
         seed_salt: str = "") -> dict:
    """Run the fuzzer against the daemon at unix socket *sock*; returns ``{"sent", "statuses":
    Counter, "by_operation": {label: Counter}, "failures": [str], "skipped": [label], "seconds"}``."""
    import requests
    import schemathesis
    from docker.transport import UnixHTTPAdapter
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.specs.openapi.checks import response_schema_conformance

    # the document's binary bodies (image load, archive upload, build contexts) as raw bytes
    schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
    schema = schemathesis.openapi.from_path(spec_path())
    session = requests.Session()
    session.mount("http://localhost", UnixHTTPAdapter("http+unix://" + sock, timeout=timeout))
    base = "http://localhost/v1.41"
    out = {"sent": 0, "statuses": collections.Counter(), "by_operation": {}, "failures": [], "skipped": []}
    t0 = time.monotonic()
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op is None:
            continue
        if (op.method.upper(), op.path) in SKIP:
            out["skipped"].append(f"{op.method.upper()} {op.path}")
            continue
        ops.append(op)
    ops.sort(key=lambda o: (o.path, o.method))
    for op in ops:
        if time.monotonic() - t0 > seconds:
            out["skipped"].append(f"{op.method.upper()} {op.path} (time budget)")
            continue
        label = f"{op.method.upper()} {op.path}"
        seen = out["by_operation"].setdefault(label, collections.Counter())

        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def one(case):
            if time.monotonic() - t0 > seconds:
                return
            try:
                response = case.call(base_url=base, session=session, timeout=timeout)
            except requests.Timeout:
                out["failures"].append(f"{label}: no answer within {timeout}s (hang)")
                return
            except requests.ConnectionError as e:
                out["failures"].append(f"{label}: connection error {e}")
                return
            out["sent"] += 1
            status = response.status_code
            seen[status] += 1
            out["statuses"][status] += 1
            if status in BAD_STATUSES:
                out["failures"].append(f"{label}: {status} {response.text[:200]!r} for {case.as_curl_command()[:300]}")
                return
            if status != 501 and response.headers.get("Content-Type", "").startswith("application/json"):
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                except AssertionError as e:   # schemathesis' FailureGroup is an AssertionError
                    out["failures"].append(f"{label}: {status} outside the document: {str(e)[:300]}")

        try:
            one()
        except Exception as e:  # noqa: BLE001 - the generator cannot make this operation's requests
            if type(e).__module__.startswith("schemathesis"):
                out["skipped"].append(f"{label} (not generated: {str(e).splitlines()[0][:120]})")
            else:
                raise
    out["seconds"] = round(time.monotonic() - t0, 1)
    session.close()
    return out
