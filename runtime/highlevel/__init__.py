"""capsize-runtimed: capsize's high-level runtime daemon (containerd's role).

It owns images (a content store of sha256-addressed blobs, metadata in sqlite3, layers unpacked
into overlayfs snapshots), containers (metadata records) and tasks (one detached
``capsize-shim`` per container, runtime/shim/__init__.py), relays the shims' events, and after a
restart finds its shims again: live ones are adopted, dead ones cleaned up (recovery.py). Its
clients are capsized (dockerd's role) and the harness, through :mod:`runtime.highlevel.client`.
This docstring is the API contract.

Command line: ``capsize-runtimed [--root /var/lib/capsize] [--state /run/capsize] [--address
<state>/runtimed.sock] [--log-level info] [--log-file PATH] [--load-timeout 10] [--shim-spawn
template|exec] [--shim-socket-dir DIR] [--cgroup-parent /capsize]`` (:mod:`.cli`). SIGTERM stops
the daemon only; shims and containers run on. Under systemd it sends ``READY=1`` once it serves
and logs to journald.

Conventions
===========

* HTTP/1.1 on the unix socket ``--address`` (mode 0660); JSON bodies and results
  (``Content-Type: application/json``); keep-alive allowed. Everything but ``/v1/version``,
  ``/v1/namespaces``, ``/v1/gc`` and ``/v1/events`` is under ``/v1/namespaces/{ns}/`` —
  namespaces (``default``, ``moby``, ``capsize``...) exist once used, as containerd's do.
* Container ids and namespaces: 1-128 of ``[A-Za-z0-9_.-]``, starting with a letter or digit.
  Image names are references (``busybox:latest``, ``docker.io/library/busybox:1.36``); in a path
  they are percent-encoded as one segment (``/`` as ``%2F``); a name without a tag gets
  ``:latest``.
* Times are RFC 3339 with nanoseconds, UTC (``2026-11-29T11:25:01.123456789Z``). Exit statuses
  are shell-style: the code, or 128 + the signal number.
* Errors: ``{"code", "message", ...fields}`` (``runtime.errors.CapsizeError.to_dict``) with the
  class's status: 400 ``invalid-argument`` (malformed JSON or HTTP, bad id, bad parameter, unsafe
  or malformed archive), 404 ``not-found`` (unknown image, container, task or endpoint; a
  process that already finished), 409 ``already-exists`` (duplicate id) or
  ``failed-precondition`` (wrong state: start a running task, delete a container that has a
  task...), 503 ``unavailable`` (a shim that does not answer), 504 ``deadline-exceeded``, 501
  ``unimplemented`` (zstd layers), 500 ``internal``. A refused request changes nothing.

Endpoints
=========

=====================================================  ================================================
``GET /v1/version``                                    ``{"version", "api_version": 1, "pid", "root",
                                                       "state", "address", "boot_id", "event_seq",
                                                       "recovery": {"adopted", "cleaned", "removed",
                                                       "unknown", "tasks", "seconds", "still_loading"}}``
``GET /v1/namespaces``                                 ``{"namespaces": [...]}``
``POST /v1/gc``                                        garbage collection now: ``{"blobs_removed",
                                                       "snapshots_removed", "dirs_removed", "bytes_freed"}``
``GET /v1/events?topic=T&namespace=N&since=SEQ``       the event stream (below); ``topic`` and
                                                       ``namespace`` repeatable
``GET  .../images?id=CONFIG_DIGEST``                    ``{"images": [Image]}`` (with ``id``: those of
                                                       that image config digest only)
``POST .../images/import?format=F&name=N&label=K=V``   body: the archive (any length; optionally
                                                       gzip/bzip2/xz). F = ``auto`` (default),
                                                       ``docker-archive`` (docker save), ``oci-archive``
                                                       (an OCI image layout in a tar) or ``rootfs``
                                                       (docker import: needs ``name``). ``name`` renames
                                                       a single-image archive. ``{"images": [Image]}``;
                                                       publishes ``/images/create`` or ``/images/update``
``GET  .../images/{name}``                             ``Image``
``GET  .../images/{name}/export``                      a docker-save tarball (``application/x-tar``)
``POST .../images/{name}/tag``                         body ``{"name", "keep_replaced"?}``: the same
                                                       target under a new name (``Image``)
``POST .../images/commit``                             body ``{"parent", "snapshot", "config",
                                                       "history", "name"?, "labels"?, "keep_replaced"?}``:
                                                       an active snapshot's upper dir as a new layer
                                                       (:mod:`runtime.highlevel.commit`). ``Image``
``DELETE .../images/{name}?sync=1``                    ``{"name", "gc"}``; ``/images/delete``; with
                                                       ``sync``, garbage collection runs before the reply
                                                       (else blobs stay until ``POST /v1/gc``)
``GET  .../containers``                                ``{"containers": [Container]}``
``POST .../containers``                                body ``{"id", "image", "runtime"?, "spec"?,
                                                       "args"?, "env"?, "cwd"?, "labels"?}``: prepares the
                                                       active snapshot (key = id) from the image;
                                                       ``spec`` (a whole OCI config) or else one built
                                                       from the image config (``args`` replaces
                                                       Entrypoint+Cmd, ``env`` adds to Env).
                                                       ``runtime``: ``capsize-runc`` (default), ``runc``,
                                                       ``crun`` or an absolute path. ``Container``;
                                                       ``/containers/create``
``GET  .../containers/{id}``                           ``Container``
``PATCH .../containers/{id}``                          body ``{"labels"?, "spec"?}`` (spec: not while a
                                                       task exists). ``Container``; ``/containers/update``
``DELETE .../containers/{id}``                         ``{"id"}``; the snapshot goes too; 409 while a
                                                       task exists; ``/containers/delete``
``GET  .../snapshots/{key}/mounts``                    ``{"mounts": [{"type": "overlay", "source",
                                                       "options": [lowerdir, upperdir, workdir]}]}``
                                                       (containerd's ``Snapshots.Mounts``) of an active
                                                       snapshot; 404 for an unknown key
``GET  .../snapshots/{key}/changes``                   ``{"changes": [{"Path", "Kind"}]}`` (docker diff)
``GET  .../snapshots/{key}/export``                    a tar of the snapshot's whole tree (docker export)
``GET  .../tasks``                                     ``{"tasks": [Task]}`` (as the daemon knows them)
``POST .../tasks``                                     body ``{"container_id", "log_path"?}``: mounts
                                                       the snapshot at ``<task dir>/rootfs``, writes the
                                                       bundle, starts the shim, ``create``. ``Task``
                                                       (status ``created``). ``log_path`` (absolute)
                                                       receives the container's stdout/stderr in
                                                       Docker's json-file format; by default it is
                                                       ``<task dir>/container.log``, removed with the task
``GET  .../tasks/{id}``                                ``Task``, refreshed from the shim
``POST .../tasks/{id}/start``                          ``{"pid"}``
``POST .../tasks/{id}/kill``                           body ``{"signal": 15 | "SIGKILL" | "KILL",
                                                       "all": false}``; ``{}``; 404 once it exited
``POST .../tasks/{id}/wait``                           blocks until the exit: ``Exit``
``POST .../tasks/{id}/pause``, ``.../resume``          ``{}``; ``/tasks/paused``, ``/tasks/resumed``
``GET  .../tasks/{id}/pids``                           ``{"pids": [int, ...]}``
``POST .../tasks/{id}/update``                         body ``{"resources"}`` (OCI ``linux.resources``): the
                                                       shim's ``update`` (``<runtime> update``); ``{}``
``POST .../tasks/{id}/exec``                           body ``{"exec_id", "process" (OCI), "stdin"?,
                                                       "stdout"?, "stderr"? (FIFO paths)}``: the shim's
                                                       ``exec`` (a running task); ``Exec`` (status
                                                       ``running``); ``/tasks/exec-added``,
                                                       ``/tasks/exec-started``; its exit is a
                                                       ``/tasks/exit`` with ``id`` = the exec id
``GET  .../tasks/{id}/exec/{exec_id}``                 ``Exec``, refreshed from the shim: ``{"id",
                                                       "exec_id", "pid", "status", "exit_status",
                                                       "exited_at"}``
``POST .../tasks/{id}/resize``                         body ``{"height", "width", "exec_id"?}``: the
                                                       shim's ``resize`` of the init's terminal (or
                                                       the exec's): ``{}``; FailedPrecondition without
                                                       a terminal. (A task whose spec has
                                                       ``process.terminal`` gets a pty: its log is one
                                                       ``stdout`` stream, its stdin FIFO is typed in.)
``DELETE .../tasks/{id}?force=1``                      a created or stopped task (``force``: a running
                                                       or paused one is SIGKILLed first; a task whose
                                                       shim does not answer has its shim killed and is
                                                       cleaned up). Unmounts the rootfs, removes the
                                                       task directory. ``Exit``
=====================================================  ================================================

(``...`` = ``/v1/namespaces/{ns}``.)

Objects
=======

``Image``: ``{"namespace", "name", "target": {"mediaType", "digest", "size"}, "id" (the config
digest: docker's image ID), "config_digest", "diff_ids": [...], "chain_id", "size" (bytes of
its layer blobs), "architecture", "os", "config" (the image config's ``config``: Env, Cmd,
Entrypoint, WorkingDir, User...), "author", "comment", "history", "layer_sizes" (bytes of each
layer blob), "labels", "created_at", "updated_at"}``.

``Container``: ``{"namespace", "id", "image", "runtime", "snapshot_key", "spec", "labels",
"created_at", "updated_at"}``.

``Task``: ``{"id", "container_id", "namespace", "pid", "status", "exit_status", "exited_at",
"exit_source", "exit_reason", "shim_pid", "shim_address", "runtime" (the binary), "bundle" (the task
directory), "log_path", "created_at"}``. ``status``: ``creating``, ``created``, ``running``,
``paused``, ``stopped``, ``deleting``, or ``unknown`` (its shim does not answer: after a restart,
it is retried every second until it answers or dies).

``Exit``: ``{"pid", "exit_status", "exited_at", "exit_source", "exit_reason"}``. ``exit_source``
says where the status comes from (:mod:`runtime.api.exits`): ``shim`` (the live shim saw the
exit), ``exit-file`` (the shim died, and its ``delete`` action read the real status from the exit
file the shim wrote), ``cleanup-kill`` (137: the shim was dead and the init alive, and the
clean-up's ``delete --force`` killed it) or ``unknown`` (255, made up: the init exited while its
shim was dead, or the cleanup itself failed); ``exit_reason`` (null for a real status) says why.
containerd's cleanupAfterDeadShim reports 137 for all of the made-up cases.

Events
======

``GET /v1/events`` answers ``200`` with a chunked stream of JSON lines, one envelope each::

    {"seq": 7, "boot_id": "5c0f...", "timestamp": "...", "namespace": "moby",
     "topic": "/tasks/exit", "event": {...}}

The subscription is live when the response headers arrive. ``seq`` counts from 1 in each run of
the daemon (``boot_id``). ``since=SEQ`` first replays the buffered envelopes (the last 4096) with
a higher ``seq``: a client that reconnects to the same ``boot_id`` asks for ``since`` its last
``seq``; after a restart (a new ``boot_id``) it asks ``since=0`` to see what the daemon published
while starting (recovered exits, cleaned-up shims), before anyone could subscribe. Filters:
``topic`` (exact, or a prefix ending in ``/`` or ``*``), ``namespace``. A subscriber 10000 events
behind is dropped (its stream ends).

The topics and their ``event`` payloads are the contract in :mod:`runtime.api.topics`; the
routes above are :data:`runtime.api.runtimed.ROUTES`, and both clients build their calls with
:class:`runtime.api.runtimed.Requests`.

Order, per task, as containerd's runtime v2 contract fixes it: ``/tasks/create``,
``/tasks/start``, [``/tasks/paused``, ``/tasks/resumed``, ``/tasks/oom``], ``/tasks/exit``,
``/tasks/delete``; ``/containers/create`` before them and ``/containers/delete`` after. One
``/tasks/exit`` per task, even across restarts of the daemon (shims redeliver what was not
acknowledged; repeats are dropped). A shim found dead — at start-up, or when its connection
closes while the daemon runs — yields ``/tasks/exit`` (unless already published) then
``/tasks/delete``, and its task is gone (the container stays). The daemon logs it as containerd
does: ``shim disconnected``, ``cleaning up after shim disconnected`` (warning), ``cleaning up
dead shim``.

Modules
=======

cli (command line), daemon (locks, start-up, shutdown), api (routes), httpserver (HTTP/1.1 on
asyncio + h11), client (the synchronous client), content (content store), metadata (sqlite3),
images (import/export formats), unpack (safe layer unpack, whiteouts), snapshots (overlayfs),
gc (leases, garbage collection), containers, tasks (shims, task lifecycle, dead-shim cleanup),
shimconn (a shim's connection), events (bus, replay, the shim event socket), recovery, layout
(paths), fsutil (crash-safe JSON files), log (JSON lines / journald).
"""
