"""What a new user trips over: unimplemented endpoints (501, not 404/405), client disconnects
(no traceback on capsized's stderr), wrongly typed JSON fields (400 with Go's wording, never a
500), seccomp by default as dockerd, image Created/rmi -f/load of garbage as Docker."""

from __future__ import annotations

import pytest

import json
import os
import socket
import subprocess
import tarfile
import time

from tests.daemon.stack import DOCKER
from tests.daemon.test_images_and_api import raw

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons


def test_unimplemented_endpoints_are_501(stack):
    for method, path, what in [("POST", "/v1.41/containers/prune", "POST /containers/prune"),
                               ("GET", "/v1.41/swarm", "GET /swarm (docker swarm)"),
                               ("GET", "/system/df", "GET /system/df"),
                               ("POST", "/v1.41/build/prune", "POST /build/prune"),
                               ("POST", "/v1.41/plugins/pull", "POST /plugins/pull")]:
        status, hdrs, body = raw(stack, method, path)
        assert status == 501, (path, status, body)
        assert hdrs["content-type"].startswith("application/json")
        assert json.loads(body)["message"] == f"capsized does not implement {what}" or \
            what in json.loads(body)["message"]
    status, _, body = raw(stack, "GET", "/v1.41/no/such/thing")
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    # implemented routes still win over the table
    assert raw(stack, "GET", "/v1.41/containers/json")[0] == 200


def test_unimplemented_cli_commands(stack):
    stack.ok("create", "--name", "gaps", "busybox", "sleep", "100")
    for args, what in [(("builder", "prune", "-f"), "docker builder prune"),
                       (("system", "df"), "docker system df"),
                       (("container", "prune", "-f"), "docker container prune"),
                       (("search", "busybox"), "docker search")]:
        r = stack.cli(*args)
        assert r.returncode != 0, args
        assert "capsized does not implement" in r.stderr and what in r.stderr, (args, r.stderr)
        assert "page not found" not in r.stderr and "not allowed" not in r.stderr
    ex = stack.client().containers.get("gaps")
    import docker
    try:   # exec is implemented: a created container is refused as Docker refuses it
        ex.exec_run("true")
        raise AssertionError("exec_run worked?")
    except docker.errors.APIError as e:
        assert e.status_code == 409 and "is not running" in str(e)


def _stderr_tracebacks(stack) -> list[str]:
    with open(os.path.join(stack.logs, "capsized.out"), errors="replace") as f:
        return [line for line in f if "Traceback" in line or "Error handling request" in line]


