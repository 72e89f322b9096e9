"""The lab's default image, made offline from the host's busybox-static.

Nothing is downloaded: the rootfs is ``/bin/busybox`` from Debian's ``busybox-static`` package,
one symlink per applet at the place ``busybox --list-full`` gives, and a minimal ``/etc``
(passwd, group, hosts, resolv.conf, nsswitch.conf) plus the directories an OCI runtime mounts
onto (``/proc``, ``/sys``, ``/dev``, ``/tmp``...).

The rootfs tar is reproducible: members sorted, owned by 0:0, mtime fixed at
:data:`EPOCH`, so the same busybox binary always gives the same bytes and the same sha256 digest
(which the content store later uses as the layer's diff id).

Public functions:
* :func:`write_rootfs` — lay the rootfs out in a directory (for a bundle's ``rootfs``);
* :func:`write_rootfs_tar` — write it as an uncompressed tar (for ``docker import``);
* :func:`write_image_tar` — write a one-layer image in ``docker save`` format (for ``docker load``
  and ``ctr image import``);
* :func:`busybox_path` — where the static binary is, or :class:`~runtime.errors.NotFound`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

from runtime.errors import NotFound
from runtime.rfc3339 import format_nano

#: Modification time of every member of the tar (2020-01-01T00:00:00Z), for reproducibility.
EPOCH = 1577836800

CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_DIRS = {  # path -> mode
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "dev": 0o755, "proc": 0o555, "sys": 0o555, "tmp": 0o1777, "root": 0o700,
    "home": 0o755, "var": 0o755, "var/run": 0o755, "var/tmp": 0o1777, "run": 0o755, "mnt": 0o755,
}

_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/resolv.conf": "",
    "etc/hostname": "busybox\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}


def _is_static_elf(path: str) -> bool:
    """True when *path* is a 64-bit little-endian ELF without a PT_INTERP program header."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def busybox_path() -> str:
    """Path of a static busybox on this host (Debian's busybox-static), or raise NotFound."""
    for p in CANDIDATES:
        if os.path.exists(p) and _is_static_elf(p):
            return p
    raise NotFound("no static busybox on this host: install Debian's busybox-static "
                   "(scripts/setup.sh does)")


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def _entries(busybox: str):
    """Yield (path, kind, mode, payload) for the rootfs, sorted by path.

    kind is "dir", "file" (payload: bytes), "link" (payload: target) or "binary" (payload: source path).
    """
    entries = [(d, "dir", m, None) for d, m in _DIRS.items()]
    entries.append(("bin/busybox", "binary", 0o755, busybox))
    for name, content in _FILES.items():
        entries.append((name, "file", 0o644, content.encode()))
    seen = {e[0] for e in entries}
    for applet in _applets(busybox):
        if applet in seen or applet == "bin/busybox":
            continue
        parent = os.path.dirname(applet)
        depth = parent.count("/") + 1 if parent else 0
        target = "busybox" if parent == "bin" else "../" * depth + "bin/busybox" if depth else "bin/busybox"
        entries.append((applet, "link", 0o777, target))
        seen.add(applet)
    return sorted(entries, key=lambda e: e[0])


def write_rootfs(target: str, busybox: str | None = None) -> str:
    """Lay the busybox rootfs out under *target* (created if missing); returns *target*."""
    busybox = busybox or busybox_path()
    os.makedirs(target, exist_ok=True)
    for path, kind, mode, payload in _entries(busybox):
        dest = os.path.join(target, path)
        if kind == "dir":
            os.makedirs(dest, exist_ok=True)
            os.chmod(dest, mode)
        elif kind == "file":
            with open(dest, "wb") as f:
                f.write(payload)
            os.chmod(dest, mode)
        elif kind == "binary":
            shutil.copyfile(payload, dest)
            os.chmod(dest, mode)
        elif not os.path.lexists(dest):
            os.symlink(payload, dest)
    return target


def write_rootfs_tar(out, busybox: str | None = None) -> None:
    """Write the rootfs as a reproducible uncompressed tar to *out* (a path or a binary file object)."""
    busybox = busybox or busybox_path()
    own = isinstance(out, (str, os.PathLike))
    f = open(out, "wb") if own else out
    try:
        with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path, kind, mode, payload in _entries(busybox):
                info = tarfile.TarInfo(path)
                info.mode, info.mtime, info.uid, info.gid = mode, EPOCH, 0, 0
                info.uname = info.gname = "root"
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, payload
                    tar.addfile(info)
                else:
                    data = payload if kind == "file" else open(payload, "rb").read()
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    finally:
        if own:
            f.close()


