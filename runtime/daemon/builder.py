"""The classic builder (dockerd's builder/dockerfile, ``DOCKER_BUILDKIT=0``), in capsized.

A Dockerfile (parsed with dockerfile-parse: continuations, comments) is run one instruction at a
time on the image of the step before, each step committed as an image through capsize-runtimed
(:meth:`runtime.daemon.backend.Backend.commit`):

* ``FROM image|scratch [AS name]`` (an image of the store, an earlier stage, or nothing);
  ``ARG``s before the first FROM are seen by FROM lines only.
* ``RUN`` (shell or exec form): a real container (capsized's create/start/wait, so through
  runtimed, a shim and the low-level runtime), its output streamed, its snapshot committed as a
  layer, then removed. A non-zero exit ends the build: ``The command '...' returned a non-zero
  code: N`` with ``errorDetail.code`` N (the CLI exits with it).
* ``COPY``/``ADD [--chown=u:g] [--from=stage] src... dest``: the files are copied into the
  snapshot of a runtime container made for the step (mounted read-write for the time of the
  copy), which is committed; ADD unpacks local tar archives (URLs are refused: no network).
* ``ENV``, ``LABEL``, ``EXPOSE``, ``VOLUME``, ``CMD``, ``ENTRYPOINT``, ``STOPSIGNAL``, ``SHELL``,
  ``USER``, ``WORKDIR``, ``ARG``, ``MAINTAINER``, ``ONBUILD``: config only
  (:class:`runtime.daemon.instructions.ConfigApplier`), committed without a layer
  (``empty_layer``). Unlike dockerd's classic builder, which creates (and never starts) a
  container to commit such a step and so prints `` ---> Running in <id>`` for it, capsize
  commits the config alone: no ``Running in`` line for these steps.
* A base image's ``ONBUILD`` triggers run right after its ``FROM`` (`` # Executing N build
  triggers``), each as an instruction of this Dockerfile; they are not inherited.

The build cache: each step's image is found again by a key of (parent image id, the step's text
after expansion, the run config, and for COPY/ADD :func:`runtime.daemon.buildcontext.checksum` of
its sources) in ``<root>/daemon/buildcache/<key>``, unless ``nocache``; a hit whose image is gone
is a miss. Progress is Docker's JSON message stream: ``{"stream": "Step 1/5 : FROM busybox\\n"}``,
`` ---> Using cache``, `` ---> Running in <id>``, the RUN's output, ``Removing intermediate
container <id>``, `` ---> <id>``, ``{"aux": {"ID": "sha256:..."}}``, ``Successfully built <id>``,
``Successfully tagged <name>``; an error is ``{"errorDetail": {"code"?, "message"}, "error"}``.

Crash safety: every container a build makes is listed first in ``<root>/daemon/builds/<build
id>.json`` (fsync'ed); the build removes them and the file when it ends, and
:func:`cleanup_interrupted` (at capsized's start, or at the runtime's first reconnect when it
was down then) removes what a crashed build left. Images are
only ever recorded whole by runtimed, so an interrupted build lists no half-made image.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil

from runtime import atomicfile
from runtime.daemon import buildcontext
from runtime.daemon.backend import PARENT_LABEL
from runtime.daemon.instructions import CONFIG_INSTRUCTIONS, ConfigApplier, env_map, expand, json_args, split_line, words
from runtime.errors import CapsizeError, InvalidArgument, NotFound

INSTRUCTIONS = CONFIG_INSTRUCTIONS | {"FROM", "RUN", "COPY", "ADD", "ARG"}
_FLAGS = {"COPY": {"chown", "from"}, "ADD": {"chown"}, "FROM": {"platform"}, "RUN": set()}


class BuildError(CapsizeError):
    """A build step failed; *code* is a failed RUN's exit status."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def parse(text: str) -> list[tuple[str, str, str]]:
    """``[(INSTRUCTION, value, original line)]`` of a Dockerfile; InvalidArgument."""
    from dockerfile_parse import DockerfileParser
    p = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    out = []
    for s in p.structure:
        ins = s["instruction"].upper()
        if ins == "COMMENT":
            continue
        if ins not in INSTRUCTIONS:
            raise InvalidArgument(f"dockerfile parse error line {s['startline'] + 1}: unknown instruction: {ins}")
        original = " ".join(s["content"].replace("\\\n", " ").split("\n")[0].split()) if "\\\n" not in s["content"] \
            else ins + " " + s["value"]
        out.append((ins, s["value"], original))
    if not out or not any(i == "FROM" for i, _, _ in out):
        raise InvalidArgument("the Dockerfile (Dockerfile) cannot be empty" if not out else
                              "Please provide a source image with `from` prior to commit")
    if out[0][0] not in ("FROM", "ARG") or any(i != "ARG" for i, _, _ in out[:next(
            n for n, (i, _, _) in enumerate(out) if i == "FROM")]):
        raise InvalidArgument("Please provide a source image with `from` prior to commit")
    return out


