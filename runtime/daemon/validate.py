"""Type checks of JSON request bodies, with the errors dockerd's Go JSON decoder gives.

dockerd decodes ``POST /containers/create``'s body into ``ContainerConfigWrapper`` (the embedded
``Config``, ``HostConfig``, ``NetworkingConfig``); a value of the wrong JSON type is a 400::

    json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64
    json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string

(Go's ``UnmarshalTypeError``: the JSON type, then the innermost struct type's name and the
field's path from the top). ``null`` is accepted anywhere (Go leaves the zero value), an
integer field refuses a fraction or an out-of-range number (``number 1.5``), as Go does.

:func:`check_create` checks the fields of ``Config`` and ``HostConfig`` of the Engine API 1.41
(the ones capsized reads, and the others, so that a client's mistake is never a 500); unknown
fields are ignored, as Go does. Raises :class:`runtime.errors.InvalidArgument`.
"""

from __future__ import annotations

from runtime.errors import InvalidArgument

_INT_RANGES = {"int64": (-(1 << 63), (1 << 63) - 1), "int": (-(1 << 63), (1 << 63) - 1),
               "uint16": (0, (1 << 16) - 1), "uint64": (0, (1 << 64) - 1), "uint": (0, (1 << 64) - 1),
               "uint32": (0, (1 << 32) - 1), "int32": (-(1 << 31), (1 << 31) - 1)}

# Go types, written as: "string", "bool", "int64" ..., "[]string", "map[string]string",
# "strslice" (a string or a list of strings), "object" (any JSON object), "array" (any JSON array),
# or a dict (a nested struct: (struct name, {field: type})).
_MAP_ANY = "map"
RESTART_POLICY = ("RestartPolicy", {"Name": "string", "MaximumRetryCount": "int"})
LOG_CONFIG = ("LogConfig", {"Type": "string", "Config": "map[string]string"})

CONFIG = {
    "Hostname": "string", "Domainname": "string", "User": "string", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool", "ExposedPorts": _MAP_ANY, "Tty": "bool",
    "OpenStdin": "bool", "StdinOnce": "bool", "Env": "[]string", "Cmd": "strslice",
    "Healthcheck": _MAP_ANY, "ArgsEscaped": "bool", "Image": "string", "Volumes": _MAP_ANY,
    "WorkingDir": "string", "Entrypoint": "strslice", "NetworkDisabled": "bool", "MacAddress": "string",
    "OnBuild": "[]string", "Labels": "map[string]string", "StopSignal": "string", "StopTimeout": "int",
    "Shell": "strslice",
}

HOST_CONFIG = {
    "Binds": "[]string", "ContainerIDFile": "string", "LogConfig": LOG_CONFIG, "NetworkMode": "string",
    "PortBindings": _MAP_ANY, "RestartPolicy": RESTART_POLICY, "AutoRemove": "bool", "VolumeDriver": "string",
    "VolumesFrom": "[]string", "CapAdd": "strslice", "CapDrop": "strslice", "CgroupnsMode": "string",
    "Dns": "[]string", "DnsOptions": "[]string", "DnsSearch": "[]string", "ExtraHosts": "[]string",
    "GroupAdd": "[]string", "IpcMode": "string", "Cgroup": "string", "Links": "[]string", "OomScoreAdj": "int",
    "PidMode": "string", "Privileged": "bool", "PublishAllPorts": "bool", "ReadonlyRootfs": "bool",
    "SecurityOpt": "[]string", "StorageOpt": "map[string]string", "Tmpfs": "map[string]string",
    "UTSMode": "string", "UsernsMode": "string", "ShmSize": "int64", "Sysctls": "map[string]string",
    "Runtime": "string", "ConsoleSize": "[]uint", "Isolation": "string", "CpuShares": "int64",
    "Memory": "int64", "NanoCpus": "int64", "CgroupParent": "string", "BlkioWeight": "uint16",
    "BlkioWeightDevice": "array", "BlkioDeviceReadBps": "array", "BlkioDeviceWriteBps": "array",
    "BlkioDeviceReadIOps": "array", "BlkioDeviceWriteIOps": "array", "CpuPeriod": "int64", "CpuQuota": "int64",
    "CpuRealtimePeriod": "int64", "CpuRealtimeRuntime": "int64", "CpusetCpus": "string", "CpusetMems": "string",
    "Devices": "array", "DeviceCgroupRules": "[]string", "DeviceRequests": "array", "KernelMemory": "int64",
    "KernelMemoryTCP": "int64", "MemoryReservation": "int64", "MemorySwap": "int64",
    "MemorySwappiness": "int64", "OomKillDisable": "bool", "PidsLimit": "int64", "Ulimits": "array",
    "CpuCount": "int64", "CpuPercent": "int64", "IOMaximumIOps": "uint64", "IOMaximumBandwidth": "uint64",
    "Mounts": "array", "MaskedPaths": "[]string", "ReadonlyPaths": "[]string", "Init": "bool",
}


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _fail(value, struct: str, path: str, gotype: str, number_text: bool = False) -> InvalidArgument:
    what = _json_type(value)
    if number_text:
        what = f"number {value}"
    return InvalidArgument(f"json: cannot unmarshal {what} into Go struct field {struct}.{path} of type {gotype}")


