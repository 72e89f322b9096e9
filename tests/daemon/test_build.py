"""The classic builder on capsized (POST /build): through Debian's CLI with DOCKER_BUILDKIT=0, the
newer CLI on PATH, and the SDK; the cache, multi-stage builds, a failing RUN, crash leftovers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.privileged  # needs root: real namespaces, mounts, cgroups, daemons

DOCKERFILE = """\
# a comment
FROM busybox AS base
ARG GREETING=hi
ENV APP=/app
WORKDIR $APP
COPY --chown=1000:1000 hello.txt ./
ADD arch.tgz /unpacked/
COPY dir /copied
RUN echo "$GREETING from run" && cat hello.txt > out && \\
    ls -n hello.txt
LABEL a=b
EXPOSE 80
VOLUME /data
STOPSIGNAL SIGINT
CMD ["cat", "/app/out"]
FROM base
COPY --from=base /app/out /final
ENTRYPOINT ["cat"]
CMD ["/final"]
"""


def make_context(path, dockerfile=DOCKERFILE):
    os.makedirs(path / "dir" / "sub")
    (path / "hello.txt").write_text("hello\n")
    (path / "dir" / "sub" / "s").write_text("s\n")
    (path / "secret.txt").write_text("secret\n")
    (path / ".dockerignore").write_text("secret.txt\n# comment\n")
    with tarfile.open(path / "arch.tgz", "w:gz") as t:
        t.add(path / "dir", arcname=".")
    (path / "Dockerfile").write_text(dockerfile)
    return path


def build(stack, ctx, *args, cli="/usr/bin/docker", buildkit="0"):
    env = {**stack.env(), "DOCKER_BUILDKIT": buildkit}
    return subprocess.run([cli, "build", *args, str(ctx)], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(autouse=True)
def _tidy(request):
    yield
    if "stack" not in request.fixturenames:   # a fresh stack goes whole
        return
    s = request.getfixturevalue("stack")
    if s.daemon is not None and s.daemon.poll() is None:
        s.remove_all()
        for ref in s.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split():
            if ref != "busybox:latest":
                s.cli("rmi", "-f", ref)
        for iid in s.ok("images", "-aq", "--no-trunc").split():
            if iid != s.image_id:
                s.cli("rmi", "-f", iid)


def test_build_every_instruction_cache_and_multistage(stack, tmp_path):
    ctx = make_context(tmp_path / "ctx")
    r = build(stack, ctx, "-t", "built:1", "--build-arg", "GREETING=hey")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Step 1/17 : FROM busybox AS base" in out and "Step 17/17 : CMD [\"/final\"]" in out
    assert "hey from run" in out and " 1000 " in out
    assert " ---> Running in " in out and "Removing intermediate container" in out
    assert "Successfully tagged built:1" in out and "Successfully built " in out
    assert stack.ok("run", "--rm", "built:1") == "hello"
    cfg = json.loads(stack.ok("image", "inspect", "built:1"))[0]["Config"]
    assert cfg["Entrypoint"] == ["cat"] and cfg["Cmd"] == ["/final"] and cfg["WorkingDir"] == "/app"
    assert "APP=/app" in cfg["Env"] and not any(e.startswith("GREETING") for e in cfg["Env"])
    assert cfg["Labels"] == {"a": "b"} and cfg["ExposedPorts"] == {"80/tcp": {}} and cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    check = stack.ok("run", "--rm", "--entrypoint", "sh", "built:1", "-c",
                     "stat -c %u:%g /app/hello.txt; cat /unpacked/sub/s /copied/sub/s; "
                     "test -e /app/secret.txt || echo ignored; ls /unpacked")
    assert check.splitlines() == ["1000:1000", "s", "s", "ignored", "sub"]
    layers = json.loads(stack.ok("image", "inspect", "built:1"))[0]["RootFS"]["Layers"]
    assert len(layers) == 1 + 5, "one layer per COPY/ADD/RUN (4 in the first stage, 1 in the second)"
    # no build container is left
    assert stack.ok("ps", "-aq") == ""
    # the same build again: every step from the cache, the same image
    first = stack.ok("images", "-q", "--no-trunc", "built:1")
    r = build(stack, ctx, "-t", "built:1", "--build-arg", "GREETING=hey")
    assert r.returncode == 0 and r.stdout.count("Using cache") == 15, r.stdout
    assert stack.ok("images", "-q", "--no-trunc", "built:1") == first
    # a changed file: the steps from its COPY on are built again; --no-cache builds everything
    (ctx / "hello.txt").write_text("changed\n")
    r = build(stack, ctx, "-t", "built:1", "--build-arg", "GREETING=hey")
    assert r.returncode == 0 and r.stdout.count("Using cache") == 3, r.stdout
    assert stack.ok("run", "--rm", "built:1") == "changed"
    dangling = stack.ok("images", "-q", "--no-trunc", "-f", "dangling=true").split()
    assert first in dangling, "the rebuilt tag's old image is dangling"
    r = build(stack, ctx, "--no-cache", "-q", "-t", "built:2")
    assert r.returncode == 0 and "Using cache" not in r.stdout and r.stdout.strip().startswith("sha256:")


def test_failing_run_ends_the_build_with_its_code_and_leaves_nothing(stack, tmp_path):
    ctx = tmp_path / "fail"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo before\nRUN echo out; exit 3\nRUN echo never\n")
    before = stack.ok("images", "-aq").split()
    r = build(stack, ctx, "-t", "fails:1")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3" in r.stderr + r.stdout
    assert "out" in r.stdout and "never" not in r.stdout.replace("RUN echo never", "")
    assert stack.ok("ps", "-aq") == "", "no build container is left"
    assert "fails:1" not in stack.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert len(stack.ok("images", "-aq").split()) == len(before) + 1, "only the step that ran stays (cache)"
    import docker
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(ctx / "Dockerfile", arcname="Dockerfile")
    buf.seek(0)
    with pytest.raises(docker.errors.APIError, match="Cannot locate specified Dockerfile: nosuch"):
        list(stack.client().api.build(fileobj=buf, custom_context=True, dockerfile="nosuch"))
    (ctx / "Dockerfile").write_text("FROM nosuch:1\n")
    r = build(stack, ctx)
    assert r.returncode != 0 and "nosuch" in r.stderr


def test_sdk_and_the_newer_cli(stack, tmp_path):
    c = stack.client()
    df = b"FROM busybox\nRUN echo sdk > /sdk\nCMD [\"cat\", \"/sdk\"]\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
    buf.seek(0)
    img, logs = c.images.build(fileobj=buf, custom_context=True, tag="sdk:1", rm=True)
    assert img.tags == ["sdk:1"] and any("Successfully built" in x.get("stream", "") for x in logs)
    assert c.containers.run("sdk:1", remove=True) == b"sdk\n"
    new = shutil.which("docker")
    if new and os.path.realpath(new) != "/usr/bin/docker":
        ctx = tmp_path / "n"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(df.decode())
        r = build(stack, ctx, "-t", "newcli:1", cli=new)
        assert r.returncode == 0 and stack.ok("run", "--rm", "newcli:1") == "sdk", r.stderr


def test_dockerignore_symlink_is_read_inside_the_context(stack, tmp_path):
    """A context whose .dockerignore is a symlink out of it (to a host file) is read inside the
    context, as the Dockerfile is: the host file's lines never reach the build (nor its errors)."""
    outside = tmp_path / "host-secret"
    outside.write_text("[host-secret-line\n")   # a bad pattern: it would come back in the error
    df = b"FROM busybox\nCMD [\"true\"]\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
        link = tarfile.TarInfo(".dockerignore")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        t.addfile(link)
    buf.seek(0)
    logs = list(stack.client().api.build(fileobj=buf, custom_context=True, tag="ign:1", decode=True))
    text = json.dumps(logs)
    assert "host-secret-line" not in text, text
    assert any("Successfully built" in x.get("stream", "") for x in logs), text