def flags(instruction: str, value: str) -> tuple[dict, str]:
    """``--name=value`` flags at the start of *value* and the rest."""
    out = {}
    rest = value
    while rest.startswith("--"):
        head, _, tail = rest.partition(" ")
        name, eq, v = head[2:].partition("=")
        if name not in _FLAGS.get(instruction, set()):
            raise InvalidArgument(f"Unknown flag: {name}")
        out[name] = v
        rest = tail.lstrip()
    return out, rest


class Stage:
    def __init__(self, name: str | None, image: dict | None, config: dict):
        self.name = name
        self.image = image          # capsized's image dict (None: scratch, nothing committed yet)
        self.config = config        # the run config (the image config's "config")
        self.args: dict[str, str] = {}

    @property
    def image_id(self) -> str:
        return self.image["Id"] if self.image else ""


class Build:
    """One ``POST /build``: *daemon* (capsized), *context* (the extracted context dir), the
    Dockerfile *text*, options from the query, and *emit* (an async callable taking one message)."""

    def __init__(self, daemon, context: str, text: str, emit, build_args: dict | None = None,
                 nocache: bool = False, labels: dict | None = None, target: str | None = None,
                 network: str = "default", quiet: bool = False):
        self.d, self.context, self.text, self.emit = daemon, context, text, emit
        self.build_args = {k: v for k, v in (build_args or {}).items() if v is not None}
        self.nocache, self.labels, self.target, self.network, self.quiet = nocache, labels or {}, target, network, quiet
        self.id = os.urandom(16).hex()
        root = os.path.join(daemon.config.data_root, "daemon")
        self.cache_dir = os.path.join(root, "buildcache")
        self.journal = os.path.join(root, "builds", self.id + ".json")
        self.made: list[list[str]] = [[], []]   # capsized containers, runtime containers
        self.used_args: set[str] = set()

    # -- output ------------------------------------------------------------------------------
    async def say(self, text: str) -> None:
        if not self.quiet:
            await self.emit({"stream": text})

    # -- journal -----------------------------------------------------------------------------
    def _record(self) -> None:
        os.makedirs(os.path.dirname(self.journal), exist_ok=True)
        atomicfile.write(self.journal, json.dumps({"containers": self.made[0], "runtime": self.made[1]}),
                         durable=True)

    # -- cache -------------------------------------------------------------------------------
    def _key(self, stage: Stage, text: str, extra: str = "") -> str:
        data = json.dumps([stage.image_id, text, stage.config, extra], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    async def _cached(self, key: str) -> dict | None:
        if self.nocache:
            return None
        try:
            with open(os.path.join(self.cache_dir, key)) as f:
                iid = json.load(f)["Id"]
            return await self.d.backend.image_get(iid)
        except (OSError, ValueError, KeyError, NotFound):
            return None

    async def _use_cache(self, stage: Stage, key: str) -> bool:
        """The step's cached image, if any, becomes the stage's (`` ---> Using cache``)."""
        hit = await self._cached(key)
        if hit is None:
            return False
        await self.say(" ---> Using cache\n")
        stage.image = hit
        await self.say(f" ---> {hit['Id'][7:19]}\n")
        return True

    def _remember(self, key: str, image: dict) -> None:
        os.makedirs(self.cache_dir, exist_ok=True)
        atomicfile.write(os.path.join(self.cache_dir, key), json.dumps({"Id": image["Id"]}), durable=True)

    async def _commit(self, stage: Stage, source: str | None, created_by: str, key: str, say: bool = True) -> None:
        """Commit *stage*'s next image: the changes of container *source*'s snapshot as a layer (None:
        the config alone), remembered in the cache under *key*; `` ---> <id>`` unless not *say*."""
        parent = stage.image["Names"][0] if stage.image else None
        labels = {PARENT_LABEL: stage.image_id} if stage.image else {}
        stage.image = await self.d.backend.commit(parent, source, dict(stage.config), {"created_by": created_by},
                                                  None, labels=labels)
        self._remember(key, stage.image)
        if say:
            await self.say(f" ---> {stage.image_id[7:19]}\n")

    # -- run ---------------------------------------------------------------------------------
    async def run(self) -> dict:
        """Run the build; returns the final image (capsized's dict). BuildError / InvalidArgument."""
        steps = parse(self.text)
        total = len(steps)
        meta_args: dict[str, str] = {}
        stages: list[Stage] = []
        stage: Stage | None = None
        self._record()
        self.d.builds.add(self.id)
        try:
            for n, (ins, value, original) in enumerate(steps, 1):
                await self.say(f"Step {n}/{total} : {original}\n")
                if ins == "FROM":
                    if stage is not None and self.target and stage.name == self.target:
                        break
                    stage = await self._from(value, meta_args, stages)
                    stages.append(stage)
                    await self._on_build(stage, stages)
                elif stage is None:   # ARG before the first FROM
                    name, eq, default = value.partition("=")
                    meta_args[name] = self.build_args.get(name, default if eq else "")
                    if name in self.build_args:
                        self.used_args.add(name)
                else:
                    await self._dispatch(stage, ins, value, original, stages)
            if self.target and not any(s.name == self.target for s in stages):
                raise BuildError(f"failed to reach build target {self.target} in Dockerfile")
            unused = sorted(set(self.build_args) - self.used_args)
            if unused:
                await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
            if stage.image is None:
                raise BuildError("No image was generated. Is your Dockerfile empty?")
            if self.labels:
                stage.config["Labels"] = {**(stage.config.get("Labels") or {}), **self.labels}
                await self._commit(stage, None, "/bin/sh -c #(nop)  LABEL " + " ".join(
                    f"{k}={v}" for k, v in self.labels.items()), self._key(stage, "labels", json.dumps(self.labels)))
            return stage.image
        finally:
            try:
                await self._remove_made()
            finally:
                self.d.builds.discard(self.id)

    async def _remove_made(self) -> None:
        """Remove the build's containers; the journal goes only once they all went (else the
        next start's :func:`cleanup_interrupted` finishes the job)."""
        ok = True
        for cid in list(self.made[0]):
            c = self.d.containers.get(cid)
            if c is not None:
                try:
                    await self.d.remove(c, force=True, volumes=True)
                except CapsizeError as e:
                    ok = False
                    self.d.log.warning("cannot remove a build container", container=cid, error=e.message)
        for cid in list(self.made[1]):
            try:
                await self.d.backend.delete_container(cid)
            except CapsizeError as e:
                ok = False
                self.d.log.warning("cannot remove a build's runtime container", container=cid, error=e.message)
        if ok:
            try:
                os.unlink(self.journal)
            except FileNotFoundError:
                pass
        else:  # the build is over: the next reconnect of the runtime (or start) finishes the job
            atomicfile.write(self.journal, json.dumps({"containers": self.made[0], "runtime": self.made[1],
                                                       "ended": True}), durable=True)

    # -- instructions ------------------------------------------------------------------------
    async def _dispatch(self, stage: Stage, ins: str, value: str, original: str, stages: list[Stage]) -> None:
        """One instruction after FROM (a Dockerfile line or an ONBUILD trigger) on *stage*."""
        if ins == "RUN":
            await self._run(stage, value)
        elif ins in ("COPY", "ADD"):
            await self._copy(stage, ins, value, stages)
        else:
            await self._config(stage, ins, value, original)

    async def _on_build(self, stage: Stage, stages: list[Stage]) -> None:
        """The base image's ``ONBUILD`` triggers, run right after FROM in their order, as dockerd's
        processOnBuild: `` # Executing N build trigger(s)``, each dispatched as an instruction
        of this Dockerfile; the triggers leave the stage's config (they are not inherited)."""
        triggers = list(stage.config.get("OnBuild") or [])
        stage.config["OnBuild"] = None
        if not triggers:
            return
        await self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for raw in triggers:
            ins, value = split_line(raw)
            if ins not in INSTRUCTIONS or ins in ("ONBUILD", "FROM", "MAINTAINER"):
                raise BuildError(f"{ins} isn't allowed as an ONBUILD trigger")
            await self._dispatch(stage, ins, value, raw, stages)

    async def _from(self, value: str, meta_args: dict, stages: list[Stage]) -> Stage:
        opts, rest = flags("FROM", value)
        parts = rest.split()
        if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].upper() != "AS"):
            raise InvalidArgument("FROM requires either one or three arguments")
        ref = expand(parts[0], meta_args)
        name = parts[2].lower() if len(parts) == 3 else None
        if opts.get("platform"):
            from runtime.busybox import host_arch
            here = {"BUILDPLATFORM": f"linux/{host_arch()}", "TARGETPLATFORM": f"linux/{host_arch()}"}
            self._check_platform(ref, expand(opts["platform"], {**here, **meta_args}))
        for s in stages:
            if s.name and s.name == ref.lower():
                st = Stage(name, s.image, json.loads(json.dumps(s.config)))
                break
        else:
            if ref == "scratch":
                st = Stage(name, None, {})
            else:
                try:
                    img = await self.d.backend.image_get(ref)
                except NotFound:
                    raise BuildError(f"pull access denied for {ref.split(':')[0]}: capsize does not pull from "
                                     f"registries (No such image: {ref})") from None
                st = Stage(name, img, json.loads(json.dumps(img.get("Config") or {})))
        if st.image:
            await self.say(f" ---> {st.image_id[7:19]}\n")
        return st

    @staticmethod
    def _check_platform(ref: str, wanted: str) -> None:
        """``FROM --platform=OS[/ARCH[/VARIANT]]``: only this machine's platform can be built (no
        emulation, no multi-platform store); another is refused, as dockerd refuses a local image
        of another platform, rather than accepted and ignored. BuildError otherwise."""
        from runtime.busybox import host_arch
        here = f"linux/{host_arch()}"
        parts = wanted.strip().lower().split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise InvalidArgument(f"failed to parse platform {wanted}: unknown operating system or architecture")
        if parts[0] != "linux" or (len(parts) > 1 and parts[1] != host_arch()):
            raise BuildError(f"image with reference {ref} was found but does not match the specified platform: "
                             f"wanted {wanted}, actual: {here}")

    async def _config(self, stage: Stage, ins: str, value: str, original: str) -> None:
        if ins == "ARG":
            name, eq, default = value.partition("=")
            name = name.strip()
            if not name:
                raise InvalidArgument("ARG requires exactly one argument")
            stage.args[name] = self.build_args.get(name, default if eq else "")
            if name in self.build_args:
                self.used_args.add(name)
        else:
            ConfigApplier(stage.config, stage.args).apply(ins, value)
        text = f"/bin/sh -c #(nop)  {ins} {value}"
        key = self._key(stage, text, json.dumps(stage.args, sort_keys=True))
        if await self._use_cache(stage, key):
            return
        await self._commit(stage, None, text, key)

    def _run_env(self, stage: Stage) -> tuple[list[str], str]:
        args = {k: v for k, v in stage.args.items()}
        env_keys = {e.partition("=")[0] for e in stage.config.get("Env") or []}
        extra = [f"{k}={v}" for k, v in sorted(args.items()) if k not in env_keys]
        prefix = f"|{len(extra)} {' '.join(extra)} " if extra else ""
        return extra, prefix

    async def _run(self, stage: Stage, value: str) -> None:
        if stage.image is None:
            raise BuildError("RUN on scratch: the image has no shell (COPY one in first)")
        argv = json_args(value)
        if argv is None:
            argv = list(stage.config.get("Shell") or ["/bin/sh", "-c"]) + [value]
        extra, prefix = self._run_env(stage)
        text = (prefix + " ".join(argv)).strip()
        key = self._key(stage, text)
        if await self._use_cache(stage, key):
            return
        cfg = stage.config
        body = {"Image": stage.image_id, "Cmd": argv, "Entrypoint": [""],
                "Env": list(cfg.get("Env") or []) + extra, "WorkingDir": cfg.get("WorkingDir") or "",
                "User": cfg.get("User") or "", "Labels": {},
                "HostConfig": {"NetworkMode": self.network}}
        c = await self.d.create(body, None)
        self.made[0].append(c.ID)
        self._record()
        await self.say(f" ---> Running in {c.ID[:12]}\n")
        await self.d.start(c)
        code = await self._stream_until_exit(c)
        if code != 0:
            raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code)
        await self._commit(stage, c.ID, text, key, say=False)
        await self.d.remove(c, force=True, volumes=True)
        self.made[0].remove(c.ID)
        self._record()
        await self.say(f"Removing intermediate container {c.ID[:12]}\n")
        await self.say(f" ---> {stage.image_id[7:19]}\n")

    async def _stream_until_exit(self, c) -> int:
        """The RUN container's output streamed as it is logged (its json-file log followed, one
        open file) until it exits and the log is drained; returns its exit code."""
        from runtime.daemon import logs
        waiter = asyncio.ensure_future(self.d.wait(c, "not-running"))
        try:
            async for _stream, data, _ns, _text in logs.read_entries(c.LogPath, follow=True,
                                                                     is_running=lambda: not waiter.done()):
                await self.say(data.decode(errors="replace"))
            return await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _copy(self, stage: Stage, ins: str, value: str, stages: list[Stage]) -> None:
        from runtime.host import HOST, MNT_DETACH
        opts, rest = flags(ins, value)
        args = json_args(rest)
        args = args if args is not None else words(expand(rest, {**stage.args, **env_map(stage.config.get("Env"))}))
        if len(args) < 2:
            raise InvalidArgument(f"{ins} requires at least two arguments, but only one was provided. "
                                  f"Destination could not be determined.")
        srcs, dest = args[:-1], args[-1]
        if any(s.startswith(("http://", "https://")) for s in srcs):
            raise BuildError(f"{ins} failed: capsize builds offline: remote URLs are not supported")
        context = self.context
        if opts.get("from"):
            src_stage = next((s for s in stages if s.name == opts["from"].lower()), None)
            if src_stage is None:
                raise BuildError(f"invalid from flag value {opts['from']}: capsize copies from earlier stages only")
            context = await self._stage_root(src_stage)
        try:
            rels = await asyncio.to_thread(buildcontext.sources, context, srcs, ins)   # a walk: off the loop
            if len(rels) > 1 and not dest.endswith("/"):
                raise BuildError("When using COPY with more than one source file, the destination must be a "
                                 "directory and end with a /")
            if not dest.startswith("/"):
                dest = (stage.config.get("WorkingDir") or "/").rstrip("/") + "/" + dest
            digest = await asyncio.to_thread(buildcontext.checksum, context, rels)
            text = f"/bin/sh -c #(nop) {ins} {'--chown=' + opts['chown'] + ' ' if opts.get('chown') else ''}" \
                   f"{'dir' if len(rels) > 1 else 'file'}:{digest[7:]} in {dest} "
            key = self._key(stage, text, digest)
            if await self._use_cache(stage, key):
                return
            cid = "build-" + os.urandom(12).hex()
            self.made[1].append(cid)
            self._record()
            await self._runtime_container(cid, stage)
            mnt = os.path.join(self.d.config.exec_root, "build", cid)
            os.makedirs(mnt, 0o700)
            try:
                mounts = await self.d.backend.snapshot_mounts(cid)
                HOST.mount("overlay", mnt, "overlay", 0, ",".join(mounts[0]["options"]))
                try:
                    owner = buildcontext.parse_chown(opts["chown"], mnt) if opts.get("chown") else None
                    await asyncio.to_thread(self._copy_files, context, rels, mnt, dest, ins, owner)
                finally:
                    HOST.umount(mnt, MNT_DETACH)
            finally:
                os.rmdir(mnt)
            await self._commit(stage, cid, text, key)
        finally:
            if context != self.context:
                shutil.rmtree(context, ignore_errors=True)
        await self.d.backend.delete_container(cid)
        self.made[1].remove(cid)
        self._record()

    @staticmethod
    def _copy_files(context, rels, mnt, dest, ins, owner) -> None:
        for rel in rels:
            src = os.path.join(context, rel) if rel else context
            if ins == "ADD" and buildcontext.is_archive(src):
                buildcontext.unpack_archive(src, mnt, dest, owner)
            else:
                buildcontext.copy_into(src, mnt, dest, *(owner or (0, 0)))

    async def _runtime_container(self, cid: str, stage: Stage) -> None:
        """A runtime container (never started) whose snapshot takes a COPY's files."""
        from runtime.daemon.backend import RT
        spec = {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}
        image = stage.image["Names"][0] if stage.image else None
        await self.d.backend._call(RT.create_container(cid, image, spec=spec, labels={"capsize.build": self.id}),
                                   timeout=300)

    async def _stage_root(self, src: Stage) -> str:
        """An earlier stage's files, exported into a temporary directory (COPY --from)."""
        cid = "build-" + os.urandom(12).hex()
        self.made[1].append(cid)
        self._record()
        await self._runtime_container(cid, src)
        out = os.path.join(self.d.config.data_root, "daemon", "tmp", "stage-" + cid)
        os.makedirs(out, 0o700)
        tar_path = out + ".tar"
        try:
            await self.d.backend.snapshot_export(cid, tar_path)
            await asyncio.to_thread(buildcontext.extract, tar_path, out)
        finally:
            if os.path.exists(tar_path):
                os.unlink(tar_path)
            await self.d.backend.delete_container(cid)
            self.made[1].remove(cid)
            self._record()
        return out


