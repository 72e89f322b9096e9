"""OCI runtime configuration: the default ``config.json`` and its validation.

:func:`default_spec` returns what ``runc spec`` writes (runc 1.1, OCI runtime spec 1.0.2), except
that the process is non-terminal and the hostname is ``capsize`` (what the lab's own bundles
start from); :func:`runc_spec` is what ``capsize-runc spec`` writes, runc's own default with
``"terminal": true``. :func:`load_config` reads a
bundle's ``config.json`` and checks the fields capsize-runc acts on, naming the first bad field
(config.md, config-linux.md). Errors are :class:`~runtime.errors.InvalidArgument`.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument, NotFound

OCI_VERSION = "1.0.2-dev"

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec() -> dict:
    """A fresh default OCI config (a new dict every call), as ``runc spec`` with terminal=false."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "capsize",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def runc_spec() -> dict:
    """What ``capsize-runc spec`` writes: :func:`default_spec` with ``process.terminal`` true, as
    ``runc spec`` (runc 1.1 libcontainer/specconv.Example); callers of ``spec`` (runc's own tests)
    pass ``--console-socket`` for it."""
    spec = default_spec()
    spec["process"]["terminal"] = True
    return spec


def _bad(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid config.json: {field}: {why}", field=field)


def _want(cond: bool, field: str, why: str) -> None:
    if not cond:
        raise _bad(field, why)


def validate(config: dict) -> dict:
    """Check the fields capsize-runc uses; return *config* or raise InvalidArgument naming the field."""
    _want(isinstance(config, dict), "(top level)", "must be a JSON object")
    _want(isinstance(config.get("ociVersion"), str), "ociVersion", "must be a string")
    root = config.get("root")
    _want(isinstance(root, dict) and isinstance(root.get("path"), str) and root["path"],
          "root.path", "must be a non-empty string")
    proc = config.get("process")
    _want(isinstance(proc, dict), "process", "must be an object")
    args = proc.get("args")
    _want(isinstance(args, list) and args and all(isinstance(a, str) for a in args),
          "process.args", "must be a non-empty list of strings")
    _want(isinstance(proc.get("cwd", "/"), str) and proc.get("cwd", "/").startswith("/"),
          "process.cwd", "must be an absolute path")
    _want(isinstance(proc.get("env", []), list), "process.env", "must be a list of KEY=value strings")
    user = proc.get("user", {})
    _want(isinstance(user, dict) and isinstance(user.get("uid", 0), int) and isinstance(user.get("gid", 0), int),
          "process.user", "uid and gid must be integers")
    for i, m in enumerate(config.get("mounts", []) or []):
        _want(isinstance(m, dict) and isinstance(m.get("destination"), str) and m["destination"].startswith("/"),
              f"mounts[{i}].destination", "must be an absolute path")
        _want(isinstance(m.get("options", []), list), f"mounts[{i}].options", "must be a list")
    linux = config.get("linux", {}) or {}
    _want(isinstance(linux, dict), "linux", "must be an object")
    from runtime.host import NAMESPACE_FLAGS
    seen = set()
    for i, ns in enumerate(linux.get("namespaces", []) or []):
        t = ns.get("type") if isinstance(ns, dict) else None
        _want(t in NAMESPACE_FLAGS, f"linux.namespaces[{i}].type",
              f"unknown namespace type {t!r} (one of {', '.join(sorted(NAMESPACE_FLAGS))})")
        _want(t not in seen, f"linux.namespaces[{i}].type", f"namespace {t!r} given twice")
        seen.add(t)
        if ns.get("path"):
            _want(os.path.exists(ns["path"]), f"linux.namespaces[{i}].path", f"{ns['path']} does not exist")
    new_user = any(isinstance(ns, dict) and ns.get("type") == "user" and not ns.get("path")
                   for ns in linux.get("namespaces") or [])
    for key in ("uidMappings", "gidMappings"):
        maps = linux.get(key)
        if maps is None:
            continue
        _want(isinstance(maps, list), f"linux.{key}", "must be a list")
        for i, m in enumerate(maps):
            _want(isinstance(m, dict) and all(isinstance(m.get(f), int) and not isinstance(m.get(f), bool)
                                              and m.get(f) >= 0 for f in ("containerID", "hostID", "size")),
                  f"linux.{key}[{i}]", "needs non-negative integers containerID, hostID and size")
        _want(not maps or new_user, f"linux.{key}", "mappings need a new user namespace (linux.namespaces)")
    if new_user:
        _want(bool(linux.get("uidMappings")) and bool(linux.get("gidMappings")), "linux.uidMappings",
              "a new user namespace needs uidMappings and gidMappings (capsize-runc is not rootless)")
    return config


def load_config(bundle: str) -> dict:
    """Read and validate ``<bundle>/config.json``.

    Raises NotFound when the bundle or its config is missing, InvalidArgument when it is not
    valid JSON or a field is wrong, and NotFound when the rootfs (``root.path``) does not exist.
    """
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFound(f"bundle {bundle}: config.json not found") from None
    except IsADirectoryError:
        raise InvalidArgument(f"bundle {bundle}: config.json is a directory") from None
    try:
        from runtime import jsonfast
        config = jsonfast.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid config.json: {path}: {e}") from None
    validate(config)
    rootfs = rootfs_path(bundle, config)
    if not os.path.isdir(rootfs):
        raise NotFound(f"rootfs ({rootfs}) does not exist", field="root.path")
    return config


def rootfs_path(bundle: str, config: dict) -> str:
    """The absolute rootfs path: ``root.path`` relative to the bundle unless absolute."""
    p = config["root"]["path"]
    return os.path.realpath(p if os.path.isabs(p) else os.path.join(bundle, p))