def test_client_disconnect_is_quiet(stack):
    before = len(_stderr_tracebacks(stack))
    stack.ok("run", "-d", "--name", "waited", "busybox", "sleep", "3")
    procs = [subprocess.Popen([DOCKER, *args], env=stack.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for args in (("wait", "waited"), ("logs", "-f", "waited"), ("events",))]
    time.sleep(1.0)
    for p in procs:
        p.kill()
        p.wait()
    stack.ok("wait", "waited")
    time.sleep(0.5)
    assert len(_stderr_tracebacks(stack)) == before, _stderr_tracebacks(stack)
    assert stack.ok("inspect", "-f", "{{.State.ExitCode}}", "waited") == "0"


def test_wrongly_typed_fields_are_400(stack):
    cases = [({"Image": "busybox", "Cmd": "true", "HostConfig": {"Memory": "lots"}},
              "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"),
             ({"Image": 5}, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image "
                            "of type string"),
             ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"MaximumRetryCount": "x"}}},
              "cannot unmarshal string into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount"),
             ({"Image": "busybox", "Labels": {"a": 1}}, "cannot unmarshal number"),
             ({"Image": "busybox", "Tty": "yes"}, "of type bool"),
             ({"Image": "busybox", "HostConfig": []}, "of type container.HostConfig")]
    for body, text in cases:
        status, _, payload = raw(stack, "POST", "/v1.41/containers/create", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
        assert status == 400, (body, status, payload)
        assert text in json.loads(payload)["message"], (body, payload)
    assert stack.ok("ps", "-aq") == ""
    # nulls are zero values, as Go's decoder takes them
    status, _, payload = raw(stack, "POST", "/v1.41/containers/create",
                             json.dumps({"Image": "busybox", "Cmd": ["true"], "Env": None,
                                         "HostConfig": {"RestartPolicy": None, "Memory": None}}).encode(),
                             {"Content-Type": "application/json"})
    assert status == 201, payload


def test_seccomp_by_default_as_dockerd(stack, tmp_path):
    """Containers get Docker's default profile, and docker info says so; unconfined turns it off;
    an explicit profile, or seccomp=builtin, is applied."""
    from runtime.daemon import seccomp_profile
    def seccomp_mode(*opts):
        return stack.ok("run", "--rm", *opts, "busybox", "grep", "Seccomp:", "/proc/self/status").split()[1]
    assert json.loads(stack.ok("info", "--format", "{{json .SecurityOptions}}")) == ["name=seccomp,profile=default"]
    assert seccomp_mode() == "2"
    r = stack.cli("run", "--rm", "busybox", "unshare", "-U", "true")
    assert r.returncode != 0   # unshare is not allowed without CAP_SYS_ADMIN by Docker's profile
    assert seccomp_mode("--security-opt", "seccomp=unconfined") == "0"
    default = os.path.join(os.path.dirname(seccomp_profile.__file__), "seccomp_default.json")
    assert seccomp_mode("--security-opt", f"seccomp={default}") == "2"
    r = stack.cli("run", "--rm", "--security-opt", f"seccomp={default}", "busybox", "unshare", "-U", "true")
    assert r.returncode != 0   # unshare is not allowed without CAP_SYS_ADMIN by Docker's profile
    out = stack.client().containers.run("busybox", ["grep", "Seccomp:", "/proc/self/status"], remove=True,
                                        security_opt=["seccomp=builtin"])   # the API's shorthand
    assert out.split() == [b"Seccomp:", b"2"]
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    r = stack.cli("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/x")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    r = stack.cli("run", "--rm", "--security-opt", "seccomp={bad", "busybox", "true")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr


def test_image_created_from_config_after_load(stack, tmp_path):
    saved = str(tmp_path / "bb.tar")
    stack.ok("tag", "busybox", "created:v1")
    stack.ok("save", "-o", saved, "created:v1")
    with tarfile.open(saved) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        config = json.load(t.extractfile(manifest[0]["Config"]))
    stack.ok("rmi", "created:v1")
    stack.ok("load", "-i", saved)
    created = stack.ok("image", "inspect", "-f", "{{.Created}}", "created:v1")
    assert created[:19] == config["created"][:19]
    stack.ok("rmi", "created:v1")


def test_rmi_force_with_container_keeps_image_untagged(stack, tmp_path):
    from runtime import busybox
    path = str(tmp_path / "rootfs.tar")
    busybox.write_rootfs_tar(path)
    image_id = stack.ok("import", path, "used:v1")    # an image of its own (busybox's has two tags then)
    since = f"{time.time() - 0.001:.6f}"
    cid = stack.ok("create", "used:v1", "true")
    assert stack.ok("rmi", "-f", "used:v1") == "Untagged: used:v1"
    until = f"{time.time() + 0.5:.6f}"
    listed = stack.ok("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").splitlines()
    assert f"{image_id} <none>:<none>" in listed
    events = stack.ok("events", "--since", since, "--until", until, "--filter", "type=image",
                      "--format", "{{.Action}}").split()
    assert events == ["untag"]
    stack.ok("rm", cid)
    stack.ok("rmi", image_id)


def test_load_garbage_is_one_line(stack, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(3000))
    r = stack.cli("load", "-i", str(garbage))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.strip() == "Error response from daemon: archive/tar: invalid tar header"
