"""capsize-runtimed's HTTP API (containerd's role): its routes, and the client half written once.

HTTP/1.1 + JSON over a unix socket, every path under :data:`PREFIX`. The bodies, results and
objects (``Image``, ``Container``, ``Task``, ``Exit``) and the event stream are documented in
:mod:`runtime.highlevel` (the package docstring); the event topics and payloads are
:mod:`runtime.api.topics`. :data:`ROUTES` is the one list of routes: the server
(:func:`runtime.highlevel.api.build`) registers a handler for each, by name.

:class:`Requests` builds each call as a :class:`Call` (method, path, query pairs, JSON body)
without doing any I/O, and :func:`error_from_reply` turns an error reply into the shared error
class, so the two clients of capsize-runtimed — the synchronous
:class:`runtime.highlevel.client.RuntimeClient` (tools, harness, tests) and capsized's asyncio
:class:`runtime.daemon.backend.Backend` — speak the API through the same code and differ only in
their transport. Errors: a JSON error body ``{"code", "message", ...}`` is rebuilt with
:func:`runtime.errors.from_dict`; any other error reply is a plain
:class:`~runtime.errors.CapsizeError` carrying the status.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from runtime.errors import CapsizeError, from_dict

PREFIX = "/v1"
_NS = PREFIX + "/namespaces/{ns}"

#: ``(method, path, handler name)``: every route of capsize-runtimed.
ROUTES = (
    ("GET", PREFIX + "/version", "version"),
    ("GET", PREFIX + "/namespaces", "namespaces"),
    ("POST", PREFIX + "/gc", "gc"),
    ("GET", PREFIX + "/events", "events"),
    ("GET", _NS + "/images", "image_list"),
    ("POST", _NS + "/images/import", "image_import"),
    ("POST", _NS + "/images/commit", "image_commit"),
    ("GET", _NS + "/images/{name}", "image_get"),
    ("GET", _NS + "/images/{name}/export", "image_export"),
    ("POST", _NS + "/images/{name}/tag", "image_tag"),
    ("DELETE", _NS + "/images/{name}", "image_delete"),
    ("GET", _NS + "/containers", "container_list"),
    ("POST", _NS + "/containers", "container_create"),
    ("GET", _NS + "/containers/{cid}", "container_get"),
    ("PATCH", _NS + "/containers/{cid}", "container_update"),
    ("DELETE", _NS + "/containers/{cid}", "container_delete"),
    ("GET", _NS + "/snapshots/{key}/mounts", "snapshot_mounts"),
    ("GET", _NS + "/snapshots/{key}/changes", "snapshot_changes"),
    ("GET", _NS + "/snapshots/{key}/export", "snapshot_export"),
    ("GET", _NS + "/tasks", "task_list"),
    ("POST", _NS + "/tasks", "task_create"),
    ("GET", _NS + "/tasks/{cid}", "task_get"),
    ("POST", _NS + "/tasks/{cid}/start", "task_start"),
    ("POST", _NS + "/tasks/{cid}/kill", "task_kill"),
    ("POST", _NS + "/tasks/{cid}/wait", "task_wait"),
    ("POST", _NS + "/tasks/{cid}/pause", "task_pause"),
    ("POST", _NS + "/tasks/{cid}/resume", "task_resume"),
    ("GET", _NS + "/tasks/{cid}/pids", "task_pids"),
    ("POST", _NS + "/tasks/{cid}/update", "task_update"),
    ("POST", _NS + "/tasks/{cid}/exec", "task_exec"),
    ("GET", _NS + "/tasks/{cid}/exec/{eid}", "task_exec_get"),
    ("POST", _NS + "/tasks/{cid}/resize", "task_resize"),
    ("DELETE", _NS + "/tasks/{cid}", "task_delete"),
)


class Call:
    """One request: *method*, *path* (quoted, with :data:`PREFIX`), *query* (``[(name, value)]``)
    and *body* (a JSON-able object, or None)."""

    __slots__ = ("method", "path", "query", "body")

    def __init__(self, method: str, path: str, query=(), body=None):
        self.method, self.path, self.query, self.body = method, path, list(query), body

    def json_body(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()

    def __repr__(self) -> str:
        return f"Call({self.method} {self.path} {self.query} {self.body!r})"


def query_pairs(query: dict) -> list:
    """``{name: value | [values] | None}`` -> ``[(name, value)]``, Nones left out."""
    return [(k, v) for k, vs in query.items() if vs is not None
            for v in (vs if isinstance(vs, (list, tuple)) else [vs])]


class Requests:
    """The calls of the API, scoped to *namespace* (see the module docstring)."""

    __slots__ = ("namespace",)

    def __init__(self, namespace: str = "default"):
        self.namespace = namespace

    def ns_path(self, *parts: str) -> str:
        return (PREFIX + "/namespaces/" + quote(self.namespace, safe="")
                + "".join("/" + quote(p, safe="") for p in parts))

    # -- daemon ------------------------------------------------------------------------------
    def version(self) -> Call:
        return Call("GET", PREFIX + "/version")

    def namespaces(self) -> Call:
        return Call("GET", PREFIX + "/namespaces")

    def gc(self) -> Call:
        return Call("POST", PREFIX + "/gc")

    @staticmethod
    def events(topics=(), namespaces=(), since: int | None = None) -> Call:
        """``GET /v1/events``: topics exact or prefixes (``/tasks/``, ``/tasks/*``); *since* a ``seq``."""
        query = [("topic", t) for t in topics] + [("namespace", n) for n in namespaces]
        if since is not None:
            query.append(("since", str(since)))
        return Call("GET", PREFIX + "/events", query)

    # -- images ------------------------------------------------------------------------------
    def images(self, image_id: str | None = None) -> Call:
        """``GET .../images``; with *image_id* (``sha256:<hex>``, an image config digest) only the
        images (names) of that id."""
        return Call("GET", self.ns_path("images"), query_pairs({"id": image_id}))

    def image(self, name: str) -> Call:
        return Call("GET", self.ns_path("images", name))

    def import_image(self, format: str = "auto", name: str | None = None,  # noqa: A002
                     labels: dict | None = None) -> Call:
        """The body (the tarball) is the transport's to send."""
        return Call("POST", self.ns_path("images", "import"), query_pairs(
            {"format": format, "name": name, "label": [f"{k}={v}" for k, v in (labels or {}).items()] or None}))

    def commit_image(self, parent: str | None, snapshot: str | None, config: dict, history: dict | None = None,
                     name: str | None = None, author: str = "", comment: str = "",
                     keep_replaced: bool = False, labels: dict | None = None) -> Call:
        """``POST .../images/commit`` (:mod:`runtime.highlevel.commit`): *snapshot*'s changes on
        *parent* (None: scratch) as a new image with *config*; no *snapshot*: a config-only image."""
        return Call("POST", self.ns_path("images", "commit"), body={
            "parent": parent, "snapshot": snapshot, "config": config, "history": history or {},
            "name": name, "author": author, "comment": comment, "keep_replaced": keep_replaced,
            "labels": labels or {}})

    def tag_image(self, name: str, new_name: str, keep_replaced: bool = False) -> Call:
        """``POST .../images/{name}/tag``: *new_name* names the same image (its old image kept
        under its digest with *keep_replaced*)."""
        return Call("POST", self.ns_path("images", name, "tag"),
                    body={"name": new_name, "keep_replaced": keep_replaced})

    def export_image(self, name: str) -> Call:
        return Call("GET", self.ns_path("images", name, "export"))

    def delete_image(self, name: str, sync: bool = False) -> Call:
        return Call("DELETE", self.ns_path("images", name), query_pairs({"sync": "1" if sync else None}))

    # -- containers --------------------------------------------------------------------------
    def create_container(self, container_id: str, image: str, runtime: str | None = None, args=None,
                         env=None, spec: dict | None = None, labels: dict | None = None,
                         cwd: str | None = None) -> Call:
        body = {"id": container_id, "image": image}
        for key, value in (("runtime", runtime), ("args", args), ("env", env), ("spec", spec),
                           ("labels", labels), ("cwd", cwd)):
            if value is not None:
                body[key] = list(value) if key in ("args", "env") else value
        return Call("POST", self.ns_path("containers"), body=body)

    def containers(self) -> Call:
        return Call("GET", self.ns_path("containers"))

    def container(self, container_id: str) -> Call:
        return Call("GET", self.ns_path("containers", container_id))

    def update_container(self, container_id: str, labels: dict | None = None, spec: dict | None = None) -> Call:
        body = {k: v for k, v in (("labels", labels), ("spec", spec)) if v is not None}
        return Call("PATCH", self.ns_path("containers", container_id), body=body)

    def delete_container(self, container_id: str) -> Call:
        return Call("DELETE", self.ns_path("containers", container_id))

    def snapshot_mounts(self, key: str) -> Call:
        """containerd's ``Snapshots.Mounts``: how to mount the active snapshot *key* (a container's)."""
        return Call("GET", self.ns_path("snapshots", key, "mounts"))

    def snapshot_changes(self, key: str) -> Call:
        """``docker diff`` of the active snapshot *key*: ``{"changes": [{"Path", "Kind"}]}``."""
        return Call("GET", self.ns_path("snapshots", key, "changes"))

    def snapshot_export(self, key: str) -> Call:
        """``docker export`` of the active snapshot *key*: a tar of its whole tree."""
        return Call("GET", self.ns_path("snapshots", key, "export"))

    # -- tasks -------------------------------------------------------------------------------
    def tasks(self) -> Call:
        return Call("GET", self.ns_path("tasks"))

    def task(self, task_id: str) -> Call:
        return Call("GET", self.ns_path("tasks", task_id))

    def create_task(self, container_id: str, log_path: str | None = None, stdin: str | None = None) -> Call:
        body = {"container_id": container_id}
        if log_path:
            body["log_path"] = log_path
        if stdin:
            body["stdin"] = stdin
        return Call("POST", self.ns_path("tasks"), body=body)

    def start_task(self, task_id: str) -> Call:
        return Call("POST", self.ns_path("tasks", task_id, "start"), body={})

    def kill_task(self, task_id: str, signal=15, all: bool = False) -> Call:  # noqa: A002 - runc's word
        return Call("POST", self.ns_path("tasks", task_id, "kill"), body={"signal": signal, "all": all})

    def wait_task(self, task_id: str) -> Call:
        return Call("POST", self.ns_path("tasks", task_id, "wait"), body={})

    def pause_task(self, task_id: str) -> Call:
        return Call("POST", self.ns_path("tasks", task_id, "pause"), body={})

    def resume_task(self, task_id: str) -> Call:
        return Call("POST", self.ns_path("tasks", task_id, "resume"), body={})

    def update_task(self, task_id: str, resources: dict) -> Call:
        """containerd's ``Tasks.Update``: OCI ``linux.resources`` *resources* applied to the task's cgroup."""
        return Call("POST", self.ns_path("tasks", task_id, "update"), body={"resources": resources})

    def pids(self, task_id: str) -> Call:
        return Call("GET", self.ns_path("tasks", task_id, "pids"))

    def exec_process(self, task_id: str, exec_id: str, process: dict, stdin: str | None = None,
                     stdout: str | None = None, stderr: str | None = None) -> Call:
        """``POST .../tasks/{id}/exec``: run *process* (OCI) as exec *exec_id*; FIFO paths optional."""
        body = {"exec_id": exec_id, "process": process}
        for key, value in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            if value:
                body[key] = value
        return Call("POST", self.ns_path("tasks", task_id, "exec"), body=body)

    def exec_state(self, task_id: str, exec_id: str) -> Call:
        return Call("GET", self.ns_path("tasks", task_id, "exec", exec_id))

    def resize(self, task_id: str, height: int, width: int, exec_id: str | None = None) -> Call:
        """``POST .../tasks/{id}/resize``: the terminal of the init, or of exec *exec_id*, gets
        *height* rows and *width* columns (the shim's ``resize``: TIOCSWINSZ)."""
        body = {"height": height, "width": width}
        if exec_id:
            body["exec_id"] = exec_id
        return Call("POST", self.ns_path("tasks", task_id, "resize"), body=body)

    def delete_task(self, task_id: str, force: bool = False) -> Call:
        return Call("DELETE", self.ns_path("tasks", task_id), query_pairs({"force": "1" if force else None}))


def error_from_reply(status: int, reason: str, data: bytes) -> CapsizeError:
    """The error an error reply (*status* >= 400, its *reason* and body *data*) stands for."""
    try:
        body = json.loads(data)
        if isinstance(body, dict) and "message" in body:
            return from_dict(body)
    except ValueError:
        pass
    text = data.decode(errors="replace").strip()[:300]
    return CapsizeError(f"capsize-runtimed answered {status} {reason}: {text}", status=status)
