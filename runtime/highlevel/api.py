"""The HTTP handlers of capsize-runtimed's API (routes: :data:`runtime.api.runtimed.ROUTES`;
bodies and results: the package docstring).

Each handler checks its input, calls the image store, container store or task manager (slow
file work in a worker thread) and publishes the events the change makes. Handlers raise the
shared errors; :mod:`runtime.highlevel.httpserver` turns them into JSON error replies.
"""

from __future__ import annotations

import asyncio
import json
import os

from runtime.api import topics
from runtime.api.runtimed import ROUTES
from runtime.errors import InvalidArgument
from runtime.highlevel.httpserver import FileResponse, Router, StreamResponse
from runtime.shim.paths import check_id

API_VERSION = 1
VERSION = "0.1.0"


def _ns(namespace: str) -> str:
    return check_id(namespace, "namespace")


def _labels_from_query(req) -> dict:
    labels = {}
    for item in req.args("label"):
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise InvalidArgument(f"label {item!r}: want key=value", field="label")
        labels[key] = value
    return labels


def _int_arg(req, name: str, default=None):
    value = req.arg(name)
    if value is None or value == "":
        return default
    try:
        n = int(value)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise InvalidArgument(f"{name} must be a non-negative integer, not {value!r}", field=name) from None


def build(daemon) -> Router:
    """The router for *daemon* (a :class:`runtime.highlevel.daemon.Daemon`)."""
    r = Router()
    images, containers, tasks, bus = daemon.images, daemon.containers, daemon.tasks, daemon.bus

    # -- daemon ------------------------------------------------------------------------------
    async def version(req):
        return {"version": VERSION, "api_version": API_VERSION, "pid": os.getpid(),
                "root": daemon.layout.root, "state": daemon.layout.state, "address": daemon.layout.address,
                "boot_id": bus.boot_id, "event_seq": bus.seq, "recovery": daemon.recovery_summary}

    async def namespaces(req):
        names = set(daemon.md.namespaces()) | {ns for ns, _ in tasks.tasks}
        return {"namespaces": sorted(names)}

    async def gc(req):
        return await asyncio.to_thread(daemon.collector.run)

    async def events(req):
        topics = req.args("topic")
        for t in topics:
            if not t.startswith("/"):
                raise InvalidArgument(f"topic {t!r} must start with '/'", field="topic")
        namespaces_ = [_ns(n) for n in req.args("namespace")]
        sub = bus.subscribe(topics, namespaces_, _int_arg(req, "since"))

        async def lines():
            async for env in sub:
                yield (json.dumps(env, separators=(",", ":"), default=str) + "\n").encode()
        return StreamResponse(lines(), on_close=sub.close)


    # -- images ------------------------------------------------------------------------------
    async def image_list(req, ns):
        rows = daemon.md.list_images(_ns(ns), config_digest=req.arg("id"))
        return {"images": [images.describe(row) for row in rows]}

    async def image_get(req, ns, name):
        from runtime.highlevel.images import normalize_name
        return images.describe(daemon.md.get_image(_ns(ns), normalize_name(name)))

    async def image_import(req, ns):
        ns = _ns(ns)
        fmt = req.arg("format", "auto")
        name = req.arg("name")
        labels = _labels_from_query(req)
        path = os.path.join(daemon.layout.tmp, f"upload-{os.urandom(16).hex()}")
        try:
            with open(path, "wb") as f:
                async for chunk in req.chunks():
                    f.write(chunk)
            results = await asyncio.to_thread(images.import_file, path, ns, fmt, name, labels)
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        out = []
        for row, action in results:
            if action in ("create", "update"):
                bus.publish(topics.IMAGE_CREATE if action == "create" else topics.IMAGE_UPDATE, ns, {"name": row["name"], "labels": row["labels"]})
            out.append(images.describe(row))
        daemon.log.info("images imported", namespace=ns, images=[i["name"] for i in out])
        return {"images": out}

    def named(ns, row, action, replaced) -> dict:
        if replaced is not None:
            bus.publish(topics.IMAGE_CREATE, ns, {"name": replaced["name"], "labels": replaced["labels"]})
        if action in ("create", "update"):
            bus.publish(topics.IMAGE_CREATE if action == "create" else topics.IMAGE_UPDATE, ns,
                        {"name": row["name"], "labels": row["labels"]})
        return images.describe(row)

    async def image_commit(req, ns):
        from runtime.highlevel.commit import check_body, commit
        ns = _ns(ns)
        body = check_body(await req.json())
        res = await asyncio.to_thread(commit, images, ns, body)
        return named(ns, res["image"], res["action"], res["replaced"])

    async def image_tag(req, ns, name):
        ns = _ns(ns)
        body = await req.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidArgument("the request body must be {\"name\": NEW, \"keep_replaced\"?}")
        row, action, replaced = images.tag(ns, name, body["name"], bool(body.get("keep_replaced")))
        return named(ns, row, action, replaced)

    async def tar_response(path: str, write) -> FileResponse:
        """``write(binary file)`` run in a thread into *path*, sent as a tar, removed afterwards."""
        def run():
            with open(path, "wb") as f:
                write(f)
        try:
            await asyncio.to_thread(run)
        except BaseException:
            if os.path.exists(path):
                os.unlink(path)
            raise
        return FileResponse(path, "application/x-tar", on_close=lambda: os.path.exists(path) and os.unlink(path))

    async def image_export(req, ns, name):
        ns = _ns(ns)
        path = os.path.join(daemon.layout.tmp, f"export-{os.urandom(16).hex()}.tar")
        return await tar_response(path, lambda f: images.export(ns, [name], f))

    async def image_delete(req, ns, name):
        from runtime.highlevel.images import normalize_name
        ns = _ns(ns)
        row = daemon.md.delete_image(ns, normalize_name(name))
        bus.publish(topics.IMAGE_DELETE, ns, {"name": row["name"]})
        report = await asyncio.to_thread(daemon.collector.run) if req.flag("sync") else None
        return {"name": row["name"], "gc": report}


    # -- containers --------------------------------------------------------------------------
    async def container_list(req, ns):
        return {"containers": [containers.view(row) for row in daemon.md.list_containers(_ns(ns))]}

    async def container_get(req, ns, cid):
        return containers.view(daemon.md.get_container(_ns(ns), cid))

    async def container_create(req, ns):
        ns = _ns(ns)
        body = await req.json()
        row = await asyncio.to_thread(containers.create, ns, body)
        bus.publish(topics.CONTAINER_CREATE, ns, {"id": row["id"], "image": row["image"],
                                               "runtime": {"name": row["runtime"]}})
        daemon.log.info("container created", namespace=ns, id=row["id"], image=row["image"])
        return containers.view(row)

    async def container_update(req, ns, cid):
        ns = _ns(ns)
        body = await req.json()
        row = containers.update(ns, cid, body, tasks.find(ns, cid) is not None)
        bus.publish(topics.CONTAINER_UPDATE, ns, {"id": row["id"], "image": row["image"], "labels": row["labels"]})
        return containers.view(row)

    async def container_delete(req, ns, cid):
        ns = _ns(ns)
        row = await asyncio.to_thread(containers.delete, ns, cid, tasks.find(ns, cid) is not None)
        bus.publish(topics.CONTAINER_DELETE, ns, {"id": row["id"]})
        daemon.log.info("container deleted", namespace=ns, id=cid)
        return {"id": row["id"]}

    async def snapshot_mounts(req, ns, key):
        return {"mounts": daemon.snapshots.mounts(_ns(ns), key)}

    async def snapshot_changes(req, ns, key):
        from runtime.highlevel.commit import changes
        return {"changes": await asyncio.to_thread(changes, daemon.snapshots, _ns(ns), key)}

    async def snapshot_export(req, ns, key):
        from runtime.highlevel.commit import export
        ns = _ns(ns)
        daemon.snapshots.md.get_snapshot(ns, key)   # 404 before anything is made
        name = os.urandom(16).hex()
        view = os.path.join(daemon.layout.tmp, "view-" + name)
        return await tar_response(os.path.join(daemon.layout.tmp, f"export-{name}.tar"),
                                  lambda f: export(daemon.snapshots, ns, key, view, f))

    # -- tasks -------------------------------------------------------------------------------
    async def task_list(req, ns):
        return {"tasks": tasks.list(_ns(ns))}

    async def task_create(req, ns):
        ns = _ns(ns)
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        cid = check_id(body.get("container_id") or body.get("id"), "container_id")
        return await tasks.create(ns, cid, body.get("log_path"), body.get("stdin"))

    async def task_get(req, ns, cid):
        return await tasks.state(_ns(ns), cid)

    async def task_start(req, ns, cid):
        return await tasks.start(_ns(ns), cid)

    async def task_kill(req, ns, cid):
        from runtime.shim.task import parse_signal
        ns = _ns(ns)
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        sig = parse_signal(body.get("signal", 15))
        return await tasks.kill(ns, cid, sig, bool(body.get("all", False)))

    async def task_wait(req, ns, cid):
        return await tasks.wait(_ns(ns), cid)

    async def task_pause(req, ns, cid):
        return await tasks.pause(_ns(ns), cid)

    async def task_resume(req, ns, cid):
        return await tasks.resume(_ns(ns), cid)

    async def task_update(req, ns, cid):
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return await tasks.update(_ns(ns), cid, body.get("resources"))

    async def task_pids(req, ns, cid):
        return await tasks.pids(_ns(ns), cid)

    async def task_exec(req, ns, cid):
        ns = _ns(ns)
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        eid = check_id(body.get("exec_id"), "exec_id")
        return await tasks.exec_process(ns, cid, eid, body.get("process"), body.get("stdin"),
                                        body.get("stdout"), body.get("stderr"))

    async def task_exec_get(req, ns, cid, eid):
        return await tasks.exec_state(_ns(ns), cid, eid)

    async def task_resize(req, ns, cid):
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return await tasks.resize(_ns(ns), cid, body.get("height"), body.get("width"), body.get("exec_id"))

    async def task_delete(req, ns, cid):
        return await tasks.delete(_ns(ns), cid, force=req.flag("force"))

    handlers = locals()
    for method, path, name in ROUTES:   # the contract's list of routes, in its order
        r.add(method, path, handlers[name])
    return r
