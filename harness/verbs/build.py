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
import time

from pydantic import field_validator

from harness.context import ActionResult
from harness.outcome import classify_exception
from harness.scenario.types import Model
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


def _collect(stream, res: ActionResult) -> None:
    """Read the build's JSON messages into *res*: output, image id, the error that ended it."""
    out: list[str] = []
    for msg in stream:
        if not isinstance(msg, dict):
            continue
        if msg.get("stream"):
            out.append(msg["stream"])
        aux = msg.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            res.value["image_id"] = aux["ID"]
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            res.outcome = "fail"
            res.error = detail.get("message") or msg.get("error")
            if detail.get("code") is not None:
                res.exit_code = detail["code"]
    res.stdout = "".join(out)
    res.value["cached_steps"] = res.stdout.count("Using cache")


@action("build", BuildSpec, "build an image (`docker build`, classic builder: `POST /build`) from an inline "
        "`dockerfile` and context `files`; `tag`, `no_cache`, `build_args`, `force_rm`; the streamed output is "
        "the step's `stdout`, a failing RUN's code its `exit_code`, `value.image_id` and `value.cached_steps`",
        background=True)
def build(ctx, step) -> ActionResult:
    p = step.params
    res = ActionResult(wall=time.time(), mono=time.monotonic(), outcome="ok")
    client = ctx.engine.client(timeout=step.timeout)
    try:
        stream = client.api.build(fileobj=io.BytesIO(context_tar(p.dockerfile, p.files)), custom_context=True,
                                  tag=p.tag, nocache=p.no_cache, buildargs=dict(p.build_args) or None,
                                  rm=True, forcerm=p.force_rm, decode=True)
        _collect(stream, res)
    except Exception as e:  # noqa: BLE001 - every failure is an outcome, not a crash
        res.outcome, res.error, res.status_code = classify_exception(e)
    finally:
        res.duration = time.monotonic() - res.mono
        client.close()
    return res
