"""What capsized does with a create request's ``HostConfig``: mounts, and the fields it refuses.

Mounts (dockerd's volume/mounts linux parser and daemon/oci_linux.go ``setMounts``):

* ``Binds`` — ``SRC:DST[:MODE]`` with an absolute host path SRC; MODE is a comma-separated list of
  ``ro``/``rw``, a propagation (``private``, ``rprivate`` (default), ``shared``, ``rshared``,
  ``slave``, ``rslave``), and ``z``/``Z``/``nocopy``/``consistent``/``cached``/``delegated``
  (accepted, meaningless here). A missing SRC is created (a directory, 0755) at start, as dockerd.
* ``Binds`` ``NAME:DST[:MODE]`` — the named volume NAME (made if missing); MODE ``ro``/``rw``,
  ``nocopy`` (no copy of the image's content), ``z``/``Z``.
* ``Mounts`` — ``{"Type": "bind"|"volume"|"tmpfs", "Source", "Target", "ReadOnly", "BindOptions":
  {"Propagation", "NonRecursive"}, "VolumeOptions": {"NoCopy", "Labels"}, "TmpfsOptions":
  {"SizeBytes", "Mode"}}``; a bind source that does not exist is a 400 ``invalid mount config for
  type "bind": bind source path does not exist: SRC``; a volume without ``Source`` is anonymous.
* ``Config.Volumes`` (``-v /dst``, the image's ``VOLUME``) — an anonymous volume at each
  destination no other mount covers.
* ``Tmpfs`` — ``{DST: "size=1m,mode=1777,..."}`` (``docker run --tmpfs``).

Volume points come out of :func:`mount_points` with ``Source`` empty (and ``Name`` empty for an
anonymous one); :func:`runtime.daemon.volumes.attach` names and makes the volumes and fills
``Source`` with the volume's ``_data``, and the container keeps the result (its ``MountPoints``).
They become OCI mounts (binds and volumes ``rbind`` (``bind`` with NonRecursive) + ``ro`` + propagation;
tmpfs ``noexec,nosuid,nodev`` merged with the options given), replacing a default mount with the
same destination (``/dev/shm``...), sorted so that a parent is mounted before what is under it.
Inspect's ``Mounts`` lists the binds and the ``Mounts`` entries (not ``Tmpfs``, as dockerd):
``{"Type", "Source", "Destination", "Mode", "RW", "Propagation"}`` (volumes also ``Name`` and
``Driver``, and an empty ``Propagation``). ``ShmSize`` sizes ``/dev/shm``.

``VolumesFrom`` is 501. Fields that would change what the container sees
but that capsize cannot honour are refused (:func:`validate`) instead of being ignored: port
publishing with ``--network container:X`` (400, dockerd's text; the other port checks are
:func:`runtime.daemon.ports.validate`'s), ``Devices``,
``DeviceRequests``, ``DeviceCgroupRules``, ``Links``, ``VolumeDriver`` other than
``local``, ``PidMode`` other than ``host`` (``container:X`` 501, anything else 400 ``invalid PID
mode``), ``IpcMode`` other than private/shareable, ``UTSMode``, ``UsernsMode`` other than host,
``Privileged``. ``Init`` must be a boolean (:mod:`runtime.daemon.initproc`). ``Sysctls`` become
``linux.sysctl``.

Errors: InvalidArgument (400) with dockerd's texts for malformed input,
Unimplemented (501) for what capsize lacks.
"""

from __future__ import annotations

import os
import posixpath
import re

from runtime.errors import InvalidArgument, Unimplemented

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"
_IGNORED_MODES = ("z", "Z", "nocopy", "consistent", "cached", "delegated")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
_TMPFS_FLAG_PAIRS = {"exec": "noexec", "noexec": "exec", "suid": "nosuid", "nosuid": "suid",
                     "dev": "nodev", "nodev": "dev", "ro": "rw", "rw": "ro"}


