"""capsized's daemon configuration file: dockerd's ``daemon.json``, for the options capsized has.

``capsized --config-file PATH`` (default :data:`DEFAULT_PATH`, ``/etc/capsize/daemon.json``, as
dockerd's ``/etc/docker/daemon.json``; a missing default file is no configuration, a missing
file named with the flag is an error). The file is a JSON object whose keys are dockerd's
``daemon.json`` keys (the long flag names) for what capsized supports: :data:`KEYS`. As dockerd
(``daemon/config``: ``findConfigurationConflicts``, ``getConflictFreeConfiguration``):

* a key that matches no option is an error: ``the following directives don't match any
  configuration option: <keys>``;
* a key also given as a flag is an error: ``the following directives are specified both as a
  flag and in the configuration file: <key>: (from flag: <v>, from file: <v>)``;
* a value of the wrong JSON type is an error naming the key.

A unit drop-in sets it (e.g. ``live-restore`` for the systemd engines) by pointing
``--config-file`` at a file, or through ``$CAPSIZED_OPTS`` (``vagrant/units/capsized.service``'s
``EnvironmentFile=-/etc/default/capsized``, as Debian's docker.service reads ``DOCKER_OPTS``).
Errors are :class:`~runtime.errors.InvalidArgument` (``capsized: unable to configure the daemon
with file PATH: ...``, exit status 1).
"""

from __future__ import annotations

import json

from runtime.errors import InvalidArgument

DEFAULT_PATH = "/etc/capsize/daemon.json"

#: ``daemon.json`` key -> (argparse destination, accepted JSON types).
KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "hosts": ("host", (list,)),
    "data-root": ("data_root", (str,)),
    "exec-root": ("exec_root", (str,)),
    "pidfile": ("pidfile", (str,)),
    "live-restore": ("live_restore", (bool,)),
    "containerd": ("runtime_address", (str,)),
    "group": ("group", (str,)),
    "log-level": ("log_level", (str,)),
    "shutdown-timeout": ("shutdown_timeout", (int, float)),
    "default-runtime": ("default_runtime", (str,)),
    "cgroup-parent": ("cgroup_parent", (str,)),
}


def read(path: str, required: bool) -> dict:
    """The file's settings as ``{argparse destination: value}``; ``{}`` when *path* does not
    exist and not *required*. Raises InvalidArgument (unreadable, not a JSON object, unknown keys,
    wrong types)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if not required:
            return {}
        raise InvalidArgument(_msg(path, "no such file")) from None
    except OSError as e:
        raise InvalidArgument(_msg(path, e.strerror or str(e))) from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise InvalidArgument(_msg(path, f"invalid JSON: {e}")) from None
    if not isinstance(data, dict):
        raise InvalidArgument(_msg(path, "the file must hold a JSON object"))
    unknown = sorted(k for k in data if k not in KEYS)
    if unknown:
        raise InvalidArgument(_msg(path, "the following directives don't match any configuration option: "
                                   + ", ".join(unknown)))
    out = {}
    for key, value in data.items():
        dest, types = KEYS[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            want = " or ".join(dict.fromkeys("boolean" if t is bool else "array" if t is list else
                                             "number" if t in (int, float) else "string" for t in types))
            raise InvalidArgument(_msg(path, f"{key}: a {want} is needed, not {json.dumps(value)}"))
        if key == "hosts" and not all(isinstance(h, str) for h in value):
            raise InvalidArgument(_msg(path, "hosts: an array of strings is needed"))
        out[dest] = value
    return out


def merge(path: str, from_file: dict, given: dict, namespace) -> None:
    """Set each of *from_file*'s settings on the argparse *namespace*; *given* holds the flags
    given on the command line (``{destination: value}``). Raises InvalidArgument for a setting
    given both ways."""
    both = [k for k in KEYS if KEYS[k][0] in from_file and KEYS[k][0] in given]
    if both:
        raise InvalidArgument(_msg(path, "the following directives are specified both as a flag and in the "
                                   "configuration file: " + ", ".join(
                                       f"{k}: (from flag: {_show(given[KEYS[k][0]])}, from file: "
                                       f"{_show(from_file[KEYS[k][0]])})" for k in both)))
    for dest, value in from_file.items():
        setattr(namespace, dest, value)


def _show(v) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


def _msg(path: str, what: str) -> str:
    return f"unable to configure the daemon with file {path}: {what}"
