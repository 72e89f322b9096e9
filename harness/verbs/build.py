"""Image actions: ``build`` (a Dockerfile given inline, built by the engine's classic builder).

One registration (:mod:`harness.verbs.registry`). The context is a tar made from the step's
``dockerfile`` and ``files``, sent as Engine API ``POST /build`` (the docker SDK's
``APIClient.build``, ``custom_context``): the classic builder on both engines (dockerd serves
``/build`` without ``version=2`` with its classic builder, as ``DOCKER_BUILDKIT=0 docker build``).
The stream's JSON messages are recorded: their ``stream`` text is the step's ``stdout``, an
``errorDetail`` ends it ``fail`` with its message and, for a failing RUN, its ``code`` as the
step's ``exit_code``; the image id (``aux.ID``) is in the value.
"""

from __future__ import annotations

import io
import tarfile

from pydantic import field_validator

from harness.context import ActionResult
from harness.scenario.types import Model
from harness.verbs.container import _sdk
from harness.verbs.registry import action


class BuildSpec(Model):
    """``build``: *dockerfile* (its text) and *files* (context path -> text) as the context."""

    dockerfile: str
    files: dict[str, str] = {}
    tag: str | None = None
    no_cache: bool = False
    build_args: dict[str, str] = {}
    #: remove the intermediate containers, also after a failure (``--force-rm``; docker's default
    #: ``--rm`` removes them after a success only)
    force_rm: bool = True

    @field_validator("files")
    @classmethod
    def _relative(cls, v):
        for path in v:
            parts = path.split("/")
            if path.startswith("/") or ".." in parts or not path or path == "Dockerfile":
                raise ValueError(f"file {path!r}: a relative path inside the context, not Dockerfile")
        return v


def context_tar(dockerfile: str, files: dict[str, str]) -> bytes:
    """The build context: ``Dockerfile`` and *files* (path -> UTF-8 text, mode 0644) as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in [("Dockerfile", dockerfile), *sorted(files.items())]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _collect(stream) -> dict:
    """Read the build's JSON messages: ``{"output", "image_id", "error", "code", "cached_steps"}``."""
    out: list[str] = []
    got: dict = {"image_id": None, "error": None, "code": None}
    for msg in stream:
        if not isinstance(msg, dict):
            continue
        if msg.get("stream"):
            out.append(msg["stream"])
        aux = msg.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            got["image_id"] = aux["ID"]
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            got["error"] = detail.get("message") or msg.get("error")
            got["code"] = detail.get("code")
    got["output"] = "".join(out)
    got["cached_steps"] = got["output"].count("Using cache")
    return got


@action("build", BuildSpec, "build an image (`docker build`, classic builder: `POST /build`) from an inline "
        "`dockerfile` and context `files`; `tag`, `no_cache`, `build_args`, `force_rm`; the streamed output is "
        "the step's `stdout`, a failing RUN's code its `exit_code`, `value.image_id` and `value.cached_steps`",
        background=True)
def build(ctx, step) -> ActionResult:
    p = step.params

    def run(client):
        return _collect(client.api.build(
            fileobj=io.BytesIO(context_tar(p.dockerfile, p.files)), custom_context=True, tag=p.tag,
            nocache=p.no_cache, buildargs=dict(p.build_args) or None, rm=True, forcerm=p.force_rm, decode=True))
    res = _sdk(ctx, step, run)
    if res.outcome == "ok":
        got = res.value
        res.stdout = got.pop("output")
        error, code = got.pop("error"), got.pop("code")
        if error:
            res.outcome, res.error, res.exit_code = "fail", error, code
        if got["image_id"] is None:
            got.pop("image_id")
    return res
