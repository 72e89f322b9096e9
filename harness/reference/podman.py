"""A private Podman: Debian's podman 4.3 API service with conmon and runc, removed without a trace.

:class:`PodmanStack` runs ``podman system service --time=0 unix://<workdir>/podman.sock`` with
every path it can move under *workdir*::

    <workdir>/podman.sock        the Docker-compatible (and libpod) API (.host)
    <workdir>/conf/              containers.conf, storage.conf, registries.conf (CONTAINERS_* env)
    <workdir>/root/, runroot/    storage's graphroot (--root) and runroot (--runroot)
    <workdir>/tmp/               libpod's --tmpdir: file locks (lock_type=file), conmon exit
                                 files (``tmp/exits/<id>``), the service's alive lock
    <workdir>/cni/               network_config_dir: the ``podman`` network's conflist
    <workdir>/ipam/              the conflist's host-local ``dataDir`` (IP allocations)
    <workdir>/events.log         events_logger=file: podman's event log (the API streams it)
    <workdir>/service.log        the service's stderr (logrus text lines, appended across restarts)
    <workdir>/netns              the stack's network namespace (a bind mount of nsfs)

containers.conf sets ``cgroup_manager = "cgroupfs"`` (systemd is not PID 1 here),
``events_logger = "file"``, ``runtime = "runc"``, ``lock_type = "file"`` (the default, shm,
would make ``/dev/shm/libpod_lock``), ``network_backend = "cni"`` (Debian's podman 4.3 has
containernetworking-plugins installed, not netavark) and ``default_ulimits`` (below).
storage.conf uses the ``overlay`` driver (the kernel's overlayfs, what dockerd's overlay2 mounts
too, on this ext4 /tmp) and falls back to ``vfs`` (copies: slow but works everywhere) on a
kernel without overlayfs.

**Network: the service runs in a network namespace of its own** (``unshare --net``, then
``nsenter --net`` exec's podman, so it keeps the host's mount namespace and its mounts stay
visible): the CNI bridge ``cni-podman0`` (10.88.0.0/16), its veths and the firewall plugin's
iptables rules exist only there. conmon inherits the namespace; each container gets its own.

**Rlimits**: podman writes RLIMIT_NOFILE/NPROC into every config.json (1048576 by default,
for root), and runc cannot raise a hard limit without CAP_SYS_RESOURCE, which this machine's
root lacks ("error setting rlimit type 7: operation not permitted"). ``default_ulimits`` is set
to the limits a child of the service gets (this process's RLIMIT_NOFILE, and RLIMIT_NPROC capped
at :data:`NPROC_CAP`, the value the service was measured to run with here).

What podman writes outside *workdir* whatever the config says, and :meth:`close` removes ours:

* container network namespaces ``/run/netns/netns-<uuid>`` (nsfs bind mounts), the ones new
  since the stack started;
* the CNI result cache ``/var/lib/cni/results/podman-<id>-eth0`` (libcni's default cache dir;
  podman 4.3 has no setting for it), and ``/var/lib/cni`` itself when the stack created it;
* containers/image's blob-info cache ``/var/lib/containers/cache/`` (written by the image
  load), removed when the stack created ``/var/lib/containers`` and no other podman runs;
* cgroups ``/libpod_parent/libpod-<id>`` (the container) and ``/libpod_parent/conmon`` (every
  conmon), and ``/libpod_parent`` when the stack created it.

conmon double-forks: it is re-parented to the nearest subreaper (the harness) or PID 1, and
outlives the service. :meth:`close` first lets ``podman rm --all --force`` (local mode, in the
stack's netns) undo what it can, then kills what is left (every process in the stack's netns,
every container cgroup) and removes the rest by force.

Errors: :class:`~runtime.errors.Unavailable` (the service exits during start-up: its last log
line is in the message), :class:`~runtime.errors.DeadlineExceeded`,
:class:`~runtime.errors.FailedPrecondition`, :class:`~runtime.errors.NotFound` (binaries), and
:class:`~runtime.errors.CapsizeError` from :meth:`close` naming whatever was left.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time

from harness.reference import cleanup
from harness.reference.containerd import MAX_SOCKET_PATH, last_error_line
from harness.reference.docker import API_VERSION, make_netns, ping, signal_and_wait
from runtime.errors import CapsizeError, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from runtime.runtimes import which

REQUIRED = ("podman", "conmon", "runc", "nsenter", "unshare", "ip")
#: Where Debian's containernetworking-plugins install the CNI plugins.
CNI_PLUGIN_DIRS = ("/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin")
#: libcni's cache directory (results per container and interface); not configurable in podman 4.3.
CNI_CACHE = "/var/lib/cni"
#: containers/image's blob-info cache for root (``cache/blob-info-cache-v1.boltdb``, written by
#: every image load; podman 4.3 has no setting for it).
IMAGE_CACHE = "/var/lib/containers"
NETNS_DIR = "/run/netns"
#: podman's cgroup parent with cgroup_manager=cgroupfs: libpod-<id> (containers) and conmon below it.
CGROUP_PARENT = "libpod_parent"
#: RLIMIT_NPROC the service runs with here when it cannot raise it (measured: 32768).
NPROC_CAP = 32768
#: The default network's subnet (podman's, private to the stack's netns).
SUBNET, GATEWAY = "10.88.0.0/16", "10.88.0.1"


def storage_driver() -> str:
    """``overlay`` where the kernel has overlayfs (``/proc/filesystems``), else ``vfs``."""
    try:
        with open("/proc/filesystems") as f:
            return "overlay" if any(line.split()[-1:] == ["overlay"] for line in f) else "vfs"
    except OSError:
        return "vfs"


def cni_plugin_dir() -> str | None:
    """The first directory of :data:`CNI_PLUGIN_DIRS` holding the ``bridge`` plugin, or None."""
    return next((d for d in CNI_PLUGIN_DIRS if os.path.exists(os.path.join(d, "bridge"))), None)


def _toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"


class PodmanStack:
    """A private podman API service under *workdir* (created if missing; removed by :meth:`close`).

    *runtime*: the OCI runtime podman drives through conmon (``runc`` or ``crun``). *log_level*:
    the service's ``--log-level``. Use as a context manager or call :meth:`start` and :meth:`close`.
    Raises InvalidArgument for a *workdir* too long for conmon's sockets, NotFound when a binary
    or the CNI plugins are missing.
    """

    def __init__(self, workdir: str, runtime: str = "runc", *, log_level: str = "info"):
        self.workdir = os.path.abspath(workdir)
        self.socket_path = os.path.join(self.workdir, "podman.sock")
        self.host = "unix://" + self.socket_path
        if len(self.socket_path) > MAX_SOCKET_PATH - 40:
            raise InvalidArgument(f"workdir {self.workdir} is too long for podman's unix sockets")
        missing = [b for b in REQUIRED if not which(b)]
        if missing:
            raise NotFound(f"{', '.join(missing)} not found: scripts/setup.sh installs podman, conmon and runc")
        self.plugin_dir = cni_plugin_dir()
        if not self.plugin_dir:
            raise NotFound("the CNI plugins are not installed (Debian's containernetworking-plugins)")
        if runtime not in ("runc", "crun") or not which(runtime):
            raise InvalidArgument(f"runtime {runtime!r}: podman drives runc or crun (installed)")
        self.binary = which("podman")
        self.runtime = runtime
        self.log_level = log_level
        self.conf_dir = os.path.join(self.workdir, "conf")
        self.root = os.path.join(self.workdir, "root")
        self.runroot = os.path.join(self.workdir, "runroot")
        self.tmpdir = os.path.join(self.workdir, "tmp")
        self.exit_dir = os.path.join(self.tmpdir, "exits")
        self.cni_dir = os.path.join(self.workdir, "cni")
        self.ipam_dir = os.path.join(self.workdir, "ipam")
        self.events_path = os.path.join(self.workdir, "events.log")
        self.log_path = os.path.join(self.workdir, "service.log")
        self.netns_path = os.path.join(self.workdir, "netns")
        self.driver = storage_driver()
        #: Seconds from exec to the first answered ``/_ping``, for the last service start.
        self.start_seconds: float | None = None
        self._netns_before = cleanup.existing_tree(NETNS_DIR, 1)
        self._had_cni_cache = os.path.lexists(CNI_CACHE)
        self._had_image_cache = os.path.lexists(IMAGE_CACHE)
        self._cgroups_before = cleanup.top_cgroups()
        self._container_cgroups_before = set(self.container_cgroups())
        self._proc: subprocess.Popen | None = None
        self._netns_inode: int | None = None
        self._clients: list = []
        self._closed = False
        for d in (self.conf_dir, self.root, self.runroot, self.tmpdir, self.cni_dir, self.ipam_dir):
            os.makedirs(d, exist_ok=True)
        self._write_config()

    # -- configuration ----------------------------------------------------------------------
    def _write_config(self) -> None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], NPROC_CAP)
        containers_conf = "\n".join([
            "[containers]",
            f'default_ulimits = {_toml_list([f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"])}',
            "[network]",
            'network_backend = "cni"',
            f"network_config_dir = {json.dumps(self.cni_dir)}",
            f"cni_plugin_dirs = {_toml_list([self.plugin_dir])}",
            "[engine]",
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f"events_logfile_path = {json.dumps(self.events_path)}",
            f"runtime = {json.dumps(self.runtime)}",
            f"tmp_dir = {json.dumps(self.tmpdir)}",
            f"image_copy_tmp_dir = {json.dumps(self.tmpdir)}",
            f"volume_path = {json.dumps(os.path.join(self.root, 'volumes'))}",
            'lock_type = "file"',
            "",
        ])
        storage_conf = "\n".join([
            "[storage]",
            f"driver = {json.dumps(self.driver)}",
            f"runroot = {json.dumps(self.runroot)}",
            f"graphroot = {json.dumps(self.root)}",
            "",
        ])
        network = {"cniVersion": "0.4.0", "name": "podman", "plugins": [
            {"type": "bridge", "bridge": "cni-podman0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir,
                      "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall"}, {"type": "tuning"}]}
        for name, text in (("containers.conf", containers_conf), ("storage.conf", storage_conf),
                           ("registries.conf", "")):
            with open(os.path.join(self.conf_dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(self.cni_dir, "87-podman.conflist"), "w") as f:
            json.dump(network, f, indent=1)

    def env(self) -> dict[str, str]:
        """The environment of every podman command of this stack: CONTAINERS_CONF,
        CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF and TMPDIR point into *workdir*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERS_", "CONTAINER_"))}
        env.update(CONTAINERS_CONF=os.path.join(self.conf_dir, "containers.conf"),
                   CONTAINERS_STORAGE_CONF=os.path.join(self.conf_dir, "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=os.path.join(self.conf_dir, "registries.conf"),
                   TMPDIR=self.tmpdir)
        return env

    def podman_argv(self, *args: str) -> list[str]:
        """``podman --root ... --runroot ... --tmpdir ... <args>`` (local mode, this stack's storage)."""
        return [self.binary, "--root", self.root, "--runroot", self.runroot, "--tmpdir", self.tmpdir,
                "--log-level", self.log_level, *args]

    # -- properties --------------------------------------------------------------------------
    @property
    def service_pid(self) -> int | None:
        return self._proc.pid if self.service_running else None

    @property
    def service_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def netns_inode(self) -> int | None:
        return self._netns_inode

    def container_ids(self) -> list[str]:
        """Ids of every container in the stack's storage (``<root>/<driver>-containers/<id>``)."""
        return _listdir(os.path.join(self.root, f"{self.driver}-containers"))

    def container_layer(self, container_id: str) -> str | None:
        """The storage layer of a container's rootfs (``containers.json`` of the store), or None."""
        try:
            with open(os.path.join(self.root, f"{self.driver}-containers", "containers.json")) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return None
        return next((e.get("layer") for e in entries if e.get("id") == container_id), None)

    def adopt(self, netns_before, had_cni_cache: bool, cgroup_parents, had_image_cache: bool = True) -> None:
        """Take over a stack a dead harness started on this workdir (:meth:`close` then removes
        it): what existed before it started, as that harness recorded it."""
        self._netns_before = set(netns_before)
        self._had_cni_cache = had_cni_cache
        self._had_image_cache = had_image_cache
        self._cgroups_before = cleanup.top_cgroups() - ({CGROUP_PARENT} - set(cgroup_parents))
        if self.netns_path in cleanup.mounts_under(self.netns_path):
            self._netns_inode = os.stat(self.netns_path).st_ino

    def userdata(self, container_id: str, run: bool = False) -> str:
        """A container's userdata dir: under the graphroot (config.json, ctr.log) or, with *run*,
        the runroot (pidfile, conmon.pid, attach socket)."""
        return os.path.join(self.runroot if run else self.root, f"{self.driver}-containers", container_id, "userdata")

    def exit_file(self, container_id: str) -> str:
        """Where conmon writes the container's exit status (``--exit-dir``): ``<tmpdir>/exits/<id>``."""
        return os.path.join(self.exit_dir, container_id)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "PodmanStack":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if not self.service_running:
            self.start_service()

    def _ensure_netns(self) -> None:
        if self.netns_path in cleanup.mounts_under(self.netns_path):
            return
        self._netns_inode = make_netns(self.netns_path)

    def service_argv(self) -> list[str]:
        """The service's command line (after ``nsenter --net=<netns> --``)."""
        return self.podman_argv("system", "service", "--time=0", self.host)

    def start_service(self, wait: bool = True, timeout: float = 60.0, listen: str = "socket") -> float | None:
        """Start the API service; with *wait*, until ``/_ping`` answers. Returns the seconds that took.

        *listen*: ``socket`` (``unix://<workdir>/podman.sock``) or ``activator``
        (``systemd-socket-activate -l <socket>`` holds the socket and execs the service without
        a URI on the first connection: podman then serves the inherited LISTEN_FDS socket;
        returns once the socket listens). Raises FailedPrecondition if it runs already or the
        stack is closed, Unavailable if it exits during start-up, DeadlineExceeded (after
        killing it) past *timeout*."""
        if self._closed:
            raise FailedPrecondition(f"podman stack {self.workdir} is closed")
        if self.service_running:
            raise FailedPrecondition(f"the podman service is already running (pid {self._proc.pid})")
        self._ensure_netns()
        if os.path.lexists(self.socket_path):
            os.unlink(self.socket_path)   # a killed service leaves it; podman refuses to bind over it
        argv = [which("nsenter"), f"--net={self.netns_path}", "--"] + self.service_argv()
        if listen == "activator":
            act = which("systemd-socket-activate")
            if not act:
                raise Unavailable("systemd-socket-activate is not installed (package systemd)")
            # no URI: podman takes LISTEN_FDS; the activator passes on only the variables named
            # with -E (without them podman would read the system's containers.conf)
            keep = [f"-E{k}={v}" for k, v in self.env().items() if k.startswith("CONTAINERS_") or k in ("TMPDIR", "PATH")]
            argv = [act, "-l", self.socket_path, *keep] + argv[:-1]
        elif listen != "socket":
            raise InvalidArgument(f"the podman service listens on a socket or behind an activator, not {listen!r}")
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.workdir, env=self.env(), start_new_session=True)
        if not wait:
            return None
        while True:
            if self._proc.poll() is not None:
                raise Unavailable(f"podman system service exited with status {self._proc.returncode} during "
                                  f"start-up: {last_error_line(self.log_path)}")
            if listen == "activator" and os.path.exists(self.socket_path):
                return time.monotonic() - t0   # the activator listens; the service starts on the first call
            if ping(self.socket_path):
                self.start_seconds = time.monotonic() - t0
                return self.start_seconds
            if time.monotonic() - t0 > timeout:
                self.kill_service()
                raise DeadlineExceeded(f"podman system service did not answer within {timeout:g}s (killed): "
                                       f"{last_error_line(self.log_path)}")
            time.sleep(0.02)

    def stop_service(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the service and wait (SIGKILL after *timeout*); containers and conmon run on."""
        return self._signal(signal.SIGTERM, timeout)

    def kill_service(self) -> int | None:
        """SIGKILL the service and reap it (its socket file stays)."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int | None:
        return signal_and_wait(self._proc if self.service_running else None, sig, timeout)

    # -- clients -----------------------------------------------------------------------------
    def client(self, timeout: float = 60.0):
        """A ``docker.DockerClient`` on the service's Docker-compatible API; closed by :meth:`close`."""
        import docker
        c = docker.DockerClient(base_url=self.host, version=API_VERSION, timeout=timeout)
        self._clients.append(c)
        return c

    def podman(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run podman in local mode on this stack's storage, in its netns (CNI teardown happens
        there). Returns the CompletedProcess (text); raises DeadlineExceeded after *timeout*."""
        argv = self.podman_argv(*args)
        if self.netns_path in cleanup.mounts_under(self.netns_path):
            argv = [which("nsenter"), f"--net={self.netns_path}", "--"] + argv
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(),
                                  stdin=subprocess.DEVNULL, cwd=self.workdir)
        except subprocess.TimeoutExpired:
            raise DeadlineExceeded(f"podman {' '.join(args)}: no answer within {timeout:g}s") from None

    def import_busybox(self, reference: str = "busybox:latest") -> str:
        """Load the lab's busybox image (``runtime.busybox.write_image_tar``, a ``docker save``
        tarball) through the compat ``POST /images/load``, offline. Returns the image ID."""
        import docker
        import requests

        from runtime import busybox
        path = os.path.join(self.tmpdir, "busybox.tar")
        image_id = busybox.write_image_tar(path, reference)
        c = self.client()
        try:
            with open(path, "rb") as f:
                c.images.load(f.read())
            loaded = c.images.get(reference).id
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise Unavailable(f"image load into {self.host}: {str(e).splitlines()[0][:300]}") from None
        finally:
            os.unlink(path)
        if loaded != image_id:
            raise CapsizeError(f"podman load gave image {loaded}, expected {image_id}")
        return image_id

    # -- teardown ----------------------------------------------------------------------------
    def conmons(self) -> list:
        """conmon processes of this stack (psutil), found by their ``-b <bundle under root>``."""
        prefix = self.root + "/"
        return cleanup.find_processes(lambda argv, p: bool(argv) and os.path.basename(argv[0]) == "conmon"
                                      and any(a.startswith(prefix) for a in argv))

    def container_cgroups(self) -> list[str]:
        """Names of the container cgroups under /libpod_parent (``libpod-<id>``), every hierarchy."""
        return sorted({e for d in cleanup.cgroup_dirs(CGROUP_PARENT) for e in _listdir(d) if e.startswith("libpod-")})

    def new_netns(self) -> list[str]:
        """Entries of /run/netns that appeared since the stack was made."""
        return sorted(cleanup.new_entries(self._netns_before, NETNS_DIR, 1) - {NETNS_DIR})

    def close(self) -> None:
        """Remove everything, even after faults: containers (``podman rm --all --force``, then by
        force), the service, conmons, mounts, the containers' netns files, CNI cache entries,
        cgroups, the stack's netns and *workdir*. Raises CapsizeError naming what was left;
        calling it again does nothing."""
        if self._closed:
            return
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients.clear()
        self.kill_service()
        ids = self.container_ids()
        problems: list[str] = []
        if ids:
            # podman undoes its own work (CNI teardown, unmounts); what it cannot, the force steps
            # below remove, and only what is left after them is a problem
            try:
                self.podman("rm", "--all", "--force", "--time", "0", timeout=60)
            except DeadlineExceeded:
                pass
        problems += cleanup.kill_processes(self.conmons())
        # every container cgroup made since the start, also of containers podman removed without
        # its clean-up (a killed conmon leaves the cgroup)
        made = {f"libpod-{cid}" for cid in ids} | (set(self.container_cgroups()) - self._container_cgroups_before)
        for name in sorted(made):
            problems += cleanup.kill_cgroup(f"/{CGROUP_PARENT}/{name}")
        if self._netns_inode and self.netns_path in cleanup.mounts_under(self.netns_path):
            problems += cleanup.kill_netns_processes(self._netns_inode)
        for path in self.new_netns():
            problems += cleanup.unmount_under(path)
            try:
                os.unlink(path)
            except OSError:
                pass
        problems += cleanup.unmount_under(self.workdir)
        for cid in ids:
            for name in _listdir(os.path.join(CNI_CACHE, "results")):
                if cid in name:
                    os.unlink(os.path.join(CNI_CACHE, "results", name))
        if not self._had_cni_cache:
            cleanup.remove_new_empty_dirs({CNI_CACHE, *cleanup.existing_tree(CNI_CACHE, 2)})
        if not self._had_image_cache:
            shutil.rmtree(IMAGE_CACHE, ignore_errors=True)   # made by this stack's image load
        if CGROUP_PARENT in cleanup.top_cgroups() - self._cgroups_before:
            for d in cleanup.cgroup_dirs(f"/{CGROUP_PARENT}/conmon"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            cleanup.remove_empty_cgroup_parent(CGROUP_PARENT)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._closed = True
        problems += self.leftovers(ids)
        if problems:
            raise CapsizeError("podman stack close left: " + "; ".join(sorted(set(problems))))

    def leftovers(self, ids: list[str] | None = None) -> list[str]:
        """What of this stack still exists on the host, one line each (empty after a clean close)."""
        found = []
        if self.service_running:
            found.append(f"podman service pid {self._proc.pid}")
        found += [f"conmon pid {p.pid}" for p in self.conmons()]
        names = {f"libpod-{cid}" for cid in (ids if ids is not None else self.container_ids())}
        names |= set(self.container_cgroups()) - self._container_cgroups_before
        for name in sorted(names):
            found += [f"cgroup {d}" for d in cleanup.cgroup_dirs(f"/{CGROUP_PARENT}/{name}")]
        found += [f"netns file {p}" for p in self.new_netns()]
        found += [f"mount {m}" for m in cleanup.mounts_under(self.workdir)]
        if os.path.lexists(self.workdir):
            found.append(f"directory {self.workdir}")
        return sorted(set(found))


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
