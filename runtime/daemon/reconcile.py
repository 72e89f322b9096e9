"""Reconciling capsized's records with capsize-runtimed: at start-up and after a reconnect.

At start-up (:func:`at_start`, before the API serves, as dockerd's ``restore``), for each
container recorded as running, paused or restarting, the runtime's task decides:

* task running/paused, ``--live-restore``: adopted (same pid, still ``Up``, no events);
* task running/paused, no live-restore: stopped as ``docker stop`` would (stop signal, the
  container's stop timeout, SIGKILL; events ``kill``, ``die``, ``stop``) — dockerd's behaviour;
* task stopped (it exited while the daemon was down): ``Exited`` with the task's real exit
  status (the shim's exit file) and a ``die`` event; the same three provenances as the event
  path (:func:`runtime.daemon.backend.exit_provenance`, :mod:`runtime.api.exits`): real, 137
  from a clean-up that killed a live init (``State.Error`` says so), or 255 made up when the
  runtime says nobody recorded it or has no task at all (``State.Error`` says why);
* an ``AutoRemove`` (``--rm``) container that exited meanwhile is removed (``destroy``);
* every network sandbox left of a container that is no longer running is removed
  (:func:`runtime.daemon.sandbox.sweep`): a SIGKILLed capsized leaks no netns mount;
* the published ports (proxies, DNAT rules) of a container that is no longer running are
  removed (:func:`runtime.daemon.ports.sweep`), as are proxies recorded for unknown containers;
* on the default bridge, every address no container's endpoint holds is freed
  (:meth:`runtime.daemon.ipam.Ipam.retain`): a capsized killed in the middle of a start (the
  address saved, the container's record not yet) leaks no address.

Then containers whose restart policy says so (``always``; ``unless-stopped`` not stopped by the
user) are started. When capsized started without the runtime (``--runtime-wait`` ran out), this
start-up reconcile runs when the runtime first becomes reachable
(:meth:`runtime.daemon.daemon.Daemon.on_runtime_up`). After a reconnect (:func:`resync`) the same task check runs for containers
believed running, so exits missed while the runtime was down are applied (dockerd does not do
this: baseline E3 "Docker never converges"; capsize does).
"""

from __future__ import annotations

import asyncio

from runtime.api import exits
from runtime.daemon import restart, sandbox, stop as stopmod
from runtime.daemon.backend import exit_provenance
from runtime.errors import CapsizeError, NotFound


async def _check(daemon, c, adopt: bool) -> None:
    try:
        st = await daemon.backend.task_state(c.ID)
    except NotFound:
        st = None
    except CapsizeError as e:
        daemon.log.warning("cannot get task state", container=c.ID, error=e.message)
        return
    if st is None:
        if c.State.running:
            c.TaskExists = False
            await daemon.on_task_exit(c.ID, c.State.Pid, exits.UNKNOWN_STATUS, 0, source=exits.UNKNOWN,
                                      reason="the runtime has no task for the container: nothing recorded its exit")
        return
    if st["status"] in ("running", "paused", "created", "creating", "unknown"):
        if adopt or st["status"] in ("created", "creating", "unknown"):
            if st["status"] in ("running", "paused"):
                c.State.Pid = st.get("pid") or c.State.Pid
                c.State.move(st["status"])
                c.TaskExists = True
                await daemon.save(c)
            return
        # no live-restore: stop it, as dockerd does at start-up
        async with c.lock:
            manual = c.HasBeenManuallyStopped
            try:
                await stopmod.stop(daemon, c, c.ID, None)
            except CapsizeError as e:
                daemon.log.error("failed to stop container at start-up", container=c.ID, error=e.message)
            c.HasBeenManuallyStopped = manual
            await daemon.save(c)
        return
    if st["status"] == "deleting" and st.get("exit_status") is None:
        # the runtime is cleaning up after a dead shim right now: its /tasks/exit, with the real
        # status, follows on the event stream (replayed from the runtime's boot): nothing to make up
        return
    # stopped
    c.TaskExists = True
    code, prov, reason = exit_provenance(st)   # as the event path (backend._dispatch)
    await daemon.on_task_exit(c.ID, st.get("pid") or c.State.Pid, code, st.get("exited_at_ns") or 0,
                              source=prov, reason=reason)


async def at_start(daemon) -> None:
    live = daemon.config.live_restore
    checks = []
    for c in list(daemon.containers.values()):
        if c.State.Status == "restarting":
            c.State.move("exited")
            await daemon.save(c)
        if c.State.running:
            checks.append(_check(daemon, c, live))
        elif c.TaskExists:
            checks.append(_cleanup(daemon, c))
    await asyncio.gather(*checks)
    for cid in sandbox.sweep(daemon):   # sandboxes of containers no longer running (a crash left them)
        daemon.log.info("removed a leftover network sandbox", container=cid)
        if cid in daemon.containers:
            await daemon.save(daemon.containers[cid])   # its endpoint detached, SandboxKey empty
    from runtime.daemon import ports
    for cid in ports.sweep(daemon):   # published ports of containers no longer running (a crash left them)
        daemon.log.info("removed leftover published ports", container=cid)
        if cid in daemon.containers:
            await daemon.save(daemon.containers[cid])
    for nid, br in daemon.networks.bridges.items():
        # a running or paused container's endpoint (after the sweep, no other holds one; one
        # being started right now, when this runs late in on_runtime_up, holds its own already)
        keep = {ep["IPAddress"] for c in daemon.containers.values() for ep in c.Networks.values()
                if ep.get("NetworkID") == nid and ep.get("IPAddress")}
        for address in br.ipam.retain(br.pool_key, keep):
            daemon.log.info("freed a leftover address", network=br.pool_key, address=address)
    for c in list(daemon.containers.values()):
        if c.removed:
            continue
        if c.State.Status == "exited" and c.HostConfig.get("AutoRemove"):
            await daemon._auto_remove(c)
        elif not c.State.running and restart.start_at_boot(c.HostConfig, c.HasBeenManuallyStopped):
            try:
                await daemon.start(c)
            except CapsizeError as e:
                daemon.log.error("failed to start container at boot", container=c.ID, error=e.message)


async def _cleanup(daemon, c) -> None:
    try:
        async with c.task_lock:
            await daemon._delete_task(c)
        await daemon.save(c)
    except CapsizeError as e:
        daemon.log.warning("failed to delete a stopped task", container=c.ID, error=e.message)


async def resync(daemon) -> None:
    """After the runtime came back: apply exits that happened while it was unreachable."""
    await asyncio.gather(*(_check(daemon, c, True) for c in list(daemon.containers.values())
                           if c.State.running))
    await daemon.execs.resync()
