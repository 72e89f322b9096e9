"""Containers' network sandboxes: capsized owns each container's network namespace, as dockerd
(libnetwork's ``osl``) owns ``/var/run/docker/netns/<id>``.

* :func:`key` — the sandbox of container *cid*: ``<exec-root>/netns/<cid>`` (inspect's
  ``NetworkSettings.SandboxKey``), an nsfs bind mount (:mod:`runtime.netns`), ``lo`` up.
* :func:`place` — at create: the key goes in the spec capsize-runtimed keeps for the container.
* :func:`apply` — before the task is created (on the spec :func:`place` already filled, as
  :meth:`runtime.daemon.daemon.Daemon.container_spec` gives it): makes the sandbox and hands it to the low-level
  runtime by path (OCI config-linux.md "Namespaces": ``{"type": "network", "path": KEY}``: the
  runtime setns(2)s into it instead of unsharing a new one; capsize-runc, runc and crun do).
  ``NetworkMode`` ``host``: no sandbox (the spec has no network namespace: the runtime's; when
  capsized runs in a namespace of its own, that one, by path: the containers' host is the engine's);
  ``container:<ref>``: the other container's sandbox (it must be running, dockerd's
  ``cannot join network of a non running container``); every other mode: a sandbox of its own.
* :func:`release` — after the task is deleted (or its creation failed): unmounted and removed.
* :func:`sweep` — at start-up, after the reconcile: a sandbox whose container is not running
  (it died, or was stopped, while capsized was down: SIGKILL left its bind mount) is removed
  with its bridge endpoint (the daemon's ``_release_sandbox``), so that a crash leaks no netns
  mount (moby's known leak); those of running containers are kept.

Where capsized runs (:func:`scope`): ``private`` when its network namespace has no device but
``lo`` and those capsized makes (bridges, veths), as a namespace made for the engine by
``capsize engine up`` or the harness; ``host`` otherwise (a real NIC: the machine's namespace).
In ``host`` scope capsized makes sandboxes only (new, empty namespaces: nothing in the host's
namespace changes) and never a bridge, address, route or netfilter rule; in ``private`` scope a
container also gets an endpoint on each of its networks' bridges (:mod:`runtime.daemon.endpoints`),
detached before its sandbox goes.

Errors: FailedPrecondition (409) for ``container:<ref>`` naming a container that is not running;
CapsizeError (500) when the kernel refuses a namespace (the errno's text).
"""

from __future__ import annotations

import os

from runtime import netns
from runtime.errors import CapsizeError, FailedPrecondition

#: device names capsized may make in its namespace (its bridges and veth ends): see :func:`scope`
OWN_PREFIXES = ("veth", "capsize", "br-")


def directory(exec_root: str) -> str:
    return os.path.join(exec_root, "netns")


def key(exec_root: str, cid: str) -> str:
    """``<exec-root>/netns/<cid>``: the sandbox (network namespace bind mount) of container *cid*."""
    return os.path.join(directory(exec_root), cid)


def scope() -> tuple[str, list[str]]:
    """(``"private"`` | ``"host"``, the foreign devices found) for capsized's own network namespace
    (see the module docstring). The device names come from ``/proc/self/net/dev`` (proc(5): two
    header lines, then ``<name>: <counters>``), the namespace of capsized's main thread (what
    :data:`runtime.daemon.bridge.SELF` means); a file read: call it off the event loop, e.g.
    ``asyncio.to_thread``. OSError when /proc cannot be read."""
    with open("/proc/self/net/dev") as f:
        names = [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]
    foreign = sorted(n for n in names if n != "lo" and not n.startswith(OWN_PREFIXES))
    return ("host" if foreign else "private"), foreign


def mode_of(host_config: dict) -> str:
    return host_config.get("NetworkMode") or "default"


def _set_path(spec: dict, path: str) -> bool:
    found = False
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = path
            found = True
    return found


def joins(c) -> bool:
    """Whether *c*'s task joins another container's namespace (``container:<ref>``): its spec's
    path is then only known at start, and the runtime's copy must be updated there."""
    return mode_of(c.HostConfig).startswith("container:")


