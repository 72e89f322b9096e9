"""Checks of what the engine stores for its containers: a volume's content.

One registration each (:mod:`harness.verbs.registry`), as the checks of :mod:`harness.verbs.checks`:

* ``volume.content`` — a file in a volume, read on the host under the volume's ``Mountpoint``
  (Engine API ``GET /volumes/{name}``; ``<root>/daemon/volumes/<name>/_data`` on capsize,
  ``<docker-root>/volumes/<name>/_data`` on Docker): it exists and holds exactly ``equals``, or
  text ``contains``, or is ``absent``. The path is resolved inside the volume
  (:func:`runtime.securejoin.secure_join`: a symlink in the volume cannot lead out of it). The
  volume is named, or found as the one ``container`` mounts at ``destination`` (an anonymous
  volume). It asks the engine daemon, so it needs the daemon up.
"""

from __future__ import annotations

from pydantic import model_validator

from harness.scenario.types import ContainerName, Model, Text, describe_text, text_matches
from harness.verbs.registry import FAIL, PASS, Verdict, check
from runtime.securejoin import secure_join


class VolumeContentCheck(Model):
    """``volume`` (a name) or ``container`` + ``destination``; ``path`` inside the volume;
    one of ``equals`` (the file's whole text), ``contains`` (text or a match), ``absent: true``."""

    volume: str | None = None
    container: ContainerName | None = None
    destination: str | None = None
    path: str
    equals: str | None = None
    contains: Text | None = None
    absent: bool = False

    @model_validator(mode="after")
    def _one_volume_one_expectation(self):
        if bool(self.volume) == bool(self.container):
            raise ValueError("name the volume with either `volume` or `container` + `destination`")
        if self.container and not self.destination:
            raise ValueError("`container` needs `destination` (where it mounts the volume)")
        if sum([self.equals is not None, self.contains is not None, self.absent]) != 1:
            raise ValueError("give exactly one of `equals`, `contains`, `absent: true`")
        return self


def _volume_name(client, ctx, p: VolumeContentCheck) -> str | None:
    if p.volume:
        return p.volume
    cid = ctx.container_id(p.container)
    if not cid:
        return None
    for m in client.api.inspect_container(cid).get("Mounts") or []:
        if m.get("Type") == "volume" and m.get("Destination") == p.destination:
            return m.get("Name")
    return None


@check("volume.content", VolumeContentCheck, "a file in a volume (read on the host under its Mountpoint) "
       "holds `equals` / `contains`, or is `absent`")
def volume_content(ctx, p: VolumeContentCheck) -> Verdict:
    if p.equals is not None:
        expected = f"{p.path} holds exactly {p.equals!r}"
    elif p.contains is not None:
        expected = f"{p.path} {describe_text(p.contains)}"
    else:
        expected = f"{p.path} is absent"
    import docker.errors
    client = ctx.engine.client(timeout=10)
    try:
        name = _volume_name(client, ctx, p)
        if not name:
            return Verdict(FAIL, expected, f"{p.container} mounts no volume at {p.destination}")
        try:
            mountpoint = client.api.inspect_volume(name)["Mountpoint"]
        except docker.errors.NotFound:
            return Verdict(FAIL, expected, f"no volume {name}")
    finally:
        client.close()
    path = secure_join(mountpoint, p.path)
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except FileNotFoundError:
        return Verdict(PASS if p.absent else FAIL, expected, f"{p.path}: no such file in volume {name}",
                       [{"volume": name, "path": path}])
    except OSError as e:
        return Verdict(FAIL, expected, f"{p.path}: {e.strerror}", [{"volume": name, "path": path}])
    text = data.decode("utf-8", "replace")
    if p.absent:
        ok = False
    elif p.equals is not None:
        ok = text == p.equals
    else:
        ok = text_matches(p.contains, text)
    return Verdict(PASS if ok else FAIL, expected, text[:400], [{"volume": name, "path": path, "bytes": len(data)}])
