"""The name files capsized writes for each container: ``/etc/hosts``, ``/etc/resolv.conf`` and
``/etc/hostname``, files in the container's directory (``<root>/daemon/containers/<id>/hosts``,
``resolv.conf``, ``hostname``: inspect's ``HostsPath``, ``ResolvConfPath``, ``HostnamePath``)
bind-mounted over those paths (read-only with ``--read-only``), as dockerd's
``daemon/container_operations_unix.go`` and libnetwork's ``etchosts``/``resolvconf`` do. A mount
the user gave for one of these paths wins (that file is not mounted).

How containers find each other by name: **/etc/hosts, rewritten** on every change — not an
embedded DNS server at 127.0.0.11 as dockerd's. Why: capsize's lab needs names that work with
nothing listening (a DNS server would be one more process per sandbox, or a socket capsized
holds inside every namespace, to be found and restarted after a SIGKILL — the very kind of
leftover the lab hunts); a file needs no process, survives a capsized crash as it is (the
names of running containers stay right with live-restore) and is what libnetwork did before
its embedded DNS (Docker < 1.10). The cost, said plainly: ``nslookup``/``dig`` (DNS only) do
not see these names; getaddrinfo(3) (``ping``, ``wget``, Python, curl) does. Every container on
a user-defined network gets, after the standard lines and ``--add-host`` entries and its own
address(es) with its hostname, one line per running peer on each shared user-defined network:
``IP<TAB>name alias... short-id`` (on the default ``bridge``, as in Docker, no names). The file
is rewritten in place (same inode: the bind mount keeps seeing it) whenever a container on one
of its networks starts, stops, connects or disconnects (:func:`refresh`).

``/etc/resolv.conf``: the host's (capsized's ``/etc/resolv.conf``) without localhost name servers
(dockerd's filter; none left: Google's 8.8.8.8 and 8.8.4.4, dockerd's defaults), with
``HostConfig.Dns`` (``--dns``) replacing the name servers, ``DnsSearch`` (``--dns-search``) the
``search`` line and ``DnsOptions`` (``--dns-option``) the ``options`` line. ``/etc/hostname``:
``Config.Hostname`` (the short id by default). ``ExtraHosts`` (``--add-host NAME:IP``): ``IP``
may be ``host-gateway``, the default bridge's gateway (dockerd's ``--host-gateway-ip``
default); without a bridge (capsized in the host's namespace) that is a 400.

``NetworkMode container:<ref>``: the container has files of its own (the same content as for
``none``), not the other's as dockerd.

Errors: InvalidArgument (400) for a malformed ``--add-host``/``--dns`` (dockerd's texts).
"""

from __future__ import annotations

import ipaddress
import os

FILES = {"/etc/hosts": "hosts", "/etc/resolv.conf": "resolv.conf", "/etc/hostname": "hostname"}
HOST_RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
HOST_GATEWAY = "host-gateway"
STANDARD = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
            "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def _err(text: str):
    from runtime.errors import InvalidArgument
    return InvalidArgument(text)


def validate(host: dict) -> None:
    """Check ``ExtraHosts``, ``Dns``, ``DnsSearch``, ``DnsOptions`` at create (dockerd's texts)."""
    for entry in host.get("ExtraHosts") or []:
        name, sep, ip = entry.partition(":")
        if not sep or not name:
            raise _err(f"bad format for add-host: {entry}")
        if ip != HOST_GATEWAY:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise _err(f"invalid IP address in add-host: {ip}") from None
    for ip in host.get("Dns") or []:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _err(f"{ip} is not an ip address") from None
    for key in ("DnsSearch", "DnsOptions"):
        for v in host.get(key) or []:
            if not v or any(ch.isspace() for ch in v):
                raise _err(f"invalid {key} entry: {v!r}")


def paths(c) -> dict[str, str]:
    """Destination -> the file in *c*'s directory (the directory of its ``LogPath``)."""
    d = os.path.dirname(c.LogPath)
    return {dest: os.path.join(d, name) for dest, name in FILES.items()}


def inspect_paths(c) -> dict[str, str]:
    """Inspect's ``HostsPath``/``ResolvConfPath``/``HostnamePath``: set once the files exist."""
    p = paths(c) if c.LogPath else {}
    return {key: (p[dest] if p and os.path.exists(p[dest]) else "")
            for key, dest in (("HostsPath", "/etc/hosts"), ("ResolvConfPath", "/etc/resolv.conf"),
                              ("HostnamePath", "/etc/hostname"))}


