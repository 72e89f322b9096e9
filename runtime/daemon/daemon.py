"""The container manager: capsized's state and every container operation (dockerd's daemon package).

One :class:`Daemon` per process, used on the event loop only. It owns the containers
(:class:`runtime.daemon.model.Container`, persisted by :class:`runtime.daemon.store.Store`),
the names (:class:`runtime.daemon.names.NameIndex`), the event bus and the backend (every call
to capsize-runtimed). Runtime events reach it through :meth:`on_task_exit` /
:meth:`on_task_oom`; :meth:`on_runtime_up` re-syncs after the runtime (re)connects.

Errors raised to the routes are :mod:`runtime.errors` classes with dockerd's texts: NotFound
(404 ``No such container: X``, ``No such image: X``), InvalidArgument (400), AlreadyExists (409
name conflicts), FailedPrecondition (409 wrong state), Unavailable (503, the runtime is down),
DeadlineExceeded (504), :class:`runtime.daemon.stop.NoExitEvent` (500).
"""

from __future__ import annotations

import asyncio
import os
import time

from runtime import atomicfile
from runtime.api import exits
from runtime.daemon import copyup, hostconfig, reconcile, restart, sandbox, settings, stdin as stdinmod, stop as stopmod
from runtime.daemon import bridge as bridgemod, endpoints, hostsfile, ports as portsmod, volumes as volmod
from runtime.daemon.backend import Backend
from runtime.daemon.environ import merge_env
from runtime.daemon.events import EventBus
from runtime.daemon.model import Container
from runtime.daemon.networks import Networks
from runtime.daemon.names import NameIndex, new_id, random_name, validate_name
from runtime.daemon.oci import build_spec
from runtime.daemon.store import Store
from runtime.errors import (CapsizeError, FailedPrecondition, InvalidArgument, NotFound, Unavailable,
                            Unimplemented)

#: Seconds ``docker rm -f`` waits for a killed container's exit before removing it anyway.
FORCE_REMOVE_WAIT = 10.0


