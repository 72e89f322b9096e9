"""Fixtures for the shim's tests: runtimes, a stand-in runtime daemon, and shims that clean up.

* ``runtime_name`` / ``runtime_bin``: parametrized over runc, capsize-runc and crun; a runtime
  that is not usable here is skipped with the reason (capsize-runc must pass ``spec`` and a
  create/start/delete cycle; crun comes from runtime.runtimes, which wraps it for
  the hybrid cgroup layout).
* ``event_sink``: plays the runtime daemon's event socket (JSON lines in, one ack line out per
  event); it can be stopped and started again at the same address.
* ``shims``: starts tasks' shims through ``capsize-shim start`` in the task-directory layout
  ``<tmp>/state/runtimed/tasks/<ns>/<id>`` and, at teardown, kills, deletes and shuts down
  whatever a test left, or runs the ``delete`` action for a dead shim, and reaps the shim.
* ``no_socket_leaks`` (autouse): no shim socket, template socket or lock file may be left in
  /run/capsize/s (the suite-wide leak check covers processes, mounts and cgroups).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from runtime.errors import CapsizeError
from runtime.shim.client import ShimClient
from tests.conftest import SESSION_TAG, VENV_BIN, reap_children, run

SHIM = os.path.join(VENV_BIN, "capsize-shim")
RUNTIMES = ["runc", "capsize-runc", "crun"]
_usable: dict[str, str] = {}


def _check_runtime(name: str, busybox_rootfs: str, tmp: str) -> str:
    """The runtime's path, or raise pytest.skip with why it cannot be used here."""
    if name in _usable:
        if _usable[name].startswith("skip:"):
            pytest.skip(_usable[name][5:])
        return _usable[name]
    try:
        from runtime.runtimes import runtime_path
        path = runtime_path(name)
    except ImportError:
        path = shutil.which(name) or ""
    except CapsizeError as e:
        _usable[name] = f"skip:{name} not available: {e}"
        pytest.skip(_usable[name][5:])
    reason = ""
    if name == "capsize-runc":
        from runtime.lowlevel.spec import default_spec
        bundle = os.path.join(tmp, "probe")
        os.makedirs(bundle)
        os.symlink(busybox_rootfs, os.path.join(bundle, "rootfs"))
        cfg = default_spec()
        cfg["process"]["args"] = ["true"]
        cfg["linux"]["cgroupsPath"] = f"/capsize-{SESSION_TAG}-shimprobe"
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        root = os.path.join(tmp, "root")
        base = [path, "--root", root]
        p = run(base + ["create", "--bundle", bundle, "--pid-file", os.path.join(tmp, "pid"), "shimprobe"],
                stdin=subprocess.DEVNULL)
        if p.returncode:
            reason = f"capsize-runc create does not work yet: {(p.stderr or p.stdout).strip()[-300:]}"
        run(base + ["delete", "--force", "shimprobe"])
        reap_children()
    _usable[name] = f"skip:{reason}" if reason else path
    if reason:
        pytest.skip(reason)
    return path


@pytest.fixture(params=RUNTIMES)
def runtime_name(request) -> str:
    return request.param


@pytest.fixture
def runtime_bin(runtime_name, busybox_rootfs, tmp_path) -> str:
    probe = tmp_path / "runtime-probe"
    probe.mkdir()
    return _check_runtime(runtime_name, busybox_rootfs, str(probe))


@pytest.fixture
def runc_bin(busybox_rootfs, tmp_path) -> str:
    probe = tmp_path / "runtime-probe-runc"
    probe.mkdir()
    return _check_runtime("runc", busybox_rootfs, str(probe))


# -- the runtime daemon's event socket --------------------------------------------------------

