"""Docker image references and the image views of the Engine API.

* :func:`normalize` — Docker's familiar form of a reference: ``busybox`` -> ``busybox:latest``,
  ``docker.io/library/busybox:1`` -> ``busybox:1``, ``repo@sha256:...`` kept; InvalidArgument
  (400) for one Docker would refuse (upper case, bad characters): ``invalid reference format``.
* :func:`summary` / :func:`inspect` — ``GET /images/json`` items (ImageSummary) and
  ``GET /images/{name}/json`` (ImageInspect) from the runtime's image record
  (``{"Id", "RepoTags", "Created" (ns), "Size", "Config", "Labels", "Layers", "Architecture",
  "Os"}``, see :mod:`runtime.daemon.backend`).
"""

from __future__ import annotations

import re

from runtime.daemon.clock import rfc3339
from runtime.errors import InvalidArgument

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
_REF = re.compile(rf"^({_DOMAIN}{_COMPONENT}(?:/{_COMPONENT})*)(?::([\w][\w.-]{{0,127}}))?(?:@(sha256:[0-9a-f]{{64}}))?$")


def normalize(ref: str, default_tag: str = "latest") -> str:
    """``repo:tag`` (or ``repo@digest``) in Docker's familiar form; InvalidArgument when malformed."""
    ref = (ref or "").strip()
    m = _REF.match(ref)
    if not m:
        raise InvalidArgument("invalid reference format" + ("" if ref.islower() or not ref else
                                                             ": repository name must be lowercase"))
    repo, tag, digest = m.groups()
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            break
    if digest:
        return f"{repo}@{digest}"
    return f"{repo}:{tag or default_tag}"


def is_image_id(ref: str) -> bool:
    r = ref[7:] if ref.startswith("sha256:") else ref
    return bool(re.fullmatch(r"[0-9a-f]{4,64}", r))


def parents(images: list[dict]) -> set[str]:
    """Ids of the images that are another's parent (a build's or a commit's ``Parent``)."""
    return {i["Parent"] for i in images if i.get("Parent")}


def summary(img: dict) -> dict:
    return {"Id": img["Id"], "ParentId": img.get("Parent", ""), "RepoTags": list(img.get("RepoTags") or []),
            "RepoDigests": list(img.get("RepoDigests") or []), "Created": int(img.get("Created", 0)) // 1_000_000_000,
            "Size": int(img.get("Size", 0)), "SharedSize": -1, "VirtualSize": int(img.get("Size", 0)),
            "Labels": dict((img.get("Config") or {}).get("Labels") or {}) or None, "Containers": -1}


def inspect(img: dict) -> dict:
    from runtime.daemon.model import CONFIG_DEFAULTS
    cfg = {**CONFIG_DEFAULTS, **(img.get("Config") or {})}
    return {"Id": img["Id"], "RepoTags": list(img.get("RepoTags") or []),
            "RepoDigests": list(img.get("RepoDigests") or []), "Parent": img.get("Parent", ""), "Comment": img.get("Comment", ""),
            "Created": rfc3339(int(img.get("Created", 0))), "Container": "", "ContainerConfig": dict(CONFIG_DEFAULTS),
            "DockerVersion": "", "Author": img.get("Author", ""), "Config": cfg,
            "Architecture": img.get("Architecture", "amd64"), "Os": img.get("Os", "linux"),
            "Size": int(img.get("Size", 0)), "VirtualSize": int(img.get("Size", 0)),
            "GraphDriver": {"Data": None, "Name": "overlay"},
            "RootFS": {"Type": "layers", "Layers": list(img.get("Layers") or [])},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}}
