"""capsize-shim: the per-container shim (containerd-shim-runc-v2's and conmon's role).

One shim per container. It is started detached by the high-level runtime (``capsize-shim
start``), is a child subreaper, runs the low-level runtime (``capsize-runc``, ``runc`` or
``crun``: the runc command line) to create and start the container, reaps the container's init
and every re-parented descendant, keeps the init's exit status on disk, copies the container's
stdout/stderr into a json-file log, publishes task events to the runtime daemon, and outlives
the runtime daemon and the engine daemon (DESIGN.md, seed experiment 4). It exits only after
``delete`` and ``shutdown``. This docstring is the contract with its client, capsize-runtimed.

Command line (:mod:`runtime.shim.cli`)
======================================

``capsize-shim start --id ID [--namespace NS] --bundle TASKDIR --address RUNTIMED_EVENTS
[--runtime BIN] [--runtime-root DIR] [--socket-dir DIR] [--spawn template|exec]``
    Spawns the shim daemon (own session and process group; not the caller's child: it is
    re-parented to the nearest subreaper or PID 1), waits until it serves, prints its address
    ``unix:///run/capsize/s/<sha256 hex>`` on stdout and exits 0. If a shim already serves that
    address, prints it and starts nothing. ``--runtime`` defaults to ``capsize-runc`` (a name is
    looked up next to this Python, then on PATH), ``--runtime-root`` to
    ``<state>/runc/<namespace>`` when TASKDIR is ``<state>/runtimed/tasks/<ns>/<id>``. Shims
    are forked from a pre-loaded *shim template* process (one per runtime address, so that shims
    share memory; :mod:`runtime.shim.template`) unless ``--spawn exec``. Either way the shim
    reads ``capsize-shim serve --namespace NS --id ID ...`` in ``ps``.

``capsize-shim delete --id ID [--namespace NS] --bundle TASKDIR [--runtime BIN] [--runtime-root DIR]``
    For a shim that is gone (``containerd-shim-runc-v2 delete``): ``<runtime> delete --force``,
    unmounts the rootfs if mounted, removes the shim socket, prints one JSON line
    ``{"id", "pid", "exit_status", "exited_at", "source", "warnings"}``; ``source`` is
    ``"exit-file"`` (the real status), ``"cleanup-kill"`` (137: the init was alive and this
    clean-up killed it) or ``"unknown"`` (255: nothing recorded it; with a ``"reason"``). Refuses (exit 5)
    while the shim lives. Errors: one line ``capsize-shim: <message>`` on stderr, exit code per
    :mod:`runtime.errors` (2 invalid argument, 3 not found, 5 failed precondition...).

The task directory (DESIGN.md: ``<state>/runtimed/tasks/<namespace>/<id>/``)
=============================================================================

Written by the runtime: ``config.json`` and ``rootfs/`` (the OCI bundle). Written by the shim:

===================  ==============================================================================
``address``          the shim's socket address (``unix:///run/capsize/s/<hex>``)
``shim.pid``         the shim's pid
``shim.log``         the shim's JSON-lines log (``time, level, msg, component, id, namespace, ...``)
``options.json``     ``{"id", "namespace", "runtime", "runtime_root", "address", "shim_address"}``
``init.pid``         the container init's pid (``<runtime> create --pid-file``)
``log.json``         the low-level runtime's log (``--log``, ``--log-format json``)
``container.log``    stdout/stderr in Docker's json-file format (default; ``create`` may name
                     another path): ``{"log": "...\\n", "stream": "stdout", "time": "<RFC 3339 nano>"}``
``exit``             ``{"pid", "exit_status", "exited_at"}``, written atomically before the exit is
                     reported anywhere (:mod:`runtime.shim.exitfile`)
===================  ==============================================================================

The socket is ``/run/capsize/s/<sha256("<runtime address>/<namespace>/<id>")>`` (unix socket
paths are limited to 107 bytes; ``--socket-dir`` moves it). The low-level runtime's state is in
``<runtime root>/<id>``.

Wire protocol: JSON lines over the shim's unix socket (:mod:`runtime.shim.server`)
===================================================================================

The methods (connect, create, start, state, kill, wait, pids, pause, resume, delete, shutdown),
their parameters and results, and the request/reply lines are the contract in
:mod:`runtime.api.shim`. Use :class:`runtime.shim.client.ShimClient` (``connect(address,
timeout)``, ``call(method, **params) -> dict``, raising the shared errors).

Events: to the runtime daemon's address (:mod:`runtime.shim.events`)
=====================================================================

The runtime daemon's address (``--address``) is a unix socket that accepts JSON lines: one
event per line, ``{"topic", "namespace", "timestamp", "seq", "event": {...}}``, and the
receiver answers each with one line (``{"ok":true}``) before the next is sent. Topics and
payloads: :mod:`runtime.api.topics` (``/tasks/oom`` is a cgroup v1 memory OOM kill). Order per shim:
create, start, [oom, paused, resumed], exit, delete. Undelivered events wait in a bounded queue
(256, oldest evicted) and are retried with backoff (0.05 s doubling to 1 s); delivery is at
least once (drop repeats by ``(event.container_id, seq)``).

Failpoints (:mod:`runtime.shim.failpoints`)
===========================================

An annotation ``io.capsize.shim.failpoint.<method>`` in ``config.json`` with a fail(9)-style
term list (``1*delay(2s)``, ``1*off->1*error(boom)``, ``50%error(x)``, ``panic``) makes that
method fail, wait (without blocking other clients) or crash the shim.

Modules: cli (the one dispatcher of the verbs start, delete, serve, template), args (their
arguments), start and delete (those verbs), daemon (the serving process, ``serve``), detach and
template (spawning),
server (the API), task (create/start/kill/delete, exit handling), reaper, ociruntime (the runc
command line), logs (json-file copier), events, oom, exitfile, failpoints, loop (epoll),
paths, proctitle, client; the log is :mod:`runtime.jsonlog`, times :mod:`runtime.rfc3339`. Only light standard-library modules are imported
in the shim process (no asyncio, psutil, yaml, argparse).
"""
