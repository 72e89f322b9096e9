"""The engine adapter interface: what the harness needs from an engine, by role.

An adapter starts an engine under a private root, hands out a ``docker`` SDK client and the
``DOCKER_HOST`` for the real CLI, maps roles (``daemon``, ``runtime``, ``shim``, ``container``,
``lowlevel``) to processes, knows how to stop/kill/start each component, where its API socket,
logs, event sources and state are, and removes everything it made (:meth:`Engine.close`), also
for a harness that died (:meth:`Engine.recover`, from the ledger's record).

Errors: :class:`~runtime.errors.Unavailable` (a component is down or will not start),
:class:`~runtime.errors.Unimplemented` (the engine has no such role or operation: the caller
reports it as n/a with the message), :class:`~runtime.errors.NotFound` (no such container process).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from runtime.errors import Unimplemented

#: Every role a scenario can name (an engine has some of them: :attr:`Engine.roles`).
ALL_ROLES = ("daemon", "runtime", "shim", "container", "lowlevel")
#: Why an engine may lack a capability, for the loader's messages (capability -> remark).
CAPABILITY_NOTES = {"role:lowlevel": "runc exits after create/start"}

#: The socket activator the engines start the daemon behind (``fault.start: {listen: activator}``).
ACTIVATOR = "systemd-socket-activate"


def still_activator(pid: int) -> bool:
    """Whether *pid* still runs the socket activator: it becomes the daemon (same pid, exec) only
    on the first connection, so until then it is not the daemon (roles, the event stream)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0.decode(errors="replace")) == ACTIVATOR



@dataclass(frozen=True)
class LogSource:
    """A component's log: ``component`` (a role), ``path``, ``format`` (``logfmt`` | ``jsonl`` |
    ``journald``; for journald ``path`` is the unit name)."""

    component: str
    path: str
    format: str


@dataclass
class HostState:
    """What exists on the host under the engine's roots, one string per thing, by kind."""

    process: list[str] = field(default_factory=list)
    mount: list[str] = field(default_factory=list)
    cgroup: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    socket: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    #: volumes the scenario's containers mounted, still known to the engine (filled by the run
    #: context, engine-agnostic: :meth:`harness.context.RunContext.host_state`)
    volume: list[str] = field(default_factory=list)
    #: in the engine's network namespace, against the run's start (engine-agnostic, filled by
    #: the run context: :func:`harness.observe.netstate.leftovers`): veths of no running
    #: container, bridges of no network, netfilter rules and port proxies of containers gone
    veth: list[str] = field(default_factory=list)
    bridge: list[str] = field(default_factory=list)
    rule: list[str] = field(default_factory=list)
    proxy: list[str] = field(default_factory=list)

    KINDS = ("process", "mount", "cgroup", "netns", "socket", "state", "volume", "veth", "bridge", "rule", "proxy")

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in self.KINDS}


