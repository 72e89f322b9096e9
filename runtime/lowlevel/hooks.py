"""OCI lifecycle hooks (config.md "POSIX-platform Hooks").

Each hook is ``{"path", "args"?, "env"?, "timeout"?}``; it runs with the container's state JSON
on stdin. Where they run and what a failure means:

=================  ==============================  =================================================
hook               when / where                    on failure
=================  ==============================  =================================================
prestart           create, runtime namespace,      create fails (and is cleaned up)
                   after namespaces, before
                   pivot_root (deprecated; Docker
                   uses it for libnetwork-setkey)
createRuntime      same point as prestart          create fails
createContainer    create, container namespaces,   create fails
                   before pivot_root
startContainer     start, in the container,        start fails
                   before the user process
poststart          start, runtime namespace        logged as a warning; lifecycle continues
poststop           delete, runtime namespace       logged as a warning; delete continues
=================  ==============================  =================================================
"""

from __future__ import annotations

import os

from runtime import jsonfast

from runtime.errors import CapsizeError, InvalidArgument


class HookError(CapsizeError):
    """A hook exited non-zero, could not be started, or timed out."""


def run_hooks(config: dict, kind: str, state: dict) -> None:
    """Run every ``hooks[kind]`` entry in order with *state* on stdin; raise HookError on the first failure."""
    hooks = (config.get("hooks") or {}).get(kind) or []
    if not hooks:
        return
    import subprocess  # only when there are hooks: it is a costly import on the create path

    payload = jsonfast.dumps(state).encode()
    for i, hook in enumerate(hooks):
        path = hook.get("path") if isinstance(hook, dict) else None
        if not path or not os.path.isabs(path):
            raise InvalidArgument(f"hooks.{kind}[{i}].path: must be an absolute path")
        args = hook.get("args") or [path]
        env = hook.get("env")
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(args, executable=path, input=payload, capture_output=True,
                                  env={k: v for k, v in (e.split("=", 1) for e in env)} if env is not None else {},
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HookError(f"{kind} hook #{i} ({path}) did not finish within {timeout}s") from None
        except OSError as e:
            raise HookError(f"{kind} hook #{i} ({path}): {e.strerror}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            if proc.returncode < 0:   # Go's exec.ExitError wording, as runc prints it
                import signal
                how = f"signal: {signal.strsignal(-proc.returncode) or -proc.returncode}".lower()
            else:
                how = f"exit status {proc.returncode}"
            raise HookError(f"error running hook #{i} ({kind}, {path}): {how}" + (f": {detail[-1]}" if detail else ""))


def run_hooks_warn(config: dict, kind: str, state: dict, warn) -> None:
    """Run hooks whose failure must not stop the lifecycle (poststart, poststop); report through *warn*."""
    try:
        run_hooks(config, kind, state)
    except CapsizeError as e:
        warn(str(e))
