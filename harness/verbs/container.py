"""Container actions through the ``docker`` SDK: ``container.*`` and ``image.import``.

Each is one registration (:mod:`harness.verbs.registry`) with its parameter model. Every
executor returns an :class:`~harness.context.ActionResult` whose outcome is Jepsen's
(:mod:`harness.outcome`): ``ok``, ``fail`` (the daemon answered an error, or could not be
reached), ``unknown`` (cut off, or the connection broke mid-call).
"""

from __future__ import annotations

import re
import time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.context import ActionResult
from harness.outcome import classify_exception
from harness.scenario.types import ContainerName, Model, Signal
from harness.verbs.registry import Need, action

class ContainerSpec(Model):
    """``container.run`` / ``container.create``: a container from an image (busybox by default)."""

    name: ContainerName
    image: str = "busybox"
    command: list[str] | str | None = None
    environment: dict[str, str] = {}
    labels: dict[str, str] = {}
    #: The low-level runtime for this container (dockerd's ``--runtime``); default: the engine's.
    runtime: str | None = None
    restart_policy: Literal["no", "always", "unless-stopped", "on-failure"] | None = None
    auto_remove: bool = False
    #: ``host``: the host's PID namespace (``docker run --pid host``)
    pid_mode: Literal["host"] | None = None
    #: an init process as pid 1 that reaps orphans (``docker run --init``: docker-init, i.e. tini)
    init: bool = False
    #: volumes as ``docker run -v``: ``NAME:/dst[:ro]`` (a named volume, made if missing) or ``/dst``
    #: (an anonymous volume); the scenario's volumes are tracked for ``cleanup.complete``
    volumes: list[str] = []
    #: capsize only: fail(9)-style failpoints, ``{"shim.delete": "1*delay(2s)"}``, passed as labels
    #: ``io.capsize.<tier>.failpoint.<method>``. ``lowlevel.<host operation>`` takes a host
    #: failpoint (runtime/host.py), ``delay(SECONDS)`` or ``error(ERRNO)``: the shim passes it to the
    #: low-level runtime only, as ``CAPSIZE_HOST_FAILPOINTS`` (e.g. ``{"lowlevel.pivot_root": "delay(3)"}``).
    failpoints: dict[str, str] = {}
    #: ``docker run --network``: a network name, ``bridge``, ``host``, ``none``, ``container:<name>``
    network: str | None = None
    #: ``--network-alias`` on ``network`` (a user-defined network)
    network_aliases: list[str] = []
    #: ``--ip`` on ``network`` (a user-defined network with a ``--subnet``)
    ip: str | None = None
    hostname: str | None = None
    #: published ports as ``docker run -p``: ``{"8080/tcp": 18080}`` (container port -> host
    #: port; null: a free host port), bound on the engine's namespace
    ports: dict[str, int | None] = {}

    @model_validator(mode="after")
    def _on_network(self):
        if (self.network_aliases or self.ip) and not self.network:
            raise ValueError("network_aliases and ip need a network")
        return self

    @field_validator("ports")
    @classmethod
    def _ports(cls, v):
        for key in v:
            if not re.match(r"^\d{1,5}(/(tcp|udp))?$", key):
                raise ValueError(f"port {key!r}: use PORT or PORT/tcp or PORT/udp")
        return v

    @field_validator("failpoints")
    @classmethod
    def _fp(cls, v):
        for key, term in v.items():
            if not re.match(r"^(daemon|runtime|shim|lowlevel)\.[a-z_]+$", key):
                raise ValueError(f"failpoint {key!r}: use <tier>.<method>, tier one of daemon, runtime, shim, lowlevel")
            if key.startswith("lowlevel.") and not re.match(
                    r"^(delay\(\s*\d+(\.\d+)?s?\s*\)|error\(\s*[A-Z][A-Z0-9]*\s*\))$", str(term).strip()):
                raise ValueError(f"failpoint {key}: {term!r}: a low-level (host) failpoint is delay(SECONDS) "
                                 f"or error(ERRNO), e.g. delay(3) or error(EBUSY)")
        return v


class ContainerRef(Model):
    name: ContainerName


class ContainerStop(Model):
    name: ContainerName
    timeout: int | None = Field(None, ge=0, description="grace period in seconds (docker stop -t)")


class ContainerKill(Model):
    name: ContainerName
    signal: Signal = 9


