"""Conformance pass: the same Engine API requests to capsized and to a private dockerd, compared.

For each request of :data:`REQUESTS` (the endpoints capsized serves, valid and invalid), both
answers are reduced to ``(status code, shape)`` where a shape keeps a JSON body's keys and the
types of their values (lists by their first item), and the two are compared. Prints one line
per request (``same`` or the difference) and a summary; exits 0. Used by
tests/daemon/test_conformance.py, which fails on a status-code difference.

    python -m benchmarks.daemon_conformance [--workdir DIR]

Needs root, Debian's dockerd/containerd (scripts/setup.sh) and capsize installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

#: (label, method, path, JSON body or None). ``{t}`` in a path is replaced by a time just before the run.
REQUESTS = [
    ("ping", "GET", "/_ping", None),
    ("version", "GET", "/version", None),
    ("info", "GET", "/info", None),
    ("list all", "GET", "/containers/json?all=1", None),
    ("create", "POST", "/containers/create?name=cf1", {"Image": "busybox:latest", "Cmd": ["sleep", "1000"]}),
    ("create: name in use", "POST", "/containers/create?name=cf1", {"Image": "busybox:latest", "Cmd": ["true"]}),
    ("create: invalid name", "POST", "/containers/create?name=bad%20name", {"Image": "busybox:latest", "Cmd": ["true"]}),
    ("create: unknown image", "POST", "/containers/create", {"Image": "nosuch:image", "Cmd": ["true"]}),
    ("create: malformed JSON", "POST", "/containers/create", b"{nope"),
    ("inspect created", "GET", "/containers/cf1/json", None),
    ("start", "POST", "/containers/cf1/start", None),
    ("start again", "POST", "/containers/cf1/start", None),
    ("list running", "GET", "/containers/json", None),
    ("inspect running", "GET", "/containers/cf1/json", None),
    ("pause", "POST", "/containers/cf1/pause", None),
    ("pause again", "POST", "/containers/cf1/pause", None),
    ("unpause", "POST", "/containers/cf1/unpause", None),
    ("unpause again", "POST", "/containers/cf1/unpause", None),
    ("top", "GET", "/containers/cf1/top", None),
    ("rename", "POST", "/containers/cf1/rename?name=cf2", None),
    ("inspect old name", "GET", "/containers/cf1/json", None),
    ("kill: bad signal", "POST", "/containers/cf2/kill?signal=BOGUS", None),
    ("remove running", "DELETE", "/containers/cf2", None),
    ("stop", "POST", "/containers/cf2/stop?t=0", None),
    ("stop again", "POST", "/containers/cf2/stop?t=0", None),
    ("wait stopped", "POST", "/containers/cf2/wait", None),
    ("wait: bad condition", "POST", "/containers/cf2/wait?condition=whenever", None),
    ("logs: no stream", "GET", "/containers/cf2/logs", None),
    ("kill stopped", "POST", "/containers/cf2/kill", None),
    ("inspect exited", "GET", "/containers/cf2/json", None),
    ("list filtered", "GET", '/containers/json?all=1&filters={"status":["exited"]}', None),
    ("list: bad filter", "GET", '/containers/json?filters={"status":["bogus"]}', None),
    ("remove", "DELETE", "/containers/cf2", None),
    ("remove again", "DELETE", "/containers/cf2", None),
    ("images", "GET", "/images/json", None),
    ("image inspect", "GET", "/images/busybox:latest/json", None),
    ("image inspect unknown", "GET", "/images/nosuch:image/json", None),
    ("tag", "POST", "/images/busybox:latest/tag?repo=cftag&tag=x", None),
    ("untag", "DELETE", "/images/cftag:x", None),
    ("rmi unknown", "DELETE", "/images/nosuch:image", None),
    ("events window", "GET", "/events?since={t}&until={t}", None),
    ("too new version", "GET", "/v1.99/version", None),
    ("unknown path", "GET", "/v1.41/nothing/here", None),
]


def shape(value):
    """Keys and value types of a JSON value (dicts recursively, lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def _parse(resp) -> object:
    ctype = resp.headers.get("Content-Type", "")
    if "json" not in ctype:
        return f"<{ctype or 'no content type'}>"
    text = resp.text.strip()
    if not text:
        return "<empty>"
    try:
        return json.loads(text)
    except ValueError:
        return [json.loads(l) for l in text.splitlines() if l.strip()]


def run_requests(base_url: str) -> list[tuple[str, int, object]]:
    """Send :data:`REQUESTS` to the Engine API at *base_url* (``unix://...``): (label, status, shape)."""
    import docker
    api = docker.APIClient(base_url=base_url, version="1.41", timeout=60)
    out = []
    t = f"{time.time():.3f}"
    try:
        for label, method, path, body in REQUESTS:
            path = path.replace("{t}", t)
            url = api.base_url + (path if path.startswith("/v1.") or path == "/_ping" else "/v1.41" + path)
            kw = {}
            if isinstance(body, bytes):
                kw = {"data": body, "headers": {"Content-Type": "application/json"}}
            elif body is not None:
                kw = {"data": json.dumps(body), "headers": {"Content-Type": "application/json"}}
            resp = api.request(method, url, timeout=60, **kw)
            value = _parse(resp)
            out.append((label, resp.status_code, shape(value) if not isinstance(value, str) else value))
    finally:
        api.close()
    return out


def diff_shapes(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k}: only docker")
            elif k not in b:
                out.append(f"{path}.{k}: only capsize")
            else:
                out += diff_shapes(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if a and b:
            return diff_shapes(a[0], b[0], path + "[0]")
        return []
    if a != b and "NoneType" not in (a, b):
        return [f"{path or '.'}: capsize {a} / docker {b}"]
    return []


def compare(capsize: list, docker: list) -> list[dict]:
    """One row per request: label, both statuses, and the shape differences."""
    rows = []
    for (label, cs, cshape), (_, ds, dshape) in zip(capsize, docker):
        rows.append({"request": label, "capsize": cs, "docker": ds, "status_same": cs == ds,
                     "shape_differences": diff_shapes(cshape, dshape)})
    return rows


def run_both(workdir: str) -> list[dict]:
    from harness.reference.docker import DockerStack
    from tests.daemon.stack import Stack
    cap = Stack(os.path.join(workdir, "cap"))
    try:
        cap.start()
        cap.load_busybox()
        capsize = run_requests(cap.host)
    finally:
        cap.close()
    with DockerStack(os.path.join(workdir, "ref"), network="none") as ref:
        ref.import_busybox("busybox:latest")
        docker = run_requests(ref.host)
        c = ref.client()
        for x in c.containers.list(all=True):
            x.remove(force=True)
    return compare(capsize, docker)


def report(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        status = "same status" if r["status_same"] else f"STATUS capsize {r['capsize']} / docker {r['docker']}"
        shapes = "; ".join(r["shape_differences"][:8]) + (" ..." if len(r["shape_differences"]) > 8 else "")
        lines.append(f"{r['request']:<24} {r['capsize']:>3} {status}{'; shape: ' + shapes if shapes else ''}")
    n_status = sum(not r["status_same"] for r in rows)
    n_shape = sum(bool(r["shape_differences"]) for r in rows)
    lines.append(f"{len(rows)} requests: {n_status} status differences, {n_shape} with shape differences")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=None)
    a = p.parse_args(argv)
    workdir = a.workdir or tempfile.mkdtemp(prefix="dmconf-", dir="/tmp")
    try:
        print(report(run_both(workdir)))
    finally:
        if not a.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
