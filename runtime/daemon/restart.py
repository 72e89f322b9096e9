"""Restart policies (``HostConfig.RestartPolicy``), as dockerd applies them (restartmanager).

Policies: ``no`` (or empty), ``always``, ``unless-stopped``, ``on-failure`` with an optional
``MaximumRetryCount``. :func:`validate` raises InvalidArgument (400) with dockerd's texts.
:func:`should_restart` decides after an exit that was not caused by an explicit stop/kill of the
user: ``always`` and ``unless-stopped`` restart on every exit, ``on-failure`` on a non-zero exit
while ``RestartCount < MaximumRetryCount`` (0 = unlimited). :func:`backoff` is the delay before
the restart: 100 ms doubling per consecutive restart (capped at 1 minute), reset to 100 ms when
the container ran at least 10 s. :func:`start_at_boot` says whether the daemon starts the
container at its own start-up: ``always``, or ``unless-stopped`` not stopped by the user.
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
BASE_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def policy(host_config: dict) -> tuple[str, int]:
    p = host_config.get("RestartPolicy") or {}
    return (p.get("Name") or "no"), int(p.get("MaximumRetryCount") or 0)


def validate(host_config: dict) -> None:
    p = host_config.get("RestartPolicy") or {}
    name = p.get("Name") or ""
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    count = p.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise InvalidArgument("invalid restart policy: MaximumRetryCount must be an integer")
    if count < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if host_config.get("AutoRemove") and name not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")


def should_restart(host_config: dict, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    if manually_stopped:
        return False
    name, maximum = policy(host_config)
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return exit_code != 0 and (maximum == 0 or restart_count < maximum)
    return False


def backoff(previous_delay: float, ran_seconds: float) -> float:
    if ran_seconds >= RESET_AFTER or previous_delay <= 0:
        return BASE_DELAY
    return min(previous_delay * 2, MAX_DELAY)


def start_at_boot(host_config: dict, manually_stopped: bool) -> bool:
    name, _ = policy(host_config)
    return name == "always" or (name == "unless-stopped" and not manually_stopped)
