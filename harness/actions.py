"""Actions: container operations through the ``docker`` SDK, the real docker CLI, sleep, wait,
snapshot, await. Every action returns an :class:`~harness.context.ActionResult` whose outcome
is Jepsen's: ``ok`` (it happened), ``fail`` (it certainly did not: the daemon answered with an
error, or could not be reached at all), ``unknown`` (the call was cut off or the connection broke
mid-call: it may or may not have happened). Faults are in :mod:`harness.faults`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time

from harness.context import ActionResult
from harness.outcome import classify_exception
from harness.observe.proctree import disown, own


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
    return kw


def container_action(ctx, step) -> ActionResult:
    """The ``container.*`` and ``image.import`` actions through the SDK."""
    action, p = step.action, step.params

    def run(client):
        if action in ("container.run", "container.create"):
            kw = _create_kwargs(ctx, p)
            if action == "container.run":
                c = client.containers.run(p.image, **kw)
            else:
                kw.pop("detach")
                c = client.containers.create(p.image, **kw)
            ctx.remember(p.name, c.id)
            return {"id": c.id}
        if action == "image.import":
            return {"id": ctx.engine.import_busybox(p.reference)}
        target = ctx.container_id(p.name) or p.name
        api = client.api
        if action == "container.start":
            api.start(target)
        elif action == "container.stop":
            api.stop(target, timeout=p.timeout)
        elif action == "container.restart":
            api.restart(target, timeout=p.timeout if p.timeout is not None else 10)
        elif action == "container.kill":
            api.kill(target, signal=p.signal)
        elif action == "container.rm":
            api.remove_container(target, force=p.force, v=p.volumes)
        elif action == "container.pause":
            api.pause(target)
        elif action == "container.unpause":
            api.unpause(target)
        elif action == "container.wait":
            r = api.wait(target, timeout=step.timeout, condition=p.condition)
            return {"status_code": r.get("StatusCode"), "wait_error": (r.get("Error") or {}).get("Message")}
        elif action == "container.logs":
            return {"logs": api.logs(target, stdout=True, stderr=True).decode(errors="replace")}
        elif action == "container.inspect":
            return {"state": api.inspect_container(target)["State"]}
        return {}

    res = _sdk(ctx, step, run)
    if action == "container.wait" and res.outcome == "ok":
        res.exit_code = res.value.get("status_code")
    if action == "container.logs" and res.outcome == "ok":
        res.stdout = res.value.pop("logs")
    return res


def cli_action(ctx, step, background=None) -> ActionResult:
    """``cli``: the real docker CLI with DOCKER_HOST set to the engine; exit code, stdout, stderr.

    Outcome: ok for exit 0; unknown when cut off by the step's timeout (killed) or when the CLI
    reports a connection broken mid-call (EOF, reset); fail otherwise."""
    argv = [ctx.engine.cli_binary()] + list(step.params[1:])
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=ctx.engine.cli_env())
        own(proc.pid)
        try:
            res.exit_code = proc.wait(step.timeout)
            cut = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            res.exit_code = None
            cut = True
        finally:
            disown(proc.pid)
        res.duration = time.monotonic() - res.mono
        out.seek(0), err.seek(0)
        res.stdout = out.read().decode(errors="replace")
        res.stderr = err.read().decode(errors="replace")
    if cut:
        res.outcome, res.error = "unknown", f"docker CLI killed after the step's timeout of {step.timeout:g}s"
    elif res.exit_code == 0:
        res.outcome = "ok"
    else:
        text = res.stderr or res.stdout or ""
        broken = "error during connect" in text and any(s in text for s in ("EOF", "connection reset", "broken pipe"))
        res.outcome = "unknown" if broken else "fail"
        res.error = text.strip()
    if res.outcome == "ok":
        from harness.scenario.loader import cli_container_names
        for name in cli_container_names(step.params):
            ctx.container_id(name)
    return res


def sleep_action(ctx, step) -> ActionResult:
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    time.sleep(step.params)
    res.duration = time.monotonic() - res.mono
    return res


def snapshot_action(ctx, step) -> ActionResult:
    """``snapshot: label``: process tree, host state, the daemon's and the runtime's views."""
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    idx = ctx.take_snapshot(step.params, host_state=True)
    views = {}
    try:
        views["runtime"] = {cid: list(v) for cid, v in ctx.engine.runtime_view().items()}
    except Exception as e:  # noqa: BLE001 - down or not supported: recorded as such
        views["runtime"] = f"unavailable: {e}"
    client = ctx.engine.client(timeout=5)
    try:
        views["daemon"] = {c["Id"]: {"names": c["Names"], "state": c["State"], "status": c["Status"]}
                           for c in client.api.containers(all=True)}
    except Exception as e:  # noqa: BLE001
        views["daemon"] = f"unavailable: {classify_exception(e)[1]}"
    finally:
        client.close()
    res.value = {"snapshot": idx, "views": views}
    res.duration = time.monotonic() - res.mono
    return res


def wait_action(ctx, step) -> ActionResult:
    """``wait``: poll ``for`` until it holds (ok), ``fail_if`` holds (fail) or ``timeout`` (fail)."""
    from harness.checks import condition_holds
    spec = step.params
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    deadline = res.mono + spec.timeout
    polls = 0
    while True:
        polls += 1
        held, detail = condition_holds(ctx, spec.for_)
        if held:
            res.outcome, res.value = "ok", {"polls": polls, "evidence": detail}
            break
        if spec.fail_if is not None:
            bad, bad_detail = condition_holds(ctx, spec.fail_if)
            if bad:
                res.outcome, res.error = "fail", "fail_if held"
                res.value = {"polls": polls, "evidence": bad_detail}
                break
        if time.monotonic() >= deadline:
            res.outcome, res.error = "fail", f"not within {spec.timeout:g}s"
            res.value = {"polls": polls, "last": detail}
            break
        time.sleep(spec.interval)
    res.duration = time.monotonic() - res.mono
    return res
