"""Recovery at start-up: find the shims again, adopt the live ones, clean up after the dead ones.

As containerd's runtime v2 ``loadShims`` does, before the API serves, every task directory
``<state>/runtimed/tasks/<namespace>/<id>/`` is loaded, all at once:

* **no shim was ever started** (a crash during create: no ``address`` file): the rootfs is
  unmounted and the directory removed ("removing half-created task");
* **the shim answers**: the task is *adopted* — its state is read (``created``, ``running``,
  ``paused``, ``stopped``) and the connection kept; an exit the shim recorded while the daemon
  was down, and that was not published yet, is published now as ``/tasks/exit`` with the real
  status (``exit_source: "shim"``). A shim whose task was never created is shut down and its
  directory removed; a task whose container record is gone is killed and removed;
* **the shim is gone** (nothing listens on its socket): "cleaning up after shim disconnected" /
  "cleaning up dead shim" — the shim's ``delete`` action, the rootfs unmounted, ``/tasks/exit``
  (the status from the exit file, 137 labelled ``cleanup-kill`` if the clean-up killed a live init,
  or 255 labelled ``unknown``; see :mod:`runtime.highlevel.tasks`) and
  ``/tasks/delete`` published, the directory removed;
* **the shim does not answer** (stopped, hung): the task stays, with status ``unknown``, and is
  retried every second in the background until the shim answers (adopted) or dies (cleaned up).

The whole load has one timeout (``--load-timeout``): when it runs out, start-up goes on with
whatever is still loading marked ``unknown`` (it finishes in the background), so a hung shim
cannot stall the daemon. Events the shims redeliver meanwhile wait until their task is loaded.
"""

from __future__ import annotations

import asyncio
import os
import time

from runtime.errors import CapsizeError, NotFound, Unavailable
from runtime.highlevel.tasks import Task, _read, read_record
from runtime.shim import paths as shim_paths

#: Seconds one shim has to answer ``state`` during the load.
STATE_TIMEOUT = 2.0
RETRY_INTERVAL = 1.0


def task_dirs(tasks_root: str) -> list[tuple[str, str]]:
    """(namespace, id) of every task directory."""
    found = []
    for ns in sorted(os.listdir(tasks_root)) if os.path.isdir(tasks_root) else []:
        ns_dir = os.path.join(tasks_root, ns)
        if not os.path.isdir(ns_dir):
            continue
        for tid in sorted(os.listdir(ns_dir)):
            if os.path.isdir(os.path.join(ns_dir, tid)):
                found.append((ns, tid))
    return found


class Recovery:
    """Loads every task of a :class:`~runtime.highlevel.tasks.TaskManager` (see the module docstring)."""

    def __init__(self, manager, log):
        self.m, self.log = manager, log
        self.counts = {"adopted": 0, "cleaned": 0, "removed": 0, "unknown": 0}

    async def run(self, timeout: float) -> dict:
        """Load everything within *timeout* seconds; returns the counts and the seconds taken."""
        t0 = time.monotonic()
        entries = task_dirs(self.m.layout.tasks)
        loads = []
        for ns, tid in entries:
            task = Task(ns, tid, self.m.layout.task_dir(ns, tid))
            task.move("unknown")
            rec = read_record(task.dir)
            if rec:
                task.load_record(rec)
            self.m.tasks[(ns, tid)] = task
            loads.append(asyncio.get_running_loop().create_task(self._load(task)))
        self.m.recovered.set()
        pending = set()
        if loads:
            _, pending = await asyncio.wait(loads, timeout=timeout)
        for p in pending:  # they go on in the background; the API serves meanwhile
            self.m._background.add(p)
            p.add_done_callback(self.m._background.discard)
        self.counts["unknown"] = sum(1 for t in self.m.tasks.values() if t.status == "unknown" and not t.gone)
        result = dict(self.counts, tasks=len(entries), seconds=round(time.monotonic() - t0, 4),
                      still_loading=len(pending))
        self.log.info("tasks loaded", **result)
        return result

    async def _load(self, task: Task) -> None:
        log = self.log.with_fields(id=task.id, namespace=task.namespace)
        address = _read(os.path.join(task.dir, shim_paths.ADDRESS))
        container = self.m.md.find_container(task.namespace, task.id)
        if not address and not os.path.exists(os.path.join(task.dir, shim_paths.SHIM_PID)):
            log.warning("removing half-created task: no shim was started")
            self.m._remove_dir(task)
            self.m._forget(task)
            self.counts["removed"] += 1
            return
        try:
            await self.m.adopt(task, address, timeout=STATE_TIMEOUT)
        except NotFound:  # the shim lives, but its task was never created
            log.warning("removing half-created task: the shim has no task")
            await self._remove(task)
            return
        except Unavailable:
            await self.m.cleanup_dead_shim(task)
            self.counts["cleaned"] += 1
            return
        except CapsizeError as e:  # DeadlineExceeded: a stopped or hung shim
            log.warning("shim not responding: task state unknown, retrying", error=e.message)
            task.move("unknown")
            self.m._spawn(self._retry(task, address))
            return
        if container is None:
            log.warning("task without a container record: killing and removing it")
            await self._remove(task)
            return
        self.counts["adopted"] += 1
        log.debug("task adopted", status=task.status, pid=task.pid, shim_pid=task.shim_pid)

    async def _remove(self, task: Task) -> None:
        task.expect_close = True
        await self.m._stop_shim(task)
        self.m._remove_dir(task)
        self.m._forget(task)
        self.counts["removed"] += 1

    async def _retry(self, task: Task, address: str) -> None:
        """Keep trying a silent shim until it answers (adopt) or disappears (clean up)."""
        while not task.gone and not self.m.closing:
            await asyncio.sleep(RETRY_INTERVAL)
            try:
                await self.m.adopt(task, address, timeout=RETRY_INTERVAL)
            except Unavailable:
                await self.m.cleanup_dead_shim(task)
                return
            except NotFound:
                await self._remove(task)
                return
            except CapsizeError:
                continue
            self.log.info("shim answers again: task adopted", id=task.id, namespace=task.namespace,
                          status=task.status)
            return
