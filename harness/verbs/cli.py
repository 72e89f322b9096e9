"""The ``cli`` action: the real docker CLI against the engine (``DOCKER_HOST`` set to it).

One registration (:mod:`harness.verbs.registry`). Its parameter is the command line, a string
(split as a shell would, :func:`shlex.split`) or a list of words, starting with ``docker``.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from harness.context import ActionResult
from harness.observe.proctree import disown, own
from harness.verbs.registry import action


def _cli_argv(value) -> list[str]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as e:
            raise ValueError(f"cannot split the command line: {e}") from None
    elif isinstance(value, list) and all(isinstance(a, (str, int, float)) for a in value):
        argv = [str(a) for a in value]
    else:
        raise ValueError("cli is a command line string or a list of words")
    if not argv or argv[0] != "docker":
        raise ValueError("cli runs the docker CLI: start the command with 'docker'")
    return argv


Argv = Annotated[list[str], BeforeValidator(_cli_argv),
                 WithJsonSchema({"anyOf": [{"type": "string", "pattern": "^\\s*docker\\b"},
                                           {"type": "array", "items": {"type": "string"}}],
                                 "description": "a docker CLI command line"})]


def cli_container_names(argv: list[str]) -> list[str]:
    """Names given with ``--name`` to ``docker [container] run|create`` in *argv*."""
    words = argv[1:]
    if words[:1] == ["container"]:
        words = words[1:]
    if words[:1] not in (["run"], ["create"]):
        return []
    names = []
    for i, w in enumerate(words):
        if w == "--name" and i + 1 < len(words):
            names.append(words[i + 1])
        elif w.startswith("--name="):
            names.append(w.split("=", 1)[1])
    return names


@action("cli", Argv, "the real docker CLI with `DOCKER_HOST` set to the engine: exit code, stdout, stderr",
        params_doc="`docker ...` (string or list)", background=True, creates=cli_container_names)
def cli_action(ctx, step) -> ActionResult:
    """Outcome: ok for exit 0; unknown when cut off by the step's timeout (killed) or when the CLI
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
        for name in cli_container_names(step.params):
            ctx.container_id(name)
    return res
