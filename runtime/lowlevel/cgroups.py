"""A container's cgroup for capsize-runc, on cgroup v1 and v2 alike (detected at run time).

Layouts (kernel Documentation/admin-guide/cgroup-v1 and cgroup-v2):

* **v2** — the cgroup root (``/sys/fs/cgroup``, or ``$CAPSIZE_CGROUP_ROOT``) is itself a cgroup2
  mount: one hierarchy, the container is one directory in it.
* **v1** — anything else with v1 hierarchies: one hierarchy per mount (``cpu``, ``memory``,
  co-mounted ``cpu,cpuacct``, named ``name=systemd``), found in ``/proc/self/mountinfo``. A
  *hybrid* host (v1 controllers plus a controller-less cgroup2 at ``<root>/unified``) is v1; as
  runc 1.1 does, the container is also put in that unified hierarchy (state key ``""``), so
  ``/proc/<pid>/cgroup`` shows the container's path on every line. Hierarchies that are not
  writable (read-only mounts) are skipped.

Paths follow the OCI runtime spec (config-linux.md "Cgroups path") as runc reads them: an
absolute ``linux.cgroupsPath`` is relative to each hierarchy's root (``/capsize/abc`` ->
``/sys/fs/cgroup/memory/capsize/abc``); a relative one is relative to the calling process's own
cgroup in each hierarchy (``/proc/self/cgroup``); none means capsize's default
``/capsize/<id>`` (DESIGN.md "On-disk layout"). The systemd driver's ``slice:prefix:name`` form
is refused.

Every mkdir, rmdir and write goes through a ``host`` (:mod:`runtime.host`); reads are plain
file reads. Discovery reads ``/proc/self/mountinfo`` once per process (per cgroup root).
Errors are the shared classes of :mod:`runtime.errors`, each with a one-line message.

Imported by capsize-runc on every invocation: standard library only, no subprocesses.
"""

from __future__ import annotations

import errno
import os
import time

from runtime import mountinfo
from runtime.errors import (CapsizeError, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                            NotFound, PermissionDenied)
from runtime.host import HOST

#: Default cgroup filesystem root; ``$CAPSIZE_CGROUP_ROOT`` overrides it (tests point it at a
#: private cgroup2 mount to exercise the v2 code on a v1 host).
DEFAULT_ROOT = "/sys/fs/cgroup"
ROOT_ENV = "CAPSIZE_CGROUP_ROOT"
#: capsize's parent cgroup for containers without ``linux.cgroupsPath`` (DESIGN.md).
DEFAULT_PARENT = "/capsize"

#: cgroup v1 superblock options that are not subsystem names (kernel cgroup1_parse_param).
_NOT_SUBSYSTEMS = {"rw", "ro", "none", "all", "noprefix", "clone_children", "cpuset_v2_mode",
                   "xattr", "favordynmods"}
#: Tries of create() when a concurrent destroy() prunes the shared parent under it.
_CREATE_TRIES = 5


# -- discovery ----------------------------------------------------------------------------------

class _Mount:
    """One cgroup hierarchy as mounted: *key* is the subsystem option string ("" for cgroup2)."""

    __slots__ = ("key", "version", "mountpoint", "root")

    def __init__(self, key: str, version: int, mountpoint: str, root: str):
        self.key, self.version, self.mountpoint, self.root = key, version, mountpoint, root


class _Discovery:
    __slots__ = ("layout", "root", "mounts")

    def __init__(self, layout: str, root: str, mounts: list[_Mount]):
        self.layout, self.root, self.mounts = layout, root, mounts


_DISCOVERED: dict[str, _Discovery] = {}
_WARMED = False  # warm_migration_lock ran in this process