def test_from_scratch(stack, tmp_path):
    ctx = tmp_path / "s"
    ctx.mkdir()
    (ctx / "file").write_text("only\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY file /file\nCMD [\"/x\"]\n")
    r = build(stack, ctx, "-t", "scratchy:1")
    assert r.returncode == 0, r.stdout + r.stderr
    tar = tmp_path / "s.tar"
    stack.ok("save", "-o", str(tar), "scratchy:1")
    insp = json.loads(stack.ok("image", "inspect", "scratchy:1"))[0]
    assert len(insp["RootFS"]["Layers"]) == 1 and insp["Config"]["Cmd"] == ["/x"]


def test_rebuild_dangling_intermediates_hidden_and_image_prune(stack, tmp_path):
    ctx = tmp_path / "p"
    ctx.mkdir()
    (ctx / "f").write_text("1\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY f /f\nRUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n")
    assert build(stack, ctx, "-t", "pr:1").returncode == 0
    old = stack.ok("images", "-q", "--no-trunc", "pr:1")
    assert "<none>" not in stack.ok("images"), "intermediate images are listed with -a only"
    assert len(stack.ok("images", "-aq").split()) == 1 + 3
    (ctx / "f").write_text("2\n")
    assert build(stack, ctx, "-t", "pr:1").returncode == 0
    assert stack.ok("images", "-q", "--no-trunc", "-f", "dangling=true").split() == [old]
    out = stack.ok("image", "prune", "-f")
    assert old in out and "Total reclaimed space" in out
    assert stack.ok("images", "-q", "-f", "dangling=true") == ""
    assert len(stack.ok("images", "-aq").split()) == 1 + 3, "the old build's childless steps went too"
    assert stack.ok("run", "--rm", "pr:1") == "2"


