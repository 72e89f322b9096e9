"""The registry role and image transfers: ``registry.start``, ``image.push``, ``image.pull``.

One registration each (:mod:`harness.verbs.registry`):

* ``registry.start`` starts the scenario's registry peer (:class:`harness.reference.registry.Registry`,
  Debian's docker-registry, under ``<engine workdir>/registry``) in the network namespace of
  the engine's transfer daemon (:meth:`harness.engines.base.Engine.transfer_netns`), with
  htpasswd ``users`` if given, and with ``rate`` (bytes/s) a throttling proxy in front
  (:mod:`harness.reference.throttle`) so that a fault lands mid-transfer. It is then the role
  ``registry``: ``fault.kill``/``fault.stop``/``fault.pause``/``fault.resume`` act on its
  process. Run again after a kill, it starts the same registry again (same port, same data).
  The ledger's undo (``terminate``) ends it if the harness dies; the engine's close stops it.
* ``image.push`` tags the local ``image`` as ``<registry>/<repository>:<tag>`` and pushes it;
  ``image.pull`` pulls ``<registry>/<repository>:<tag>`` (Engine API ``POST /images/{name}/push``,
  ``POST /images/create?fromImage=``, through the docker SDK, with ``auth`` as X-Registry-Auth).
  ``<registry>`` is the proxy's address when there is one. Outcome ``fail`` with the daemon's
  text for an error reply or an error in the progress stream, ``unknown`` when the connection
  breaks mid-transfer (:mod:`harness.outcome`); the step's value has the last ``status`` seen.

The content store's consistency afterwards is ``image.store.consistent``
(:mod:`harness.verbs.storage_checks`): every blob's digest, no image with missing blobs, no
orphaned ingest (partial downloads kept for a resume are listed apart).
"""

from __future__ import annotations

import os
import time

from pydantic import Field

from harness.context import ActionResult
from harness.outcome import classify_exception
from harness.pids import identify
from harness.scenario.types import Model
from harness.verbs.registry import action, fault
from harness.verbs.syscall import undo_terminate
from runtime.errors import CapsizeError, FailedPrecondition


class RegistryStart(Model):
    """``users``: ``{name: password}`` (htpasswd auth); ``rate``: bytes per second through a
    throttling proxy (none: direct)."""

    users: dict[str, str] = {}
    rate: int | None = Field(None, gt=0)


class Credentials(Model):
    username: str
    password: str