def _parse_mountinfo(text: str) -> list[tuple[str, str, str, str, str]]:
    """``(device, root, mountpoint, fstype, superoptions)`` per line of mountinfo *text*
    (:func:`runtime.mountinfo.parse`, escapes undone)."""
    return [(m.device, m.root, m.mount_point, m.fstype, m.super_options) for m in mountinfo.parse(text)]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _discover() -> _Discovery:
    """The layout and writable hierarchies under the cgroup root (cached per root per process)."""
    root = os.path.normpath(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
    found = _DISCOVERED.get(root)
    if found is not None:
        return found
    with open(mountinfo.SELF) as f:
        entries = _parse_mountinfo(f.read())

    on_root = [e for e in entries if e[2] == root]
    if on_root and on_root[-1][3] == "cgroup2":  # the topmost mount at the root is cgroup2
        dev, mroot, mpoint, _, _ = on_root[-1]
        found = _Discovery("v2", root, [_Mount("", 2, mpoint, mroot)])
    else:
        mounts: dict[str, _Mount] = {}  # by device: one entry per hierarchy
        unified = None
        # Mounts under the root first, so a hierarchy bind-mounted elsewhere too is named by its
        # place under the root.
        for dev, mroot, mpoint, fstype, opts in sorted(entries, key=lambda e: not _under(e[2], root)):
            if fstype == "cgroup" and dev not in mounts:
                subsystems = [o for o in opts.split(",")
                              if o not in _NOT_SUBSYSTEMS and not o.startswith("release_agent=")]
                if subsystems and os.access(mpoint, os.W_OK):
                    mounts[dev] = _Mount(",".join(subsystems), 1, mpoint, mroot)
            elif fstype == "cgroup2" and unified is None and _under(mpoint, root) and os.access(mpoint, os.W_OK):
                unified = _Mount("", 2, mpoint, mroot)
        if not mounts:
            raise FailedPrecondition(f"no writable cgroup filesystem found under {root} "
                                     f"(neither a cgroup2 mount at {root} nor cgroup v1 hierarchies)")
        ordered = sorted(mounts.values(), key=lambda m: m.mountpoint)
        found = _Discovery("v1", root, ordered + ([unified] if unified else []))
    _DISCOVERED[root] = found
    return found


def layout() -> str:
    """``"v2"`` when the cgroup root is a cgroup2 mount (unified), else ``"v1"`` (legacy or hybrid).

    Raises FailedPrecondition when no writable cgroup filesystem is mounted.
    """
    return _discover().layout


def _own_cgroups() -> dict[str, str]:
    """The calling process's cgroup per hierarchy, from /proc/self/cgroup (cgroups(7)).

    Keys are the subsystem strings as sorted sets joined by "," (``"cpu,cpuacct"``,
    ``"name=systemd"``), and ``""`` for the unified (v2) hierarchy.
    """
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            key = "" if hid == "0" and not controllers else ",".join(sorted(controllers.split(",")))
            own[key] = path
    return own


def warm_migration_lock() -> None:
    """Start the kernel's cgroup migration lock on a helper thread, so its cost overlaps set-up.

    Every write to ``cgroup.procs`` takes the kernel's ``cgroup_threadgroup_rwsem`` for writing;
    when no migration happened in the last RCU grace period, taking it first waits for a full
    grace period (``rcu_sync_enter``; about 10-20 ms measured on this kind of machine, runc pays
    it too). A thread writes ``0`` (the writer itself, cgroups(7)) to the ``cgroup.procs`` of
    the caller's *own* cgroup in the first hierarchy, a move that changes nothing; while it
    waits the caller goes on building the container, and the real move of the init a few
    milliseconds later finds the lock's fast path already switched. The write releases the GIL.
    Any failure (no cgroup filesystem, a read-only or foreign hierarchy) only loses the
    overlap; nothing is raised. Once per process.
    """
    global _WARMED
    if _WARMED:
        return
    _WARMED = True
    try:
        found = _discover()
        m = found.mounts[0]
        own = _own_cgroups()
        key = "" if m.version == 2 else ",".join(sorted(m.key.split(",")))
        path = own.get(key)
        if path is None or not _under(path, m.root):
            return
        rel = os.path.relpath(path, m.root)
        procs = os.path.normpath(os.path.join(m.mountpoint, rel, "cgroup.procs"))
    except (OSError, CapsizeError, IndexError, ValueError):
        return

    def _write_self() -> None:
        try:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass

    import _thread
    _thread.start_new_thread(_write_self, ())


def _check_path(path: str) -> str:
    """Normalise a cgroups path; refuse ones that leave the hierarchy or name its root."""
    if "\0" in path:
        raise InvalidArgument("invalid linux.cgroupsPath: contains a NUL byte", field="linux.cgroupsPath")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"invalid linux.cgroupsPath {path!r}: '..' is not allowed", field="linux.cgroupsPath")
    if not parts:
        raise InvalidArgument(f"invalid linux.cgroupsPath {path!r}: it names the root cgroup",
                              field="linux.cgroupsPath")
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def _is_systemd_form(path: str) -> bool:
    """runc's systemd driver form ``slice:prefix:name`` (e.g. ``system.slice:docker:abc``)."""
    return not path.startswith("/") and path.count(":") == 2