def test_onbuild_triggers_run_in_the_child_build(stack, tmp_path):
    """A base image's ONBUILD triggers run right after the child's FROM, in order, as dockerd's
    ("# Executing 2 build triggers"); the child does not inherit them."""
    base, child = tmp_path / "base", tmp_path / "child"
    base.mkdir()
    child.mkdir()
    (base / "Dockerfile").write_text("FROM busybox\nONBUILD ENV T=one\nONBUILD RUN echo triggered $T > /t\n")
    r = build(stack, base, "-t", "ob:base")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# Executing" not in r.stdout
    assert json.loads(stack.ok("inspect", "-f", "{{json .Config.OnBuild}}", "ob:base")) == [
        "ENV T=one", "RUN echo triggered $T > /t"]
    (child / "Dockerfile").write_text('FROM ob:base\nCMD ["cat", "/t"]\n')
    r = build(stack, child, "-t", "ob:child")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "# Executing 2 build triggers" in r.stdout, r.stdout
    assert stack.ok("run", "--rm", "ob:child") == "triggered one"
    assert stack.ok("inspect", "-f", "{{json .Config.OnBuild}}", "ob:child") in ("null", "[]")
    r = build(stack, child, "-t", "ob:child")   # again: the triggers' steps come from the cache
    assert r.returncode == 0 and r.stdout.count("Using cache") >= 3, r.stdout