def _abs_dst(dst, kind: str = "bind") -> str:
    if not isinstance(dst, str) or not dst:
        raise InvalidArgument(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not dst.startswith("/"):
        raise InvalidArgument(f'invalid mount config for type "{kind}": invalid mount path: '
                              f"'{dst}' mount path must be absolute")
    dst = posixpath.normpath(dst)
    if dst == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return dst


def _parse_bind(spec) -> dict:
    if not isinstance(spec, str):
        raise InvalidArgument(f"invalid volume specification: {spec!r}")
    parts = spec.split(":")
    if len(parts) == 1:
        try:
            return _volume_point("", _abs_dst(spec, "volume"), True, "", copy=True)
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid volume specification: '{spec}': {e.message}") from None
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    volume = not src.startswith("/")
    if volume and not _VOLUME_NAME.match(src):
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    try:
        dst = _abs_dst(dst, "volume" if volume else "bind")
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {e.message}") from None
    rw, prop = True, ""
    seen_rw = False
    for m in mode.split(",") if mode else []:
        if m in ("ro", "rw"):
            if seen_rw:
                raise InvalidArgument(f"invalid mode: {mode}")
            seen_rw, rw = True, m == "rw"
        elif m in PROPAGATIONS:
            if prop:
                raise InvalidArgument(f"invalid mode: {mode}")
            prop = m
        elif m not in _IGNORED_MODES:
            raise InvalidArgument(f"invalid mode: {mode}")
    if volume:
        if prop:
            raise InvalidArgument(f"invalid mode: {mode}")
        return _volume_point(src, dst, rw, mode, copy="nocopy" not in mode.split(","))
    return {"Type": "bind", "Source": posixpath.normpath(src), "Destination": dst, "Mode": mode, "RW": rw,
            "Propagation": prop or DEFAULT_PROPAGATION, "recursive": True, "create": True}


def _volume_point(name: str, dst: str, rw: bool, mode: str, copy: bool, labels: dict | None = None) -> dict:
    """A volume mount point, its volume not attached yet (``Source`` empty; ``Name`` empty: anonymous)."""
    return {"Type": "volume", "Name": name, "Source": "", "Destination": dst, "Driver": "local", "Mode": mode,
            "RW": rw, "Propagation": "", "recursive": True, "copy": copy, "Named": bool(name),
            "labels": dict(labels or {})}


def _parse_mount(m) -> dict:
    if not isinstance(m, dict):
        raise InvalidArgument("Mounts must be a list of objects")
    kind = m.get("Type") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f'invalid mount config for type "{kind}": mount type unknown')
    dst = _abs_dst(m.get("Target"), kind)
    ro = bool(m.get("ReadOnly"))
    if kind == "volume":
        for key in ("BindOptions", "TmpfsOptions"):
            if m.get(key):
                raise InvalidArgument(f'invalid mount config for type "volume": field {key} must not be specified')
        src = m.get("Source") or ""
        if not isinstance(src, str) or (src and not _VOLUME_NAME.match(src)):
            raise InvalidArgument(f'invalid mount config for type "volume": invalid volume name {src!r}')
        vo = m.get("VolumeOptions") or {}
        if not isinstance(vo, dict):
            raise InvalidArgument('invalid mount config for type "volume": VolumeOptions must be an object')
        if (vo.get("DriverConfig") or {}).get("Name") not in (None, "", "local"):
            raise Unimplemented(f"capsize has the local volume driver only, not {vo['DriverConfig']['Name']!r}")
        if (vo.get("DriverConfig") or {}).get("Options"):
            raise Unimplemented("capsize's local volume driver takes no options (type, device, o)")
        return _volume_point(src, dst, not ro, "", copy=not vo.get("NoCopy"), labels=vo.get("Labels"))
    if m.get("VolumeOptions"):
        raise InvalidArgument(f'invalid mount config for type "{kind}": field VolumeOptions must not be specified')
    if kind == "bind":
        if m.get("TmpfsOptions"):
            raise InvalidArgument('invalid mount config for type "bind": field TmpfsOptions must not be specified')
        src = m.get("Source")
        if not isinstance(src, str) or not src:
            raise InvalidArgument('invalid mount config for type "bind": field Source must not be empty')
        if not src.startswith("/"):
            raise InvalidArgument(f'invalid mount config for type "bind": invalid mount path: '
                                  f"'{src}' mount path must be absolute")
        bo = m.get("BindOptions") or {}
        prop = bo.get("Propagation") or ""
        if prop and prop not in PROPAGATIONS:
            raise InvalidArgument(f'invalid mount config for type "bind": invalid propagation mode: {prop}')
        return {"Type": "bind", "Source": posixpath.normpath(src), "Destination": dst, "Mode": "", "RW": not ro,
                "Propagation": prop or DEFAULT_PROPAGATION, "recursive": not bo.get("NonRecursive"),
                "create": False}
    if m.get("Source"):
        raise InvalidArgument('invalid mount config for type "tmpfs": field Source must not be specified')
    if m.get("BindOptions"):
        raise InvalidArgument('invalid mount config for type "tmpfs": field BindOptions must not be specified')
    to = m.get("TmpfsOptions") or {}
    data = []
    size, mode = to.get("SizeBytes"), to.get("Mode")
    if size:
        if not isinstance(size, int) or size < 0:
            raise InvalidArgument('invalid mount config for type "tmpfs": invalid tmpfs size')
        data.append(f"size={size // 1024}k" if size >= 1024 else f"size={size}")
    if mode:
        if not isinstance(mode, int) or mode < 0:
            raise InvalidArgument('invalid mount config for type "tmpfs": invalid tmpfs mode')
        data.append(f"mode={mode & 0o7777:o}")
    if ro:
        data.append("ro")
    return {"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": not ro, "Propagation": "",
            "data": data}


