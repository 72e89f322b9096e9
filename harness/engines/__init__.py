"""Engine adapters by name: ``capsize`` (capsize's own tiers), ``docker`` (Debian's Docker stack,
private), ``docker-systemd`` and ``capsize-systemd`` (the system's units, in the VMs; shared parts in
:mod:`.systemd`), ``podman`` (Debian's podman API service with conmon, private). See :mod:`.base` for the interface."""

from __future__ import annotations

from harness.engines.base import Engine, HostState, LogSource

NAMES = ("capsize", "docker", "docker-systemd", "capsize-systemd", "podman")
DEFAULT = "capsize"


def engine_class(name: str) -> type[Engine]:
    """The adapter class for *name*. Raises InvalidArgument for an unknown name."""
    if name == "capsize":
        from harness.engines.capsize import CapsizeEngine
        return CapsizeEngine
    if name == "docker":
        from harness.engines.docker import DockerEngine
        return DockerEngine
    if name == "docker-systemd":
        from harness.engines.docker_systemd import DockerSystemdEngine
        return DockerSystemdEngine
    if name == "capsize-systemd":
        from harness.engines.capsize_systemd import CapsizeSystemdEngine
        return CapsizeSystemdEngine
    if name == "podman":
        from harness.engines.podman import PodmanEngine
        return PodmanEngine
    from harness.suggest import nearest
    from runtime.errors import InvalidArgument
    raise InvalidArgument(f"unknown engine {name!r}{nearest(name, NAMES)}: one of {', '.join(NAMES)}")


def capabilities(name: str) -> frozenset[str]:
    """What engine *name* can do, as its class declares it (:meth:`Engine.capabilities`; nothing
    is instantiated or started)."""
    return engine_class(name).capabilities()


def engines_with(capability: str) -> tuple[str, ...]:
    """The engines (in :data:`NAMES` order) that have *capability*."""
    return tuple(n for n in NAMES if capability in capabilities(n))


__all__ = ["Engine", "HostState", "LogSource", "NAMES", "DEFAULT", "engine_class", "capabilities", "engines_with"]
