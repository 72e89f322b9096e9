"""The ``terminal`` action: the real docker CLI on a pseudo-terminal of its own, typed into and
read back the way a person uses it (``docker run -it``, ``docker exec -it``, ``docker attach``).

One registration (:mod:`harness.verbs.registry`). The command line starts with ``docker`` (as
for ``cli``); the CLI runs with ``DOCKER_HOST`` set to the engine, on a new pty of ``rows`` x
``cols`` (:class:`harness.terminal.Terminal`). ``script`` is a list of interactions, each one of:
``type`` (keys, ``\\r`` is Enter), ``expect`` (text that must appear on the screen within
``within``, default 10 s), ``resize`` (``[rows, cols]``: the CLI gets SIGWINCH) and ``detach``
(``true``: ctrl-p ctrl-q). After the script the CLI's exit is awaited (the step's timeout): its
exit code is the step's ``exit_code``, the screen (escape sequences removed) its ``stdout``.
"""

from __future__ import annotations

import time

from pydantic import Field, model_validator

from harness.context import ActionResult
from harness.observe.proctree import disown, own
from harness.scenario.types import Model
from harness.verbs.cli import Argv, cli_container_names
from harness.verbs.registry import action


class Interaction(Model):
    """One interaction: exactly one of ``type``, ``expect``, ``resize``, ``detach``."""

    type: str | None = None
    expect: str | None = None
    within: float = Field(10.0, description="seconds an `expect` may wait")
    resize: tuple[int, int] | None = Field(None, description="[rows, cols]")
    detach: bool = False

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("type", "expect", "resize") if getattr(self, k) is not None] + \
            (["detach"] if self.detach else [])
        if len(given) != 1:
            raise ValueError("an interaction is exactly one of type, expect, resize, detach")
        return self


class TerminalSession(Model):
    """``terminal``: a docker CLI command on a pty, and what is typed and read on it."""

    command: Argv
    rows: int = Field(24, ge=1, le=1000)
    cols: int = Field(80, ge=1, le=1000)
    script: list[Interaction] = []


def _names(p: TerminalSession) -> list[str]:
    return cli_container_names(p.command)


@action("terminal", TerminalSession, "the real docker CLI on a pty of its own (`docker run -it`, "
        "`exec -it`, `attach`): `script` types keys, expects text on the screen, resizes the window, "
        "detaches (ctrl-p ctrl-q); the CLI's exit code is the step's `exit_code`, the screen its `stdout`",
        background=True, creates=_names)
def terminal_action(ctx, step) -> ActionResult:
    """Outcome: ok when every ``expect`` was seen and the CLI exited 0; unknown when it was still
    running at the step's timeout (killed); fail otherwise (the error names what was missing)."""
    from harness.terminal import DETACH, Terminal
    p = step.params
    argv = [ctx.engine.cli_binary()] + list(p.command[1:])
    res = ActionResult(wall=time.time(), mono=time.monotonic())
    deadline = res.mono + step.timeout
    with Terminal(argv, env=ctx.engine.cli_env(), rows=p.rows, cols=p.cols) as term:
        own(term.proc.pid)
        try:
            for i, it in enumerate(p.script):
                if it.type is not None:
                    term.type(it.type)
                elif it.expect is not None:
                    term.expect(it.expect, timeout=min(it.within, max(0.0, deadline - time.monotonic())))
                elif it.resize is not None:
                    term.resize(*it.resize)
                elif it.detach:
                    term.type(DETACH)
            res.exit_code = term.wait(max(0.0, deadline - time.monotonic()))
            res.outcome = "ok" if res.exit_code == 0 else "fail"
            if res.exit_code:
                res.error = f"docker CLI exited {res.exit_code}"
        except TimeoutError as e:
            cut = term.proc.poll() is None and time.monotonic() >= deadline
            res.outcome, res.error = ("unknown" if cut else "fail"), str(e)
            res.exit_code = term.proc.poll()
        finally:
            disown(term.proc.pid)
            res.stdout = term.screen
    res.duration = time.monotonic() - res.mono
    if res.outcome == "ok":
        for name in _names(p):
            ctx.container_id(name)
    return res
