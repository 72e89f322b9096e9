"""The registry error cases of ``docker pull``/``push``/``login``, measured on one engine.

:func:`measure` runs every case of :data:`CASES` against an engine (the real docker CLI, and
the Engine API over the unix socket) and two private registries (Debian's docker-registry 2.8:
one open, one with htpasswd auth for ``alice``/``s3cret``), and returns, per case::

    {"status": HTTP status of the Engine API reply,
     "message": the reply's {"message"}, or the stream's last {"error"} (a 200 stream),
     "stream": True when the error came on a 200 stream (after progress lines),
     "cli_rc": the CLI's exit status, "cli_stderr": its stderr (the --password warning dropped)}

with the registries' addresses written ``{A}`` (open) and ``{B}`` (auth), and the digest of the
corrupted layer ``{layer}``. The table dockerd gave is ``data/registry-errors.json``
(tests/daemon/test_registry.py asserts capsized gives the same); to measure it again::

    .venv/bin/python -m tests.daemon.registry_errors OUT.json    # a private dockerd, network none
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import random
import socket
import sys
import tarfile

CASES = ("missing_tag", "missing_repository", "manifest_unknown_by_digest", "pull_without_login",
         "push_without_login", "login_wrong_password", "pull_wrong_password", "push_wrong_password",
         "corrupted_blob", "pull_registry_down", "push_registry_down")
DATA = os.path.join(os.path.dirname(__file__), "data", "registry-errors.json")
PASSWORD_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix_path)


def api(sock: str, method: str, url: str, headers: dict | None = None, body: bytes | None = None) -> dict:
    """One Engine API call: ``{"status", "message", "stream"}`` as in the module docstring."""
    c = _Unix(sock)
    try:
        c.request(method, url, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read().decode(errors="replace")
    finally:
        c.close()
    if r.status != 200:
        return {"status": r.status, "message": json.loads(data).get("message"), "stream": False}
    last = [json.loads(line) for line in data.splitlines() if line.strip()][-1]
    return {"status": 200, "message": last.get("error"), "stream": True}


def x_registry_auth(user: str, password: str, server: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"username": user, "password": password,
                                                "serveraddress": server}).encode()).decode()


def _rootfs_tar(path: str) -> None:
    data = random.Random(17).randbytes(300 << 10)   # incompressible, the same on every run
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("blob.bin")
        info.size, info.mtime = len(data), 1577836800
        t.addfile(info, io.BytesIO(data))


def _corrupt_first_layer(reg, repo: str) -> str:
    """Flip one byte of the first layer of *repo*:latest in the registry's storage; its digest."""
    c = http.client.HTTPConnection("127.0.0.1", reg.port, timeout=10)
    c.request("GET", f"/v2/{repo}/manifests/latest",
              headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    digest = json.loads(c.getresponse().read())["layers"][0]["digest"]
    c.close()
    hexd = digest.split(":", 1)[1]
    path = os.path.join(reg.data_dir, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    return digest


def measure(cli, sock: str, reg, areg, workdir: str) -> dict:
    """Every case of :data:`CASES` (see the module docstring). *cli(*args)* runs the docker CLI
    (a CompletedProcess) on an engine that has ``busybox:latest``, *sock* is its API socket;
    *reg* (open) and *areg* (auth) are started registries, *reg* is stopped at the end."""
    A, B = reg.address, areg.address
    out: dict = {}

    def run(case: str, argv: tuple | None, call: dict) -> None:
        row = dict(call)
        if argv:
            r = cli(*argv)
            err = "\n".join(line for line in r.stderr.strip().splitlines() if line != PASSWORD_WARNING)
            row.update(cli_rc=r.returncode, cli_stderr=err)
        out[case] = row

    def pull(ref: str, tag: str, auth: str | None = None) -> dict:
        return api(sock, "POST", f"/v1.41/images/create?fromImage={ref}&tag={tag}",
                   {"X-Registry-Auth": auth} if auth else {})

    def push(ref: str, tag: str, auth: str | None = None) -> dict:
        return api(sock, "POST", f"/v1.41/images/{ref}/push?tag={tag}",
                   {"X-Registry-Auth": auth or base64.b64encode(b"{}").decode()})

    cli("tag", "busybox:latest", f"{A}/busybox:latest")
    assert cli("push", f"{A}/busybox:latest").returncode == 0
    run("missing_tag", ("pull", f"{A}/busybox:nope"), pull(f"{A}/busybox", "nope"))
    run("missing_repository", ("pull", f"{A}/nothing:latest"), pull(f"{A}/nothing", "latest"))
    zero = "sha256:" + "0" * 64
    run("manifest_unknown_by_digest", ("pull", f"{A}/busybox@{zero}"), pull(f"{A}/busybox", zero))
    cli("tag", "busybox:latest", f"{B}/private:1")
    run("pull_without_login", ("pull", f"{B}/private:1"), pull(f"{B}/private", "1"))
    run("push_without_login", ("push", f"{B}/private:1"), push(f"{B}/private", "1"))
    run("login_wrong_password", ("login", "-u", "alice", "-p", "wrong", B),
        api(sock, "POST", "/v1.41/auth", {"Content-Type": "application/json"},
            json.dumps({"username": "alice", "password": "wrong", "serveraddress": B}).encode()))
    run("pull_wrong_password", None, pull(f"{B}/private", "1", x_registry_auth("alice", "wrong", B)))
    run("push_wrong_password", None, push(f"{B}/private", "1", x_registry_auth("alice", "wrong", B)))
    tar = os.path.join(workdir, "rootfs.tar")
    _rootfs_tar(tar)
    cli("import", tar, f"{A}/corrupt:latest")
    assert cli("push", f"{A}/corrupt:latest").returncode == 0
    cli("rmi", f"{A}/corrupt:latest")
    layer = _corrupt_first_layer(reg, "corrupt")
    run("corrupted_blob", ("pull", f"{A}/corrupt:latest"), pull(f"{A}/corrupt", "latest"))
    left = cli("images", "-a", "--format", "{{.Repository}}").stdout.split()
    out["corrupted_blob"]["images_left"] = sorted({n for n in left if n.endswith("/corrupt")})
    reg.stop()
    run("pull_registry_down", ("pull", f"{A}/busybox:latest"), pull(f"{A}/busybox", "latest"))
    run("push_registry_down", ("push", f"{A}/busybox:latest"), push(f"{A}/busybox", "latest"))
    text = json.dumps(out).replace(A, "{A}").replace(B, "{B}").replace(layer, "{layer}") \
        .replace(layer.split(":")[1][:12], "{layer12}")
    return json.loads(text)


def measure_dockerd(out_path: str) -> None:
    """The table on a private dockerd (network none: it shares the host's loopback registries)."""
    import tempfile
    from harness.reference.docker import DockerStack
    from harness.reference.registry import Registry
    base = tempfile.mkdtemp(prefix="regerr-", dir="/tmp")
    regs = [Registry(os.path.join(base, "reg")), Registry(os.path.join(base, "areg"), users={"alice": "s3cret"})]
    try:
        with DockerStack(os.path.join(base, "d"), network="none") as eng:
            eng.import_busybox("busybox:latest")
            for r in regs:
                r.start()
            table = measure(eng.cli, eng.socket_path, regs[0], regs[1], base)
            version = eng.cli("version", "--format", "{{.Server.Version}} / CLI {{.Client.Version}}").stdout.strip()
    finally:
        for r in regs:
            r.close()
        import shutil
        shutil.rmtree(base, ignore_errors=True)
    doc = {"source": f"measured on a private dockerd {version} with Debian's docker-registry 2.8 "
                     f"(python -m tests.daemon.registry_errors)", "cases": table}
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    measure_dockerd(sys.argv[1] if len(sys.argv) > 1 else DATA)