class ContainerRm(Model):
    name: ContainerName
    force: bool = False
    volumes: bool = False


class ContainerWait(Model):
    name: ContainerName
    condition: Literal["not-running", "next-exit", "removed"] = "not-running"


class ContainerExec(Model):
    """``container.exec``: run *command* in the running container (``docker exec``)."""

    name: ContainerName
    command: list[str] | str
    detach: bool = Field(False, description="do not wait (docker exec -d): no exit code")
    environment: dict[str, str] = {}
    user: str | None = None
    workdir: str | None = None


class ImageImport(Model):
    """Import the lab's busybox image (offline) as *reference*."""

    reference: str = "busybox:latest"




def _sdk(ctx, step, call) -> ActionResult:
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    client = ctx.engine.client(timeout=step.timeout)
    try:
        value = call(client)
        res.outcome = "ok"
        if isinstance(value, dict):
            res.value = value
    except Exception as e:  # noqa: BLE001 - every failure is an outcome, not a crash
        res.outcome, res.error, res.status_code = classify_exception(e)
    finally:
        res.duration = time.monotonic() - res.mono
        client.close()
    return res


def _create_kwargs(ctx, spec) -> dict:
    labels = dict(spec.labels)
    for key, term in spec.failpoints.items():
        tier, method = key.split(".", 1)
        labels[f"io.capsize.{tier}.failpoint.{method}"] = term
    kw = {"name": spec.name, "labels": labels, "environment": dict(spec.environment) or None,
          "command": spec.command, "detach": True}
    runtime = spec.runtime or ctx.engine.default_container_runtime()
    if runtime:
        kw["runtime"] = runtime
    if spec.restart_policy:
        kw["restart_policy"] = {"Name": spec.restart_policy}
    if spec.auto_remove:
        kw["auto_remove"] = True
    if spec.pid_mode:
        kw["pid_mode"] = spec.pid_mode
    if spec.init:
        kw["init"] = True
    if spec.volumes:
        kw["volumes"] = list(spec.volumes)
    if spec.network:
        kw["network"] = spec.network
        if spec.network_aliases or spec.ip:
            from docker.types import EndpointConfig
            kw["networking_config"] = {spec.network: EndpointConfig(
                "1.41", aliases=list(spec.network_aliases) or None, ipv4_address=spec.ip)}
    if spec.hostname:
        kw["hostname"] = spec.hostname
    if spec.ports:
        kw["ports"] = dict(spec.ports)
    return kw


def _spec_needs(p: ContainerSpec):
    """`failpoints` when failpoints are given"""
    return [Need("failpoints", "failpoints", "failpoints exist")] if p.failpoints else []


_CREATE_DOC = ("`failpoints` (capsize's engines: `{shim.delete: \"1*delay(2s)\"}` → label "
               "`io.capsize.shim.failpoint.delete`; `{lowlevel.pivot_root: \"delay(3)\"}` (a host operation of "
               "runtime/host.py, `delay(N)` or `error(ERRNO)`) → the shim runs the low-level runtime with "
               "`CAPSIZE_HOST_FAILPOINTS=pivot_root=delay(3)`); `pid_mode: host` (`--pid host`), `init: true` "
               "(`--init`: docker-init/tini as pid 1) on both engines; `volumes` (`-v NAME:/dst`, `-v /dst`); "
               "`network`, `network_aliases`, `ip`, `hostname`, `ports` (`--network`, `--network-alias`, `--ip`, `--hostname`, "
               "`-p HOST:CONTAINER`)")


def _target(ctx, p) -> str:
    return ctx.container_id(p.name) or p.name


@action("container.run", ContainerSpec, f"create and start a container (`docker run -d`); {_CREATE_DOC}",
        background=True, needs=_spec_needs, creates=lambda p: [p.name])
def container_run(ctx, step) -> ActionResult:
    p = step.params

    def run(client):
        c = client.containers.run(p.image, **_create_kwargs(ctx, p))
        ctx.remember(p.name, c.id, c.attrs.get("Mounts") or [])
        return {"id": c.id}
    return _sdk(ctx, step, run)


@action("container.create", ContainerSpec, f"create a container (`docker create`); {_CREATE_DOC}",
        background=True, needs=_spec_needs, creates=lambda p: [p.name])
