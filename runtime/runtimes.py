"""Where the low-level OCI runtimes (and capsize's own commands) are: one resolver for every tier.

Every runtime path returned here accepts the runc command line (global ``--root R --log L
--log-format json``, then ``create --bundle B --pid-file P ID``, ``start``, ``state``, ``kill``,
``delete``), so capsize-shim, containerd-shim-runc-v2 (``BinaryName``) and dockerd (daemon.json
``runtimes``) can use any of them.

* ``capsize-runc`` — capsize's own runtime: the console script next to ``sys.executable`` (the
  venv's bin), else on PATH (:func:`capsize_command`, which also finds ``capsize-shim``...).
* ``runc`` — Debian's runc (PATH, then the system bin dirs: root's PATH may lack /usr/sbin).
* ``crun`` — Debian's crun. crun 1.8 refuses the *hybrid* cgroup layout (v1 controllers plus a
  controller-less cgroup2 at ``/sys/fs/cgroup/unified``): ``cgroups in hybrid mode not
  supported, drop all controllers from cgroupv2``. On such a host (:func:`cgroup_layout`) the
  path returned is the wrapper :data:`CRUN_HYBRID` shipped next to this module, which runs crun
  in a private mount namespace with the cgroup2 mount unmounted (a pure v1 view; the host is
  untouched). On pure v1 or v2 hosts it is plain crun.

:func:`runtime_path` resolves one of :data:`NAMES` (with an install hint when missing);
:func:`resolve` resolves what a user or a container config names (one of those, another name,
or a path), as capsize-runtimed and capsize-shim do. Errors: :class:`~runtime.errors.NotFound`
(field ``runtime``) for an unknown name or a missing binary.

Standard library only, no ``shutil``: the shim's ``start`` imports this module.
"""

from __future__ import annotations

import os
import sys

from runtime.errors import NotFound

NAMES = ("runc", "crun", "capsize-runc")
#: The runtime a container gets when it names none.
DEFAULT = "capsize-runc"
#: Environment of a runtime invocation: the caller's pid. capsize-runc then dies with it
#: (prctl(2) ``PR_SET_PDEATHSIG`` SIGKILL, and at once if it is already re-parented), as
#: containerd-shim-runc-v2 runs runc (go-runc ``PdeathSignal: SIGKILL``): a ``create`` whose shim
#: was SIGKILLed must not finish after the clean-up of that shim, leaving a container nobody owns.
PARENT_ENV = "CAPSIZE_RUNC_PARENT"

#: The wrapper that gives crun a pure cgroup-v1 view on a hybrid host.
CRUN_HYBRID = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crun-hybrid")

#: Searched after PATH: root's PATH (sudo's secure_path, a service's) may lack the sbin dirs.
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def which(name: str) -> str | None:
    """*name* on PATH, then in :data:`SYSTEM_DIRS`; the first executable file's path, or None."""
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep) + list(SYSTEM_DIRS)
    for d in dirs:
        if d:
            path = os.path.join(d, name)
            if _executable(path):
                return path
    return None


def capsize_command(name: str) -> str | None:
    """A capsize console script (``capsize-runc``, ``capsize-shim``...): next to this Python's
    executable (the venv's bin) first, else :func:`which`; None when neither has it."""
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    return sibling if _executable(sibling) else which(name)


def cgroup_layout(mountinfo_path: str = "/proc/self/mountinfo") -> str:
    """The host's cgroup layout, as seen in this mount namespace.

    Returns ``"v2"`` (``/sys/fs/cgroup`` is cgroup2: unified), ``"hybrid"`` (v1 controllers and a
    cgroup2 mount below ``/sys/fs/cgroup``, systemd's "hybrid" mode), ``"v1"`` (legacy: v1
    only) or ``"none"`` (no cgroup filesystem mounted). OSError if *mountinfo_path* is unreadable.
    """
    from runtime import mountinfo
    v1 = v2_root = v2_below = False
    for m in mountinfo.read(mountinfo_path):
        point = m.mount_point
        if not (point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/")):
            continue
        if m.fstype == "cgroup2":
            if point == "/sys/fs/cgroup":
                v2_root = True
            else:
                v2_below = True
        elif m.fstype == "cgroup":
            v1 = True
    if v2_root:
        return "v2"
    if v1 and v2_below:
        return "hybrid"
    if v1:
        return "v1"
    return "v2" if v2_below else "none"


def _crun() -> str | None:
    path = which("crun")
    if path and cgroup_layout() == "hybrid":
        if not which("unshare"):
            raise NotFound("crun needs unshare(1) on this hybrid-cgroup host: install util-linux",
                           field="runtime")
        if not _executable(CRUN_HYBRID):
            raise NotFound(f"the crun wrapper {CRUN_HYBRID} is missing or not executable", field="runtime")
        return CRUN_HYBRID
    return path


def runtime_path(name: str) -> str:
    """Absolute path of the runtime binary *name* (one of :data:`NAMES`), ready for a shim.

    For ``crun`` on a hybrid host this is :data:`CRUN_HYBRID` (after checking that crun and
    unshare(1) exist). Raises NotFound for an unknown *name* or a binary that is not installed
    (with how to install it).
    """
    if name == "runc":
        path = which("runc")
    elif name == "crun":
        path = _crun()
    elif name == "capsize-runc":
        path = capsize_command("capsize-runc")
    else:
        raise NotFound(f"unknown runtime {name!r}: one of {', '.join(NAMES)}", field="runtime")
    if not path:
        hint = "install capsize (pip install -e .)" if name == "capsize-runc" else \
            f"install Debian's {name} (scripts/setup.sh does)"
        raise NotFound(f"runtime {name} not found: {hint}", field="runtime")
    return os.path.abspath(path)


def available(name: str) -> bool:
    """True when :func:`runtime_path` finds *name*; never raises."""
    try:
        runtime_path(name)
    except NotFound:
        return False
    return True


def resolve(name: str | None) -> str:
    """The binary for a runtime named by a user or a container config: *name* (default
    :data:`DEFAULT`) is a path (relative to the working directory when it has a ``/``), ``crun``
    (hybrid-aware, as :func:`runtime_path`), a capsize command (:func:`capsize_command`) or any
    other name on PATH. Raises NotFound (field ``runtime``) when there is no such executable."""
    name = name or DEFAULT
    if "/" in name:
        if _executable(name):
            return os.path.abspath(name)
        raise NotFound(f"low-level runtime {name} not found or not executable", field="runtime")
    if name == "crun":
        found = _crun()
    elif name.startswith("capsize-"):
        found = capsize_command(name)
    else:
        found = which(name)
    if not found:
        raise NotFound(f"low-level runtime {name!r} not found (next to {sys.executable} or on PATH)",
                       field="runtime")
    return os.path.abspath(found)