def _parse_tmpfs(dst, opts) -> dict:
    dst = _abs_dst(dst, "tmpfs")
    if opts is not None and not isinstance(opts, str):
        raise InvalidArgument(f"invalid tmpfs options for {dst}: {opts!r}")
    data = [o.strip() for o in (opts or "").split(",") if o.strip()]
    return {"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": "ro" not in data,
            "Propagation": "", "data": data, "hidden": True}


def mount_points(host: dict, cfg: dict | None = None) -> list[dict]:
    """The container's mounts from ``Binds``, ``Mounts`` and ``Tmpfs`` (see the module docstring);
    raises InvalidArgument / Unimplemented for what cannot be mounted."""
    points = []
    binds, mounts, tmpfs = host.get("Binds"), host.get("Mounts"), host.get("Tmpfs")
    if binds is not None and not isinstance(binds, list):
        raise InvalidArgument("Binds must be a list of strings")
    if mounts is not None and not isinstance(mounts, list):
        raise InvalidArgument("Mounts must be a list of objects")
    if tmpfs is not None and not isinstance(tmpfs, dict):
        raise InvalidArgument("Tmpfs must be an object")
    points += [_parse_bind(b) for b in binds or []]
    points += [_parse_mount(m) for m in mounts or []]
    points += [_parse_tmpfs(d, o) for d, o in (tmpfs or {}).items()]
    seen = set()
    for p in points:
        if p["Destination"] in seen:
            raise InvalidArgument(f"Duplicate mount point: {p['Destination']}")
        seen.add(p["Destination"])
    vols = (cfg or {}).get("Volumes")
    if isinstance(vols, dict):
        for dst in sorted(vols):
            dst = _abs_dst(dst, "volume")
            if dst not in seen:
                seen.add(dst)
                points.append(_volume_point("", dst, True, "", copy=True))
    return points


def _merge_tmpfs(options: list[str]) -> list[str]:
    """dockerd's MergeTmpfsOptions: a later flag replaces its opposite, a later key=value its key."""
    out: list[str] = []
    for o in options:
        key = o.split("=", 1)[0]
        if "=" in o:
            out = [x for x in out if x.split("=", 1)[0] != key]
        else:
            out = [x for x in out if x not in (o, _TMPFS_FLAG_PAIRS.get(o))]
        out.append(o)
    return out


def oci_mounts(points: list[dict]) -> list[dict]:
    out = []
    for p in points:
        if p["Type"] in ("bind", "volume"):
            if not p["Source"]:
                raise InvalidArgument(f"volume at {p['Destination']} has no source: not attached")
            opts = ["rbind" if p["recursive"] else "bind"]
            if not p["RW"]:
                opts.append("ro")
            opts.append(p["Propagation"] or DEFAULT_PROPAGATION)
            out.append({"destination": p["Destination"], "type": "bind", "source": p["Source"], "options": opts})
        else:
            out.append({"destination": p["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": _merge_tmpfs(TMPFS_DEFAULTS + [DEFAULT_PROPAGATION] + p["data"])})
    return out


def apply(spec: dict, host: dict, cfg: dict | None = None, points: list[dict] | None = None) -> None:
    """Put the container's mounts (and ``ShmSize``, ``Sysctls``) into OCI *spec*: *points* (the
    container's attached ``MountPoints``), else :func:`mount_points` of *host* and *cfg*."""
    points = mount_points(host, cfg) if points is None else points
    mine = oci_mounts(points)
    dests = {m["destination"] for m in mine}
    base = [m for m in spec.get("mounts") or [] if m["destination"] not in dests]
    shm = host.get("ShmSize")
    if shm:
        if not isinstance(shm, int) or shm < 0:
            raise InvalidArgument("SHM size can not be less than 0")
        for m in base:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m.get("options") or [] if not o.startswith("size=")] + \
                    [f"size={max(shm // 1024, 1)}k"]
    # a parent before what is under it (dockerd sorts by the number of path components)
    mine.sort(key=lambda m: m["destination"].count("/"))
    spec["mounts"] = base + mine
    sysctls = host.get("Sysctls")
    if sysctls:
        if not isinstance(sysctls, dict):
            raise InvalidArgument("Sysctls must be an object")
        spec.setdefault("linux", {})["sysctl"] = {str(k): str(v) for k, v in sysctls.items()}