def _check(value, gotype, struct: str, path: str) -> None:
    if value is None:
        return
    if isinstance(gotype, tuple):
        name, fields = gotype
        if not isinstance(value, dict):
            raise _fail(value, struct, path, f"container.{name}")
        for k, t in fields.items():
            if k in value:
                _check(value[k], t, name, f"{path}.{k}")
        return
    if gotype == "string":
        ok = isinstance(value, str)
    elif gotype == "bool":
        ok = isinstance(value, bool)
    elif gotype in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(value, struct, path, gotype)
        lo, hi = _INT_RANGES[gotype]
        if isinstance(value, float) and not value.is_integer() or not lo <= value <= hi:
            raise _fail(value, struct, path, gotype, number_text=True)
        return
    elif gotype.startswith("[]"):
        if not isinstance(value, list):
            raise _fail(value, struct, path, gotype)
        for item in value:
            _check(item, gotype[2:], struct, path)
        return
    elif gotype == "strslice":
        if isinstance(value, str):
            return
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value if x is not None):
            # strslice.StrSlice.UnmarshalJSON tries []string, then string, and returns the latter's error
            raise _fail(value, struct, path, "string")
        return
    elif gotype == "map[string]string":
        if not isinstance(value, dict):
            raise _fail(value, struct, path, gotype)
        for v in value.values():
            if v is not None and not isinstance(v, str):
                raise _fail(v, struct, path, "string")
        return
    elif gotype == _MAP_ANY:
        ok = isinstance(value, dict)
        gotype = "map[string]struct {}" if path.endswith(("Volumes", "ExposedPorts")) else "object"
    elif gotype == "array":
        ok = isinstance(value, list)
    else:   # pragma: no cover - a table mistake
        ok = True
    if not ok:
        raise _fail(value, struct, path, gotype)


def check_create(body: dict) -> None:
    """Check the types of a ``POST /containers/create`` body (Config fields at the top level,
    ``HostConfig``, ``NetworkingConfig``); InvalidArgument with Go's wording for the first mismatch."""
    for k, t in CONFIG.items():
        if k in body:
            _check(body[k], t, "ContainerConfigWrapper", k)
    host = body.get("HostConfig")
    if host is not None:
        if not isinstance(host, dict):
            raise _fail(host, "ContainerConfigWrapper", "HostConfig", "container.HostConfig")
        for k, t in HOST_CONFIG.items():
            if k in host:
                _check(host[k], t, "HostConfig", f"HostConfig.{k}")
    net = body.get("NetworkingConfig")
    if net is not None and not isinstance(net, dict):
        raise _fail(net, "ContainerConfigWrapper", "NetworkingConfig", "network.NetworkingConfig")


def drop_nulls(body: dict) -> dict:
    """*body* without its ``null`` fields (top level, ``HostConfig`` and its structs): Go decodes
    ``null`` as the zero value, the same as a missing field."""
    out = {k: v for k, v in body.items() if v is not None}
    if isinstance(out.get("HostConfig"), dict):
        host = {k: v for k, v in out["HostConfig"].items() if v is not None}
        for k in ("RestartPolicy", "LogConfig"):
            if isinstance(host.get(k), dict):
                host[k] = {kk: vv for kk, vv in host[k].items() if vv is not None}
        out["HostConfig"] = host
    return out
