"""Where the low-level OCI runtimes are, as drop-in binaries for a shim or for dockerd.

Every path returned here accepts the runc command line (global ``--root R --log L --log-format
json``, then ``create --bundle B --pid-file P ID``, ``start``, ``state``, ``kill``, ``delete``),
so containerd-shim-runc-v2 (``BinaryName``), dockerd (daemon.json ``runtimes``) and capsize-shim
can use any of them.

* ``runc`` — Debian's runc (PATH, then /usr/sbin, /usr/bin).
* ``crun`` — Debian's crun. crun 1.8 refuses the *hybrid* cgroup layout (v1 controllers plus a
  controller-less cgroup2 at ``/sys/fs/cgroup/unified``): ``cgroups in hybrid mode not
  supported, drop all controllers from cgroupv2``. On such a host the path returned is the
  wrapper ``crun-hybrid`` shipped next to this module, which runs crun in a private mount
  namespace with the cgroup2 mount unmounted (a pure v1 view; the host is untouched). On pure
  v1 or v2 hosts it is plain crun.
* ``capsize-runc`` — capsize's own runtime: the console script next to ``sys.executable`` (the
  venv's bin), else on PATH.

Errors: :class:`~runtime.errors.NotFound` for an unknown name or a missing binary.
"""

from __future__ import annotations

import os
import shutil
import sys

from runtime.errors import NotFound

NAMES = ("runc", "crun", "capsize-runc")

#: The wrapper that gives crun a pure cgroup-v1 view on a hybrid host.
CRUN_HYBRID = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crun-hybrid")

_SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def which(name: str) -> str | None:
    """*name* on PATH or in the usual system bin dirs (root's PATH may lack /usr/sbin), or None."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SYSTEM_DIRS))


def cgroup_layout(mountinfo: str = "/proc/self/mountinfo") -> str:
    """The host's cgroup layout, as seen in this mount namespace.

    Returns ``"v2"`` (``/sys/fs/cgroup`` is cgroup2: unified), ``"hybrid"`` (v1 controllers and a
    cgroup2 mount below ``/sys/fs/cgroup``, systemd's "hybrid" mode), ``"v1"`` (legacy: v1
    only) or ``"none"`` (no cgroup filesystem mounted).
    """
    v1 = v2_root = v2_below = False
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, fstype = fields[4], fields[sep + 1]
            if not (point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/")):
                continue
            if fstype == "cgroup2":
                if point == "/sys/fs/cgroup":
                    v2_root = True
                else:
                    v2_below = True
            elif fstype == "cgroup":
                v1 = True
    if v2_root:
        return "v2"
    if v1 and v2_below:
        return "hybrid"
    if v1:
        return "v1"
    return "v2" if v2_below else "none"


def _capsize_runc() -> str | None:
    sibling = os.path.join(os.path.dirname(sys.executable), "capsize-runc")
    if os.access(sibling, os.X_OK):
        return sibling
    return which("capsize-runc")


def runtime_path(name: str) -> str:
    """Absolute path of the runtime binary *name* (one of :data:`NAMES`), ready for a shim.

    For ``crun`` on a hybrid host this is :data:`CRUN_HYBRID` (after checking that crun and
    unshare(1) exist). Raises NotFound for an unknown *name* or a binary that is not installed.
    """
    if name == "runc":
        path = which("runc")
    elif name == "crun":
        path = which("crun")
        if path and cgroup_layout() == "hybrid":
            if not which("unshare"):
                raise NotFound("crun needs unshare(1) on this hybrid-cgroup host: install util-linux")
            if not os.access(CRUN_HYBRID, os.X_OK):
                raise NotFound(f"the crun wrapper {CRUN_HYBRID} is missing or not executable")
            path = CRUN_HYBRID
    elif name == "capsize-runc":
        path = _capsize_runc()
    else:
        raise NotFound(f"unknown runtime {name!r}: one of {', '.join(NAMES)}")
    if not path:
        hint = "install capsize (pip install -e .)" if name == "capsize-runc" else \
            f"install Debian's {name} (scripts/setup.sh does)"
        raise NotFound(f"runtime {name} not found: {hint}")
    return os.path.abspath(path)


def available(name: str) -> bool:
    """True when :func:`runtime_path` finds *name*; never raises."""
    try:
        runtime_path(name)
    except NotFound:
        return False
    return True