def engine_key(exec_root: str) -> str:
    """``<exec-root>/engine-netns``: capsized's own namespace, bound there when it is private
    (:func:`bind_engine`): what ``NetworkMode: host`` containers join."""
    return os.path.join(exec_root, "engine-netns")


def bind_engine(exec_root: str) -> None:
    """Bind capsized's own network namespace on :func:`engine_key` (again after a restart)."""
    path = engine_key(exec_root)
    if netns.is_mounted(path) and netns.inode(path) == netns.inode():
        return
    netns.remove(path)
    netns.bind(f"/proc/{os.getpid()}/ns/net", path)


def place(daemon, c, spec: dict) -> None:
    """Put the path of the namespace *c*'s tasks join in *spec* (at create: the runtime keeps this
    spec for every task of the container; the sandbox itself is made at each start by
    :func:`apply`). ``NetworkMode: host`` when capsized runs in a namespace of its own: that
    namespace (the containers' host is the engine's, not the machine's)."""
    namespaces = spec["linux"]["namespaces"]
    if not any(ns["type"] == "network" for ns in namespaces):
        if daemon.networks.private:
            namespaces.append({"type": "network", "path": engine_key(daemon.config.exec_root)})
    elif not joins(c):
        _set_path(spec, key(daemon.config.exec_root, c.ID))


def apply(daemon, c, spec: dict) -> str | None:
    """Make (or find) the sandbox *c*'s task joins and put its path in *spec*'s network namespace;
    returns the key when the sandbox is *c*'s own (to :func:`release` later), else None. *spec*
    has been through :func:`place` already (``Daemon.container_spec``): not done again here."""
    mode = mode_of(c.HostConfig)
    namespaces = spec["linux"]["namespaces"]
    if mode == "host" or not any(ns["type"] == "network" for ns in namespaces):
        return None    # NetworkMode host: the engine's namespace (place) or, in the host's, the runtime's
    if mode.startswith("container:"):
        path = joined_key(daemon, mode.split(":", 1)[1])
        own = None
    else:
        path = own = key(daemon.config.exec_root, c.ID)
        try:
            netns.create(path)
        except OSError as e:
            raise CapsizeError(f"failed to create the network sandbox of {c.ID[:12]}: {e}") from None
        try:
            daemon.attach_endpoints(c, path)   # eth0.. on each network's bridge (runtime.daemon.endpoints)
        except BaseException:
            release(daemon.config.exec_root, c.ID)
            raise
    _set_path(spec, path)
    return own


def joined_key(daemon, ref: str) -> str:
    """The network namespace ``--network container:<ref>`` joins (the running container's)."""
    other = daemon.get(ref)
    if not other.State.running:
        raise FailedPrecondition(f"cannot join network of a non running container: {other.ID}")
    mode = mode_of(other.HostConfig)
    if mode == "host":
        return f"/proc/{other.State.Pid}/ns/net"
    if mode.startswith("container:"):
        return joined_key(daemon, mode.split(":", 1)[1])
    path = key(daemon.config.exec_root, other.ID)
    return path if netns.is_mounted(path) else f"/proc/{other.State.Pid}/ns/net"


def release(exec_root: str, cid: str) -> bool:
    """Remove container *cid*'s sandbox; True when there was one. Errors are the kernel's (OSError)."""
    path = key(exec_root, cid)
    existed = os.path.lexists(path)
    netns.remove(path)
    return existed


def sweep(daemon) -> list[str]:
    """Remove every sandbox under ``<exec-root>/netns/`` whose container is not running or paused
    (or is unknown), through *daemon*'s ``_release_sandbox`` (its endpoint detached too); returns
    the container ids whose sandbox went (a failure is logged there, and the id left out)."""
    try:
        names = sorted(os.listdir(directory(daemon.config.exec_root)))
    except FileNotFoundError:
        return []
    return [cid for cid in names
            if not (cid in daemon.containers and daemon.containers[cid].State.Status in ("running", "paused"))
            and daemon._release_sandbox(cid)]
