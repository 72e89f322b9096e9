"""Stop and kill as dockerd does them (daemon/stop.go, daemon/kill.go), with every wait bounded.

``stop`` (``POST /containers/{id}/stop?t=N``): send the container's stop signal (``StopSignal``
of the container, else of the image, else SIGTERM) through the runtime and wait *t* seconds
(``t``, else the container's ``StopTimeout``, else 10) for the exit; then SIGKILL through the
runtime and wait :data:`KILL_WAIT` s; then SIGKILL the init directly by its pid (the runtime may
be down: seed experiment 3) and wait :data:`DIRECT_KILL_WAIT` s for the exit event. When none
comes the answer is dockerd's: ``cannot stop container: NAME: tried to kill container, but did
not receive an exit event`` (HTTP 500, the CLI's exit status 1). A stopped container's ``stop``
is HTTP 304. Events: ``kill`` (signal=N) for each signal sent, ``die`` (from the exit), ``stop``.

``kill`` (``POST /containers/{id}/kill?signal=S``): a running container only (409 ``Container ID
is not running``); the signal through the runtime, and for SIGKILL the same bounded wait for the
exit (``Cannot kill container: NAME: tried to kill container, but did not receive an exit
event`` when none arrives).
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal

from runtime import signals
from runtime.errors import CapsizeError, FailedPrecondition, InvalidArgument, NotFound

#: Seconds to wait for the exit after the runtime's SIGKILL (dockerd: 10 s).
KILL_WAIT = 10.0
#: Seconds to wait for the exit event after SIGKILLing the init directly.
DIRECT_KILL_WAIT = 2.0
#: When the runtime refused the SIGKILL (it is down), the wait before the direct kill.
KILL_WAIT_RUNTIME_DOWN = 1.0
DEFAULT_STOP_TIMEOUT = 10


class NoExitEvent(CapsizeError):
    """The container was killed but no exit event arrived (HTTP 500, as dockerd's errdefs.System)."""


def parse_signal(value, default: int = _signal.SIGKILL) -> int:
    """A signal given as a number, ``KILL`` or ``SIGKILL`` (:func:`runtime.signals.parse`); *default*
    when empty; InvalidArgument (400, dockerd's ``Invalid signal: X``) otherwise."""
    if value is None or value == "":
        return default
    try:
        return signals.parse(value if isinstance(value, int) else str(value))
    except ValueError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


def stop_signal(container, image_config: dict | None = None) -> int:
    raw = container.Config.get("StopSignal") or (image_config or {}).get("StopSignal")
    try:
        return parse_signal(raw, _signal.SIGTERM)
    except InvalidArgument:
        return _signal.SIGTERM


async def wait_exit(container, timeout: float) -> bool:
    """True when *container* is no longer running within *timeout* seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while container.State.running:
        left = end - loop.time()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(container.changed.wait(), left)
        except asyncio.TimeoutError:
            return not container.State.running
    return True


async def _send(daemon, container, sig: int) -> bool:
    """Event ``kill``, then the signal through the runtime; False (logged) when it could not be delivered."""
    daemon.events.publish("container", "kill", container.ID, container.event_attributes(signal=sig),
                          image=container.image_ref)
    return await _deliver(daemon, container, sig)


async def _deliver(daemon, container, sig: int) -> bool:
    try:
        await daemon.backend.kill(container.ID, sig)
        return True
    except NotFound:
        return True   # the process already finished: its exit event is on its way
    except CapsizeError as e:
        daemon.log.error(f"Error sending signal {sig} to container", container=container.ID, error=e.message)
        return False


def _direct_kill(container) -> None:
    if container.State.Pid > 0:
        try:
            os.kill(container.State.Pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


async def kill_and_wait(daemon, container, name: str, verb: str) -> None:
    """SIGKILL through the runtime, bounded waits, then directly; NoExitEvent when no exit arrives."""
    delivered = await _send(daemon, container, _signal.SIGKILL)
    wait = KILL_WAIT if delivered else KILL_WAIT_RUNTIME_DOWN
    if await wait_exit(container, wait):
        return
    daemon.log.error(f"Container failed to exit within {wait:g} seconds of kill - trying direct SIGKILL",
                     container=container.ID)
    _direct_kill(container)
    if await wait_exit(container, DIRECT_KILL_WAIT):
        return
    raise NoExitEvent(f"{verb}: {name}: tried to kill container, but did not receive an exit event")


async def stop(daemon, container, name: str, timeout: int | None) -> bool:
    """Stop *container*; False when it was not running (the route answers 304)."""
    if not container.State.running and container.State.Status != "restarting":
        return False
    if container.State.Status == "restarting":
        daemon.cancel_restart(container)
        container.HasBeenManuallyStopped = True
        await daemon.set_exited_from_restarting(container)
        daemon.events.publish("container", "stop", container.ID, container.event_attributes(),
                              image=container.image_ref)
        return True
    container.HasBeenManuallyStopped = True
    container.stopping = True
    try:
        if timeout is None:
            timeout = container.Config.get("StopTimeout")
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        image_config = await daemon.image_config_of(container)
        sig = stop_signal(container, image_config)
        if container.State.Status == "paused" and sig != _signal.SIGKILL:
            # a paused container cannot handle the signal: dockerd resumes it after signalling
            delivered = await _send(daemon, container, sig)
            if delivered:
                try:
                    await daemon.backend.resume(container.ID)
                except CapsizeError:
                    pass
        elif sig != _signal.SIGKILL and timeout == 0:
            # no grace period: the signal is sent, but nobody waits for it before the SIGKILL
            daemon.events.publish("container", "kill", container.ID, container.event_attributes(signal=sig),
                                  image=container.image_ref)
            daemon.spawn(_deliver(daemon, container, sig))
            delivered = True
        elif sig != _signal.SIGKILL:
            delivered = await _send(daemon, container, sig)
        else:
            delivered = False
        if sig != _signal.SIGKILL:
            wait = timeout if timeout >= 0 else 365 * 86400
            if not delivered:
                wait = min(wait, KILL_WAIT_RUNTIME_DOWN) if timeout >= 0 else KILL_WAIT_RUNTIME_DOWN
            if await wait_exit(container, wait):
                daemon.events.publish("container", "stop", container.ID, container.event_attributes(),
                                      image=container.image_ref)
                return True
            daemon.log.info(f"Container failed to exit within {timeout}s of signal {sig} - using the force",
                            container=container.ID)
        await kill_and_wait(daemon, container, name, "cannot stop container")
        daemon.events.publish("container", "stop", container.ID, container.event_attributes(),
                              image=container.image_ref)
        return True
    finally:
        container.stopping = False
        await daemon.save(container)


async def kill(daemon, container, name: str, sig: int) -> None:
    if not container.State.running:
        raise FailedPrecondition(f"Cannot kill container: {name}: Container {container.ID} is not running")
    container.HasBeenManuallyStopped = True   # as dockerd's killWithSignal: no restart policy after
    if sig == _signal.SIGKILL:
        await kill_and_wait(daemon, container, name, "Cannot kill container")
        return
    delivered = await _send(daemon, container, sig)
    if not delivered:
        raise NoExitEvent(f"Cannot kill container: {name}: the runtime did not deliver signal {sig}")
