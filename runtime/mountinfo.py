"""``/proc/<pid>/mountinfo`` parsed, with the kernel's octal escapes undone.

Each line (proc(5), Documentation/filesystems/proc.rst "3.5 /proc/<pid>/mountinfo") is::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2) (3)   (4)   (5)      (6)      (7)   (8)  (9)    (10)         (11)

mount ID, parent ID, ``major:minor``, root of the mount within its filesystem, mount point,
per-mount options, zero or more optional fields (``shared:N``, ``master:N``...), a ``-``, the
filesystem type, the mount source and the per-superblock options. In the path-like fields the
kernel escapes space, tab, newline and backslash as ``\\040``, ``\\011``, ``\\012`` and ``\\134``
(``seq_path``/``mangle`` in fs/proc_namespace.c); :func:`unescape` undoes every ``\\NNN`` octal
escape.

* :func:`parse` — text to a list of :class:`Mount`, in mount order; ValueError for a line that is
  not a mountinfo line.
* :func:`read` — the same, from ``/proc/self/mountinfo`` (or another file); OSError if unreadable.
* :func:`points_under` / :func:`is_mount_point` — the common questions.

Standard library only (``os``): capsize-runc and the shim import it.
"""

from __future__ import annotations

import os

SELF = "/proc/self/mountinfo"


class Mount:
    """One mountinfo line; path fields (root, mount_point, source) unescaped."""

    __slots__ = ("mount_id", "parent_id", "device", "root", "mount_point", "options",
                 "optional", "fstype", "source", "super_options")

    def __init__(self, mount_id: int, parent_id: int, device: str, root: str, mount_point: str,
                 options: str, optional: tuple[str, ...], fstype: str, source: str,
                 super_options: str):
        self.mount_id, self.parent_id, self.device = mount_id, parent_id, device
        self.root, self.mount_point, self.options = root, mount_point, options
        self.optional, self.fstype, self.source = optional, fstype, source
        self.super_options = super_options

    def __repr__(self) -> str:
        return (f"Mount({self.mount_id}, {self.device}, root={self.root!r}, "
                f"mount_point={self.mount_point!r}, fstype={self.fstype!r})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Mount) and all(getattr(self, k) == getattr(other, k)
                                                for k in self.__slots__)


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes: ``\\040`` space, ``\\011`` tab, ``\\012`` newline,
    ``\\134`` backslash (any ``\\`` followed by three octal digits); other text is kept as is."""
    if "\\" not in field:
        return field
    out, i, n = [], 0, len(field)
    while i < n:
        c = field[i]
        if c == "\\":
            digits = field[i + 1:i + 4]
            if len(digits) == 3 and all(ch in "01234567" for ch in digits):
                out.append(chr(int(digits, 8)))
                i += 4
                continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_line(line: str) -> Mount:
    """One mountinfo line (without its newline) to a :class:`Mount`; ValueError if malformed."""
    fields = line.split(" ")
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise ValueError(f"not a mountinfo line (no '-' separator after field 6): {line!r}") from None
    if len(fields) < sep + 3:
        raise ValueError(f"not a mountinfo line (fewer than 3 fields after '-'): {line!r}")
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        raise ValueError(f"not a mountinfo line (mount ids are not numbers): {line!r}") from None
    return Mount(mount_id, parent_id, fields[2], unescape(fields[3]), unescape(fields[4]),
                 fields[5], tuple(fields[6:sep]), fields[sep + 1], unescape(fields[sep + 2]),
                 fields[sep + 3] if len(fields) > sep + 3 else "")


def parse(text: str) -> list[Mount]:
    """Every line of mountinfo *text* (empty lines skipped), in order; ValueError naming the
    first malformed line."""
    return [parse_line(line) for line in text.split("\n") if line]


def read(path: str = SELF) -> list[Mount]:
    """:func:`parse` of the file *path* (default: this process's mount namespace)."""
    with open(path) as f:
        return parse(f.read())


def _under(point: str, prefix: str) -> bool:
    return prefix == "/" or point == prefix or point.startswith(prefix + "/")


def points_under(prefix: str, mounts: list[Mount] | None = None) -> list[str]:
    """Mount points at or below *prefix* (normalised; ``/`` means all), in mount order, a point
    mounted twice listed twice. *mounts* defaults to :func:`read`."""
    prefix = os.path.normpath(prefix) if prefix else "/"
    return [m.mount_point for m in (read() if mounts is None else mounts) if _under(m.mount_point, prefix)]


def is_mount_point(path: str, mounts: list[Mount] | None = None) -> bool:
    """True when the real path of *path* is a mount point (in this mount namespace)."""
    real = os.path.realpath(path)
    return any(m.mount_point == real for m in (read() if mounts is None else mounts))
