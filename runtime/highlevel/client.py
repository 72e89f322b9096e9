"""A synchronous client of capsize-runtimed's API (standard library only: http.client over a unix socket).

::

    from runtime.highlevel.client import RuntimeClient
    rt = RuntimeClient("/run/capsize/runtimed.sock", namespace="moby")
    rt.import_image("busybox.tar")                       # docker-save, OCI layout or rootfs tar
    rt.create_container("web", "busybox:latest", args=["sleep", "100"])
    with rt.subscribe(topics=["/tasks/"]) as events:
        rt.create_task("web"); rt.start_task("web")
        rt.kill_task("web", "SIGKILL")
        for env in events:                               # {"seq", "topic", "namespace", "event", ...}
            if env["topic"] == "/tasks/exit":
                break
    rt.delete_task("web"); rt.delete_container("web")

Every call opens its own connection, so a client may be shared by threads. Errors are the
shared classes (:mod:`runtime.errors`), rebuilt from the daemon's JSON error replies
(``from_dict``); a daemon that cannot be reached is :class:`~runtime.errors.Unavailable`
(``capsize-runtimed is not reachable at unix://PATH: ...``), a call that outlives its timeout
:class:`~runtime.errors.DeadlineExceeded`. Timeouts are in seconds (None: wait forever). The
paths, bodies and results are those of the package docstring (:mod:`runtime.highlevel`); the
calls themselves are built by :class:`runtime.api.runtimed.Requests`, shared with capsized's
asyncio client (:mod:`runtime.daemon.backend`): this module is the blocking transport.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import urlencode

from runtime.api import failpoints
from runtime.api.runtimed import Call, Requests, query_pairs, error_from_reply
from runtime.errors import DeadlineExceeded, Unavailable

DEFAULT_ADDRESS = "/run/capsize/runtimed.sock"
_DEFAULT = object()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout):
        super().__init__("localhost", timeout=timeout, blocksize=1 << 16)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def _path_of(address: str) -> str:
    return address[len("unix://"):] if address.startswith("unix://") else address


class RuntimeClient:
    """A client of one daemon (*address*: a socket path or ``unix://`` address), scoped to
    *namespace*. *timeout* is each call's default (seconds)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, namespace: str = "default", timeout: float | None = 60.0):
        self.address = _path_of(address)
        self.namespace = namespace
        self.timeout = timeout
        self.calls = Requests(namespace)

    def with_namespace(self, namespace: str) -> "RuntimeClient":
        return RuntimeClient(self.address, namespace, self.timeout)

    # -- plumbing ----------------------------------------------------------------------------
    def call(self, call: Call, timeout=_DEFAULT, body=None, out=None):
        """Send one :class:`runtime.api.runtimed.Call`; *body* (a binary file) replaces its JSON body."""
        return self.request(call.method, call.path, call.body if body is None else body, call.query,
                            timeout, out=out)

    def _unreachable(self, e: BaseException) -> Unavailable:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        return Unavailable(f"capsize-runtimed is not reachable at unix://{self.address}: {why}")

    def request(self, method: str, path: str, body=None, query=None, timeout=_DEFAULT,
                raw: bool = False, out=None):
        """One API call. *query*: ``{name: value | [values]}`` or ``[(name, value)]``. *body*: a
        JSON-able object, ``bytes`` or a binary file. Returns the
        decoded JSON result; with *out* (a binary file), the response body is copied there."""
        if query:
            pairs = query_pairs(query) if isinstance(query, dict) else list(query)
            if pairs:
                path += "?" + urlencode(pairs)
        headers = {}
        data = body
        if body is not None and not isinstance(body, (bytes, bytearray)) and not hasattr(body, "read"):
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if hasattr(data, "read"):
            headers["Content-Length"] = str(os.fstat(data.fileno()).st_size - data.tell())
            headers["Content-Type"] = "application/x-tar"
        conn = _UnixConnection(self.address, self.timeout if timeout is _DEFAULT else timeout)
        try:
            try:
                failpoints.hit_runtimed_call(method, path, "before-call")
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
            except (FileNotFoundError, ConnectionRefusedError, PermissionError) as e:
                raise self._unreachable(e) from None
            except socket.timeout:
                raise DeadlineExceeded(f"capsize-runtimed did not answer {method} {path} in time") from None
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                raise Unavailable(f"capsize-runtimed at unix://{self.address}: {method} {path}: {e}") from None
            try:
                if resp.status >= 400:
                    raise error_from_reply(resp.status, resp.reason, resp.read())
                if out is not None:
                    while True:
                        chunk = resp.read(1 << 20)
                        if not chunk:
                            return None
                        out.write(chunk)
                content = resp.read()
            except socket.timeout:
                raise DeadlineExceeded(f"capsize-runtimed did not finish {method} {path} in time") from None
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                raise Unavailable(f"capsize-runtimed at unix://{self.address}: {method} {path}: {e}") from None
            failpoints.hit_runtimed_call(method, path, "after-call")
            if raw:
                return content
            return json.loads(content) if content.strip() else None
        finally:
            conn.close()

    # -- daemon ------------------------------------------------------------------------------
    def version(self, timeout=_DEFAULT) -> dict:
        return self.call(self.calls.version(), timeout=timeout)

    def namespaces(self) -> list[str]:
        return self.call(self.calls.namespaces())["namespaces"]

    def gc(self) -> dict:
        return self.call(self.calls.gc())

    # -- images ------------------------------------------------------------------------------
    def images(self) -> list[dict]:
        return self.call(self.calls.images())["images"]

    def image(self, name: str) -> dict:
        return self.call(self.calls.image(name))

    def import_image(self, source, format: str = "auto", name: str | None = None,  # noqa: A002
                     labels: dict | None = None, timeout=_DEFAULT) -> list[dict]:
        """Import a docker-save tarball, an OCI layout tar or (``format="rootfs"``, with *name*) a
        rootfs tar from *source* (a path or a binary file); returns the images."""
        call = self.calls.import_image(format, name, labels)
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return self.call(call, timeout=timeout, body=f)["images"]
        return self.call(call, timeout=timeout, body=source)["images"]

    def _transfer(self, call: Call, progress=None) -> dict:
        raw = self.request(call.method, call.path, call.body, call.query, raw=True)
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        for ev in lines[:-1]:
            if progress is not None:
                progress(ev)
        last = lines[-1] if lines else {"error": {"code": "unavailable", "message": "the transfer stream ended early"}}
        if "error" in last:
            from runtime.errors import from_dict
            raise from_dict(last["error"])
        return last

    def pull(self, ref: str, auth: dict | None = None, progress=None) -> dict:
        """Pull *ref* (:meth:`runtime.api.runtimed.Requests.pull_image`); returns the last line
        (``{"image", "action", "digest", "name"}``), raising the stream's error; *progress(ev)*
        sees every progress line (after the end: this client reads the whole answer)."""
        return self._transfer(self.calls.pull_image(ref, auth), progress)

    def push(self, name: str, ref: str | None = None, auth: dict | None = None, progress=None) -> dict:
        """Push *name* (:meth:`runtime.api.runtimed.Requests.push_image`); ``{"pushed": {...}}``."""
        return self._transfer(self.calls.push_image(name, ref, auth), progress)

    def export_image(self, name: str, out) -> None:
        """Write the image as a docker-save tarball to *out* (a path or a binary file)."""
        if isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as f:
                self.call(self.calls.export_image(name), out=f)
            return
        self.call(self.calls.export_image(name), out=out)

    def delete_image(self, name: str, sync: bool = False) -> dict:
        return self.call(self.calls.delete_image(name, sync))

    # -- containers --------------------------------------------------------------------------
    def create_container(self, container_id: str, image: str, runtime: str | None = None, args=None,
                         env=None, spec: dict | None = None, labels: dict | None = None,
                         cwd: str | None = None) -> dict:
        return self.call(self.calls.create_container(container_id, image, runtime, args, env, spec, labels, cwd))

    def containers(self) -> list[dict]:
        return self.call(self.calls.containers())["containers"]

    def container(self, container_id: str) -> dict:
        return self.call(self.calls.container(container_id))

    def update_container(self, container_id: str, labels: dict | None = None, spec: dict | None = None) -> dict:
        return self.call(self.calls.update_container(container_id, labels, spec))

    def delete_container(self, container_id: str) -> dict:
        return self.call(self.calls.delete_container(container_id))

    # -- tasks -------------------------------------------------------------------------------
    def tasks(self) -> list[dict]:
        return self.call(self.calls.tasks())["tasks"]

    def task(self, task_id: str) -> dict:
        return self.call(self.calls.task(task_id))

    def create_task(self, container_id: str, log_path: str | None = None, stdin: str | None = None) -> dict:
        return self.call(self.calls.create_task(container_id, log_path, stdin))

    def start_task(self, task_id: str) -> dict:
        return self.call(self.calls.start_task(task_id))

    def kill_task(self, task_id: str, signal=15, all: bool = False) -> dict:  # noqa: A002 - runc's word
        return self.call(self.calls.kill_task(task_id, signal, all))

    def wait_task(self, task_id: str, timeout=None) -> dict:
        """Block until the task exits: ``{"pid", "exit_status", "exited_at", "exit_source", "exit_reason"}``."""
        return self.call(self.calls.wait_task(task_id), timeout=timeout)

    def pause_task(self, task_id: str) -> dict:
        return self.call(self.calls.pause_task(task_id))

    def resume_task(self, task_id: str) -> dict:
        return self.call(self.calls.resume_task(task_id))

    def pids(self, task_id: str) -> list[int]:
        return self.call(self.calls.pids(task_id))["pids"]

    def delete_task(self, task_id: str, force: bool = False) -> dict:
        return self.call(self.calls.delete_task(task_id, force))

    def exec_process(self, task_id: str, exec_id: str, process: dict, stdin: str | None = None,
                     stdout: str | None = None, stderr: str | None = None) -> dict:
        """Run *process* (OCI) in the running task as *exec_id*: the ``Exec`` view."""
        return self.call(self.calls.exec_process(task_id, exec_id, process, stdin, stdout, stderr))

    def exec_state(self, task_id: str, exec_id: str) -> dict:
        return self.call(self.calls.exec_state(task_id, exec_id))

    def resize(self, task_id: str, height: int, width: int, exec_id: str | None = None) -> dict:
        """The terminal of the task's init (or of exec *exec_id*) resized: ``{}``."""
        return self.call(self.calls.resize(task_id, height, width, exec_id))

    # -- events ------------------------------------------------------------------------------
    def subscribe(self, topics=(), namespaces=(), since: int | None = None,
                  timeout: float | None = None) -> "EventStream":
        """Stream events (``/v1/events``) matching *topics* (exact, or prefixes ending in ``/`` or
        ``*``) in *namespaces* (default: every namespace); with *since*, first the buffered events
        after that ``seq`` (0: everything since the daemon started). The subscription is live
        when this returns. *timeout* bounds each wait for an event (None: forever)."""
        call = Requests.events(topics, namespaces, since)
        path = call.path + ("?" + urlencode(call.query) if call.query else "")
        return EventStream(self, path, timeout)


class EventStream:
    """An open event subscription: iterate it, or call :meth:`next` with a timeout; close it."""

    def __init__(self, client: RuntimeClient, path: str, timeout: float | None):
        self.client, self.timeout = client, timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(client.timeout)
        try:
            self._sock.connect(client.address)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as e:
            self._sock.close()
            raise client._unreachable(e) from None
        self._raw = b""      # bytes read, not yet decoded
        self._data = b""     # decoded body, not yet split into lines
        self._chunk_left = 0
        self._ended = False
        try:
            self._sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            self._read_head()
        except BaseException:
            self.close()
            raise

    def _recv(self) -> bool:
        try:
            data = self._sock.recv(1 << 16)
        except socket.timeout:
            raise DeadlineExceeded("no event within the timeout") from None
        except OSError as e:
            raise Unavailable(f"event stream from unix://{self.client.address} failed: {e}") from None
        if not data:
            return False
        self._raw += data
        return True

    def _read_head(self) -> None:
        while b"\r\n\r\n" not in self._raw:
            if not self._recv():
                raise Unavailable(f"capsize-runtimed at unix://{self.client.address} closed the event stream")
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if status != 200:
            length = int(headers.get("content-length", "0"))
            while len(self._raw) < length and self._recv():
                pass
            raise error_from_reply(status, parts[2] if len(parts) > 2 else "", self._raw[:length])
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise Unavailable("event stream is not chunked")
        self._sock.settimeout(self.timeout)

    def _decode(self) -> None:
        while True:
            if self._chunk_left > 0:
                take = self._raw[:self._chunk_left]
                self._data += take
                self._raw = self._raw[len(take):]
                self._chunk_left -= len(take)
                if self._chunk_left:
                    return
                self._chunk_left = -2  # the CRLF after the chunk
            if self._chunk_left == -2:
                if len(self._raw) < 2:
                    return
                self._raw = self._raw[2:]
                self._chunk_left = 0
            if b"\r\n" not in self._raw:
                return
            size_line, self._raw = self._raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self._ended = True
                return
            self._chunk_left = size

    def next(self, timeout=_DEFAULT) -> dict:
        """The next envelope. Raises DeadlineExceeded after *timeout* seconds (the stream stays
        usable), Unavailable when the daemon ends the stream."""
        if timeout is not _DEFAULT:
            self._sock.settimeout(timeout)
        try:
            while True:
                self._decode()
                if b"\n" in self._data:
                    line, self._data = self._data.split(b"\n", 1)
                    if line.strip():
                        return json.loads(line)
                    continue
                if self._ended or not self._recv():
                    raise Unavailable(f"capsize-runtimed at unix://{self.client.address} ended the event stream")
        finally:
            if timeout is not _DEFAULT:
                self._sock.settimeout(self.timeout)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        try:
            return self.next()
        except Unavailable:
            raise StopIteration from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
