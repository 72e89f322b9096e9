"""Every call capsized makes to capsize-runtimed (containerd's role), over asyncio (aiohttp).

The calls are built by :class:`runtime.api.runtimed.Requests` and error replies decoded by
:func:`runtime.api.runtimed.error_from_reply` — the same code the synchronous
:class:`runtime.highlevel.client.RuntimeClient` uses; this module is capsized's transport and
turns the runtime's objects into capsized's.

capsize-runtimed serves HTTP + JSON on a unix socket (``--runtime-address``); capsized uses the
namespace :data:`NAMESPACE` (dockerd uses ``moby``). Endpoints used (``/v1/...``):

==================================================  ======================================
``GET /version``                                    liveness, version
``GET /events?namespace=&topic=&since=``            JSON lines: ``/tasks/exit``, ``/tasks/oom``
``GET|DELETE /namespaces/NS/images[/NAME]``         list, get, delete (by name)
``POST /namespaces/NS/images/import?format=&name=``  import (rootfs / docker-archive), load
``GET /namespaces/NS/images/NAME/export``           docker-save tarball
``POST|DELETE /namespaces/NS/containers[/ID]``      the container record + its snapshot
``GET /namespaces/NS/snapshots/ID/mounts``          its snapshot's mounts (volume copy-up)
``GET /namespaces/NS/snapshots/ID/changes|export``  docker diff, docker export
``POST /namespaces/NS/images/commit``               docker commit (a snapshot's diff as a layer)
``POST /namespaces/NS/tasks``, ``.../start|kill|pause|resume``, ``GET .../pids``,
``GET|DELETE /namespaces/NS/tasks/ID``              tasks (one shim each)
==================================================  ======================================

Image records come back as capsized's dicts: ``{"Id": "sha256:<config digest>", "RepoTags":
[...], "Names": [runtime names], "Created": ns, "Size": bytes, "Config": {...}, "Layers":
[diff ids], "Architecture", "Os"}`` (one per image id; its names are its tags).

Bounded: every call has a timeout (:data:`CALL_TIMEOUT`, :data:`TASK_TIMEOUT` for create and
start, :data:`CONNECT_TIMEOUT` to connect). Errors: :class:`~runtime.errors.Unavailable`
(``capsize-runtimed is not reachable at PATH: ...``) when it cannot be reached,
:class:`~runtime.errors.DeadlineExceeded` when it does not answer in time, else the runtime's
own error (``{"code", "message"}``, rebuilt with :func:`runtime.errors.from_dict`).

Health: a watcher keeps one event subscription open. While it is connected :attr:`Backend.healthy`
is true; when it breaks capsized logs it, retries every 0.1 s (doubling to 1 s) and, once
reconnected, asks for the events it missed (``since`` the last sequence number of the same
``boot_id``, else everything the restarted runtime published) and calls
``daemon.on_runtime_up()``, which re-syncs task states (:func:`runtime.daemon.reconcile.resync`) —
or, when capsized's boot gave up waiting for the runtime, runs the start-up reconcile on the first
connection (:func:`runtime.daemon.reconcile.at_start`).
"""

from __future__ import annotations

import asyncio
import json
import time
import aiohttp
from yarl import URL

from runtime.api import topics
from runtime.api import exits
from runtime.api.runtimed import Call, Requests, error_from_reply
from runtime.daemon import images as imgs
from runtime.daemon.clock import parse_rfc3339
from runtime.errors import (AlreadyExists, CapsizeError, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                            NotFound, Unavailable, Unimplemented)

NAMESPACE = "capsize"
#: The runtime image record label naming an image's parent (dockerd's image store parent link:
#: a commit's container image, a build step's previous step).
PARENT_LABEL = "capsize.image.parent"
#: Every call to capsize-runtimed, built once (:mod:`runtime.api.runtimed`), in capsized's namespace.
RT = Requests(NAMESPACE)
CONNECT_TIMEOUT = 2.0
CALL_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
TASK_TIMEOUT = 60.0
IMAGE_TIMEOUT = 300.0
RETRY_MIN, RETRY_MAX = 0.1, 1.0


def _ns_time(text) -> int:
    if not text:
        return 0
    try:
        return parse_rfc3339(text)
    except ValueError:
        return 0