def inspect_mounts(host: dict, points: list[dict] | None = None) -> list[dict]:
    """Inspect's ``Mounts`` (MountPoint): *points* (the container's attached ``MountPoints``), else
    the binds and ``Mounts`` entries of *host*; [] for a record that does not parse (one written
    before a rule existed: inspect must still answer)."""
    if points is None:
        try:
            points = [p for p in mount_points(host) if p["Type"] != "volume"]
        except (InvalidArgument, Unimplemented):
            return []
    out = []
    for p in points:
        if p.get("hidden"):
            continue
        keys = (("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
                if p["Type"] == "volume" else ("Type", "Source", "Destination", "Mode", "RW", "Propagation"))
        out.append({k: p[k] for k in keys})
    return out


def _check_sources(points: list[dict], make: bool) -> None:
    """Bind sources that do not exist: a ``--mount`` one is a 400; a ``-v`` one is created at
    start (*make*; dockerd does, for ``Binds`` only) and left alone at create."""
    for p in points:
        if p["Type"] != "bind" or os.path.exists(p["Source"]):
            continue
        if not p["create"]:
            raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not exist: '
                                  f'{p["Source"]}')
        if make:
            try:
                os.makedirs(p["Source"], 0o755, exist_ok=True)
            except OSError as e:
                raise InvalidArgument(f"error while creating mount source path '{p['Source']}': "
                                      f"mkdir {p['Source']}: {e.strerror}") from None


def prepare_sources(host: dict) -> None:
    """At start: every bind source exists (see :func:`_check_sources`)."""
    _check_sources(mount_points(host), make=True)


#: HostConfig fields refused when set: (field, docker run flag, why)
_REFUSED = [
    ("Devices", "--device", ""), ("DeviceRequests", "--gpus", ""),
    ("DeviceCgroupRules", "--device-cgroup-rule", ""), ("Links", "--link", ""),
    ("VolumesFrom", "--volumes-from", ""), ("UTSMode", "--uts", ""),
    ("Privileged", "--privileged", ""),
]


def validate(cfg: dict, host: dict) -> None:
    """Refuse what capsize would otherwise accept and silently ignore (module docstring)."""
    mode = host.get("NetworkMode") or "default"
    if not isinstance(mode, str):
        raise InvalidArgument("NetworkMode must be a string")
    if mode.startswith("container:"):
        if not mode.split(":", 1)[1]:
            raise InvalidArgument("invalid container format container:<name|id>")
    exposed = cfg.get("ExposedPorts") or {}
    publishing = bool(host.get("PortBindings")) or (host.get("PublishAllPorts") and exposed)
    if publishing and mode.startswith("container:"):   # the rest: runtime.daemon.ports.validate
        raise InvalidArgument("conflicting options: port publishing and the container type network mode")
    for key, flag, why in _REFUSED:
        if host.get(key):
            raise Unimplemented(f"capsize does not support {key} ({flag}){why}")
    pid_mode = host.get("PidMode") or ""
    if not isinstance(pid_mode, str):
        raise InvalidArgument("PidMode must be a string")
    if pid_mode.startswith("container:"):
        raise Unimplemented(f"capsize does not support joining another container's PID namespace (--pid {pid_mode})")
    if pid_mode not in ("", "host"):
        raise InvalidArgument(f"invalid PID mode: {pid_mode}")
    if host.get("Init") not in (None, True, False):
        raise InvalidArgument("Init must be a boolean")
    if host.get("VolumeDriver") not in (None, "", "local"):
        raise Unimplemented(f"capsize does not support VolumeDriver {host['VolumeDriver']!r} (--volume-driver): "
                            f"it has the local driver only")
    if (host.get("IpcMode") or "private") not in ("private", "shareable"):
        raise Unimplemented(f"capsize does not support IpcMode {host.get('IpcMode')!r} (--ipc)")
    if (host.get("UsernsMode") or "host") != "host":
        raise Unimplemented(f"capsize does not support UsernsMode {host.get('UsernsMode')!r} (--userns)")
    _check_sources(mount_points(host, cfg), make=False)