def container_create(ctx, step) -> ActionResult:
    p = step.params

    def run(client):
        kw = _create_kwargs(ctx, p)
        kw.pop("detach")
        c = client.containers.create(p.image, **kw)
        ctx.remember(p.name, c.id, c.attrs.get("Mounts") or [])
        return {"id": c.id}
    return _sdk(ctx, step, run)


def _simple(name: str, params, doc: str, call, background: bool = False):
    """Register an SDK action ``call(api, target, params)`` on one existing container."""
    def execute(ctx, step) -> ActionResult:
        p = step.params
        return _sdk(ctx, step, lambda client: call(client.api, _target(ctx, p), p) or {})
    execute.__name__ = execute.__qualname__ = name.replace(".", "_")
    action(name, params, doc, background=background, container_field="name")(execute)
    return execute


def container_wait(ctx, step) -> ActionResult:
    p = step.params

    def run(client):
        r = client.api.wait(_target(ctx, p), timeout=step.timeout, condition=p.condition)
        return {"status_code": r.get("StatusCode"), "wait_error": (r.get("Error") or {}).get("Message")}
    res = _sdk(ctx, step, run)
    if res.outcome == "ok":
        res.exit_code = res.value.get("status_code")
    return res


def container_logs(ctx, step) -> ActionResult:
    p = step.params
    res = _sdk(ctx, step, lambda client: {"logs": client.api.logs(_target(ctx, p), stdout=True, stderr=True)
                                          .decode(errors="replace")})
    if res.outcome == "ok":
        res.stdout = res.value.pop("logs")
    return res


# registered in the order of the README table
_simple("container.start", ContainerRef, "start a created or stopped container",
        lambda api, t, p: api.start(t), background=True)
_simple("container.stop", ContainerStop, "stop: SIGTERM, SIGKILL after the grace `timeout` (s)",
        lambda api, t, p: api.stop(t, timeout=p.timeout), background=True)
_simple("container.kill", ContainerKill, "send `signal` to the container's init",
        lambda api, t, p: api.kill(t, signal=p.signal), background=True)
_simple("container.restart", ContainerStop, "restart: stop (grace `timeout`, default 10 s), then start",
        lambda api, t, p: api.restart(t, timeout=p.timeout if p.timeout is not None else 10), background=True)
_simple("container.rm", ContainerRm, "remove (`force`: also a running one; `volumes`: its anonymous volumes)",
        lambda api, t, p: api.remove_container(t, force=p.force, v=p.volumes), background=True)
action("container.wait", ContainerWait, "wait for the `condition`; its status code is the step's `exit_code`",
       background=True, container_field="name")(container_wait)
_simple("container.pause", ContainerRef, "freeze the container's processes (cgroup freezer)",
        lambda api, t, p: api.pause(t))
_simple("container.unpause", ContainerRef, "thaw the container's processes",
        lambda api, t, p: api.unpause(t))
action("container.logs", ContainerRef, "the container's stdout and stderr (the step's `stdout`)",
       container_field="name")(container_logs)
_simple("container.inspect", ContainerRef, "the daemon's `State` of the container (in the result)",
        lambda api, t, p: {"state": api.inspect_container(t)["State"]})


def container_exec(ctx, step) -> ActionResult:
    p = step.params

    def run(client):
        api = client.api
        eid = api.exec_create(_target(ctx, p), p.command, environment=dict(p.environment) or None,
                              user=p.user or "", workdir=p.workdir)["Id"]
        out = api.exec_start(eid, detach=p.detach)
        ins = api.exec_inspect(eid)
        value = {"exec_id": eid, "exec_exit_code": ins.get("ExitCode"), "pid": ins.get("Pid")}
        if not p.detach:
            value["output"] = (out or b"").decode(errors="replace") if isinstance(out, bytes) else str(out or "")
        return value
    res = _sdk(ctx, step, run)
    if res.outcome == "ok":
        res.exit_code = res.value.pop("exec_exit_code")
        res.stdout = res.value.pop("output", None)
    return res


action("container.exec", ContainerExec, "run `command` in the running container (`docker exec`; `detach`, "
       "`environment`, `user`, `workdir`); its exit code is the step's `exit_code`, its output the `stdout`",
       background=True, container_field="name")(container_exec)


@action("image.import", ImageImport, "import the lab's busybox image (offline) as `reference`")
def image_import(ctx, step) -> ActionResult:
    return _sdk(ctx, step, lambda client: {"id": ctx.engine.import_busybox(step.params.reference)})