class EventSink:
    """A stand-in for the runtime daemon's event address: records events, acks each one."""

    def __init__(self, path: str):
        self.path = path
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def address(self) -> str:
        return "unix://" + self.path

    def start(self) -> "EventSink":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(64)
        s.settimeout(0.05)
        self._listener, self._stop = s, threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(s, self._stop), daemon=True)
        self._thread.start()
        return self

    def _serve(self, listener, stop) -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn, stop), daemon=True).start()

    def _read(self, conn, stop) -> None:
        buf = b""
        conn.settimeout(0.05)
        while not stop.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self._lock:
                    self.events.append(json.loads(line))
                try:
                    conn.sendall(b'{"ok":true}\n')
                except OSError:
                    return

    def stop(self) -> None:
        """Go away like a killed daemon: close everything and remove the socket file."""
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        for c in self._conns:
            c.close()
        self._conns = []
        if self._listener:
            self._listener.close()
            self._listener = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def topics(self, container_id: str | None = None) -> list[str]:
        with self._lock:
            return [e["topic"] for e in self.events
                    if container_id is None or e["event"].get("container_id") == container_id]

    def wait_for(self, n: int, container_id: str | None = None, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            topics = self.topics(container_id)
            if len(topics) >= n:
                return topics
            time.sleep(0.02)
        return self.topics(container_id)


@pytest.fixture
def event_dir():
    d = tempfile.mkdtemp(prefix="shimev-", dir="/tmp")  # short: unix socket paths are <= 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def event_sink(event_dir):
    sink = EventSink(os.path.join(event_dir, "runtimed.sock")).start()
    yield sink
    sink.stop()


# -- shims ------------------------------------------------------------------------------------

SOCKET_DIR = "/run/capsize/s"


def _socket_files() -> set[str]:
    try:
        return set(os.listdir(SOCKET_DIR))
    except FileNotFoundError:
        return set()


#: Names in SOCKET_DIR that this run's shims may make: each started shim's socket and its
#: template's (keyed by the event address, unique per test), with their ``.lock`` files.
OWN_SOCKETS: set[str] = set()


def own_sockets(address: str, namespace: str, cid: str) -> None:
    """Register the socket names a ``capsize-shim start`` with these arguments may create."""
    from runtime.errors import InvalidArgument
    from runtime.shim import paths, template
    try:
        shim = paths.socket_path(address, namespace, cid, SOCKET_DIR)
    except InvalidArgument:  # a test of bad arguments: that shim makes no socket
        shim = None
    for path in filter(None, (shim, template.socket_path(SOCKET_DIR, address))):
        name = os.path.basename(path)
        OWN_SOCKETS.update((name, name + ".lock"))


@pytest.fixture(autouse=True)
def no_socket_leaks():
    """Fail a test that leaves shim or template sockets (or lock files) in /run/capsize/s. Only
    the names of this run's shims count (:func:`own_sockets`): the directory is shared by every
    capsize engine on the machine, e.g. a concurrent test run's."""
    before = _socket_files()
    yield
    deadline = time.monotonic() + 3.0  # an idle template needs a moment to leave
    while True:
        left = (_socket_files() - before) & OWN_SOCKETS
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"test left files in {SOCKET_DIR}: {sorted(left)}"


def pid_alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_children()
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return False


class Shim:
    """One started shim: its task directory, address, pid and a client."""

    def __init__(self, bundle: str, cid: str, namespace: str, address: str, runtime: str):
        self.bundle, self.id, self.namespace, self.address, self.runtime = bundle, cid, namespace, address, runtime
        with open(os.path.join(bundle, "shim.pid")) as f:
            self.pid = int(f.read())
        self._client: ShimClient | None = None

    @property
    def client(self) -> ShimClient:
        if self._client is None:
            self._client = ShimClient.connect(self.address, timeout=30)
        return self._client

    def call(self, method: str, **params) -> dict:
        return self.client.call(method, **params)

    def new_client(self, timeout: float | None = 30) -> ShimClient:
        return ShimClient.connect(self.address, timeout=timeout)

    def file(self, name: str) -> str:
        return os.path.join(self.bundle, name)

    def log_entries(self) -> list[dict]:
        with open(self.file("container.log")) as f:
            return [json.loads(line) for line in f]

    def shim_log(self) -> str:
        with open(self.file("shim.log")) as f:
            return f.read()

    def close(self) -> None:
        if self._client:
            self._client.close()
            self._client = None

    def delete_action(self) -> tuple[subprocess.CompletedProcess, dict | None]:
        p = run([SHIM, "delete", "--id", self.id, "--namespace", self.namespace, "--bundle", self.bundle])
        reap_children()
        out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        return p, out

    def teardown(self) -> None:
        """Leave nothing behind, whatever state the test left the shim and task in."""
        self.close()
        if pid_alive(self.pid):
            try:
                with self.new_client(timeout=10) as c:
                    try:
                        st = c.call("state")
                        if st["status"] in ("created", "running"):
                            try:
                                c.call("kill", signal=9, all=True)
                            except CapsizeError:
                                pass
                            c.call("wait", timeout=10)
                        c.call("delete")
                    except CapsizeError:
                        pass
                    c.call("shutdown")
            except CapsizeError:
                os.kill(self.pid, signal.SIGKILL)
            if not wait_gone(self.pid, 5):
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 5)
        if not pid_alive(self.pid) and os.path.exists(self.bundle):
            if os.path.exists(self.address[len("unix://"):]) or os.path.exists(self.file("init.pid")):
                self.delete_action()
        reap_children()


@pytest.fixture
def shims(tmp_path, busybox_rootfs, event_sink):
    """Factory ``shims.start(args, runtime=..., edit=..., ...)`` -> :class:`Shim`."""

    class Factory:
        started: list[Shim] = []

        def bundle(self, args, edit=None, namespace="default", cid=None, host_pid=False):
            from runtime.lowlevel.spec import default_spec
            cid = cid or "shim" + uuid.uuid4().hex[:10]
            bundle = tmp_path / "state" / "runtimed" / "tasks" / namespace / cid
            bundle.mkdir(parents=True)
            shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
            cfg = default_spec()
            cfg["process"]["args"] = list(args)
            cfg["linux"]["cgroupsPath"] = f"/capsize-{SESSION_TAG}-{cid}"  # the leak check knows it
            if host_pid:
                cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
            if edit:
                edit(cfg)
            (bundle / "config.json").write_text(json.dumps(cfg, indent=2))
            return str(bundle), cid

        def start_cli(self, bundle, cid, runtime, namespace="default", address=None, extra=()):
            address = event_sink.address if address is None else address
            own_sockets(address, namespace, cid)
            argv = [SHIM, "start", "--id", cid, "--namespace", namespace, "--bundle", bundle,
                    "--address", address, "--runtime", runtime, *extra]
            return run(argv)

        def start(self, args=("sleep", "100"), runtime="runc", edit=None, namespace="default",
                  address=None, host_pid=False, cid=None) -> Shim:
            bundle, cid = self.bundle(args, edit, namespace, cid, host_pid)
            p = self.start_cli(bundle, cid, runtime, namespace, address)
            assert p.returncode == 0, p.stderr
            shim = Shim(bundle, cid, namespace, p.stdout.strip(), runtime)
            self.started.append(shim)
            return shim

    factory = Factory()
    factory.started = []
    yield factory
    for shim in factory.started:
        shim.teardown()