#: ``os.uname().machine`` -> the OCI/Go architecture name used in image configs.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
           "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}



def host_arch() -> str:
    """This machine's architecture by its OCI/Go name (``amd64``, ``arm64``; image-spec config.md)."""
    return _GOARCH.get(os.uname().machine, os.uname().machine)


#: The image's default environment and command (what Docker Hub's busybox image has).
IMAGE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
IMAGE_CMD = ["sh"]


def _split_reference(reference: str) -> tuple[str, str]:
    """``"name[:tag]"`` -> (name, tag); the tag defaults to ``latest``. Digests are refused."""
    from runtime.errors import InvalidArgument
    if not reference or "@" in reference or any(c.isspace() for c in reference):
        raise InvalidArgument(f"invalid image reference {reference!r}: want name[:tag]")
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon belonged to a registry host:port
        return reference, "latest"
    return name, tag


def image_config(diff_id: str, arch: str | None = None) -> dict:
    """The image config (OCI image-spec config.md / Docker image JSON) for one layer *diff_id*.

    *diff_id* is ``"sha256:<hex>"`` of the uncompressed layer tar; *arch* defaults to this host's
    (Go naming: amd64, arm64...). ``created`` is :data:`EPOCH`, so the config, and hence the image
    ID (its sha256), is the same on every run.
    """
    created = format_nano(EPOCH * 1_000_000_000)  # whole seconds: no fraction
    return {
        "architecture": arch or _GOARCH.get(os.uname().machine, os.uname().machine),
        "config": {"Cmd": list(IMAGE_CMD), "Env": list(IMAGE_ENV)},
        "created": created,
        "history": [{"created": created, "created_by": "capsize: rootfs from the host's busybox-static"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }


def write_image_tar(out, reference: str = "busybox:latest", busybox: str | None = None) -> str:
    """Write the busybox image as a ``docker save`` tarball to *out* (a path or a binary file object).

    The archive holds, in this order: ``<layer-hex>/layer.tar`` (the :func:`write_rootfs_tar`
    bytes), ``<config-hex>.json`` (:func:`image_config`, whose ``rootfs.diff_ids`` is the
    layer tar's sha256), ``manifest.json`` (``[{"Config", "RepoTags": [reference], "Layers"}]``)
    and ``repositories`` (``{name: {tag: <layer-hex>}}``) — the layout ``docker load`` (moby's
    image/tarexport) and ``ctr image import`` (containerd's archive importer, Docker format)
    accept. Every member is owned by 0:0 with mtime :data:`EPOCH`, so the bytes are
    reproducible. *reference* is ``name[:tag]`` (tag defaults to ``latest``).

    Returns the image ID, ``"sha256:<hex>"`` of the config JSON (what ``docker images
    --no-trunc`` shows). Raises InvalidArgument for a bad *reference*, NotFound without busybox.
    """
    import hashlib
    import json
    name, tag = _split_reference(reference)
    layer = io.BytesIO()
    write_rootfs_tar(layer, busybox)
    layer_bytes = layer.getvalue()
    layer_hex = hashlib.sha256(layer_bytes).hexdigest()
    config_bytes = json.dumps(image_config("sha256:" + layer_hex), sort_keys=True,
                              separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [f"{name}:{tag}"],
                 "Layers": [f"{layer_hex}/layer.tar"]}]
    members = [
        (f"{layer_hex}", None),
        (f"{layer_hex}/VERSION", b"1.0"),
        (f"{layer_hex}/layer.tar", layer_bytes),
        (f"{config_hex}.json", config_bytes),
        ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()),
        ("repositories", json.dumps({name: {tag: layer_hex}}, separators=(",", ":")).encode()),
    ]
    own = isinstance(out, (str, os.PathLike))
    f = open(out, "wb") if own else out
    try:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for path, data in members:
                info = tarfile.TarInfo(path)
                info.mtime, info.uid, info.gid = EPOCH, 0, 0
                info.uname = info.gname = "root"
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.mode, info.size = 0o644, len(data)
                    tar.addfile(info, io.BytesIO(data))
    finally:
        if own:
            f.close()
    return "sha256:" + config_hex
