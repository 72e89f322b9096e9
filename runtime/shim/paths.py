"""Where a shim keeps things: the task directory's files and the shim's socket address.

The task directory is the bundle, ``<state>/runtimed/tasks/<namespace>/<id>/`` (DESIGN.md); the
names below are the files the shim reads or writes in it. The shim's socket lives outside it,
because unix socket paths are limited to 107 bytes: ``<socket dir>/<sha256 hex>`` where the
digest is of ``<runtime address>/<namespace>/<id>`` (containerd does the same under
``/run/containerd/s``). The address is that path with a ``unix://`` prefix.
"""

from __future__ import annotations

import os

from runtime.digest import sha256_hex
from runtime.errors import InvalidArgument

#: Default directory of shim sockets.
SOCKET_DIR = "/run/capsize/s"
#: sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107

CONFIG = "config.json"          # the OCI config (written by the high-level runtime)
ADDRESS = "address"             # the shim's socket address, "unix:///run/capsize/s/<hex>"
SHIM_PID = "shim.pid"           # the shim daemon's pid (decimal)
SHIM_LOG = "shim.log"           # the shim's own JSON-lines log, and its stderr
OPTIONS = "options.json"        # how the shim was started: runtime binary and root, address...
RESOURCES_FILE = "resources.json"   # the last `update`'s linux.resources, for `<runtime> update --resources`
INIT_PID = "init.pid"           # the container init's pid, written by `<runtime> create --pid-file`
RUNTIME_LOG = "log.json"        # the low-level runtime's --log (--log-format json)
CONTAINER_LOG = "container.log" # stdout/stderr in Docker's json-file format (default location)
EXIT = "exit"                   # the init's exit status and time (JSON), see runtime.shim.exitfile

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.-")


def check_id(value: str, what: str) -> str:
    """Return *value* if it is a valid container id or namespace, else raise InvalidArgument.

    Valid: 1-128 of ``[A-Za-z0-9_.-]``, the first a letter or digit (checked without ``re``,
    whose import would cost every ``capsize-shim start`` milliseconds).
    """
    if (not isinstance(value, str) or not 0 < len(value) <= 128 or value[0] not in _ID_FIRST
            or not _ID_CHARS.issuperset(value)):
        raise InvalidArgument(f"invalid {what} {value!r}: use 1-128 of [A-Za-z0-9_.-], "
                              f"starting with a letter or digit", field=what)
    return value


def socket_path(runtime_address: str, namespace: str, container_id: str,
                socket_dir: str = SOCKET_DIR) -> str:
    """The shim socket path for a task; raises InvalidArgument when it would be too long."""
    digest = sha256_hex(f"{runtime_address}/{namespace}/{container_id}")
    path = os.path.join(os.path.abspath(socket_dir), digest)
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise InvalidArgument(f"socket directory {socket_dir} is too long for a unix socket path "
                              f"({len(path.encode())} > {MAX_SOCKET_PATH} bytes)", field="socket-dir")
    return path


def address_of(path: str) -> str:
    """``unix://`` + *path*."""
    return "unix://" + path


def path_of(address: str) -> str:
    """The filesystem path of a ``unix://`` address (a bare path is returned as is)."""
    return address[len("unix://"):] if address.startswith("unix://") else address


def default_runtime_root(bundle: str, namespace: str) -> str:
    """``<state>/runc/<namespace>`` when *bundle* is ``<state>/runtimed/tasks/<namespace>/<id>``,
    else ``/run/capsize/runc/<namespace>``."""
    parts = os.path.abspath(bundle).split(os.sep)
    if len(parts) >= 5 and parts[-4:-2] == ["runtimed", "tasks"] and parts[-2] == namespace:
        return os.path.join(os.sep.join(parts[:-4]) or os.sep, "runc", namespace)
    return os.path.join("/run/capsize/runc", namespace)
