"""The OCI runtime spec capsized hands to capsize-runtimed for a container (dockerd's oci defaults).

:func:`build_spec` starts from :func:`runtime.lowlevel.spec.default_spec` and applies what
dockerd applies (daemon/oci_linux.go): Docker's 14 default capabilities (plus ``CapAdd``, minus
``CapDrop``), ``noNewPrivileges`` false, rlimits from ``Ulimits`` only, hostname = the 12-hex short id unless
``Config.Hostname``, ``HOSTNAME`` and a default ``PATH`` in the environment, the working
directory, a numeric ``User`` (``uid[:gid]``; ``root``), a read-only root with
``HostConfig.ReadonlyRootfs``, the network namespace dropped for ``NetworkMode: host`` and the
PID namespace for ``PidMode: host``, ``Init`` (:mod:`runtime.daemon.initproc`), the resource
limits (:mod:`runtime.daemon.resources`), ``OomScoreAdj``, and the cgroup ``<parent>/<id>`` (parent:
``HostConfig.CgroupParent``, else capsized's ``--cgroup-parent``, default ``/capsize``). Mounts
(the container's attached ``MountPoints``: ``Binds``, ``Mounts``, ``Tmpfs``, volumes), ``ShmSize`` and
``Sysctls``: :mod:`runtime.daemon.hostconfig`.
Seccomp: Docker's default profile unless ``SecurityOpt`` says otherwise
(:mod:`runtime.daemon.seccomp_profile`). Labels prefixed ``io.capsize.`` become annotations (e.g.
the shim's ``io.capsize.shim.failpoint.<method>``).

Errors: InvalidArgument (400) for a user that is not numeric.
"""

from __future__ import annotations

import posixpath

from runtime.daemon import hostconfig, initproc, resources, seccomp_profile, settings
from runtime.errors import InvalidArgument
from runtime.lowlevel.spec import default_spec

#: dockerd's default ``--cgroup-parent`` is ``/docker``; capsized's is ``/capsize``
DEFAULT_CGROUP_PARENT = "/capsize"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def _user(user: str) -> dict:
    if not user or user in ("root", "0", "root:root", "0:0"):
        return {"uid": 0, "gid": 0}
    uid, _, gid = user.partition(":")
    try:
        return {"uid": int(uid), "gid": int(gid or 0)}
    except ValueError:
        raise InvalidArgument(f"unable to find user {user}: capsize supports numeric users only (uid[:gid])") from None


def console_size(value) -> dict | None:
    """OCI ``process.consoleSize`` (``{"height", "width"}``, characters) of an Engine API
    ``ConsoleSize`` ``[height, width]`` (``HostConfig.ConsoleSize``, an exec config's); None unless
    it is two positive integers (dockerd ignores the rest too)."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) and n > 0 for n in value):
        return {"height": value[0], "width": value[1]}
    return None


def set_terminal(proc: dict, env: list[str], size: dict | None) -> None:
    """Give OCI *proc* a terminal, as dockerd's ``WithTerminal``: ``process.terminal`` true (the
    shim holds its master), ``TERM=xterm`` appended to *env* unless it sets ``TERM``, and
    ``process.consoleSize`` when *size* (:func:`console_size`) is given."""
    proc["terminal"] = True
    if not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    if size:
        proc["consoleSize"] = dict(size)


def cgroups_path(container, cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> str:
    """``linux.cgroupsPath`` of *container*: ``HostConfig.CgroupParent`` (else the daemon's
    ``--cgroup-parent``) joined with the container's id, as dockerd's cgroupfs driver does."""
    parent = container.HostConfig.get("CgroupParent") or cgroup_parent or DEFAULT_CGROUP_PARENT
    if not isinstance(parent, str) or "\0" in parent:
        raise InvalidArgument(f"invalid cgroup parent {parent!r}")
    if any(part == ".." for part in parent.split("/")):
        raise InvalidArgument(f"invalid cgroup parent {parent!r}: '..' is not allowed")
    return posixpath.join(parent, container.ID)


def build_spec(container, cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> dict:
    """The OCI config for *container* (a :class:`runtime.daemon.model.Container`); its cgroup is
    :func:`cgroups_path` (*cgroup_parent* is capsized's ``--cgroup-parent``)."""
    cfg, host = container.Config, container.HostConfig
    spec = default_spec()
    proc = spec["process"]
    proc["args"] = [container.Path] + list(container.Args)
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    hostname = cfg.get("Hostname") or container.ID[:12]
    env.insert(1, f"HOSTNAME={hostname}")
    # Tty: a terminal (the shim holds its master), TERM=xterm unless set, the client's size at
    # create (HostConfig.ConsoleSize [height, width]), as dockerd's WithTerminal/consoleSize
    proc["terminal"] = False
    if cfg.get("Tty"):
        set_terminal(proc, env, console_size(host.get("ConsoleSize")))
    proc["env"] = env
    proc["cwd"] = cfg.get("WorkingDir") or "/"
    proc["user"] = _user(cfg.get("User") or "")
    proc["noNewPrivileges"] = False
    proc.pop("rlimits", None)
    if host.get("Ulimits"):
        proc["rlimits"] = settings.rlimits(host)   # --ulimit
    caps = list(DOCKER_CAPS)
    add = [settings.capability(c) for c in settings.caps(host, "CapAdd")]
    drop = [settings.capability(c) for c in settings.caps(host, "CapDrop")]
    if "CAP_ALL" in drop:
        caps = []
    caps = [c for c in caps if c not in drop] + [c for c in add if c not in caps and c != "CAP_ALL"]
    proc["capabilities"] = {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
    profile = seccomp_profile.for_container(host, caps)   # Docker's default, or what SecurityOpt says
    if profile is not None:
        spec["linux"]["seccomp"] = profile
    if host.get("OomScoreAdj"):
        proc["oomScoreAdj"] = int(host["OomScoreAdj"])
    spec["hostname"] = hostname
    spec["root"] = {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))}
    linux = spec["linux"]
    if host.get("NetworkMode") == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    if host.get("PidMode") == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "pid"]
    linux["cgroupsPath"] = cgroups_path(container, cgroup_parent)
    res = linux.setdefault("resources", {})
    res.update(resources.oci(host))   # Memory, MemorySwap, CpuShares, NanoCpus, PidsLimit, ...
    hostconfig.apply(spec, host, cfg, getattr(container, "MountPoints", None) or None)   # mounts, ShmSize, Sysctls
    initproc.apply(spec, host)
    ann = {k: str(v) for k, v in (cfg.get("Labels") or {}).items() if k.startswith("io.capsize.")}
    if ann:
        spec["annotations"] = ann
    return spec