# -- the cgroup ---------------------------------------------------------------------------------

class _Hierarchy:
    """The container's directory *dir* in the hierarchy *key* mounted at *mountpoint*."""

    __slots__ = ("key", "mountpoint", "dir")

    def __init__(self, key: str, mountpoint: str, dir: str):  # noqa: A002 - the field-standard name
        self.key, self.mountpoint, self.dir = key, mountpoint, dir

    def has(self, controller: str) -> bool:
        return controller in self.key.split(",")


def read_file(path: str) -> str | None:
    """A cgroup (or proc) file's text, None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _os_error(err: OSError, what: str, field: str | None = None) -> CapsizeError:
    """Map an OSError of a cgroup operation to the shared error classes, as one line."""
    msg = f"{what}: {err.strerror or err}"
    extra = {"field": field} if field else {}
    if err.errno in (errno.EINVAL, errno.ERANGE, errno.EOVERFLOW) and field:
        return InvalidArgument(f"invalid {field}: the kernel refused it ({msg})", **extra)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(msg, **extra)
    if err.errno in (errno.ENOENT, errno.EBUSY, errno.ENOSPC, errno.EOPNOTSUPP, errno.ENOTEMPTY):
        return FailedPrecondition(msg, **extra)
    if err.errno == errno.ESRCH:
        return NotFound(msg, **extra)
    return CapsizeError(msg, **extra)


class Cgroup:
    """A container's cgroup: one directory per hierarchy (v1) or one directory (v2).

    Attributes: ``layout`` ("v1"/"v2"), ``path`` (the cgroups path as resolved, e.g.
    ``/capsize/abc``), ``dirs`` ({hierarchy key: directory}; keys are subsystem strings such as
    ``"memory"``, ``"cpu,cpuacct"``, ``"name=systemd"``, and ``""`` for a cgroup2 hierarchy), and
    ``notes`` (what was deliberately not enforced, e.g. device rules on v2, for the caller to log).
    Build one with :meth:`for_container` or :meth:`from_state`.
    """

    def __init__(self, layout: str, path: str, hierarchies: list[_Hierarchy], prune: list[str] | None = None,
                 notes: list[str] | None = None, host=HOST):
        self.layout = layout
        self.path = path
        self._hier = hierarchies
        self._prune = list(prune or [])  # capsize-owned parent dirs removed by destroy() when empty
        self.notes = list(notes or [])
        self.host = host

    def __repr__(self) -> str:
        return f"Cgroup({self.layout}, {self.path!r})"

    @property
    def dirs(self) -> dict[str, str]:
        return {h.key: h.dir for h in self._hier}

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def for_container(cls, container_id: str, cgroups_path: str | None, host=HOST) -> "Cgroup":
        """The cgroup for *container_id* at OCI ``linux.cgroupsPath`` *cgroups_path*.

        Absolute paths are relative to each hierarchy's root; relative ones to the caller's own
        cgroup (as runc); None or "" give ``/capsize/<id>``, whose ``/capsize`` parent
        :meth:`destroy` also removes once empty. Nothing is created yet (see :meth:`create`).
        Raises InvalidArgument for a systemd-driver path ("slice:prefix:name"), a path with
        ``..`` or naming the root, or a bad id; FailedPrecondition when no cgroupfs is mounted.
        """
        found = _discover()
        prune_rel = None
        if not cgroups_path:
            if (not isinstance(container_id, str) or not container_id or "/" in container_id
                    or container_id in (".", "..") or "\0" in container_id):
                raise InvalidArgument(f"invalid container id {container_id!r} for a cgroup path", field="id")
            path, prune_rel = f"{DEFAULT_PARENT}/{container_id}", DEFAULT_PARENT
        elif not isinstance(cgroups_path, str):
            raise InvalidArgument(f"invalid linux.cgroupsPath: must be a string, not {cgroups_path!r}",
                                  field="linux.cgroupsPath")
        elif _is_systemd_form(cgroups_path):
            raise InvalidArgument(f"invalid linux.cgroupsPath {cgroups_path!r}: systemd cgroup driver is not "
                                  f"supported (use a path such as /capsize/<id>)", field="linux.cgroupsPath")
        else:
            path = _check_path(cgroups_path)

        own = None if path.startswith("/") else _own_cgroups()
        hierarchies, prune = [], []
        for m in found.mounts:
            if own is None:
                base = m.mountpoint
            else:
                key = ",".join(sorted(m.key.split(","))) if m.key else ""
                mine = own.get(key)
                if mine is None or not _under(mine, m.root):
                    raise FailedPrecondition(f"cannot resolve the relative linux.cgroupsPath {path!r}: the own "
                                             f"cgroup in hierarchy {m.key or 'unified'} is not visible at "
                                             f"{m.mountpoint}", field="linux.cgroupsPath")
                base = os.path.join(m.mountpoint, mine[len(m.root.rstrip("/")):].lstrip("/"))
            hierarchies.append(_Hierarchy(m.key, m.mountpoint, os.path.normpath(os.path.join(base, path.lstrip("/")))))
            if prune_rel:
                prune.append(os.path.join(m.mountpoint, prune_rel.lstrip("/")))
        return cls(found.layout, path, hierarchies, prune, host=host)

    @classmethod
    def from_state(cls, d: dict, host=HOST) -> "Cgroup":
        """Rebuild a Cgroup from :meth:`to_state`'s dict (no discovery: it names its dirs).

        Raises InvalidArgument when *d* is not such a dict.
        """
        try:
            lay, path, dirs, mounts = d["layout"], d["path"], d["dirs"], d["mounts"]
            ok = (lay in ("v1", "v2") and isinstance(path, str) and isinstance(dirs, dict) and dirs
                  and isinstance(mounts, dict) and set(mounts) == set(dirs)
                  and all(isinstance(v, str) and v.startswith("/") for v in (*dirs.values(), *mounts.values())))
            prune = d.get("prune", [])
            notes = d.get("notes", [])
            ok = ok and isinstance(prune, list) and isinstance(notes, list)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise InvalidArgument(f"invalid cgroup state: {str(d)[:200]}")
        hier = [_Hierarchy(k, mounts[k], v) for k, v in dirs.items()]
        return cls(lay, path, hier, prune, notes, host=host)

    def to_state(self) -> dict:
        """JSON-able state: ``{"layout", "path", "dirs": {key: dir}, "mounts": {key: mountpoint},
        "prune": [dirs], "notes": [str]}``; :meth:`from_state` is its inverse."""
        return {"layout": self.layout, "path": self.path, "dirs": self.dirs,
                "mounts": {h.key: h.mountpoint for h in self._hier}, "prune": list(self._prune),
                "notes": list(self.notes)}

    def hierarchies(self) -> list[tuple[str, str, str]]:
        """``(subsystems, host mountpoint, container dir)`` per hierarchy, for OCI mounts of type
        "cgroup" inside the container. v1: the cgroup v1 hierarchies only (as runc 1.1 mounts
        them; subsystems like ``"cpu"``, ``"cpu,cpuacct"``, ``"name=systemd"``); v2:
        ``[("", mountpoint, dir)]``."""
        if self.layout == "v2":
            return [(h.key, h.mountpoint, h.dir) for h in self._hier]
        return [(h.key, h.mountpoint, h.dir) for h in self._hier if h.key]

    # -- helpers -----------------------------------------------------------------------------
    def _controller_dir(self, controller: str) -> str | None:
        if self.layout == "v2":
            return self._hier[0].dir
        for h in self._hier:
            if h.key and h.has(controller):
                return h.dir
        return None

    def _write(self, path: str, value: str, what: str, field: str | None = None) -> None:
        try:
            self.host.write(path, value)
        except OSError as e:
            raise _os_error(e, f"{what}: writing {value!r} to {path}", field) from None

    def _levels(self, h: _Hierarchy) -> list[str]:
        """Directories from the hierarchy's mountpoint (exclusive) down to the container's dir."""
        rel = os.path.relpath(h.dir, h.mountpoint)
        levels, cur = [], h.mountpoint
        for part in rel.split("/"):
            cur = os.path.join(cur, part)
            levels.append(cur)
        return levels

    # -- lifecycle ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """True when the container's directory exists in any hierarchy."""
        return any(os.path.isdir(h.dir) for h in self._hier)

    def create(self) -> None:
        """mkdir the container's directory (and missing parents) in every hierarchy.

        v1: in the cpuset hierarchy, each new level gets ``cpuset.cpus``/``cpuset.mems`` copied
        from its parent when empty (runc's cpusetEnsureParent), or tasks could not join it.
        v2: every available controller is enabled in each ancestor's ``cgroup.subtree_control``
        (as runc's fs2 CreateCgroupPath); one that cannot be (e.g. a parent with processes) is
        skipped with a note, and :meth:`apply` reports it if a limit needs it.
        Existing directories are fine. On failure the directories this call made are removed and
        PermissionDenied / FailedPrecondition / CapsizeError is raised.
        """
        made: list[str] = []
        try:
            for h in self._hier:
                for attempt in range(_CREATE_TRIES):
                    try:
                        self._create_one(h, made)
                        break
                    except FileNotFoundError:
                        # A concurrent destroy() pruned a shared parent between two mkdirs: again.
                        if attempt == _CREATE_TRIES - 1:
                            raise
        except OSError as e:
            self._rollback(made)
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            raise _os_error(e, f"cannot create cgroup {self.path}{where}") from None
        except CapsizeError:
            self._rollback(made)
            raise

    def _create_one(self, h: _Hierarchy, made: list[str]) -> None:
        levels = self._levels(h)
        if self.layout == "v2":
            self._enable_controllers(h.mountpoint)
        for i, level in enumerate(levels):
            if not os.path.isdir(level):
                self.host.mkdir(level)
                made.append(level)
            if h.has("cpuset"):
                self._cpuset_copy(level)
            if self.layout == "v2" and i < len(levels) - 1:
                self._enable_controllers(level)

    def _cpuset_copy(self, level: str) -> None:
        parent = os.path.dirname(level)
        for name in ("cpuset.cpus", "cpuset.mems"):
            mine = (read_file(os.path.join(level, name)) or "").strip()
            theirs = (read_file(os.path.join(parent, name)) or "").strip()
            if not mine and theirs:
                self._write(os.path.join(level, name), theirs, f"cannot create cgroup {self.path}")

    def _enable_controllers(self, d: str) -> None:
        available = (read_file(os.path.join(d, "cgroup.controllers")) or "").split()
        enabled = set((read_file(os.path.join(d, "cgroup.subtree_control")) or "").split())
        missing = [c for c in available if c not in enabled]
        if not missing:
            return
        path = os.path.join(d, "cgroup.subtree_control")
        try:
            self.host.write(path, " ".join("+" + c for c in missing))
            return
        except OSError:
            pass
        for c in missing:  # one at a time, to enable what can be
            try:
                self.host.write(path, "+" + c)
            except OSError as e:
                self.notes.append(f"cannot enable the {c} controller in {path}: {e.strerror}")

    def _rollback(self, made: list[str]) -> None:
        for d in reversed(made):
            try:
                self.host.rmdir(d)
            except OSError:
                pass

    def apply(self, resources: dict) -> None:
        """Apply OCI ``linux.resources`` (config-linux.md "Control groups") to the cgroup.

        Fields, units and files: see :mod:`runtime.lowlevel.cgroup_resources`. The whole object is
        validated before anything is written. Raises InvalidArgument naming the field for an
        unknown field or bad value (also when the kernel refuses a value), Unimplemented for
        fields capsize-runc does not enforce, FailedPrecondition when the cgroup was not created
        or a needed controller is missing. v2 device rules that are the defaults are accepted
        and recorded in :attr:`notes` as not enforced.
        """
        from runtime.lowlevel import cgroup_resources as cr

        res = cr.validate(resources)
        for h in self._hier:
            if not os.path.isdir(h.dir):
                raise FailedPrecondition(f"cannot apply linux.resources: cgroup {h.dir} does not exist "
                                         f"(create it first)")
        if self.layout == "v2":
            writes, notes = cr.plan_v2(res, self._hier[0].dir)
        else:
            dirs = {}
            for h in self._hier:
                for c in h.key.split(","):
                    if c:
                        dirs.setdefault(c, h.dir)
            writes, notes = cr.plan_v1(res, dirs)
        for w in writes:
            self._write(w.path, w.value, f"cannot set {w.field}", w.field)
        for n in notes:
            if n not in self.notes:
                self.notes.append(n)

    def add(self, pid: int) -> None:
        """Move process *pid* (its whole thread group) into the cgroup: cgroup.procs in every hierarchy.

        Raises NotFound when the process does not exist, FailedPrecondition when the cgroup
        does not exist.
        """
        for h in self._hier:
            try:
                self.host.write(os.path.join(h.dir, "cgroup.procs"), str(pid))
            except OSError as e:
                if e.errno == errno.ESRCH:
                    raise NotFound(f"cannot add process {pid} to cgroup {self.path}: no such process") from None
                if e.errno == errno.ENOENT and not os.path.isdir(h.dir):
                    raise FailedPrecondition(f"cannot add process {pid} to cgroup {self.path}: "
                                             f"{h.dir} does not exist") from None
                raise _os_error(e, f"cannot add process {pid} to cgroup {h.dir}") from None

    def add_to_sub(self, pid: int, specs: list[str]) -> None:
        """Move *pid* into sub-cgroups of the container's cgroup, as ``runc exec --cgroup``: each
        spec is ``PATH`` (every hierarchy; then the only spec) or ``CONTROLLER[,CONTROLLER]:PATH``,
        PATH relative to the container's cgroup; hierarchies not named keep the container's own.

        Raises InvalidArgument ("invalid --cgroup argument", "PATH is not a sub cgroup path",
        "unknown controller X") and FailedPrecondition for a sub-cgroup that does not exist
        ("adding pid N to cgroups: DIR/cgroup.procs: no such file or directory")."""
        subs: dict[str, str] = {}
        for spec in specs:
            parts = spec.split(":")
            if len(parts) > 2:
                raise InvalidArgument(f"invalid --cgroup argument: {spec}")
            if len(parts) == 1:
                if len(specs) != 1:
                    raise InvalidArgument(f"invalid --cgroup argument: {spec} (missing <controller>: prefix)")
                subs[""] = spec
            else:
                for ctrl in parts[0].split(","):
                    subs[ctrl] = parts[1]
        targets = {id(h): h.dir for h in self._hier}
        for ctrl, sub in subs.items():
            if ctrl and self.layout != "v2":
                chosen = [h for h in self._hier if h.has(ctrl)]
                if not chosen:
                    raise InvalidArgument(f"unknown controller {ctrl}")
            else:
                chosen = self._hier
            for h in chosen:
                path = os.path.normpath(os.path.join(h.dir, sub.lstrip("/")))
                if path != h.dir and not path.startswith(h.dir + "/"):
                    raise InvalidArgument(f"{sub} is not a sub cgroup path")
                targets[id(h)] = path
        for h in self._hier:
            procs = os.path.join(targets[id(h)], "cgroup.procs")
            try:
                self.host.write(procs, str(pid))
            except OSError as e:
                raise FailedPrecondition(f"adding pid {pid} to cgroups: {procs}: {os.strerror(e.errno).lower()}") \
                    from None

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups, in any hierarchy, sorted (pids as seen
        from the caller's pid namespace)."""
        found: set[int] = set()
        for h in self._hier:
            for dirpath, _, _ in os.walk(h.dir):
                text = read_file(os.path.join(dirpath, "cgroup.procs"))
                if text:
                    found.update(int(p) for p in text.split())
        return sorted(found)

    # -- freezer -----------------------------------------------------------------------------
    def _freezer(self) -> tuple[str, str, str, str]:
        """``(control file, frozen value, thawed value, state file)`` for this layout."""
        if self.layout == "v2":
            d = self._hier[0].dir
            return os.path.join(d, "cgroup.freeze"), "1", "0", os.path.join(d, "cgroup.events")
        d = self._controller_dir("freezer")
        if d is None:
            raise FailedPrecondition(f"cannot freeze cgroup {self.path}: the freezer cgroup controller "
                                     f"is not available on this host")
        return os.path.join(d, "freezer.state"), "FROZEN", "THAWED", os.path.join(d, "freezer.state")

    def frozen(self) -> bool:
        """True when the kernel reports the cgroup frozen (v1 freezer.state FROZEN, v2
        cgroup.events ``frozen 1``); False when it is not, or does not exist."""
        try:
            _, _, _, state = self._freezer()
        except FailedPrecondition:
            return False
        text = read_file(state) or ""
        if self.layout == "v2":
            return "frozen 1" in text.splitlines()
        return text.strip() == "FROZEN"

    def freeze(self, timeout: float = 5.0) -> None:
        """Freeze every process (v1 freezer.state, v2 cgroup.freeze) and wait until the kernel
        reports the cgroup FROZEN, up to *timeout* seconds; then it thaws it again and raises
        DeadlineExceeded. FailedPrecondition when there is no freezer or no such cgroup."""
        control, on, off, _ = self._freezer()
        if not os.path.exists(control):
            raise FailedPrecondition(f"cannot freeze cgroup {self.path}: {control} does not exist")
        self._write(control, on, f"cannot freeze cgroup {self.path}")
        deadline = time.monotonic() + timeout
        delay, kick = 0.001, time.monotonic() + 0.25
        while not self.frozen():
            now = time.monotonic()
            if now > deadline:
                self._write(control, off, f"cannot thaw cgroup {self.path}")
                raise DeadlineExceeded(f"cgroup {self.path} did not freeze within {timeout:g}s")
            if self.layout == "v1" and now > kick:
                # runc's v1 freeze loop: a FREEZING cgroup that raced with a fork may need a kick.
                self._write(control, off, f"cannot freeze cgroup {self.path}")
                self._write(control, on, f"cannot freeze cgroup {self.path}")
                kick = now + 0.25
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def thaw(self, timeout: float = 5.0) -> None:
        """Let the processes run again (v1 THAWED, v2 cgroup.freeze 0), waiting up to *timeout*
        seconds for the kernel to report it thawed (else DeadlineExceeded)."""
        control, _, off, _ = self._freezer()
        self._write(control, off, f"cannot thaw cgroup {self.path}")
        deadline = time.monotonic() + timeout
        while self.frozen():
            if time.monotonic() > deadline:
                raise DeadlineExceeded(f"cgroup {self.path} did not thaw within {timeout:g}s")
            time.sleep(0.002)

    def kill_all(self, sig: int) -> None:
        """Send *sig* to every process in the cgroup, with no window for forks to escape.

        v2 with SIGKILL and ``cgroup.kill`` (Linux 5.14+): one write of "1". Otherwise as runc's
        signalAllProcesses: freeze, signal each pid, thaw — except that a cgroup frozen before
        (a paused container) is left frozen for any signal but SIGKILL. A frozen task does not
        die of SIGKILL until it is thawed (cgroup v1 freezer), so after SIGKILL the cgroup is
        thawed, as runc 1.1 does; otherwise ``delete --force`` of a paused container would wait
        for ever. Without a freezer the pids are signalled directly. Processes that exit
        meanwhile are fine.
        """
        import signal as _signal

        if self.layout == "v2" and sig == _signal.SIGKILL:
            kill = os.path.join(self._hier[0].dir, "cgroup.kill")
            if os.path.exists(kill):
                self._write(kill, "1", f"cannot kill the processes of cgroup {self.path}")
                return
        was_frozen = self.frozen()
        froze = False
        if not was_frozen:
            try:
                self.freeze()
                froze = True
            except CapsizeError:
                pass  # signal anyway, as runc does
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if froze or (was_frozen and sig == _signal.SIGKILL):
                self.thaw()

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the cgroup (sub-cgroups first) in every hierarchy, and capsize's default parent
        when it is left empty. Missing directories are fine.

        Waits up to *timeout* seconds for exiting processes to leave, and retries rmdir while
        the kernel says EBUSY. If processes remain, raises FailedPrecondition before removing
        anything (so nothing is half-done); if a directory still cannot be removed at the
        deadline, FailedPrecondition names it.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left:
                break
            if time.monotonic() > deadline:
                shown = " ".join(map(str, left[:10])) + (" ..." if len(left) > 10 else "")
                raise FailedPrecondition(f"cannot destroy cgroup {self.path}: {len(left)} process(es) "
                                         f"still in it (pids {shown}); kill them first")
            time.sleep(0.01)
        failed = []
        for h in self._hier:
            dirs = [dirpath for dirpath, _, _ in os.walk(h.dir, topdown=False)]
            for d in dirs:
                while True:
                    try:
                        self.host.rmdir(d)
                        break
                    except OSError as e:
                        if e.errno == errno.EBUSY and time.monotonic() < deadline:
                            time.sleep(0.01)
                            continue
                        failed.append(f"{d} ({e.strerror})")
                        break
        if failed:
            raise FailedPrecondition(f"cannot destroy cgroup {self.path}: cannot remove {', '.join(failed)}")
        for d in self._prune:
            try:
                self.host.rmdir(d)  # only succeeds once no other container uses the parent
            except OSError:
                pass

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended in the cgroup (v1 ``memory.oom_control``
        oom_kill, Linux 4.13+; v2 ``memory.events`` oom_kill). 0 when there is no memory
        controller or the cgroup is gone."""
        if self.layout == "v2":
            path = os.path.join(self._hier[0].dir, "memory.events")
        else:
            d = self._controller_dir("memory")
            if d is None:
                return 0
            path = os.path.join(d, "memory.oom_control")
        for line in (read_file(path) or "").splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0