async def cleanup_interrupted(daemon) -> int:
    """Remove the containers of builds a crash interrupted (their journals), their copy mounts
    and work dirs; returns how many containers went. At boot, or at the first reconnect of a
    runtime that was down at boot: builds of this process (``daemon.builds``) are left alone, and
    while one runs the mounts and work dirs are too (their names do not say whose they are)."""
    from runtime.host import HOST, MNT_DETACH
    from runtime.mountinfo import is_mount_point
    jdir = os.path.join(daemon.config.data_root, "daemon", "builds")
    if daemon.builds:
        return await _clean_journals(daemon, jdir, ended_only=False)
    mdir = os.path.join(daemon.config.exec_root, "build")
    for name in os.listdir(mdir) if os.path.isdir(mdir) else []:
        path = os.path.join(mdir, name)
        if is_mount_point(path):
            HOST.umount(path, MNT_DETACH)
        os.rmdir(path)   # never recursive: it could reach through a mount
    tmp = os.path.join(daemon.config.data_root, "daemon", "tmp")
    for name in os.listdir(tmp) if os.path.isdir(tmp) else []:
        if name.startswith(("build-", "stage-")):
            path = os.path.join(tmp, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
    return await _clean_journals(daemon, jdir, ended_only=False)


async def cleanup_ended(daemon) -> int:
    """After the runtime reconnects: remove the containers of builds that ended while it was down
    (their removal failed; their journals say ``ended``); builds still running are left alone."""
    return await _clean_journals(daemon, os.path.join(daemon.config.data_root, "daemon", "builds"), ended_only=True)


async def _clean_journals(daemon, jdir: str, ended_only: bool) -> int:
    removed = 0
    try:
        names = os.listdir(jdir)
    except FileNotFoundError:
        return 0
    for name in names:
        if name[:-len(".json")] in daemon.builds:
            continue   # running now, in this process
        path = os.path.join(jdir, name)
        try:
            with open(path) as f:
                j = json.load(f)
        except (OSError, ValueError):
            j = {}
        if ended_only and not j.get("ended"):
            continue
        failed = False
        for cid in j.get("containers") or []:
            c = daemon.containers.get(cid)
            if c is not None:
                try:
                    await daemon.remove(c, force=True, volumes=True)
                    removed += 1
                except CapsizeError as e:
                    failed = True
                    daemon.log.warning("cannot remove an interrupted build's container", container=cid,
                                       error=e.message)
        for cid in j.get("runtime") or []:
            try:
                await daemon.backend.delete_container(cid)
                removed += 1
            except NotFound:
                pass
            except CapsizeError:
                failed = True
        if ended_only and failed:
            continue   # the runtime went again: the next reconnect tries again
        os.unlink(path)
        daemon.log.info("removed what an interrupted build left", build=name[:-5], containers=removed)
    return removed

