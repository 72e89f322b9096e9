"""Checks of what a container's life really was: where its exit code comes from, whether its
processes are the same ones as before a step, and what the runtime itself says of its task.

One registration each (:mod:`harness.verbs.registry`), as the checks of :mod:`harness.verbs.checks`:

* ``container.exit`` — the exit code's provenance (:mod:`runtime.api.exits`: ``real``,
  ``cleanup-kill``, ``unknown``) with ``State.Error``; inspect's ``ExitCode`` and the last
  ``die``'s ``exitCode`` must agree, and a made-up code must be the one its provenance makes
  (137, 255). capsized labels a made-up code itself (``die``'s ``exitCodeSource``,
  ``State.Error``); dockerd does not, so on Docker the provenance is derived from containerd's
  ``/tasks/exit`` for the init: ``real`` when its ``exit_status`` is inspect's code, ``unknown``
  when dockerd shows another code; n/a when no ``/tasks/exit`` of the init was seen, and for
  ``cleanup-kill`` (containerd's dead-shim clean-up publishes its 137 as an ordinary exit).
* ``process.same`` — the container's init (or shim) is the process it was right after step
  ``since``: same pid and same start time (``create_time``: not a reused pid), i.e. adopted
  across a restart, not restarted.
* ``runtime.task`` — the runtime's own task view (``capsize-runtimed``'s ``GET /tasks``,
  containerd's ``ctr tasks ls``): status, pid, exit status (from the task list, else from the
  runtime's ``/tasks/exit`` event) and ``exit_source`` (capsize only). It asks the runtime, not
  the daemon: it works while the daemon is down.
"""

from __future__ import annotations

from typing import Literal

from harness.pids import identify
from harness.scenario.types import ContainerName, Model, Text, describe_text, text_matches
from harness.verbs.registry import FAIL, NA, PASS, Verdict, check
from runtime.api import exits
from runtime.errors import CapsizeError, Unimplemented

Provenance = Literal["real", "cleanup-kill", "unknown"]
#: The status each made-up provenance reports (runtime.api.exits).
_MADE_UP_STATUS = {exits.CLEANUP_KILL: exits.CLEANUP_KILL_STATUS, exits.UNKNOWN: exits.UNKNOWN_STATUS}


class ContainerExitCheck(Model):
    """A container's exit: ``provenance`` (real | cleanup-kill | unknown), ``exit_code``
    (inspect's), ``error`` (``State.Error`` contains / matches; ``no_error: true``: it is empty)."""

    name: ContainerName
    provenance: Provenance | None = None
    exit_code: int | None = None
    error: Text | None = None
    no_error: bool = False


class ProcessSameCheck(Model):
    """The container's ``role`` (container: its init; shim) is the process it was right after step
    ``since`` (a step id): same pid, same start time."""

    container: ContainerName
    since: str
    role: Literal["container", "shim"] = "container"


class RuntimeTaskCheck(Model):
    """The runtime's own task of ``container``: ``status`` (created | running | paused | stopped |
    unknown, or absent: no task), ``exit_status``, ``exit_source`` (shim | exit-file |
    cleanup-kill | unknown; capsize only)."""

    container: ContainerName
    status: Literal["created", "running", "paused", "stopped", "unknown", "absent"] | None = None
    exit_status: int | None = None
    exit_source: Literal[exits.EXIT_SOURCES] | None = None


def _inspect(ctx, cid: str | None, name: str):
    """``(State dict | None if removed, error line | None)``."""
    import docker
    client = ctx.engine.client(timeout=10)
    try:
        return client.api.inspect_container(cid or name)["State"], None
    except docker.errors.NotFound:
        return None, None
    except Exception as e:  # noqa: BLE001 - the daemon is down or does not answer
        from harness.outcome import classify_exception
        return None, f"the daemon did not answer: {classify_exception(e)[1]}"
    finally:
        client.close()


def _init_exits(ctx, cid: str) -> list[dict]:
    """The runtime's ``/tasks/exit`` events of the container's init (not of its execs)."""
    if ctx.events is None:
        return []
    return [e for e in ctx.events.matching("runtime", "/tasks/exit", cid)
            if str(e["attrs"].get("id") or cid) == cid]


