"""The ``capsize-proxy`` processes of published ports (dockerd's docker-proxy processes): started
by capsized in its own network namespace, one per published address, port and protocol, each
handed its already bound socket as fd 3 (``-use-listen-fd``, :mod:`runtime.proxy.cli`).

Record: ``<exec-root>/ports/<container id>.json`` — ``{"proxies": [{"pid", "starttime", "proto",
"host_ip", "host_port", "container_ip", "container_port"}]}`` (``starttime``: field 22 of
``/proc/<pid>/stat``, so that a reused pid is never taken for a proxy), written before
:func:`start` returns; a restarted capsized finds its proxies there (they outlive it: own
session, no parent-death signal), keeps those of containers it adopts (live-restore) and stops
the others (:func:`stop`, :func:`sweep`).

* :func:`start` — spawn the proxies (posix_spawn: stdin/stdout ``/dev/null``, stderr capsized's);
  a thread reaps each (no zombie when one dies or is killed, e.g. the ``fault.proxy.kill`` fault).
* :func:`stop` — SIGTERM each recorded proxy still alive (checked: same start time, a
  ``capsize-proxy`` command line), SIGKILL after :data:`STOP_WAIT` seconds, wait until it is gone
  (its socket closed: the port free again), remove the record.
* :func:`sweep` — :func:`stop` for every record whose container is not running (nor paused).
* :func:`alive` — the recorded proxies of a container that still run.

Errors: CapsizeError (500) when capsize-proxy is not installed or cannot be spawned.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from runtime import atomicfile
from runtime.errors import CapsizeError

NAME = "capsize-proxy"
STOP_WAIT = 1.0


def directory(exec_root: str) -> str:
    return os.path.join(exec_root, "ports")


def record_path(exec_root: str, cid: str) -> str:
    return os.path.join(directory(exec_root), cid + ".json")


def _starttime(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (None: gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _is_proxy(entry: dict) -> bool:
    pid = entry.get("pid") or 0
    if pid <= 0 or _starttime(pid) != entry.get("starttime"):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return any(os.path.basename(a) == NAME for a in argv[:2]) and str(entry.get("host_port")) in argv


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:   # reaped elsewhere
        pass


def read(exec_root: str, cid: str) -> list[dict]:
    try:
        with open(record_path(exec_root, cid)) as f:
            return json.load(f).get("proxies") or []
    except (OSError, ValueError):
        return []


def alive(exec_root: str, cid: str) -> list[dict]:
    """The recorded proxies of container *cid* that still run."""
    return [e for e in read(exec_root, cid) if _is_proxy(e)]


def start(exec_root: str, cid: str, made: list[tuple[dict, object]]) -> None:
    """Spawn a proxy for each (mapping, bound socket) of *made* (mapping: a ``PortMappings``
    item of :mod:`runtime.daemon.ports`) and record them; on a failure the ones started are stopped."""
    from runtime.runtimes import capsize_command
    if not made:
        return
    program = capsize_command(NAME)
    if program is None:
        raise CapsizeError(f"Error starting userland proxy: {NAME} not found (install capsize: ./scripts/setup.sh)")
    entries = []
    os.makedirs(directory(exec_root), mode=0o700, exist_ok=True)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for m, sock in made:
            argv = [program, "-proto", m["Proto"], "-host-ip", m["HostIp"], "-host-port", str(m["HostPort"]),
                    "-container-ip", m["ContainerIp"], "-container-port", str(m["ContainerPort"]),
                    "-use-listen-fd"]
            actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                       (os.POSIX_SPAWN_DUP2, sock.fileno(), 3)]
            try:
                pid = os.posix_spawn(program, argv, os.environ, file_actions=actions, setsid=True)
            except OSError as e:
                _write(exec_root, cid, entries)
                stop(exec_root, cid)
                raise CapsizeError(f"Error starting userland proxy: {e}") from None
            threading.Thread(target=_reap, args=(pid,), daemon=True, name=f"reap-{pid}").start()
            entries.append({"pid": pid, "starttime": _starttime(pid), "proto": m["Proto"], "host_ip": m["HostIp"],
                            "host_port": m["HostPort"], "container_ip": m["ContainerIp"],
                            "container_port": m["ContainerPort"]})
    finally:
        os.close(null)
    _write(exec_root, cid, entries)


def _write(exec_root: str, cid: str, entries: list[dict]) -> None:
    atomicfile.write(record_path(exec_root, cid), json.dumps({"proxies": entries}), durable=False, mode=0o600)


def stop(exec_root: str, cid: str) -> int:
    """Stop container *cid*'s recorded proxies (module docstring); returns how many were running."""
    entries = [e for e in read(exec_root, cid) if _is_proxy(e)]
    for e in entries:
        try:
            os.kill(e["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_WAIT
    left = entries
    while left:
        left = [e for e in left if _starttime(e["pid"]) == e["starttime"]]
        if not left:
            break
        if time.monotonic() > deadline:
            for e in left:
                try:
                    os.kill(e["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = float("inf")
        time.sleep(0.005)
    try:
        os.unlink(record_path(exec_root, cid))
    except FileNotFoundError:
        pass
    return len(entries)


def sweep(daemon) -> list[str]:
    """Stop the proxies of every container that is not running or paused (or is unknown): what a
    capsized killed while its containers stopped or died left; returns their ids."""
    try:
        names = sorted(n[:-5] for n in os.listdir(directory(daemon.config.exec_root)) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    gone = []
    for cid in names:
        c = daemon.containers.get(cid)
        if c is None or c.State.Status not in ("running", "paused"):
            stop(daemon.config.exec_root, cid)
            gone.append(cid)
    return gone
