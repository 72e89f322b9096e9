"""Process identity for undoing faults: the same process (no PID reuse), who traces it.

Standard library and psutil; used by the fault families' undo functions (:mod:`harness.verbs`).
"""

from __future__ import annotations

import psutil


def same_process(pid: int, create_time: float | None) -> bool:
    """True when *pid* exists and (if given) was started at *create_time* (epoch s, psutil's
    ``create_time``, 50 ms of slack): not a reused PID."""
    try:
        p = psutil.Process(pid)
        return create_time is None or abs(p.create_time() - create_time) < 0.05
    except psutil.Error:
        return False


def identify(pids: list[int]) -> list[dict]:
    """``[{"pid", "create_time"}]`` of *pids* (create_time None for one that is gone)."""
    out = []
    for pid in pids:
        try:
            out.append({"pid": pid, "create_time": psutil.Process(pid).create_time()})
        except psutil.Error:
            out.append({"pid": pid, "create_time": None})
    return out


def tracer_of(pid: int) -> int:
    """The ``TracerPid`` of *pid* (proc(5) ``/proc/<pid>/status``; 0 when not traced or gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
