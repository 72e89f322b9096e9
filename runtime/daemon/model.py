"""The container record capsized keeps, and its Engine API views.

A :class:`Container` is what ``<data-root>/daemon/containers/<id>/config.v2.json`` holds
(:meth:`Container.to_record` / :meth:`Container.from_record`): the create request's ``Config``
and ``HostConfig`` (with the image's defaults filled in), the image id, the name, the restart
count and the :class:`State`. Times are kept as integer nanoseconds since the epoch.

Views:

* :meth:`Container.inspect` — ``GET /containers/{id}/json`` (``ContainerInspectResponse``, API 1.41);
* :meth:`Container.summary` — one item of ``GET /containers/json`` (``ContainerSummary``);
* :meth:`State.status_text` — the ``Status`` column of ``docker ps`` (``Up 3 seconds``,
  ``Exited (137) 2 minutes ago``, ``Up 5 seconds (Paused)``, ``Restarting (1) 1 second ago``,
  ``Created``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

from runtime.api.states import DAEMON
from runtime.daemon.clock import human_duration, rfc3339

#: The HostConfig fields of the Engine API 1.41 with their zero values (what dockerd shows for
#: fields a create request left out).
HOST_CONFIG_DEFAULTS = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": None, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
    "CgroupnsMode": "host", "Dns": None, "DnsOptions": None, "DnsSearch": None, "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
    "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 67108864, "Runtime": "capsize-runc", "ConsoleSize": [0, 0], "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": None,
    "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
    "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}

#: The container Config fields (ContainerConfig) with their zero values.
CONFIG_DEFAULTS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}

#: The Engine API's ContainerState.Status values (the table: :data:`runtime.api.states.DAEMON`).
STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


@dataclass
class State:
    """A container's state (``ContainerState``); *Status* is one of :data:`STATUSES`."""

    Status: str = "created"
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    OOMKilled: bool = False
    StartedAt: int = 0
    FinishedAt: int = 0
    #: Where ExitCode comes from (:data:`runtime.api.exits.PROVENANCES`): ``real``,
    #: ``cleanup-kill`` (137: the clean-up of a dead shim killed the init) or ``unknown`` (255, made
    #: up); ``State.Error`` labels the last two (:func:`runtime.api.exits.state_error`).
    ExitCodeSource: str = "real"

    @property
    def running(self) -> bool:
        return self.Status in ("running", "paused")

    def move(self, status: str, message: str | None = None) -> None:
        """The one way *Status* changes (:data:`runtime.api.states.DAEMON`); FailedPrecondition
        naming both states when the table forbids it."""
        DAEMON.move(self, status, attr="Status", what="container", message=message)

    def started(self, pid: int, started_at: int) -> "State":
        """The state of a fresh run of the container's task (dockerd's SetRunning): running
        with *pid* since *started_at* (ns); the last run's exit code, error and OOM flag cleared."""
        self.move("running")
        return State(Status=self.Status, Pid=pid, StartedAt=started_at, ExitCode=0)

    def view(self) -> dict:
        return {"Status": self.Status, "Running": self.Status in ("running", "paused"),
                "Paused": self.Status == "paused", "Restarting": self.Status == "restarting",
                "OOMKilled": self.OOMKilled, "Dead": self.Status == "dead", "Pid": self.Pid,
                "ExitCode": self.ExitCode, "Error": self.Error, "StartedAt": rfc3339(self.StartedAt),
                "FinishedAt": rfc3339(self.FinishedAt)}

    def status_text(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.Status in ("running", "paused"):
            text = "Up " + human_duration(now - self.StartedAt / 1e9)
            return text + " (Paused)" if self.Status == "paused" else text
        if self.Status == "restarting":
            return f"Restarting ({self.ExitCode}) {human_duration(now - self.FinishedAt / 1e9)} ago"
        if self.Status == "removing":
            return "Removal In Progress"
        if self.Status == "dead":
            return "Dead"
        if self.Status == "exited" or self.FinishedAt:
            return f"Exited ({self.ExitCode}) {human_duration(now - self.FinishedAt / 1e9)} ago"
        return "Created"


@dataclass
class Container:
    ID: str
    Name: str                      # "/name"
    Created: int                   # ns
    Config: dict                   # the API's container Config (image defaults merged)
    HostConfig: dict
    Image: str                     # "sha256:<hex>"
    Path: str = ""
    Args: list = field(default_factory=list)
    State: State = field(default_factory=State)
    RestartCount: int = 0
    HasBeenStartedBefore: bool = False
    HasBeenManuallyStopped: bool = False
    LogPath: str = ""
    #: The container's mounts as attached at create (dockerd's MountPoints): the points of
    #: :func:`runtime.daemon.hostconfig.mount_points`, volumes named and their ``Source`` set
    #: (:func:`runtime.daemon.volumes.attach`); empty for a record written before volumes existed.
    MountPoints: list = field(default_factory=list)
    #: The network sandbox the task runs in while it exists (``NetworkSettings.SandboxKey``:
    #: ``<exec-root>/netns/<id>``, :mod:`runtime.daemon.sandbox`), "" without one of its own.
    SandboxKey: str = ""
    #: network name -> EndpointSettings (:mod:`runtime.daemon.endpoints`): the networks it is
    #: on, their runtime fields filled while it runs
    Networks: dict = field(default_factory=dict)
    #: the published ports while it runs (:func:`runtime.daemon.ports.publish`): ``[{"Proto",
    #: "HostIp", "HostPort", "ContainerIp", "ContainerPort", "Device"}]``, empty otherwise
    PortMappings: list = field(default_factory=list)
    # runtime-side facts (not part of the API)
    TaskExists: bool = False

    def __post_init__(self):
        self.changed = asyncio.Event()     # set (and replaced) on every state change
        self.lock = asyncio.Lock()         # serialises lifecycle operations on this container
        self.task_lock = asyncio.Lock()    # serialises task create/delete (exit handling vs start)
        self.removed = False
        self.stopping = False              # an explicit stop/kill is in progress (no restart policy)
        self.restart_task = None           # the pending restart-policy timer
        self.exits = 0                     # exits seen by this daemon (for wait next-exit)
        self.restart_delay = 0.0
        self.started_mono = 0.0

    # -- persistence --------------------------------------------------------------------------
    def to_record(self) -> dict:
        return {"ID": self.ID, "Name": self.Name, "Created": self.Created, "Config": self.Config,
                "HostConfig": self.HostConfig, "Image": self.Image, "Path": self.Path, "Args": self.Args,
                "State": asdict(self.State), "RestartCount": self.RestartCount,
                "HasBeenStartedBefore": self.HasBeenStartedBefore,
                "HasBeenManuallyStopped": self.HasBeenManuallyStopped, "LogPath": self.LogPath,
                "MountPoints": self.MountPoints, "TaskExists": self.TaskExists, "SandboxKey": self.SandboxKey,
                "Networks": self.Networks, "PortMappings": self.PortMappings}

    @classmethod
    def from_record(cls, r: dict) -> "Container":
        state = State(**{k: v for k, v in r.get("State", {}).items() if k in State.__dataclass_fields__})
        return cls(ID=r["ID"], Name=r["Name"], Created=r["Created"], Config=r["Config"],
                   HostConfig=r["HostConfig"], Image=r["Image"], Path=r.get("Path", ""), Args=r.get("Args", []),
                   State=state, RestartCount=r.get("RestartCount", 0),
                   HasBeenStartedBefore=r.get("HasBeenStartedBefore", False),
                   HasBeenManuallyStopped=r.get("HasBeenManuallyStopped", False),
                   LogPath=r.get("LogPath", ""), MountPoints=r.get("MountPoints") or [],
                   TaskExists=r.get("TaskExists", False), SandboxKey=r.get("SandboxKey", ""),
                   Networks=r.get("Networks") if "Networks" in r else _networks_of_old(r),
                   PortMappings=r.get("PortMappings") or [])

    def notify(self) -> None:
        """Wake everything waiting on :attr:`changed`."""
        ev, self.changed = self.changed, asyncio.Event()
        ev.set()

    @property
    def name(self) -> str:
        return self.Name.lstrip("/")

    @property
    def image_ref(self) -> str:
        return self.Config.get("Image") or self.Image

    @property
    def labels(self) -> dict:
        return self.Config.get("Labels") or {}

    def event_attributes(self, **extra) -> dict:
        attrs = dict(self.labels)
        attrs.update(image=self.image_ref, name=self.name)
        attrs.update({k: str(v) for k, v in extra.items()})
        return attrs

    # -- views --------------------------------------------------------------------------------
    def command_text(self) -> str:
        return " ".join([self.Path] + list(self.Args)).strip()

    def mounts(self) -> list[dict]:
        """``Mounts`` of inspect and list (MountPoint: Type, Source, Destination, Mode, RW, Propagation)."""
        from runtime.daemon.hostconfig import inspect_mounts
        return inspect_mounts(self.HostConfig, self.MountPoints or None)

    def inspect(self) -> dict:
        """``GET /containers/{id}/json`` (Engine API 1.41 ContainerInspectResponse)."""
        return {
            "Id": self.ID, "Created": rfc3339(self.Created), "Path": self.Path, "Args": list(self.Args),
            "State": self.State.view(), "Image": self.Image,
            **_names_paths(self), "LogPath": self.LogPath,
            "Name": self.Name, "RestartCount": self.RestartCount, "Driver": "overlay",
            "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "ExecIDs": None, "HostConfig": {**HOST_CONFIG_DEFAULTS, **self.HostConfig},
            "GraphDriver": {"Data": None, "Name": "overlay"}, "Mounts": self.mounts(), "Config": self.Config,
            "NetworkSettings": self.network_settings(),
        }

    def network_settings(self) -> dict:
        """Inspect's ``NetworkSettings``: ``Networks`` (name -> EndpointSettings); the top-level
        address, gateway and MAC are those of the default ``bridge`` network's endpoint (dockerd's)."""
        from runtime.daemon.endpoints import view
        from runtime.daemon.ports import inspect_ports
        nets = {name: view(ep) for name, ep in self.Networks.items()}
        ep = nets.get("bridge") or {}
        return {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": inspect_ports(self),
                "SandboxKey": self.SandboxKey, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": ep.get("EndpointID", ""),
                "Gateway": ep.get("Gateway", ""), "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "IPAddress": ep.get("IPAddress", ""), "IPPrefixLen": ep.get("IPPrefixLen", 0), "IPv6Gateway": "",
                "MacAddress": ep.get("MacAddress", ""), "Networks": nets}

    def summary(self) -> dict:
        """One ``GET /containers/json`` item (ContainerSummary)."""
        from runtime.daemon.ports import summary_ports
        return {"Id": self.ID, "Names": [self.Name], "Image": self.image_ref, "ImageID": self.Image,
                "Command": self.command_text(), "Created": self.Created // 1_000_000_000,
                "Ports": summary_ports(self),
                "Labels": dict(self.labels), "State": self.State.Status, "Status": self.State.status_text(),
                "HostConfig": {"NetworkMode": self.HostConfig.get("NetworkMode") or "default"},
                "NetworkSettings": {"Networks": self.network_settings()["Networks"]}, "Mounts": self.mounts()}


def _networks_of_old(r: dict) -> dict:
    """``Networks`` of a record written before networks were objects: its default-bridge
    ``Endpoint`` (running) or, for a container of the default mode, the ``bridge`` network."""
    from runtime.daemon.endpoints import RUNTIME_FIELDS
    ep = r.get("Endpoint") or {}
    mode = (r.get("HostConfig") or {}).get("NetworkMode") or "default"
    if ep:
        return {"bridge": {"IPAMConfig": None, "Links": None, "Aliases": None, "DriverOpts": None, **ep}}
    if mode in ("default", "bridge", "host", "none"):
        name = "bridge" if mode == "default" else mode
        return {name: {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", **RUNTIME_FIELDS,
                       "DriverOpts": None}}
    return {}


def _names_paths(c) -> dict:
    from runtime.daemon.hostsfile import inspect_paths
    p = inspect_paths(c)
    return {"ResolvConfPath": p["ResolvConfPath"], "HostnamePath": p["HostnamePath"], "HostsPath": p["HostsPath"]}