class ImagePush(Model):
    image: str = "busybox:latest"
    repository: str = Field(pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    tag: str = "latest"
    auth: Credentials | None = None
    #: after a successful push, remove the pushed tag (``docker rmi``): the local image keeps its other names
    untag: bool = False


class RegistryCorrupt(Model):
    """Which stored blob of ``<repository>:<tag>`` (a layer by index, or the config)."""

    repository: str = Field(pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    tag: str = "latest"
    layer: int = Field(0, ge=0)


class ImagePull(Model):
    repository: str = Field(pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
    tag: str = "latest"
    auth: Credentials | None = None


def registry_address(engine) -> str:
    """``HOST:PORT`` the engine's daemons use for the scenario's registry (the proxy's if any)."""
    if engine.registry is None:
        raise FailedPrecondition("no registry: add a registry.start step first")
    return (engine.throttle or engine.registry).address


@action("registry.start", RegistryStart, "start the scenario's registry peer (role `registry`: docker-registry "
        "where the engine's transfer daemon reaches it; `users` for htpasswd auth, `rate` bytes/s through a "
        "throttling proxy); again after a kill: the same registry restarted",
        undo={"terminate": undo_terminate})
def registry_start(ctx, step) -> ActionResult:
    from harness.reference.registry import Registry
    from harness.reference.throttle import Throttle
    p, eng = step.params, ctx.engine
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    try:
        if eng.registry is None:
            eng.registry = Registry(os.path.join(eng.workdir, "registry"), netns=eng.transfer_netns(),
                                    users=p.users)
        eng.registry.start()
        ident = identify([eng.registry.proc.pid])
        ctx.ledger.apply(ctx.run, step.action, {"role": "registry", "processes": ident},
                         {"kind": "terminate", "pid": ident[0]["pid"], "create_time": ident[0]["create_time"]})
        if p.rate and eng.throttle is None:
            eng.throttle = Throttle(("127.0.0.1", eng.registry.port), p.rate, eng.transfer_netns())
        res.value = {"address": registry_address(eng), "registry": eng.registry.address,
                     "pid": eng.registry.proc.pid}
    except CapsizeError as e:
        res.outcome, res.error = "fail", str(e)
    res.duration = time.monotonic() - res.mono
    return res


def _transfer(ctx, step, call) -> ActionResult:
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    client = ctx.engine.client(timeout=step.timeout)
    last = None
    try:
        for msg in call(client):
            if msg.get("error"):
                res.outcome, res.error = "fail", str(msg["error"])
                break
            last = msg.get("status") or last
        else:
            res.outcome = "ok"
    except CapsizeError as e:
        res.outcome, res.error = "fail", str(e)
    except Exception as e:  # noqa: BLE001 - every failure is an outcome, not a crash
        res.outcome, res.error, res.status_code = classify_exception(e)
    finally:
        res.duration = time.monotonic() - res.mono
        client.close()
    res.value = {"status": last}
    return res


def _auth(p) -> dict | None:
    return {"username": p.auth.username, "password": p.auth.password} if p.auth else None


@action("image.push", ImagePush, "tag `image` as `<registry>/<repository>:<tag>` and push it (`docker push`; "
        "`auth`: username, password; `untag`: then remove that tag)", background=True)
def image_push(ctx, step) -> ActionResult:
    p = step.params

    repo = f"{registry_address(ctx.engine)}/{p.repository}" if ctx.engine.registry is not None else None

    def call(client):
        client.api.tag(p.image, repo or registry_address(ctx.engine), p.tag)
        yield from client.api.push(repo, p.tag, stream=True, decode=True, auth_config=_auth(p))
    res = _transfer(ctx, step, call)
    if res.outcome == "ok" and p.untag:
        untagged = _transfer(ctx, step, lambda client: [client.api.remove_image(f"{repo}:{p.tag}")] and [])
        res.outcome, res.error = untagged.outcome, untagged.error
    return res


@action("image.pull", ImagePull, "pull `<registry>/<repository>:<tag>` (`docker pull`; `auth`: username, "
        "password)", background=True)
def image_pull(ctx, step) -> ActionResult:
    p = step.params

    def call(client):
        return client.api.pull(f"{registry_address(ctx.engine)}/{p.repository}", p.tag, stream=True,
                               decode=True, auth_config=_auth(p))
    return _transfer(ctx, step, call)



def _blob_data(reg, digest: str) -> str:
    """distribution 2.8's filesystem layout: ``docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data``."""
    hexd = digest.split(":", 1)[1]
    return os.path.join(reg.data_dir, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")


def undo_flip(spec: dict, engine=None) -> str:
    """Flip the byte at ``offset`` of ``path`` back (XOR 0xff again)."""
    if not os.path.exists(spec["path"]):
        return f"{spec['path']} is gone: nothing to do"
    with open(spec["path"], "r+b") as f:
        f.seek(spec["offset"])
        b = f.read(1)
        f.seek(spec["offset"])
        f.write(bytes([b[0] ^ 0xFF]))
    return f"restored byte {spec['offset']} of {spec['path']}"


@fault("fault.registry.corrupt", RegistryCorrupt, "flip one byte in the middle of a layer blob the registry stores "
       "for `<repository>:<tag>` (`layer` index): same size, wrong digest; undone by flipping it back",
       undo={"flip": undo_flip})
def registry_corrupt(ctx, step) -> dict:
    import json
    p, eng = step.params, ctx.engine
    if eng.registry is None:
        raise FailedPrecondition("no registry: add a registry.start step first")
    link = os.path.join(eng.registry.data_dir, "docker", "registry", "v2", "repositories", p.repository,
                        "_manifests", "tags", p.tag, "current", "link")
    try:
        with open(link) as f:
            manifest_digest = f.read().strip()
        with open(_blob_data(eng.registry, manifest_digest)) as f:
            layers = json.load(f).get("layers") or []
    except (OSError, ValueError) as e:
        raise FailedPrecondition(f"the registry has no manifest for {p.repository}:{p.tag}: {e}") from None
    if p.layer >= len(layers):
        raise FailedPrecondition(f"{p.repository}:{p.tag} has {len(layers)} layers, no layer {p.layer}")
    digest = layers[p.layer]["digest"]
    path = _blob_data(eng.registry, digest)
    offset = os.path.getsize(path) // 2
    ctx.ledger.apply(ctx.run, step.action, {"role": "registry", "blob": digest},
                     {"kind": "flip", "path": path, "offset": offset})
    undo_flip({"path": path, "offset": offset})
    return {"digest": digest, "offset": offset}