def mounts(c, spec: dict) -> None:
    """Bind-mount *c*'s three files into OCI *spec* (not over a destination the user mounted)."""
    taken = {m["destination"] for m in spec.get("mounts") or []}
    opts = ["rbind", "rprivate"] + (["ro"] if c.HostConfig.get("ReadonlyRootfs") else [])
    for dest, src in paths(c).items():
        if dest not in taken:
            spec.setdefault("mounts", []).append({"destination": dest, "type": "bind", "source": src,
                                                  "options": list(opts)})


def _write(path: str, text: str) -> None:
    """Rewrite *path* in place (same inode: a bind mount of it sees the new content)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def resolv_conf(host: dict, base: str | None = None) -> str:
    """The container's resolv.conf text (module docstring); *base*: the host's file's text."""
    if base is None:
        try:
            with open(HOST_RESOLV_CONF) as f:
                base = f.read()
        except OSError:
            base = ""
    servers, search, options, other = [], None, None, []
    for line in base.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            try:
                if not ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    servers.append(words[1])
            except ValueError:
                pass
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options = words[1:]
        else:
            other.append(line)
    servers = list(host.get("Dns") or servers or DEFAULT_NAMESERVERS)
    search = host.get("DnsSearch") or search
    options = host.get("DnsOptions") or options
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out + other) + "\n"


def _host_gateway(daemon) -> str:
    br = daemon.networks.bridge(daemon.networks.predefined_id("bridge"))
    if br is None:
        raise _err("unable to derive the IP value for host-gateway: capsized has no bridge in the host's "
                   "network namespace")
    return br.pool["gateway"]


def hosts(daemon, c) -> str:
    """*c*'s /etc/hosts text (module docstring)."""
    lines = []
    for entry in c.HostConfig.get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        lines.append(f"{_host_gateway(daemon) if ip == HOST_GATEWAY else ip}\t{name}")
    hostname = c.Config.get("Hostname") or c.ID[:12]
    domain = c.Config.get("Domainname") or ""
    names = f"{hostname}.{domain} {hostname}" if domain else hostname
    mine = [ep for ep in c.Networks.values() if ep.get("IPAddress")]
    for ep in mine:
        lines.append(f"{ep['IPAddress']}\t{names}")
    shared = {ep["NetworkID"] for ep in mine if not _builtin(daemon, ep["NetworkID"])}
    for other in daemon.containers.values():
        if other.ID == c.ID or other.removed:
            continue
        for ep in other.Networks.values():
            if ep.get("NetworkID") in shared and ep.get("IPAddress"):
                aliases = [a for a in ep.get("Aliases") or [] if a != other.name]
                lines.append(f"{ep['IPAddress']}\t" + " ".join([other.name] + aliases))
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return STANDARD + "".join(line + "\n" for line in out)


def _builtin(daemon, nid: str) -> bool:
    rec = daemon.networks.find(nid)
    return rec is None or daemon.networks.builtin(rec)


def write_all(daemon, c) -> None:
    """Write *c*'s three files (at start, before its task is created)."""
    p = paths(c)
    _write(p["/etc/hostname"], (c.Config.get("Hostname") or c.ID[:12]) + "\n")
    _write(p["/etc/resolv.conf"], resolv_conf(c.HostConfig))
    _write(p["/etc/hosts"], hosts(daemon, c))


def refresh(daemon, c) -> None:
    """*c* started, stopped, connected or disconnected: rewrite its /etc/hosts and that of every
    running container on a user-defined network (a peer now, or one until this change)."""
    for other in list(daemon.containers.values()) + ([c] if c.ID not in daemon.containers else []):
        if other.removed or not other.LogPath:
            continue
        if other.ID != c.ID and not (other.State.running and any(
                ep.get("IPAddress") and not _builtin(daemon, ep.get("NetworkID") or "")
                for ep in other.Networks.values())):
            continue
        path = paths(other)["/etc/hosts"]
        if os.path.exists(path):
            try:
                _write(path, hosts(daemon, other))
            except OSError as e:
                daemon.log.warning("cannot rewrite /etc/hosts", container=other.ID, error=str(e))
