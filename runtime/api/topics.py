"""Event topics and their payloads: what the shim publishes to capsize-runtimed and what
capsize-runtimed publishes on ``GET /v1/events`` (capsized and the harness subscribe).

The names and fields follow containerd's event topics (``api/events``: ``TaskCreate``,
``TaskStart``, ``TaskExit``, ``TaskDelete``, ``TaskOOM``, ``TaskPaused``, ``TaskResumed``,
``ContainerCreate`` ...), in snake case. Payload shapes (``event`` of an envelope):

==================================  =============================================================
topic                               event
==================================  =============================================================
``/containers/create``              ``{"id", "image", "runtime": {"name"}}``
``/containers/update``              ``{"id", "image", "labels"}``
``/containers/delete``              ``{"id"}``
``/images/create``, ``/images/update``  ``{"name", "labels"}``
``/images/delete``                  ``{"name"}``
``/tasks/create``                   ``{"container_id", "bundle", "pid"}`` (from the shim)
``/tasks/start``                    ``{"container_id", "pid"}`` (from the shim)
``/tasks/paused``, ``/tasks/resumed``, ``/tasks/oom``  ``{"container_id"}`` (from the shim)
``/tasks/exit``                     ``{"container_id", "id", "pid", "exit_status", "exited_at"}``
                                    (+ ``"exit_source"`` from capsize-runtimed, and
                                    ``"exit_reason"`` when the status is made up)
``/tasks/delete``                   as ``/tasks/exit``
``/tasks/exec-added``               ``{"container_id", "exec_id"}`` (from the shim)
``/tasks/exec-started``             ``{"container_id", "exec_id", "pid"}`` (from the shim)
(an exec's exit)                    ``/tasks/exit`` with ``"id"`` = the exec id (not the
                                    container's): containerd's TaskExit of an exec process
==================================  =============================================================

``exited_at`` is RFC 3339 with nanoseconds; ``exit_status`` an int (128+signal for a signal);
``exit_source`` one of :data:`runtime.api.exits.EXIT_SOURCES` (what each means, and which are
made up). Envelopes: the shim sends ``{"topic", "namespace",
"timestamp", "seq", "event"}`` per line (:mod:`runtime.shim.events`); capsize-runtimed adds
``boot_id`` (:mod:`runtime.highlevel.events`). Standard library only: the shim loads it.
"""

from __future__ import annotations

CONTAINER_CREATE = "/containers/create"
CONTAINER_UPDATE = "/containers/update"
CONTAINER_DELETE = "/containers/delete"
IMAGE_CREATE = "/images/create"
IMAGE_UPDATE = "/images/update"
IMAGE_DELETE = "/images/delete"
TASK_CREATE = "/tasks/create"
TASK_START = "/tasks/start"
TASK_EXIT = "/tasks/exit"
TASK_DELETE = "/tasks/delete"
TASK_OOM = "/tasks/oom"
TASK_PAUSED = "/tasks/paused"
TASK_RESUMED = "/tasks/resumed"
TASK_EXEC_ADDED = "/tasks/exec-added"
TASK_EXEC_STARTED = "/tasks/exec-started"

#: Every topic capsize-runtimed publishes, in its documentation order.
TOPICS = (CONTAINER_CREATE, CONTAINER_UPDATE, CONTAINER_DELETE, IMAGE_CREATE, IMAGE_UPDATE, IMAGE_DELETE,
          TASK_CREATE, TASK_START, TASK_EXIT, TASK_DELETE, TASK_OOM, TASK_PAUSED, TASK_RESUMED,
          TASK_EXEC_ADDED, TASK_EXEC_STARTED)


def is_exec_exit(event: dict) -> bool:
    """Whether a ``/tasks/exit`` payload is an exec process's (its ``id`` is not the container's)."""
    return bool(event.get("id")) and event.get("id") != event.get("container_id")


def task_exit(container_id: str, pid: int, exit_status, exited_at, exit_source: str | None = None,
              exit_reason: str | None = None) -> dict:
    """The ``/tasks/exit`` (and ``/tasks/delete``) payload; ``exit_source`` and ``exit_reason``
    (why a made-up status is made up) only when given."""
    event = {"container_id": container_id, "id": container_id, "pid": pid, "exit_status": exit_status,
             "exited_at": exited_at}
    if exit_source is not None:
        event["exit_source"] = exit_source
    if exit_reason:
        event["exit_reason"] = exit_reason
    return event