def _container_exit(ctx, p: ContainerExitCheck) -> Verdict:
    cid = ctx.container_id(p.name)
    if not cid:
        return Verdict(NA, reason=f"container {p.name} never existed")
    state, err = _inspect(ctx, cid, p.name)
    if err:
        return Verdict(FAIL, "the daemon's inspect", err, reason=err)
    if state is None:
        return Verdict(NA, reason=f"container {p.name} is removed: its exit is no longer shown")
    expected = {k: v for k, v in (("provenance", p.provenance), ("exit_code", p.exit_code)) if v is not None}
    if p.error is not None:
        expected["error"] = describe_text(p.error)
    if p.no_error:
        expected["error"] = "empty"
    code, error = state.get("ExitCode"), state.get("Error") or ""
    die = ctx.events.matching("daemon", "die", cid) if ctx.events else []
    rt = _init_exits(ctx, cid)
    seen = {"status": state.get("Status"), "exit_code": code, "error": error,
            "die_exit_code": int(die[-1]["attrs"]["exitCode"]) if die and "exitCode" in die[-1]["attrs"] else None,
            "die_exit_code_source": die[-1]["attrs"].get("exitCodeSource") if die else None,
            "runtime_exit_status": rt[-1]["attrs"].get("exit_status") if rt else None,
            "runtime_exit_source": rt[-1]["attrs"].get("exit_source") if rt else None}
    evidence = [{"die_events": [{"t": ctx.t(e["mono"]), **e["attrs"]} for e in die][-3:],
                 "runtime_exit_events": [{"t": ctx.t(e["mono"]), **e["attrs"]} for e in rt][-3:]}]
    bad = []
    if state.get("Running") or state.get("Status") not in ("exited", "dead"):
        bad.append(f"the container has not exited (status {state.get('Status')})")
    if seen["die_exit_code"] is not None and seen["die_exit_code"] != code:
        bad.append(f"die's exitCode {seen['die_exit_code']} is not inspect's ExitCode {code}")
    na = ""
    if ctx.engine.labels_exit_provenance:
        prov = exits.provenance_of_error(error) or exits.REAL
        if die:
            die_prov = seen["die_exit_code_source"] or exits.REAL
            if die_prov != prov:
                bad.append(f"die says {die_prov}, State.Error says {prov}")
        seen["provenance_from"] = "State.Error and die's exitCodeSource"
    elif rt:
        prov = exits.REAL if rt[-1]["attrs"].get("exit_status") == code else exits.UNKNOWN
        seen["provenance_from"] = ("containerd's /tasks/exit (its dead-shim clean-up's 137 is published "
                                   "as an ordinary exit, so it counts as real here)")
    else:
        prov = None
        na = (f"engine {ctx.engine.name}: the daemon does not label a made-up exit code and no runtime "
              f"/tasks/exit of the init was seen, so where the exit code comes from is unknowable")
    seen["provenance"] = prov
    if prov in _MADE_UP_STATUS and code != _MADE_UP_STATUS[prov]:
        bad.append(f"a {prov} exit must be {_MADE_UP_STATUS[prov]}, not {code}")
    if p.exit_code is not None and code != p.exit_code:
        bad.append(f"exit code {code}, not {p.exit_code}")
    if p.error is not None and not text_matches(p.error, error):
        bad.append(f"State.Error {error!r} does not {describe_text(p.error)}")
    if p.no_error and error:
        bad.append(f"State.Error is not empty: {error!r}")
    if p.provenance is not None and not bad:
        if prov is None:
            return Verdict(NA, expected, seen, evidence, reason=na)
        if p.provenance == exits.CLEANUP_KILL and not ctx.engine.labels_exit_provenance:
            return Verdict(NA, expected, seen, evidence,
                           reason=f"engine {ctx.engine.name}: a clean-up's 137 looks like a real exit "
                                  "(containerd's cleanupAfterDeadShim publishes it as one)")
        if prov != p.provenance:
            bad.append(f"provenance {prov}, not {p.provenance}")
    return Verdict(FAIL if bad else PASS, expected, seen, evidence + ([{"problems": bad}] if bad else []),
                   reason="; ".join(bad))