class Engine:
    """Base class. Subclasses set :attr:`name` and implement the abstract parts.

    *workdir*: a private directory the engine may use (short: unix socket paths are limited);
    *options*: :class:`harness.scenario.models.EngineOptions`.
    """

    name = "engine"
    # -- capabilities: declared here once per engine class, read by the loader (without an
    # instance) and by the verbs (:meth:`capabilities`) --------------------------------------
    #: Roles this engine has (a fault or check on another role is n/a here).
    roles: tuple[str, ...] = ("daemon", "runtime", "shim", "container")
    #: Whether the engine supports failpoints (capsize's fail(9)-style terms).
    failpoints = False
    #: Whether the engine's daemons are systemd units (``fault.service.*``, ``service.state``).
    systemd = False
    #: Whether the daemon labels a made-up exit code itself (capsized: the die event's
    #: ``exitCodeSource``, ``State.Error``; runtime.api.exits). Where not (dockerd), the
    #: ``container.exit`` check derives the provenance from the runtime's exit event.
    labels_exit_provenance = False
    #: Capabilities the engine lacks by design, with why (``{"role:runtime": "..."}``): a scenario
    #: that names the engine but needs one of them is n/a there with the reason, not an error.
    missing: dict[str, str] = {}
    #: Seconds the daemon's event stream may lag behind what happened (the runner waits this
    #: long after the teardown steps, before the after-teardown checks).
    event_latency: float = 0.0
    #: The default ``bridge`` network's device (dockerd's ``docker0``, capsized's ``capsize0``).
    default_bridge = "docker0"
    #: The engine's own network namespace (an nsfs bind mount) when it runs in one, else None:
    #: network faults and checks act in it, never in the host's.
    netns_path: str | None = None

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        """What the engine can do, from its class attributes: ``role:<role>`` for each of
        :attr:`roles`, ``failpoints``, ``systemd``. Verbs name these in their ``needs``."""
        caps = {f"role:{r}" for r in cls.roles}
        caps |= {c for c in ("failpoints", "systemd") if getattr(cls, c)}
        return frozenset(caps)

    def __init__(self, workdir: str, options):
        self.workdir = workdir
        self.options = options
        #: Ids of the containers the scenario made (:meth:`track_container`).
        self.tracked: set[str] = set()

    # -- availability and lifecycle -----------------------------------------------------------
    @classmethod
    def unavailable(cls, options=None) -> str | None:
        """None when this engine can run here; else why not (one line, starting "engine unavailable:")."""
        raise NotImplementedError

    def prepare(self) -> dict:
        """Note what exists before the engine starts; returns :meth:`record` (for the ledger)."""
        return self.record()

    def start(self) -> None:
        """Start every component and import the lab's busybox image as ``busybox:latest``."""
        raise NotImplementedError

    def close(self) -> list[str]:
        """Remove everything the engine made (processes, mounts, cgroups, sockets, dirs); returns problems."""
        raise NotImplementedError

    def record(self) -> dict:
        """What :meth:`recover` needs to clean up after a harness that died (JSON-able)."""
        raise NotImplementedError

    @classmethod
    def recover(cls, record: dict) -> list[str]:
        """Clean up the engine described by *record* (from :meth:`record`) without its harness."""
        raise NotImplementedError

    def track_container(self, container_id: str) -> None:
        """The scenario made container *container_id* (full id). Engines the harness does not own
        (the system's, under systemd) remove exactly these on :meth:`close`."""
        self.tracked.add(container_id)

    # -- clients ------------------------------------------------------------------------------
    @property
    def docker_host(self) -> str:
        """``unix://<path>``: the Engine API, for the SDK and ``DOCKER_HOST``."""
        raise NotImplementedError

    def client(self, timeout: float = 120.0):
        """A new ``docker.DockerClient`` on the engine (API 1.41). The caller closes it."""
        import docker
        return docker.DockerClient(base_url=self.docker_host, version="1.41", timeout=timeout)

    def cli_env(self) -> dict[str, str]:
        """Environment for the real docker CLI: the process's, without DOCKER_*, plus DOCKER_HOST."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.docker_host
        return env

    def cli_binary(self) -> str:
        from runtime.runtimes import which
        path = which("docker")
        if not path:
            raise Unimplemented("the docker CLI is not installed (Debian's docker.io has it)")
        return path

    def import_busybox(self, reference: str = "busybox:latest") -> str:
        """Load the lab's busybox image (offline, ``docker load`` through the Engine API) as
        *reference*; returns the image id."""
        import tempfile

        from runtime import busybox
        client = self.client(timeout=120)
        try:
            with tempfile.TemporaryDirectory(prefix="capsize-image-") as d:
                path = os.path.join(d, "busybox.tar")
                busybox.write_image_tar(path, reference)
                with open(path, "rb") as f:
                    client.images.load(f.read())
            return client.images.get(reference).id
        finally:
            client.close()

    def default_container_runtime(self) -> str | None:
        """The runtime name to pass with each container create (None: the engine's default)."""
        return None

    # -- components by role -------------------------------------------------------------------
    def api_socket(self) -> str:
        """The daemon's API socket path."""
        raise NotImplementedError

    def pids(self, role: str, container_id: str | None = None) -> list[int]:
        """Live PIDs of *role* (of container *container_id* for shim/container). Raises Unimplemented."""
        raise NotImplementedError

    def owned_pids(self) -> set[int]:
        """PIDs this process spawned and waits for itself (daemons): the orphan reaper leaves them."""
        return set()

    def stop_component(self, role: str, timeout: float = 30.0) -> dict:
        """SIGTERM the daemon or runtime and wait (SIGKILL after *timeout*). Returns facts (exit status)."""
        raise NotImplementedError

    def kill_component(self, role: str, sig: int) -> dict:
        """Send *sig* to the daemon or runtime (SIGKILL: and reap it). Returns facts."""
        raise NotImplementedError

    def start_component(self, role: str, timeout: float = 60.0, wait: bool = True, listen: str = "socket") -> dict:
        """Start the daemon or runtime again on the same state. Returns facts (seconds to ready).

        *listen* (daemon only): ``socket`` (its own unix socket), ``activator`` (socket
        activation: ``systemd-socket-activate`` holds the API socket and starts the daemon with
        ``-H fd://`` on the first connection; returns once the socket listens) or ``fd``
        (``-H fd://`` without an activator: a misconfiguration, the start fails)."""
        raise NotImplementedError

    def signal_pids(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop_pids(self, pids: list[int], timeout: float) -> dict:
        """SIGTERM *pids*, wait up to *timeout*, then SIGKILL; returns ``{"killed": [...]}``."""
        from harness.reference.cleanup import alive, reap
        self.signal_pids(pids, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            for p in pids:
                reap(p)
            time.sleep(0.02)
        left = [p for p in pids if alive(p)]
        self.signal_pids(left, signal.SIGKILL)
        return {"killed": left}

    # -- observation --------------------------------------------------------------------------
    def classify(self, pid: int, ppid: int, cmdline: list[str], cgroup: str) -> tuple[str | None, str | None]:
        """``(role, container id)`` of a process, or ``(None, None)`` when it is not the engine's."""
        raise NotImplementedError

    def container_cgroup_pids(self, container_id: str) -> list[int]:
        """PIDs in the container's cgroup (all hierarchies)."""
        return []

    def log_sources(self) -> list[LogSource]:
        raise NotImplementedError

    def runtime_events_argv(self, after: str | None = None) -> list[str] | None:
        """A command that prints the runtime's events (one per line), or None.

        *after* is the ``cursor`` of the last event parsed before the stream was lost (see
        :meth:`parse_runtime_event`); an engine whose runtime can replay starts the new stream
        with what came after it, one without replay ignores it and streams from now.
        """
        return None

    def parse_runtime_event(self, line: str) -> dict | None:
        """``{"time", "action", "container", "attrs"}`` from one line of the runtime's event stream,
        plus ``"cursor"`` (a string for :meth:`runtime_events_argv`) where the runtime can replay."""
        return None

    def runtime_view(self) -> dict[str, tuple[int, str]]:
        """``{container id: (pid, STATUS)}`` as the runtime sees its tasks. Raises Unavailable when down."""
        raise Unimplemented(f"engine {self.name} has no runtime view")

    def runtime_tasks(self) -> dict[str, dict]:
        """``{container id: {"pid", "status" (upper case, as ``ctr tasks ls``), "exit_status",
        "exit_source", "exit_reason"}}`` as the runtime reports its tasks itself (the exit fields
        None where its task list does not carry them: containerd's ``ctr tasks ls``). Asks the
        runtime, not the daemon: usable while the daemon is down. Raises Unavailable when the
        runtime is down, Unimplemented for an engine without one."""
        return {cid: {"pid": pid, "status": status, "exit_status": None, "exit_source": None, "exit_reason": None}
                for cid, (pid, status) in self.runtime_view().items()}

    def lifecycle_actions(self, source: str) -> dict[str, tuple[str, ...]]:
        """Per phase (create, start, exit, delete): the event actions that mark it on *source*."""
        if source == "daemon":
            return {"create": ("create",), "start": ("start",), "exit": ("die",), "delete": ("destroy",)}
        return {"create": ("/tasks/create",), "start": ("/tasks/start",), "exit": ("/tasks/exit",),
                "delete": ("/tasks/delete",)}

    def image_store(self) -> dict:
        """The image store's consistency, read on the host without changing it: ``{<problem>:
        [...], ...}`` (an empty list per problem kind when sound) plus counts. Unimplemented for
        an engine whose store cannot be read."""
        raise Unimplemented(f"engine {self.name} has no readable image store")

    def host_state(self, container_ids: list[str]) -> HostState:
        """What of the engine's containers *container_ids* exists on the host now (for cleanup.complete)."""
        raise NotImplementedError
