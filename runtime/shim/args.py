"""``capsize-shim``'s arguments: ``<verb> --opt value | --opt=value ...`` (see :mod:`runtime.shim.cli`).

:func:`parse` checks them and returns ``(verb, options)``; InvalidArgument (exit 2) with the
usage line otherwise. Shared by the dispatcher's verbs and by ``serve``; standard library only.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument
from runtime.shim import paths

#: The verbs that take ``--id``/``--bundle`` options (``template`` takes none: see the dispatcher).
ACTIONS = ("start", "delete", "serve")
OPTIONS = ("id", "namespace", "bundle", "address", "runtime", "runtime-root", "socket-dir", "spawn")
USAGE = ("usage: capsize-shim start|delete --id ID [--namespace NS] --bundle DIR "
         "[--address RUNTIME_ADDRESS] [--runtime BIN] [--runtime-root DIR] [--socket-dir DIR] "
         "[--spawn template|exec]")


def parse(argv: list[str]) -> tuple[str, dict]:
    """``[action, --opt value | --opt=value ...]`` -> (action, options); raises InvalidArgument."""
    if not argv or argv[0] not in ACTIONS:
        raise InvalidArgument(USAGE)
    action, opts, i = argv[0], {}, 1
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or key not in OPTIONS:
            raise InvalidArgument(f"unknown argument {arg!r}; {USAGE}")
        if not eq:
            if i + 1 >= len(argv):
                raise InvalidArgument(f"{arg} needs a value")
            i += 1
            value = argv[i]
        opts[key] = value
        i += 1
    for key in ("id", "bundle"):
        if not opts.get(key):
            raise InvalidArgument(f"--{key} is required; {USAGE}")
    opts.setdefault("namespace", "default")
    paths.check_id(opts["id"], "id")
    paths.check_id(opts["namespace"], "namespace")
    opts["bundle"] = os.path.abspath(opts["bundle"])
    return action, opts
