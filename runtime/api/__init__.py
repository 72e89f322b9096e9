"""The contracts between capsize's tiers, each written once (standard library only, cheap to import).

======================================  ====================================================
module                                  contract
======================================  ====================================================
:mod:`runtime.api.topics`               event topics and their payloads (containerd's names)
:mod:`runtime.api.shim`                 the shim's JSON-lines methods, shapes, client half
:mod:`runtime.api.runtimed`             capsize-runtimed's HTTP routes and client half
:mod:`runtime.api.states`               each tier's status state machine
:mod:`runtime.errors`                   error classes <-> codes, exit codes, HTTP statuses
======================================  ====================================================

Between capsized and its clients the contract is Docker's Engine API (API 1.41), and between
the shim and the low-level runtime it is runc's command line (DESIGN.md, "Protocols"). Importing
this package imports nothing; :mod:`runtime.api.shim` and :mod:`runtime.api.runtimed` import
``json``, so the shim's start path (which avoids it) never imports them.
"""

#: The listen(2) backlog of the API sockets (capsized's ``-H unix://``, capsize-runtimed's
#: socket): connections queued before they are accepted. A unix socket's connect fails with
#: EAGAIN once the queue is full, so a burst of clients (200 at once in the load test) needs more
#: than asyncio's and aiohttp's defaults (100, 128), which re-``listen`` a given socket. Go's
#: net.Listen, dockerd's, uses the kernel's ``net.core.somaxconn`` (4096 here); the kernel caps
#: any value at that.
LISTEN_BACKLOG = 1024
