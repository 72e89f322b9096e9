"""Benchmark (#17): push and pull of a ~100 MB image of 4 layers (random bytes, made offline)
through a private registry (Debian's docker-registry on 127.0.0.1, :mod:`harness.reference.registry`),
capsized vs a private dockerd in the same run (:mod:`benchmarks.daemon_bench`'s engines, interleaved),
with the real docker CLI; median of *runs* (default 3):

* ``push``: ``docker push`` to a repository the registry has not seen (every blob uploaded);
* ``pull``: ``docker rmi`` of every local copy, then ``docker pull`` (every blob downloaded,
  verified, unpacked).

Like for like: both engines gzip the (uncompressed, stored) layers on push and gunzip them on
pull; capsize in chunked PATCHes of 8 MiB, dockerd in one streamed PATCH. Also printed, as the limits: ``loopback`` (GET of the same blobs
straight from the registry, bytes thrown away), a TCP copy of 100 MB on 127.0.0.1, and ``disk``
(writing 100 MB with fsync).

    python -m benchmarks.registry_bench [--runs 3] [--cli /usr/bin/docker] [--json OUT]
"""

from __future__ import annotations

import io
import os
import tarfile
import time

from benchmarks.daemon_bench import Engine, main as bench_main

LAYERS, LAYER_MB = 4, 25
STATE: dict = {}


def _image_tar(path: str) -> None:
    """A docker-save tar ``bench/src:1`` of :data:`LAYERS` uncompressed layers of random bytes."""
    import hashlib
    import json
    layers, diff_ids = [], []
    for i in range(LAYERS):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = os.urandom(LAYER_MB << 20)
            info = tarfile.TarInfo(f"data{i}.bin")
            info.size, info.mtime = len(data), 1577836800
            t.addfile(info, io.BytesIO(data))
        layers.append(buf.getvalue())
        diff_ids.append("sha256:" + hashlib.sha256(layers[-1]).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with tarfile.open(path, "w") as t:
        names = []
        for layer, d in zip(layers, diff_ids):
            info = tarfile.TarInfo(f"{d[7:]}/layer.tar")
            info.size = len(layer)
            t.addfile(info, io.BytesIO(layer))
            names.append(info.name)
        cname = hashlib.sha256(config).hexdigest() + ".json"
        info = tarfile.TarInfo(cname)
        info.size = len(config)
        t.addfile(info, io.BytesIO(config))
        m = json.dumps([{"Config": cname, "RepoTags": ["bench/src:1"], "Layers": names}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(m)
        t.addfile(info, io.BytesIO(m))


def _setup(e: Engine) -> dict:
    if "registry" not in STATE:
        import tempfile
        from harness.reference.registry import Registry
        base = tempfile.mkdtemp(prefix="regbench-", dir="/tmp")   # outlives the engines' dir (limits)
        STATE["base"] = base
        STATE["registry"] = Registry(os.path.join(base, "registry"))
        STATE["registry"].start()
        STATE["tar"] = os.path.join(base, "image.tar")
        _image_tar(STATE["tar"])
    st = STATE.setdefault(e.name, {"n": 0, "last": None})
    if not st.get("loaded"):
        e.cli("load", "-i", STATE["tar"])
        st["loaded"] = True
    return st


def _fresh_registry() -> None:
    """A new, empty registry: a push uploads every blob (no cross-repository mount possible)."""
    from harness.reference.registry import Registry
    STATE["registry"].close()
    STATE["k"] = STATE.get("k", 0) + 1
    STATE["registry"] = Registry(os.path.join(STATE["base"], f"registry{STATE['k']}"))
    STATE["registry"].start()


def m_push(e: Engine) -> float:
    st = _setup(e)
    st["n"] += 1
    if e.name == "capsize":   # the engines alternate, capsize first: one registry per round
        _fresh_registry()
    ref = f"{STATE['registry'].address}/{e.name}/r{st['n']}:1"
    e.cli("tag", "bench/src:1", ref)
    seconds = e.timed("push", ref)[0]
    e.cli("rmi", ref)
    st["last"] = ref
    return seconds


def m_pull(e: Engine) -> float:
    st = _setup(e)
    e.cli("rmi", "bench/src:1")
    if e.name == "capsize":   # dockerd's rmi deletes the layers; capsize's leaves them to the next GC
        from runtime.highlevel.client import RuntimeClient
        sock = os.path.join(os.path.dirname(e.host.removeprefix("unix://")), "runtimed.sock")
        RuntimeClient(sock).gc()
    seconds = e.timed("pull", st["last"])[0]
    e.cli("tag", st["last"], "bench/src:1")
    e.cli("rmi", st["last"])
    return seconds


MEASURES = {"push": m_push, "pull": m_pull}


def limits() -> dict:
    """Seconds for the same bytes over loopback from the registry, and to disk with fsync."""
    import http.client
    import json
    reg = STATE["registry"]
    conn = http.client.HTTPConnection("127.0.0.1", reg.port)
    path = STATE["capsize"]["last"].split("/", 1)[1].rsplit(":", 1)[0]
    conn.request("GET", f"/v2/{path}/manifests/1",
                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    manifest = json.loads(conn.getresponse().read())
    t0 = time.perf_counter()
    for layer in manifest["layers"]:
        conn.request("GET", f"/v2/{path}/blobs/{layer['digest']}")
        r = conn.getresponse()
        while r.read(1 << 20):
            pass
    loop = time.perf_counter() - t0
    path = os.path.join(reg.workdir, "disk-test")
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(LAYERS * LAYER_MB):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    disk = time.perf_counter() - t0
    os.unlink(path)
    return {"loopback": loop, "disk": disk, "socket": socket_copy(LAYERS * LAYER_MB << 20)}


def socket_copy(nbytes: int) -> float:
    """Seconds to send *nbytes* over a TCP connection on 127.0.0.1 (one thread each side)."""
    import socket
    import threading
    srv = socket.create_server(("127.0.0.1", 0))
    got = [0]

    def sink():
        conn, _ = srv.accept()
        with conn:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                got[0] += len(data)
    t = threading.Thread(target=sink)
    t.start()
    chunk = os.urandom(1 << 20)
    t0 = time.perf_counter()
    with socket.create_connection(srv.getsockname()) as c:
        for _ in range(nbytes >> 20):
            c.sendall(chunk)
    t.join()
    srv.close()
    return time.perf_counter() - t0


if __name__ == "__main__":
    try:
        rc = bench_main(measures=MEASURES, default_runs=3,
                        description="docker push/pull of ~100 MB through a private registry: capsized vs dockerd")
        lim = limits()
        print(f"limits: loopback GET of the blobs {lim['loopback']:.3f} s, loopback TCP copy of 100 MB "
              f"{lim['socket']:.3f} s, disk write+fsync of 100 MB {lim['disk']:.3f} s")
    finally:
        if "registry" in STATE:
            import shutil
            STATE["registry"].close()
            shutil.rmtree(STATE["base"], ignore_errors=True)
    raise SystemExit(rc)
