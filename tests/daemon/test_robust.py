"""Issue #20: no request stalls capsized, bad input is refused at the door with dockerd's words.

* A create with 100,000 ``Env`` entries (about 1 MB) is answered in well under the old >100 s,
  and ``/_ping`` keeps answering meanwhile (the merge was quadratic, on the event loop).
* Deeply nested JSON is a 400 (Go's ``exceeded max depth``), not a 500 ``maximum recursion depth``.
* Values dockerd refuses at create (relative WorkingDir, Memory below 6 MB, ...) are a 400 at
  create with dockerd 20.10's texts (measured against the private dockerd), and nothing is made.
* Limits: a body past 16 MiB is a 413, a header past 1 MiB Go's 431.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from runtime import jsonfast
from runtime.daemon.api import MAX_JSON_BODY
from tests.daemon.rawhttp import raw

pytestmark = pytest.mark.privileged

CREATE = "/v1.41/containers/create"
JSON = {"Content-Type": "application/json"}


def _create(stack, body, timeout: float = 30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, payload = raw(stack, "POST", CREATE, data, JSON, timeout=timeout)
    return status, json.loads(payload) if payload.strip() else None


def _ping_seconds(stack) -> float:
    t0 = time.monotonic()
    status, _, body = raw(stack, "GET", "/_ping", timeout=30)
    assert (status, body) == (200, b"OK")
    return time.monotonic() - t0


def test_huge_env_is_linear_and_does_not_stall_the_daemon(stack):
    body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                       "Env": [f"V{i}=x" for i in range(100000)] + ["V7=last"]}).encode()
    out = {}

    def create():
        t0 = time.monotonic()
        out["answer"] = _create(stack, body, timeout=60)
        out["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=create)
    t.start()
    pings = []
    while t.is_alive():
        pings.append(_ping_seconds(stack))
        time.sleep(0.05)
    t.join()
    status, answer = out["answer"]
    assert status == 201, answer
    assert out["seconds"] < 10, out        # quadratic: > 100 s
    assert max(pings) < 1.0, pings         # the event loop was never held
    env = stack.client().api.inspect_container(answer["Id"])["Config"]["Env"]
    assert len([e for e in env if e.startswith("V")]) == 100000   # V0..V99999, V7 once
    assert "V7=last" in env and "V7=x" not in env and env.index("V7=last") == len(env) - 1


@pytest.mark.parametrize("depth", [5000, 100000])
def test_deep_json_is_a_400(stack, depth):
    body = b'{"Image":"busybox","Cmd":["true"],"X":' + b"[" * depth + b"]" * depth + b"}"
    before = stack.ok("ps", "-aq")
    status, answer = _create(stack, body)
    assert (status, answer) == (400, {"message": "invalid character '[' exceeded max depth"})
    assert stack.ok("ps", "-aq") == before
    assert _ping_seconds(stack) < 1.0


def test_nesting_within_the_bound_is_accepted(stack):
    depth = jsonfast.MAX_DEPTH - 2
    body = b'{"Image":"busybox","Cmd":["true"],"X":' + b"[" * depth + b"]" * depth + b"}"
    status, answer = _create(stack, body)
    assert status == 201, answer


def test_a_body_past_the_bound_is_a_413(stack):
    status, _, payload = raw(stack, "POST", CREATE, b"{}", {**JSON, "Content-Length": str(MAX_JSON_BODY + 1)})
    assert status == 413
    assert "larger than the limit" in json.loads(payload)["message"]
    big = b'{"Image":"busybox","Env":["' + b"x" * (MAX_JSON_BODY + 10) + b'"]}'
    status, _, payload = raw(stack, "POST", CREATE, big, JSON, timeout=60)
    assert status == 413, payload[:200]
    assert _ping_seconds(stack) < 1.0


def test_headers_are_bounded_with_go_s_431(stack):
    status, _, body = raw(stack, "GET", "/_ping", headers={"X-Big": "y" * (100 << 10)})
    assert (status, body) == (200, b"OK")     # a large header within Go's 1 MiB is fine
    status, hdrs, body = raw(stack, "GET", "/_ping", headers={"X-Big": "y" * (2 << 20)})
    assert status == 431 and body == b"431 Request Header Fields Too Large"
    status, _, body = raw(stack, "GET", "/_ping", headers={f"X-H{i}": "v" for i in range(1000)})
    assert status == 431
    assert _ping_seconds(stack) < 1.0
    log = open(f"{stack.logs}/capsized.out", errors="replace").read()
    assert "Traceback" not in log


#: (HostConfig or Config fields, dockerd 20.10's answer: all 400 at create)
REFUSED = [
    ({"WorkingDir": "tmp"}, "the working directory 'tmp' is invalid, it needs to be an absolute path"),
    ({"HostConfig": {"Memory": 1}}, "Minimum memory limit allowed is 6MB"),
    ({"HostConfig": {"MemoryReservation": 1}}, "Minimum memory reservation allowed is 6MB"),
    ({"HostConfig": {"Memory": 10000000, "MemorySwap": 7000000}},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"HostConfig": {"MemorySwap": 7000000}},
     "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"HostConfig": {"MemorySwappiness": 200}}, "Invalid value: 200, valid memory swappiness range is 0-100"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "invalid restart policy 'sometimes'"),
    ({"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}},
     "maximum retry count cannot be negative"),
    ({"HostConfig": {"CapAdd": ["FOO"]}}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    ({"HostConfig": {"CapDrop": ["CAP_BAR"]}}, 'invalid CapDrop: unknown capability: "CAP_BAR"'),
    ({"HostConfig": {"Ulimits": [{"Name": "foo", "Soft": 1, "Hard": 2}]}}, "invalid ulimit type: foo"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 2}]}},
     "ulimit soft limit must be less than or equal to hard limit: 10 > 2"),
    ({"HostConfig": {"Mounts": [{"Type": "nfs", "Target": "/x"}]}},
     'invalid mount config for type "nfs": mount type unknown'),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "x"}]}},
     "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Target": "/x"}]}},
     'invalid mount config for type "bind": field Source must not be empty'),
    ({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/x"}, {"Type": "tmpfs", "Target": "/x"}]}},
     "Duplicate mount point: /x"),
    ({"HostConfig": {"CpuQuota": 10}}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"HostConfig": {"OomScoreAdj": 5000}}, "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
    ({"HostConfig": {"ShmSize": -1}}, "SHM size can not be less than 0"),
    ({"StopSignal": "SIGFOO"}, "Invalid signal: SIGFOO"),
]


@pytest.mark.parametrize("fields,message", REFUSED, ids=[m[:40] for _, m in REFUSED])
def test_invalid_settings_are_refused_at_create_with_dockerd_s_words(stack, fields, message):
    before = stack.ok("ps", "-aq")
    status, answer = _create(stack, {"Image": "busybox", "Cmd": ["true"], **fields})
    assert (status, answer) == (400, {"message": message})
    assert stack.ok("ps", "-aq") == before


def test_nano_cpus_range_names_this_machine_s_cpus(stack):
    import os
    n = os.cpu_count()
    status, answer = _create(stack, {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NanoCpus": -1}})
    assert (status, answer["message"]) == (400, f"Range of CPUs is from 0.01 to {n:.2f}, as there are only "
                                                f"{n} CPUs available")


def test_valid_settings_still_run(stack):
    out = stack.ok("run", "--rm", "-w", "/tmp", "--memory", "16m", "--cap-add", "net_admin", "--ulimit",
                   "nofile=100:200", "busybox", "sh", "-c", "pwd; ulimit -n")
    assert out.split() == ["/tmp", "100"]