def test_rmi_removes_untagged_parents_as_dockerd(stack, tmp_path):
    """``docker rmi`` of a built image deletes its untagged parents (the builder's steps) up to
    the first one kept (busybox, tagged); ``--no-prune`` keeps them; deleting by id an image with
    children is a 409 that cannot be forced; by name, only the tag goes."""
    ctx = tmp_path / "r"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"cat\", \"/x\"]\n")
    before = set(stack.ok("images", "-aq", "--no-trunc").split())
    assert build(stack, ctx, "-t", "rm:1").returncode == 0
    made = set(stack.ok("images", "-aq", "--no-trunc").split()) - before
    assert len(made) == 3
    top = stack.ok("images", "-q", "--no-trunc", "rm:1")
    middle = sorted(made - {top})
    for iid in middle:   # each has a child
        r = stack.cli("rmi", "-f", iid)
        assert r.returncode != 0 and "image has dependent child images" in r.stderr, r.stderr
    out = stack.ok("rmi", "rm:1").splitlines()
    assert out[0] in ("Untagged: rm:1", "Untagged: rm:1:latest"), out
    assert {line.split(": ", 1)[1] for line in out[1:]} == made, out
    assert set(stack.ok("images", "-aq", "--no-trunc").split()) == before
    # --no-prune: only the image itself; its parent stays
    assert build(stack, ctx, "-t", "rm:2").returncode == 0
    top = stack.ok("images", "-q", "--no-trunc", "rm:2")
    out = stack.ok("rmi", "--no-prune", "rm:2").splitlines()
    assert [line.split(": ", 1)[1] for line in out[1:]] == [top]
    assert len(set(stack.ok("images", "-aq", "--no-trunc").split()) - before) == 2
    # by name, an image that is another's parent is only untagged
    parent = sorted(set(stack.ok("images", "-aq", "--no-trunc").split()) - before)
    child = [i for i in parent if stack.ok("inspect", "-f", "{{.Parent}}", i) in parent][0]
    stack.ok("tag", child, "rm:child")
    mid = stack.ok("inspect", "-f", "{{.Parent}}", child)
    stack.ok("tag", mid, "rm:mid")
    assert [line.split(": ")[0] for line in stack.ok("rmi", "rm:mid").splitlines()] == ["Untagged"]
    assert mid in stack.ok("images", "-aq", "--no-trunc").split()
    out = stack.ok("rmi", "rm:child").splitlines()
    assert {line.split(": ", 1)[1] for line in out[1:]} == {child, mid}
    assert set(stack.ok("images", "-aq", "--no-trunc").split()) == before