def exit_provenance(ev: dict) -> tuple[int, str, str]:
    """(exit code, provenance, reason) capsized records for a runtime exit *ev* (a ``/tasks/exit``
    payload or a task's view: ``exit_status``, ``exit_source``, ``exit_reason``), by
    :mod:`runtime.api.exits`: a real status as reported; ``cleanup-kill`` keeps its 137; an
    ``unknown`` source, or no status at all, is 255."""
    status, prov = ev.get("exit_status"), exits.provenance(ev.get("exit_source"))
    reason = ev.get("exit_reason") or ""
    if not isinstance(status, int):
        prov, reason = exits.UNKNOWN, reason or "the runtime reported the exit without a status"
    if prov == exits.UNKNOWN:
        status = exits.UNKNOWN_STATUS
    return int(status), prov, reason

class Backend:
    def __init__(self, config, log):
        self.address = config.runtime_address
        self.runtime = getattr(config, "default_runtime", None)
        self.log = log
        self.healthy = False
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task | None = None
        self._daemon = None
        self._up = asyncio.Event()
        self._boot_id = None
        self._seq = 0
        self._early: dict[str, tuple] = {}

    # -- plumbing -------------------------------------------------------------------------------
    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.UnixConnector(path=self.address, limit=64, force_close=False)
            self._session = aiohttp.ClientSession(connector=conn, auto_decompress=False)
        return self._session

    @staticmethod
    def _url(call: Call) -> URL:
        url = URL("http://capsize-runtimed" + call.path, encoded=True)
        if call.query:
            url = url.with_query(call.query)
        return url

    async def _call(self, call: Call, *, data=None, timeout: float = CALL_TIMEOUT, to_file: str | None = None):
        """Send one :class:`runtime.api.runtimed.Call` (*data*, a binary file, replaces its JSON body)."""
        method, path = call.method, call.path
        url = self._url(call)
        kw = {}
        if data is not None:
            kw["data"] = data
        elif call.body is not None:
            kw["data"] = call.json_body()
            kw["headers"] = {"Content-Type": "application/json"}
        t = aiohttp.ClientTimeout(total=timeout, sock_connect=CONNECT_TIMEOUT)
        t0 = time.monotonic()
        try:
            async with self._sess().request(method, url, timeout=t, **kw) as resp:
                self.log.debug("runtime call", method=method, path=path, status=resp.status,
                               seconds=round(time.monotonic() - t0, 4))
                if resp.status >= 400:
                    raise error_from_reply(resp.status, resp.reason or "", await resp.read())
                if to_file is not None:
                    with open(to_file, "wb") as f:
                        async for chunk in resp.content.iter_chunked(1 << 16):
                            f.write(chunk)
                    return None
                raw = await resp.read()
                return json.loads(raw) if raw.strip() else {}
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"capsize-runtimed at {self.address} did not answer {method} {path} "
                                   f"within {timeout:g}s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as e:
            raise Unavailable(f"capsize-runtimed is not reachable at {self.address}: "
                              f"{getattr(e, 'strerror', None) or e}") from None

    # -- life ---------------------------------------------------------------------------------
    async def start(self, daemon) -> None:
        self._daemon = daemon
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def wait_healthy(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._session is not None:
            await self._session.close()

    async def _watch(self) -> None:
        delay = RETRY_MIN
        first = True
        while True:
            try:
                info = await self._call(RT.version(), timeout=CONNECT_TIMEOUT + 1)
                boot = info.get("boot_id")
                since = self._seq if (boot and boot == self._boot_id) else 0
                events = RT.events((topics.TASK_EXIT, topics.TASK_OOM), (NAMESPACE,), since)
                t = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
                async with self._sess().get(self._url(events), timeout=t) as resp:
                    if resp.status != 200:
                        raise Unavailable(f"events: HTTP {resp.status}")
                    self._boot_id = boot
                    self.healthy = True
                    delay = RETRY_MIN
                    if not first:
                        self.log.info("capsize-runtimed is back: re-syncing task states", address=self.address)
                    self._up.set()
                    if self._daemon is not None and (not first or self._daemon.boot_gave_up):
                        self._daemon.spawn(self._daemon_resync())
                    first = False
                    async for line in resp.content:
                        if line.strip():
                            await self._dispatch(line)
                raise Unavailable("event stream ended")
            except asyncio.CancelledError:
                raise
            except (CapsizeError, aiohttp.ClientError, OSError, ValueError) as e:
                if self.healthy:
                    self.log.error("Failed to get event", error=str(e), module="runtime")
                    self.log.info("Waiting for capsize-runtimed to be ready to restart event processing")
                    first = False
                self.healthy = False
                self._up.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _daemon_resync(self) -> None:
        await self._daemon.on_runtime_up()

    async def _dispatch(self, line: bytes) -> None:
        try:
            env = json.loads(line)
        except ValueError:
            return
        seq = env.get("seq")
        if isinstance(seq, int):
            self._seq = max(self._seq, seq)
        if env.get("namespace") != NAMESPACE:
            return
        ev = env.get("event") or {}
        cid = ev.get("container_id") or ev.get("id")
        if not cid or self._daemon is None:
            return
        if env.get("topic") == topics.TASK_EXIT and topics.is_exec_exit(ev):
            code, prov, reason = exit_provenance(ev)
            self._daemon.execs.on_exit(cid, ev["id"], int(ev.get("pid") or 0), code, source=prov, reason=reason)
        elif env.get("topic") == topics.TASK_EXIT:
            code, prov, reason = exit_provenance(ev)
            await self._daemon.on_task_exit(cid, int(ev.get("pid") or 0), code, _ns_time(ev.get("exited_at")),
                                            source=prov, reason=reason)
        elif env.get("topic") == topics.TASK_OOM:
            await self._daemon.on_task_oom(cid)

    def remember_early_exit(self, cid: str, exit_info: tuple) -> None:
        """An exit that came before capsized recorded the start (``docker run ... true``)."""
        self._early[cid] = exit_info
        if len(self._early) > 1024:
            self._early.pop(next(iter(self._early)))

    def take_early_exit(self, cid: str):
        return self._early.pop(cid, None)

    async def runtime_version(self) -> str | None:
        try:
            return (await self._call(RT.version(), timeout=1.0)).get("version")
        except CapsizeError:
            return None

    # -- images -------------------------------------------------------------------------------
    @staticmethod
    def _group(rows: list[dict]) -> list[dict]:
        by_id: dict[str, dict] = {}
        for r in rows:
            iid = r.get("id") or r.get("config_digest")
            if not iid:
                continue
            img = by_id.get(iid)
            if img is None:
                img = by_id[iid] = {"Id": iid, "RepoTags": [], "Names": [], "Created": _ns_time(r.get("created_at")),
                                    "Size": int(r.get("size") or 0), "Config": r.get("config") or {},
                                    "Layers": list(r.get("diff_ids") or []),
                                    "Architecture": r.get("architecture") or "amd64", "Os": r.get("os") or "linux",
                                    "Author": r.get("author") or "", "Comment": r.get("comment") or "",
                                    "History": list(r.get("history") or []),
                                    "LayerSizes": list(r.get("layer_sizes") or []), "Parent": ""}
            img["Names"].append(r["name"])
            img["Parent"] = img["Parent"] or (r.get("labels") or {}).get(PARENT_LABEL, "")
            if not r["name"].startswith("sha256:"):
                try:
                    img["RepoTags"].append(imgs.normalize(r["name"]))
                except InvalidArgument:
                    img["RepoTags"].append(r["name"])
            img["Created"] = min(img["Created"], _ns_time(r.get("created_at"))) or img["Created"]
            if r.get("image_created"):   # the image config's "created" wins, as Docker's Created
                img["Created"] = _ns_time(r["image_created"]) or img["Created"]
        return list(by_id.values())

    async def image_list(self) -> list[dict]:
        rows = (await self._call(RT.images())).get("images") or []
        return self._group(rows)

    async def count_images(self) -> int:
        try:
            return len(await self.image_list())
        except CapsizeError:
            return 0

    async def image_get(self, ref: str) -> dict:
        """The image *ref* names: ``repo[:tag]``, ``sha256:<id>`` or an id prefix; NotFound otherwise."""
        if imgs.is_image_id(ref):
            want = ref if ref.startswith("sha256:") else "sha256:" + ref
            if len(want) == len("sha256:") + 64:   # a whole id: only its rows (the builder's cache hits)
                matches = self._group((await self._call(RT.images(want))).get("images") or [])
            else:
                matches = [i for i in await self.image_list() if i["Id"].startswith(want)]
            if len(matches) == 1:
                return matches[0]
        try:
            name = imgs.normalize(ref)
        except InvalidArgument:
            raise NotFound(f"No such image: {ref}") from None
        try:
            row = await self._call(RT.image(name))
        except NotFound:
            raise NotFound(f"No such image: {ref}") from None
        except InvalidArgument:
            raise NotFound(f"No such image: {ref}") from None
        iid = row.get("id")
        for img in await self.image_list():
            if img["Id"] == iid:
                return img
        return self._group([row])[0]

    async def image_import(self, path: str, fmt: str, name: str | None) -> dict:
        """``docker import``: a rootfs tar at *path* as image *name*; the new image."""
        if not name:
            raise InvalidArgument("capsize's docker import needs a repository name (docker import FILE NAME)")
        out = await self._import(path, fmt, name)
        if not out:
            raise CapsizeError("capsize-runtimed imported nothing")
        return out[0]

    async def image_load(self, path: str) -> list[dict]:
        """``docker load``: every image of the docker-save tarball at *path*."""
        return await self._import(path, "auto", None)

    async def _import(self, path: str, fmt: str, name: str | None) -> list[dict]:
        with open(path, "rb") as f:
            res = await self._call(RT.import_image(fmt, name or None), data=f, timeout=IMAGE_TIMEOUT)
        ids = {r.get("id") for r in res.get("images") or []}
        return [i for i in await self.image_list() if i["Id"] in ids]

    async def image_export(self, refs: list[str], out_path: str) -> None:
        """``docker save``: a docker-save tarball of *refs* (one image; several are Unimplemented)."""
        names = []
        for r in refs:
            img = await self.image_get(r)
            names.append(imgs.normalize(r) if not imgs.is_image_id(r) else img["Names"][0])
        if len(names) != 1:
            raise Unimplemented("capsize saves one image per docker save (capsize-runtimed exports one name)")
        await self._call(RT.export_image(names[0]), timeout=IMAGE_TIMEOUT, to_file=out_path)

    async def image_tag(self, img: dict, new_ref: str) -> None:
        """Give image *img* the name *new_ref* (runtimed's tag: the same target under a new name);
        an image *new_ref* named before stays as a dangling image, as with dockerd."""
        if new_ref in img["RepoTags"]:
            return
        await self._call(RT.tag_image(img["Names"][0], new_ref, keep_replaced=True))

    async def commit(self, parent: str | None, snapshot: str | None, config: dict, history: dict,
                     name: str | None, author: str = "", comment: str = "", labels: dict | None = None) -> dict:
        """A new image of *snapshot*'s changes on the image *parent* (runtimed's name; None =
        scratch) with *config* (:mod:`runtime.highlevel.commit`); an image the tag *name* pointed
        to stays as a dangling image. The new image (capsized's dict)."""
        row = await self._call(RT.commit_image(parent, snapshot, config, history, name, author, comment,
                                               keep_replaced=True, labels=labels), timeout=IMAGE_TIMEOUT)
        for img in await self.image_list():
            if img["Id"] == row.get("id"):
                return img
        return self._group([row])[0]

    async def snapshot_changes(self, cid: str) -> list[dict]:
        """``docker diff`` of container *cid*'s snapshot: ``[{"Path", "Kind"}]``; NotFound."""
        return (await self._call(RT.snapshot_changes(cid), timeout=IMAGE_TIMEOUT))["changes"]

    async def snapshot_export(self, cid: str, out_path: str) -> None:
        """``docker export``: a tar of container *cid*'s whole tree, written to *out_path*."""
        await self._call(RT.snapshot_export(cid), timeout=IMAGE_TIMEOUT, to_file=out_path)

    async def gc(self) -> dict:
        """capsize-runtimed's garbage collection now: ``{"bytes_freed", ...}``."""
        return await self._call(RT.gc(), timeout=IMAGE_TIMEOUT)

    async def image_untag(self, name: str) -> None:
        await self._call(RT.delete_image(name))

    async def image_delete_id(self, image_id: str) -> None:
        for img in await self.image_list():
            if img["Id"] == image_id:
                for n in img["Names"]:
                    await self.image_untag(n)

    # -- containers and tasks --------------------------------------------------------------------
    async def create_container(self, cid: str, image, spec: dict) -> None:
        """The runtime's container record for *cid* (its snapshot prepared) from *image* (a dict or an id)."""
        img = image if isinstance(image, dict) else await self.image_get(image)
        await self._call(RT.create_container(cid, img["Names"][0], runtime=self.runtime or None, spec=spec),
                         timeout=IMAGE_TIMEOUT)

    async def update_container_spec(self, cid: str, spec: dict) -> None:
        """The runtime's container record for *cid* takes OCI *spec* (its next task uses it):
        containerd's Containers.Update. NotFound when the runtime has no such container."""
        await self._call(RT.update_container(cid, spec=spec))

    async def delete_container(self, cid: str) -> None:
        """Delete the container record (and its snapshot); a task left behind is force-deleted first."""
        try:
            await self._call(RT.delete_container(cid))
        except NotFound:
            pass
        except FailedPrecondition:
            try:
                await self.delete_task(cid)
            except NotFound:
                pass
            try:
                await self._call(RT.delete_container(cid))
            except NotFound:
                pass

    async def snapshot_mounts(self, cid: str) -> list[dict]:
        """The mounts of *cid*'s active snapshot (``[{"type", "source", "options"}]``); NotFound."""
        return (await self._call(RT.snapshot_mounts(cid)))["mounts"]

    async def run_task(self, cid: str, image_id: str, spec: dict, log_path: str, stdin: str | None = None) -> int:
        """Create and start the task of container *cid* (its record re-made if the runtime lost it); its pid.
        *stdin*: the FIFO the init reads as its stdin (else /dev/null)."""
        create = RT.create_task(cid, log_path, stdin)
        try:
            await self._call(create, timeout=TASK_TIMEOUT)
        except NotFound as e:
            if "container" not in e.message and "not found" not in e.message:
                raise
            await self.create_container(cid, image_id, spec)
            await self._call(create, timeout=TASK_TIMEOUT)
        except AlreadyExists:
            # a task left by an earlier start that was cut off (the runtime daemon died mid-start, so
            # the clean-up below never reached it); the caller does not count the container as
            # running, so the task is stale: delete it and create again, as dockerd does ("Container
            # not cleaned up from containerd from previous run")
            self.log.warning("task not cleaned up from a previous start: deleting it", container=cid)
            try:
                await self.delete_task(cid)
            except NotFound:
                pass
            await self._call(create, timeout=TASK_TIMEOUT)
        try:
            res = await self._call(RT.start_task(cid), timeout=TASK_TIMEOUT)
        except CapsizeError:
            try:
                await self._call(RT.delete_task(cid, force=True), timeout=TASK_TIMEOUT)
            except CapsizeError:
                pass
            raise
        return int(res.get("pid") or 0)

    async def delete_task(self, cid: str) -> dict:
        return await self._call(RT.delete_task(cid, force=True), timeout=TASK_TIMEOUT)

    async def task_state(self, cid: str) -> dict:
        """``{"status", "pid", "exit_status", "exit_source", "exited_at_ns"}``; NotFound without a task."""
        st = await self._call(RT.task(cid), timeout=CALL_TIMEOUT)
        st["exited_at_ns"] = _ns_time(st.get("exited_at"))
        return st

    async def kill(self, cid: str, sig: int) -> None:
        await self._call(RT.kill_task(cid, sig), timeout=KILL_TIMEOUT)

    async def pause(self, cid: str) -> None:
        await self._call(RT.pause_task(cid))

    async def update_task(self, cid: str, resources: dict) -> None:
        """The task's cgroup gets OCI ``linux.resources`` *resources* (runtimed's task update)."""
        await self._call(RT.update_task(cid, resources))

    async def resume(self, cid: str) -> None:
        await self._call(RT.resume_task(cid))

    async def exec_state(self, cid: str, exec_id: str) -> dict:
        """runtimed's ``Exec`` view of exec *exec_id* of *cid*: ``{"pid", "status", "exit_status",
        "exit_source", "exit_reason", ...}``; NotFound without one."""
        return await self._call(RT.exec_state(cid, exec_id))

    async def exec_process(self, cid: str, exec_id: str, process: dict, stdin: str | None = None,
                           stdout: str | None = None, stderr: str | None = None) -> dict:
        """Run *process* (OCI) in the task of *cid* as exec *exec_id*: runtimed's ``Exec`` view."""
        return await self._call(RT.exec_process(cid, exec_id, process, stdin, stdout, stderr),
                                timeout=TASK_TIMEOUT)

    async def resize(self, cid: str, height: int, width: int, exec_id: str | None = None) -> None:
        """The terminal of *cid*'s init (or of exec *exec_id*) gets *height* x *width* (runtimed's
        ``POST /tasks/{id}/resize``); FailedPrecondition without a terminal."""
        await self._call(RT.resize(cid, height, width, exec_id))

    async def pids(self, cid: str) -> list[int]:
        res = await self._call(RT.pids(cid))
        return [int(p) if not isinstance(p, dict) else int(p.get("pid", 0)) for p in res.get("pids") or []]