def _process_same(ctx, p: ProcessSameCheck) -> Verdict:
    cid = ctx.container_id(p.container)
    if not cid:
        return Verdict(NA, reason=f"container {p.container} never existed")
    if p.role not in ctx.engine.roles:
        return Verdict(NA, reason=f"engine {ctx.engine.name} has no {p.role} process")
    at = ctx.step_snapshots.get(p.since)
    if at is None:
        return Verdict(NA, reason=f"step {p.since} did not run")
    then = at["processes"].get(p.container, {}).get(p.role, [])
    what = "init" if p.role == "container" else "shim"
    expected = f"the {what} of {p.container} after step {p.since}: {then or 'none'}"
    if len(then) != 1 or then[0]["create_time"] is None:
        return Verdict(FAIL, expected, None, reason=f"{p.container} had no single live {what} right after step "
                                                    f"{p.since} (t={at['t']:.3f}s): {then}")
    try:
        now = identify(ctx.engine.pids(p.role, cid))
    except CapsizeError as e:
        return Verdict(FAIL, expected, f"unavailable: {e}", reason=str(e))
    now = [q for q in now if q["create_time"] is not None]
    same = any(q["pid"] == then[0]["pid"] and abs(q["create_time"] - then[0]["create_time"]) < 0.05 for q in now)
    if same:
        return Verdict(PASS, expected, now)
    if not now:
        why = f"no {what} of {p.container} runs now"
    elif any(q["pid"] == then[0]["pid"] for q in now):
        why = f"pid {then[0]['pid']} was reused: started at {now[0]['create_time']}, not {then[0]['create_time']}"
    else:
        why = f"another {what} now: pid {now[0]['pid']}, not {then[0]['pid']} (a restart, not an adoption)"
    return Verdict(FAIL, expected, now, [{"then": then, "now": now}], reason=why)


def _runtime_task(ctx, p: RuntimeTaskCheck) -> Verdict:
    cid = ctx.container_id(p.container)
    if not cid:
        return Verdict(NA, reason=f"container {p.container} never existed")
    expected = {k: v for k, v in (("status", p.status), ("exit_status", p.exit_status),
                                  ("exit_source", p.exit_source)) if v is not None}
    try:
        task = ctx.engine.runtime_tasks().get(cid)
    except Unimplemented:
        raise   # n/a with its message (registry.evaluate_once)
    except CapsizeError as e:  # Unavailable: the runtime is down
        return Verdict(FAIL, expected, f"unavailable: {e}", reason=f"the runtime did not answer: {e}")
    seen = dict(task) if task else {"status": "absent"}
    seen["status"] = seen["status"].lower()
    rt = _init_exits(ctx, cid)
    if task and task.get("exit_status") is None and rt and seen["status"] == "stopped":
        seen["exit_status"] = rt[-1]["attrs"].get("exit_status")
        seen["exit_status_from"] = "the runtime's /tasks/exit event (its task list has none)"
    bad = []
    if p.status is not None and seen["status"] != p.status:
        bad.append(f"status {seen['status']}, not {p.status}")
    if p.exit_status is not None and seen.get("exit_status") != p.exit_status:
        bad.append(f"exit status {seen.get('exit_status')}, not {p.exit_status}")
    if p.exit_source is not None:
        if not ctx.engine.labels_exit_provenance:
            return Verdict(NA, expected, seen, reason=f"engine {ctx.engine.name}'s runtime reports no exit source")
        if seen.get("exit_source") != p.exit_source:
            bad.append(f"exit source {seen.get('exit_source')}, not {p.exit_source}")
    return Verdict(FAIL if bad else PASS, expected, seen, [{"problems": bad}] if bad else [], reason="; ".join(bad))


@check("container.exit", ContainerExitCheck, "the exit code's provenance (real, cleanup-kill, unknown) and "
       "State.Error; inspect and die agree; a made-up code is 137/255 (Docker: from containerd's /tasks/exit, "
       "n/a where unknowable)", container_field="name")
def container_exit(ctx, p: ContainerExitCheck) -> Verdict:
    return _container_exit(ctx, p)


@check("process.same", ProcessSameCheck, "the container's init (or shim) is the process it was right after step "
       "`since`: same pid, same start time (adopted, not restarted)", container_field="container")
def process_same(ctx, p: ProcessSameCheck) -> Verdict:
    return _process_same(ctx, p)


@check("runtime.task", RuntimeTaskCheck, "the runtime's own view of the task (status, exit status, exit source), "
       "asked of the runtime: works while the daemon is down", container_field="container")
def runtime_task(ctx, p: RuntimeTaskCheck) -> Verdict:
    return _runtime_task(ctx, p)