class Daemon:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        os.makedirs(os.path.join(config.data_root, "daemon"), mode=0o710, exist_ok=True)
        os.makedirs(config.exec_root, exist_ok=True)
        self.store = Store(config.data_root, durable=getattr(config, "fsync_state", False))
        self.volumes = volmod.VolumeStore(config.data_root)
        self.daemon_id = self._daemon_id()
        self.containers: dict[str, Container] = {}
        self.names = NameIndex()
        self.events = EventBus()
        self.backend = Backend(config, log)
        from runtime.daemon.execs import ExecStore
        self.execs = ExecStore(self)   # docker exec instances (runtime.daemon.execs)
        self.shutting_down = False
        #: the networks (runtime.daemon.networks): bridges only when capsized runs in a namespace of its own
        self.networks = Networks(config.data_root, self.daemon_id, durable=getattr(config, "fsync_state", False))
        self.networks.port_rules = lambda: portsmod.dnat_rules(self)   # published ports' DNAT
        self.port_allocator = portsmod.Allocator()   # host ports given out (runtime.daemon.ports)
        #: whether the start-up reconcile (reconcile.at_start) ran: not while the runtime is down
        self.reconciled = False
        #: ids of the builds running in this process (:class:`runtime.daemon.builder.Build`): what
        #: the clean-up of interrupted builds must leave alone
        self.builds: set[str] = set()
        self.boot_gave_up = False
        self._bg: set[asyncio.Task] = set()
        self._image_cache: dict[str, dict] = {}

    def _daemon_id(self) -> str:
        path = os.path.join(self.config.data_root, "daemon", "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            pass
        eid = new_id()[:36]
        atomicfile.write(path, eid, durable=False)
        return eid

    # -- lifecycle of the daemon -------------------------------------------------------------
    async def boot(self) -> None:
        """Load the records, connect to the runtime (bounded wait), reconcile, restart policies."""
        self.volumes.load(lambda m: self.log.warning(m))
        for cid, record in self.store.load_all(lambda m: self.log.warning(m)).items():
            try:
                c = Container.from_record(record)
            except (KeyError, TypeError) as e:
                self.log.warning(f"skipping container {cid}: bad record: {e}")
                continue
            self.containers[cid] = c
            self.names.reserve(c.Name, cid)
            for p in c.MountPoints:
                if p.get("Type") == "volume" and p.get("Name"):
                    self.volumes.add_ref(p["Name"], cid)
        self.log.info("Loading containers: done.", count=len(self.containers))
        self.network_scope, foreign = await asyncio.to_thread(sandbox.scope)   # a /proc read: not on the loop
        if self.network_scope == "host":
            self.log.warning("capsized runs in the host's network namespace: containers get network sandboxes "
                             "with lo only; no bridge, address, route or netfilter rule is made here",
                             devices=",".join(foreign))
        else:
            sandbox.bind_engine(self.config.exec_root)   # what NetworkMode host joins
        await asyncio.to_thread(self.networks.boot, self.network_scope == "private", self.log)
        if self.network_scope == "private":
            self.log.info("capsized runs in a network namespace of its own", scope=self.network_scope,
                          bridge=self.networks.ipam.pools[bridgemod.NETWORK]["subnet"])
        await self.backend.start(self)
        if await self.backend.wait_healthy(self.config.runtime_wait):
            self.reconciled = True
            await reconcile.at_start(self)
            from runtime.daemon.builder import cleanup_interrupted
            await cleanup_interrupted(self)
        else:
            # the backend's watcher calls on_runtime_up() when it first connects
            self.boot_gave_up = True
            self.log.warning("capsize-runtimed is not reachable: serving anyway; containers are reconciled "
                             "when it comes back", address=self.config.runtime_address)

    async def on_runtime_up(self) -> None:
        """The runtime (re)connected after the boot: the start-up reconcile if it has not run yet
        (capsized started without it: stop or adopt what runs, apply exits, ``--rm``, restart
        policies, exactly as at start), else the re-sync of exits missed meanwhile."""
        if not self.reconciled:
            self.reconciled = True
            self.log.info("capsize-runtimed is reachable: reconciling containers as at start-up")
            await reconcile.at_start(self)
            from runtime.daemon.builder import cleanup_interrupted
            await cleanup_interrupted(self)   # builds a crash interrupted before this boot
        else:
            await reconcile.resync(self)
            from runtime.daemon.builder import cleanup_ended
            await cleanup_ended(self)

    async def shutdown(self) -> None:
        """SIGTERM: without live-restore, stop running containers (bounded by --shutdown-timeout)."""
        self.shutting_down = True
        for c in self.containers.values():
            self.cancel_restart(c)
        if self.config.live_restore:
            return
        running = [c for c in self.containers.values() if c.State.running]
        if not running:
            return

        async def one(c):
            try:
                async with c.lock:
                    hms = c.HasBeenManuallyStopped
                    await stopmod.stop(self, c, c.ID, None)
                    c.HasBeenManuallyStopped = hms   # a daemon shutdown is not a user's stop
                    await self.save(c)
            except CapsizeError as e:
                self.log.error("failed to shut down container", container=c.ID, error=e.message)

        try:
            await asyncio.wait_for(asyncio.gather(*(one(c) for c in running)), self.config.shutdown_timeout)
        except asyncio.TimeoutError:
            self.log.error("Force shutdown daemon")

    async def close(self) -> None:
        for t in list(self._bg):
            t.cancel()
        await self.backend.close()

    def spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)
        t.add_done_callback(self._log_failure)
        return t

    def _log_failure(self, t: asyncio.Task) -> None:
        if not t.cancelled() and t.exception() is not None:
            e = t.exception()
            self.log.error("background task failed", error=getattr(e, "message", repr(e)))

    # -- lookups -----------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """The container *ref* names (id, name, id prefix); NotFound / InvalidArgument."""
        return self.containers[self.names.resolve(ref)]

    async def save(self, c: Container) -> None:
        if not c.removed:
            self.store.save(c.ID, c.to_record())
        c.notify()

    async def image_config_of(self, c: Container) -> dict:
        cfg = self._image_cache.get(c.Image)
        if cfg is None:
            try:
                cfg = (await self.backend.image_get(c.Image)).get("Config") or {}
            except CapsizeError:
                cfg = {}
            self._image_cache[c.Image] = cfg
        return cfg

    def container_spec(self, c: Container) -> dict:
        """The OCI spec the runtime keeps for *c* (:func:`runtime.daemon.oci.build_spec`), with the
        path of the network namespace its tasks join (:func:`runtime.daemon.sandbox.place`)."""
        spec = build_spec(c, self.config.cgroup_parent)
        sandbox.place(self, c, spec)
        hostsfile.mounts(c, spec)   # /etc/hosts, /etc/resolv.conf, /etc/hostname
        return spec

    # -- create ------------------------------------------------------------------------------
    async def create(self, body: dict, name: str | None) -> Container:
        """``POST /containers/create``: validate, resolve the image, record; event ``create``."""
        cfg = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host = body.get("HostConfig") or {}
        if not isinstance(host, dict):
            raise InvalidArgument("HostConfig must be an object")
        image_ref = cfg.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("Config cannot be empty in order to create a container")
        for key in ("Cmd", "Entrypoint", "Env"):
            v = cfg.get(key)
            if isinstance(v, str) and key != "Env":
                cfg[key] = [v]
            elif v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise InvalidArgument(f"{key} must be a list of strings")
        hostconfig.validate(cfg, host)   # mounts; what capsize would otherwise ignore is refused
        hostsfile.validate(host)   # --add-host, --dns...
        portsmod.validate(cfg, host, self.networks.private)   # -p, -P
        if any(e.endswith(":" + hostsfile.HOST_GATEWAY) for e in host.get("ExtraHosts") or []) \
                and not self.networks.private:
            raise InvalidArgument("unable to derive the IP value for host-gateway: capsized runs in the host's "
                                  "network namespace, where it has no bridge")
        mode = host.get("NetworkMode") or ""
        if mode.startswith("container:"):
            try:
                self.names.resolve(mode.split(":", 1)[1])
            except NotFound as e:   # dockerd's text; 400, not its 404 (the CLI takes a 404 for a missing image)
                raise InvalidArgument(e.message) from None
        restart.validate(host)
        settings.verify(cfg, host)   # values dockerd refuses at create (WorkingDir, Memory, caps...)
        if name:
            name = validate_name(name)
        image = await self.backend.image_get(image_ref)
        icfg = image.get("Config") or {}
        entrypoint = cfg.get("Entrypoint")
        cmd = cfg.get("Cmd")
        if entrypoint is None:
            entrypoint = icfg.get("Entrypoint") or []
            if not cmd:
                cmd = icfg.get("Cmd") or []
        elif entrypoint == [""]:
            entrypoint = []
        argv = list(entrypoint or []) + list(cmd or [])
        if not argv:
            raise InvalidArgument("No command specified")
        env = merge_env(icfg.get("Env") or [], cfg.get("Env") or [])
        labels = dict(icfg.get("Labels") or {})
        labels.update(cfg.get("Labels") or {})
        merged = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                  "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": env,
                  "Cmd": cmd or None, "Image": image_ref, "Volumes": None, "WorkingDir": "",
                  "Entrypoint": entrypoint or None, "OnBuild": None, "Labels": labels}
        for k, v in cfg.items():
            if k not in ("Env", "Cmd", "Entrypoint", "Labels", "Image") and v is not None:
                merged[k] = v
        vols = dict(icfg.get("Volumes") or {})   # the image's VOLUMEs, and -v /dst
        vols.update(merged.get("Volumes") or {})
        merged["Volumes"] = vols or None
        if not merged.get("WorkingDir"):
            merged["WorkingDir"] = icfg.get("WorkingDir") or ""
        if not merged.get("User"):
            merged["User"] = icfg.get("User") or ""
        if "StopSignal" not in cfg and icfg.get("StopSignal"):
            merged["StopSignal"] = icfg["StopSignal"]
        if merged.get("StopSignal"):
            stopmod.parse_signal(merged["StopSignal"])
        host = dict(host)
        host.setdefault("NetworkMode", "default")
        host.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        if not host["RestartPolicy"].get("Name"):
            host["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
        host.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        host.setdefault("AutoRemove", False)
        cid = new_id()
        networks = endpoints.configure(self.networks, cid, host, body.get("NetworkingConfig"))
        if not merged.get("Hostname"):
            merged["Hostname"] = cid[:12]
        if not name:
            name = "/" + random_name(self.names.names)
        self.names.reserve(name, cid)    # AlreadyExists with Docker's conflict text
        c = Container(ID=cid, Name=name, Created=time.time_ns(), Config=merged, HostConfig=host,
                      Image=image["Id"], Path=argv[0], Args=argv[1:], Networks=networks)
        c.LogPath = self.store.log_path(cid)
        points = hostconfig.mount_points(host, merged)
        try:
            made = volmod.attach(self.volumes, points, cid)   # volumes named, made, referenced
        except BaseException:
            self.names.remove(cid)   # attach undid its own volumes
            raise
        c.MountPoints = points
        try:
            try:
                spec = self.container_spec(c)   # InvalidArgument for what the runtime could not run
                await self.backend.create_container(cid, image, spec)
            except BaseException:
                self.names.remove(cid)
                raise
            try:
                await copyup.populate(self.backend, cid, made, self.config.exec_root)
                self.store.create(cid, c.to_record())
            except BaseException:
                self.names.remove(cid)
                try:
                    await self.backend.delete_container(cid)
                except CapsizeError:
                    pass
                raise
        except BaseException:
            volmod.detach(self.volumes, points, cid)
            for p in made:
                self.volumes.remove(p["Name"])
            raise
        for p in made:
            self.events.publish("volume", "create", p["Name"], {"driver": p["Driver"]})
        self.containers[cid] = c
        self.events.publish("container", "create", cid, c.event_attributes(), image=c.image_ref)
        return c

    # -- start -------------------------------------------------------------------------------
    async def start(self, c: Container) -> bool:
        """``POST /containers/{id}/start``; False when already running (304)."""
        async with c.lock:
            return await self._start_locked(c)

    async def _start_locked(self, c: Container, from_policy: bool = False) -> bool:
        if c.removed:
            raise NotFound(f"No such container: {c.ID}")
        if c.State.Status == "paused":
            raise FailedPrecondition("cannot start a paused container, try unpause instead")
        if c.State.Status == "running":
            return False
        if c.State.Status == "removing":
            raise FailedPrecondition(f"container is marked for removal and cannot be started")
        if not from_policy:
            self.cancel_restart(c)
            c.HasBeenManuallyStopped = False
        spec = self.container_spec(c)
        hostconfig.prepare_sources(c.HostConfig)   # -v SRC:DST with a missing SRC: made, as dockerd
        try:
            async with c.task_lock:
                await self._delete_task(c)
                fifo = None
                if c.Config.get("OpenStdin"):   # docker run -i: the init reads capsized's FIFO
                    stdinmod.open_fifo(c, self.config.exec_root)
                    fifo = stdinmod.fifo_path(self.config.exec_root, c.ID)
                hostsfile.write_all(self, c)   # its names files, before its endpoints rewrite /etc/hosts
                own_sandbox = sandbox.apply(self, c, spec)   # the netns the task joins, by path
                try:
                    if sandbox.joins(c):   # container:<ref>: that container's netns, known only now
                        await self.backend.update_container_spec(c.ID, spec)
                    pid = await self.backend.run_task(c.ID, c.Image, spec, c.LogPath, stdin=fifo)
                except BaseException:
                    if own_sandbox:
                        self._release_sandbox(c.ID)
                    raise
        except CapsizeError as e:
            c.State.Error = e.message
            if not c.HasBeenStartedBefore:
                c.State.move("created")
            # dockerd (daemon/start.go): a failed start of an AutoRemove container removes it
            # (after this start's lock is released), so `docker run --rm`'s wait?condition=removed ends
            if c.HostConfig.get("AutoRemove") and not self.shutting_down:
                self.spawn(self._auto_remove(c))
            if "executable file not found" in e.message or "no such file or directory" in e.message:
                c.State.ExitCode = 127
                await self.save(c)
                raise InvalidArgument(e.message) from None
            c.State.ExitCode = 128 if not isinstance(e, Unavailable) else c.State.ExitCode
            await self.save(c)
            raise
        c.TaskExists = True
        c.SandboxKey = own_sandbox or ""
        if getattr(c, "stdin_eof", False):   # the attach's input ended before the start (StdinOnce)
            stdinmod.close(c)
        c.State = c.State.started(pid, time.time_ns())
        for p in c.MountPoints:
            if p.get("Type") == "volume":
                self.events.publish("volume", "mount", p["Name"], {
                    "container": c.ID, "destination": p["Destination"], "driver": p["Driver"],
                    "propagation": p["Propagation"], "read/write": str(p["RW"]).lower()})
        c.HasBeenStartedBefore = True
        c.started_mono = time.monotonic()
        await self.save(c)
        self.events.publish("container", "start", c.ID, c.event_attributes(), image=c.image_ref)
        # the task may have exited before we recorded it as running: its exit event is then queued
        # for us (delivered now) or already seen by the backend
        pending = self.backend.take_early_exit(c.ID)
        if pending is not None:
            await self.on_task_exit(c.ID, *pending)
        return True

    async def _delete_task(self, c: Container) -> None:
        """Delete the (stopped) task, then its network sandbox; callers hold ``c.task_lock``."""
        if c.TaskExists:
            try:
                await self.backend.delete_task(c.ID)
            except NotFound:
                pass
            c.TaskExists = False
        self._release_sandbox(c.ID)

    def _release_sandbox(self, cid: str) -> bool:
        """Container *cid*'s endpoints detached (their addresses freed) and its network sandbox
        removed (``SandboxKey`` emptied); False when the sandbox could not go (logged)."""
        c = self.containers.get(cid)
        if c is not None:
            portsmod.unpublish(self, c)   # its proxies and DNAT rules first
            endpoints.detach_all(self, c)
            c.SandboxKey = ""
        try:
            sandbox.release(self.config.exec_root, cid)
        except OSError as e:
            self.log.error("cannot remove the network sandbox", container=cid, error=str(e))
            return False
        return True

    def attach_endpoints(self, c: Container, sandbox_key: str) -> None:
        """*c*'s endpoints on each of its networks, in its sandbox at *sandbox_key*
        (:func:`runtime.daemon.endpoints.attach_all`; what :func:`runtime.daemon.sandbox.apply` calls),
        then its published ports (:func:`runtime.daemon.ports.publish`: a failure detaches them again)."""
        endpoints.attach_all(self, c, sandbox_key)
        try:
            portsmod.publish(self, c)
        except BaseException:
            endpoints.detach_all(self, c)
            raise

    def names_changed(self, c: Container) -> None:
        """Container *c* joined or left networks (or stopped): the /etc/hosts of its peers
        (and its own) are written again (:mod:`runtime.daemon.hostsfile`)."""
        hostsfile.refresh(self, c)

    # -- exits -------------------------------------------------------------------------------
    async def on_task_exit(self, cid: str, pid: int, exit_status: int, exited_at_ns: int,
                           source: str = "real", reason: str = "", oom: bool = False) -> None:
        """The task of *cid* exited (runtime event, or found at reconcile): state, ``die``, policies.
        *source* is the status's provenance (:data:`runtime.api.exits.PROVENANCES`), *reason* why
        a made-up one is made up: both go to ``State.Error`` and the ``die`` event's
        ``exitCodeSource`` (:mod:`runtime.api.exits`)."""
        c = self.containers.get(cid)
        if c is None or not c.State.running:
            # the exit of a task whose start is not recorded yet (it exited at once): kept for it
            self.backend.remember_early_exit(cid, (pid, exit_status, exited_at_ns, source, reason))
            return
        if pid and c.State.Pid and pid != c.State.Pid:
            return   # an exit of an earlier run
        # the init is dead (and with it its pid namespace): the sandbox goes before anyone sees the
        # container exited, so that a client's next call (network rm, start) finds it released
        self._release_sandbox(c.ID)
        c.State.move("exited")
        c.State.Pid = 0
        c.exits += 1
        stdinmod.close(c)
        c.State.ExitCode = exit_status
        c.State.FinishedAt = exited_at_ns or time.time_ns()
        c.State.ExitCodeSource = source
        c.State.OOMKilled = oom or c.State.OOMKilled
        if source != exits.REAL:
            c.State.Error = exits.state_error(source, reason)
        ran = time.monotonic() - getattr(c, "started_mono", time.monotonic())
        await self.save(c)
        self.events.publish("container", "die", cid, c.event_attributes(exitCode=exit_status,
                                                                         **exits.event_attrs(source)),
                            image=c.image_ref)
        for p in c.MountPoints:
            if p.get("Type") == "volume":
                self.events.publish("volume", "unmount", p["Name"], {"container": cid, "driver": p["Driver"]})
        try:
            async with c.task_lock:
                await self._delete_task(c)
        except CapsizeError as e:
            self.log.warning("failed to delete task after exit", container=cid, error=e.message)
        self.spawn(self.execs.container_exited(c))
        await self.save(c)
        if self.shutting_down:
            return
        if c.HostConfig.get("AutoRemove"):
            self.spawn(self._auto_remove(c))
        elif restart.should_restart(c.HostConfig, exit_status, c.RestartCount, c.HasBeenManuallyStopped):
            self._schedule_restart(c, ran)

    async def on_task_oom(self, cid: str) -> None:
        c = self.containers.get(cid)
        if c is not None:
            c.State.OOMKilled = True
            self.events.publish("container", "oom", cid, c.event_attributes(), image=c.image_ref)

    async def _auto_remove(self, c: Container) -> None:
        try:
            await self.remove(c, force=False, volumes=True)
        except CapsizeError as e:
            self.log.error("failed to auto-remove container", container=c.ID, error=e.message)

    def _schedule_restart(self, c: Container, ran: float) -> None:
        c.restart_delay = restart.backoff(getattr(c, "restart_delay", 0.0), ran)
        c.State.move("restarting")
        c.notify()

        async def later():
            await asyncio.sleep(c.restart_delay)
            c.restart_task = None
            async with c.lock:
                if c.removed or c.State.Status != "restarting" or self.shutting_down:
                    return
                c.RestartCount += 1
                try:
                    await self._start_locked(c, from_policy=True)
                except CapsizeError as e:
                    self.log.error("restart policy: start failed", container=c.ID, error=e.message)
                    c.State.move("exited")
                    await self.save(c)

        c.restart_task = self.spawn(later())

    def cancel_restart(self, c: Container) -> None:
        t = getattr(c, "restart_task", None)
        if t is not None:
            t.cancel()
            c.restart_task = None

    async def set_exited_from_restarting(self, c: Container) -> None:
        c.State.move("exited")
        await self.save(c)

    # -- operations --------------------------------------------------------------------------
    async def stop(self, c: Container, name: str, timeout: int | None) -> bool:
        async with c.lock:
            return await stopmod.stop(self, c, name, timeout)

    async def kill(self, c: Container, name: str, sig: int) -> None:
        async with c.lock:
            if c.State.Status == "restarting":
                self.cancel_restart(c)
                c.HasBeenManuallyStopped = True
                await self.set_exited_from_restarting(c)
                return
            await stopmod.kill(self, c, name, sig)
            await self.save(c)

    async def restart(self, c: Container, name: str, timeout: int | None) -> None:
        async with c.lock:
            if c.State.running or c.State.Status == "restarting":
                await stopmod.stop(self, c, name, timeout)
            await self._start_locked(c)
            self.events.publish("container", "restart", c.ID, c.event_attributes(), image=c.image_ref)

    async def pause(self, c: Container) -> None:
        async with c.lock:
            if c.State.Status == "paused":
                raise FailedPrecondition(f"Container {c.ID} is already paused")
            if c.State.Status != "running":
                raise FailedPrecondition(f"Container {c.ID} is not running")
            await self.backend.pause(c.ID)
            c.State.move("paused")
            await self.save(c)
            self.events.publish("container", "pause", c.ID, c.event_attributes(), image=c.image_ref)

    async def unpause(self, c: Container) -> None:
        async with c.lock:
            if c.State.Status != "paused":
                raise FailedPrecondition(f"Container {c.ID} is not paused")
            await self.backend.resume(c.ID)
            c.State.move("running")
            await self.save(c)
            self.events.publish("container", "unpause", c.ID, c.event_attributes(), image=c.image_ref)

    async def rename(self, c: Container, new_name: str) -> None:
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        new = validate_name(new_name)
        if new == c.Name:
            raise InvalidArgument(f"Renaming a container with the same name as its current name")
        old = c.Name
        self.names.reserve(new, c.ID)
        self.names.release(old)
        c.Name = new
        await self.save(c)
        self.events.publish("container", "rename", c.ID, c.event_attributes(oldName=old), image=c.image_ref)

    async def remove(self, c: Container, force: bool, volumes: bool) -> None:
        """``DELETE /containers/{id}``: 409 for a running container without *force*."""
        async with c.lock:
            if c.removed:
                return
            if c.State.Status == "restarting":
                self.cancel_restart(c)
                c.State.move("exited")
            if c.State.running:
                if not force:
                    if c.State.Status == "paused":
                        raise FailedPrecondition(f"You cannot remove a paused container {c.ID}. Unpause and then "
                                                 f"stop the container before attempting removal or force remove")
                    raise FailedPrecondition(f"You cannot remove a running container {c.ID}. Stop the container "
                                             f"before attempting removal or force remove")
                c.HasBeenManuallyStopped = True
                try:
                    await stopmod.kill_and_wait(self, c, c.ID, "Could not kill running container")
                except stopmod.NoExitEvent as e:
                    raise CapsizeError(f"Could not kill running container {c.ID}, cannot remove - "
                                       f"{e.message}") from None
            self.cancel_restart(c)
            async with c.task_lock:
                await self._delete_task(c)
            await self.backend.delete_container(c.ID)
            c.removed = True
            stdinmod.remove(c, self.config.exec_root)
            self.execs.forget_container(c.ID)
            c.State.move("removing")
            self.store.delete(c.ID)
            self.names.remove(c.ID)
            self.containers.pop(c.ID, None)
            c.notify()
            self.events.publish("container", "destroy", c.ID, c.event_attributes(), image=c.image_ref)
            # docker rm -v: its anonymous volumes go too (dockerd's removeMountPoints)
            for name in volmod.detach(self.volumes, c.MountPoints, c.ID, remove_anonymous=volumes):
                self.events.publish("volume", "destroy", name, {"driver": volmod.DRIVER})

    async def wait(self, c: Container, condition: str) -> int:
        """``POST /containers/{id}/wait``: the exit code when *condition* is met."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if condition in ("", "not-running") and not c.State.running and c.State.Status != "restarting":
            return c.State.ExitCode
        seen = c.exits
        while not c.removed:
            if condition != "removed" and c.exits > seen:
                return c.State.ExitCode
            await c.changed.wait()
        return c.State.ExitCode

    async def top(self, c: Container, ps_args: str) -> dict:
        if not c.State.running:
            raise FailedPrecondition(f"Container {c.ID} is not running")
        pids = set(await self.backend.pids(c.ID))
        args = (ps_args or "-ef").split()
        proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise CapsizeError("ps did not answer within 10s") from None
        if proc.returncode != 0:
            raise InvalidArgument(f"Error running ps: {err.decode(errors='replace').strip()}")
        lines = out.decode(errors="replace").splitlines()
        if not lines:
            return {"Titles": [], "Processes": []}
        titles = lines[0].split()
        try:
            pid_col = titles.index("PID")
        except ValueError:
            raise InvalidArgument(f"Couldn't find PID field in ps output") from None
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            try:
                if int(fields[pid_col]) in pids:
                    procs.append(fields)
            except (ValueError, IndexError):
                continue
        return {"Titles": titles, "Processes": procs}