@pytest.mark.parametrize("victim", ["daemon", "runtime", "both"])
def test_sigkill_mid_run_leaves_nothing_and_the_build_reruns(fresh, tmp_path, victim):
    """capsized SIGKILLed while a RUN runs: after its restart no half-made image is listed, no
    build container, runtime container or snapshot is left, and the same build succeeds again.
    Both daemons SIGKILLed and capsized back first (runtimed still down): the same once runtimed
    comes back (the first reconnect cleans what the build left).
    capsize-runtimed SIGKILLed (and restarted) while a RUN runs: the RUN's container lives on
    (its shim does), the runtime adopts it again and the build finishes; nothing is left."""
    import time
    from runtime.highlevel.client import RuntimeClient
    s = fresh
    ctx = tmp_path / "k"
    ctx.mkdir()
    nap = "3" if victim == "runtime" else "30"
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo step1 > /one\nRUN touch /started; sleep {nap}\n"
                                    "CMD [\"cat\", \"/one\"]\n")
    before = s.ok("images", "-aq").split()
    proc = subprocess.Popen(["/usr/bin/docker", "build", "-t", "crash:1", str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**s.env(), "DOCKER_BUILDKIT": "0"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "sleep" not in s.ok("ps", "--no-trunc", "--format", "{{.Command}}"):
        time.sleep(0.1)
    assert s.ok("ps", "-q"), "the RUN container is running"
    time.sleep(0.5)
    if victim == "both":
        s.kill_daemon()
        s.kill_runtime()
        proc.wait(timeout=60)
        s.start_daemon("--runtime-wait", "1")
        s.start_runtime()
        deadline = time.monotonic() + 30   # the backend's watcher reconnects, then cleans
        while time.monotonic() < deadline and (s.ok("ps", "-aq") or os.listdir(os.path.join(s.root, "daemon", "builds"))):
            time.sleep(0.2)
        assert "crash:1" not in s.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    elif victim == "daemon":
        s.kill_daemon()
        proc.wait(timeout=60)
        s.start_daemon()
        assert "crash:1" not in s.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
        assert len(s.ok("images", "-aq").split()) <= len(before) + 1, "at most the finished first step"
    else:
        s.kill_runtime()
        s.start_runtime()
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0 and "Successfully tagged crash:1" in out, out
    assert s.ok("ps", "-aq") == "", "no build container after the restart"
    assert not os.listdir(os.path.join(s.root, "daemon", "builds"))
    rt = RuntimeClient(os.path.join(s.state, "runtimed.sock"), "capsize")
    assert rt.containers() == [], "no runtime container (and so no active snapshot) is left"
    r = build(s, ctx, "-t", "crash:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert s.ok("run", "--rm", "crash:1") == "step1"


def test_from_platform_only_this_one(stack, tmp_path):
    """``FROM --platform``: this machine's platform (also as $BUILDPLATFORM) builds; another is
    refused with dockerd's message, not accepted and ignored; a malformed one is a parse error."""
    from runtime.busybox import host_arch
    ctx = tmp_path / "plat"
    ctx.mkdir()
    other = "arm64" if host_arch() != "arm64" else "amd64"
    for platform, ok in ((f"linux/{host_arch()}", True), ("$BUILDPLATFORM", True), ("linux", True),
                         (f"linux/{other}", False), ("windows/amd64", False), ("linux//x", False)):
        (ctx / "Dockerfile").write_text(f"FROM --platform={platform} busybox\nCMD [\"true\"]\n")
        r = build(stack, ctx, "-t", "plat:1")
        if ok:
            assert r.returncode == 0, (platform, r.stdout + r.stderr)
        else:
            assert r.returncode != 0, (platform, r.stdout)
            assert "platform" in r.stderr and "Traceback" not in r.stderr, (platform, r.stderr)
    (ctx / "Dockerfile").write_text(f"FROM --platform=linux/{other} busybox\n")
    r = build(stack, ctx)
    assert f"does not match the specified platform: wanted linux/{other}, actual: linux/{host_arch()}" in r.stderr


def test_runtime_sigkill_during_a_layer_commit(fresh, tmp_path):
    """capsize-runtimed SIGKILLed while it writes a RUN's layer into its content store (a blob in
    ``content/ingest``): the build fails; after the restart no half-made image is listed, no
    build or runtime container, no snapshot and no blob is left (the store verifies clean), and
    the same build run again succeeds."""
    import time
    from runtime.highlevel.client import RuntimeClient
    from runtime.highlevel.fsck import verify
    s = fresh
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN head -c 150000000 /dev/zero > /big; echo made > /one\n"
                                    "CMD [\"cat\", \"/one\"]\n")
    before = s.ok("images", "-aq").split()
    ingest = os.path.join(s.root, "runtimed", "content", "ingest")
    proc = subprocess.Popen(["/usr/bin/docker", "build", "-t", "commitkill:1", str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**s.env(), "DOCKER_BUILDKIT": "0"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.listdir(ingest):
        time.sleep(0.01)
    assert os.listdir(ingest), "the layer's blob was being written"
    s.kill_runtime()
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, out
    s.start_runtime()
    assert "commitkill" not in s.ok("images", "-a", "--format", "{{.Repository}}")
    assert sorted(s.ok("images", "-aq").split()) == sorted(before), "no half-made image"
    deadline = time.monotonic() + 15   # capsized removes the build's container once it reconnects
    while time.monotonic() < deadline and s.ok("ps", "-aq"):
        time.sleep(0.2)
    assert s.ok("ps", "-aq") == "", "no build container"
    assert not os.listdir(os.path.join(s.root, "daemon", "builds")), "the build's journal went too"
    rt = RuntimeClient(os.path.join(s.state, "runtimed.sock"), "capsize")
    assert rt.containers() == [], "no runtime container (and so no active snapshot)"
    report = verify(s.root)
    assert not any(report[k] for k in ("bad_digests", "missing_blobs", "dangling_snapshots", "orphan_dirs",
                                       "missing_dirs", "ingest", "unreferenced_blobs")), report
    r = build(s, ctx, "-t", "commitkill:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert s.ok("run", "--rm", "commitkill:1") == "made"
